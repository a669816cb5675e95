//! [`ResponseFuture`]: the state machine of one request through
//! [`SimacanAuth`](crate::SimacanAuth).
//!
//! ```text
//! AwaitingToken ─▶ Calling ─▶ (401) ─▶ Refreshing ─▶ ReadyToReplay ─▶ Replaying
//!      (only without a valid token)   (only when no newer token exists)
//! ```
//!
//! With a valid token the request starts in `Calling`, so the hot path holds
//! no boxed future.
//!
//! # Example
//!
//! ```
//! use simacan_auth::future::ResponseFuture;
//! # type Svc = tower::util::BoxCloneService<http::Request<String>, http::Response<String>, tower::BoxError>;
//! fn assert_send<T: Send>() {}
//! assert_send::<ResponseFuture<Svc, String>>();
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use http::{header::AUTHORIZATION, request::Parts, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{BoxError, Service};

use crate::{
    body::ReplayBody,
    token::{AfterUnauthorized, TokenCache, TokenWait},
    Error,
};

/// What is kept to send a request again.
pub(crate) struct Replay<B: ReplayBody> {
    pub(crate) parts: Parts,
    pub(crate) body: B::Replay,
}

pin_project! {
    /// The response future of [`SimacanAuth`](crate::SimacanAuth). See the
    /// [module docs](self).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
        B: ReplayBody,
    {
        #[pin]
        state: State<S::Future, B>,
        // The instance that was polled ready; polled again before a replay.
        service: S,
        cache: TokenCache,
        replay: Option<Replay<B>>,
        // The generation of the token the request was sent with.
        generation: u64,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        AwaitingToken { wait: TokenWait, request: Option<Request<B>> },
        Calling { #[pin] future: F },
        Refreshing { wait: TokenWait, request: Option<Request<B>> },
        ReadyToReplay { request: Option<Request<B>> },
        Replaying { #[pin] future: F },
        Failed { error: Option<Error> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    B: ReplayBody,
{
    pub(crate) fn calling(
        future: S::Future,
        service: S,
        cache: TokenCache,
        replay: Option<Replay<B>>,
        generation: u64,
    ) -> Self {
        Self::new(
            State::Calling { future },
            service,
            cache,
            replay,
            generation,
        )
    }

    pub(crate) fn awaiting_token(
        wait: TokenWait,
        request: Request<B>,
        service: S,
        cache: TokenCache,
        replay: Option<Replay<B>>,
    ) -> Self {
        let state = State::AwaitingToken {
            wait,
            request: Some(request),
        };
        Self::new(state, service, cache, replay, 0)
    }

    pub(crate) fn failed(error: Error, service: S, cache: TokenCache) -> Self {
        let state = State::Failed { error: Some(error) };
        Self::new(state, service, cache, None, 0)
    }

    fn new(
        state: State<S::Future, B>,
        service: S,
        cache: TokenCache,
        replay: Option<Replay<B>>,
        generation: u64,
    ) -> Self {
        ResponseFuture {
            state,
            service,
            cache,
            replay,
            generation,
        }
    }
}

/// Whether a response says the token was refused.
fn is_unauthorized<R>(response: &Response<R>) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
}

const POLLED_AFTER_COMPLETION: &str = "ResponseFuture polled after completion";

impl<S, B, R> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
{
    type Output = Result<Response<R>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::AwaitingToken { wait, request } => {
                    let token = ready!(wait.as_mut().poll(cx))?;
                    let mut request = request.take().expect(POLLED_AFTER_COMPLETION);
                    *this.generation = token.generation;
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, token.header.clone());
                    let future = this.service.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if !is_unauthorized(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    let decision = this.cache.after_unauthorized(*this.generation);
                    let replay = this
                        .replay
                        .take()
                        .and_then(|r| Some(Request::from_parts(r.parts, B::replay(r.body)?)));
                    let Some(mut request) = replay else {
                        tracing::debug!("401 for a request whose body cannot be replayed");
                        return Poll::Ready(Ok(response));
                    };
                    match decision {
                        AfterUnauthorized::PassThrough => return Poll::Ready(Ok(response)),
                        AfterUnauthorized::Replay(token) => {
                            tracing::debug!(
                                "401 for a replaced token; replaying with the current one"
                            );
                            request
                                .headers_mut()
                                .insert(AUTHORIZATION, token.header.clone());
                            let request = Some(request);
                            this.state.set(State::ReadyToReplay { request });
                        }
                        AfterUnauthorized::Wait(wait) => {
                            let request = Some(request);
                            this.state.set(State::Refreshing { wait, request });
                        }
                    }
                }
                StateProj::Refreshing { wait, request } => {
                    let token = ready!(wait.as_mut().poll(cx))?;
                    tracing::debug!("token refreshed after a 401; replaying the request");
                    let mut request = request.take().expect(POLLED_AFTER_COMPLETION);
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, token.header.clone());
                    this.state.set(State::ReadyToReplay {
                        request: Some(request),
                    });
                }
                StateProj::ReadyToReplay { request } => {
                    ready!(this.service.poll_ready(cx)).map_err(Into::into)?;
                    let request = request.take().expect(POLLED_AFTER_COMPLETION);
                    let future = this.service.call(request);
                    this.state.set(State::Replaying { future });
                }
                StateProj::Replaying { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if is_unauthorized(&response) {
                        this.cache.replay_unauthorized();
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Failed { error } => {
                    let error = error.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Err(error.into()));
                }
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    B: ReplayBody,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::AwaitingToken { .. } => "AwaitingToken",
            State::Calling { .. } => "Calling",
            State::Refreshing { .. } => "Refreshing",
            State::ReadyToReplay { .. } => "ReadyToReplay",
            State::Replaying { .. } => "Replaying",
            State::Failed { .. } => "Failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}
