//! [`SimacanAuth`]: the service that authenticates every request.
//!
//! Built by [`SimacanAuthLayer`](crate::SimacanAuthLayer). For each request
//! in its [`TokenScope`] it sets `Authorization: Bearer
//! <token>` (replacing any the request had), keeps a replay of the request,
//! and when the response is a 401 it heals it: refresh once for all
//! concurrent callers, replay once. A request outside the scope goes to the
//! inner service untouched, and its response comes back as is.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use simacan_auth::{Credentials, SimacanAuth, SimacanAuthLayer};
//! use tower::{service_fn, Layer};
//!
//! let inner = service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//! let svc: SimacanAuth<_> = SimacanAuthLayer::new(Credentials::new("user", "pw")).layer(inner);
//! let inner = svc.into_inner();
//! # let _ = inner;
//! ```

use std::{
    fmt, mem,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower::{BoxError, Service};

use crate::{
    TokenScope,
    body::ReplayBody,
    future::{Replay, ResponseFuture},
    heal::Heal,
    token::{Lookup, TokenCache},
};

/// Authenticates requests to a Simacan API. See the [module docs](self).
///
/// Clones share the token of the layer they were built from.
///
/// It serves `http::Request<B>` for any body `B` that implements
/// [`ReplayBody`] and any inner service `S: Clone` answering
/// `http::Response<R>` with a `'static` body type `R` (so that gRPC bodies
/// can be recognised); its error is [`tower::BoxError`] and its future is
/// `Send` when the inner one is.
///
/// # The inner service must be `Clone`
///
/// Each request is sent with the instance of the inner service that was
/// polled ready, which stays with the request for a replay, and a clone
/// takes its place. Without `S: Clone`, `SimacanAuth<S>` is no `Service`,
/// and the compiler says only that the method (`oneshot`, `ready`, `call`)
/// "exists … but its trait bounds were not satisfied":
///
/// ```compile_fail,E0599
/// # async fn run(client: simacan_auth::HttpsClient<http_body_util::Full<bytes::Bytes>>, request: http::Request<http_body_util::Full<bytes::Bytes>>) {
/// # use std::time::Duration;
/// # use simacan_auth::{Credentials, SimacanAuthLayer};
/// # use tower::{ServiceBuilder, ServiceExt};
/// let svc = ServiceBuilder::new()
///     .layer(SimacanAuthLayer::new(Credentials::new("user", "pw")))
///     .rate_limit(100, Duration::from_secs(1)) // RateLimit is not Clone
///     .service(client);
/// let response = svc.oneshot(request).await;
/// # }
/// ```
///
/// Put a [`Buffer`] in between: a `Clone` handle to one instance of the
/// service, which runs in a task of its own (so make it inside a Tokio
/// runtime). Its argument is how many requests may wait.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// use std::time::Duration;
/// use http_body_util::Full;
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
/// use simacan_auth::{mock::MockAuthApi, SimacanAuthLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let mock = MockAuthApi::start().await?;
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
/// let svc = ServiceBuilder::new()
///     .layer(SimacanAuthLayer::new(mock.credentials()).environment(mock.environment()))
///     .buffer(64)                              // Clone, whatever is below it
///     .rate_limit(100, Duration::from_secs(1)) // one limit for every clone
///     .service(client);
///
/// let request = http::Request::get(mock.url("/api/v1/trips")).body(Full::default())?;
/// let response = svc.oneshot(request).await?;
/// assert_eq!(response.status(), http::StatusCode::OK);
/// # Ok(()) }
/// ```
///
/// [`Buffer`]: https://docs.rs/tower/0.5/tower/buffer/struct.Buffer.html
///
/// # Example
///
/// ```
/// # use std::convert::Infallible;
/// # use http::{Request, Response};
/// use simacan_auth::{Credentials, SimacanAuthLayer};
/// use tower::ServiceBuilder;
///
/// # let hyper_client = tower::service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) });
/// let svc = ServiceBuilder::new()
///     .layer(SimacanAuthLayer::new(Credentials::new("user", "pw")))
///     .service(hyper_client);
/// # let _ = svc;
/// ```
#[derive(Clone)]
pub struct SimacanAuth<S> {
    inner: S,
    cache: TokenCache,
    replay_body_limit: usize,
    scope: TokenScope,
}

impl<S> SimacanAuth<S> {
    pub(crate) fn new(
        inner: S,
        cache: TokenCache,
        replay_body_limit: usize,
        scope: TokenScope,
    ) -> Self {
        SimacanAuth {
            inner,
            cache,
            replay_body_limit,
            scope,
        }
    }

    /// The wrapped service.
    ///
    /// # Example
    ///
    /// ```
    /// # use tower::Layer;
    /// # let svc = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p")).layer(7u8);
    /// assert_eq!(*svc.get_ref(), 7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    ///
    /// # Example
    ///
    /// ```
    /// # use tower::Layer;
    /// # let mut svc = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p")).layer(7u8);
    /// *svc.get_mut() = 8;
    /// assert_eq!(*svc.get_ref(), 8);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    ///
    /// # Example
    ///
    /// ```
    /// # use tower::Layer;
    /// # let svc = simacan_auth::SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p")).layer(7u8);
    /// assert_eq!(svc.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, R> Service<Request<B>> for SimacanAuth<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    R: 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // Keep the instance that was polled ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);
        let mut heal = Heal::new(self.cache.clone());
        if !self.scope.allows(request.uri()) {
            tracing::debug!(host = ?request.uri().host(), "outside the token scope; sent as is");
            let future = service.call(request);
            return ResponseFuture::passing_through(future, service, heal);
        }
        // Copied before the header is set: a replay gets the token it needs.
        let limit = self.replay_body_limit;
        let replay = request
            .body_mut()
            .prepare_replay(limit)
            .map(|body| Replay::of(&request, body, limit));
        match self.cache.lookup() {
            Lookup::Valid {
                header,
                generation,
                unproven,
            } => {
                heal.authorize(request.headers_mut(), header, generation, unproven);
                let future = service.call(request);
                ResponseFuture::calling(future, service, heal, replay)
            }
            Lookup::Wait(wait) => {
                ResponseFuture::awaiting_token(wait, request, service, heal, replay)
            }
            Lookup::Failed(error) => ResponseFuture::failed(error, service, heal),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for SimacanAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimacanAuth")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .field("replay_body_limit", &self.replay_body_limit)
            .field("scope", &self.scope)
            .finish()
    }
}
