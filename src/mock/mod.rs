//! A faithful mock of the Simacan Auth API, and a small target API, on a
//! loopback port, with a control API over HTTP. Feature `mock`.
//!
//! The mock behaves like the real service as its documentation describes it:
//!
//! - `POST {base}/auth/password` takes a form-urlencoded `username` and
//!   `password`, answers 200 with `access_token`, `refresh_token`, `id_token`,
//!   `token_type: bearer` and `expires_in`, or 401 for wrong credentials.
//! - `POST {base}/auth/refresh` takes a form-urlencoded `refresh_token` and
//!   rotates it: the answer carries a new refresh token, and the one sent is
//!   spent. A spent, unknown or expired refresh token is answered 401.
//! - Every other path but the [control API](#the-control-api)'s
//!   (`/_mock` and below) is the target API: it checks
//!   `Authorization: Bearer <access_token>` from the headers alone, answers
//!   401 for a missing, unknown, expired or revoked token, and otherwise 200
//!   echoing the request body. After a 401 it reads and drops the rest of
//!   the upload, as servers that keep the connection do, so a client still
//!   sending sees the 401 rather than a broken pipe.
//!
//! Knobs make it misbehave the ways the real one can: token lifetime,
//! revoking every access token (early expiry), expiring every refresh token,
//! delays (per route, or scripted per Auth API call), canned answers (error
//! statuses, `Retry-After`, malformed bodies) and faults (a connection
//! dropped before the answer, a rotation committed and its answer lost, a
//! body cut short). Counters tell how often each endpoint was called.
//!
//! # Example
//!
//! ```
//! use simacan_auth::{mock::MockAuthApi, SimacanAuthLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let mock = MockAuthApi::start().await?;
//! let layer = SimacanAuthLayer::new(mock.credentials()).environment(mock.environment());
//! let token = layer.access_token().await.expect("the mock logs us in");
//! assert_eq!(mock.counts().password, 1);
//! mock.revoke_access_tokens();
//! # let _ = token;
//! # Ok(()) }
//! ```
//!
//! # Counting reused refresh tokens
//!
//! The reference protocol says a rotated refresh token must never be sent
//! again. The mock remembers every refresh token a refresh has spent and
//! tells it apart from unknown and expired ones: each call to
//! `/auth/refresh` with a spent token is counted in
//! [`Counts::refresh_reused`] (and, being answered 401, in
//! [`Counts::refresh_rejected`]). A test asserts it stays 0: here the
//! rotation is committed and its answer lost, and the layer, which cannot
//! know whether the token was rotated, logs in with the password rather
//! than send it again:
//!
//! ```
//! use std::time::Duration;
//! use simacan_auth::{mock::{Fault, MockAuthApi, Route}, SimacanAuthLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let mock = MockAuthApi::start().await?;
//! let layer = SimacanAuthLayer::new(mock.credentials())
//!     .environment(mock.environment())
//!     .backoff(Duration::from_millis(10), Duration::from_millis(10));
//! layer.access_token().await.expect("logged in");
//!
//! mock.fail_next(Route::Refresh, Fault::CommitThenClose);
//! layer.invalidate();
//! assert!(layer.access_token().await.is_err(), "the answer was lost");
//! tokio::time::sleep(Duration::from_millis(20)).await; // the backoff
//! layer.access_token().await.expect("logged in again");
//!
//! let counts = mock.counts();
//! assert_eq!(counts.refresh_reused, 0, "the spent token was never sent again");
//! assert_eq!((counts.refresh, counts.password), (1, 2));
//! # Ok(()) }
//! ```
//!
//! # On a port of your choice, or in a process of its own
//!
//! [`MockAuthApi::start`] binds an ephemeral port; [`MockAuthApi::builder`]
//! binds the loopback address you give, so that a service restarted
//! against the mock finds it at the same URL:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! # let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
//! let mock = simacan_auth::mock::MockAuthApi::builder()
//!     .listen(([127, 0, 0, 1], port).into())
//!     .start()
//!     .await?;
//! assert_eq!(mock.addr().port(), port);
//! # Ok(()) }
//! ```
//!
//! For everything that is not a Rust test (other services, scripts, a
//! fleet of replica processes), the command-line tool runs the same mock
//! as a server until Ctrl-C or SIGTERM (feature `cli`):
//!
//! ```text
//! $ simacan-auth mock --listen 127.0.0.1:8765
//! auth url:    http://127.0.0.1:8765/api/v1
//! target url:  http://127.0.0.1:8765
//! control url: http://127.0.0.1:8765/_mock
//! username:    planner@example.com
//! password:    p@ss w0rd&=%+
//! ```
//!
//! With `--format json` it prints those as one JSON line instead
//! (`addr`, `auth_url`, `target_url`, `control_url`, `username`,
//! `password`), for a script to read.
//!
//! # The control API
//!
//! Every knob and count of [`MockAuthApi`] is also on HTTP, under `/_mock`
//! on the mock's own port ([`MockAuthApi::control_url`]), so that a process
//! without the handle (`curl`, a script, another service's test) can drive
//! it. `GET` reads, `POST` changes; bodies are JSON (whatever the
//! `content-type`, so `curl -d` will do), answers are JSON, and a change
//! answers `{"ok":true}`.
//!
//! | call | body | does | on the handle |
//! |---|---|---|---|
//! | `GET /_mock` | | the URLs and the credentials the mock accepts | [`base_url`](MockAuthApi::base_url), [`credentials`](MockAuthApi::credentials) |
//! | `GET /_mock/counts` | | the [`Counts`], as an object with the same field names | [`counts`](MockAuthApi::counts) |
//! | `POST /_mock/counts/reset` | | zeroes the counts and forgets the recorded requests; answers the counts before | [`reset_counts`](MockAuthApi::reset_counts) |
//! | `POST /_mock/revoke-access-tokens` | | the target API answers every access token issued so far 401 | [`revoke_access_tokens`](MockAuthApi::revoke_access_tokens) |
//! | `POST /_mock/expire-refresh-tokens` | | `/auth/refresh` answers every refresh token issued so far 401 | [`expire_refresh_tokens`](MockAuthApi::expire_refresh_tokens) |
//! | `POST /_mock/token-lifetime` | `{"secs": 4}` | tokens issued from now on live 4 s (`secs` ≥ 1) | [`set_token_lifetime`](MockAuthApi::set_token_lifetime) |
//! | `POST /_mock/delay` | `{"route": "refresh", "ms": 200}` | every answer of the route waits 200 ms (0 turns it off) | [`set_delay`](MockAuthApi::set_delay) |
//! | `POST /_mock/respond-next` | `{"route": "password", "status": 503, "retry_after": 2, "times": 3}` | the next 3 calls of the route are answered 503 with `Retry-After: 2`; optional `body` (then `content-type: application/json` unless `content_type` says otherwise), `retry_after` as seconds or text, `times` defaults to 1 | [`respond_next`](MockAuthApi::respond_next) |
//! | `POST /_mock/fail-next` | `{"route": "refresh", "fault": "commit_then_close", "times": 1}` | the next calls of the route drop the connection: `fault` is `close`, `commit_then_close` or `cut_body` (see [`Fault`]) | [`fail_next`](MockAuthApi::fail_next) |
//! | `POST /_mock/target` | `{"rejects_every_token": true, "reads_body_first": false, "recording": true}` | the target API's switches, each optional | [`set_target_rejects_every_token`](MockAuthApi::set_target_rejects_every_token), [`set_target_reads_body_first`](MockAuthApi::set_target_reads_body_first), [`set_target_recording`](MockAuthApi::set_target_recording) |
//! | `GET /_mock/target-requests` | | the recorded requests (the newest 10,000, at most 64 MiB of body): `method`, `path`, `headers` (name to list of values), `body` (text; bytes that are not UTF-8 shown as U+FFFD), `authorized` | [`target_requests`](MockAuthApi::target_requests) |
//!
//! `route` is `password`, `refresh` or `target` ([`Route`]). Scripted
//! answers and faults queued by either side are used in order. A bad call
//! (malformed JSON, an unknown field, a route or fault that does not exist,
//! `times` of 0) is answered 400 with `{"error": "…"}` saying what is wrong;
//! an unknown path under `/_mock` 404, a wrong method 405. Control calls
//! are not counted, delayed or scripted. Two knobs stay Rust-only: a delay
//! script ([`set_auth_delays`](MockAuthApi::set_auth_delays) takes a
//! closure) and the [`validator`](MockAuthApi::validator), whose checks any
//! request to the target API makes as well.
//!
//! The control API takes the paths `/_mock` and `/_mock/…` from the target
//! API and nothing from the Auth API: `{base}/auth/…` behaves as before.
//! It has no authentication, which is why the mock listens on loopback
//! only, and why it answers 403 to a call a web page may have made: one
//! with an `Origin` header (browsers send it with cross-site `POST`s; curl
//! does not) or with a `Host` that is not loopback or `localhost` (DNS
//! rebinding). `times` is at most 1,000 a call, a lifetime at most 366 days.
//!
//! ```shell
//! control=http://127.0.0.1:8765/_mock
//! curl -s $control/counts
//! # {"password":1,"password_rejected":0,"refresh":0,"refresh_rejected":0,"refresh_reused":0,"target":3,"target_unauthorized":0}
//! curl -s -X POST $control/revoke-access-tokens
//! curl -s -d '{"secs": 5}' $control/token-lifetime
//! curl -s -d '{"route": "refresh", "status": 503, "retry_after": 2, "times": 2}' $control/respond-next
//! curl -s -d '{"route": "password", "fault": "close"}' $control/fail-next
//! curl -s -d '{"route": "target", "ms": 300}' $control/delay
//! curl -s -X POST $control/counts/reset
//! ```
//!
//! The same from Rust, with any HTTP client:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mock = simacan_auth::mock::MockAuthApi::start().await?;
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let script = r#"{"route": "password", "status": 503, "retry_after": 2}"#;
//! let request = http::Request::post(format!("{}/respond-next", mock.control_url()))
//!     .body(Full::from(script))?;
//! assert_eq!(client.request(request).await?.status(), 200);
//!
//! let layer = simacan_auth::SimacanAuthLayer::new(mock.credentials()).environment(mock.environment());
//! let error = layer.access_token().await.unwrap_err();
//! assert_eq!(error.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
//!
//! let counts = client.get(format!("{}/counts", mock.control_url()).parse()?).await?;
//! let counts: serde_json::Value = serde_json::from_slice(&counts.into_body().collect().await?.to_bytes())?;
//! assert_eq!(counts["password"], 1);
//! # Ok(()) }
//! ```

