//! The feature `metrics`: the layer's events through the `metrics` facade,
//! caught by a small recorder installed for this thread only, over real HTTP
//! against the mock Simacan Auth API on a current-thread runtime (so that
//! the spawned logins and refreshes run on the recorder's thread).
#![cfg(feature = "metrics")]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use http::StatusCode;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use simacan_auth::ErrorKind;
use simacan_auth::{
    Credentials, SimacanAuthLayer,
    store::{BoxFuture, Lease, MemoryStore, StoreError, StoreKey, TokenRecord, TokenStore},
};
use support::*;

/// Every metric the crate emits, as documented.
const COUNTERS: [&str; 11] = [
    "simacan_auth_logins_total",
    "simacan_auth_refreshes_total",
    "simacan_auth_password_fallbacks_total",
    "simacan_auth_tokens_adopted_total",
    "simacan_auth_failures_total",
    "simacan_auth_unauthorized_total",
    "simacan_auth_unauthorized_healed_total",
    "simacan_auth_unauthorized_passed_through_total",
    "simacan_auth_unauthorized_errors_total",
    "simacan_auth_lease_waits_total",
    "simacan_auth_lease_waits_long_total",
];
const GAUGES: [&str; 4] = [
    "simacan_auth_consecutive_failures",
    "simacan_auth_backoff_until_timestamp_seconds",
    "simacan_auth_token_obtained_timestamp_seconds",
    "simacan_auth_token_expiry_timestamp_seconds",
];

/// A metric's name and its labels, `key=value`, sorted.
type Id = (String, Vec<String>);

/// Keeps every counter and gauge (an `f64` in an `AtomicU64`, as the facade
/// stores it) and every description.
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<Id, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<Id, Arc<AtomicU64>>>,
    described: Mutex<BTreeMap<String, Option<Unit>>>,
}

