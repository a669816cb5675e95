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

use bytes::Bytes;
use http_body_util::Full;
use tower::{BoxError, Layer, Service};

use crate::{
    Error, SimacanAuth, Stats, TokenScope,
    store::{MemoryStore, TokenStore},
    token::{AccessToken, AuthClient, Backoff, Credentials, Environment, Settings, TokenCache},
};

/// The default of [`SimacanAuthLayer::replay_body_limit`]: 1 MiB.
///
/// # Example
///
/// ```
/// use simacan_auth::{Credentials, SimacanAuthLayer, DEFAULT_REPLAY_BODY_LIMIT};
///
/// // Twice the default, for larger uploads.
/// let layer = SimacanAuthLayer::new(Credentials::new("u", "p"))
///     .replay_body_limit(2 * DEFAULT_REPLAY_BODY_LIMIT);
/// # let _ = layer;
/// ```
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
    auth_client: AuthClient,
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
            auth_client: AuthClient::default(),
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
    /// help, so that a resource that refuses every token cannot turn each
    /// request into a refresh. Defaults to 10 seconds.
    ///
    /// A refresh did not help when the token obtained to heal a 401 is
    /// refused before any response accepted it: the replay got 401 too, or,
    /// for a request whose body could not be replayed, the next request
    /// with the new token did. During the cooldown 401s are the callers'
    /// (counted as passed through) and nothing is refreshed for them; the
    /// token's proactive refresh ahead of expiry goes on. Such a resource
    /// therefore costs one refresh per cooldown per process, never one per
    /// request, and never a password login. A 401 does not say which
    /// resource refused, so the cooldown covers all requests of the token
    /// state: an early expiry inside it reaches the caller as a 401, and the
    /// first 401 after it is healed as usual.
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

    /// How long the layer may wait for the first frame of a gRPC response
    /// whose headers carry no `grpc-status`, to catch a server that refuses
    /// the token with an empty body and `UNAUTHENTICATED` in its trailers
    /// (a refusal with the status in the headers is seen at once). Defaults
    /// to 100 ms.
    ///
    /// The wait happens only when the request body was sent in full, so a
    /// bidirectional or client stream still sending is never held up. It
    /// does delay a **server-streaming** call whose server sends its
    /// headers and then waits before its first message (a watch, a
    /// subscription): the response is handed over when the first message
    /// arrives or the window ends, whichever comes first. A first message
    /// later than the window is not delayed further, but a refusal in
    /// trailers after it then reaches the caller as `Unauthenticated`
    /// instead of being healed. `Duration::ZERO` never waits: the first
    /// frame is looked at only when it is already there.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .grpc_peek_window(Duration::from_millis(20));
    /// # let _ = layer;
    /// ```
    pub fn grpc_peek_window(self, window: Duration) -> Self {
        self.configure(|c| c.settings.grpc_peek_window = window)
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
    /// process fails fast with an error of kind [`Store`](crate::ErrorKind::Store) and keeps trying with the
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

    /// The HTTP client for the Auth API calls, in place of the built-in
    /// one: any tower service of `http::Request<Full<Bytes>>`, such as a
    /// hyper-util `Client` with a connector of your own (a proxy, a TLS
    /// setup, a resolver) or a `tower::service_fn` over another HTTP
    /// library. It needs no `rustls` feature: an HTTPS client of your own
    /// serves an `https` Auth API without it. Defaults to the built-in
    /// client: hyper-util over rustls with the ring provider, through the
    /// proxy the environment names (see [`auth_proxy`](Self::auth_proxy)).
    ///
    /// The built-in client's settings, [`auth_proxy`](Self::auth_proxy),
    /// [`no_auth_proxy`](Self::no_auth_proxy) and
    /// [`auth_roots`](Self::auth_roots), do not apply to `client`, whether
    /// they are given before or after it: configure `client` itself. The
    /// layer keeps them, and warns once its token state is made (at its
    /// first use) that they are ignored.
    ///
    /// Each call to the Auth API clones `client` and sends it one request:
    /// `POST {base}/auth/password` or `/auth/refresh` with a form body. The
    /// layer reads at most 64 KiB of the answer and applies
    /// [`auth_timeout`](Self::auth_timeout) to the whole call. An error of
    /// `client` reaches callers as an error of kind [`AuthApiUnavailable`](crate::ErrorKind::AuthApiUnavailable), with the URL, and
    /// the error as its [`source()`](std::error::Error::source).
    ///
    /// **The request carries secrets.** Its body holds the password or the
    /// refresh token: `client` must not log bodies, and it must not follow
    /// redirects, which would send the form wherever a `Location` header
    /// points. The layer follows none either: a 3xx is an error of kind
    /// [`UnexpectedResponse`](crate::ErrorKind::UnexpectedResponse).
    ///
    /// # Example
    ///
    /// A hyper-util client (here one for plain HTTP, as a loopback test Auth
    /// API needs; a client on a connector of your own goes the same way):
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    /// use simacan_auth::{Credentials, SimacanAuthLayer};
    ///
    /// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password")).auth_client(client);
    /// # let _ = layer;
    /// ```
    ///
    /// Any service will do, here one that counts the calls:
    ///
    /// ```
    /// use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    /// use simacan_auth::{Credentials, SimacanAuthLayer};
    ///
    /// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let counted = {
    ///     let calls = calls.clone();
    ///     tower::service_fn(move |request: http::Request<Full<Bytes>>| {
    ///         calls.fetch_add(1, Ordering::Relaxed);
    ///         client.request(request)
    ///     })
    /// };
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password")).auth_client(counted);
    /// # let _ = layer;
    /// ```
    pub fn auth_client<S, B>(self, client: S) -> Self
    where
        S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.configure(|c| c.auth_client.set_custom(client))
    }

    /// The proxy the built-in Auth API client goes through to an `https`
    /// Auth API: [`AuthProxy::new`](crate::AuthProxy::new) for one of your
    /// choice, or [`AuthProxy::from_env`](crate::AuthProxy::from_env) for
    /// the one the environment names now. A `CONNECT` tunnel carries the TLS
    /// session with the Auth API; plain `http` (loopback) is never proxied.
    /// See [`AuthProxy`](crate::AuthProxy).
    ///
    /// Defaults to the proxy the environment names when the layer's token
    /// state is made (its first use, or [`layer`](tower::Layer::layer)),
    /// read as [`AuthProxy::from_env`](crate::AuthProxy::from_env) reads it;
    /// an unusable value then fails every login with
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration). The last of this and
    /// [`no_auth_proxy`](Self::no_auth_proxy) applies. Ignored, with a
    /// warning, by a client given to [`auth_client`](Self::auth_client).
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{AuthProxy, Credentials, SimacanAuthLayer};
    ///
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
    ///     .auth_proxy(AuthProxy::new("http://proxy.example.com:3128")?);
    /// # let _ = layer;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn auth_proxy(self, proxy: crate::AuthProxy) -> Self {
        self.configure(|c| c.auth_client.built_in.proxy = Some(proxy))
    }

    /// Connects the built-in Auth API client to the Auth API directly,
    /// whatever the environment variables say. The last of this and
    /// [`auth_proxy`](Self::auth_proxy) applies. Ignored, with a warning, by
    /// a client given to [`auth_client`](Self::auth_client). Defaults to the
    /// proxy the environment names: see [`auth_proxy`](Self::auth_proxy).
    ///
    /// # Example
    ///
    /// ```
    /// let layer = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"))
    ///     .no_auth_proxy();
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn no_auth_proxy(self) -> Self {
        self.configure(|c| c.auth_client.built_in.proxy = Some(crate::AuthProxy::direct()))
    }

    /// The certificates the built-in Auth API client trusts for the Auth
    /// API: [`AuthRoots::webpki`](crate::AuthRoots::webpki) or
    /// `AuthRoots::native` (feature `native-roots`), with CA certificates
    /// of your own added by [`AuthRoots::with_pem`](crate::AuthRoots::with_pem)
    /// for an Auth API, or a TLS-inspecting proxy, with a certificate from a
    /// private CA. Replaces the roots given before. Only the Auth API calls
    /// trust them, not [`https_client`](crate::https_client). Ignored, with
    /// a warning, by a client given to [`auth_client`](Self::auth_client).
    /// Defaults to the webpki roots.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{AuthRoots, Credentials, SimacanAuthLayer};
    ///
    /// # let ca = rcgen::generate_simple_self_signed(vec!["ca.corp.example".to_owned()]).unwrap().cert.pem();
    /// // let ca = std::fs::read("/etc/ssl/private-ca.pem")?;
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
    ///     .auth_roots(AuthRoots::webpki().with_pem(ca)?);
    /// # let _ = layer;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn auth_roots(self, roots: crate::AuthRoots) -> Self {
        self.configure(|c| c.auth_client.built_in.roots = Some(roots))
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
            None => TokenScope::for_environment(&config.environment),
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
                &config.auth_client,
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

impl fmt::Debug for SimacanAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimacanAuthLayer")
            .field("credentials", &self.config.credentials)
            .field("environment", &self.config.environment)
            .field("settings", &self.config.settings)
            .field("replay_body_limit", &self.config.replay_body_limit)
            .field("store", &self.config.store)
            .field("auth_client", &self.config.auth_client)
            .field("token_scope", &self.scope())
            .finish()
    }
}