mod control;
mod handler;
mod knobs;
mod server;
mod state;

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use http::Response;
use tokio::task::JoinHandle;

use crate::{Credentials, Environment};
use state::{Scripted, State};

pub use knobs::{Fault, Route};
pub use state::{Counts, RecordedRequest};

/// The username the mock accepts by default.
///
/// # Example
///
/// ```
/// use simacan_auth::mock::{PASSWORD, USERNAME};
///
/// let credentials = simacan_auth::Credentials::new(USERNAME, PASSWORD);
/// assert_eq!(credentials.username(), "planner@example.com");
/// ```
pub const USERNAME: &str = "planner@example.com";
/// The password the mock accepts by default. It has characters that must be
/// percent-encoded in a form.
///
/// # Example
///
/// ```
/// let wrong = simacan_auth::Credentials::new(
///     simacan_auth::mock::USERNAME,
///     format!("{}x", simacan_auth::mock::PASSWORD),
/// );
/// # let _ = wrong;
/// ```
pub const PASSWORD: &str = "p@ss w0rd&=%+";

/// A running mock Auth API and target API. See the [module docs](self).
///
/// [`start`](Self::start) runs it on an ephemeral port;
/// [`builder`](Self::builder) on a port of your choice, with credentials of
/// your choice. The server stops when this handle is dropped.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mock = simacan_auth::mock::MockAuthApi::start().await?;
/// assert!(mock.base_url().starts_with("http://127.0.0.1:"));
/// assert!(mock.base_url().ends_with("/api/v1"));
/// # Ok(()) }
/// ```
pub struct MockAuthApi {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl MockAuthApi {
    /// Starts the mock on `127.0.0.1:0`, accepting [`USERNAME`] and
    /// [`PASSWORD`], issuing tokens valid for an hour. Serves HTTP/1.1 and
    /// HTTP/2 (prior knowledge). The same as
    /// `MockAuthApi::builder().start()`.
    ///
    /// # Errors
    ///
    /// The I/O error of binding the port.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// # let _ = mock;
    /// # Ok(()) }
    /// ```
    pub async fn start() -> std::io::Result<MockAuthApi> {
        MockAuthApi::builder().start().await
    }

