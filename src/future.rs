//! [`ResponseFuture`]: the state machine of one request through
//! [`SimacanAuth`](crate::SimacanAuth).
//!
//! ```text
//! AwaitingToken ─▶ Calling ─▶ (401) ─▶ Refreshing ─▶ ReadyToReplay ─▶ Calling (replayed)
//!      (only without a valid token)   (at once when a newer token exists)
//! ```
//!
//! The future drives; what it does with a token and a response (set the
//! header, tell a refusal, replay or hand the 401 over, prove the token,
//! count) is decided by the crate's heal policy, which the reqwest
//! middleware follows too.
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
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{
    Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version,
};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{BoxError, Service};

use crate::{
    Error,
    body::ReplayBody,
    failure::auth_failure,
    heal::{Class, Heal, NextToken, classify},
    token::TokenWait,
    unauthorized::{Peeked, peekable, poll_peek},
};

/// What is kept to send a request again: its head, copied before the
/// `Authorization` header is set, and the body's replay.
pub(crate) struct Replay<B: ReplayBody> {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderCopy,
    extensions: Extensions,
    body: B::Replay,
    /// The replay body limit, to keep a replay of the replay.
    limit: usize,
}

impl<B: ReplayBody> Replay<B> {
    #[inline]
    pub(crate) fn of(request: &Request<B>, body: B::Replay, limit: usize) -> Self {
        Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: HeaderCopy::of(request.headers()),
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
        *request.headers_mut() = self.headers.into_map();
        *request.extensions_mut() = self.extensions;
        let next = again
            .then(|| request.body_mut().prepare_replay(limit))
            .flatten()
            .map(|body| Replay::of(&request, body, limit));
        Some((request, next))
    }
}

/// A request's headers, kept for a replay: each name and value, in the
/// map's order, duplicates included. One allocation, where a clone of the
/// `HeaderMap` takes two (its index and its entries) for every request;
/// the map is built again only for a replay.
struct HeaderCopy(Box<[(HeaderName, HeaderValue)]>);

