//! The crate's one TLS setup: rustls with the ring provider, offering
//! HTTP/2 and HTTP/1.1 by ALPN. Both [`https_client`] and the client that
//! talks to the Auth API are built on it: the first trusts the webpki roots,
//! the second the [`AuthRoots`] its layer was given (the webpki roots unless
//! configured otherwise).
//!
//! The provider is given explicitly, never taken from rustls' process-wide
//! default: when another crate in the build turns on rustls' `aws-lc-rs`
//! provider as well, rustls cannot pick one on its own and a client built on
//! the default panics at its first use. These clients are not affected.
//!
//! hyper-rustls stays inside: [`HttpsClient`] wraps the hyper-util client
//! over its connector rather than naming it, so its version is not part of
//! the crate's API.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{self, Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};
use tower::{BoxError, Service};

use crate::Error;

/// The client [`https_client`] returns: a hyper-util client over HTTPS
/// through rustls, sending request bodies of type `B`. A
/// [`tower::Service`] of `http::Request<B>`, answering
/// `http::Response<hyper::body::Incoming>`, with hyper-util's client
/// [`Error`](hyper_util::client::legacy::Error) (its `is_connect()` tells a
/// failure to connect, a TLS handshake included).
///
/// Clones share one connection pool.
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
pub struct HttpsClient<B> {
    inner: Client<HttpsConnector<HttpConnector>, B>,
}

impl<B> Clone for HttpsClient<B> {
    fn clone(&self) -> Self {
        HttpsClient {
            inner: self.inner.clone(),
        }
    }
}

impl<B> fmt::Debug for HttpsClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsClient").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for HttpsClient<B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<hyper::body::Incoming>;
    type Error = legacy::Error;
    type Future = legacy::ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.inner.call(request)
    }
}

/// A hyper-util client for Simacan's APIs, ready to wrap in
/// [`SimacanAuthLayer`](crate::SimacanAuthLayer): HTTPS only, HTTP/2 or
/// HTTP/1.1 as the server chooses by ALPN, rustls with the process-wide
/// crypto provider when the application installed one (else ring) and
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
    let connector = connector(tcp(), &AuthRoots::webpki(), Schemes::HttpsOnly);
    HttpsClient {
        inner: Client::builder(TokioExecutor::new()).build(connector),
    }
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

/// The TCP connector under the TLS layer.
pub(crate) fn tcp() -> HttpConnector {
    let mut http = HttpConnector::new();
    // The TLS layer above it handles `https` URIs.
    http.enforce_http(false);
    http.set_nodelay(true);
    http
}

/// The crate's HTTPS connector over `tcp` (a direct connection or a proxy
/// tunnel), trusting `roots`. See the [module docs](self).
pub(crate) fn connector<C>(tcp: C, roots: &AuthRoots, schemes: Schemes) -> HttpsConnector<C> {
    let builder = HttpsConnectorBuilder::new().with_tls_config(client_config(roots));
    let builder = match schemes {
        Schemes::HttpsOnly => builder.https_only(),
        Schemes::HttpsOrHttp => builder.https_or_http(),
    };
    builder.enable_http1().enable_http2().wrap_connector(tcp)
}

/// The crate's rustls configuration: the [crypto provider](crate::crypto::provider) given
/// explicitly, TLS 1.2 and 1.3, trusting `roots`, no ALPN (the caller sets
/// it).
pub(crate) fn client_config(roots: &AuthRoots) -> ClientConfig {
    ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .expect("rustls' providers support the default TLS versions")
        .with_root_certificates(roots.store())
        .with_no_client_auth()
}

/// The certificates the Auth API's certificate may chain to, for
/// [`SimacanAuthLayer::auth_roots`](crate::SimacanAuthLayer::auth_roots):
/// the webpki roots (Mozilla's, compiled in) or the platform's store, plus
/// CA certificates of your own, for an Auth API, or a TLS-inspecting proxy,
/// with a certificate from a private CA.
///
/// Every certificate is checked when it is added, so a layer given these
/// roots cannot fail to build its client on their account. They serve the
/// Auth API calls only, not [`https_client`]. Whatever the roots, the
/// provider given to rustls is the process-wide default when the
/// application installed one, else ring.
///
/// # Example
///
/// ```
/// use simacan_auth::{AuthRoots, Credentials, SimacanAuthLayer};
///
/// # let ca_pem = rcgen::generate_simple_self_signed(vec!["ca.corp.example".to_owned()]).unwrap().cert.pem();
/// // let ca_pem = std::fs::read("/etc/corp/root-ca.pem")?;
/// let roots = AuthRoots::webpki().with_pem(ca_pem)?;
/// let layer = SimacanAuthLayer::new(Credentials::new("user", "password")).auth_roots(roots);
/// # let _ = layer;
/// # Ok::<(), simacan_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct AuthRoots {
    /// The platform's store, in place of the webpki roots.
    native: Option<Arc<[CertificateDer<'static>]>>,
    /// CA certificates added to either.
    added: Vec<CertificateDer<'static>>,
}

