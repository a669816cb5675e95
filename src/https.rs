//! The crate's one TLS setup: rustls with the ring provider and the webpki
//! roots, offering HTTP/2 and HTTP/1.1 by ALPN. Both [`https_client`] and the
//! client that talks to the Auth API are built on it.
//!
//! The provider is given explicitly, never taken from rustls' process-wide
//! default: when another crate in the build turns on rustls' `aws-lc-rs`
//! provider as well, rustls cannot pick one on its own and a client built on
//! the default panics at its first use. These clients are not affected.

use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

/// The client [`https_client`] returns: a hyper-util client over HTTPS
/// through rustls, sending request bodies of type `B`.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use simacan_auth::{HttpsClient, SimacanAuth};
///
/// // A service built from it can be named, to keep it in a struct.
/// struct Planner {
///     simacan: SimacanAuth<HttpsClient<Full<Bytes>>>,
/// }
/// # let _ = |p: Planner| p.simacan;
/// ```
pub type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// A hyper-util client for Simacan's APIs, ready to wrap in
/// [`SimacanAuthLayer`](crate::SimacanAuthLayer): HTTPS only, HTTP/2 or
/// HTTP/1.1 as the server chooses by ALPN, rustls with the ring provider and
/// the webpki roots (Mozilla's root certificates, compiled in).
///
/// It uses the same TLS setup as the layer's own calls to the Auth API, with
/// the provider chosen explicitly, so it works whichever rustls providers
/// other crates in the build turn on. Requests with an `http://` URI fail
/// with an error and are never sent.
///
/// Each call builds a new client with its own connection pool; clone the
/// client (or the service wrapping it) to share one pool.
///
/// # Example
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use simacan_auth::{Credentials, SimacanAuthLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # async fn run() -> Result<(), tower::BoxError> {
/// let svc = ServiceBuilder::new()
///     .layer(SimacanAuthLayer::new(Credentials::from_env()?))
///     .service(simacan_auth::https_client::<Full<Bytes>>());
///
/// let request = http::Request::get("https://example.services.simacan.com/api/trips")
///     .body(Full::default())?;
/// let response = svc.oneshot(request).await?;
/// println!("{}", response.status());
/// # Ok(()) }
/// ```
pub fn https_client<B>() -> HttpsClient<B>
where
    B: http_body::Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new()).build(connector(Schemes::HttpsOnly))
}

/// Which URI schemes a [`connector`] connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schemes {
    /// `https` only: for Simacan's APIs.
    HttpsOnly,
    /// `https`, and plain `http` too: for the Auth API, whose base URL may
    /// be plain `http` on loopback (checked when the environment is made).
    HttpsOrHttp,
}

/// The crate's HTTPS connector. See the [module docs](self).
pub(crate) fn connector(schemes: Schemes) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    // The TLS layer above it handles `https` URIs.
    http.enforce_http(false);
    http.set_nodelay(true);
    let builder = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .expect("the ring provider supports the default TLS versions");
    let builder = match schemes {
        Schemes::HttpsOnly => builder.https_only(),
        Schemes::HttpsOrHttp => builder.https_or_http(),
    };
    builder.enable_http1().enable_http2().wrap_connector(http)
}
