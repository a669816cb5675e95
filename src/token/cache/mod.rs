//! The token cache: one current token in an [`ArcSwapOption`], and the rules
//! for replacing it.
//!
//! - The hot path is a lock-free load and a clone of a shared header value.
//! - Logins and refreshes are single-flight: one spawned task at a time, which
//!   every waiter subscribes to through a `watch` channel. Being spawned, it
//!   outlives callers that give up, and stores what it obtained regardless.
//! - A proactive refresh starts once a token enters its refresh window, while
//!   requests keep using it. Only requests without a valid token wait.
//! - Failures back off; during the backoff, requests without a valid token
//!   fail fast with the last error, which says how long until the next
//!   attempt ([`Error::retry_after`]).
//! - A 401 names the token generation it was sent with: a newer token is
//!   used straight away. A token obtained to heal a 401 that is refused
//!   before any request succeeded with it shows that the resource, not the
//!   token, refuses: that starts a cooldown in which 401s are passed through
//!   rather than turned into refreshes, whatever the request's body. A token
//!   another process had stored before the 401 shows nothing of the kind
//!   (it may have been revoked with the refused one): it is healed again.
//! - Flights go through the token store (see [`crate::store`]): a token
//!   another process obtained is adopted, and only the lease holder calls
//!   the Auth API ([`flight`](super::flight)).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::{sync::watch, time::Instant};

use super::{
    AccessToken, AuthClient, Credentials, Environment,
    access_token::{Fresh, How, Token},
    auth_api::{AuthApi, Transport},
    backoff::Backoff,
    flight::{Failed, Flight, FlightSettings, LeaseTimings, Need},
};
use crate::{
    Error,
    stats::{Counters, PassedThrough, Stats},
    store::{StoreErrorKind, StoreKey, TokenStore},
};

/// The tunable timings of a [`TokenCache`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) refresh_before_expiry: Duration,
    pub(crate) auth_timeout: Duration,
    pub(crate) unauthorized_cooldown: Duration,
    /// How long the layer may hold a gRPC response for its first frame.
    pub(crate) grpc_peek_window: Duration,
    pub(crate) backoff: Backoff,
    /// The most the clocks of processes sharing a store may disagree.
    pub(crate) max_clock_skew: Duration,
    /// Log in without the store when it is unavailable.
    pub(crate) local_login_on_store_outage: bool,
    /// The store's lease and retry schedule.
    pub(crate) lease: LeaseTimings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            refresh_before_expiry: Duration::from_secs(300),
            auth_timeout: Duration::from_secs(30),
            unauthorized_cooldown: Duration::from_secs(10),
            grpc_peek_window: Duration::from_millis(100),
            backoff: Backoff::default(),
            max_clock_skew: Duration::from_secs(30),
            local_login_on_store_outage: false,
            lease: LeaseTimings::default(),
        }
    }
}

type Outcome = Result<Arc<Token>, Error>;

/// Resolves when the login or refresh in flight lands. `Sync`, so that the
/// layer's response future is `Sync` whenever the inner one is.
pub(crate) type TokenWait = Pin<Box<dyn Future<Output = Outcome> + Send + Sync>>;

/// What a request should do for its `Authorization` header.
pub(crate) enum Lookup {
    /// Use this header now.
    Valid {
        header: HeaderValue,
        generation: u64,
        /// Tell the cache when a response accepts it
        /// ([`TokenCache::accepted`]).
        unproven: bool,
    },
    /// No valid token: wait for the login or refresh in flight.
    Wait(TokenWait),
    /// No valid token and none can be had right now.
    Failed(Error),
}

/// What the slow path found.
enum Acquired {
    Valid(Arc<Token>),
    Wait(TokenWait),
    Failed(Error),
}

/// How many times a request is sent again after 401s: once to heal it, and
/// once more when the replay meets a token replaced or revoked meanwhile.
pub(crate) const MAX_REPLAYS: u8 = 2;

