//! What a layer has done so far: logins, refreshes, healed and passed-through
//! 401s, failures by kind, and the state of its backoff and token.
//!
//! [`SimacanAuthLayer::stats`](crate::SimacanAuthLayer::stats) takes a
//! [`Stats`] snapshot. Every clone of a layer and every service built from
//! them share one token state, and so one set of counts; a layer configured
//! from another (a builder method on a clone) has counts of its own, as it
//! has a token state of its own. Taking a snapshot is lock-free: a dozen
//! relaxed atomic loads, one `ArcSwap` load and one clock read.
//!
//! Events are counted off the hot path: a request sent with a valid token
//! and accepted touches no counter. Counts only grow; a snapshot's counters
//! are read one by one, so a snapshot taken while a login lands may show it
//! in one count and not yet in another.
//!
//! # Counts
//!
//! Every token a login or refresh obtains is counted once, in exactly one of
//! [`logins`](Stats::logins), [`refreshes`](Stats::refreshes),
//! [`password_fallbacks`](Stats::password_fallbacks) and
//! [`tokens_adopted`](Stats::tokens_adopted); every one that obtains no
//! token is a failure of one [`ErrorKind`]. Every refusal of the token (an
//! HTTP 401, or gRPC UNAUTHENTICATED) answered to a request's first attempt
//! counts in [`unauthorized`](Stats::unauthorized), and ends healed by a
//! replay ([`unauthorized_healed`](Stats::unauthorized_healed)), passed
//! through to the caller
//! ([`unauthorized_passed_through`](Stats::unauthorized_passed_through)),
//! or as an error ([`unauthorized_errors`](Stats::unauthorized_errors): the
//! refresh failed, also counted as a failure, or the inner service failed
//! on the replay). Once every request has its answer,
//! `unauthorized = unauthorized_healed + unauthorized_passed_through +
//! unauthorized_errors`, except for a gRPC replay handed over before its
//! first frame showed how it went, which counts as none of the three, and
//! a request dropped by its caller while it was being healed.
//!
//! # Metrics
//!
//! With the feature `metrics`, the same events go to the
//! [`metrics`](https://docs.rs/metrics/0.24) facade as they happen, to
//! whichever recorder the application installed (a Prometheus exporter, for
//! one). Counters carry no secret and no per-layer label: several layers in
//! one process add up, and their gauges show the last one to change. Gauges
//! hold Unix times rather than durations, so that they do not go stale
//! between events: the token's age is `time() -
//! simacan_auth_token_obtained_timestamp_seconds` in PromQL. Each metric is
//! described (unit and help text) when a layer's token state is created, so
//! install the recorder before the layer serves its first request.
//!
//! | name | type | labels | what it counts or shows | in [`Stats`] |
//! |---|---|---|---|---|
//! | `simacan_auth_logins_total` | counter | | password logins: the first one, and any without a refresh token to use | `logins` |
//! | `simacan_auth_refreshes_total` | counter | | tokens obtained with the refresh grant (proactive, expired or after a 401) | `refreshes` |
//! | `simacan_auth_password_fallbacks_total` | counter | | password logins after the Auth API refused the refresh token | `password_fallbacks` |
//! | `simacan_auth_tokens_adopted_total` | counter | | tokens read from the token store, obtained by another process or layer | `tokens_adopted` |
//! | `simacan_auth_failures_total` | counter | `kind` | logins and refreshes that obtained no token; `kind` is a [`ErrorKind::as_str`] | `failures(kind)` |
//! | `simacan_auth_unauthorized_total` | counter | | 401s and gRPC UNAUTHENTICATED answered to a request's first attempt | `unauthorized` |
//! | `simacan_auth_unauthorized_healed_total` | counter | | refusals healed: the replay with a newer token was accepted | `unauthorized_healed` |
//! | `simacan_auth_unauthorized_passed_through_total` | counter | `reason` | refusals handed to the caller: `cooldown` (a refresh did not help moments ago), `backoff` (the Auth API is backing off), `store_unavailable` (the token store is unavailable), `not_replayable` (the body was not kept), `replay_refused` (the replay was refused too), `no_runtime` (no Tokio runtime to refresh on) | `unauthorized_passed_through`, and `replays_refused` for `replay_refused` |
//! | `simacan_auth_unauthorized_errors_total` | counter | | refusals that ended as an error: the refresh failed (a failure, counted by kind too), or the inner service failed on the replay | `unauthorized_errors` |
//! | `simacan_auth_lease_waits_total` | counter | | waits for another process's login or refresh through the token store | `lease_waits` |
//! | `simacan_auth_lease_waits_long_total` | counter | | those waits that passed a second (each logged at `warn`): a slow lease holder, or a dead one whose lease runs out | `long_lease_waits` |
//! | `simacan_auth_consecutive_failures` | gauge | | failures since a token was last obtained | `consecutive_failures` |
//! | `simacan_auth_backoff_until_timestamp_seconds` | gauge | | Unix time at which the current backoff ends; 0 once a token is obtained | `backoff_remaining` |
//! | `simacan_auth_token_obtained_timestamp_seconds` | gauge | | Unix time at which the current token was obtained | `token_age` |
//! | `simacan_auth_token_expiry_timestamp_seconds` | gauge | | Unix time at which the current token expires by its `expires_in` | `token_expires_in` |
//!
//! # Serialization
//!
//! [`Stats`] implements [`serde::Serialize`], for a health or status
//! endpoint: the counts as numbers under their field names, durations
//! (`backoff_remaining`, `token_age`, `token_expires_in`) as seconds with a
//! fraction (`1.5`), or `null` when absent, and the failures as a map from
//! each [`ErrorKind::as_str`] to its count.
//!
//! ```
//! let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
//! let json = serde_json::to_value(layer.stats()).unwrap();
//! assert_eq!(json["logins"], 0);
//! assert_eq!(json["token_age"], serde_json::Value::Null);
//! assert_eq!(json["failures"]["auth_api_unavailable"], 0);
//! ```
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use simacan_auth::{mock::MockAuthApi, ErrorKind, SimacanAuthLayer};
//!
//! let mock = MockAuthApi::start().await?;
//! let layer = SimacanAuthLayer::new(mock.credentials()).environment(mock.environment());
//! layer.access_token().await?;
//!
//! let stats = layer.stats();
//! assert_eq!(stats.logins, 1);
//! assert_eq!(stats.failures(ErrorKind::AuthApiUnavailable), 0);
//! assert!(stats.backoff_remaining.is_none());
//! assert!(stats.token_expires_in.is_some());
//! # Ok(()) }
//! ```

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use serde::{Serialize, Serializer, ser::SerializeMap};
use tokio::time::Instant;

