//! The control API: the knobs and counts of [`MockAuthApi`](super::MockAuthApi)
//! over HTTP under [`PREFIX`], JSON in and out, for processes that do not
//! hold the handle. The table of endpoints is in the [module docs](super).
//!
//! Control calls are neither counted nor delayed nor scripted, and a bad
//! one is answered 400 with `{"error": "…"}`, never a panic.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, de::DeserializeOwned};

use super::{
    handler::{Answer, json},
    knobs::{Fault, Route},
    state::{Scripted, State},
};

/// Where the control API lives; the target API has every other path but
/// the Auth API's.
pub(super) const PREFIX: &str = "/_mock";

const MAX_CONTROL_BYTES: usize = 64 * 1024;
/// The most answers or faults one call may queue.
const MAX_TIMES: usize = 1_000;
/// The longest token lifetime the control API sets: the longest
/// `expires_in` a client accepts.
const MAX_LIFETIME_SECS: u64 = 366 * 24 * 60 * 60;

/// Whether `path` is the control API's.
pub(super) fn owns(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Answers a control call.
pub(super) async fn handle(state: &State, request: Request<Incoming>) -> Response<Answer> {
    let (parts, body) = request.into_parts();
    if let Some(refusal) = from_a_browser(&parts) {
        return error(StatusCode::FORBIDDEN, refusal.into());
    }
    let endpoint = parts.uri.path()[PREFIX.len()..].trim_end_matches('/');
    let body = match Limited::new(body, MAX_CONTROL_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_CONTROL_BYTES} bytes"),
            );
        }
    };
    let answered = match (&parts.method, endpoint) {
        (&Method::GET, "") => Ok(info(state, &parts)),
        (&Method::GET, "/counts") => Ok(counts(state.counts())),
        (&Method::POST, "/counts/reset") => Ok(counts(state.reset_counts())),
        (&Method::POST, "/revoke-access-tokens") => empty(&body).map(|()| {
            state.revoke_access_tokens();
            Done::Ok
        }),
        (&Method::POST, "/expire-refresh-tokens") => empty(&body).map(|()| {
            state.expire_refresh_tokens();
            Done::Ok
        }),
        (&Method::POST, "/token-lifetime") => token_lifetime(state, &body),
        (&Method::POST, "/delay") => delay(state, &body),
        (&Method::POST, "/respond-next") => respond_next(state, &body),
        (&Method::POST, "/fail-next") => fail_next(state, &body),
        (&Method::POST, "/target") => target(state, &body),
        (&Method::GET, "/target-requests") => Ok(target_requests(state)),
        (_, endpoint) => return unrouted(&parts.method, endpoint),
    };
    match answered {
        Ok(answer) => answer.into(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// Why a call that a web page may have made is refused: one that names
/// an `Origin` (browsers send it with every cross-site `POST`; curl and
/// test clients do not), or a `Host` that is not loopback (a page behind
/// DNS rebinding). The control API has no password, so a page the
/// developer opens must not drive it.
fn from_a_browser(parts: &http::request::Parts) -> Option<&'static str> {
    if parts.headers.contains_key(header::ORIGIN) {
        return Some("the control api does not answer calls with an origin (from a web page)");
    }
    let host = parts.headers.get(header::HOST)?.to_str().ok()?;
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then_some("the control api answers only calls to a loopback host")
}

/// What a control call answers when it succeeds.
enum Done {
    /// `{"ok": true}`.
    Ok,
    /// A JSON document.
    Json(serde_json::Value),
}

impl From<Done> for Response<Answer> {
    fn from(done: Done) -> Self {
        let body = match done {
            Done::Ok => serde_json::json!({ "ok": true }),
            Done::Json(value) => value,
        };
        json(StatusCode::OK, body.to_string())
    }
}

type Answered = Result<Done, String>;

fn unrouted(method: &Method, endpoint: &str) -> Response<Answer> {
    const ENDPOINTS: [(&str, &Method); 11] = [
        ("", &Method::GET),
        ("/counts", &Method::GET),
        ("/counts/reset", &Method::POST),
        ("/revoke-access-tokens", &Method::POST),
        ("/expire-refresh-tokens", &Method::POST),
        ("/token-lifetime", &Method::POST),
        ("/delay", &Method::POST),
        ("/respond-next", &Method::POST),
        ("/fail-next", &Method::POST),
        ("/target", &Method::POST),
        ("/target-requests", &Method::GET),
    ];
    match ENDPOINTS.iter().find(|(path, _)| *path == endpoint) {
        Some((_, allowed)) => {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{PREFIX}{endpoint} takes {allowed}, not {method}"),
            );
            if let Ok(allow) = HeaderValue::from_str(allowed.as_str()) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            response
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("no control endpoint {PREFIX}{endpoint}; GET {PREFIX} describes the mock"),
        ),
    }
}