/// What to do with a request whose token was answered with 401.
pub(crate) enum AfterUnauthorized {
    /// A newer token exists already: replay with it.
    Replay(Arc<Token>),
    /// Wait for the refresh in flight, then replay.
    Wait(TokenWait),
    /// Give the 401 to the caller (cooldown, backoff).
    PassThrough,
}

/// Shared by every clone of a layer and of its services.
#[derive(Clone)]
pub(crate) struct TokenCache {
    shared: Arc<Shared>,
}

struct Shared {
    current: ArcSwapOption<Token>,
    control: Mutex<Control>,
    flight: Flight,
    settings: Settings,
    counters: Arc<Counters>,
}

/// The cache's state, under its lock.
#[derive(Default)]
struct Control {
    phase: Phase,
    /// Failed Auth API calls since a token was last obtained: they grow
    /// the Auth API's backoff.
    auth_failures: u32,
    /// Store failures in a row: they follow the store's own, short,
    /// schedule and leave the Auth API's backoff alone.
    store_failures: u32,
    /// Until when 401s pass through without a refresh.
    cooldown_until: Option<Instant>,
    /// The generation of the newest token.
    generation: u64,
}

/// Where the cache is between tokens.
#[derive(Default)]
enum Phase {
    /// Nothing under way: the next need starts a flight.
    #[default]
    Idle,
    /// A login or refresh is under way; waiters subscribe to it.
    InFlight(watch::Receiver<Option<Outcome>>),
    /// The last flight failed; until its time is up, needs fail fast.
    BackingOff(Failure),
}

struct Failure {
    error: Error,
    until: Instant,
    cause: Cause,
}

/// What a failure's backoff waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    AuthApi,
    Store,
}

impl Failure {
    /// The error to fail with at `now`, saying how long until the next
    /// attempt.
    fn error_at(&self, now: Instant) -> Error {
        let wait = self.until.saturating_duration_since(now);
        self.error.clone().with_next_attempt_in(wait)
    }
}

impl TokenCache {
    /// A cache talking HTTP to `environment` through `client`, keeping
    /// tokens in `store`.
    pub(crate) fn new(
        credentials: Credentials,
        environment: Environment,
        settings: Settings,
        store: Arc<dyn TokenStore>,
        client: &AuthClient,
    ) -> Self {
        let transport = client.transport(&environment);
        Self::with_transport(credentials, environment, settings, store, transport)
    }

    pub(crate) fn with_transport(
        credentials: Credentials,
        environment: Environment,
        settings: Settings,
        store: Arc<dyn TokenStore>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        let key = StoreKey::new(environment.base_url(), credentials.username());
        let api = AuthApi::new(environment, transport, settings.auth_timeout);
        let counters = Arc::new(Counters::new());
        let flight_settings = FlightSettings {
            lease: settings.lease,
            auth_timeout: settings.auth_timeout,
            backoff: settings.backoff,
            max_clock_skew: settings.max_clock_skew,
            local_login_on_store_outage: settings.local_login_on_store_outage,
        };
        let flight = Flight::new(
            api,
            credentials,
            store,
            key,
            flight_settings,
            Arc::clone(&counters),
        );
        TokenCache {
            shared: Arc::new(Shared {
                current: ArcSwapOption::empty(),
                control: Mutex::new(Control::default()),
                flight,
                settings,
                counters,
            }),
        }
    }

    /// The header to send now, or how to get one. Lock-free while the
    /// current token is valid.
    #[inline]
    pub(crate) fn lookup(&self) -> Lookup {
        let now = Instant::now();
        {
            let current = self.shared.current.load();
            if let Some(token) = current.as_deref().filter(|t| t.is_valid_at(now)) {
                if token.claim_proactive_refresh(now) {
                    self.start_proactive_refresh(token.generation);
                }
                return Lookup::Valid {
                    header: token.header.clone(),
                    generation: token.generation,
                    unproven: token.is_unproven(),
                };
            }
        }
        self.lookup_slow(now)
    }

