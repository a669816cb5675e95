//! [`SimacanAuthLayer`]: configuration, and the token state its services
//! share.
//!
//! Every option has a default that suits production; the builder methods take
//! and return the layer. Clones of a layer share one token state. A builder
//! method called on a clone makes a new token state with the new settings,
//! but it keeps the layer's [token store](crate::store): layers configured
//! from one another share one login and one refresh chain, whichever order
//! they were cloned and configured in. Only
//! [`SimacanAuthLayer::new`] (and [`token_store`](SimacanAuthLayer::token_store)
//! with another store) starts a separate token, as a separate process would.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use simacan_auth::{Credentials, Environment, SimacanAuthLayer};
//!
//! let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
//!     .environment(Environment::Staging)
//!     .refresh_before_expiry(Duration::from_secs(300))
//!     .auth_timeout(Duration::from_secs(10));
//! # let _ = layer;
//! ```

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tower::Layer;

use crate::{
    store::{MemoryStore, TokenStore},
    token::{AccessToken, Backoff, Credentials, Environment, Settings, TokenCache},
    Error, SimacanAuth, Stats, TokenScope,
};

/// The default of [`SimacanAuthLayer::replay_body_limit`]: 1 MiB.
pub const DEFAULT_REPLAY_BODY_LIMIT: usize = 1024 * 1024;

/// A [`tower::Layer`] that authenticates requests to Simacan APIs. See the
/// [module docs](self).
///
/// Clones share one token state: one login serves every service built from
/// the layer or its clones.
///
/// The service it wraps must be `Clone`; one that is not goes behind a
/// `buffer` (see [`SimacanAuth`]).
///
/// # Example
///
/// ```
/// use simacan_auth::{Credentials, SimacanAuthLayer};
/// use tower::ServiceBuilder;
///
/// # let hyper_client = tower::service_fn(|_: http::Request<String>| async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) });
/// let svc = ServiceBuilder::new()
///     .layer(SimacanAuthLayer::new(Credentials::new("user", "password")))
///     .service(hyper_client);
/// # let _ = svc;
/// ```
#[derive(Clone)]
#[must_use]
pub struct SimacanAuthLayer {
    config: Arc<Config>,
    cache: Arc<OnceLock<TokenCache>>,
}

#[derive(Clone)]
struct Config {
    credentials: Credentials,
    environment: Environment,
    settings: Settings,
    replay_body_limit: usize,
    store: Arc<dyn TokenStore>,
    // `None` follows the environment, whenever it is set.
    token_scope: Option<TokenScope>,
}

impl SimacanAuthLayer {
    /// A layer that logs in with `credentials` to the production Auth API.
    ///
    /// Nothing is sent until the first request.
    ///
    /// # Example
    ///
    /// ```
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
    /// # let _ = layer;
    /// ```
    pub fn new(credentials: Credentials) -> Self {
        Self::from_config(Config {
            credentials,
            environment: Environment::default(),
            settings: Settings::default(),
            replay_body_limit: DEFAULT_REPLAY_BODY_LIMIT,
            store: Arc::new(MemoryStore::new()),
            token_scope: None,
        })
    }

    fn from_config(config: Config) -> Self {
        SimacanAuthLayer {
            config: Arc::new(config),
            cache: Arc::new(OnceLock::new()),
        }
    }

    fn configure(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::clone(&self.config);
        change(&mut config);
        Self::from_config(config)
    }

    /// The Auth API to log in to. Unless [`token_scope`](Self::token_scope)
    /// is set, it also decides which hosts get the token (see
    /// [`TokenScope`]). Defaults to [`Environment::Production`].
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{Credentials, Environment, SimacanAuthLayer};
    ///
    /// let layer = SimacanAuthLayer::new(Credentials::new("u", "p")).environment(Environment::Staging);
    /// # let _ = layer;
    /// ```
    pub fn environment(self, environment: Environment) -> Self {
        self.configure(|c| c.environment = environment)
    }

    /// How long before expiry a token is refreshed in the background while
    /// requests keep using it. Never more than half the token's lifetime; up
    /// to a tenth more at random. Defaults to 5 minutes.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .refresh_before_expiry(Duration::from_secs(120));
    /// # let _ = layer;
    /// ```
    pub fn refresh_before_expiry(self, window: Duration) -> Self {
        self.configure(|c| c.settings.refresh_before_expiry = window)
    }