fn error(status: StatusCode, message: String) -> Response<Answer> {
    json(status, serde_json::json!({ "error": message }).to_string())
}

/// Parses a JSON body, naming what is wrong with it.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid json body: {e}"))
}

/// Endpoints without parameters take no body, or an empty JSON object.
fn empty(body: &Bytes) -> Result<(), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    parse::<NoFields>(body).map(|NoFields {}| ())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// The mock's URLs and the credentials it accepts, under the host the
/// caller used.
fn info(state: &State, parts: &http::request::Parts) -> Done {
    let host = match parts.uri.authority() {
        Some(authority) => authority.as_str(),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default(),
    };
    Done::Json(serde_json::json!({
        "auth_url": format!("http://{host}/api/v1"),
        "target_url": format!("http://{host}"),
        "control_url": format!("http://{host}{PREFIX}"),
        "username": state.username(),
        "password": state.password(),
    }))
}

fn counts(counts: super::Counts) -> Done {
    Done::Json(serde_json::to_value(counts).unwrap_or_default())
}

/// A route as the control API names it.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RouteName {
    Password,
    Refresh,
    Target,
}

impl From<RouteName> for Route {
    fn from(name: RouteName) -> Route {
        match name {
            RouteName::Password => Route::Password,
            RouteName::Refresh => Route::Refresh,
            RouteName::Target => Route::Target,
        }
    }
}

/// A fault as the control API names it.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum FaultName {
    Close,
    CommitThenClose,
    CutBody,
}

impl From<FaultName> for Fault {
    fn from(name: FaultName) -> Fault {
        match name {
            FaultName::Close => Fault::Close,
            FaultName::CommitThenClose => Fault::CommitThenClose,
            FaultName::CutBody => Fault::CutBody,
        }
    }
}

fn token_lifetime(state: &State, body: &Bytes) -> Answered {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Lifetime {
        secs: u64,
    }
    let Lifetime { secs } = parse(body)?;
    if secs == 0 || secs > MAX_LIFETIME_SECS {
        return Err(format!("secs must be from 1 to {MAX_LIFETIME_SECS}"));
    }
    state.set_lifetime(Duration::from_secs(secs));
    Ok(Done::Ok)
}

fn delay(state: &State, body: &Bytes) -> Answered {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Delay {
        route: RouteName,
        ms: u64,
    }
    let Delay { route, ms } = parse(body)?;
    state.set_delay(route.into(), Duration::from_millis(ms));
    Ok(Done::Ok)
}

/// How many calls a scripted answer or fault is for: 1 unless given.
fn times(times: Option<usize>) -> Result<usize, String> {
    match times.unwrap_or(1) {
        0 => Err("times must be at least 1".into()),
        n if n > MAX_TIMES => Err(format!("times must be at most {MAX_TIMES}")),
        n => Ok(n),
    }
}

/// `Retry-After` as seconds or as the text to send.
#[derive(Deserialize)]
#[serde(untagged)]
enum RetryAfter {
    Secs(u64),
    Text(String),
}