    fn lookup_slow(&self, now: Instant) -> Lookup {
        match self.acquire(now) {
            Acquired::Valid(token) => Lookup::Valid {
                header: token.header.clone(),
                generation: token.generation,
                unproven: token.is_unproven(),
            },
            Acquired::Wait(wait) => Lookup::Wait(wait),
            Acquired::Failed(error) => Lookup::Failed(error),
        }
    }

    /// Without a valid token at hand: re-check under the lock, join the
    /// flight in progress, fail fast during a backoff, or start a flight.
    fn acquire(&self, now: Instant) -> Acquired {
        let mut control = self.shared.lock();
        if let Some(token) = self.valid_token(now) {
            return Acquired::Valid(token);
        }
        if let Some(wait) = control.join_flight() {
            return Acquired::Wait(wait);
        }
        if let Some(failure) = control.backing_off(now) {
            return Acquired::Failed(failure.error_at(now));
        }
        match self.start_flight(&mut control, Need::Token) {
            Ok(wait) => Acquired::Wait(wait),
            Err(error) => Acquired::Failed(error),
        }
    }

    /// A valid token, waiting for a login or refresh when needed.
    pub(crate) async fn access_token(&self) -> Result<AccessToken, Error> {
        let now = Instant::now();
        if let Some(token) = self.valid_token(now) {
            if token.claim_proactive_refresh(now) {
                self.start_proactive_refresh(token.generation);
            }
            return Ok(AccessToken(token));
        }
        match self.acquire(now) {
            Acquired::Valid(token) => Ok(AccessToken(token)),
            Acquired::Wait(wait) => wait.await.map(AccessToken),
            Acquired::Failed(error) => Err(error),
        }
    }

    /// A response accepted a token that was unproven.
    pub(crate) fn accepted(&self, generation: u64) {
        if let Some(token) = self.shared.current.load().as_deref()
            && token.generation == generation
        {
            token.prove();
        }
    }

    /// Decides how to heal a 401 for the token of `generation`, answered to
    /// a request sent `attempt` times before (0: its first sending). Counts
    /// the 401 of a first sending, and counts it passed through when it is.
    ///
    /// A replay can be refused too. When a newer token exists by then, or
    /// the token had been accepted by other requests before it was refused
    /// (an early expiry again), it is healed once more, up to
    /// [`MAX_REPLAYS`]. A token obtained to heal a 401 and refused before
    /// any request succeeded with it starts the cooldown instead: the
    /// resource, not the token, refuses. A token taken from a record another
    /// process had stored before this flight set out does not count as
    /// obtained to heal (see `Fresh::predates_flight`).
    pub(crate) fn after_unauthorized(&self, generation: u64, attempt: u8) -> AfterUnauthorized {
        let counters = &self.shared.counters;
        let replayed = attempt > 0;
        if !replayed {
            counters.unauthorized();
        }
        let pass_through = |reason| {
            let reason = if replayed {
                PassedThrough::ReplayRefused
            } else {
                reason
            };
            counters.passed_through(reason);
            AfterUnauthorized::PassThrough
        };
        let now = Instant::now();
        let mut control = self.shared.lock();
        if attempt >= MAX_REPLAYS {
            self.refused_before_proven(&mut control, generation);
            return pass_through(PassedThrough::ReplayRefused);
        }
        if let Some(token) = self.valid_token(now).filter(|t| t.generation != generation) {
            return AfterUnauthorized::Replay(token);
        }
        if control.in_cooldown(now) || self.refused_before_proven(&mut control, generation) {
            tracing::debug!("401 passed through: a refresh did not help moments ago");
            return pass_through(PassedThrough::Cooldown);
        }
        if let Some(wait) = control.join_flight() {
            return AfterUnauthorized::Wait(wait);
        }
        if let Some(failure) = control.backing_off(now) {
            let reason = match failure.cause {
                Cause::AuthApi => PassedThrough::Backoff,
                Cause::Store => PassedThrough::StoreUnavailable,
            };
            tracing::debug!(?reason, "401 passed through: no token can be had right now");
            return pass_through(reason);
        }
        match self.start_flight(&mut control, Need::Unauthorized) {
            Ok(wait) => AfterUnauthorized::Wait(wait),
            Err(_) => pass_through(PassedThrough::NoRuntime),
        }
    }

