//! Replicas sharing a token store: several layers, each with its own
//! in-memory token state (as separate processes have), on one store, with
//! real hyper clients against the mock Auth API over loopback.
//!
//! Every scenario runs against each store kind.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use simacan_auth::{
    Error, SimacanAuthLayer,
    mock::{Fault, MockAuthApi, Route},
    store::TokenStore,
};
use support::*;

/// `n` replicas on stores made by `store`.
fn fleet<S: TokenStore>(mock: &MockAuthApi, n: usize, store: impl Fn() -> S) -> Vec<Authed> {
    fleet_of(n, |_| layer_for(mock).token_store(store()))
}

fn fleet_of(n: usize, layer: impl Fn(usize) -> SimacanAuthLayer) -> Vec<Authed> {
    (0..n).map(|i| client_through(&layer(i))).collect()
}

/// Every replica sends `each` requests at once; all must be answered 200.
async fn traffic(replicas: &[Authed], url: &str, each: usize) {
    let calls: Vec<_> = replicas
        .iter()
        .map(|svc| {
            let svc = svc.clone();
            let url = url.to_owned();
            tokio::spawn(async move { burst(&svc, &url, each).await })
        })
        .collect();
    for call in calls {
        let statuses = bounded(call).await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
    }
}

async fn a_restarted_process_uses_the_stored_token<S: TokenStore>(store: impl Fn() -> S) {
    let mock = mock().await;
    let first = client_through(&layer_for(&mock).token_store(store()));
    assert_eq!(
        get_status(&first, &mock.url("/trips")).await,
        StatusCode::OK
    );
    drop(first);
    let restarted = client_through(&layer_for(&mock).token_store(store()));
    assert_eq!(
        get_status(&restarted, &mock.url("/trips")).await,
        StatusCode::OK
    );
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "the restarted process logged in again");
    assert_eq!(counts.refresh, 0);
}

async fn a_cold_fleet_logs_in_once<S: TokenStore>(store: impl Fn() -> S) {
    let mock = mock().await;
    let replicas = fleet(&mock, 8, store);
    traffic(&replicas, &mock.url("/trips"), 5).await;
    let counts = mock.counts();
    assert_eq!(counts.password, 1, "one login for the whole fleet");
    assert_eq!(counts.refresh, 0);
    assert_eq!(counts.target, 40);
}

async fn early_expiry_costs_the_fleet_one_refresh_per_revocation<S: TokenStore>(
    store: impl Fn() -> S,
) {
    let mock = mock().await;
    let replicas = fleet(&mock, 8, store);
    traffic(&replicas, &mock.url("/trips"), 1).await;
    for revocation in 1..=3 {
        mock.revoke_access_tokens();
        traffic(&replicas, &mock.url("/trips"), 4).await;
        let counts = mock.counts();
        assert_eq!(counts.refresh, revocation, "one refresh per revocation");
        assert_eq!(
            counts.refresh_rejected, 0,
            "no refresh token was sent twice"
        );
    }
    assert_eq!(mock.counts().password, 1);
}

/// A replica that takes a newer token from the store to heal a 401 may find
/// it revoked as well (the revocation came after another replica stored it):
/// that refusal is an early expiry, healed with one refresh, not a resource
/// refusing every token (which would pass 401s through for the cooldown).
async fn a_stored_token_revoked_too_is_refreshed_not_cooled_down<S: TokenStore>(
    store: impl Fn() -> S,
) {
    let mock = mock().await;
    let layers = [
        layer_for(&mock).token_store(store()),
        layer_for(&mock).token_store(store()),
    ];
    let [a, b] = layers.each_ref().map(client_through);
    for svc in [&a, &b] {
        assert_eq!(get_status(svc, &mock.url("/trips")).await, StatusCode::OK);
    }
    // `a` renews the token; `b` still holds the first one.
    layers[0].invalidate();
    assert_eq!(get_status(&a, &mock.url("/trips")).await, StatusCode::OK);
    assert_eq!(mock.counts().refresh, 1);
    mock.revoke_access_tokens();
    for _ in 0..3 {
        assert_eq!(get_status(&b, &mock.url("/trips")).await, StatusCode::OK);
    }
    assert_eq!(get_status(&a, &mock.url("/trips")).await, StatusCode::OK);
    let counts = mock.counts();
    assert_eq!(counts.refresh, 2, "one refresh for the revocation");
    assert_eq!(counts.refresh_rejected, 0);
    assert_eq!(counts.password, 1);
    let stats = layers[1].stats();
    assert_eq!(stats.unauthorized_passed_through, 0, "{stats:?}");
}