fn id(key: &Key) -> Id {
    let mut labels: Vec<_> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

impl Recorder for Recorded {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {
        panic!("the crate emits no histogram");
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(Arc::clone(counters.entry(id(key)).or_default()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(Arc::clone(gauges.entry(id(key)).or_default()))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        panic!("the crate emits no histogram");
    }
}

impl Recorded {
    /// A counter's value; 0 when it was never incremented.
    fn counter(&self, name: &str, labels: &[&str]) -> u64 {
        let id = (
            name.to_owned(),
            labels.iter().map(|l| l.to_string()).collect(),
        );
        let counters = self.counters.lock().unwrap();
        counters.get(&id).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str) -> f64 {
        let gauges = self.gauges.lock().unwrap();
        let gauge = gauges
            .get(&(name.to_owned(), Vec::new()))
            .unwrap_or_else(|| panic!("{name} was never set"));
        f64::from_bits(gauge.load(Ordering::Relaxed))
    }

    fn names(&self) -> BTreeSet<String> {
        let counters = self.counters.lock().unwrap();
        let gauges = self.gauges.lock().unwrap();
        counters
            .keys()
            .chain(gauges.keys())
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn label_keys(&self) -> BTreeSet<String> {
        let counters = self.counters.lock().unwrap();
        let gauges = self.gauges.lock().unwrap();
        counters
            .keys()
            .chain(gauges.keys())
            .flat_map(|(_, labels)| labels.iter())
            .map(|label| label.split('=').next().unwrap().to_owned())
            .collect()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `test` on a current-thread runtime with `recorder` as this thread's
/// recorder: no other test in the process sees it.
fn with_recorder(recorder: &Recorded, test: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || runtime.block_on(test));
}

#[test]
fn logins_refreshes_fallbacks_and_healed_401s_are_counted() {
    let recorded = Recorded::default();
    with_recorder(&recorded, async {
        let mock = mock().await;
        mock.set_token_lifetime(Duration::from_secs(600));
        let layer = layer_for(&mock);
        let svc = client_through(&layer);
        let url = mock.url("/trips");
        assert!(
            burst(&svc, &url, 10)
                .await
                .iter()
                .all(|s| *s == StatusCode::OK)
        );
        let logged_in = unix_now();
        mock.revoke_access_tokens();
        assert!(
            burst(&svc, &url, 5)
                .await
                .iter()
                .all(|s| *s == StatusCode::OK)
        );
        mock.revoke_access_tokens();
        mock.expire_refresh_tokens();
        assert!(
            burst(&svc, &url, 3)
                .await
                .iter()
                .all(|s| *s == StatusCode::OK)
        );

        let counter = |name| recorded.counter(name, &[]);
        assert_eq!(counter("simacan_auth_logins_total"), 1);
        assert_eq!(counter("simacan_auth_refreshes_total"), 1);
        assert_eq!(counter("simacan_auth_password_fallbacks_total"), 1);
        assert_eq!(counter("simacan_auth_unauthorized_total"), 8);
        assert_eq!(counter("simacan_auth_unauthorized_healed_total"), 8);
        // The metrics and the snapshot count the same events.
        let stats = layer.stats();
        assert_eq!(
            (stats.logins, stats.refreshes, stats.password_fallbacks),
            (1, 1, 1)
        );
        assert_eq!(stats.unauthorized_healed, 8);

        let obtained = recorded.gauge("simacan_auth_token_obtained_timestamp_seconds");
        let expiry = recorded.gauge("simacan_auth_token_expiry_timestamp_seconds");
        assert!(obtained >= logged_in - 1.0 && obtained <= unix_now() + 1.0);
        assert!(
            (expiry - obtained - 600.0).abs() < 1.0,
            "{expiry} vs {obtained}"
        );
        assert_eq!(recorded.gauge("simacan_auth_consecutive_failures"), 0.0);
        assert_eq!(
            recorded.gauge("simacan_auth_backoff_until_timestamp_seconds"),
            0.0
        );
    });
}

#[test]
fn failures_carry_their_kind_and_the_backoff_its_end() {
    let recorded = Recorded::default();
    with_recorder(&recorded, async {
        let mock = mock().await;
        let layer = SimacanAuthLayer::new(Credentials::new("planner@example.com", "wrong"))
            .environment(mock.environment())
            .backoff(Duration::from_secs(1), Duration::from_secs(120));
        let svc = client_through(&layer);
        for _ in 0..3 {
            assert!(get(&svc, &mock.url("/trips")).await.is_err());
        }
        let failures = "simacan_auth_failures_total";
        assert_eq!(recorded.counter(failures, &["kind=invalid_credentials"]), 1);
        assert_eq!(recorded.counter(failures, &["kind=unreachable"]), 0);
        assert_eq!(recorded.gauge("simacan_auth_consecutive_failures"), 1.0);
        let until = recorded.gauge("simacan_auth_backoff_until_timestamp_seconds");
        let left = until - unix_now();
        assert!(left > 110.0 && left <= 121.0, "{left}");
        assert_eq!(recorded.counter("simacan_auth_logins_total", &[]), 0);
    });
}

#[test]
fn refusals_passed_through_carry_their_reason() {
    let recorded = Recorded::default();
    with_recorder(&recorded, async {
        let mock = mock().await;
        let layer = layer_for(&mock).unauthorized_cooldown(Duration::from_secs(60));
        let svc = client_through(&layer);
        assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
        mock.set_target_rejects_every_token(true);
        for _ in 0..3 {
            let status = get_status(&svc, &mock.url("/admin")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let passed = "simacan_auth_unauthorized_passed_through_total";
        assert_eq!(recorded.counter(passed, &["reason=replay_refused"]), 1);
        assert_eq!(recorded.counter(passed, &["reason=cooldown"]), 2);
        assert_eq!(recorded.counter(passed, &["reason=backoff"]), 0);
        assert_eq!(recorded.counter("simacan_auth_unauthorized_total", &[]), 3);
        assert_eq!(
            recorded.counter("simacan_auth_unauthorized_healed_total", &[]),
            0
        );
    });
}

#[test]
fn adopted_tokens_are_counted_and_every_metric_is_described_and_documented() {
    let recorded = Recorded::default();
    with_recorder(&recorded, async {
        let mock = mock().await;
        let store = MemoryStore::new();
        let first = layer_for(&mock).token_store(store.clone());
        let second = layer_for(&mock).token_store(store);
        bounded(first.access_token()).await.unwrap();
        bounded(second.access_token()).await.unwrap();
        assert_eq!(mock.counts().password, 1);
        assert_eq!(
            recorded.counter("simacan_auth_tokens_adopted_total", &[]),
            1
        );
        assert_eq!(recorded.counter("simacan_auth_logins_total", &[]), 1);
        assert_eq!(second.stats().tokens_adopted, 1);
    });

    let described = recorded.described.lock().unwrap().clone();
    let documented: BTreeSet<_> = COUNTERS
        .iter()
        .chain(&GAUGES)
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        described.keys().cloned().collect::<BTreeSet<_>>(),
        documented
    );
    for name in COUNTERS {
        assert_eq!(described[name], Some(Unit::Count), "{name}");
    }
    for name in GAUGES.iter().filter(|n| n.ends_with("_seconds")) {
        assert_eq!(described[*name], Some(Unit::Seconds), "{name}");
    }
    // Whatever was emitted is documented; labels name kinds and reasons only.
    assert!(
        recorded.names().is_subset(&documented),
        "{:?}",
        recorded.names()
    );
    assert!(recorded.label_keys().is_empty());
    for name in &documented {
        assert!(
            include_str!("../docs/guide/observability.md").contains(&format!("`{name}`")),
            "{name} is missing from the observability guide's table"
        );
    }
}

/// A [`MemoryStore`] that can be taken down.
#[derive(Debug, Clone, Default)]
struct Switchable {
    inner: MemoryStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "switched off",
                std::io::Error::other("down"),
            ));
        }
        Ok(())
    }
}

impl TokenStore for Switchable {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.load(key).await
        })
    }
    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.try_lease(key, ttl).await
        })
    }
    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.renew(lease, ttl).await
        })
    }
    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.release(lease).await
        })
    }
    fn save<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.save(lease, record, expected).await
        })
    }
    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.remove(key).await
        })
    }
}