    /// How long the layer may hold a gRPC response for its first frame.
    pub(crate) fn grpc_peek_window(&self) -> Duration {
        self.shared.settings.grpc_peek_window
    }

    /// Where the events of requests are counted.
    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// The counts, the backoff and the current token's age and expiry.
    /// Lock-free.
    pub(crate) fn stats(&self) -> Stats {
        let now = Instant::now();
        let mut stats = self.shared.counters.snapshot(now);
        if let Some(token) = self.shared.current.load().as_deref() {
            stats.token_age = Some(now.saturating_duration_since(token.received_at));
            stats.token_expires_in = Some(token.expires_at.saturating_duration_since(now));
        }
        stats
    }

    /// Starts the cooldown, and says so, when the current token is of
    /// `generation` and was refused before any request succeeded with it.
    fn refused_before_proven(&self, control: &mut Control, generation: u64) -> bool {
        let current = self.shared.current.load();
        let Some(token) = current.as_deref().filter(|t| t.generation == generation) else {
            return false;
        };
        if !token.take_unproven() {
            return false;
        }
        let cooldown = self.shared.settings.unauthorized_cooldown;
        control.cooldown_until = Some(after(Instant::now(), cooldown));
        tracing::info!(
            ?cooldown,
            "a token obtained to heal a 401 was refused too; passing 401s through for a while"
        );
        true
    }

    /// Marks the current token expired, so the next use refreshes it.
    pub(crate) fn invalidate(&self) {
        let now = Instant::now();
        let current = self.shared.current.load_full();
        if let Some(token) = current.as_deref().filter(|t| t.is_valid_at(now)) {
            let expired = Arc::new(token.expired_copy(now));
            self.shared
                .current
                .compare_and_swap(&current, Some(expired));
            tracing::debug!("access token invalidated");
        }
    }

    fn valid_token(&self, now: Instant) -> Option<Arc<Token>> {
        self.shared
            .current
            .load_full()
            .filter(|t| t.is_valid_at(now))
    }

    fn start_proactive_refresh(&self, generation: u64) {
        let now = Instant::now();
        let mut control = self.shared.lock();
        if control.flight_in_progress() || control.generation != generation {
            return;
        }
        if let Some(failure) = control.backing_off(now) {
            if let Some(token) = self.shared.current.load().as_deref() {
                token.defer_proactive_refresh(failure.until);
            }
            return;
        }
        tracing::debug!("token enters its refresh window; refreshing in the background");
        // Without a runtime the token stays in use until it expires.
        let _ = self.start_flight(&mut control, Need::Proactive);
    }

    fn start_flight(&self, control: &mut Control, need: Need) -> Result<TokenWait, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::no_runtime())?;
        let (tx, rx) = watch::channel(None);
        let previous = self.shared.current.load_full();
        let mut guard = FlightGuard {
            shared: Arc::clone(&self.shared),
            tx: Some(tx),
            previous: previous.as_ref().map(|t| t.generation),
            started: false,
        };
        runtime.spawn(async move {
            guard.started = true;
            let obtained = guard.shared.flight.obtain(previous.as_deref(), need).await;
            guard.land(obtained, need);
        });
        control.phase = Phase::InFlight(rx.clone());
        Ok(wait(rx))
    }

    #[cfg(test)]
    pub(crate) fn current_generation(&self) -> Option<u64> {
        self.shared.current.load().as_ref().map(|t| t.generation)
    }
}

