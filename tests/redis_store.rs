//! What only the Redis store does, through the `TokenStore` trait against a
//! real `redis-server`: retried saves, key prefixes, record expiry, records
//! it cannot read, outages, AUTH, TLS. The contract every store keeps is
//! checked in `store_conformance.rs`.
//!
//! Skipped loudly when `redis-server` is not installed, except under CI.
#![cfg(feature = "redis")]

mod support;

use std::time::{Duration, Instant, SystemTime};

use redis::AsyncCommands;
use simacan_auth::{
    ErrorKind,
    store::{Lease, RedisStore, StoreErrorKind, StoreKey, TokenRecord, TokenStore},
};
use support::{
    bounded,
    channel::{heard, tap},
    redis::RedisServer,
};

const LONG: Duration = Duration::from_secs(30);

fn key(n: usize) -> StoreKey {
    StoreKey::new("https://auth.example.com/api/v1", format!("user-{n}"))
}

fn record(key: &StoreKey, generation: u64, lifetime_secs: u64) -> TokenRecord {
    let lifetime = Duration::from_secs(lifetime_secs);
    let expires_at = SystemTime::now() + lifetime;
    TokenRecord::new(
        key.clone(),
        generation,
        "eyAccess",
        Some("eyRefresh"),
        expires_at,
        lifetime,
    )
    .unwrap()
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    bounded(client.get_multiplexed_async_connection())
        .await
        .unwrap()
}

/// Takes the lease and checks it was granted.
async fn lease(store: &RedisStore, key: &StoreKey, ttl: Duration) -> Lease {
    bounded(store.try_lease(key, ttl))
        .await
        .unwrap()
        .expect("the lease is free")
}

async fn lease_is_free(store: &RedisStore, key: &StoreKey) -> bool {
    match bounded(store.try_lease(key, LONG)).await.unwrap() {
        Some(lease) => {
            bounded(store.release(lease)).await.unwrap();
            true
        }
        None => false,
    }
}

#[tokio::test]
async fn a_save_sent_twice_counts_once() {
    // What a retry after a lost reply does: the same write again.
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(server.url()).unwrap();
    let lease = lease(&store, &key(1), LONG).await;
    let first = record(&key(1), 1, 60);
    assert!(bounded(store.save(&lease, &first, None)).await.unwrap());
    assert!(bounded(store.save(&lease, &first, None)).await.unwrap());
    let rival = record(&key(1), 1, 90);
    assert!(
        !bounded(store.save(&lease, &rival, None)).await.unwrap(),
        "a different record with the same generation is not a retry"
    );
    let stored = bounded(store.load(&key(1))).await.unwrap().unwrap();
    assert_eq!(stored.lifetime(), Duration::from_secs(60));
}

#[tokio::test]
async fn remove_leaves_the_lease() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(server.url()).unwrap();
    let lease = lease(&store, &key(1), LONG).await;
    assert!(
        bounded(store.save(&lease, &record(&key(1), 3, 60), None))
            .await
            .unwrap()
    );
    bounded(store.remove(&key(1))).await.unwrap();
    assert!(
        !lease_is_free(&store, &key(1)).await,
        "remove is no release"
    );
    assert!(bounded(store.renew(&lease, LONG)).await.unwrap());
}

