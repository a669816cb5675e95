//! What the mock remembers: issued tokens, knobs, counters, recorded
//! requests.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Method, Response};
use tokio::time::Instant;

use super::Route;

/// How often each endpoint of the mock was called.
///
/// # Example
///
/// ```
/// let counts = simacan_auth::mock::Counts::default();
/// assert_eq!(counts.password + counts.refresh, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls to `/auth/password`.
    pub password: usize,
    /// Calls to `/auth/password` answered 401 (wrong credentials).
    pub password_rejected: usize,
    /// Calls to `/auth/refresh`.
    pub refresh: usize,
    /// Calls to `/auth/refresh` answered 401 (spent, unknown or expired
    /// refresh token).
    pub refresh_rejected: usize,
    /// Requests to the target API.
    pub target: usize,
    /// Requests to the target API answered 401.
    pub target_unauthorized: usize,
}

/// A request the target API received.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mock = simacan_auth::mock::MockAuthApi::start().await?;
/// for request in mock.target_requests() {
///     println!("{} {} authorized={}", request.method, request.path, request.authorized);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// The headers as received.
    pub headers: HeaderMap,
    /// The body the target read: all of it when authorized, nothing when it
    /// answered 401 from the headers.
    pub body: Bytes,
    /// The trailers that came after the body, if any.
    pub trailers: Option<HeaderMap>,
    /// Whether the bearer token was accepted.
    pub authorized: bool,
}

pub(super) struct State {
    username: String,
    password: String,
    inner: Mutex<Inner>,
}

struct Inner {
    lifetime: Duration,
    /// Access token -> when it expires. Revoked tokens are removed.
    access: HashMap<String, Instant>,
    /// Refresh tokens that may still be used, each once.
    refresh: HashSet<String>,
    reject_all: bool,
    read_body_first: bool,
    delays: HashMap<Route, Duration>,
    canned: HashMap<Route, VecDeque<Response<String>>>,
    recorded: Vec<RecordedRequest>,
    counts: Counts,
}

/// A freshly issued token pair.
pub(super) struct Issued {
    pub(super) access: String,
    pub(super) refresh: String,
    pub(super) id: String,
    pub(super) expires_in: u64,
}

impl State {
    pub(super) fn new(username: &str, password: &str) -> Self {
        State {
            username: username.to_owned(),
            password: password.to_owned(),
            inner: Mutex::new(Inner {
                lifetime: Duration::from_secs(3600),
                access: HashMap::new(),
                refresh: HashSet::new(),
                reject_all: false,
                read_body_first: false,
                delays: HashMap::new(),
                canned: HashMap::new(),
                recorded: Vec::new(),
                counts: Counts::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn set_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime;
    }

    pub(super) fn revoke_access_tokens(&self) {
        self.lock().access.clear();
    }

    pub(super) fn expire_refresh_tokens(&self) {
        self.lock().refresh.clear();
    }

    pub(super) fn set_reject_all(&self, reject: bool) {
        self.lock().reject_all = reject;
    }

    pub(super) fn set_read_body_first(&self, read_first: bool) {
        self.lock().read_body_first = read_first;
    }

    pub(super) fn reads_body_first(&self) -> bool {
        self.lock().read_body_first
    }

    pub(super) fn set_delay(&self, route: Route, delay: Duration) {
        self.lock().delays.insert(route, delay);
    }

    pub(super) fn push_canned(&self, route: Route, response: Response<String>) {
        self.lock()
            .canned
            .entry(route)
            .or_default()
            .push_back(response);
    }

    pub(super) fn counts(&self) -> Counts {
        self.lock().counts
    }

    pub(super) fn recorded(&self) -> Vec<RecordedRequest> {
        self.lock().recorded.clone()
    }

    /// Counts the call and returns its delay and canned answer, if any.
    pub(super) fn arrive(&self, route: Route) -> (Option<Duration>, Option<Response<String>>) {
        let mut inner = self.lock();
        let counts = &mut inner.counts;
        match route {
            Route::Password => counts.password += 1,
            Route::Refresh => counts.refresh += 1,
            Route::Target => counts.target += 1,
        }
        let delay = inner.delays.get(&route).copied();
        let canned = inner.canned.get_mut(&route).and_then(VecDeque::pop_front);
        (delay, canned)
    }

    /// The password grant: a new pair for the right credentials.
    pub(super) fn password_grant(&self, username: &str, password: &str) -> Option<Issued> {
        let mut inner = self.lock();
        if username != self.username || password != self.password {
            inner.counts.password_rejected += 1;
            return None;
        }
        Some(inner.issue())
    }

    /// The refresh grant: spends `refresh_token` and issues a new pair.
    pub(super) fn refresh_grant(&self, refresh_token: &str) -> Option<Issued> {
        let mut inner = self.lock();
        if !inner.refresh.remove(refresh_token) {
            inner.counts.refresh_rejected += 1;
            return None;
        }
        Some(inner.issue())
    }

    /// Whether the target accepts an `Authorization` header value now.
    pub(super) fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let token = authorization
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .and_then(|t| std::str::from_utf8(t).ok());
        let inner = self.lock();
        let now = Instant::now();
        !inner.reject_all
            && token
                .and_then(|t| inner.access.get(t))
                .is_some_and(|expires_at| now < *expires_at)
    }

    /// Counts a target request checked outside the mock's own HTTP server.
    pub(super) fn count_checked(&self, authorized: bool) {
        let mut inner = self.lock();
        inner.counts.target += 1;
        if !authorized {
            inner.counts.target_unauthorized += 1;
        }
    }

    pub(super) fn record(&self, request: RecordedRequest) {
        let mut inner = self.lock();
        if !request.authorized {
            inner.counts.target_unauthorized += 1;
        }
        inner.recorded.push(request);
    }
}

impl Inner {
    fn issue(&mut self) -> Issued {
        let expires_in = self.lifetime.as_secs().max(1);
        let issued = Issued {
            access: jwt_like(),
            refresh: jwt_like(),
            id: jwt_like(),
            expires_in,
        };
        let expires_at = Instant::now() + Duration::from_secs(expires_in);
        self.access.insert(issued.access.clone(), expires_at);
        self.refresh.insert(issued.refresh.clone());
        issued
    }
}

/// Something shaped like a JWT: three base64url-ish segments.
fn jwt_like() -> String {
    let segment = |n: usize| -> String {
        std::iter::repeat_with(fastrand::alphanumeric)
            .take(n)
            .collect()
    };
    format!("eyJhbGciOiJSUzI1NiJ9.{}.{}", segment(32), segment(22))
}