    /// The timeout of each call to the Auth API. Defaults to 30 seconds.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .auth_timeout(Duration::from_secs(5));
    /// # let _ = layer;
    /// ```
    pub fn auth_timeout(self, timeout: Duration) -> Self {
        self.configure(|c| c.settings.auth_timeout = timeout)
    }

    /// How long 401s pass straight to the caller after a refresh did not
    /// help (the replay with a fresh token got 401 too), so that a resource
    /// that refuses every token cannot turn each request into a refresh.
    /// Defaults to 10 seconds.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .unauthorized_cooldown(Duration::from_secs(30));
    /// # let _ = layer;
    /// ```
    pub fn unauthorized_cooldown(self, cooldown: Duration) -> Self {
        self.configure(|c| c.settings.unauthorized_cooldown = cooldown)
    }

    /// The backoff after a failed login or refresh: the n-th failure in a
    /// row waits between half and all of `initial * 2^(n-1)`, at most `max`,
    /// and at least the Auth API's `Retry-After`. Rejected credentials wait
    /// `max` at once. Defaults to 1 second and 5 minutes.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(60));
    /// # let _ = layer;
    /// ```
    pub fn backoff(self, initial: Duration, max: Duration) -> Self {
        self.configure(|c| {
            c.settings.backoff = Backoff {
                initial,
                max: max.max(initial),
            }
        })
    }

    /// The most bytes of a request body kept for a replay. Bodies that are
    /// shared rather than copied (`Full<Bytes>`, `Empty`) are always
    /// replayable. Defaults to 1 MiB ([`DEFAULT_REPLAY_BODY_LIMIT`]).
    ///
    /// # Example
    ///
    /// ```
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .replay_body_limit(64 * 1024);
    /// # let _ = layer;
    /// ```
    pub fn replay_body_limit(self, bytes: usize) -> Self {
        self.configure(|c| c.replay_body_limit = bytes)
    }

    /// Where tokens are kept beyond this layer's own memory: a
    /// [`FileStore`](crate::store) so a restarted process or the next
    /// command-line run reuses the token, or a shared store so a fleet of
    /// replicas does one login and one refresh chain. See the
    /// [`store`](crate::store) module for the protocol. Defaults to a
    /// [`MemoryStore`] of the layer's own.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{store::MemoryStore, Credentials, SimacanAuthLayer};
    ///
    /// let layer = SimacanAuthLayer::new(Credentials::new("u", "p")).token_store(MemoryStore::new());
    /// # let _ = layer;
    /// ```
    pub fn token_store(self, store: impl TokenStore) -> Self {
        let store: Arc<dyn TokenStore> = Arc::new(store);
        self.configure(|c| c.store = store)
    }

    /// How far the clocks of processes sharing a [`token_store`](Self::token_store)
    /// may disagree. A stored token is used only while more than this is
    /// left of it (at most a tenth of its lifetime); an early 401 is healed
    /// the usual way regardless. Defaults to 30 seconds.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .max_clock_skew(Duration::from_secs(5));
    /// # let _ = layer;
    /// ```
    pub fn max_clock_skew(self, skew: Duration) -> Self {
        self.configure(|c| c.settings.max_clock_skew = skew)
    }

    /// Whether a process without a valid token may log in on its own while
    /// the [`token_store`](Self::token_store) is unavailable (degraded
    /// mode). Its token then serves this process only and is given up for
    /// the store's as soon as the store has a valid one. When off, such a
    /// process fails fast with [`Error::Store`] and keeps trying with the
    /// usual backoff. Either way, requests with a valid token go on from
    /// memory. Defaults to off: a fleet that shares one credential should
    /// not log in once per replica because Redis is down.
    ///
    /// # Example
    ///
    /// ```
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .local_login_on_store_outage(true);
    /// # let _ = layer;
    /// ```
    pub fn local_login_on_store_outage(self, allowed: bool) -> Self {
        self.configure(|c| c.settings.local_login_on_store_outage = allowed)
    }