/// A resource that refuses every token: replicas that meet it together
/// share one refresh; a replica that meets it later refreshes once (the
/// stored token predates its 401 and may have been revoked with it) and then
/// cools down. Never more than one refresh per replica per cooldown, and
/// never a password login.
async fn a_resource_that_refuses_every_token_costs_a_replica_one_refresh<S: TokenStore>(
    store: impl Fn() -> S,
) {
    let mock = mock().await;
    let replicas = fleet(&mock, 4, store);
    traffic(&replicas, &mock.url("/trips"), 1).await;
    mock.set_target_rejects_every_token(true);
    let together: Vec<_> = replicas[..2]
        .iter()
        .map(|svc| {
            let svc = svc.clone();
            let url = mock.url("/trips");
            tokio::spawn(async move { get_status(&svc, &url).await })
        })
        .collect();
    for call in together {
        assert_eq!(bounded(call).await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    let after_together = mock.counts().refresh;
    assert!(
        after_together <= 2,
        "{after_together} refreshes for two replicas at once"
    );
    // The other two, one after the other.
    for (i, svc) in replicas[2..].iter().enumerate() {
        assert_eq!(
            get_status(svc, &mock.url("/trips")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(mock.counts().refresh, after_together + i + 1);
    }
    // Within the cooldown, no replica refreshes again.
    let met = mock.counts().refresh;
    for _ in 0..3 {
        for svc in &replicas {
            let status = get_status(svc, &mock.url("/trips")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    let counts = mock.counts();
    assert_eq!(counts.refresh, met, "a refresh inside a cooldown");
    assert_eq!(counts.password, 1);
    assert_eq!(counts.refresh_rejected, 0);
}

async fn the_fleet_refreshes_ahead_of_expiry_once_per_token<S: TokenStore>(store: impl Fn() -> S) {
    let mock = mock().await;
    mock.set_token_lifetime(Duration::from_secs(2));
    let replicas = fleet_of(4, |_| {
        layer_for(&mock)
            .refresh_before_expiry(Duration::from_secs(1))
            .token_store(store())
    });
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(4500) {
        for svc in &replicas {
            let sent = Instant::now();
            assert_eq!(get_status(svc, &mock.url("/trips")).await, StatusCode::OK);
            slowest = slowest.max(sent.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = mock.counts();
    // A token lives 2 s and is renewed about 1 s before it expires: about
    // four renewals in 4.5 s for the whole fleet, not four per replica.
    assert!(
        (3..=6).contains(&counts.refresh),
        "{} refreshes for 4 replicas",
        counts.refresh
    );
    assert_eq!(counts.password, 1);
    assert_eq!(counts.refresh_rejected, 0);
    assert_eq!(
        counts.target_unauthorized, 0,
        "a request met an expired token"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "a request waited {slowest:?}"
    );
}

async fn a_rotation_whose_answer_was_lost_costs_the_fleet_one_password_login<S: TokenStore>(
    store: impl Fn() -> S,
) {
    let mock = mock().await;
    let replicas = fleet_of(4, |_| {
        layer_for(&mock)
            .backoff(Duration::from_millis(200), Duration::from_millis(200))
            .token_store(store())
    });
    traffic(&replicas, &mock.url("/trips"), 1).await;
    // The lease holder's refresh is committed by the Auth API, and its
    // answer lost: the stored refresh token is spent.
    mock.fail_next(Route::Refresh, Fault::CommitThenClose);
    mock.revoke_access_tokens();
    let calls: Vec<_> = replicas
        .iter()
        .map(|svc| {
            let (svc, url) = (svc.clone(), mock.url("/trips"));
            tokio::spawn(async move { get(&svc, &url).await.map(|r| r.status()) })
        })
        .collect();
    // The fleet behaves as one client: the requests that waited on the
    // failed refresh fail fast with its backoff (as requests sharing one
    // flight in a process do) instead of each repeating the call.
    for call in calls {
        if let Err(error) = bounded(call).await.unwrap() {
            let error = error
                .downcast_ref::<Error>()
                .expect("a typed error from the layer");
            assert!(error.is_transient(), "{error}");
            assert!(error.next_attempt_in().is_some(), "{error}");
        }
    }
    // The refresh token whose answer was lost may have been rotated: it is
    // never sent again; after the backoff one replica logs in with the
    // password, once for the whole fleet.
    tokio::time::sleep(Duration::from_millis(250)).await;
    traffic(&replicas, &mock.url("/trips"), 3).await;
    let counts = mock.counts();
    assert_eq!(counts.password, 2, "one login for the whole fleet");
    assert_eq!(counts.refresh, 1, "the lost one only");
    assert_eq!(counts.refresh_reused, 0);
}

/// A lease holder killed mid-refresh (its runtime dropped, as a process
/// dies) leaves its short lease to expire; another replica takes over
/// within seconds. The dead holder had marked its refresh token as sent, so
/// the survivor logs in with the password, once, rather than send a token
/// the Auth API may have rotated.
async fn a_lease_holder_killed_mid_refresh_costs_one_login_and_no_spent_token<S: TokenStore>(
    store: impl Fn() -> S,
) {
    let mock = mock().await;
    let layer = |store: S| layer_for(&mock).token_store(store);
    let survivor = client_through(&layer(store()));
    assert_eq!(
        get_status(&survivor, &mock.url("/trips")).await,
        StatusCode::OK
    );
    mock.revoke_access_tokens();
    mock.set_delay(Route::Refresh, Duration::from_secs(30));
    // The doomed replica, on a runtime of its own.
    let doomed = client_through(&layer(store()));
    let url = mock.url("/trips");
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    let process = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            tokio::select! {
                _ = get(&doomed, &url) => panic!("the refresh was held"),
                _ = killed => {}
            }
        });
        drop(runtime);
    });
    while mock.counts().refresh == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill.send(()).unwrap();
    process.join().unwrap();
    mock.set_delay(Route::Refresh, Duration::ZERO);
    let started = Instant::now();
    assert_eq!(
        get_status(&survivor, &mock.url("/trips")).await,
        StatusCode::OK
    );
    let counts = mock.counts();
    assert_eq!(counts.password, 2, "one login after the dead holder");
    assert_eq!(
        counts.refresh, 1,
        "the marked refresh token was not sent again"
    );
    assert_eq!((counts.refresh_rejected, counts.refresh_reused), (0, 0));
    // The lease lives 2.5 s without its holder's renewals.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

mod memory {
    use simacan_auth::store::MemoryStore;

    fn shared() -> impl Fn() -> MemoryStore {
        let store = MemoryStore::new();
        move || store.clone()
    }

    #[tokio::test]
    async fn a_restarted_process_uses_the_stored_token() {
        super::a_restarted_process_uses_the_stored_token(shared()).await;
    }

    #[tokio::test]
    async fn a_cold_fleet_logs_in_once() {
        super::a_cold_fleet_logs_in_once(shared()).await;
    }

    #[tokio::test]
    async fn early_expiry_costs_the_fleet_one_refresh_per_revocation() {
        super::early_expiry_costs_the_fleet_one_refresh_per_revocation(shared()).await;
    }

    #[tokio::test]
    async fn the_fleet_refreshes_ahead_of_expiry_once_per_token() {
        super::the_fleet_refreshes_ahead_of_expiry_once_per_token(shared()).await;
    }

    #[tokio::test]
    async fn a_rotation_whose_answer_was_lost_costs_the_fleet_one_password_login() {
        super::a_rotation_whose_answer_was_lost_costs_the_fleet_one_password_login(shared()).await;
    }

    #[tokio::test]
    async fn a_stored_token_revoked_too_is_refreshed_not_cooled_down() {
        super::a_stored_token_revoked_too_is_refreshed_not_cooled_down(shared()).await;
    }

    #[tokio::test]
    async fn a_resource_that_refuses_every_token_costs_a_replica_one_refresh() {
        super::a_resource_that_refuses_every_token_costs_a_replica_one_refresh(shared()).await;
    }

    /// A holder that died with the lease stalls the others for its short
    /// time to live, and a process that waits on it past a second says so
    /// once, at `warn`, naming the store and the key's fingerprint only.
    #[tokio::test]
    async fn a_wait_behind_a_dead_holder_is_bounded_and_said_once() {
        use std::time::{Duration, Instant};

        use http::StatusCode;
        use simacan_auth::store::{StoreKey, TokenStore};

        use super::{capture_logs, client_through, get_status, layer_for, mock};

        let (logs, _guard) = capture_logs();
        let mock = mock().await;
        let store = MemoryStore::new();
        let key = StoreKey::new(mock.base_url(), mock.credentials().username());
        let dead = store
            .try_lease(&key, Duration::from_millis(2_500))
            .await
            .unwrap()
            .expect("the lease is free");
        std::mem::forget(dead);
        let replica = client_through(&layer_for(&mock).token_store(store));
        let started = Instant::now();
        assert_eq!(
            get_status(&replica, &mock.url("/trips")).await,
            StatusCode::OK
        );
        let stalled = started.elapsed();
        assert!(stalled < Duration::from_secs(3), "{stalled:?}");
        let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        let warnings: Vec<_> = logs
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("waiting for another process"))
            .collect();
        assert_eq!(warnings.len(), 1, "{logs}");
        assert!(warnings[0].contains(key.fingerprint()), "{}", warnings[0]);
        assert!(warnings[0].contains("MemoryStore"), "{}", warnings[0]);
        assert!(!logs.contains(simacan_auth::mock::PASSWORD), "{logs}");
        assert!(!logs.contains("Bearer"), "no token in the logs: {logs}");
    }
}

mod file {
    use std::os::unix::fs::PermissionsExt;

    use simacan_auth::store::{FileStore, StoreErrorKind, StoreKey};

    use super::*;

    /// A store per replica, as separate processes open the same directory.
    fn in_dir(dir: &tempfile::TempDir) -> impl Fn() -> FileStore + '_ {
        move || FileStore::new(dir.path())
    }

    #[tokio::test]
    async fn a_restarted_process_uses_the_stored_token() {
        let dir = tempfile::tempdir().unwrap();
        super::a_restarted_process_uses_the_stored_token(in_dir(&dir)).await;
    }

    #[tokio::test]
    async fn a_cold_fleet_logs_in_once() {
        let dir = tempfile::tempdir().unwrap();
        super::a_cold_fleet_logs_in_once(in_dir(&dir)).await;
    }

    #[tokio::test]
    async fn early_expiry_costs_the_fleet_one_refresh_per_revocation() {
        let dir = tempfile::tempdir().unwrap();
        super::early_expiry_costs_the_fleet_one_refresh_per_revocation(in_dir(&dir)).await;
    }

    #[tokio::test]
    async fn the_fleet_refreshes_ahead_of_expiry_once_per_token() {
        let dir = tempfile::tempdir().unwrap();
        super::the_fleet_refreshes_ahead_of_expiry_once_per_token(in_dir(&dir)).await;
    }

    #[tokio::test]
    async fn a_rotation_whose_answer_was_lost_costs_the_fleet_one_password_login() {
        let dir = tempfile::tempdir().unwrap();
        super::a_rotation_whose_answer_was_lost_costs_the_fleet_one_password_login(in_dir(&dir))
            .await;
    }

    #[tokio::test]
    async fn a_lease_holder_killed_mid_refresh_costs_one_login_and_no_spent_token() {
        let dir = tempfile::tempdir().unwrap();
        super::a_lease_holder_killed_mid_refresh_costs_one_login_and_no_spent_token(in_dir(&dir))
            .await;
    }

    #[tokio::test]
    async fn a_stored_token_revoked_too_is_refreshed_not_cooled_down() {
        let dir = tempfile::tempdir().unwrap();
        super::a_stored_token_revoked_too_is_refreshed_not_cooled_down(in_dir(&dir)).await;
    }

    #[tokio::test]
    async fn a_resource_that_refuses_every_token_costs_a_replica_one_refresh() {
        let dir = tempfile::tempdir().unwrap();
        super::a_resource_that_refuses_every_token_costs_a_replica_one_refresh(in_dir(&dir)).await;
    }

    /// Not a test: the body of a child process started by
    /// `processes_run_in_a_row_log_in_once`, which names the Auth API, the
    /// store directory and the target in `FLEET_CHILD`. Returns at once
    /// otherwise.
    #[test]
    fn child_process_entry() {
        let Ok(spec) = std::env::var("FLEET_CHILD") else {
            return;
        };
        let [base_url, dir, target] = spec.splitn(3, '|').collect::<Vec<_>>()[..] else {
            panic!("FLEET_CHILD is auth-url|store-dir|target-url");
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let layer = SimacanAuthLayer::new(simacan_auth::Credentials::new(
                simacan_auth::mock::USERNAME,
                simacan_auth::mock::PASSWORD,
            ))
            .environment(simacan_auth::Environment::custom(base_url).unwrap())
            .token_store(FileStore::new(dir));
            assert_eq!(
                get_status(&client_through(&layer), target).await,
                StatusCode::OK
            );
        });
    }

    #[tokio::test]
    async fn processes_run_in_a_row_log_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let mock = mock().await;
        let spec = format!(
            "{}|{}|{}",
            mock.base_url(),
            dir.path().display(),
            mock.url("/trips")
        );
        for run in 1..=3 {
            let status = tokio::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "file::child_process_entry", "--test-threads=1"])
                .env("FLEET_CHILD", &spec)
                .stdout(std::process::Stdio::null())
                .status();
            let status = bounded(status).await.unwrap();
            assert!(status.success(), "run {run} failed: {status}");
            assert_eq!(mock.counts().target, run, "run {run} made its request");
        }
        let counts = mock.counts();
        assert_eq!(counts.password, 1, "three processes, one login");
        assert_eq!(counts.refresh, 0);
    }

    fn key_of(mock: &MockAuthApi) -> StoreKey {
        StoreKey::new(mock.base_url(), mock.credentials().username())
    }

    #[tokio::test]
    async fn a_corrupt_token_file_is_moved_aside_and_replaced_after_one_login() {
        let dir = tempfile::tempdir().unwrap();
        let mock = mock().await;
        let store = FileStore::new(dir.path());
        let path = store.token_path(&key_of(&mock));
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(&path, b"{\"schema\":1,\"truncat").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let svc = client_through(&layer_for(&mock).token_store(store.clone()));
        assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
        assert_eq!(mock.counts().password, 1);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "the corrupt file was moved aside");
        // The new file is good: a restarted process uses it.
        let restarted = client_through(&layer_for(&mock).token_store(FileStore::new(dir.path())));
        assert_eq!(
            get_status(&restarted, &mock.url("/trips")).await,
            StatusCode::OK
        );
        assert_eq!(mock.counts().password, 1);
    }

    #[tokio::test]
    async fn a_token_file_others_can_read_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mock = mock().await;
        let store = FileStore::new(dir.path());
        let first = client_through(&layer_for(&mock).token_store(store.clone()));
        assert_eq!(
            get_status(&first, &mock.url("/trips")).await,
            StatusCode::OK
        );
        let path = store.token_path(&key_of(&mock));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let next = client_through(&layer_for(&mock).token_store(FileStore::new(dir.path())));
        let error = get(&next, &mock.url("/trips")).await.unwrap_err();
        let Some(store_error) = auth_error(&error).store_error() else {
            panic!("expected a store error, got {error}");
        };
        assert_eq!(store_error.kind(), StoreErrorKind::Insecure);
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("chmod 600"),
            "{message}"
        );
        assert_eq!(mock.counts().password, 1, "no login over an insecure file");
    }
}

