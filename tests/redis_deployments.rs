//! The Redis store on the deployments fleets run, each started for real on
//! loopback ports: a Cluster of three primaries (`redis-cli --cluster
//! create`), a primary with a replica watched by three sentinels, and a
//! primary with a replica for the replica acknowledgement. A fleet riding
//! out a Sentinel failover is in `fleet.rs`.
//!
//! Skipped loudly without `redis-server` and `redis-cli`, except under CI.
#![cfg(feature = "redis")]

mod support;

use std::time::{Duration, Instant, SystemTime};

use simacan_auth::store::{
    FailureNotice, Lease, Marking, RedisStore, StoreErrorKind, StoreKey, TokenRecord, TokenStore,
    conformance,
};
use support::{
    bounded,
    channel::tap,
    redis::{RedisServer, free_port},
    redis_topology::{RedisCluster, RedisSentinels},
};

const LONG: Duration = Duration::from_secs(30);

fn key(n: usize) -> StoreKey {
    StoreKey::new("https://auth.example.com/api/v1", format!("user-{n}"))
}

fn record(key: &StoreKey, generation: u64) -> TokenRecord {
    let lifetime = Duration::from_secs(60);
    TokenRecord::new(
        key.clone(),
        generation,
        &format!("eyAccess{generation}"),
        Some("eyRefresh"),
        SystemTime::now() + lifetime,
        lifetime,
    )
    .unwrap()
}

async fn lease(store: &RedisStore, key: &StoreKey) -> Lease {
    bounded(store.try_lease(key, LONG))
        .await
        .unwrap()
        .expect("the lease is free")
}

async fn generation(store: &RedisStore, key: &StoreKey) -> Option<u64> {
    bounded(store.load(key))
        .await
        .unwrap()
        .map(|r| r.generation())
}

#[tokio::test]
async fn a_cluster_keeps_the_contract() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    // Each handle reaches the cluster through one seed node only.
    let url = cluster.url_through(&[1]);
    conformance::check(|| RedisStore::open(&url).unwrap()).await;
}

#[tokio::test]
async fn every_key_of_a_credential_lands_in_one_slot() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let store = RedisStore::open(cluster.url()).unwrap();
    let mut slots = Vec::new();
    for n in 0..8 {
        let key = key(n);
        let held = lease(&store, &key).await;
        assert!(
            bounded(store.save(&held, &record(&key, 1), None))
                .await
                .unwrap()
        );
        let notice = FailureNotice::new(
            key.clone(),
            Some(1),
            Duration::from_secs(60),
            simacan_auth::ErrorKind::AuthApiUnavailable,
        );
        bounded(store.save_failure(&held, &notice)).await.unwrap();
        let tagged = format!("simacan-auth:{{{}}}", key.fingerprint());
        let keys = [
            tagged.clone(),
            format!("{tagged}:lease"),
            format!("{tagged}:failure"),
        ];
        let slot = cluster.slot(&keys[0]);
        for name in &keys {
            assert_eq!(cluster.slot(name), slot, "{name}");
        }
        let owner = cluster.owner(slot);
        for name in &keys {
            assert_eq!(
                cluster.cli(owner, &["exists", name]),
                ["1"],
                "{name} on its node"
            );
        }
        // Removing forgets the record and the notice in one command.
        bounded(store.remove(&key)).await.unwrap();
        assert_eq!(generation(&store, &key).await, None);
        slots.push(slot);
    }
    slots.sort_unstable();
    slots.dedup();
    assert!(
        slots.len() > 1,
        "credentials spread over the cluster: {slots:?}"
    );
}