    /// The hosts that get the token; requests to any other host pass
    /// through untouched (no token, no login, no replay), and their 401s go
    /// to the caller. Whatever the scope, the token goes only over `https`,
    /// or plain `http` to a loopback host, or to a URI without an authority
    /// (the inner service picks the host). See [`TokenScope`].
    ///
    /// Defaults to the scope of the [environment](Self::environment),
    /// whether it is set before or after this: `*.services.simacan.com`
    /// except `*-stg.services.simacan.com` for production,
    /// `*-stg.services.simacan.com` for staging, and any host for
    /// [`Environment::custom`], which should be given a scope.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{Credentials, Environment, SimacanAuthLayer, TokenScope};
    ///
    /// let layer = SimacanAuthLayer::new(Credentials::new("u", "p"))
    ///     .environment(Environment::custom("https://auth.example.com/api/v1")?)
    ///     .token_scope(TokenScope::hosts(["*.api.example.com"])?);
    /// # let _ = layer;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    pub fn token_scope(self, scope: TokenScope) -> Self {
        self.configure(|c| c.token_scope = Some(scope))
    }

    /// A valid access token, logging in or refreshing when needed, for use
    /// outside tower. Shares the token, and any login in flight, with the
    /// services built from this layer.
    ///
    /// # Errors
    ///
    /// The [`Error`] that kept a token from being had.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), simacan_auth::Error> {
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::from_env()?);
    /// let token = layer.access_token().await?;
    /// println!("token valid for {:?}", token.expires_in());
    /// # Ok(()) }
    /// ```
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        self.cache().access_token().await
    }

    /// Forgets the current access token: the next request or
    /// [`access_token`](Self::access_token) refreshes it (with the refresh
    /// token, not the password). For when a token is refused somewhere the
    /// layer cannot see.
    ///
    /// # Example
    ///
    /// ```
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
    /// layer.invalidate();
    /// ```
    pub fn invalidate(&self) {
        self.cache().invalidate();
    }

    /// A snapshot of what this layer's token state has done (logins,
    /// refreshes, password fallbacks, tokens adopted from the store, 401s
    /// healed and passed through, failures by kind) and of its backoff and
    /// current token. Shared by the layer's clones and every service built
    /// from them; a layer configured from a clone has counts of its own.
    /// Lock-free and cheap enough to poll. See [`stats`](crate::stats) for
    /// what each count means and the matching metric names (feature
    /// `metrics`).
    ///
    /// # Example
    ///
    /// ```
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
    /// let stats = layer.stats();
    /// if let Some(left) = stats.backoff_remaining {
    ///     eprintln!("the auth api is backing off for {left:?} after {} failures", stats.consecutive_failures);
    /// }
    /// assert_eq!(stats.unauthorized_healed, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        self.cache().stats()
    }

    /// The token scope its services use.
    pub(crate) fn scope(&self) -> TokenScope {
        let config = &self.config;
        match &config.token_scope {
            Some(scope) => scope.clone(),
            None => TokenScope::of_environment(&config.environment),
        }
    }

    /// The token state its clones and services share, made on first use.
    pub(crate) fn cache(&self) -> &TokenCache {
        self.cache.get_or_init(|| {
            let config = &self.config;
            TokenCache::new(
                config.credentials.clone(),
                config.environment.clone(),
                config.settings.clone(),
                Arc::clone(&config.store),
            )
        })
    }
}

impl<S> Layer<S> for SimacanAuthLayer {
    type Service = SimacanAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SimacanAuth::new(
            inner,
            self.cache().clone(),
            self.config.replay_body_limit,
            self.scope(),
        )
    }
}

/// A layer with every option at its default, as [`SimacanAuthLayer::new`]
/// makes it; for functions that take `impl Into<SimacanAuthLayer>`.
///
/// # Example
///
/// ```
/// use simacan_auth::{Credentials, SimacanAuthLayer};
///
/// let layer: SimacanAuthLayer = Credentials::new("user", "password").into();
/// # let _ = layer;
/// ```
impl From<Credentials> for SimacanAuthLayer {
    fn from(credentials: Credentials) -> Self {
        SimacanAuthLayer::new(credentials)
    }
}

/// A clone: it shares the layer's token state.
///
/// # Example
///
/// ```
/// use simacan_auth::{Credentials, SimacanAuthLayer};
///
/// let layer = SimacanAuthLayer::new(Credentials::new("user", "password"));
/// let clone = SimacanAuthLayer::from(&layer);
/// # let _ = clone;
/// ```
impl From<&SimacanAuthLayer> for SimacanAuthLayer {
    fn from(layer: &SimacanAuthLayer) -> Self {
        layer.clone()
    }
}

impl fmt::Debug for SimacanAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimacanAuthLayer")
            .field("credentials", &self.config.credentials)
            .field("environment", &self.config.environment)
            .field("settings", &self.config.settings)
            .field("replay_body_limit", &self.config.replay_body_limit)
            .field("store", &self.config.store)
            .field("token_scope", &self.scope())
            .finish()
    }
}
