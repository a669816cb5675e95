//! [`SimacanAuthMiddleware`]: the layer's token state for a `reqwest` client,
//! as a [`reqwest_middleware::Middleware`]. Feature `reqwest`.
//!
//! The middleware does for a [`ClientWithMiddleware`] what
//! [`SimacanAuth`](crate::SimacanAuth) does for a tower service, by the
//! same rules, through the same token cache:
//!
//! - **Bearer on every request in the [`TokenScope`]**: `Authorization:
//!   Bearer …`, marked sensitive, replacing any the request had. A request
//!   outside the scope is sent untouched, and its response, a 401 included,
//!   is the caller's. The scope reads the URL's scheme and host; a URL that
//!   does not convert to an [`http::Uri`] is outside it.
//! - **Plain `http` only without a proxy.** reqwest 0.13 sends plain-`http`
//!   requests, loopback ones included, to the proxy `HTTP_PROXY` or
//!   `ALL_PROXY` names unless `NO_PROXY` excludes them, and the token would
//!   reach that proxy in clear text. So only `https` requests get the token,
//!   unless [`client_uses_no_proxy`](SimacanAuthMiddleware::client_uses_no_proxy)
//!   says that the client sends plain `http` to no proxy.
//! - **401 heals.** One refresh for every concurrent user of the token state
//!   (layers, services and middlewares alike), then one replay with the new
//!   token: the same method, URL, headers and body. A 401 on the replay goes
//!   to the caller. A gRPC response refusing the token in its headers
//!   (`grpc-status: 16`, UNAUTHENTICATED) is healed the same way; one whose
//!   status comes in the trailers is the caller's, as reqwest reads no
//!   trailers ahead.
//! - **Replays need a clone.** The request is copied with
//!   [`Request::try_clone`] before it is sent. A body that cannot be cloned
//!   (a stream, `reqwest::Body::wrap_stream`) is sent once: its 401 goes to
//!   the caller, and the token is refreshed all the same, so the next request
//!   carries a new one. Bodies built from bytes or strings clone cheaply and
//!   are always replayed; there is no size limit to set.
//! - **The same cooldown, backoff and counts** as the layer's, since the
//!   decisions are the token cache's: a resource that refuses every token
//!   costs one refresh, an Auth API outage fails fast, and
//!   [`SimacanAuthLayer::stats`] counts 401s healed and passed through.
//!
//! # Configuration, and one token for tower and reqwest
//!
//! The middleware has no builder methods of its own: configure a
//! [`SimacanAuthLayer`] and make the middleware from it with
//! [`SimacanAuthMiddleware::new`]. The middleware shares the layer's token
//! state (as do the layer's clones), so a program that calls one Simacan
//! API through a tonic channel or hyper client and another through reqwest
//! logs in once and heals a revoked token with one refresh.
//! [`SimacanAuthMiddleware::layer`] gives the layer back, for
//! [`stats`](SimacanAuthLayer::stats),
//! [`access_token`](SimacanAuthLayer::access_token) or a tower stack.
//!
//! # With `reqwest-retry`
//!
//! Put the retry middleware outside this one, that is, attach it first:
//!
//! ```
//! use reqwest_middleware::ClientBuilder;
//! use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
//! use simacan_auth::{Credentials, SimacanAuthLayer, SimacanAuthMiddleware};
//!
//! # fn build(reqwest_client: reqwest::Client) {
//! let layer = SimacanAuthLayer::new(Credentials::new("user", "password"));
//! let policy = ExponentialBackoff::builder().build_with_max_retries(3);
//! let client = ClientBuilder::new(reqwest_client)
//!     .with(RetryTransientMiddleware::new_with_policy(policy)) // outer: retries
//!     .with(SimacanAuthMiddleware::new(&layer))                // inner: authenticates each attempt
//!     .build();
//! # let _ = client; }
//! ```
//!
//! Both orders give every request its answer with one refresh per
//! revocation, but in this one:
//!
//! - **each attempt carries the current token.** A retry re-enters this
//!   middleware and looks the token up again (a lock-free read), so after
//!   the retry's backoff it uses whatever token another request obtained,
//!   or the proactive refresh renewed, meanwhile. With the order reversed,
//!   every attempt of one request carries the token read before the first
//!   one, and a token replaced during the backoff costs a rejected round
//!   trip before it is healed.
//! - **each layer handles its own failures.** A 401 is healed inside one
//!   attempt and never reaches the retry policy, which sees only what the
//!   token could not fix (5xx, 408, 429, connection errors); a replay answered
//!   503 is retried as a whole attempt, with the new token.
//!
//! Neither order retries a failure to obtain a token: `reqwest-retry`
//! counts every middleware error as fatal, and the token cache backs off on
//! its own, telling how long in [`Error::retry_after`]. In the recommended
//! order that error reaches the caller inside
//! `reqwest_retry::RetryError` (see [Errors](#errors)). Either way a
//! streamed body is not sent: `reqwest-retry` refuses requests it cannot
//! clone.
//!
//! # Errors
//!
//! A failure to obtain a token is a [`reqwest_middleware::Error::Middleware`]
//! whose `anyhow::Error` holds the [`simacan_auth::Error`](Error), found with
//! `downcast_ref`. Errors of the rest of the chain pass through unchanged.
//!
//! ```
//! # fn inspect(error: reqwest_middleware::Error) {
//! if let reqwest_middleware::Error::Middleware(error) = &error {
//!     if let Some(auth) = error.downcast_ref::<simacan_auth::Error>() {
//!         eprintln!("no token: {auth}; transient: {}", auth.is_transient());
//!     }
//! }
//! # }
//! ```
//!
//! Behind `reqwest-retry`, the same error is one level down:
//! `error.downcast_ref::<reqwest_retry::RetryError>()`, whose variants hold
//! the `reqwest_middleware::Error` above.
//!
//! # TLS
//!
//! The feature turns on no reqwest feature: the middleware builds no client,
//! so it picks no TLS backend and no rustls crypto provider for the
//! application. reqwest's default TLS (its `rustls` feature) brings in the
//! aws-lc-rs provider besides the ring provider this crate uses for the
//! Auth API. To build with ring alone, take reqwest without default
//! features, with `rustls-no-provider`, and give the client a ring
//! configuration, such as the crate's `tls_config()` (with the crate's
//! default feature `rustls`):
//!
//! ```toml
//! reqwest = { version = "0.13", default-features = false, features = ["rustls-no-provider"] }
//! reqwest-middleware = "0.5"
//! simacan-auth = { version = "0.1", features = ["reqwest"] }
//! ```
//!
//! A client built without a configuration under `rustls-no-provider`
//! panics unless a default provider was installed. rustls 0.23.48
//! deprecates ring's `default_provider` (ring has no post-quantum key
//! exchange); to install a provider, prefer aws-lc-rs (rustls' feature
//! `aws-lc-rs`, then `rustls::crypto::aws_lc_rs::default_provider().install_default()`
//! at the start of `main`), which this crate's TLS then uses too.
//!
//! # Example
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use simacan_auth::{reqwest::tls_config, Credentials, Environment, SimacanAuthLayer, SimacanAuthMiddleware};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = SimacanAuthLayer::new(Credentials::from_env()?).environment(Environment::Staging);
//! let reqwest_client = reqwest::Client::builder()
//!     .tls_backend_preconfigured(tls_config())
//!     .build()?;
//! let client = ClientBuilder::new(reqwest_client)
//!     .with(SimacanAuthMiddleware::new(&layer))
//!     .build();
//!
//! let response = client
//!     .get("https://example-stg.services.simacan.com/api/trips")
//!     .send()
//!     .await?;
//! println!("{}", response.status());
//! // The same token state, for a tower stack: `ServiceBuilder::new().layer(layer)`.
//! # Ok(()) }
//! ```
//!
//! [`ClientWithMiddleware`]: reqwest_middleware::ClientWithMiddleware
//! [`Request::try_clone`]: ::reqwest::Request::try_clone