impl AuthRoots {
    /// The webpki roots: Mozilla's root certificates, compiled in. What a
    /// layer trusts unless given other roots.
    ///
    /// # Example
    ///
    /// ```
    /// let roots = simacan_auth::AuthRoots::webpki();
    /// assert_eq!(format!("{roots:?}"), r#"AuthRoots { base: "webpki", added: 0 }"#);
    /// ```
    #[must_use]
    pub fn webpki() -> Self {
        AuthRoots {
            native: None,
            added: Vec::new(),
        }
    }

    /// The platform's certificate store in place of the webpki roots, read
    /// now through `rustls-native-certs`: `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` when set, else the system's store.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) when the store has no usable
    /// certificate. Certificates it cannot use beside usable ones are
    /// skipped with a warning.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use simacan_auth::{AuthRoots, Credentials, SimacanAuthLayer};
    ///
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
    ///     .auth_roots(AuthRoots::native()?);
    /// # let _ = layer;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    #[cfg(feature = "native-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-roots")))]
    pub fn native() -> Result<Self, Error> {
        let found = rustls_native_certs::load_native_certs();
        let mut usable = RootCertStore::empty();
        let (added, unusable) = usable.add_parsable_certificates(found.certs.iter().cloned());
        if added == 0 {
            let why = match found.errors.first() {
                Some(e) => format!(": {e}"),
                None => String::new(),
            };
            return Err(Error::config(format!(
                "no usable certificate in the platform's certificate store{why}"
            )));
        }
        if unusable > 0 || !found.errors.is_empty() {
            tracing::warn!(
                added,
                unusable,
                errors = found.errors.len(),
                "some of the platform's root certificates could not be used"
            );
        }
        Ok(AuthRoots {
            native: Some(found.certs.into()),
            added: Vec::new(),
        })
    }

    /// These roots and the CA certificates in `pem`: one or more
    /// `-----BEGIN CERTIFICATE-----` sections; other sections are skipped.
    /// Calls add up.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) for input without a certificate,
    /// with a section that is not valid PEM, or with a certificate that
    /// cannot be a root. The message counts certificates and never quotes
    /// the input.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{AuthRoots, Error};
    ///
    /// # let ca_pem = rcgen::generate_simple_self_signed(vec!["ca.corp.example".to_owned()]).unwrap().cert.pem();
    /// let roots = AuthRoots::webpki().with_pem(&ca_pem)?;
    /// assert_eq!(format!("{roots:?}"), r#"AuthRoots { base: "webpki", added: 1 }"#);
    ///
    /// let error = AuthRoots::webpki().with_pem("not a certificate").unwrap_err();
    /// assert!(error.kind() == simacan_auth::ErrorKind::Configuration);
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    pub fn with_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, Error> {
        let mut added = Vec::new();
        for (n, cert) in CertificateDer::pem_slice_iter(pem.as_ref()).enumerate() {
            let cert = cert.map_err(|e| {
                Error::config(format!("root certificate {}: not valid pem: {e}", n + 1))
            })?;
            RootCertStore::empty().add(cert.clone()).map_err(|e| {
                Error::config(format!(
                    "root certificate {}: not usable as a root: {e}",
                    n + 1
                ))
            })?;
            added.push(cert);
        }
        if added.is_empty() {
            return Err(Error::config(
                "root certificates: no PEM `CERTIFICATE` section found",
            ));
        }
        self.added.extend(added);
        Ok(self)
    }

    fn store(&self) -> RootCertStore {
        let mut store = match &self.native {
            Some(native) => {
                let mut store = RootCertStore::empty();
                store.add_parsable_certificates(native.iter().cloned());
                store
            }
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        store.add_parsable_certificates(self.added.iter().cloned());
        store
    }
}

impl fmt::Debug for AuthRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = if self.native.is_some() {
            "native"
        } else {
            "webpki"
        };
        f.debug_struct("AuthRoots")
            .field("base", &base)
            .field("added", &self.added.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn input_without_a_usable_certificate_is_refused() {
        for (pem, why) in [
            (&b"not a certificate"[..], "no PEM `CERTIFICATE` section"),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "root certificate 1: not valid pem",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "root certificate 1: not usable as a root",
            ),
        ] {
            let error = AuthRoots::webpki().with_pem(pem).unwrap_err();
            assert!(error.kind() == ErrorKind::Configuration, "{error:?}");
            assert!(error.to_string().contains(why), "{error}");
        }
    }

    #[test]
    fn certificates_add_to_the_webpki_roots_and_calls_add_up() {
        let ca = |name: &str| {
            rcgen::generate_simple_self_signed(vec![name.to_owned()])
                .unwrap()
                .cert
                .pem()
        };
        let bundle = format!("{}{}", ca("one.test"), ca("two.test"));
        let roots = AuthRoots::webpki()
            .with_pem(bundle)
            .unwrap()
            .with_pem(ca("three.test"))
            .unwrap();
        let webpki = webpki_roots::TLS_SERVER_ROOTS.len();
        assert_eq!(AuthRoots::webpki().store().len(), webpki);
        assert_eq!(roots.store().len(), webpki + 3);
    }
}
