//! The 401 heal of one request, written once for the response future of
//! [`SimacanAuth`](crate::SimacanAuth) and for the reqwest middleware.
//!
//! It is a retry policy in the shape of tower's `retry::Policy`, with a
//! response classifier in the shape of tower-http's `classify`: the caller
//! sends and awaits, [`Heal`] decides. For one request it keeps which token
//! the request was sent with and how often it was sent again, and it:
//!
//! - **authorizes**: sets `Authorization` to a token's header (marked
//!   sensitive, replacing any the request had) and remembers the token;
//! - **classifies** a response ([`classify`]): HTTP 401, or gRPC
//!   UNAUTHENTICATED (`grpc-status: 16`) in the headers of an
//!   `application/grpc` response, refused the token; a gRPC response with
//!   no status in its headers carries it in its trailers, which only a
//!   caller that can peek at them looks for ([`Class::InTrailers`]), and
//!   waits for only when the request body was sent in full
//!   ([`Heal::peek_window`]);
//! - **proves** an unproven token when a response accepts it, and counts a
//!   401 healed when the accepted response answered a replay;
//! - **decides a replay** after a refusal ([`Heal::retry`]): the token cache
//!   says first whether to replay (with a newer token, after the refresh in
//!   flight, or not at all), so that a refusal passed through (cooldown,
//!   backoff, replays used up) leaves the request's copy untouched and is
//!   counted with its reason; a refusal of a request with no copy is counted
//!   as not replayable, and still starts or joins the refresh, for the next
//!   request.
//!
//! The hot path (a valid token, an accepted response) costs a header insert
//! and two branches here, and touches no counter.
//!
//! # Example
//!
//! A driver's loop, as the reqwest middleware has it (`send` stands for the
//! rest of the chain):
//!
//! ```text
//! heal.authorize(request.headers_mut(), header, generation, unproven);
//! loop {
//!     let copy = request.try_clone();
//!     let response = send(request).await?;
//!     if classify(response.status(), response.headers(), false) != Class::Refused {
//!         heal.accepted();
//!         return Ok(response);
//!     }
//!     let Some((again, token)) = heal.retry(|_| copy) else {
//!         return Ok(response); // the refusal is the caller's
//!     };
//!     request = again;
//!     heal.authorize_with(request.headers_mut(), &token.await?);
//! }
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{
    HeaderMap, HeaderName, HeaderValue, StatusCode,
    header::{AUTHORIZATION, CONTENT_TYPE},
};

use crate::{
    Error,
    stats::PassedThrough,
    token::{AfterUnauthorized, MAX_REPLAYS, Token, TokenCache, TokenWait},
};

/// The gRPC status code UNAUTHENTICATED.
const UNAUTHENTICATED: &[u8] = b"16";

pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// What a response's head says about the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Accepted: the response is the caller's.
    Accepted,
    /// Refused: heal it, or hand it over.
    Refused,
    /// A gRPC response whose status comes in its trailers: peek at them.
    InTrailers,
}

/// Classifies a response by its status and headers. `peekable`: whether the
/// caller can read a gRPC response's trailers ahead; without, a status in
/// the trailers counts as accepted.
#[inline]
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, peekable: bool) -> Class {
    match status {
        StatusCode::UNAUTHORIZED => Class::Refused,
        StatusCode::OK if is_grpc(headers) => match headers.get(GRPC_STATUS) {
            Some(status) if status.as_bytes() == UNAUTHENTICATED => Class::Refused,
            Some(_) => Class::Accepted,
            None if peekable => Class::InTrailers,
            None => Class::Accepted,
        },
        _ => Class::Accepted,
    }
}

/// Whether gRPC trailers refuse the token. Only tonic bodies are peeked.
#[cfg_attr(not(feature = "tonic"), allow(dead_code))]
pub(crate) fn trailers_refuse(trailers: &HeaderMap) -> bool {
    trailers
        .get(GRPC_STATUS)
        .is_some_and(|status| status.as_bytes() == UNAUTHENTICATED)
}

/// gRPC answers 200 with an `application/grpc` content type.
#[inline]
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The heal of one request. See the [module docs](self).
pub(crate) struct Heal {
    cache: TokenCache,
    /// The generation of the token the request was last sent with.
    generation: u64,
    /// Whether that token was obtained to heal a 401 and not yet accepted.
    unproven: bool,
    /// How many times the request was sent again after a refusal.
    replays: u8,
    /// Whether the request body was sent in full by the time its first
    /// sending was answered without an outright acceptance: the replay's
    /// body is then whole too, and a peek may wait.
    sent_in_full: bool,
}

impl Heal {
    /// The heal of a request about to be sent with a token of `cache`.
    #[inline]
    pub(crate) fn new(cache: TokenCache) -> Self {
        Heal {
            cache,
            generation: 0,
            unproven: false,
            replays: 0,
            sent_in_full: false,
        }
    }

    /// Whether the request was sent again after a refusal.
    pub(crate) fn is_replay(&self) -> bool {
        self.replays > 0
    }