#[cfg(feature = "redis")]
mod redis {
    use simacan_auth::store::RedisStore;

    use super::*;
    use crate::support::redis::RedisServer;

    fn on(server: &RedisServer) -> impl Fn() -> RedisStore + use<> {
        let url = server.url();
        move || RedisStore::open(&url).unwrap()
    }

    #[tokio::test]
    async fn a_restarted_process_uses_the_stored_token() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        super::a_restarted_process_uses_the_stored_token(on(&server)).await;
    }

    #[tokio::test]
    async fn a_cold_fleet_logs_in_once() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        super::a_cold_fleet_logs_in_once(on(&server)).await;
    }

    #[tokio::test]
    async fn a_stored_token_revoked_too_is_refreshed_not_cooled_down() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        super::a_stored_token_revoked_too_is_refreshed_not_cooled_down(on(&server)).await;
    }

    #[tokio::test]
    async fn a_resource_that_refuses_every_token_costs_a_replica_one_refresh() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        super::a_resource_that_refuses_every_token_costs_a_replica_one_refresh(on(&server)).await;
    }

    #[tokio::test]
    async fn early_expiry_costs_the_fleet_one_refresh_per_revocation() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        super::early_expiry_costs_the_fleet_one_refresh_per_revocation(on(&server)).await;
    }

    #[tokio::test]
    async fn the_fleet_refreshes_ahead_of_expiry_once_per_token() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        super::the_fleet_refreshes_ahead_of_expiry_once_per_token(on(&server)).await;
    }

    #[tokio::test]
    async fn a_rotation_whose_answer_was_lost_costs_the_fleet_one_password_login() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        super::a_rotation_whose_answer_was_lost_costs_the_fleet_one_password_login(on(&server))
            .await;
    }

    #[tokio::test]
    async fn a_lease_holder_killed_mid_refresh_costs_one_login_and_no_spent_token() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        super::a_lease_holder_killed_mid_refresh_costs_one_login_and_no_spent_token(on(&server))
            .await;
    }

    /// The subscription that wakes waiters is killed before every storm
    /// (`CLIENT KILL TYPE pubsub`): until it is back the waiters poll, and
    /// every storm heals with one refresh, no request failed.
    #[tokio::test]
    async fn a_lost_subscription_falls_back_to_polling() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let mock = mock().await;
        let replicas = fleet(&mock, 4, on(&server));
        traffic(&replicas, &mock.url("/trips"), 1).await;
        let client = ::redis::Client::open(server.url()).unwrap();
        let mut raw = bounded(client.get_multiplexed_async_connection())
            .await
            .unwrap();
        for revocation in 1..=3 {
            // Subscribed (again, after the last kill) first.
            let started = Instant::now();
            loop {
                let (_, subscribers): (String, i64) = bounded(
                    ::redis::cmd("PUBSUB")
                        .arg("NUMSUB")
                        .arg("simacan-auth:changes")
                        .query_async(&mut raw),
                )
                .await
                .unwrap();
                if subscribers > 0 {
                    break;
                }
                assert!(started.elapsed() < PATIENCE, "no replica subscribed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let killed: i64 = bounded(
                ::redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query_async(&mut raw),
            )
            .await
            .unwrap();
            assert!(killed >= 1, "the fleet's subscription was there");
            mock.revoke_access_tokens();
            traffic(&replicas, &mock.url("/trips"), 4).await;
            let counts = mock.counts();
            assert_eq!(counts.refresh, revocation, "one refresh per revocation");
            assert_eq!((counts.refresh_rejected, counts.refresh_reused), (0, 0));
        }
        assert_eq!(mock.counts().password, 1);
    }

    #[tokio::test]
    async fn redis_down_mid_traffic_fails_no_request_while_tokens_are_valid() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        let mock = mock().await;
        let replicas = fleet(&mock, 4, on(&server));
        traffic(&replicas, &mock.url("/trips"), 3).await;
        server.stop();
        for _ in 0..3 {
            traffic(&replicas, &mock.url("/trips"), 3).await;
        }
        // Redis comes back empty (no persistence): it vouches for no
        // refresh token now, so the fleet converges on it at the next need
        // with one password login, never a refresh token another replica
        // may have rotated.
        server.restart();
        mock.revoke_access_tokens();
        traffic(&replicas, &mock.url("/trips"), 3).await;
        let newcomer = client_through(&layer_for(&mock).token_store(on(&server)()));
        assert_eq!(
            get_status(&newcomer, &mock.url("/trips")).await,
            StatusCode::OK
        );
        let counts = mock.counts();
        assert_eq!(counts.password, 2);
        assert_eq!(counts.refresh, 0);
        assert_eq!((counts.refresh_rejected, counts.refresh_reused), (0, 0));
    }
}