#[tokio::test]
async fn a_key_prefix_isolates() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = RedisStore::open(server.url()).unwrap().key_prefix("a:");
    let b = RedisStore::open(server.url()).unwrap().key_prefix("b:");
    let default = RedisStore::open(server.url()).unwrap();
    let lease_a = lease(&a, &key(1), LONG).await;
    let lease_b = lease(&b, &key(1), LONG).await;
    assert!(
        bounded(a.save(&lease_a, &record(&key(1), 1, 60), None))
            .await
            .unwrap()
    );
    assert!(bounded(b.load(&key(1))).await.unwrap().is_none());
    assert!(bounded(default.load(&key(1))).await.unwrap().is_none());
    assert!(
        bounded(b.save(&lease_b, &record(&key(1), 1, 90), None))
            .await
            .unwrap()
    );
    bounded(b.remove(&key(1))).await.unwrap();
    assert!(bounded(a.load(&key(1))).await.unwrap().is_some());

    let mut raw = raw(&server).await;
    let fingerprint = key(1).fingerprint().to_owned();
    let a_keys: Vec<String> = bounded(raw.keys("a:*")).await.unwrap();
    let mut a_keys = a_keys;
    a_keys.sort();
    assert_eq!(
        a_keys,
        [
            format!("a:{{{fingerprint}}}"),
            format!("a:{{{fingerprint}}}:lease"),
            format!("a:{{{fingerprint}}}:seal"),
        ]
    );
    assert!(lease_is_free(&default, &key(1)).await);
}

#[tokio::test]
async fn records_expire_after_the_record_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut raw = raw(&server).await;
    let default = RedisStore::open(server.url()).unwrap();
    let forever = RedisStore::open(server.url())
        .unwrap()
        .key_prefix("forever:")
        .record_ttl(None);
    let brief = RedisStore::open(server.url())
        .unwrap()
        .key_prefix("brief:")
        .record_ttl(Some(Duration::from_millis(300)));
    for store in [&default, &forever, &brief] {
        let lease = lease(store, &key(1), LONG).await;
        assert!(
            bounded(store.save(&lease, &record(&key(1), 1, 60), None))
                .await
                .unwrap()
        );
    }
    let fingerprint = key(1).fingerprint().to_owned();
    let ttl: i64 = bounded(raw.pttl(format!("simacan-auth:{{{fingerprint}}}")))
        .await
        .unwrap();
    let thirty_days = 30 * 86_400 * 1000;
    assert!(thirty_days - 60_000 < ttl && ttl <= thirty_days, "{ttl}");
    let ttl: i64 = bounded(raw.pttl(format!("forever:{{{fingerprint}}}")))
        .await
        .unwrap();
    assert_eq!(ttl, -1, "no expiry");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(bounded(brief.load(&key(1))).await.unwrap().is_none());
    assert!(bounded(forever.load(&key(1))).await.unwrap().is_some());
}

#[tokio::test]
async fn unreadable_records_are_corrupt_and_left_alone() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(server.url()).unwrap();
    let mut raw = raw(&server).await;
    let garbage = format!("simacan-auth:{{{}}}", key(1).fingerprint());
    let () = bounded(raw.hset_multiple(&garbage, &[("generation", "1"), ("record", "{SECRET")]))
        .await
        .unwrap();
    let foreign = format!("simacan-auth:{{{}}}", key(2).fingerprint());
    let () = bounded(raw.set(&foreign, "someone else's")).await.unwrap();
    let half = format!("simacan-auth:{{{}}}", key(3).fingerprint());
    let () = bounded(raw.hset(&half, "generation", "1")).await.unwrap();
    let mismatched = format!("simacan-auth:{{{}}}", key(4).fingerprint());
    let encoded = record(&key(4), 2, 60).encode().to_vec();
    let () = bounded(raw.hset_multiple(
        &mismatched,
        &[("generation", b"1".to_vec()), ("record", encoded)],
    ))
    .await
    .unwrap();

    for n in 1..=4 {
        let error = bounded(store.load(&key(n))).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Corrupt, "key {n}: {error}");
        assert!(!error.to_string().contains("SECRET"), "{error}");
    }
    let lease = lease(&store, &key(2), LONG).await;
    let error = bounded(store.save(&lease, &record(&key(2), 1, 60), None))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let still: String = bounded(raw.hget(&garbage, "record")).await.unwrap();
    assert_eq!(still, "{SECRET", "left for an operator or a newer release");
    bounded(store.remove(&key(1))).await.unwrap();
    assert!(bounded(store.load(&key(1))).await.unwrap().is_none());
}

