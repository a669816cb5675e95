//! A faithful mock of the Simacan Auth API, and a small target API, on an
//! ephemeral loopback port. Feature `mock`.
//!
//! The mock behaves like the real service as its documentation describes it:
//!
//! - `POST {base}/auth/password` takes a form-urlencoded `username` and
//!   `password`, answers 200 with `access_token`, `refresh_token`, `id_token`,
//!   `token_type: bearer` and `expires_in`, or 401 for wrong credentials.
//! - `POST {base}/auth/refresh` takes a form-urlencoded `refresh_token` and
//!   rotates it: the answer carries a new refresh token, and the one sent is
//!   spent. A spent, unknown or expired refresh token is answered 401.
//! - Every other path is the target API: it checks
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

mod handler;
mod knobs;
mod server;
mod state;

use std::{fmt, net::SocketAddr, sync::Arc, time::Duration};

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
/// The server stops when this handle is dropped.
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
    /// HTTP/2 (prior knowledge).
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
        let state = Arc::new(State::new(USERNAME, PASSWORD));
        let (addr, server) = server::serve(Arc::clone(&state)).await?;
        Ok(MockAuthApi {
            addr,
            state,
            server,
        })
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
        Credentials::new(USERNAME, PASSWORD)
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

    /// Whether the target API keeps every request it receives, body
    /// included, for [`target_requests`](Self::target_requests). Turn it off
    /// for long runs; the counts go on. Defaults to on.
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

    /// Every request the target API received, in order of arrival, with the
    /// body it read (empty for requests it rejected before reading).
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
