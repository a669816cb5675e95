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
    access_token::{Fresh, How, Token},
    backoff::Backoff,
    client::{AuthApi, Transport},
    flight::{Failed, SpentTokens},
    AccessToken, AuthClient, Credentials, Environment,
};
use crate::{
    stats::{Counters, PassedThrough, Stats},
    store::{StoreKey, TokenStore},
    Error,
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

/// Why a flight starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// No token, or an expired one.
    Token,
    /// The token nears expiry; requests keep using it meanwhile.
    Proactive,
    /// The token was refused with a 401.
    Unauthorized,
}

/// Shared by every clone of a layer and of its services.
#[derive(Clone)]
pub(crate) struct TokenCache {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    current: ArcSwapOption<Token>,
    control: Mutex<Control>,
    pub(super) api: AuthApi,
    pub(super) credentials: Credentials,
    pub(super) settings: Settings,
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) key: StoreKey,
    /// Refresh tokens this process saw rotated or refused.
    pub(super) spent: SpentTokens,
    counters: Counters,
}

#[derive(Default)]
struct Control {
    /// The login or refresh in flight, if any.
    flight: Option<watch::Receiver<Option<Outcome>>>,
    /// The last failure, while its backoff lasts.
    failure: Option<Failure>,
    /// Until when 401s pass through without a refresh.
    cooldown_until: Option<Instant>,
    /// The generation of the newest token.
    generation: u64,
}

struct Failure {
    error: Error,
    until: Instant,
    consecutive: u32,
}

impl Failure {
    /// The error to fail with at `now`, saying how long until the next
    /// attempt.
    fn error_at(&self, now: Instant) -> Error {
        let wait = self.until.saturating_duration_since(now);
        self.error.clone().next_attempt_in(wait)
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
        TokenCache {
            shared: Arc::new(Shared {
                current: ArcSwapOption::empty(),
                control: Mutex::new(Control::default()),
                api,
                credentials,
                settings,
                store,
                key,
                spent: SpentTokens::new(),
                counters: Counters::new(),
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
        if let Some(failure) = control.failure.as_ref().filter(|f| now < f.until) {
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
        if let Some(token) = self.shared.current.load().as_deref() {
            if token.generation == generation {
                token.prove();
            }
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
        if control.failure.as_ref().is_some_and(|f| now < f.until) {
            tracing::debug!("401 passed through: the auth api is backing off");
            return pass_through(PassedThrough::Backoff);
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
        if let Some(failure) = control.failure.as_ref().filter(|f| now < f.until) {
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
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
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
            let obtained = guard.shared.obtain(previous.as_deref(), need).await;
            guard.land(obtained, need);
        });
        control.flight = Some(rx.clone());
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
        control.flight = None;
        match obtained {
            Ok(fresh) => {
                match fresh.how {
                    How::Adopted => tracing::debug!("using the token another process obtained"),
                    How::Refreshed => tracing::debug!("access token refreshed"),
                    How::LoggedIn | How::FellBack => tracing::info!(
                        username = self.credentials.username(),
                        "logged in to the simacan auth api"
                    ),
                }
                self.counters.obtained(fresh.how, fresh.remaining);
                control.generation += 1;
                control.failure = None;
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

    fn back_off(&self, control: &mut Control, error: Error, now: Instant) -> Error {
        let consecutive = control.failure.as_ref().map_or(1, |f| f.consecutive + 1);
        let delay = self.settings.backoff.delay(consecutive, &error);
        let until = after(now, delay);
        if let Some(token) = self.current.load().as_deref() {
            token.defer_proactive_refresh(until);
        }
        tracing::warn!(error = %error, ?delay, consecutive, "could not obtain a token; backing off");
        self.counters.failed(&error);
        self.counters.backing_off(consecutive, until);
        let failure = Failure {
            error,
            until,
            consecutive,
        };
        let error = failure.error_at(now);
        control.failure = Some(failure);
        error
    }

    /// A flight ended without landing. Whoever comes next may start another
    /// at once, and the current token's proactive refresh, claimed by the
    /// lost flight, is due again. A panic (a runtime without timers or I/O)
    /// backs off like a failure, so it does not repeat on every request.
    fn abandon(&self, panicked: bool) -> Outcome {
        let now = Instant::now();
        let mut control = self.lock();
        control.flight = None;
        if let Some(token) = self.current.load().as_deref() {
            token.defer_proactive_refresh(now);
        }
        if panicked {
            return Err(self.back_off(&mut control, Error::NoRuntime, now));
        }
        tracing::warn!("the token flight was dropped before it finished (its runtime shut down)");
        self.counters.failed(&Error::NoRuntime);
        Err(Error::NoRuntime)
    }
}

impl Control {
    /// Subscribes to the flight in progress. A flight whose task was dropped
    /// (runtime shutdown) is forgotten so that the next caller starts anew.
    fn join_flight(&mut self) -> Option<TokenWait> {
        let rx = self.flight.as_ref()?;
        if rx.has_changed().is_err() {
            self.flight = None;
            return None;
        }
        Some(wait(rx.clone()))
    }

    /// Whether a flight is in progress; one whose task was dropped is
    /// forgotten.
    fn flight_in_progress(&mut self) -> bool {
        let running = self
            .flight
            .as_ref()
            .is_some_and(|rx| rx.has_changed().is_ok());
        if !running {
            self.flight = None;
        }
        running
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

fn wait(mut rx: watch::Receiver<Option<Outcome>>) -> TokenWait {
    Box::pin(async move {
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Err(Error::NoRuntime)),
            Err(_) => Err(Error::NoRuntime),
        }
    })
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generation = self.shared.current.load().as_ref().map(|t| t.generation);
        f.debug_struct("TokenCache")
            .field("credentials", &self.shared.credentials)
            .field("generation", &generation)
            .field("settings", &self.shared.settings)
            .field("store", &self.shared.store)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "cache_stats_tests.rs"]
mod stats_tests;