#[tokio::test]
async fn a_record_of_another_key_under_the_same_fingerprint_reads_as_absent() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(server.url()).unwrap();
    let mut raw = raw(&server).await;
    let other = record(&key(2), 1, 60);
    let () = bounded(raw.hset_multiple(
        format!("simacan-auth:{{{}}}", key(1).fingerprint()),
        &[
            ("generation", b"1".to_vec()),
            ("record", other.encode().to_vec()),
        ],
    ))
    .await
    .unwrap();
    assert!(bounded(store.load(&key(1))).await.unwrap().is_none());
}

#[tokio::test]
async fn a_stopped_redis_is_unavailable_at_once_and_the_store_reconnects() {
    let Some(mut server) = RedisServer::start_with_password("hunter2") else {
        return;
    };
    let store = RedisStore::open(server.url()).unwrap();
    let held = lease(&store, &key(1), LONG).await;
    assert!(
        bounded(store.save(&held, &record(&key(1), 1, 60), None))
            .await
            .unwrap()
    );

    server.stop();
    let started = Instant::now();
    let errors = [
        bounded(store.load(&key(1))).await.map(drop).unwrap_err(),
        bounded(store.try_lease(&key(2), LONG))
            .await
            .map(drop)
            .unwrap_err(),
        bounded(store.renew(&held, LONG))
            .await
            .map(drop)
            .unwrap_err(),
        bounded(store.save(&held, &record(&key(1), 2, 60), Some(1)))
            .await
            .map(drop)
            .unwrap_err(),
        bounded(store.remove(&key(1))).await.unwrap_err(),
    ];
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?} for five refused operations",
        started.elapsed()
    );
    for error in &errors {
        assert_eq!(error.kind(), StoreErrorKind::Unavailable);
        assert!(error.is_transient());
        let shown = format!("{error} {error:?}");
        assert!(
            shown.contains(&format!("redis at 127.0.0.1:{}", server.port())),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    server.restart();
    assert!(
        bounded(store.load(&key(1))).await.unwrap().is_none(),
        "the restarted server is empty, and the same store reaches it"
    );
    let held = lease(&store, &key(1), LONG).await;
    assert!(
        bounded(store.save(&held, &record(&key(1), 1, 60), None))
            .await
            .unwrap()
    );

    // A restart while the store holds a live connection: the first
    // operation after it finds the connection dropped and is sent again.
    server.restart();
    assert!(bounded(store.load(&key(1))).await.unwrap().is_none());
    assert!(
        bounded(store.try_lease(&key(1), LONG))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_hung_redis_fails_within_the_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let store = RedisStore::open(server.url()).unwrap().timeout(timeout);
    assert!(bounded(store.load(&key(1))).await.unwrap().is_none());

    server.pause();
    let started = Instant::now();
    let error = bounded(store.load(&key(1))).await.unwrap_err();
    let took = started.elapsed();
    server.resume();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(
        timeout <= took && took < timeout + Duration::from_secs(1),
        "{took:?}"
    );

    let fresh = RedisStore::open(server.url()).unwrap().timeout(timeout);
    server.pause();
    let started = Instant::now();
    let error = bounded(fresh.try_lease(&key(1), LONG)).await.unwrap_err();
    let took = started.elapsed();
    server.resume();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(
        took < timeout + Duration::from_secs(1),
        "connecting is bounded too: {took:?}"
    );

    assert!(lease_is_free(&store, &key(1)).await, "answers again");
}

#[tokio::test]
async fn auth_comes_from_the_url() {
    let Some(server) = RedisServer::start_with_password("s3cret-pw") else {
        return;
    };
    let with = RedisStore::open(server.url()).unwrap();
    assert!(bounded(with.load(&key(1))).await.unwrap().is_none());
    assert!(lease_is_free(&with, &key(1)).await);

    let without = RedisStore::open(server.url_without_password()).unwrap();
    let wrong = RedisStore::open(format!("redis://:wrong-pw@127.0.0.1:{}", server.port())).unwrap();
    for store in [without, wrong] {
        let error = bounded(store.load(&key(1))).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        let shown = format!("{error} {error:?} {store:?}");
        assert!(
            !shown.contains("wrong-pw") && !shown.contains("s3cret-pw"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn debug_hides_the_password() {
    let Some(server) = RedisServer::start_with_password("secret") else {
        return;
    };
    let url = format!("redis://:secret@127.0.0.1:{}/3", server.port());
    let store = RedisStore::open(&url).unwrap().key_prefix("fleet:");
    let shown = format!("{store:?}");
    assert!(!shown.contains("secret"), "{shown}");
    for part in [
        format!("127.0.0.1:{}", server.port()),
        "db: 3".into(),
        "fleet:".into(),
    ] {
        assert!(shown.contains(&part), "{shown} lacks {part}");
    }
    assert!(
        bounded(store.load(&key(1))).await.unwrap().is_none(),
        "db 3 works"
    );
}

#[test]
fn invalid_urls_are_invalid_configuration() {
    for url in [
        "127.0.0.1:6379",
        "http://:secret@127.0.0.1:6379",
        "redis://:secret@127.0.0.1:6379/x",
        "rediss://:secret@127.0.0.1:6379/#insecure",
    ] {
        match RedisStore::open(url) {
            Err(error) if error.kind() == ErrorKind::Configuration => {
                let reason = error.to_string();
                assert!(!reason.contains("secret"), "{url}: {reason}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn rediss_urls_are_accepted_and_speak_tls() {
    // A plain-text server: the store's TLS handshake (rustls with ring)
    // starts, gets no TLS answer and fails cleanly.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 1];
        socket.read_exact(&mut hello).await.unwrap();
        let _ = socket.write_all(b"-ERR not tls\r\n").await;
        hello[0]
    });
    let store = RedisStore::open(format!("rediss://:secret@localhost:{port}/0")).unwrap();
    assert!(format!("{store:?}").contains("tls: true"));
    let error = bounded(store.load(&key(1))).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(!format!("{error:?}").contains("secret"));
    assert_eq!(
        bounded(server).await.unwrap(),
        0x16,
        "the store opened with a TLS handshake record"
    );
}

/// The connection manager is made on the runtime of the first use; a store that outlives that runtime (a layer
/// shared by two runtimes, or built in one `block_on` and used in the next,
/// as the CLI and tests do) must still work on the next one.
#[test]
fn a_store_outlives_the_runtime_it_first_connected_on() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(server.url()).unwrap();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    runtime().block_on(async {
        assert!(bounded(store.load(&key(0))).await.unwrap().is_none());
    });
    runtime().block_on(async {
        let outcome = bounded(store.load(&key(0))).await;
        assert!(outcome.is_ok(), "second runtime: {outcome:?}");
        let outcome = bounded(store.load(&key(0))).await;
        assert!(outcome.is_ok(), "second runtime, again: {outcome:?}");
    });
}

/// Takes and releases the lease on `key` through `writer` until `changes`
/// is woken; panics after `within`.
async fn announced_within(
    writer: &RedisStore,
    changes: &mut simacan_auth::store::Changes,
    within: Duration,
) {
    let started = Instant::now();
    loop {
        let held = lease(writer, &key(9), LONG).await;
        bounded(writer.release(held)).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(100), changes.changed()).await {
            Ok(true) => return,
            Ok(false) => panic!("the feed ended"),
            Err(_) => assert!(started.elapsed() < within, "nothing announced"),
        }
    }
}

#[tokio::test]
async fn writes_are_announced_to_other_stores_and_again_after_a_restart() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let writer = RedisStore::open(server.url()).unwrap();
    let waiter = RedisStore::open(server.url()).unwrap();
    let mut changes = waiter.changes(&key(1)).expect("the redis store announces");
    announced_within(&writer, &mut changes, Duration::from_secs(5)).await;

    // Each write of the store is announced: a save, a failure notice, a
    // removal, a release.
    let held = lease(&writer, &key(1), LONG).await;
    let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    assert!(
        bounded(writer.save(&held, &record(&key(1), 1, 60), None))
            .await
            .unwrap()
    );
    assert!(bounded(changes.changed()).await, "save");
    let notice = simacan_auth::store::FailureNotice::new(
        key(1),
        Some(1),
        Duration::from_secs(60),
        simacan_auth::ErrorKind::AuthApiUnavailable,
    );
    bounded(writer.save_failure(&held, &notice)).await.unwrap();
    assert!(bounded(changes.changed()).await, "failure notice");
    bounded(writer.remove(&key(1))).await.unwrap();
    assert!(bounded(changes.changed()).await, "remove");
    bounded(writer.release(held)).await.unwrap();
    assert!(bounded(changes.changed()).await, "release");

    // The subscription is lost with the server, and made again.
    server.restart();
    announced_within(&writer, &mut changes, Duration::from_secs(5)).await;
}

/// Saves `saved` through `writer` until `changes` hears of it (the
/// subscription takes a moment to start), within 5 seconds.
async fn save_until_announced(
    writer: &RedisStore,
    changes: &mut simacan_auth::store::Changes,
    key: &StoreKey,
) -> (TokenRecord, Lease) {
    let held = lease(writer, key, Duration::from_secs(30)).await;
    let started = Instant::now();
    let mut generation = 0;
    loop {
        let expected = (generation > 0).then_some(generation);
        generation += 1;
        let saved = record(key, generation, 3600);
        assert!(bounded(writer.save(&held, &saved, expected)).await.unwrap());
        let heard = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
        if heard == Ok(true) {
            // Later saves' messages may still be on their way.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return (saved, held);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no save was announced"
        );
    }
}

/// Two stores on `server`, as two processes: `writer` has saved records of
/// `key(1)` under the lease `held` until `reader`, which looked at the key
/// first, was `handed` one through `changes`.
struct Sealing {
    writer: RedisStore,
    reader: RedisStore,
    key: StoreKey,
    changes: simacan_auth::store::Changes,
    held: Lease,
    handed: TokenRecord,
}

async fn sealing(server: &RedisServer) -> Sealing {
    let open = || RedisStore::open(server.url()).unwrap();
    let (writer, reader) = (open(), open());
    let key = key(1);
    look_at(&reader, &key).await;
    let mut changes = reader.changes(&key).expect("the redis store announces");
    let (saved, held) = save_until_announced(&writer, &mut changes, &key).await;
    let handed =
        save_until_handed_over(&writer, &held, &mut changes, &key, saved.generation()).await;
    Sealing {
        writer,
        reader,
        key,
        changes,
        held,
        handed,
    }
}

/// Looks at `key` through `store` (as a waiting token state does), which
/// learns the credential's seal; gives back a lease the look took.
async fn look_at(store: &RedisStore, key: &StoreKey) {
    let looked = bounded(store.look(key, LONG, None)).await.unwrap();
    if let Some(lease) = looked.lease {
        bounded(store.release(lease)).await.unwrap();
    }
}

/// The seal key of `key`'s credential under the default prefix.
fn seal_key(key: &StoreKey) -> String {
    format!("simacan-auth:{{{}}}:seal", key.fingerprint())
}

/// Saves the record after generation `previous` through `writer` under
/// `held`, which must be written.
async fn save_after(
    writer: &RedisStore,
    held: &Lease,
    key: &StoreKey,
    previous: u64,
) -> TokenRecord {
    let saved = record(key, previous + 1, 3600);
    assert!(
        bounded(writer.save(held, &saved, Some(previous)))
            .await
            .unwrap()
    );
    saved
}

/// Saves the record after `previous` through `writer` under `held`, and
/// checks that `changes` hands over that very save (sealed under a seal
/// the reader knows), not a later one.
async fn handed_over_at_once(
    writer: &RedisStore,
    held: &Lease,
    changes: &mut simacan_auth::store::Changes,
    key: &StoreKey,
    previous: u64,
) -> TokenRecord {
    let saved = save_after(writer, held, key, previous).await;
    assert!(bounded(changes.changed()).await, "woken");
    assert_eq!(
        changes.saved(key).map(|r| r.generation()),
        Some(saved.generation()),
        "handed over at the first save"
    );
    saved
}

/// Saves the record after `previous` through `writer` under `held`, until
/// `changes` hands it over (a save by a writer that does not know the seal
/// yet is announced by key), within 5 seconds.
async fn save_until_handed_over(
    writer: &RedisStore,
    held: &Lease,
    changes: &mut simacan_auth::store::Changes,
    key: &StoreKey,
    mut previous: u64,
) -> TokenRecord {
    let started = Instant::now();
    loop {
        let saved = save_after(writer, held, key, previous).await;
        previous += 1;
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
        if changes
            .saved(key)
            .is_some_and(|r| r.generation() == previous)
        {
            return saved;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no saved record was handed over"
        );
    }
}

#[tokio::test]
async fn saved_records_are_handed_over_sealed_and_never_in_the_clear() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open = || RedisStore::open(server.url()).unwrap();
    let (writer, reader) = (open(), open());
    let key = key(1);
    let mut tapped = tap(&server.url()).await;

    look_at(&reader, &key).await;
    let mut changes = reader.changes(&key).expect("the redis store announces");
    let (saved, held) = save_until_announced(&writer, &mut changes, &key).await;
    let handed =
        save_until_handed_over(&writer, &held, &mut changes, &key, saved.generation()).await;
    assert_eq!(
        *changes.saved(&key).unwrap().encode(),
        *handed.encode(),
        "the very record"
    );
    assert!(changes.is_live());

    let messages = heard(&mut tapped).await;
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with(b"simacan-auth sealed record")),
        "the record went out sealed"
    );
    for message in &messages {
        for secret in [&b"eyAccess"[..], b"eyRefresh"] {
            assert!(
                !message.windows(secret.len()).any(|w| w == secret),
                "a token in the clear on the channel"
            );
        }
    }
    bounded(writer.release(held)).await.unwrap();
}

#[tokio::test]
async fn a_replaced_seal_costs_reads_until_the_next_look_learns_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Sealing {
        writer,
        reader,
        key,
        mut changes,
        held,
        handed,
    } = sealing(&server).await;

    // Someone replaces the seal (rotates it): the writer's next save finds
    // another seal and is announced by key; the one after, sealed under the
    // new seal, the reader cannot open. Either way the reader drops the
    // record it was handed, which is no longer the newest.
    let seal_key = seal_key(&key);
    let mut raw = raw(&server).await;
    let _: () = raw.set(&seal_key, [7u8; 32].as_slice()).await.unwrap();
    let mut generation = handed.generation();
    for _ in 0..2 {
        generation = save_after(&writer, &held, &key, generation)
            .await
            .generation();
        assert!(bounded(changes.changed()).await, "still woken");
        assert_eq!(
            changes.saved(&key).map(|r| r.generation()),
            None,
            "not handed over: the waiters read"
        );
    }
    // The reader's next look learns the new seal.
    look_at(&reader, &key).await;
    save_until_handed_over(&writer, &held, &mut changes, &key, generation).await;
    bounded(writer.release(held)).await.unwrap();
}

#[tokio::test]
async fn a_removed_credential_gets_a_new_seal() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Sealing {
        writer,
        reader,
        key,
        mut changes,
        held,
        ..
    } = sealing(&server).await;
    let seal_key = seal_key(&key);
    let mut raw = raw(&server).await;
    bounded(writer.release(held)).await.unwrap();
    let before: Vec<u8> = raw.get(&seal_key).await.unwrap();
    assert_eq!(before.len(), 32);

    bounded(writer.remove(&key)).await.unwrap();
    let gone: Option<Vec<u8>> = raw.get(&seal_key).await.unwrap();
    assert!(gone.is_none(), "the seal goes with the record");
    // Every process forgets it; a save makes a new one, never the old one
    // again, and a look learns it.
    let held = lease(&writer, &key, LONG).await;
    assert!(
        bounded(writer.save(&held, &record(&key, 1, 3600), None))
            .await
            .unwrap()
    );
    let after: Vec<u8> = raw.get(&seal_key).await.unwrap();
    assert_eq!(after.len(), 32);
    assert_ne!(after, before, "a new seal");
    look_at(&reader, &key).await;
    save_until_handed_over(&writer, &held, &mut changes, &key, 1).await;
    bounded(writer.release(held)).await.unwrap();
}