use std::fmt;

use ::reqwest::{Request, Response, Url};
use async_trait::async_trait;
use http::{
    Extensions, Uri,
    uri::{Authority, Parts, PathAndQuery, Scheme},
};
use reqwest_middleware::{Middleware, Next};

use crate::{
    Error, SimacanAuthLayer, TokenScope,
    heal::{Class, Heal, classify},
    token::{Lookup, TokenCache},
};

/// Authenticates the requests of a `reqwest_middleware` client to Simacan
/// APIs. See the [module docs](self).
///
/// Clones share one token state, the one of the layer it was made from.
///
/// # Example
///
/// ```
/// use reqwest_middleware::ClientBuilder;
/// use simacan_auth::{Credentials, SimacanAuthLayer, SimacanAuthMiddleware};
///
/// # fn run(reqwest_client: reqwest::Client) {
/// let layer = SimacanAuthLayer::new(Credentials::new("user", "password"));
/// let client = ClientBuilder::new(reqwest_client)
///     .with(SimacanAuthMiddleware::new(&layer))
///     .build();
/// # let _ = client; }
/// ```
#[derive(Clone)]
pub struct SimacanAuthMiddleware {
    layer: SimacanAuthLayer,
    cache: TokenCache,
    scope: TokenScope,
    /// Whether plain-http requests in the scope get the token.
    no_proxy: bool,
}

