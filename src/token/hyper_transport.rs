//! The built-in Auth API client: a hyper-util client, adapted by
//! [`ServiceTransport`]. With the `rustls` feature it speaks HTTPS through
//! the crate's one TLS setup ([`crate::https`]), trusting the configured
//! roots, directly or through an HTTP `CONNECT` proxy
//! ([`proxy`](super::proxy)); plain HTTP for loopback base URLs either way.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::Connect, Client},
    rt::TokioExecutor,
};

use super::{
    client::Transport,
    transport::{Refuse, ServiceTransport},
    Environment,
};
use crate::Error;

/// The settings of the built-in client; the client itself is built for one
/// environment by [`transport`](Self::transport).
#[derive(Clone, Debug, Default)]
pub(crate) struct HyperClient {
    #[cfg(feature = "rustls")]
    pub(crate) proxy: super::proxy::ProxyConfig,
    #[cfg(feature = "rustls")]
    pub(crate) roots: crate::https::Roots,
}

impl HyperClient {
    /// A client for `environment`'s Auth API, or, when none can be built
    /// (an unusable proxy variable, https without the `rustls` feature),
    /// one whose every call fails with why.
    pub(crate) fn transport(&self, environment: &Environment) -> Arc<dyn Transport> {
        self.build(environment).unwrap_or_else(|error| {
            tracing::warn!(%error, "the simacan auth api client cannot be built");
            Arc::new(Refuse(error))
        })
    }

    #[cfg(feature = "rustls")]
    fn build(&self, environment: &Environment) -> Result<Arc<dyn Transport>, Error> {
        use crate::https::{connector, tcp, Schemes::HttpsOrHttp};

        let url = environment.endpoint_uri(crate::Endpoint::Password)?;
        let rules = self.proxy.rules()?;
        Ok(match rules.proxy_for(&url) {
            None => over(connector(tcp(), &self.roots, HttpsOrHttp)),
            Some((intercept, address)) => {
                tracing::debug!(proxy = %address, "the simacan auth api through a proxy");
                let tunnel = super::proxy::ProxyTunnel::new(&intercept, address, tcp());
                over(connector(tunnel, &self.roots, HttpsOrHttp))
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
