//! What carries the Auth API calls: the [`Transport`] trait, which sends one
//! form POST and reads the whole answer, and [`ServiceTransport`], which
//! adapts any tower service of `http::Request<Full<Bytes>>` to it. The
//! built-in client ([`HyperClient`](super::built_in::HyperClient)) is one
//! such service; a user's own, given to
//! [`SimacanAuthLayer::auth_client`](crate::SimacanAuthLayer::auth_client),
//! is another; the unit tests' fake Auth API implements the trait directly.
//!
//! The adapter builds the form POST, sends it once (a redirect is an answer
//! like any other, never followed) and reads at most
//! [`MAX_RESPONSE_BYTES`] of the answer. The per-call timeout and the errors
//! that name the URL stay in [`AuthApi`](super::grants::AuthApi).

use std::future::poll_fn;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use tower::{BoxError, Service};
use zeroize::Zeroizing;

use crate::{Endpoint, Error};

pub(crate) use crate::store::BoxFuture;

/// Bodies above this are refused: a token response is a few kilobytes.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

const USER_AGENT: &str = concat!("simacan-auth/", env!("CARGO_PKG_VERSION"));

/// What came back from one form POST.
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Sends a form-urlencoded POST and reads the whole answer, up to
/// [`MAX_RESPONSE_BYTES`]. Never follows redirects.
pub(crate) trait Transport: Send + Sync + 'static {
    fn post_form(
        &self,
        endpoint: Endpoint,
        uri: Uri,
        form: Zeroizing<String>,
    ) -> BoxFuture<'static, Result<RawResponse, Error>>;
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
