//! What the benches and the allocation test share: a no-op inner service, a
//! realistic request, and the hand-assembled alternative to the layer.
#![allow(dead_code)]

use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    pin::pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::Full;
use simacan_auth::{Environment, SimacanAuthLayer, TokenScope, mock::MockAuthApi};
use tower::{
    Layer, Service, ServiceBuilder,
    retry::{Retry, RetryLayer},
};
use tower_http::auth::{AddAuthorization, AddAuthorizationLayer};

/// The static bearer token of the `AddAuthorization` baselines.
pub const STATIC_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.c3RhdGljLWJlbmNoLXRva2Vu.c2lnbmF0dXJlLWJ5dGVz";

const JSON: &[u8] = br#"{"trip":{"id":"AMS-RTM-0042","stops":[{"name":"Amsterdam DC","eta":"2026-11-28T08:00:00Z"},{"name":"Rotterdam Hub","eta":"2026-11-28T09:15:00Z"}]}}"#;

/// A POST with a JSON body and a few headers, as a Simacan client sends.
pub fn realistic_request() -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from_static(JSON)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() =
        Uri::from_static("https://trips.services.simacan.com/api/v2/trips?dry_run=false");
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static("planner/2.3"));
    headers.insert(
        "x-request-id",
        HeaderValue::from_static("5f0c6f0e-4b7e-4d8a-9a53-3f8a1c2d9e71"),
    );
    request
}

/// An inner service that answers 200 at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Noop;

impl<B> Service<Request<B>> for Noop {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

/// What a user would assemble by hand for 401 replay: tower's `Retry` with
/// a policy that clones the request and retries it once on 401.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOn401 {
    pub attempts_left: usize,
}

impl<B: Clone, R, E> tower::retry::Policy<Request<B>, Response<R>, E> for ReplayOn401 {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<B>,
        result: &mut Result<Response<R>, E>,
    ) -> Option<Ready<()>> {
        match result {
            Ok(response)
                if response.status() == StatusCode::UNAUTHORIZED && self.attempts_left > 0 =>
            {
                self.attempts_left -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        let mut clone = Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.version_mut() = request.version();
        *clone.headers_mut() = request.headers().clone();
        *clone.extensions_mut() = request.extensions().clone();
        Some(clone)
    }
}

/// Polls a future once; every service here answers without waiting.
pub fn poll_now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked service was expected to answer at once"),
    }
}

/// Polls ready, calls, and polls the response: one request, synchronously.
pub fn call_now<S, R>(svc: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(ready) => ready.unwrap(),
        Poll::Pending => panic!("not ready"),
    }
    poll_now(svc.call(request)).unwrap()
}

/// A layer pointed at `mock`, holding a token already, and scoped as a
/// production layer is (Simacan's hosts, less the staging ones), so that
/// every request pays for the host match.
pub async fn warm_layer(mock: &MockAuthApi) -> SimacanAuthLayer {
    let scope = TokenScope::for_environment(&Environment::Production);
    let layer = SimacanAuthLayer::new(mock.credentials())
        .environment(mock.environment())
        .token_scope(scope);
    layer.access_token().await.expect("the mock logs in");
    layer
}

/// A mock Auth API on `runtime` and a layer holding one of its tokens.
pub fn warm_setup(runtime: &tokio::runtime::Runtime) -> (MockAuthApi, SimacanAuthLayer) {
    let mock = runtime
        .block_on(MockAuthApi::start())
        .expect("the mock binds a loopback port");
    let layer = runtime.block_on(warm_layer(&mock));
    (mock, layer)
}

/// The floor for "add a header": tower-http's static bearer token.
pub fn add_authorization() -> AddAuthorization<Noop> {
    AddAuthorizationLayer::bearer(STATIC_TOKEN).layer(Noop)
}

/// The hand-assembled alternative: `AddAuthorization` under tower's `Retry`
/// with a policy that clones the request to replay it once on 401.
pub fn add_authorization_retry() -> Retry<ReplayOn401, AddAuthorization<Noop>> {
    ServiceBuilder::new()
        .layer(RetryLayer::new(ReplayOn401 { attempts_left: 1 }))
        .service(add_authorization())
}
