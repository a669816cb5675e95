//! Replicas sharing a token store: several layers, each with its own
//! in-memory token state (as separate processes have), on one store, with
//! real hyper clients against the mock Auth API over loopback.
//!
//! Every scenario runs against each store kind.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use simacan_auth::{mock::MockAuthApi, store::TokenStore, SimacanAuthLayer};
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
}