/// Owns a flight's sender: lands the flight's outcome, or, when the flight
/// is dropped unfinished (its runtime shut down, or it panicked for lack of
/// a timer or I/O driver), tells the waiters and frees the cache for the
/// next flight.
struct FlightGuard {
    shared: Arc<Shared>,
    tx: Option<watch::Sender<Option<Outcome>>>,
    /// The generation of the token the flight replaces.
    previous: Option<u64>,
    /// Whether the task ran. One dropped unstarted may be dropped by
    /// `spawn` itself (its runtime has shut down) while the spawner holds
    /// the cache's lock: it must not take the lock, and need not, since the
    /// dropped sender tells the waiters and the next caller. It gives the
    /// proactive refresh back without the lock.
    started: bool,
}

impl FlightGuard {
    fn land(mut self, obtained: Result<Fresh, Failed>, need: Need) {
        let outcome = self.shared.settle(obtained, need, self.previous);
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(outcome));
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if !self.started {
            if let Some(token) = self.shared.current.load().as_deref() {
                token.defer_proactive_refresh(Instant::now());
            }
            return;
        }
        let Some(tx) = self.tx.take() else { return };
        let outcome = self.shared.abandon(std::thread::panicking());
        tx.send_replace(Some(outcome));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Control> {
        // Nothing panics while holding the lock; recover regardless.
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores what a flight obtained, or records its failure and backoff.
    fn settle(
        &self,
        obtained: Result<Fresh, Failed>,
        need: Need,
        previous: Option<u64>,
    ) -> Outcome {
        let now = Instant::now();
        let mut control = self.lock();
        control.phase = Phase::Idle;
        match obtained {
            Ok(fresh) => {
                match fresh.how {
                    How::Adopted => tracing::debug!("using the token another process obtained"),
                    How::Refreshed => tracing::debug!("access token refreshed"),
                    How::LoggedIn | How::FellBack => tracing::info!(
                        username = self.flight.credentials().username(),
                        "logged in to the simacan auth api"
                    ),
                }
                self.counters.obtained(fresh.how, fresh.remaining);
                control.generation += 1;
                control.auth_failures = 0;
                control.store_failures = 0;
                let window = self.settings.refresh_before_expiry;
                // A token obtained to heal a 401, unless it is an older one
                // this process only now learnt of.
                let unproven = need == Need::Unauthorized && !fresh.predates_flight;
                let token = Arc::new(Token::new(fresh, now, control.generation, window, unproven));
                self.current.store(Some(Arc::clone(&token)));
                Ok(token)
            }
            Err(Failed {
                error,
                refresh_spent,
            }) => {
                if refresh_spent {
                    self.forget_refresh_token(previous);
                }
                Err(self.back_off(&mut control, error, now))
            }
        }
    }

    /// The refresh token of the token of generation `previous` was refused:
    /// keep the access token while it lasts, never send the refresh token
    /// again.
    fn forget_refresh_token(&self, previous: Option<u64>) {
        let current = self.current.load_full();
        if let Some(token) = current
            .as_deref()
            .filter(|t| Some(t.generation) == previous)
        {
            let spent = Arc::new(token.without_refresh_token());
            self.current.compare_and_swap(&current, Some(spent));
        }
    }

    /// Records a failed flight: a store outage waits on the store's short
    /// schedule, anything else on the Auth API's backoff, each counting its
    /// own failures.
    fn back_off(&self, control: &mut Control, error: Error, now: Instant) -> Error {
        let (cause, delay) = if is_store_outage(&error) {
            control.store_failures = control.store_failures.saturating_add(1);
            let timings = self.flight.lease_timings();
            (Cause::Store, timings.store_retry(control.store_failures))
        } else {
            control.store_failures = 0;
            control.auth_failures = control.auth_failures.saturating_add(1);
            let delay = self.settings.backoff.delay(control.auth_failures, &error);
            (Cause::AuthApi, delay)
        };
        let consecutive = control.auth_failures.saturating_add(control.store_failures);
        let until = after(now, delay);
        if let Some(token) = self.current.load().as_deref() {
            token.defer_proactive_refresh(until);
        }
        match cause {
            Cause::AuthApi => tracing::warn!(
                error = %crate::error::with_causes(&error), ?delay, consecutive, "could not obtain a token; backing off"
            ),
            // Once per outage: it is tried again every half second at most.
            Cause::Store if control.store_failures == 1 => tracing::warn!(
                error = %crate::error::with_causes(&error), ?delay,
                "could not obtain a token: the token store is unavailable; trying it again shortly"
            ),
            Cause::Store => tracing::debug!(
                error = %crate::error::with_causes(&error), ?delay, store_failures = control.store_failures,
                "the token store is still unavailable"
            ),
        }
        self.counters.failed(&error);
        self.counters.backing_off(consecutive, until);
        let failure = Failure {
            error,
            until,
            cause,
        };
        let error = failure.error_at(now);
        control.phase = Phase::BackingOff(failure);
        error
    }

    /// A flight ended without landing. Whoever comes next may start another
    /// at once, and the current token's proactive refresh, claimed by the
    /// lost flight, is due again. A panic (a runtime without timers or I/O)
    /// backs off like a failure, so it does not repeat on every request.
    fn abandon(&self, panicked: bool) -> Outcome {
        let now = Instant::now();
        let mut control = self.lock();
        control.phase = Phase::Idle;
        if let Some(token) = self.current.load().as_deref() {
            token.defer_proactive_refresh(now);
        }
        if panicked {
            return Err(self.back_off(&mut control, Error::no_runtime(), now));
        }
        tracing::warn!("the token flight was dropped before it finished (its runtime shut down)");
        self.counters.failed(&Error::no_runtime());
        Err(Error::no_runtime())
    }
}

impl Control {
    /// Subscribes to the flight in progress. A flight whose task was dropped
    /// (runtime shutdown) is forgotten so that the next caller starts anew.
    fn join_flight(&mut self) -> Option<TokenWait> {
        if !self.flight_in_progress() {
            return None;
        }
        let Phase::InFlight(rx) = &self.phase else {
            return None;
        };
        Some(wait(rx.clone()))
    }

