//! The crate's one TLS setup: rustls with the ring provider, offering
//! HTTP/2 and HTTP/1.1 by ALPN. Both [`https_client`] and the client that
//! talks to the Auth API are built on it: the first trusts the webpki roots,
//! the second the [`Roots`] its layer was given (the webpki roots unless
//! configured otherwise).
//!
//! The provider is given explicitly, never taken from rustls' process-wide
//! default: when another crate in the build turns on rustls' `aws-lc-rs`
//! provider as well, rustls cannot pick one on its own and a client built on
//! the default panics at its first use. These clients are not affected.

use std::{fmt, sync::Arc};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    ClientConfig, RootCertStore,
};

use crate::Error;

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
    let connector = connector(tcp(), &Roots::default(), Schemes::HttpsOnly);
    Client::builder(TokioExecutor::new()).build(connector)
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
pub(crate) fn connector<C>(tcp: C, roots: &Roots, schemes: Schemes) -> HttpsConnector<C> {
    let builder = HttpsConnectorBuilder::new().with_tls_config(client_config(roots));
    let builder = match schemes {
        Schemes::HttpsOnly => builder.https_only(),
        Schemes::HttpsOrHttp => builder.https_or_http(),
    };
    builder.enable_http1().enable_http2().wrap_connector(tcp)
}

/// The crate's rustls configuration: the ring provider given explicitly,
/// TLS 1.2 and 1.3, trusting `roots`, no ALPN (the caller sets it).
pub(crate) fn client_config(roots: &Roots) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots.store())
        .with_no_client_auth()
}

/// The certificates a server's certificate may chain to: the webpki roots
/// (Mozilla's, compiled in) or the platform's store, plus any CA
/// certificates added. Every certificate in it has been parsed once, when it
/// was added; building the store again cannot fail.
#[derive(Clone, Default)]
pub(crate) struct Roots {
    /// The platform's store, in place of the webpki roots.
    native: Option<Arc<[CertificateDer<'static>]>>,
    /// CA certificates added to either.
    added: Vec<CertificateDer<'static>>,
}

impl Roots {
    /// Adds every certificate of `pem` (one or more `CERTIFICATE` sections;
    /// other sections are skipped).
    ///
    /// Refuses, adding none, input without a certificate, with a section
    /// that is not valid PEM or base64, or with a certificate that cannot be
    /// a trust anchor. The message counts certificates, never quotes input.
    pub(crate) fn add_pem(&mut self, pem: &[u8]) -> Result<(), Error> {
        let mut added = Vec::new();
        for (n, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
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
        Ok(())
    }

    /// Trusts the platform's certificate store in place of the webpki
    /// roots, reading it now.
    #[cfg(feature = "native-roots")]
    pub(crate) fn use_native(&mut self) -> Result<(), Error> {
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
        self.native = Some(found.certs.into());
        Ok(())
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

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = if self.native.is_some() {
            "native"
        } else {
            "webpki"
        };
        f.debug_struct("Roots")
            .field("base", &base)
            .field("added", &self.added.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_without_a_usable_certificate_is_refused_and_adds_nothing() {
        let mut roots = Roots::default();
        let no_section = roots.add_pem(b"not a certificate").unwrap_err();
        assert!(
            no_section
                .to_string()
                .contains("no PEM `CERTIFICATE` section"),
            "{no_section}"
        );
        let bad_base64 = roots
            .add_pem(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert!(
            bad_base64
                .to_string()
                .contains("root certificate 1: not valid pem"),
            "{bad_base64}"
        );
        let not_der = roots
            .add_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert!(
            not_der
                .to_string()
                .contains("root certificate 1: not usable as a root"),
            "{not_der}"
        );
        assert!(roots.added.is_empty());
        assert_eq!(roots.store().len(), webpki_roots::TLS_SERVER_ROOTS.len());
    }
}