impl SimacanAuthMiddleware {
    /// A middleware with the configuration and the token state of `layer`:
    /// the two share one login and one refresh chain.
    ///
    /// Nothing is sent until the first request.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{Credentials, Environment, SimacanAuthLayer, SimacanAuthMiddleware};
    ///
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
    ///     .environment(Environment::Staging);
    /// let middleware = SimacanAuthMiddleware::new(&layer);
    /// # let _ = middleware;
    /// ```
    pub fn new(layer: &SimacanAuthLayer) -> Self {
        SimacanAuthMiddleware {
            cache: layer.cache().clone(),
            scope: layer.scope(),
            layer: layer.clone(),
            no_proxy: false,
        }
    }

    /// Says that the reqwest client this middleware is used with sends
    /// plain-`http` requests to no proxy (it was built with
    /// [`no_proxy`](reqwest::ClientBuilder::no_proxy), or `NO_PROXY` covers
    /// the hosts), so that plain-`http` requests in the token scope (to a
    /// loopback address) get the token too.
    ///
    /// Without it, only `https` requests get the token: reqwest 0.13 sends
    /// plain-`http` requests, loopback ones included, to the proxy that
    /// `HTTP_PROXY` or `ALL_PROXY` names unless `NO_PROXY` excludes them,
    /// and the token would travel to that proxy in clear text. Plain-`http`
    /// requests are then sent as they are. Defaults to `false`.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{Credentials, SimacanAuthLayer, SimacanAuthMiddleware};
    ///
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password"));
    /// // A client that never uses a proxy, so a local plain-http API may get the token.
    /// let client = reqwest::Client::builder().no_proxy();
    /// let middleware = SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true);
    /// # let _ = (client, middleware);
    /// ```
    #[must_use]
    pub fn client_uses_no_proxy(mut self, no_proxy: bool) -> Self {
        self.no_proxy = no_proxy;
        self
    }

    /// The layer this middleware was made from, sharing its token state: for
    /// [`stats`](SimacanAuthLayer::stats),
    /// [`access_token`](SimacanAuthLayer::access_token),
    /// [`invalidate`](SimacanAuthLayer::invalidate), or a tower stack.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{Credentials, SimacanAuthLayer, SimacanAuthMiddleware};
    ///
    /// let middleware = SimacanAuthMiddleware::new(&SimacanAuthLayer::new(Credentials::new("u", "p")));
    /// assert_eq!(middleware.layer().stats().logins, 0);
    /// ```
    pub fn layer(&self) -> &SimacanAuthLayer {
        &self.layer
    }