#[tokio::test]
async fn a_save_sent_again_learns_the_stored_seal_not_its_own() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Sealing {
        writer: first,
        // The feed lives as long as its store.
        reader: _reader,
        key,
        mut changes,
        held,
        handed,
    } = sealing(&server).await;
    let second = RedisStore::open(server.url()).unwrap();

    // The same save again through a store that knows no seal, as a retry
    // after a lost reply sends it (with a new seal of its own): it counts
    // as written and announces nothing, and its store learns the stored
    // seal, under which its next save is handed over at once.
    let expected = handed.generation() - 1;
    assert!(
        bounded(second.save(&held, &handed, Some(expected)))
            .await
            .unwrap()
    );
    // Sealed under the stored seal.
    handed_over_at_once(&second, &held, &mut changes, &key, handed.generation()).await;
    bounded(first.release(held)).await.unwrap();
}

#[tokio::test]
async fn a_seal_gone_from_the_store_is_made_anew_and_never_put_back() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Sealing {
        writer,
        reader,
        key,
        mut changes,
        held,
        handed,
    } = sealing(&server).await;
    let seal_key = seal_key(&key);
    let mut raw = raw(&server).await;
    let before: Vec<u8> = raw.get(&seal_key).await.unwrap();

    // The seal is lost (a failover before it was replicated, say): the
    // writer, which remembers it, announces by key and forgets it instead
    // of storing it again; its next save makes a new one.
    let _: () = raw.del(&seal_key).await.unwrap();
    let mut generation = save_after(&writer, &held, &key, handed.generation())
        .await
        .generation();
    assert!(bounded(changes.changed()).await, "woken");
    assert!(changes.saved(&key).is_none(), "by key: the waiters read");
    let gone: Option<Vec<u8>> = raw.get(&seal_key).await.unwrap();
    assert!(gone.is_none(), "the remembered seal is not put back");
    generation = save_after(&writer, &held, &key, generation)
        .await
        .generation();
    let after: Vec<u8> = raw.get(&seal_key).await.unwrap();
    assert_eq!(after.len(), 32);
    assert_ne!(after, before, "a new seal");
    look_at(&reader, &key).await;
    save_until_handed_over(&writer, &held, &mut changes, &key, generation).await;
    bounded(writer.release(held)).await.unwrap();
}

