//! [`ResponseFuture`]: the state machine of one request through
//! [`SimacanAuth`](crate::SimacanAuth).
//!
//! ```text
//! AwaitingToken ─▶ Calling ─▶ (401) ─▶ Refreshing ─▶ ReadyToReplay ─▶ Calling (replayed)
//!      (only without a valid token)   (only when no newer token exists)
//! ```
//!
//! With a valid token the request starts in `Calling`, so the hot path holds
//! no boxed future. A request outside the token scope is `PassingThrough`
//! from start to end: the inner future, its response returned as is.
//!
//! A gRPC response (`application/grpc`) with no status in its headers and a
//! `tonic::body::Body` (feature `tonic`) goes through `Peeking` first: its
//! first frame is read, to catch a server that refuses the token with an
//! empty body and trailers carrying UNAUTHENTICATED, and is always put back
//! in front of the body, so a response handed to the caller is exactly the
//! one the server sent. The first frame is awaited, for at most 100 ms
//! ([`SimacanAuthLayer::grpc_peek_window`](crate::SimacanAuthLayer::grpc_peek_window)), only
//! when the request body was sent in full ([`ReplayBody::is_sent_in_full`]):
//! the server then cannot be waiting for the client; a replay counts as sent
//! in full when its first attempt's body was. Otherwise (a bidirectional or
//! client stream still sending, or a body of which nothing was kept for a
//! replay) the first frame is polled once, and the response is handed over
//! at once when it is not ready, so no stream is delayed.
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
    time::Duration,
};

use http::{header::AUTHORIZATION, Extensions, HeaderMap, Method, Request, Response, Uri, Version};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{BoxError, Service};

use crate::{
    body::ReplayBody,
    failure::auth_failure,
    stats::PassedThrough,
    token::{AfterUnauthorized, TokenCache, TokenWait, MAX_REPLAYS},
    unauthorized::{poll_peek, verdict, Peeked, Verdict},
    Error,
};

/// What is kept to send a request again: its head, copied before the
/// `Authorization` header is set, and the body's replay.
pub(crate) struct Replay<B: ReplayBody> {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    body: B::Replay,
    /// The replay body limit, to keep a replay of the replay.
    limit: usize,
}

impl<B: ReplayBody> Replay<B> {
    pub(crate) fn of(request: &Request<B>, body: B::Replay, limit: usize) -> Self {
        Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            extensions: request.extensions().clone(),
            body,
            limit,
        }
    }

    /// The request to send again, or `None` when the body cannot be
    /// rebuilt; with `again`, also a replay of it, kept the same way.
    fn into_request(self, again: bool) -> Option<(Request<B>, Option<Replay<B>>)> {
        let limit = self.limit;
        let mut request = Request::new(B::replay(self.body)?);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        *request.extensions_mut() = self.extensions;
        let next = again
            .then(|| request.body_mut().prepare_replay(limit))
            .flatten()
            .map(|body| Replay::of(&request, body, limit));
        Some((request, next))
    }
}

pin_project! {
    /// The response future of [`SimacanAuth`](crate::SimacanAuth). See the
    /// [module docs](self).
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::future::ResponseFuture;
    /// # type Svc = tower::util::BoxCloneService<http::Request<String>, http::Response<String>, tower::BoxError>;
    /// // `Send` when the inner future is, and `Sync` too when it is.
    /// fn assert_send<T: Send>() {}
    /// assert_send::<ResponseFuture<Svc, String>>();
    /// ```
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
        B: ReplayBody,
    {
        #[pin]
        state: State<S::Future, B, S::Response>,
        // The instance that was polled ready; polled again before a replay.
        service: S,
        cache: TokenCache,
        replay: Option<Replay<B>>,
        // The generation of the token the request was sent with.
        generation: u64,
        // Whether that token was obtained to heal a 401 and not yet accepted.
        unproven: bool,
        // Whether the first attempt's body was sent in full when it was
        // refused: its replay is then whole, and a peek at the replay's
        // response may wait.
        sent_in_full: bool,
        // How many times the request was sent again after a 401.
        replays: u8,
    }
}