fn respond_next(state: &State, body: &Bytes) -> Answered {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Respond {
        route: RouteName,
        status: u16,
        retry_after: Option<RetryAfter>,
        body: Option<String>,
        content_type: Option<String>,
        times: Option<usize>,
    }
    let respond: Respond = parse(body)?;
    let times = times(respond.times)?;
    let status = StatusCode::from_u16(respond.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| format!("status {} is not between 200 and 599", respond.status))?;
    let mut response = Response::builder().status(status);
    if let Some(retry_after) = respond.retry_after {
        let value = match retry_after {
            RetryAfter::Secs(secs) => HeaderValue::from(secs),
            RetryAfter::Text(text) => HeaderValue::from_str(&text)
                .map_err(|_| "retry_after is not a valid header value".to_owned())?,
        };
        response = response.header(header::RETRY_AFTER, value);
    }
    let content_type = match (respond.content_type, &respond.body) {
        (Some(given), _) => Some(
            HeaderValue::from_str(&given)
                .map_err(|_| "content_type is not a valid header value".to_owned())?,
        ),
        (None, Some(_)) => Some(HeaderValue::from_static("application/json")),
        (None, None) => None,
    };
    if let Some(content_type) = content_type {
        response = response.header(header::CONTENT_TYPE, content_type);
    }
    let canned = response
        .body(respond.body.unwrap_or_default())
        .map_err(|e| format!("cannot build the answer: {e}"))?;
    for _ in 0..times {
        let copy = clone_response(&canned);
        state.push_scripted(respond.route.into(), Scripted::Respond(copy));
    }
    Ok(Done::Ok)
}

fn clone_response(response: &Response<String>) -> Response<String> {
    let mut copy = Response::new(response.body().clone());
    *copy.status_mut() = response.status();
    *copy.headers_mut() = response.headers().clone();
    copy
}

fn fail_next(state: &State, body: &Bytes) -> Answered {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Fail {
        route: RouteName,
        fault: FaultName,
        times: Option<usize>,
    }
    let fail: Fail = parse(body)?;
    for _ in 0..times(fail.times)? {
        state.push_scripted(fail.route.into(), Scripted::Fail(fail.fault.into()));
    }
    Ok(Done::Ok)
}

fn target(state: &State, body: &Bytes) -> Answered {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Target {
        rejects_every_token: Option<bool>,
        reads_body_first: Option<bool>,
        recording: Option<bool>,
    }
    let target: Target = parse(body)?;
    if let Some(reject) = target.rejects_every_token {
        state.set_reject_all(reject);
    }
    if let Some(read_first) = target.reads_body_first {
        state.set_read_body_first(read_first);
    }
    if let Some(recording) = target.recording {
        state.set_recording(recording);
    }
    Ok(Done::Ok)
}

/// The recorded requests; headers and bodies that are not UTF-8 are shown
/// lossily.
fn target_requests(state: &State) -> Done {
    let requests: Vec<_> = state
        .recorded()
        .into_iter()
        .map(|request| {
            let headers: serde_json::Map<_, _> = request
                .headers
                .keys()
                .map(|name| {
                    let values: Vec<_> = request
                        .headers
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect();
                    (name.as_str().to_owned(), values.into())
                })
                .collect();
            serde_json::json!({
                "method": request.method.as_str(),
                "path": request.path,
                "headers": headers,
                "body": String::from_utf8_lossy(&request.body),
                "authorized": request.authorized,
            })
        })
        .collect();
    Done::Json(requests.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_a_whole_path_segment() {
        assert!(owns("/_mock"));
        assert!(owns("/_mock/"));
        assert!(owns("/_mock/counts"));
        assert!(!owns("/_mockery"));
        assert!(!owns("/api/v1/_mock/counts"));
        assert!(!owns("/trips/_mock"));
    }

    #[test]
    fn times_are_bounded() {
        assert_eq!(times(None), Ok(1));
        assert!(times(Some(0)).is_err());
        assert!(times(Some(MAX_TIMES + 1)).is_err());
    }

    fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut request = Request::post("/_mock/revoke-access-tokens");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn calls_a_web_page_may_have_made_are_refused() {
        for allowed in [
            &[][..],
            &[("host", "127.0.0.1:8765")],
            &[("host", "localhost:8765")],
            &[("host", "[::1]:8765")],
        ] {
            assert_eq!(from_a_browser(&parts(allowed)), None, "{allowed:?}");
        }
        for refused in [
            &[
                ("host", "127.0.0.1:8765"),
                ("origin", "https://evil.example"),
            ][..],
            &[("host", "evil.example:8765")],
            &[("host", "evil.example")],
        ] {
            assert!(from_a_browser(&parts(refused)).is_some(), "{refused:?}");
        }
    }
}