    /// A builder for a mock on an address or with credentials of your
    /// choice.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::builder()
    ///     .credentials("ops@example.com", "s3cret")
    ///     .start()
    ///     .await?;
    /// assert_eq!(mock.credentials().username(), "ops@example.com");
    /// # Ok(()) }
    /// ```
    pub fn builder() -> MockAuthApiBuilder {
        MockAuthApiBuilder {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            username: USERNAME.to_owned(),
            password: PASSWORD.to_owned(),
        }
    }

    /// The address it listens on.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert!(mock.addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Auth API base URL, `http://127.0.0.1:PORT/api/v1`.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert_eq!(mock.base_url(), format!("http://{}/api/v1", mock.addr()));
    /// # Ok(()) }
    /// ```
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    /// The [`Environment`] to point a layer at this mock.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert_eq!(mock.environment().base_url(), mock.base_url());
    /// # Ok(()) }
    /// ```
    pub fn environment(&self) -> Environment {
        Environment::custom(self.base_url()).expect("a loopback http url is a valid environment")
    }

    /// The credentials the mock accepts.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert_eq!(mock.credentials().username(), simacan_auth::mock::USERNAME);
    /// # Ok(()) }
    /// ```
    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.state.username(), self.state.password())
    }

    /// The base URL of the [control API](self#the-control-api),
    /// `http://127.0.0.1:PORT/_mock`.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert_eq!(mock.control_url(), format!("http://{}/_mock", mock.addr()));
    /// # Ok(()) }
    /// ```
    pub fn control_url(&self) -> String {
        self.url(control::PREFIX)
    }

    /// The URL of `path` on the target API, e.g. `url("/trips")`.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert_eq!(mock.url("/trips"), format!("http://{}/trips", mock.addr()));
    /// # Ok(()) }
    /// ```
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// How long tokens issued from now on are valid, which is also the
    /// `expires_in` they carry (rounded down to whole seconds, at least 1).
    /// Defaults to one hour.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// mock.set_token_lifetime(std::time::Duration::from_secs(4));
    /// # Ok(()) }
    /// ```
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.set_lifetime(lifetime);
    }

    /// Revokes every access token issued so far: the target API answers them
    /// 401, as the real APIs do when a token expires early.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// mock.revoke_access_tokens();
    /// # Ok(()) }
    /// ```
    pub fn revoke_access_tokens(&self) {
        self.state.revoke_access_tokens();
    }

    /// Expires every refresh token issued so far: `/auth/refresh` answers
    /// them 401, and the client must log in with the password again.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// mock.expire_refresh_tokens();
    /// # Ok(()) }
    /// ```
    pub fn expire_refresh_tokens(&self) {
        self.state.expire_refresh_tokens();
    }

    /// Makes the target API answer 401 to every token, valid or not, as a
    /// resource the account may not use might.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// mock.set_target_rejects_every_token(true);
    /// # Ok(()) }
    /// ```
    pub fn set_target_rejects_every_token(&self, reject: bool) {
        self.state.set_reject_all(reject);
    }

    /// Makes the target API read the whole request body before it checks the
    /// token, as some servers and proxies do, rather than answer 401 from
    /// the headers alone (the default).
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// mock.set_target_reads_body_first(true);
    /// # Ok(()) }
    /// ```
    pub fn set_target_reads_body_first(&self, read_first: bool) {
        self.state.set_read_body_first(read_first);
    }

    /// Whether the target API keeps the requests it receives, body
    /// included, for [`target_requests`](Self::target_requests): the newest
    /// 10,000 with at most 64 MiB of body between them, the oldest
    /// forgotten first. Turn it off for long or heavy runs; the counts go
    /// on. Defaults to on.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # use simacan_auth::{mock::MockAuthApi, SimacanAuthLayer};
    /// # use tower::{Layer, ServiceExt};
    /// let mock = MockAuthApi::start().await?;
    /// mock.set_target_recording(false);
    /// let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    ///     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let svc = SimacanAuthLayer::new(mock.credentials()).environment(mock.environment()).layer(client);
    /// let request = http::Request::post(mock.url("/trips")).body("{}".into()).unwrap();
    /// svc.oneshot(request).await.expect("answered");
    /// assert_eq!(mock.counts().target, 1);
    /// assert!(mock.target_requests().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn set_target_recording(&self, recording: bool) {
        self.state.set_recording(recording);
    }

    /// A handle that checks bearer tokens the way the target API does, for
    /// servers of your own (a tonic interceptor, an axum handler) that should
    /// accept exactly the mock's tokens. Its checks count as target requests.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// let validator = mock.validator();
    /// assert!(!validator.check(Some(b"Bearer made-up")));
    /// assert_eq!(mock.counts().target_unauthorized, 1);
    /// # Ok(()) }
    /// ```
    pub fn validator(&self) -> TokenValidator {
        TokenValidator {
            state: Arc::clone(&self.state),
        }
    }

    /// Delays every answer of `route` by `delay`.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # use simacan_auth::mock::{MockAuthApi, Route};
    /// let mock = MockAuthApi::start().await?;
    /// mock.set_delay(Route::Refresh, std::time::Duration::from_millis(200));
    /// # Ok(()) }
    /// ```
    pub fn set_delay(&self, route: Route, delay: Duration) {
        self.state.set_delay(route, delay);
    }

    /// Delays the answers of the Auth API by a script: the n-th call to
    /// `/auth/password` or `/auth/refresh` (1-based, the two counted
    /// together) waits `script(n)` before it is answered, on top of any
    /// [`set_delay`](Self::set_delay). Replaces the script set before. The
    /// script runs outside the mock's lock; it should be quick.
    ///
    /// # Example
    ///
    /// Every fifth Auth API call is slow:
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use simacan_auth::{mock::MockAuthApi, SimacanAuthLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = MockAuthApi::start().await?;
    /// mock.set_auth_delays(|n| if n % 5 == 0 { Duration::from_millis(40) } else { Duration::ZERO });
    /// let layer = SimacanAuthLayer::new(mock.credentials()).environment(mock.environment());
    /// layer.access_token().await.expect("call 1 is quick");
    /// for _ in 2..5 {
    ///     layer.invalidate();
    ///     layer.access_token().await.expect("calls 2 to 4 are quick");
    /// }
    /// layer.invalidate();
    /// let started = Instant::now();
    /// layer.access_token().await.expect("call 5 is slow");
    /// assert!(started.elapsed() >= Duration::from_millis(40));
    /// # Ok(()) }
    /// ```
    pub fn set_auth_delays<F>(&self, script: F)
    where
        F: Fn(usize) -> Duration + Send + Sync + 'static,
    {
        self.state.set_auth_delays(Arc::new(script));
    }

    /// Answers the next call to `route` with `response` instead of the real
    /// logic: error statuses, `Retry-After`, malformed bodies. Queued answers
    /// and [faults](Self::fail_next) are used in order; the call is still
    /// counted.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # use simacan_auth::mock::{MockAuthApi, Route};
    /// let mock = MockAuthApi::start().await?;
    /// let outage = http::Response::builder().status(503).header("retry-after", "2").body(String::new()).unwrap();
    /// mock.respond_next(Route::Password, outage);
    /// # Ok(()) }
    /// ```
    pub fn respond_next(&self, route: Route, response: Response<String>) {
        self.state.push_scripted(route, Scripted::Respond(response));
    }

    /// Makes the next call to `route` fail with `fault`: the connection is
    /// dropped before or part-way through the answer. Queued faults and
    /// [answers](Self::respond_next) are used in order; the call is still
    /// counted, after any delay.
    ///
    /// # Example
    ///
    /// The login's connection is dropped: a typed error, then the next login
    /// after the backoff succeeds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use simacan_auth::{mock::{Fault, MockAuthApi, Route}, Endpoint, Error, SimacanAuthLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = MockAuthApi::start().await?;
    /// let layer = SimacanAuthLayer::new(mock.credentials())
    ///     .environment(mock.environment())
    ///     .backoff(Duration::from_millis(10), Duration::from_millis(10));
    /// mock.fail_next(Route::Password, Fault::CutBody);
    /// let error = layer.access_token().await.unwrap_err();
    /// assert_eq!(error.kind(), simacan_auth::ErrorKind::AuthApiUnavailable, "{error}");
    /// assert_eq!(error.endpoint(), Some(Endpoint::Password));
    /// tokio::time::sleep(Duration::from_millis(20)).await;
    /// layer.access_token().await.expect("the next login is answered");
    /// assert_eq!(mock.counts().password, 2);
    /// # Ok(()) }
    /// ```
    pub fn fail_next(&self, route: Route, fault: Fault) {
        self.state.push_scripted(route, Scripted::Fail(fault));
    }

    /// How often each endpoint was called.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert_eq!(mock.counts(), simacan_auth::mock::Counts::default());
    /// # Ok(()) }
    /// ```
    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// Zeroes the counts and forgets the [recorded
    /// requests](Self::target_requests), as one step; gives the counts as
    /// they were. Tokens and knobs are left as they are.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert!(!mock.validator().check(None));
    /// assert_eq!(mock.reset_counts().target, 1);
    /// assert_eq!(mock.counts().target, 0);
    /// # Ok(()) }
    /// ```
    pub fn reset_counts(&self) -> Counts {
        self.state.reset_counts()
    }

    /// The requests the target API received, in order of arrival, with the
    /// body it read (empty for requests it rejected before reading): all of
    /// them, or the newest 10,000 with at most 64 MiB of body between them
    /// after more.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert!(mock.target_requests().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn target_requests(&self) -> Vec<RecordedRequest> {
        self.state.recorded()
    }
}

