//! Entry points for the fuzz targets in `fuzz/`, built only with
//! `--cfg fuzzing` (which `cargo fuzz` passes). Thin wrappers over crate
//! internals; not part of the API.
//!
//! `.ci/run` type-checks this module with `--cfg fuzzing` on every run, so it
//! keeps up with the internals it wraps.
//!
//! # Example
//!
//! ```ignore
//! let grant = simacan_auth::fuzzing::parse_grant(br#"{"access_token":"a","refresh_token":"r","token_type":"bearer","expires_in":60}"#);
//! assert!(grant.is_ok());
//! ```

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderValue, Response};

use crate::{Endpoint, Error, heal, token::grant::Grant, unauthorized};

/// What [`parse_grant`] accepted.
#[derive(Debug)]
pub struct ParsedGrant {
    /// `Bearer <access_token>`.
    pub header: HeaderValue,
    /// The refresh token.
    pub refresh_token: String,
    /// `expires_in`.
    pub lifetime: Duration,
}

/// The token-response parser (`Grant::parse`) on a `/auth/password` answer.
///
/// # Errors
///
/// What the parser refuses, as an error of kind [`UnexpectedResponse`](crate::ErrorKind::UnexpectedResponse).
pub fn parse_grant(body: &[u8]) -> Result<ParsedGrant, Error> {
    let uri = http::Uri::from_static("https://auth.invalid/api/v1/auth/password");
    Grant::parse(body)
        .map(|grant| ParsedGrant {
            header: grant.header,
            refresh_token: grant.refresh_token.as_str().to_owned(),
            lifetime: grant.lifetime,
        })
        .map_err(|reason| Error::malformed(Endpoint::Password, &uri, reason))
}

/// What the response headers say about the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token was accepted.
    Accepted,
    /// HTTP 401, or gRPC UNAUTHENTICATED in the headers.
    Refused,
    /// A gRPC response whose status may come in trailers: peek.
    PeekTrailers,
}

/// The refusal detection on response headers.
pub fn verdict<R: 'static>(response: &Response<R>) -> Verdict {
    let peekable = unauthorized::peekable::<R>();
    match heal::classify(response.status(), response.headers(), peekable) {
        heal::Class::Accepted => Verdict::Accepted,
        heal::Class::Refused => Verdict::Refused,
        heal::Class::InTrailers => Verdict::PeekTrailers,
    }
}

/// The first-frame peek of a gRPC response: `Ready(true)` for trailers with
/// UNAUTHENTICATED, `Ready(false)` once the frame was put back or `window`
/// has passed.
pub fn poll_peek<R: 'static>(
    response: &mut Response<R>,
    window: Pin<&mut tokio::time::Sleep>,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    unauthorized::poll_peek(response, Some(window), cx)
        .map(|peeked| peeked == unauthorized::Peeked::Refused)
}