#[cfg(feature = "redis")]
mod cluster {
    use simacan_auth::store::RedisStore;

    use crate::support::redis_topology::RedisCluster;

    #[tokio::test]
    async fn a_cold_fleet_logs_in_once() {
        let Some(cluster) = RedisCluster::start() else {
            return;
        };
        let url = cluster.url();
        super::a_cold_fleet_logs_in_once(|| RedisStore::open(&url).unwrap()).await;
    }

    #[tokio::test]
    async fn early_expiry_costs_the_fleet_one_refresh_per_revocation() {
        let Some(cluster) = RedisCluster::start() else {
            return;
        };
        let url = cluster.url();
        super::early_expiry_costs_the_fleet_one_refresh_per_revocation(|| {
            RedisStore::open(&url).unwrap()
        })
        .await;
    }
}

#[cfg(feature = "redis")]
mod sentinel {
    use simacan_auth::store::RedisStore;

    use super::*;
    use crate::support::redis_topology::RedisSentinels;

    /// How long Sentinel may take to promote the replica (it waits 500 ms
    /// before it deems the primary down, then elects a leader).
    const FAILOVER: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn early_expiry_costs_the_fleet_one_refresh_per_revocation() {
        let Some(deployment) = RedisSentinels::start() else {
            return;
        };
        let url = deployment.url();
        super::early_expiry_costs_the_fleet_one_refresh_per_revocation(|| {
            RedisStore::open(&url).unwrap()
        })
        .await;
    }