    /// Whether a request to `url` gets the token, by the layer's rule.
    fn allows(&self, url: &Url) -> bool {
        // Plain http may go through a proxy, in clear text.
        (self.no_proxy || url.scheme() == "https")
            && scope_uri(url).is_some_and(|uri| self.scope.allows(&uri))
    }
}

#[async_trait]
impl Middleware for SimacanAuthMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.allows(request.url()) {
            tracing::debug!(host = ?request.url().host_str(), "outside the token scope; sent as is");
            return next.run(request, extensions).await;
        }
        let mut heal = Heal::new(self.cache.clone());
        match self.cache.lookup() {
            Lookup::Valid {
                header,
                generation,
                unproven,
            } => heal.authorize(request.headers_mut(), header, generation, unproven),
            Lookup::Wait(wait) => {
                let token = wait.await.map_err(failure)?;
                heal.authorize_with(request.headers_mut(), &token);
            }
            Lookup::Failed(error) => return Err(failure(error)),
        }
        loop {
            // `None` for a streamed body: the request is then sent once.
            let copy = request.try_clone();
            let response = next
                .clone()
                .run(request, extensions)
                .await
                .inspect_err(|_| heal.failed())?;
            // Trailers are not read ahead here: a gRPC status in them is
            // the caller's.
            if classify(response.status(), response.headers(), false) != Class::Refused {
                heal.accepted();
                return Ok(response);
            }
            // Without a copy, the refusal still starts or joins the refresh,
            // for the next request.
            let Some((copy, token)) = heal.retry(|_| copy) else {
                return Ok(response);
            };
            drop(response);
            request = copy;
            let token = token.await.map_err(|error| {
                heal.failed();
                failure(error)
            })?;
            heal.authorize_with(request.headers_mut(), &token);
        }
    }
}

/// A failure to obtain a token, as the middleware chain reports errors.
fn failure(error: Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(error)
}

/// What the token scope reads of `url`, as a [`Uri`]: the scheme and the
/// host (the scope ignores ports, paths and user info), so that a request
/// costs one allocation, for the host. `None`, and so outside the scope,
/// for a URL whose scheme is not `http` or `https` or whose host
/// [`Authority`] does not take.
fn scope_uri(url: &Url) -> Option<Uri> {
    let scheme = match url.scheme() {
        "https" => Scheme::HTTPS,
        "http" => Scheme::HTTP,
        _ => return None,
    };
    let mut parts = Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = Some(Authority::try_from(url.host_str()?).ok()?);
    parts.path_and_query = Some(PathAndQuery::from_static("/"));
    Uri::from_parts(parts).ok()
}