pin_project! {
    #[project = StateProj]
    // Requests waiting for a token are boxed: those states are rare, and
    // keeping them small keeps the hot-path future small.
    enum State<F, B, T> {
        AwaitingToken { wait: TokenWait, request: Option<Box<Request<B>>> },
        Calling { #[pin] future: F },
        // A gRPC response whose status may come in trailers. Without a
        // window the first frame is polled once, not awaited.
        // The window is boxed: a `Sleep` would double the hot-path future.
        Peeking { window: Option<Pin<Box<Sleep>>>, response: Option<T> },
        Refreshing { wait: TokenWait, request: Option<Box<Request<B>>> },
        ReadyToReplay { request: Option<Box<Request<B>>> },
        Failed { error: Option<Error> },
        // Outside the token scope: no token, no replay, the response as is.
        PassingThrough { #[pin] future: F },
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
        unproven: bool,
    ) -> Self {
        let state = State::Calling { future };
        let mut future = Self::new(state, service, cache, replay, generation);
        future.unproven = unproven;
        future
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
            request: Some(Box::new(request)),
        };
        Self::new(state, service, cache, replay, 0)
    }

    pub(crate) fn passing_through(future: S::Future, service: S, cache: TokenCache) -> Self {
        let state = State::PassingThrough { future };
        Self::new(state, service, cache, None, 0)
    }

    pub(crate) fn failed(error: Error, service: S, cache: TokenCache) -> Self {
        let state = State::Failed { error: Some(error) };
        Self::new(state, service, cache, None, 0)
    }

    fn new(
        state: State<S::Future, B, S::Response>,
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
            unproven: false,
            sent_in_full: false,
            replays: 0,
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "ResponseFuture polled after completion";

impl<S, B, R> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    R: 'static,
{
    type Output = Result<Response<R>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let output = ready!(self.as_mut().poll_attempts(cx));
        // No replay follows once the caller has the response: let a streaming
        // body stop keeping frames now, not when this future is dropped.
        *self.project().replay = None;
        Poll::Ready(output)
    }
}

impl<S, B, R> ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    R: 'static,
{
    fn poll_attempts(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<R>, BoxError>> {
        let mut this = self.project();
        loop {
            // A response whose token was refused, and the sending it answered.
            let (refused, attempt) = match this.state.as_mut().project() {
                StateProj::AwaitingToken { wait, request } => {
                    let token = ready!(wait.as_mut().poll(cx)).map_err(auth_failure::<R>)?;
                    let mut request = request.take().expect(POLLED_AFTER_COMPLETION);
                    *this.generation = token.generation;
                    *this.unproven = token.is_unproven();
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, token.header.clone());
                    let future = this.service.call(*request);
                    this.state.set(State::Calling { future });
                    continue;
                }
                StateProj::Calling { future } => {
                    let attempt = *this.replays;
                    let response = ready!(future.poll(cx)).map_err(|error| {
                        if attempt > 0 {
                            this.cache.counters().unauthorized_error();
                        }
                        error.into()
                    })?;
                    let verdict = verdict(&response);
                    if verdict != Verdict::Accepted && attempt == 0 {
                        // Asked now, while the replay handle is still here.
                        *this.sent_in_full = this
                            .replay
                            .as_ref()
                            .is_some_and(|replay| B::is_sent_in_full(&replay.body));
                    }
                    match verdict {
                        Verdict::Accepted => {
                            let replayed = attempt > 0;
                            accepted(this.cache, *this.generation, *this.unproven, replayed);
                            return Poll::Ready(Ok(response));
                        }
                        Verdict::Refused => (response, attempt),
                        Verdict::PeekTrailers => {
                            // The window is read here, off the hot path.
                            let window = this.sent_in_full.then(|| this.cache.grpc_peek_window());
                            this.state.set(peeking(response, window));
                            continue;
                        }
                    }
                }
                StateProj::Peeking { window, response } => {
                    let attempt = *this.replays;
                    let slot = response.as_mut().expect(POLLED_AFTER_COMPLETION);
                    let window = window.as_mut().map(Pin::as_mut);
                    let peeked = ready!(poll_peek(slot, window, cx));
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    match peeked {
                        Peeked::Refused => (response, attempt),
                        Peeked::Accepted => {
                            let replayed = attempt > 0;
                            accepted(this.cache, *this.generation, *this.unproven, replayed);
                            return Poll::Ready(Ok(response));
                        }
                        // Proves the token (a refusal comes at once far more
                        // often than late), but a replay handed over undecided
                        // does not count as healed.
                        Peeked::Undecided => {
                            accepted(this.cache, *this.generation, *this.unproven, false);
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::Refreshing { wait, request } => {
                    let token = ready!(wait.as_mut().poll(cx)).map_err(|error| {
                        this.cache.counters().unauthorized_error();
                        auth_failure::<R>(error)
                    })?;
                    tracing::debug!("token refreshed after a 401; replaying the request");
                    let mut request = request.take().expect(POLLED_AFTER_COMPLETION);
                    *this.generation = token.generation;
                    *this.unproven = token.is_unproven();
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, token.header.clone());
                    this.state.set(State::ReadyToReplay {
                        request: Some(request),
                    });
                    continue;
                }
                StateProj::ReadyToReplay { request } => {
                    ready!(this.service.poll_ready(cx)).map_err(|error| {
                        this.cache.counters().unauthorized_error();
                        error.into()
                    })?;
                    let request = request.take().expect(POLLED_AFTER_COMPLETION);
                    let future = this.service.call(*request);
                    *this.replays += 1;
                    this.state.set(State::Calling { future });
                    continue;
                }
                StateProj::Failed { error } => {
                    let error = error.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Err(auth_failure::<R>(error)));
                }
                StateProj::PassingThrough { future } => {
                    return future.poll(cx).map_err(Into::into);
                }
            };
            // Decide before taking the body over: a 401 that is passed
            // through must leave the attempt untouched.
            let newer_token = match this.cache.after_unauthorized(*this.generation, attempt) {
                AfterUnauthorized::PassThrough => return Poll::Ready(Ok(refused)),
                AfterUnauthorized::Replay(token) => Ok(token),
                AfterUnauthorized::Wait(wait) => Err(wait),
            };
            // A replay of the replay is kept while another replay may follow.
            let again = attempt + 1 < MAX_REPLAYS;
            let replay = this.replay.take().and_then(|r| r.into_request(again));
            let Some((request, next)) = replay else {
                tracing::debug!("401 for a request whose body cannot be replayed");
                let reason = PassedThrough::NotReplayable;
                this.cache.counters().passed_through(reason);
                return Poll::Ready(Ok(refused));
            };
            *this.replay = next;
            let mut request = Box::new(request);
            drop(refused);
            match newer_token {
                Ok(token) => {
                    tracing::debug!("401 for a replaced token; replaying with the current one");
                    *this.generation = token.generation;
                    *this.unproven = token.is_unproven();
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, token.header.clone());
                    this.state.set(State::ReadyToReplay {
                        request: Some(request),
                    });
                }
                Err(wait) => {
                    let request = Some(request);
                    this.state.set(State::Refreshing { wait, request });
                }
            }
        }
    }
}

/// A response accepted the token of `generation`: tell the cache when that
/// token was `unproven`, and count a 401 healed when the response answered
/// a replay. Neither holds on the hot path, which touches no counter and
/// pays one branch for both. The reqwest middleware calls it too, so that
/// both count and prove tokens alike.
#[inline]
pub(crate) fn accepted(cache: &TokenCache, generation: u64, unproven: bool, replayed: bool) {
    if unproven || replayed {
        accepted_after_a_refusal(cache, generation, unproven, replayed);
    }
}

/// Out of line, so the hot path stays as small as it was.
#[cold]
fn accepted_after_a_refusal(cache: &TokenCache, generation: u64, unproven: bool, replayed: bool) {
    if unproven {
        cache.accepted(generation);
    }
    if replayed {
        cache.counters().healed();
    }
}

/// Peeks at `response`, waiting for its first frame only with a `window`:
/// the request body was sent in full, so the server cannot be waiting for
/// the client.
fn peeking<F, B, T>(response: T, window: Option<Duration>) -> State<F, B, T> {
    State::Peeking {
        window: window
            .filter(|window| !window.is_zero())
            .map(|window| Box::pin(tokio::time::sleep(window))),
        response: Some(response),
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
            State::Calling { .. } if self.replays == 0 => "Calling",
            State::Calling { .. } => "Replaying",
            State::Peeking { .. } => "Peeking",
            State::Refreshing { .. } => "Refreshing",
            State::ReadyToReplay { .. } => "ReadyToReplay",
            State::Failed { .. } => "Failed",
            State::PassingThrough { .. } => "PassingThrough",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}