use crate::{Error, ErrorKind, token::How};

#[cfg(feature = "metrics")]
mod export;

/// A snapshot of a layer's counts, its backoff and its current token. See
/// the [module docs](self), which also list the matching metric names.
///
/// # Example
///
/// ```
/// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
/// let stats = layer.stats();
/// assert_eq!(stats.logins + stats.refreshes, 0);
/// assert_eq!(stats.token_age, None, "no token yet");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Password logins: the first one, and any made without a refresh token
    /// to use. Password fallbacks are counted apart.
    pub logins: u64,
    /// Tokens obtained with the refresh grant: ahead of expiry, after
    /// expiry, or to heal a 401.
    pub refreshes: u64,
    /// Password logins made because the Auth API refused the refresh token.
    pub password_fallbacks: u64,
    /// Tokens read from the [token store](crate::store), obtained by another
    /// process or layer sharing it.
    pub tokens_adopted: u64,
    /// Responses that refused the token (HTTP 401, or gRPC UNAUTHENTICATED)
    /// to a request's first attempt.
    pub unauthorized: u64,
    /// Refusals healed: the request was replayed with a newer token and the
    /// replay was accepted. A gRPC replay handed over before its first frame
    /// told acceptance from a refusal in trailers (a bidirectional stream
    /// whose server waits for the client, a first message later than
    /// [`grpc_peek_window`](crate::SimacanAuthLayer::grpc_peek_window)) is
    /// not counted (its token is taken as accepted all the same).
    pub unauthorized_healed: u64,
    /// Refusals handed to the caller as they came: during a cooldown or a
    /// backoff, for a body that was not kept for a replay, or because the
    /// replay was refused too ([`replays_refused`](Self::replays_refused)).
    pub unauthorized_passed_through: u64,
    /// Replays refused like their first attempt; part of
    /// [`unauthorized_passed_through`](Self::unauthorized_passed_through).
    pub replays_refused: u64,
    /// Refusals that ended as an error for the caller: no token could be
    /// had to heal them (the refresh failed; see
    /// [`failures`](Self::failures) for why), or the inner service failed
    /// on the replay.
    pub unauthorized_errors: u64,
    /// Logins and refreshes that found the [token store](crate::store)'s
    /// lease held by another process and waited for its result.
    pub lease_waits: u64,
    /// Waits for another process's lease that lasted more than a second,
    /// each logged at `warn`: a lease holder that is slow, or that died and
    /// whose lease runs out (within 2.5 s).
    pub long_lease_waits: u64,
    /// Logins and refreshes that failed since a token was last obtained.
    pub consecutive_failures: u64,
    /// How long the backoff after the last failure still lasts; `None` when
    /// no backoff is on. During it, requests without a valid token fail fast.
    #[serde(serialize_with = "seconds")]
    pub backoff_remaining: Option<Duration>,
    /// How long ago this layer obtained its current token (logged in,
    /// refreshed, or adopted it from the store); `None` before the first.
    #[serde(serialize_with = "seconds")]
    pub token_age: Option<Duration>,
    /// How long until the current token expires by its `expires_in` (zero
    /// once expired or invalidated; the Auth API may revoke it earlier);
    /// `None` before the first token.
    #[serde(serialize_with = "seconds")]
    pub token_expires_in: Option<Duration>,
    failures: FailureCounts,
}

