//! Tower middleware for Simacan's APIs: OAuth 2.0 tokens from the Simacan
//! Auth API on every request, renewed ahead of expiry and healed on 401.
//!
//! Wrap any `tower::Service<http::Request<B>>` (a hyper-util client, a tonic
//! channel, a stack with retry and timeout layers) in [`SimacanAuthLayer`]
//! and stop thinking about tokens:
//!
//! - **Lazy, single-flight login.** The first request logs in with the
//!   password grant; concurrent first requests share that one login.
//! - **Bearer on every request** to a Simacan host, from a lock-free
//!   [`arc_swap`] read.
//! - **The token stays on Simacan's hosts.** A [`TokenScope`] decides per
//!   request; requests to other hosts, or over plain `http` to anything but
//!   loopback, pass through untouched.
//! - **401 heals.** A 401 triggers one refresh for all concurrent callers and
//!   a replay of the request, body included. A refresh token that is itself
//!   rejected falls back to the password grant, once.
//! - **Proactive refresh.** A token near expiry is refreshed in the
//!   background while requests keep using it.
//! - **Bounded failure.** Outages back off and fail fast with a typed
//!   [`Error`]; a resource that refuses every token does not cause a refresh
//!   storm; secrets never reach `Debug`, errors or logs.
//!
//! # Example
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use simacan_auth::{Credentials, Environment, SimacanAuthLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), tower::BoxError> {
//! let svc = ServiceBuilder::new()
//!     .layer(SimacanAuthLayer::new(Credentials::from_env()?).environment(Environment::Staging))
//!     .service(simacan_auth::https_client::<Full<Bytes>>());
//!
//! let request = http::Request::get("https://example-stg.services.simacan.com/api/trips")
//!     .body(Full::default())?;
//! let response = svc.oneshot(request).await?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! [`https_client`] (feature `rustls`) is a hyper-util client on the crate's
//! own TLS setup. The wrapped service must be `Clone`; put one that is not
//! behind a `buffer` (see [`SimacanAuth`]).
//!
//! # Errors
//!
//! The service's error is [`tower::BoxError`]. A failure to obtain a token is
//! a [`simacan_auth::Error`](Error) inside it; errors of the wrapped service
//! pass through unchanged.
//!
//! # Features
//!
//! - `rustls` (default): HTTPS to the Auth API through rustls (the
//!   process-wide crypto provider when the application installed one, else ring;
//!   webpki roots unless configured otherwise), directly or through an HTTP
//!   `CONNECT` proxy, and [`https_client`], a client for Simacan's APIs on
//!   the same TLS setup. See [`AuthProxy`] and [`AuthRoots`], given to
//!   [`SimacanAuthLayer::auth_proxy`] and [`SimacanAuthLayer::auth_roots`];
//!   any HTTP client can replace the built-in one with
//!   [`SimacanAuthLayer::auth_client`].
//! - `native-roots`: `AuthRoots::native`, the platform's certificate store
//!   instead of the webpki roots for the Auth API.
//! - `tonic`: [`ReplayBody`](body::ReplayBody) for `tonic::body::Body`, so a
//!   tonic `Channel` can be wrapped; UNAUTHENTICATED is healed like a 401.
//! - `axum`: [`ReplayBody`](body::ReplayBody) for `axum::body::Body`.
//! - `mock`: `simacan_auth::mock`, a faithful mock of the Simacan Auth API and a small
//!   target API on loopback, for testing an integration without Simacan.
//! - `redis`: `store::RedisStore`, a token store in Redis (`redis://`,
//!   `rediss://` through rustls with ring), so a fleet of replicas shares one
//!   login and one refresh chain.
//! - `cli`: the `simacan-auth` command-line tool (`token`, `login`,
//!   `logout`, `status`), tokens kept in a [`FileStore`](store::FileStore)
//!   between runs.
//! - `metrics`: the layer's counters and gauges (logins, refreshes, healed
//!   and passed-through 401s, failures by kind, backoff, token age) through
//!   the [`metrics`](https://docs.rs/metrics/0.24) facade, as
//!   `simacan_auth_*`; the names are listed in the [`stats`] module, whose
//!   [`Stats`] snapshot needs no feature.
//! - `reqwest`: `SimacanAuthMiddleware`, the same token state and rules for
//!   a `reqwest_middleware` client (reqwest-middleware 0.5, reqwest 0.13),
//!   shared with the layer it is made from; see the `reqwest` module. It
//!   turns on no reqwest feature, so no TLS backend or crypto provider.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
mod clock;
#[cfg(any(feature = "rustls", feature = "redis"))]
mod crypto;
pub mod error;
mod failure;
pub mod future;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(any(doc, doctest))]
pub mod guide;
mod heal;
mod join;
pub mod layer;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
#[cfg(any(test, feature = "mock"))]
mod rotation;
pub mod scope;
pub mod service;
pub mod stats;
pub mod store;
pub mod token;
mod unauthorized;

#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use crate::reqwest::SimacanAuthMiddleware;
pub use error::{Endpoint, Error, ErrorKind};
pub use layer::{DEFAULT_REPLAY_BODY_LIMIT, SimacanAuthLayer};
pub use scope::TokenScope;
pub use service::SimacanAuth;
pub use stats::Stats;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use token::AuthProxy;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use token::auth_api::{AuthRoots, HttpsClient, https_client};
pub use token::{AccessToken, BaseUrl, Credentials, Environment};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