    /// The generation of the token the request was last sent with.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Sets `header`, the header of the token of `generation`, on `headers`.
    #[inline]
    pub(crate) fn authorize(
        &mut self,
        headers: &mut HeaderMap,
        header: HeaderValue,
        generation: u64,
        unproven: bool,
    ) {
        headers.insert(AUTHORIZATION, header);
        self.generation = generation;
        self.unproven = unproven;
    }

    /// Sets the header of `token` on `headers`.
    pub(crate) fn authorize_with(&mut self, headers: &mut HeaderMap, token: &Token) {
        let header = token.header.clone();
        self.authorize(headers, header, token.generation, token.is_unproven());
    }

    /// A response accepted the token: prove it when it was unproven, and
    /// count a 401 healed when the response answered a replay. Neither holds
    /// on the hot path, which pays one branch for both.
    #[inline]
    pub(crate) fn accepted(&self) {
        if self.unproven || self.replays > 0 {
            self.accepted_after_a_refusal(self.replays > 0);
        }
    }

    /// A response handed over before its gRPC trailers were seen: it proves
    /// the token (a refusal comes at once far more often than late), but a
    /// replay handed over undecided does not count as healed.
    /// The request failed after its token was refused: the refresh, or the
    /// replay in the inner service. Counted as a refusal that ended as an
    /// error; a first attempt's failure is the inner service's own.
    pub(crate) fn failed(&self) {
        if self.replays > 0 {
            self.cache.counters().unauthorized_error();
        }
    }

    pub(crate) fn undecided(&self) {
        if self.unproven {
            self.accepted_after_a_refusal(false);
        }
    }

    /// Out of line, so that the hot path stays small.
    #[cold]
    fn accepted_after_a_refusal(&self, healed: bool) {
        if self.unproven {
            self.cache.accepted(self.generation);
        }
        if healed {
            self.cache.counters().healed();
        }
    }

    /// A response did not accept the token outright: it refused it, or
    /// left its status to its trailers. After the first sending,
    /// `sent_in_full` is asked (while the caller still holds the body's
    /// replay) whether the request body was sent in full.
    pub(crate) fn not_accepted(&mut self, sent_in_full: impl FnOnce() -> bool) {
        if self.replays == 0 {
            self.sent_in_full = sent_in_full();
        }
    }

    /// How long to wait for the first frame of a gRPC response whose status
    /// comes in its trailers: the layer's window once the request body was
    /// sent in full (a replay's, when its first sending's was), so that the
    /// server cannot be waiting for the client; otherwise none, and the
    /// frame is polled once.
    pub(crate) fn peek_window(&self) -> Option<Duration> {
        self.sent_in_full.then(|| self.cache.grpc_peek_window())
    }

    /// After a refusal: the request to send again and the token to send it
    /// with, or `None` when the refusal is the caller's (its reason counted).
    ///
    /// `copy` gives the request to send again, or `None` when it cannot be;
    /// it is called only once the cache has decided on a replay, and is told
    /// whether another replay may follow this one (for a copy of the copy).
    pub(crate) fn retry<T>(
        &mut self,
        copy: impl FnOnce(bool) -> Option<T>,
    ) -> Option<(T, NextToken)> {
        let next = match self.cache.after_unauthorized(self.generation, self.replays) {
            AfterUnauthorized::PassThrough => return None,
            AfterUnauthorized::Replay(token) => {
                tracing::debug!("401 for a replaced token; replaying with the current one");
                Next::Current(Some(token))
            }
            AfterUnauthorized::Wait(wait) => Next::Refresh(wait),
        };
        let Some(request) = copy(self.replays + 1 < MAX_REPLAYS) else {
            tracing::debug!("401 for a request whose body cannot be replayed");
            let reason = PassedThrough::NotReplayable;
            self.cache.counters().passed_through(reason);
            return None;
        };
        self.replays += 1;
        Some((request, NextToken(next)))
    }
}

/// The token to replay a refused request with: one at hand already, or the
/// one the refresh in flight obtains. See [`Heal::retry`].
pub(crate) struct NextToken(Next);

enum Next {
    /// A newer token than the refused one.
    Current(Option<Arc<Token>>),
    /// The refresh in flight.
    Refresh(TokenWait),
}

impl Future for NextToken {
    type Output = Result<Arc<Token>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Next::Current(token) => {
                Poll::Ready(Ok(token.take().expect("NextToken polled after completion")))
            }
            Next::Refresh(wait) => {
                let token = ready!(wait.as_mut().poll(cx));
                if token.is_ok() {
                    tracing::debug!("token refreshed after a 401; replaying the request");
                }
                Poll::Ready(token)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Credentials, Environment, SimacanAuthLayer};

    fn head(status: u16, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        (StatusCode::from_u16(status).unwrap(), map)
    }

    fn class(status: u16, headers: &[(&str, &str)], peekable: bool) -> Class {
        let (status, headers) = head(status, headers);
        classify(status, &headers, peekable)
    }