impl Stats {
    /// Logins and refreshes that obtained no token, for one kind of failure.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::ErrorKind;
    ///
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
    /// assert_eq!(layer.stats().failures(ErrorKind::InvalidCredentials), 0);
    /// ```
    pub fn failures(&self, kind: ErrorKind) -> u64 {
        self.failures.0[kind.index()]
    }

    /// Logins and refreshes that obtained no token, of every kind.
    ///
    /// # Example
    ///
    /// ```
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
    /// assert_eq!(layer.stats().failures_total(), 0);
    /// ```
    pub fn failures_total(&self) -> u64 {
        self.failures.0.iter().sum()
    }
}

/// Failures by kind, shown by name.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct FailureCounts([u64; ErrorKind::ALL.len()]);

impl fmt::Debug for FailureCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                ErrorKind::ALL
                    .iter()
                    .map(|k| (k.as_str(), self.0[k.index()])),
            )
            .finish()
    }
}

impl Serialize for FailureCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for kind in ErrorKind::ALL {
            map.serialize_entry(kind.as_str(), &self.0[kind.index()])?;
        }
        map.end()
    }
}

/// A duration as seconds with a fraction; `None` as a unit (`null`).
fn seconds<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_f64(duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

/// Why a refusal of the token went to the caller as it came: the `reason`
/// label of `simacan_auth_unauthorized_passed_through_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PassedThrough {
    /// A token obtained to heal a 401 was refused too, moments ago.
    Cooldown,
    /// The Auth API is backing off after a failure.
    Backoff,
    /// The token store is unavailable; it is tried again shortly.
    StoreUnavailable,
    /// No Tokio runtime to refresh on.
    NoRuntime,
    /// The request's body was not kept for a replay.
    NotReplayable,
    /// The replay was refused like the first attempt.
    ReplayRefused,
}

impl PassedThrough {
    #[cfg(feature = "metrics")]
    fn as_str(self) -> &'static str {
        match self {
            PassedThrough::Cooldown => "cooldown",
            PassedThrough::Backoff => "backoff",
            PassedThrough::StoreUnavailable => "store_unavailable",
            PassedThrough::NoRuntime => "no_runtime",
            PassedThrough::NotReplayable => "not_replayable",
            PassedThrough::ReplayRefused => "replay_refused",
        }
    }
}