    /// The primary SIGKILLed right after it saved a rotated refresh token:
    /// the save waited for the replica, so the replica Sentinel promotes
    /// holds the new refresh token, and the fleet refreshes with it once
    /// the store follows the failover (no restart): no password login, no
    /// refresh token sent twice.
    #[tokio::test]
    async fn a_failover_right_after_a_rotation_costs_no_login_and_no_refresh_token_twice() {
        let Some(mut deployment) = RedisSentinels::start() else {
            return;
        };
        let mock = mock().await;
        let url = deployment.url();
        let replicas = fleet(&mock, 4, || RedisStore::open(&url).unwrap());
        let trips = mock.url("/trips");
        traffic(&replicas, &trips, 2).await;
        mock.revoke_access_tokens();
        traffic(&replicas, &trips, 2).await;
        assert_eq!(mock.counts().refresh, 1, "the rotation");

        let old_primary = deployment.primary.port();
        deployment.primary.stop();
        let killed = Instant::now();
        mock.revoke_access_tokens();
        // Until a replica is promoted, requests that need a token meet an
        // unavailable store; then every replica heals through the new
        // primary.
        loop {
            let calls: Vec<_> = replicas
                .iter()
                .map(|svc| {
                    let (svc, url) = (svc.clone(), trips.clone());
                    tokio::spawn(async move { get(&svc, &url).await.map(|r| r.status()) })
                })
                .collect();
            let mut healed = true;
            for call in calls {
                healed &= matches!(bounded(call).await.unwrap(), Ok(StatusCode::OK));
            }
            if healed {
                break;
            }
            assert!(
                killed.elapsed() < FAILOVER,
                "the fleet did not follow the failover within {FAILOVER:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_ne!(deployment.primary_port(), Some(old_primary), "failed over");
        assert_eq!(
            deployment.primary_port(),
            Some(deployment.replica.port()),
            "the replica was promoted"
        );
        let counts = mock.counts();
        assert_eq!(counts.password, 1, "no login after the failover");
        assert_eq!(counts.refresh, 2, "one refresh for the revocation");
        assert_eq!((counts.refresh_rejected, counts.refresh_reused), (0, 0));
    }

    /// The replica stops acknowledging: the refresh token is marked as
    /// sent on the primary only, so it is not sent (a failover then would
    /// bring it back); requests that need a token fail as unavailable until
    /// a replica has the marking, and then the fleet goes on, no refresh
    /// token sent twice.
    #[tokio::test]
    async fn a_refresh_token_whose_marking_no_replica_acknowledged_is_not_sent() {
        let Some(deployment) = RedisSentinels::start() else {
            return;
        };
        let mock = mock().await;
        let url = deployment.url();
        let replicas = fleet(&mock, 2, || RedisStore::open(&url).unwrap());
        let trips = mock.url("/trips");
        traffic(&replicas, &trips, 2).await;
        assert_eq!(mock.counts().password, 1);

        deployment.replica.pause();
        mock.revoke_access_tokens();
        let refused = bounded(get(&replicas[0], &trips)).await;
        let error = refused.expect_err("no token without an acknowledged marking");
        assert!(
            format!("{error:?}").contains("no replica acknowledged"),
            "{error:?}"
        );
        assert_eq!(mock.counts().refresh, 0, "the refresh token was not sent");

        // Once the replica is back (and the store's retry schedule has run
        // its course), every replica heals.
        deployment.replica.resume();
        let resumed = Instant::now();
        loop {
            let mut healed = true;
            for replica in &replicas {
                let status = bounded(get(replica, &trips)).await.map(|r| r.status());
                healed &= matches!(status, Ok(StatusCode::OK));
            }
            if healed {
                break;
            }
            assert!(
                resumed.elapsed() < Duration::from_secs(10),
                "the fleet did not heal once the replica was back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let counts = mock.counts();
        assert_eq!((counts.refresh_rejected, counts.refresh_reused), (0, 0));
    }
}