/// Starts a [`MockAuthApi`] on an address or with credentials of your
/// choice. Made by [`MockAuthApi::builder`].
///
/// # Example
///
/// A fixed port, so that a service restarted against it finds it at the
/// same URL:
///
/// ```
/// use std::net::SocketAddr;
/// use simacan_auth::mock::MockAuthApi;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
/// # let port = free.port();
/// let addr = SocketAddr::from(([127, 0, 0, 1], port));
/// let mock = MockAuthApi::builder().listen(addr).start().await?;
/// assert_eq!(mock.base_url(), format!("http://127.0.0.1:{port}/api/v1"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct MockAuthApiBuilder {
    listen: SocketAddr,
    username: String,
    password: String,
}

impl MockAuthApiBuilder {
    /// The address to listen on: a loopback address (IPv4 or IPv6), with
    /// port 0 for an ephemeral port. Loopback only, because the control API
    /// takes orders from anyone who can reach it, and the crate sends tokens
    /// over plain `http` to loopback only. Defaults to `127.0.0.1:0`.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::builder()
    ///     .listen("[::1]:0".parse().unwrap())
    ///     .start()
    ///     .await;
    /// if let Ok(mock) = mock {
    ///     // IPv6 may be off on this machine.
    ///     assert!(mock.base_url().starts_with("http://[::1]:"));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The username and password `/auth/password` accepts. Defaults to
    /// [`USERNAME`] and [`PASSWORD`].
    ///
    /// # Example
    ///
    /// ```
    /// let builder = simacan_auth::mock::MockAuthApi::builder().credentials("ops@example.com", "s3cret");
    /// # let _ = builder;
    /// ```
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = username.into();
        self.password = password.into();
        self
    }

    /// Binds the address and starts serving, as [`MockAuthApi::start`]
    /// describes.
    ///
    /// # Errors
    ///
    /// An error of kind [`InvalidInput`](std::io::ErrorKind::InvalidInput)
    /// for an address that is not a loopback address, or the I/O error of
    /// binding it (such as [`AddrInUse`](std::io::ErrorKind::AddrInUse)).
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let refused = simacan_auth::mock::MockAuthApi::builder()
    ///     .listen("0.0.0.0:0".parse().unwrap())
    ///     .start()
    ///     .await;
    /// assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// # }
    /// ```
    pub async fn start(self) -> std::io::Result<MockAuthApi> {
        if !self.listen.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the mock listens on loopback addresses only, not {}",
                    self.listen
                ),
            ));
        }
        let state = Arc::new(State::new(&self.username, &self.password));
        let (addr, server) = server::serve(Arc::clone(&state), self.listen).await?;
        Ok(MockAuthApi {
            addr,
            state,
            server,
        })
    }
}