/// No backoff in [`Counters::backoff_until`].
const NO_BACKOFF: u64 = 0;

/// The counts behind [`Stats`], in a token cache's shared state. Each method
/// records one event, in the atomics and, with the feature `metrics`,
/// through the facade. Relaxed ordering throughout: each count stands alone.
pub(crate) struct Counters {
    logins: AtomicU64,
    refreshes: AtomicU64,
    password_fallbacks: AtomicU64,
    tokens_adopted: AtomicU64,
    unauthorized: AtomicU64,
    unauthorized_healed: AtomicU64,
    unauthorized_passed_through: AtomicU64,
    replays_refused: AtomicU64,
    unauthorized_errors: AtomicU64,
    lease_waits: AtomicU64,
    long_lease_waits: AtomicU64,
    failures: [AtomicU64; ErrorKind::ALL.len()],
    consecutive_failures: AtomicU64,
    /// When the backoff ends, in nanoseconds after `base`; [`NO_BACKOFF`]
    /// for none. A lock-free copy of the deadline the cache keeps under its
    /// lock.
    backoff_until: AtomicU64,
    base: Instant,
}

impl Counters {
    pub(crate) fn new() -> Self {
        #[cfg(feature = "metrics")]
        export::describe();
        Counters {
            logins: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            password_fallbacks: AtomicU64::new(0),
            tokens_adopted: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            unauthorized_healed: AtomicU64::new(0),
            unauthorized_passed_through: AtomicU64::new(0),
            replays_refused: AtomicU64::new(0),
            unauthorized_errors: AtomicU64::new(0),
            lease_waits: AtomicU64::new(0),
            long_lease_waits: AtomicU64::new(0),
            failures: Default::default(),
            consecutive_failures: AtomicU64::new(0),
            backoff_until: AtomicU64::new(NO_BACKOFF),
            base: Instant::now(),
        }
    }

    /// A login or refresh obtained a token `how`, valid for `expires_in`:
    /// failures in a row and the backoff are over.
    pub(crate) fn obtained(&self, how: How, expires_in: Duration) {
        let count = match how {
            How::LoggedIn => &self.logins,
            How::Refreshed => &self.refreshes,
            How::FellBack => &self.password_fallbacks,
            How::Adopted => &self.tokens_adopted,
        };
        count.fetch_add(1, Relaxed);
        self.consecutive_failures.store(0, Relaxed);
        self.backoff_until.store(NO_BACKOFF, Relaxed);
        #[cfg(feature = "metrics")]
        export::obtained(how, expires_in);
        #[cfg(not(feature = "metrics"))]
        let _ = expires_in;
    }

    /// A login or refresh obtained no token.
    pub(crate) fn failed(&self, error: &Error) {
        let kind = error.kind();
        self.failures[kind.index()].fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        export::failed(kind);
    }

    /// The `consecutive`-th failure in a row backs off until `until`.
    pub(crate) fn backing_off(&self, consecutive: u32, until: Instant) {
        let after_base = until.saturating_duration_since(self.base).as_nanos();
        let after_base = u64::try_from(after_base).unwrap_or(u64::MAX);
        self.consecutive_failures
            .store(u64::from(consecutive), Relaxed);
        self.backoff_until
            .store(after_base.max(NO_BACKOFF + 1), Relaxed);
        #[cfg(feature = "metrics")]
        export::backing_off(consecutive, until);
    }

    /// A flight found the store's lease held by another process and waited.
    pub(crate) fn lease_wait(&self) {
        self.lease_waits.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        export::lease_wait(false);
    }

    /// A wait for the lease passed a second.
    pub(crate) fn long_lease_wait(&self) {
        self.long_lease_waits.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        export::lease_wait(true);
    }

