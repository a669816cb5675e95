//! The mock's request handling: routes, grants, the target API, and the
//! scripted faults (the control API's paths go to `control`), with the [`Hangup`] through which a fault drops the
//! connection. The listener in `server` calls [`handle`] and drops the
//! connection when asked; nothing here knows of it.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::Notify;

use super::{
    control,
    knobs::{Fault, Route},
    state::{Issued, RecordedRequest, Scripted, State},
};

const AUTH_PREFIX: &str = "/api/v1/auth/";
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The target API reads bodies up to this size.
const MAX_TARGET_BYTES: usize = 64 * 1024 * 1024;

pub(super) async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
    hangup: Hangup,
) -> Response<Answer> {
    if control::owns(request.uri().path()) {
        return control::handle(&state, request).await;
    }
    let route = match request.uri().path().strip_prefix(AUTH_PREFIX) {
        Some("password") => Route::Password,
        Some("refresh") => Route::Refresh,
        Some(_) => return status(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#),
        None => Route::Target,
    };
    let arrival = state.arrive(route);
    if !arrival.delay.is_zero() {
        tokio::time::sleep(arrival.delay).await;
    }
    let fault = match arrival.scripted {
        Some(Scripted::Respond(canned)) => return canned.map(Answer::from),
        Some(Scripted::Fail(fault)) => Some(fault),
        None => None,
    };
    if fault == Some(Fault::Close) {
        // Before the call has any effect.
        return hangup.now().await;
    }
    let response = match route {
        Route::Password => password(&state, request).await,
        Route::Refresh => refresh(&state, request).await,
        Route::Target => target(&state, request).await,
    };
    match fault {
        Some(Fault::CommitThenClose) => hangup.now().await,
        Some(Fault::CutBody) => response.map(|answer| answer.cut(hangup)),
        _ => response,
    }
}

/// Lets a handler drop the connection it is answering on, as a server that
/// crashes or a proxy that cuts it would. The listener makes one per
/// connection and drops the connection once [`requested`](Self::requested)
/// resolves.
#[derive(Clone, Default)]
pub(super) struct Hangup(Arc<Notify>);

impl Hangup {
    /// Asks for the connection to be dropped; what was written so far has
    /// been flushed.
    pub(super) fn request(&self) {
        self.0.notify_one();
    }

    /// Drops the connection and never answers.
    pub(super) async fn now<T>(self) -> T {
        self.request();
        std::future::pending().await
    }

    /// Resolves once a hang-up has been asked for.
    pub(super) async fn requested(&self) {
        self.0.notified().await;
    }
}

/// A response body: all of it in one frame or, when cut, the first half and
/// then a hang-up, while `content-length` still announces the whole.
pub(super) struct Answer {
    data: Option<Bytes>,
    /// The bytes still announced.
    announced: u64,
    hangup: Option<Hangup>,
}

impl Answer {
    fn cut(mut self, hangup: Hangup) -> Answer {
        let mut data = self.data.take().unwrap_or_default();
        let first_half = data.split_to(data.len() / 2);
        Answer {
            data: (!first_half.is_empty()).then_some(first_half),
            announced: self.announced,
            hangup: Some(hangup),
        }
    }
}

impl From<Bytes> for Answer {
    fn from(data: Bytes) -> Self {
        Answer {
            announced: data.len() as u64,
            data: (!data.is_empty()).then_some(data),
            hangup: None,
        }
    }
}

impl From<String> for Answer {
    fn from(text: String) -> Self {
        Answer::from(Bytes::from(text))
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            self.announced -= data.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match self.hangup.take() {
            // The connection is dropped: nothing polls this body again.
            Some(hangup) => {
                hangup.request();
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.hangup.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.announced)
    }
}

async fn password(state: &State, request: Request<Incoming>) -> Response<Answer> {
    let form = match read_form(request).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(username), Some(password)) = (field("username"), field("password")) else {
        return status(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#);
    };
    match state.password_grant(username, password) {
        Some(issued) => token_response(&issued),
        None => status(StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized"}"#),
    }
}

async fn refresh(state: &State, request: Request<Incoming>) -> Response<Answer> {
    let form = match read_form(request).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let Some((_, token)) = form.iter().find(|(k, _)| k == "refresh_token") else {
        return status(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#);
    };
    match state.refresh_grant(token) {
        Some(issued) => token_response(&issued),
        None => status(StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized"}"#),
    }
}

/// Checks the bearer token from the headers alone, as real APIs do (or
/// after reading the body, when so configured), and echoes the body of
/// authorized requests.
async fn target(state: &State, request: Request<Incoming>) -> Response<Answer> {
    let (parts, body) = request.into_parts();
    let read_first = state.reads_body_first();
    let mut body = Some(body);
    let mut collected = None;
    if read_first {
        collected = body.take().map(collect);
    }
    let collected = match collected {
        Some(reading) => Some(reading.await),
        None => None,
    };
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let authorized = state.accepts(authorization);
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let mut recorded = RecordedRequest {
        method: parts.method,
        path,
        headers: parts.headers,
        body: Bytes::new(),
        trailers: None,
        authorized,
    };
    let collected = match (authorized, collected, body) {
        (false, collected, unread) => {
            if let Some(Ok((data, trailers))) = collected {
                recorded.body = data;
                recorded.trailers = trailers;
            }
            if let Some(unread) = unread {
                tokio::spawn(discard(unread));
            }
            state.record(recorded);
            let mut response = status(StatusCode::UNAUTHORIZED, r#"{"error":"invalid_token"}"#);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            return response;
        }
        (true, Some(collected), _) => collected,
        (true, None, Some(body)) => collect(body).await,
        (true, None, None) => Err(()),
    };
    let Ok((data, trailers)) = collected else {
        return status(StatusCode::BAD_REQUEST, r#"{"error":"unreadable_body"}"#);
    };
    recorded.body = data.clone();
    recorded.trailers = trailers;
    state.record(recorded);
    Response::builder()
        .status(StatusCode::OK)
        .header("x-body-bytes", data.len())
        .body(Answer::from(data))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"internal"}"#))
}

/// Reads and drops what is left of a body answered before it was read, so
/// that the connection stays usable: dropping it unread would make hyper
/// close the connection under a client still uploading, which then sees a
/// broken pipe instead of the answer.
async fn discard(mut body: Incoming) {
    let mut left = MAX_TARGET_BYTES;
    while let Some(Ok(frame)) = body.frame().await {
        let read = frame.data_ref().map_or(0, Bytes::len);
        let Some(rest) = left.checked_sub(read) else {
            return;
        };
        left = rest;
    }
}

/// Reads a whole request body and its trailers.
async fn collect(body: Incoming) -> Result<(Bytes, Option<http::HeaderMap>), ()> {
    let collected = Limited::new(body, MAX_TARGET_BYTES)
        .collect()
        .await
        .map_err(|_| ())?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

async fn read_form(request: Request<Incoming>) -> Result<Vec<(String, String)>, Response<Answer>> {
    if request.method() != Method::POST {
        return Err(status(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method_not_allowed"}"#,
        ));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            r#"{"error":"unsupported_media_type"}"#,
        ));
    }
    let body = Limited::new(request.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| {
            status(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"error":"payload_too_large"}"#,
            )
        })?
        .to_bytes();
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

fn token_response(issued: &Issued) -> Response<Answer> {
    let body = serde_json::json!({
        "access_token": issued.access,
        "refresh_token": issued.refresh,
        "id_token": issued.id,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
    });
    json(StatusCode::OK, body.to_string())
}

fn status(status: StatusCode, body: &'static str) -> Response<Answer> {
    json(status, body.to_owned())
}

pub(super) fn json(status: StatusCode, body: String) -> Response<Answer> {
    let mut response = Response::new(Answer::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