impl HeaderCopy {
    fn of(headers: &HeaderMap) -> Self {
        let mut copy = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            copy.push((name.clone(), value.clone()));
        }
        HeaderCopy(copy.into_boxed_slice())
    }

    fn into_map(self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.0.len());
        for (name, value) in self.0.into_vec() {
            headers.append(name, value);
        }
        headers
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
        // The token the request was sent with, and the decisions on a 401.
        heal: Heal,
        replay: Option<Replay<B>>,
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
        Refreshing { token: NextToken, request: Option<Box<Request<B>>> },
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
        heal: Heal,
        replay: Option<Replay<B>>,
    ) -> Self {
        Self::new(State::Calling { future }, service, heal, replay)
    }

    pub(crate) fn awaiting_token(
        wait: TokenWait,
        request: Request<B>,
        service: S,
        heal: Heal,
        replay: Option<Replay<B>>,
    ) -> Self {
        let state = State::AwaitingToken {
            wait,
            request: Some(Box::new(request)),
        };
        Self::new(state, service, heal, replay)
    }

    pub(crate) fn passing_through(future: S::Future, service: S, heal: Heal) -> Self {
        Self::new(State::PassingThrough { future }, service, heal, None)
    }

    pub(crate) fn failed(error: Error, service: S, heal: Heal) -> Self {
        let state = State::Failed { error: Some(error) };
        Self::new(state, service, heal, None)
    }

    fn new(
        state: State<S::Future, B, S::Response>,
        service: S,
        heal: Heal,
        replay: Option<Replay<B>>,
    ) -> Self {
        ResponseFuture {
            state,
            service,
            heal,
            replay,
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // No replay follows once the caller has the output: a streaming
        // body stops keeping frames now, not when this future is dropped.
        // Done where each output is made, which then is not moved again
        // through a function around this one.
        macro_rules! done {
            ($output:expr) => {{
                *this.replay = None;
                return Poll::Ready($output);
            }};
        }
        // `?`, by way of `done!`.
        macro_rules! ok {
            ($result:expr) => {
                match $result {
                    Ok(value) => value,
                    Err(error) => done!(Err(error)),
                }
            };
        }
        loop {
            // A response that refused the token.
            let refused = match this.state.as_mut().project() {
                StateProj::AwaitingToken { wait, request } => {
                    let token = ok!(ready!(wait.as_mut().poll(cx)).map_err(auth_failure::<R>));
                    let mut request = request.take().expect(POLLED_AFTER_COMPLETION);
                    this.heal.authorize_with(request.headers_mut(), &token);
                    let future = this.service.call(*request);
                    this.state.set(State::Calling { future });
                    continue;
                }
                StateProj::Calling { future } => {
                    let response = ok!(ready!(future.poll(cx)).map_err(|error| {
                        this.heal.failed();
                        error.into()
                    }));
                    let class = classify(response.status(), response.headers(), peekable::<R>());
                    if class == Class::Accepted {
                        this.heal.accepted();
                        done!(Ok(response));
                    }
                    let replay = this.replay.as_ref();
                    this.heal
                        .not_accepted(|| replay.is_some_and(|r| B::is_sent_in_full(&r.body)));
                    if class == Class::InTrailers {
                        let window = this.heal.peek_window();
                        this.state.set(peeking(response, window));
                        continue;
                    }
                    response
                }
                StateProj::Peeking { window, response } => {
                    let slot = response.as_mut().expect(POLLED_AFTER_COMPLETION);
                    let window = window.as_mut().map(Pin::as_mut);
                    let peeked = ready!(poll_peek(slot, window, cx));
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    match peeked {
                        Peeked::Refused => response,
                        Peeked::Accepted => {
                            this.heal.accepted();
                            done!(Ok(response));
                        }
                        Peeked::Undecided => {
                            this.heal.undecided();
                            done!(Ok(response));
                        }
                    }
                }
                StateProj::Refreshing { token, request } => {
                    let token = ok!(ready!(Pin::new(token).poll(cx)).map_err(|error| {
                        this.heal.failed();
                        auth_failure::<R>(error)
                    }));
                    let mut request = request.take().expect(POLLED_AFTER_COMPLETION);
                    this.heal.authorize_with(request.headers_mut(), &token);
                    this.state.set(State::ReadyToReplay {
                        request: Some(request),
                    });
                    continue;
                }
                StateProj::ReadyToReplay { request } => {
                    ok!(ready!(this.service.poll_ready(cx)).map_err(|error| {
                        this.heal.failed();
                        error.into()
                    }));
                    let request = request.take().expect(POLLED_AFTER_COMPLETION);
                    let future = this.service.call(*request);
                    this.state.set(State::Calling { future });
                    continue;
                }
                StateProj::Failed { error } => {
                    let error = error.take().expect(POLLED_AFTER_COMPLETION);
                    done!(Err(auth_failure::<R>(error)));
                }
                // Never with a replay.
                StateProj::PassingThrough { future } => {
                    return future.poll(cx).map_err(Into::into);
                }
            };
            // A replay of the replay is kept while another replay may follow.
            let replay = &mut *this.replay;
            let retry = this.heal.retry(|again| {
                let (request, next) = replay.take()?.into_request(again)?;
                *replay = next;
                Some(request)
            });
            let Some((request, token)) = retry else {
                done!(Ok(refused));
            };
            drop(refused);
            let request = Some(Box::new(request));
            this.state.set(State::Refreshing { token, request });
        }
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
            State::Calling { .. } if !self.heal.is_replay() => "Calling",
            State::Calling { .. } => "Replaying",
            State::Peeking { .. } => "Peeking",
            State::Refreshing { .. } => "Refreshing",
            State::ReadyToReplay { .. } => "ReadyToReplay",
            State::Failed { .. } => "Failed",
            State::PassingThrough { .. } => "PassingThrough",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("generation", &self.heal.generation())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use http::header::{ACCEPT, AUTHORIZATION, COOKIE};

    use super::*;

    #[test]
    fn a_header_copy_gives_back_the_same_headers_in_the_same_order() {
        let mut headers = HeaderMap::new();
        headers.append(ACCEPT, HeaderValue::from_static("application/json"));
        headers.append("x-trace", HeaderValue::from_static("a"));
        headers.append(ACCEPT, HeaderValue::from_static("text/plain"));
        let mut secret = HeaderValue::from_static("session=s3cr3t");
        secret.set_sensitive(true);
        headers.append(COOKIE, secret);
        headers.append("x-trace", HeaderValue::from_static("b"));
        let copy = HeaderCopy::of(&headers).into_map();
        assert_eq!(copy, headers);
        let order = |map: &HeaderMap| {
            map.iter()
                .map(|(name, value)| format!("{name}: {value:?}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&copy), order(&headers));
        assert!(copy[COOKIE].is_sensitive());
        assert!(!copy.contains_key(AUTHORIZATION));
        assert!(HeaderCopy::of(&HeaderMap::new()).into_map().is_empty());
    }
}
