//! The built-in Auth API client: a hyper-util client, adapted by
//! [`ServiceTransport`]. With the `rustls` feature it speaks HTTPS through
//! the crate's one TLS setup ([`https`](super::https)), trusting the
//! configured roots, directly or through an HTTP `CONNECT` proxy
//! ([`proxy`](super::proxy)); plain HTTP for loopback base URLs either way.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::Connect},
    rt::TokioExecutor,
};

use super::transport::{Refuse, ServiceTransport, Transport};
#[cfg(feature = "rustls")]
use super::{https::AuthRoots, proxy::AuthProxy};
use crate::{Error, token::Environment};

/// The settings of the built-in client; the client itself is built for one
/// environment by [`transport`](Self::transport). `None` is the default:
/// the proxy the environment names when the client is built, the webpki
/// roots.
#[derive(Clone, Default)]
pub(crate) struct HyperClient {
    #[cfg(feature = "rustls")]
    pub(crate) proxy: Option<AuthProxy>,
    #[cfg(feature = "rustls")]
    pub(crate) roots: Option<AuthRoots>,
}

impl HyperClient {
    /// A client for `environment`'s Auth API, or, when none can be built
    /// (an unusable proxy variable, https without the `rustls` feature),
    /// one whose every call fails with why.
    pub(crate) fn transport(&self, environment: &Environment) -> Arc<dyn Transport> {
        self.build(environment).unwrap_or_else(|error| {
            tracing::warn!(error = %crate::error::with_causes(&error), "the simacan auth api client cannot be built");
            Arc::new(Refuse(error))
        })
    }

    /// Warns about the settings given, which go unused: a client of the
    /// user's own carries the Auth API calls.
    pub(crate) fn warn_unused(&self) {
        #[cfg(feature = "rustls")]
        if self.proxy.is_some() || self.roots.is_some() {
            tracing::warn!(
                proxy = self.proxy.is_some(),
                roots = self.roots.is_some(),
                "the auth api proxy and roots given to the layer are ignored: \
                 they configure the built-in client, which auth_client replaces"
            );
        }
    }

    #[cfg(feature = "rustls")]
    fn build(&self, environment: &Environment) -> Result<Arc<dyn Transport>, Error> {
        use super::{
            https::{Schemes::HttpsOrHttp, connector, tcp},
            proxy::ProxyTunnel,
        };

        let url = environment.endpoint_uri(crate::Endpoint::Password)?;
        let proxy = match &self.proxy {
            Some(proxy) => proxy.clone(),
            None => AuthProxy::from_env()?,
        };
        let webpki = AuthRoots::webpki();
        let roots = self.roots.as_ref().unwrap_or(&webpki);
        Ok(match proxy.proxy_for(&url) {
            None => over(connector(tcp(), roots, HttpsOrHttp)),
            Some((intercept, address)) => {
                tracing::debug!(proxy = %address, "the simacan auth api through a proxy");
                let tunnel = ProxyTunnel::new(&intercept, address, tcp());
                over(connector(tunnel, roots, HttpsOrHttp))
            }
        })
    }

    #[cfg(not(feature = "rustls"))]
    fn build(&self, environment: &Environment) -> Result<Arc<dyn Transport>, Error> {
        if environment.base_url().starts_with("https:") {
            return Err(Error::config(
                "the built-in auth api client speaks https only with the `rustls` feature \
                 of simacan-auth: turn it on, or give the layer an https client of your own \
                 with .auth_client(…)",
            ));
        }
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        Ok(over(http))
    }
}

/// A hyper-util client over `connector`, as a transport.
fn over<C>(connector: C) -> Arc<dyn Transport>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client: Client<C, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    Arc::new(ServiceTransport::new(client))
}

impl fmt::Debug for HyperClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("HyperClient");
        #[cfg(feature = "rustls")]
        {
            match &self.proxy {
                Some(proxy) => s.field("proxy", proxy),
                None => s.field("proxy", &format_args!("FromEnv")),
            };
            match &self.roots {
                Some(roots) => s.field("roots", roots),
                None => s.field("roots", &AuthRoots::webpki()),
            };
        }
        s.finish()
    }
}