#[tokio::test]
async fn a_seal_key_of_another_type_fails_no_save_and_no_look() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open = || RedisStore::open(server.url()).unwrap();
    let (writer, reader) = (open(), open());
    let key = key(1);
    let seal_key = seal_key(&key);
    let mut raw = raw(&server).await;
    let _: () = raw.lpush(&seal_key, "not a seal").await.unwrap();
    look_at(&reader, &key).await;
    let mut changes = reader.changes(&key).expect("the redis store announces");
    let (saved, held) = save_until_announced(&writer, &mut changes, &key).await;
    assert_eq!(
        bounded(reader.load(&key))
            .await
            .unwrap()
            .map(|r| r.generation()),
        Some(saved.generation()),
        "written"
    );
    assert!(changes.saved(&key).is_none(), "announced by key");
    look_at(&reader, &key).await;
    bounded(writer.release(held)).await.unwrap();
}

#[tokio::test]
async fn a_save_its_writer_sends_again_is_announced_once_and_keeps_the_seal() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Sealing {
        writer,
        key,
        mut changes,
        held,
        handed,
        // The feed lives as long as its store.
        reader: _reader,
    } = sealing(&server).await;
    let mut tapped = tap(&server.url()).await;

    // The same save again, as the store retries one whose reply was lost:
    // it counts as written, nothing is published again, and the writer
    // keeps its seal, so that its next save is handed over at once.
    let expected = handed.generation() - 1;
    assert!(
        bounded(writer.save(&held, &handed, Some(expected)))
            .await
            .unwrap()
    );
    assert_eq!(
        heard(&mut tapped).await,
        Vec::<Vec<u8>>::new(),
        "published again"
    );
    handed_over_at_once(&writer, &held, &mut changes, &key, handed.generation()).await;
    bounded(writer.release(held)).await.unwrap();
}