#[tokio::test]
async fn the_store_follows_ask_and_moved_while_a_slot_migrates() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let store = RedisStore::open(cluster.url_through(&[0])).unwrap();
    let key = key(1);
    let held = lease(&store, &key).await;
    assert!(
        bounded(store.save(&held, &record(&key, 1), None))
            .await
            .unwrap()
    );
    let slot = cluster.slot(&format!("simacan-auth:{{{}}}", key.fingerprint()));
    let from = cluster.owner(slot);
    let to = (from + 1) % cluster.nodes.len();

    // Mid-migration: the keys have moved, the old node answers ASK.
    cluster.begin_migration(slot, from, to);
    assert_eq!(generation(&store, &key).await, Some(1), "read through ASK");
    assert!(
        bounded(store.renew(&held, LONG)).await.unwrap(),
        "the lease moved along"
    );
    // A look (three commands in a Cluster) follows ASK too.
    let looked = bounded(store.look(&key, LONG, None)).await.unwrap();
    assert!(looked.lease.is_none(), "the lease is held");
    assert_eq!(
        looked.record.map(|r| r.generation()),
        Some(1),
        "a look through ASK"
    );
    assert!(
        bounded(store.save(&held, &record(&key, 2), Some(1)))
            .await
            .unwrap(),
        "compare-and-swap through ASK"
    );

    // Done: every node says the new one serves the slot; the old one
    // answers MOVED, which the store follows and learns from.
    cluster.end_migration(slot, to);
    assert_eq!(
        generation(&store, &key).await,
        Some(2),
        "read through MOVED"
    );
    assert!(
        !bounded(store.save(&held, &record(&key, 3), Some(1)))
            .await
            .unwrap()
    );
    assert!(
        bounded(store.save(&held, &record(&key, 3), Some(2)))
            .await
            .unwrap()
    );
    bounded(store.release(held)).await.unwrap();
    assert!(
        bounded(store.try_lease(&key, LONG))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(cluster.owner(slot), to);
    assert_eq!(
        cluster.cli(
            to,
            &[
                "hget",
                &format!("simacan-auth:{{{}}}", key.fingerprint()),
                "generation"
            ]
        ),
        ["3"]
    );
}

#[tokio::test]
async fn a_sentinel_deployment_keeps_the_contract() {
    let Some(deployment) = RedisSentinels::start() else {
        return;
    };
    let url = deployment.url();
    conformance::check(|| RedisStore::open(&url).unwrap()).await;
}