    /// Whether a flight is in progress; one whose task was dropped is
    /// forgotten.
    fn flight_in_progress(&mut self) -> bool {
        let Phase::InFlight(rx) = &self.phase else {
            return false;
        };
        let running = rx.has_changed().is_ok();
        if !running {
            self.phase = Phase::Idle;
        }
        running
    }

    /// The failure whose backoff lasts at `now`, if any.
    fn backing_off(&self, now: Instant) -> Option<&Failure> {
        match &self.phase {
            Phase::BackingOff(failure) if now < failure.until => Some(failure),
            _ => None,
        }
    }

    fn in_cooldown(&self, now: Instant) -> bool {
        self.cooldown_until.is_some_and(|until| now < until)
    }
}

/// `now + duration`, saturating far in the future rather than overflowing
/// for settings like `Duration::MAX`.
pub(super) fn after(now: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(duration.min(CENTURY)).unwrap_or(now)
}

/// A store that did not answer, or a lease lost or held too long: the
/// store's schedule, not the Auth API's.
fn is_store_outage(error: &Error) -> bool {
    error.store_error().is_some_and(|e| {
        matches!(
            e.kind(),
            StoreErrorKind::Unavailable | StoreErrorKind::Contended
        )
    })
}

fn wait(mut rx: watch::Receiver<Option<Outcome>>) -> TokenWait {
    Box::pin(async move {
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Err(Error::no_runtime())),
            Err(_) => Err(Error::no_runtime()),
        }
    })
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generation = self.shared.current.load().as_ref().map(|t| t.generation);
        f.debug_struct("TokenCache")
            .field("credentials", self.shared.flight.credentials())
            .field("generation", &generation)
            .field("settings", &self.shared.settings)
            .field("store", self.shared.flight.store())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod stats_tests;