impl fmt::Debug for MockAuthApiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockAuthApiBuilder")
            .field("listen", &self.listen)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Checks bearer tokens against the mock's. Made by
/// [`MockAuthApi::validator`].
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mock = simacan_auth::mock::MockAuthApi::start().await?;
/// let validator = mock.validator();
/// let interceptor = move |request: http::Request<()>| {
///     let header = request.headers().get(http::header::AUTHORIZATION);
///     validator.check(header.map(|v| v.as_bytes()))
/// };
/// # let _ = interceptor;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenValidator {
    state: Arc<State>,
}

impl TokenValidator {
    /// Whether an `Authorization` header value (`Bearer <token>`) carries a
    /// token the mock issued that has not expired or been revoked. Counted in
    /// [`Counts::target`] and, when refused, [`Counts::target_unauthorized`].
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mock = simacan_auth::mock::MockAuthApi::start().await?;
    /// assert!(!mock.validator().check(None));
    /// # Ok(()) }
    /// ```
    pub fn check(&self, authorization: Option<&[u8]>) -> bool {
        let authorized = self.state.accepts(authorization);
        self.state.count_checked(authorized);
        authorized
    }
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidator").finish_non_exhaustive()
    }
}

impl Drop for MockAuthApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl fmt::Debug for MockAuthApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockAuthApi")
            .field("addr", &self.addr)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}