/// A primary and a replica of it, without sentinels, once the primary
/// lists the replica.
async fn primary_and_replica() -> Option<(RedisServer, RedisServer)> {
    let primary = RedisServer::start()?;
    let args = [
        "--replicaof".to_owned(),
        "127.0.0.1".into(),
        primary.port().to_string(),
    ];
    let replica = RedisServer::start_with(&args, free_port)?;
    let client = redis::Client::open(primary.url()).unwrap();
    let mut raw = bounded(client.get_multiplexed_async_connection())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let role: redis::Role = bounded(redis::cmd("ROLE").query_async(&mut raw))
            .await
            .unwrap();
        if matches!(&role, redis::Role::Primary { replicas, .. } if !replicas.is_empty()) {
            return Some((primary, replica));
        }
        assert!(Instant::now() < deadline, "the replica connects");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A store on `primary` that waits up to `ack` for a replica after each
/// write, and one that reads from `replica`.
fn waiting_for_the_replica(
    primary: &RedisServer,
    replica: &RedisServer,
    ack: Duration,
) -> (RedisStore, RedisStore) {
    let store = RedisStore::open(primary.url())
        .unwrap()
        .replica_ack_timeout(Some(ack));
    (store, RedisStore::open(replica.url()).unwrap())
}

/// `record` (as [`record`] makes it) with its refresh token marked as
/// sent, one generation on.
fn marking(record: &TokenRecord) -> Marking {
    let marked = TokenRecord::new(
        record.key().clone(),
        record.generation() + 1,
        &format!("eyAccess{}", record.generation()),
        None,
        SystemTime::now(),
        record.lifetime(),
    )
    .unwrap();
    Marking::new(record.clone(), marked)
}

#[tokio::test]
async fn a_marking_look_waits_for_a_replica_and_leaves_an_unacknowledged_marking_to_its_holder() {
    let Some((primary, replica)) = primary_and_replica().await else {
        return;
    };
    let ack = Duration::from_millis(300);
    let (store, on_replica) = waiting_for_the_replica(&primary, &replica, ack);
    let key = key(1);
    let held = lease(&store, &key).await;
    let stored = record(&key, 1);
    assert!(bounded(store.save(&held, &stored, None)).await.unwrap());
    bounded(store.release(held)).await.unwrap();

    // The marking is on the replica when the look returns.
    let looked = bounded(store.look(&key, LONG, Some(&marking(&stored))))
        .await
        .unwrap();
    assert!(looked.marked && looked.lease.is_some());
    assert_eq!(generation(&on_replica, &key).await, Some(2));
    bounded(store.release(looked.lease.unwrap())).await.unwrap();

    // No replica acknowledges: written on the primary, but not reported as
    // marked, so that the holder marks (finds it written) and waits again.
    let held = lease(&store, &key).await;
    let stored = record(&key, 3);
    assert!(bounded(store.save(&held, &stored, Some(2))).await.unwrap());
    bounded(store.release(held)).await.unwrap();
    replica.pause();
    let started = Instant::now();
    let looked = bounded(store.look(&key, LONG, Some(&marking(&stored))))
        .await
        .unwrap();
    assert!(started.elapsed() >= ack, "{:?}", started.elapsed());
    assert!(looked.lease.is_some() && !looked.marked);
    assert_eq!(looked.record.map(|r| r.generation()), Some(3), "as found");
    assert_eq!(generation(&store, &key).await, Some(4), "on the primary");
    replica.resume();
}

#[tokio::test]
async fn a_save_returns_once_a_replica_has_it_and_fails_when_none_acknowledges() {
    let Some((primary, replica)) = primary_and_replica().await else {
        return;
    };
    let ack = Duration::from_millis(300);
    let (store, on_replica) = waiting_for_the_replica(&primary, &replica, ack);
    let key = key(1);
    let held = lease(&store, &key).await;
    for generation_saved in 1..=20 {
        let expected = (generation_saved > 1).then(|| generation_saved - 1);
        assert!(
            bounded(store.save(&held, &record(&key, generation_saved), expected))
                .await
                .unwrap()
        );
        // Read from the replica right after the save returned.
        assert_eq!(generation(&on_replica, &key).await, Some(generation_saved));
    }

    // A replica that stops answering acknowledges nothing: the save is on
    // the primary, and fails rather than pass for one a failover keeps.
    replica.pause();
    let started = Instant::now();
    let unacknowledged = record(&key, 21);
    let error = bounded(store.save(&held, &unacknowledged, Some(20)))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(
        format!("{error:?}").contains("no replica acknowledged"),
        "{error:?}"
    );
    assert!(
        ack <= took && took < ack + Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(generation(&store, &key).await, Some(21), "on the primary");

    // Its retry, once a replica is back, counts as the save.
    replica.resume();
    assert!(
        bounded(store.save(&held, &unacknowledged, Some(20)))
            .await
            .unwrap()
    );
    assert_eq!(generation(&on_replica, &key).await, Some(21));

    // Without the wait, a save does not wait for a stopped replica.
    let not_waiting = RedisStore::open(primary.url())
        .unwrap()
        .replica_ack_timeout(None);
    replica.pause();
    let started = Instant::now();
    assert!(
        bounded(not_waiting.save(&held, &record(&key, 22), Some(21)))
            .await
            .unwrap()
    );
    assert!(started.elapsed() < ack, "{:?}", started.elapsed());
    replica.resume();
}

#[tokio::test]
async fn a_save_no_replica_acknowledged_still_learns_the_stored_seal() {
    let Some((primary, replica)) = primary_and_replica().await else {
        return;
    };
    let (writer, _) = waiting_for_the_replica(&primary, &replica, Duration::from_millis(300));
    let key = key(1);
    let held = lease(&writer, &key).await;
    // The first save makes the credential's seal, which the writer keeps.
    assert!(
        bounded(writer.save(&held, &record(&key, 1), None))
            .await
            .unwrap()
    );
    let seal_key = format!("simacan-auth:{{{}}}:seal", key.fingerprint());
    let client = redis::Client::open(primary.url()).unwrap();
    let mut raw = bounded(client.get_multiplexed_async_connection())
        .await
        .unwrap();
    let () = bounded(
        redis::cmd("SET")
            .arg(&seal_key)
            .arg([7u8; 32].as_slice())
            .query_async(&mut raw),
    )
    .await
    .unwrap();

    // The next save finds another seal and answers with it, but no replica
    // acknowledges the write: the save fails, and the writer learns the
    // seal all the same.
    replica.pause();
    let error = bounded(writer.save(&held, &record(&key, 2), Some(1)))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(
        format!("{error:?}").contains("no replica acknowledged"),
        "{error:?}"
    );
    replica.resume();

    // So the save after it is announced sealed, not by its key. (A
    // replica just resumed on a busy machine may be late to acknowledge
    // it: the announcement goes out before the wait all the same.)
    let mut messages = tap(&primary.url()).await;
    match bounded(writer.save(&held, &record(&key, 3), Some(2))).await {
        Ok(written) => assert!(written),
        Err(error) => assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}"),
    }
    let message = bounded(tokio_stream::StreamExt::next(&mut messages))
        .await
        .expect("the save is announced");
    assert!(
        message
            .get_payload_bytes()
            .starts_with(b"simacan-auth sealed record"),
        "announced by key: the writer did not learn the stored seal"
    );
}

#[tokio::test]
async fn a_primary_without_replicas_saves_without_waiting() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(server.url())
        .unwrap()
        .replica_ack_timeout(Some(Duration::from_secs(5)));
    let key = key(1);
    let held = lease(&store, &key).await;
    let started = Instant::now();
    for generation_saved in 1..=5 {
        let expected = (generation_saved > 1).then(|| generation_saved - 1);
        assert!(
            bounded(store.save(&held, &record(&key, generation_saved), expected))
                .await
                .unwrap()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