#[tokio::test]
async fn a_removal_anyone_publishes_keeps_the_seal_and_lets_no_replay_in() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Sealing {
        writer,
        key,
        mut changes,
        held,
        handed,
        // The feed lives as long as its store.
        reader: _reader,
    } = sealing(&server).await;
    let mut tapped = tap(&server.url()).await;
    let older = handed_over_at_once(&writer, &held, &mut changes, &key, handed.generation()).await;
    let captured = heard(&mut tapped).await;
    assert_eq!(captured.len(), 1, "one message");
    assert!(
        captured[0].starts_with(b"simacan-auth sealed record"),
        "sealed"
    );
    let newer = handed_over_at_once(&writer, &held, &mut changes, &key, older.generation()).await;

    // Anyone who can publish sends a removal of the credential, then the
    // older sealed message again.
    let mut raw = raw(&server).await;
    let removal = format!(
        r#"{{"removed":{{"base_url":"{}","username":"{}"}}}}"#,
        key.base_url(),
        key.username()
    );
    let _: i64 = raw.publish("simacan-auth:changes", removal).await.unwrap();
    assert!(bounded(changes.changed()).await, "the removal wakes");
    assert!(changes.saved(&key).is_none(), "the held record is dropped");
    let _: i64 = raw
        .publish("simacan-auth:changes", captured[0].as_slice())
        .await
        .unwrap();
    assert!(bounded(changes.changed()).await, "the replay wakes");
    assert!(
        changes.saved(&key).is_none(),
        "the replayed record is older than the last one handed over"
    );
    // The seal was only doubted: the next save is handed over at once.
    handed_over_at_once(&writer, &held, &mut changes, &key, newer.generation()).await;
    bounded(writer.release(held)).await.unwrap();
}

/// Sends `signal` to the server process.
#[cfg(unix)]
fn signal(server: &RedisServer, signal: rustix::process::Signal) {
    let pid = server.pid().expect("the server runs");
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_subscription_whose_server_stops_answering_stops_handing_over_records() {
    use rustix::process::Signal;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open = || {
        RedisStore::open(server.url())
            .unwrap()
            .timeout(Duration::from_millis(300))
    };
    let (writer, reader) = (open(), open());
    let key = key(1);
    look_at(&reader, &key).await;
    let mut changes = reader.changes(&key).expect("the redis store announces");
    let (saved, held) = save_until_announced(&writer, &mut changes, &key).await;
    save_until_handed_over(&writer, &held, &mut changes, &key, saved.generation()).await;
    assert!(changes.is_live());
    assert!(changes.saved(&key).is_some());

    // A paused server keeps its connections open but answers nothing: the
    // subscription's PING finds out within a check and its timeout.
    signal(&server, Signal::STOP);
    let paused = Instant::now();
    while changes.is_live() {
        assert!(
            paused.elapsed() < Duration::from_secs(5),
            "the feed still passed for live"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&server, Signal::CONT);
    assert!(changes.saved(&key).is_none(), "what it held is forgotten");
}