    const GRPC: (&str, &str) = ("content-type", "application/grpc");

    #[test]
    fn http_401_and_grpc_unauthenticated_are_refusals() {
        assert_eq!(class(401, &[], false), Class::Refused);
        let trailers_only = [GRPC, ("grpc-status", "16")];
        assert_eq!(class(200, &trailers_only, false), Class::Refused);
        let grpc_web = [
            ("content-type", "application/grpc-web+proto"),
            ("grpc-status", "16"),
        ];
        assert_eq!(class(200, &grpc_web, true), Class::Refused);
    }

    #[test]
    fn everything_else_is_accepted() {
        assert_eq!(class(403, &[], true), Class::Accepted);
        assert_eq!(class(200, &[], true), Class::Accepted);
        assert_eq!(class(200, &[("grpc-status", "16")], true), Class::Accepted);
        let denied = [GRPC, ("grpc-status", "7")];
        assert_eq!(class(200, &denied, true), Class::Accepted);
        let not_ok = [GRPC, ("grpc-status", "16")];
        assert_eq!(class(500, &not_ok, true), Class::Accepted);
    }

    #[test]
    fn a_status_in_trailers_is_looked_for_only_by_who_can_peek() {
        assert_eq!(class(200, &[GRPC], true), Class::InTrailers);
        assert_eq!(class(200, &[GRPC], false), Class::Accepted);
    }

    #[test]
    fn trailers_refuse_with_unauthenticated_alone() {
        assert!(trailers_refuse(&head(200, &[("grpc-status", "16")]).1));
        assert!(!trailers_refuse(&head(200, &[("grpc-status", "0")]).1));
        assert!(!trailers_refuse(&HeaderMap::new()));
    }

    #[test]
    fn the_header_is_set_replacing_any_other() {
        let layer = SimacanAuthLayer::new(Credentials::new("user", "password"));
        let mut heal = Heal::new(layer.cache().clone());
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("Basic a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Basic b"));
        heal.authorize(&mut headers, HeaderValue::from_static("Bearer t"), 7, false);
        assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
        assert_eq!(headers[AUTHORIZATION], "Bearer t");
        assert_eq!(heal.generation(), 7);
    }

    #[test]
    fn only_the_first_sending_tells_whether_the_body_was_sent_in_full() {
        let layer = SimacanAuthLayer::new(Credentials::new("user", "password"));
        let mut heal = Heal::new(layer.cache().clone());
        assert_eq!(heal.peek_window(), None);
        heal.not_accepted(|| true);
        assert_eq!(heal.peek_window(), Some(Duration::from_millis(100)));
        heal.replays = 1;
        heal.not_accepted(|| unreachable!("a replay's body is asked about"));
        assert_eq!(heal.peek_window(), Some(Duration::from_millis(100)));
        let mut streaming = Heal::new(layer.cache().clone());
        streaming.not_accepted(|| false);
        assert_eq!(streaming.peek_window(), None);
    }

    /// A layer whose Auth API refuses connections at once.
    fn unreachable_layer() -> SimacanAuthLayer {
        let environment = Environment::custom("http://127.0.0.1:1/api/v1").unwrap();
        SimacanAuthLayer::new(Credentials::new("user", "password")).environment(environment)
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_without_a_copy_is_not_replayable_and_still_starts_the_refresh() {
        let layer = unreachable_layer();
        let mut heal = Heal::new(layer.cache().clone());
        assert!(heal.retry(|_| None::<()>).is_none());
        let stats = layer.stats();
        assert_eq!(stats.unauthorized, 1);
        assert_eq!(stats.unauthorized_passed_through, 1);
        assert!(!heal.is_replay());
        // The refresh it started fails, and the Auth API backs off.
        let failed = tokio::time::timeout(Duration::from_secs(60), layer.access_token()).await;
        assert!(failed.expect("the login ends").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_passed_through_leaves_the_copy_untouched() {
        let layer = unreachable_layer();
        let login = tokio::time::timeout(Duration::from_secs(60), layer.access_token()).await;
        assert!(
            login.expect("the login ends").is_err(),
            "the Auth API backs off"
        );
        let mut heal = Heal::new(layer.cache().clone());
        let mut asked = false;
        let replay = heal.retry(|_| {
            asked = true;
            Some(())
        });
        assert!(replay.is_none());
        assert!(!asked, "the copy was taken for a refusal passed through");
        assert_eq!(layer.stats().unauthorized_passed_through, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_is_decided_and_counted_before_the_token_is_awaited() {
        let layer = unreachable_layer();
        let mut heal = Heal::new(layer.cache().clone());
        let mut told = None;
        let (copy, token) = heal
            .retry(|again| {
                told = Some(again);
                Some("copy")
            })
            .expect("a replay after the refresh");
        assert_eq!((copy, told), ("copy", Some(true)));
        assert!(heal.is_replay());
        let token = tokio::time::timeout(Duration::from_secs(60), token).await;
        assert!(token.expect("the refresh ends").is_err());
    }
}
