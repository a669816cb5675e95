//! Which client carries a layer's Auth API calls: the user's own service,
//! given to
//! [`SimacanAuthLayer::auth_client`](crate::SimacanAuthLayer::auth_client),
//! or else the built-in one with the proxy and roots the layer was given.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{BoxError, Service};

use super::{
    built_in::HyperClient,
    transport::{ServiceTransport, Transport},
};
use crate::token::Environment;

/// The Auth API client a layer's token state uses: the user's service when
/// one was given, else the built-in client. The built-in client's settings
/// are kept either way, so that what a layer does depends on which settings
/// it was given, never on their order.
#[derive(Clone, Default)]
pub(crate) struct AuthClient {
    pub(crate) built_in: HyperClient,
    custom: Option<Arc<dyn Transport>>,
}

impl AuthClient {
    /// Makes the user's `service` carry every Auth API call.
    pub(crate) fn set_custom<S, B>(&mut self, service: S)
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.custom = Some(Arc::new(ServiceTransport::new(service)));
    }

    /// The transport to `environment`'s Auth API.
    pub(crate) fn transport(&self, environment: &Environment) -> Arc<dyn Transport> {
        match &self.custom {
            None => self.built_in.transport(environment),
            Some(custom) => {
                self.built_in.warn_unused();
                Arc::clone(custom)
            }
        }
    }
}

impl fmt::Debug for AuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.custom {
            None => fmt::Debug::fmt(&self.built_in, f),
            Some(_) => f.write_str("Custom"),
        }
    }
}