/// A rustls client configuration with the crate's TLS setup: the
/// process-wide crypto provider when the application installed one, else
/// ring, Mozilla's roots (webpki-roots), TLS 1.2 and 1.3, ALPN
/// `http/1.1`. For reqwest built with `rustls-no-provider`, through
/// [`ClientBuilder::tls_backend_preconfigured`], so that the application
/// uses one crypto provider and no client panics looking for one. See
/// [TLS](self#tls).
///
/// For HTTP/2 over TLS (reqwest's `http2` feature), offer it too:
/// `config.alpn_protocols.insert(0, b"h2".to_vec())`.
///
/// The configuration must be of the rustls version reqwest uses (0.23):
/// reqwest does not recognise another, and its `build` fails.
///
/// # Example
///
/// ```
/// let client = reqwest::Client::builder()
///     .tls_backend_preconfigured(simacan_auth::reqwest::tls_config())
///     .build()?;
/// # let _ = client;
/// # Ok::<(), reqwest::Error>(())
/// ```
///
/// [`ClientBuilder::tls_backend_preconfigured`]: https://docs.rs/reqwest/0.13/reqwest/struct.ClientBuilder.html#method.tls_backend_preconfigured
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub fn tls_config() -> rustls::ClientConfig {
    let mut config = crate::token::auth_api::https::client_config(&crate::AuthRoots::webpki());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

impl fmt::Debug for SimacanAuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimacanAuthMiddleware")
            .field("cache", &self.cache)
            .field("scope", &self.scope)
            .field("client_uses_no_proxy", &self.no_proxy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scope() -> TokenScope {
        TokenScope::hosts([
            "*.services.simacan.com",
            "10.0.0.5",
            "127.0.0.1",
            "::1",
            "localhost",
        ])
        .unwrap()
    }

    /// The scope's answer for `url` through the conversion, and for the same
    /// text parsed as a `Uri`.
    fn answers(url: &str) -> (bool, bool) {
        let scope = scope();
        let converted = scope_uri(&Url::parse(url).unwrap()).is_some_and(|uri| scope.allows(&uri));
        let parsed = scope.allows(&url.parse::<Uri>().unwrap());
        (converted, parsed)
    }

    #[test]
    fn the_scope_answers_for_a_url_as_for_the_same_uri() {
        for (url, expected) in [
            ("https://trips.services.simacan.com/api/v2/trips?x=1", true),
            ("https://TRIPS.Services.Simacan.com:8443/", true),
            ("https://trips.services.simacan.com./", true),
            ("https://user:secret@trips.services.simacan.com/", true),
            ("http://trips.services.simacan.com/", false),
            ("https://services.simacan.com/", false),
            ("https://trips.services.simacan.com.evil.test/", false),
            ("https://trips.services.simacan.com@evil.test/", false),
            ("https://10.0.0.5:8443/", true),
            ("http://10.0.0.5/", false),
            ("https://10.0.0.6/", false),
            ("http://[::1]:8080/", true),
            ("http://localhost:8080/", true),
            ("https://example.org/", false),
        ] {
            assert_eq!(answers(url), (expected, expected), "{url}");
        }
    }

    #[test]
    fn url_forms_that_uri_does_not_normalise_are_judged_by_their_host() {
        // The URL parser normalises these; the scope then sees the address.
        let scope = scope();
        for url in [
            "http://127.1:8080/",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://LOCALHOST/",
        ] {
            let uri = scope_uri(&Url::parse(url).unwrap()).unwrap();
            assert!(scope.allows(&uri), "{url} -> {uri}");
        }
    }

    #[test]
    fn other_schemes_are_outside_the_scope() {
        let any = TokenScope::any_host();
        for url in [
            "ftp://trips.services.simacan.com/",
            "file:///etc/hosts",
            "data:text/plain,x",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(scope_uri(&url).is_none_or(|uri| !any.allows(&uri)), "{url}");
        }
    }

    #[test]
    fn the_converted_uri_holds_the_scheme_and_host_alone() {
        let url = Url::parse("https://user:secret@Trips.Services.Simacan.com:8443/a?b#c").unwrap();
        let uri = scope_uri(&url).unwrap();
        assert_eq!(uri, "https://trips.services.simacan.com/");
    }

    proptest! {
        #[test]
        fn any_http_url_gets_the_same_answer_as_its_uri(
            https in any::<bool>(),
            host in "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}(\\.services\\.simacan\\.com)?",
            port in proptest::option::of(1u16..),
            path in "(/[a-z0-9]{0,6}){0,3}",
        ) {
            let scheme = if https { "https" } else { "http" };
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = format!("{scheme}://{host}{port}{path}");
            let (converted, parsed) = answers(&url);
            prop_assert_eq!(converted, parsed, "{}", url);
        }
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn the_tls_config_uses_ring_and_speaks_http1() {
        let config = tls_config();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        let ring = crate::crypto::ring();
        let names = |p: &rustls::crypto::CryptoProvider| {
            p.cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(config.crypto_provider()), names(&ring));
    }
}