#[test]
fn refusals_during_a_store_outage_say_the_store_is_the_cause() {
    let recorded = Recorded::default();
    with_recorder(&recorded, async {
        let mock = mock().await;
        let store = Switchable::default();
        let layer = layer_for(&mock).token_store(store.clone());
        let svc = client_through(&layer);
        assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
        store.down.store(true, Ordering::SeqCst);
        mock.revoke_access_tokens();
        // A 401 that starts a flight fails with the store's error; one that
        // comes during the store's short retry pause is passed through, as
        // the store's, not as an Auth API backoff.
        let passed = "simacan_auth_unauthorized_passed_through_total";
        let mut errors = 0;
        for _ in 0..50 {
            match get(&svc, &mock.url("/trips")).await {
                Err(error) => {
                    assert!(auth_error(&error).kind() == ErrorKind::Store, "{error:?}");
                    errors += 1;
                }
                Ok(response) => assert_eq!(response.status(), StatusCode::UNAUTHORIZED),
            }
            if recorded.counter(passed, &["reason=store_unavailable"]) > 0 {
                break;
            }
        }
        assert!(recorded.counter(passed, &["reason=store_unavailable"]) > 0);
        assert_eq!(recorded.counter(passed, &["reason=backoff"]), 0);
        assert!(recorded.counter("simacan_auth_failures_total", &["kind=store"]) > 0);
        // Every refusal ended passed through or as the store's error.
        let unauthorized_errors = recorded.counter("simacan_auth_unauthorized_errors_total", &[]);
        assert!(errors > 0);
        assert_eq!(unauthorized_errors, errors);
        let passed_through: u64 = ["store_unavailable", "backoff", "cooldown"]
            .iter()
            .map(|reason| recorded.counter(passed, &[&format!("reason={reason}")]))
            .sum();
        assert_eq!(
            recorded.counter("simacan_auth_unauthorized_total", &[]),
            recorded.counter("simacan_auth_unauthorized_healed_total", &[])
                + passed_through
                + unauthorized_errors
        );
        // The store is back: the next 401 is healed at once.
        store.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
        assert_eq!(mock.counts().password, 1);
    });
}

#[test]
fn waits_for_another_process_are_counted_and_long_ones_apart() {
    let recorded = Recorded::default();
    with_recorder(&recorded, async {
        let mock = mock().await;
        let store = MemoryStore::new();
        let key =
            simacan_auth::store::StoreKey::new(mock.base_url(), mock.credentials().username());
        // A holder that died with the lease.
        let dead = store
            .try_lease(&key, Duration::from_secs(2))
            .await
            .unwrap()
            .unwrap();
        std::mem::forget(dead);
        let layer = layer_for(&mock).token_store(store);
        bounded(layer.access_token()).await.unwrap();
        assert_eq!(recorded.counter("simacan_auth_lease_waits_total", &[]), 1);
        assert_eq!(
            recorded.counter("simacan_auth_lease_waits_long_total", &[]),
            1
        );
        let stats = layer.stats();
        assert_eq!((stats.lease_waits, stats.long_lease_waits), (1, 1));
    });
}

#[test]
fn label_keys_are_kind_and_reason_only() {
    let recorded = Recorded::default();
    with_recorder(&recorded, async {
        let mock = mock().await;
        let layer = layer_for(&mock).unauthorized_cooldown(Duration::from_secs(60));
        let svc = client_through(&layer);
        assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
        mock.set_target_rejects_every_token(true);
        assert_eq!(
            get_status(&svc, &mock.url("/admin")).await,
            StatusCode::UNAUTHORIZED
        );
        let wrong = SimacanAuthLayer::new(Credentials::new("planner@example.com", "wrong"))
            .environment(mock.environment());
        assert!(bounded(wrong.access_token()).await.is_err());
    });
    let keys: Vec<_> = recorded.label_keys().into_iter().collect();
    assert_eq!(keys, ["kind", "reason"]);
}
