//! What carries the Auth API calls: any tower service of
//! `http::Request<Full<Bytes>>`, adapted to [`Transport`] by
//! [`ServiceTransport`]. The built-in client
//! ([`HyperClient`](super::hyper_transport::HyperClient)) is one such
//! service; a user's own, given to
//! [`SimacanAuthLayer::auth_client`](crate::SimacanAuthLayer::auth_client),
//! is another.
//!
//! The adapter builds the form POST, sends it once (a redirect is an answer
//! like any other, never followed) and reads at most
//! [`MAX_RESPONSE_BYTES`] of the answer. The per-call timeout and the errors
//! that name the URL stay in [`AuthApi`](super::client::AuthApi).

use std::{fmt, future::poll_fn, sync::Arc};

use bytes::Bytes;
use http::{header, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tower::{BoxError, Service};
use zeroize::Zeroizing;

use super::{
    client::{BoxFuture, RawResponse, Transport, MAX_RESPONSE_BYTES},
    hyper_transport::HyperClient,
    Environment,
};
use crate::{Endpoint, Error};

const USER_AGENT: &str = concat!("simacan-auth/", env!("CARGO_PKG_VERSION"));

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

/// A tower service of form POSTs as a [`Transport`]. See the
/// [module docs](self).
pub(crate) struct ServiceTransport<S> {
    service: S,
}

impl<S> ServiceTransport<S> {
    pub(crate) fn new(service: S) -> Self {
        ServiceTransport { service }
    }
}

impl<S, B> Transport for ServiceTransport<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn post_form(
        &self,
        endpoint: Endpoint,
        uri: Uri,
        form: Zeroizing<String>,
    ) -> BoxFuture<'static, Result<RawResponse, Error>> {
        let mut service = self.service.clone();
        Box::pin(async move {
            let unreachable = |e: BoxError| Error::unreachable(endpoint, &uri, e);
            let request = Request::builder()
                .method(Method::POST)
                .uri(uri.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .header(header::USER_AGENT, USER_AGENT)
                .body(Full::new(Bytes::copy_from_slice(form.as_bytes())))
                .map_err(|e| unreachable(e.into()))?;
            drop(form);
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(|e| unreachable(e.into()))?;
            let response = service
                .call(request)
                .await
                .map_err(|e| unreachable(e.into()))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Error::too_large(endpoint, &uri, MAX_RESPONSE_BYTES)
                    } else {
                        unreachable(e)
                    }
                })?
                .to_bytes();
            Ok(RawResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
    }
}

/// A client that cannot be built: every call fails with why.
pub(crate) struct Refuse(pub(crate) Error);

impl Transport for Refuse {
    fn post_form(
        &self,
        _: Endpoint,
        _: Uri,
        _: Zeroizing<String>,
    ) -> BoxFuture<'static, Result<RawResponse, Error>> {
        let error = self.0.clone();
        Box::pin(async move { Err(error) })
    }
}