    /// A response refused the token sent with a request's first attempt.
    pub(crate) fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        export::unauthorized();
    }

    /// A replay with a newer token was accepted.
    pub(crate) fn healed(&self) {
        self.unauthorized_healed.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        export::healed();
    }

    /// A refusal went to the caller as it came.
    pub(crate) fn passed_through(&self, reason: PassedThrough) {
        self.unauthorized_passed_through.fetch_add(1, Relaxed);
        if reason == PassedThrough::ReplayRefused {
            self.replays_refused.fetch_add(1, Relaxed);
        }
        #[cfg(feature = "metrics")]
        export::passed_through(reason);
    }

    /// A refusal ended as an error: the refresh to heal it failed, or the
    /// inner service failed on the replay.
    pub(crate) fn unauthorized_error(&self) {
        self.unauthorized_errors.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        export::unauthorized_error();
    }

    /// The counts and the backoff as of `now`; no token yet.
    pub(crate) fn snapshot(&self, now: Instant) -> Stats {
        let backoff_until = self.backoff_until.load(Relaxed);
        let backoff_remaining = (backoff_until != NO_BACKOFF)
            .then(|| {
                let until = self.base + Duration::from_nanos(backoff_until);
                until.saturating_duration_since(now)
            })
            .filter(|left| !left.is_zero());
        Stats {
            logins: self.logins.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            password_fallbacks: self.password_fallbacks.load(Relaxed),
            tokens_adopted: self.tokens_adopted.load(Relaxed),
            unauthorized: self.unauthorized.load(Relaxed),
            unauthorized_healed: self.unauthorized_healed.load(Relaxed),
            unauthorized_passed_through: self.unauthorized_passed_through.load(Relaxed),
            replays_refused: self.replays_refused.load(Relaxed),
            unauthorized_errors: self.unauthorized_errors.load(Relaxed),
            lease_waits: self.lease_waits.load(Relaxed),
            long_lease_waits: self.long_lease_waits.load(Relaxed),
            consecutive_failures: self.consecutive_failures.load(Relaxed),
            backoff_remaining,
            token_age: None,
            token_expires_in: None,
            failures: FailureCounts(self.failures.each_ref().map(|n| n.load(Relaxed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, store::StoreError};

    #[test]
    fn every_error_has_a_kind() {
        let io = std::io::Error::other("refused");
        let uri = http::Uri::from_static("https://auth.example.com/api/v1/auth/password");
        let cases = [
            (Error::invalid_credentials(), ErrorKind::InvalidCredentials),
            (
                Error::unreachable(Endpoint::Password, &uri, io),
                ErrorKind::AuthApiUnavailable,
            ),
            (
                Error::timeout(Endpoint::Refresh, &uri, Duration::from_secs(1)),
                ErrorKind::AuthApiUnavailable,
            ),
            (
                Error::unexpected_status(
                    Endpoint::Password,
                    &uri,
                    http::StatusCode::BAD_GATEWAY,
                    None,
                ),
                ErrorKind::AuthApiUnavailable,
            ),
            (
                Error::unexpected_status(
                    Endpoint::Password,
                    &uri,
                    http::StatusCode::NOT_FOUND,
                    None,
                ),
                ErrorKind::UnexpectedResponse,
            ),
            (
                Error::malformed(Endpoint::Password, &uri, "not json"),
                ErrorKind::UnexpectedResponse,
            ),
            (
                Error::too_large(Endpoint::Password, &uri, 1),
                ErrorKind::UnexpectedResponse,
            ),
            (
                Error::store(StoreError::contended("held elsewhere")),
                ErrorKind::Store,
            ),
            (Error::no_runtime(), ErrorKind::NoRuntime),
            (Error::config("bad"), ErrorKind::Configuration),
            (Error::missing_variable("X"), ErrorKind::Configuration),
            (Error::password_required(), ErrorKind::PasswordRequired),
        ];
        let counters = Counters::new();
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            let before = counters.snapshot(Instant::now()).failures(kind);
            counters.failed(&error);
            assert_eq!(counters.snapshot(Instant::now()).failures(kind), before + 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_count_by_kind_and_the_backoff_shows_until_it_ends() {
        let counters = Counters::new();
        counters.failed(&Error::invalid_credentials());
        counters.backing_off(1, Instant::now() + Duration::from_millis(1500));
        let stats = counters.snapshot(Instant::now());
        assert_eq!(stats.failures(ErrorKind::InvalidCredentials), 1);
        assert_eq!(stats.failures_total(), 1);
        assert_eq!(stats.consecutive_failures, 1);
        assert_eq!(stats.backoff_remaining, Some(Duration::from_millis(1500)));
        tokio::time::advance(Duration::from_millis(1499)).await;
        let left = counters.snapshot(Instant::now()).backoff_remaining;
        assert_eq!(left, Some(Duration::from_millis(1)));
        tokio::time::advance(Duration::from_millis(1)).await;
        let stats = counters.snapshot(Instant::now());
        assert_eq!(stats.backoff_remaining, None, "the backoff is over");
        assert_eq!(stats.consecutive_failures, 1, "until a token is obtained");
        counters.obtained(How::LoggedIn, Duration::from_secs(60));
        let stats = counters.snapshot(Instant::now());
        assert_eq!(
            (
                stats.logins,
                stats.consecutive_failures,
                stats.failures_total()
            ),
            (1, 0, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_obtained_ends_the_backoff_at_once() {
        let counters = Counters::new();
        counters.failed(&Error::no_runtime());
        counters.backing_off(2, Instant::now() + Duration::from_secs(60));
        assert!(
            counters
                .snapshot(Instant::now())
                .backoff_remaining
                .is_some()
        );
        counters.obtained(How::Adopted, Duration::from_secs(60));
        let stats = counters.snapshot(Instant::now());
        assert_eq!(stats.backoff_remaining, None);
        assert_eq!(stats.tokens_adopted, 1);
        assert_eq!(stats.failures(ErrorKind::NoRuntime), 1);
    }

    #[test]
    fn each_way_of_obtaining_a_token_has_its_own_count() {
        let counters = Counters::new();
        for (n, how) in [How::LoggedIn, How::Refreshed, How::FellBack, How::Adopted]
            .into_iter()
            .enumerate()
        {
            for _ in 0..=n {
                counters.obtained(how, Duration::from_secs(60));
            }
        }
        let stats = counters.snapshot(Instant::now());
        assert_eq!(
            [
                stats.logins,
                stats.refreshes,
                stats.password_fallbacks,
                stats.tokens_adopted
            ],
            [1, 2, 3, 4]
        );
    }

    #[test]
    fn a_refused_replay_is_a_refusal_passed_through() {
        let counters = Counters::new();
        counters.unauthorized();
        counters.unauthorized();
        counters.passed_through(PassedThrough::Cooldown);
        counters.passed_through(PassedThrough::ReplayRefused);
        counters.healed();
        counters.unauthorized_error();
        let stats = counters.snapshot(Instant::now());
        assert_eq!(stats.unauthorized_errors, 1);
        assert_eq!(stats.unauthorized, 2);
        assert_eq!(stats.unauthorized_passed_through, 2);
        assert_eq!(stats.replays_refused, 1);
        assert_eq!(stats.unauthorized_healed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn serializes_durations_as_seconds_and_failures_by_kind_name() {
        let counters = Counters::new();
        counters.obtained(How::Refreshed, Duration::from_secs(60));
        counters.failed(&Error::invalid_credentials());
        counters.failed(&Error::invalid_credentials());
        counters.backing_off(2, Instant::now() + Duration::from_millis(1500));
        let mut stats = counters.snapshot(Instant::now());
        stats.token_age = Some(Duration::from_millis(250));
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["refreshes"], 1);
        assert_eq!(json["consecutive_failures"], 2);
        assert_eq!(json["backoff_remaining"], 1.5);
        assert_eq!(json["token_age"], 0.25);
        assert_eq!(json["token_expires_in"], serde_json::Value::Null);
        let failures = json["failures"].as_object().unwrap();
        assert_eq!(failures.len(), ErrorKind::ALL.len());
        assert_eq!(failures["invalid_credentials"], 2);
        assert_eq!(failures["store"], 0);
        assert_eq!(json["unauthorized_errors"], 0);
    }

    #[test]
    fn debug_names_the_failure_kinds() {
        let counters = Counters::new();
        counters.failed(&Error::invalid_credentials());
        let shown = format!("{:?}", counters.snapshot(Instant::now()));
        assert!(shown.contains("\"invalid_credentials\": 1"), "{shown}");
    }
}
