//! What the mock remembers: issued tokens (in the crate's one model of
//! refresh-token rotation), knobs, counters, recorded requests.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Method, Response};

use super::knobs::{Fault, Route};
use crate::rotation::Rotation;

/// How often each endpoint of the mock was called.
///
/// More counters may be added in a minor release, so a `Counts` is read
/// field by field (or compared with [`Counts::default`]) rather than built
/// with a struct literal or destructured exhaustively.
///
/// # Example
///
/// ```
/// let counts = simacan_auth::mock::Counts::default();
/// assert_eq!(counts.password + counts.refresh, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
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
    /// Calls to `/auth/refresh` with a refresh token that an earlier refresh
    /// had already spent: a refresh token sent twice. Each is also counted in
    /// `refresh_rejected`; unknown and expired tokens are not counted here.
    pub refresh_reused: usize,
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
    /// The tokens issued, spent, revoked and expired, and the refreshes
    /// refused, rejected and reused alike.
    tokens: Rotation,
    reject_all: bool,
    read_body_first: bool,
    recording: bool,
    delays: HashMap<Route, Duration>,
    auth_delays: Option<Arc<DelayScript>>,
    scripted: HashMap<Route, VecDeque<Scripted>>,
    /// The newest target requests, oldest first: at most
    /// [`RECORDED_AT_MOST`], with at most [`RECORDED_BYTES_AT_MOST`] of
    /// body between them.
    recorded: VecDeque<RecordedRequest>,
    /// The body bytes of `recorded`.
    recorded_bytes: usize,
    /// Every count but the refused refreshes, which `tokens` keeps.
    counts: Counts,
    /// What `tokens` had counted of rejected and reused refresh tokens when
    /// the counts were last reset.
    rotation_baseline: (usize, usize),
}

/// How many target requests the mock keeps at most: a mock left running
/// forgets the oldest instead of growing without bound.
pub(super) const RECORDED_AT_MOST: usize = 10_000;

/// How many body bytes the kept requests may hold together; the oldest are
/// forgotten first (the newest is kept whatever its size).
pub(super) const RECORDED_BYTES_AT_MOST: usize = 64 * 1024 * 1024;

/// The delay of the n-th Auth API call (1-based, both grants counted
/// together).
pub(super) type DelayScript = dyn Fn(usize) -> Duration + Send + Sync;

/// What the next call to a route does instead of the real logic.
pub(super) enum Scripted {
    Respond(Response<String>),
    Fail(Fault),
}

/// How a call that just arrived is to be answered.
pub(super) struct Arrival {
    pub(super) delay: Duration,
    pub(super) scripted: Option<Scripted>,
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
                tokens: Rotation::default(),
                reject_all: false,
                read_body_first: false,
                recording: true,
                delays: HashMap::new(),
                auth_delays: None,
                scripted: HashMap::new(),
                recorded: VecDeque::new(),
                recorded_bytes: 0,
                counts: Counts::default(),
                rotation_baseline: (0, 0),
            }),
        }
    }

    pub(super) fn username(&self) -> &str {
        &self.username
    }

    pub(super) fn password(&self) -> &str {
        &self.password
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn set_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime;
    }

    pub(super) fn revoke_access_tokens(&self) {
        self.lock().tokens.revoke_access_tokens();
    }

    pub(super) fn expire_refresh_tokens(&self) {
        self.lock().tokens.expire_refresh_tokens();
    }

    pub(super) fn set_reject_all(&self, reject: bool) {
        self.lock().reject_all = reject;
    }

    pub(super) fn set_read_body_first(&self, read_first: bool) {
        self.lock().read_body_first = read_first;
    }

    pub(super) fn set_recording(&self, recording: bool) {
        self.lock().recording = recording;
    }

    pub(super) fn reads_body_first(&self) -> bool {
        self.lock().read_body_first
    }

    pub(super) fn set_delay(&self, route: Route, delay: Duration) {
        self.lock().delays.insert(route, delay);
    }

    pub(super) fn set_auth_delays(&self, script: Arc<DelayScript>) {
        self.lock().auth_delays = Some(script);
    }

    pub(super) fn push_scripted(&self, route: Route, scripted: Scripted) {
        self.lock()
            .scripted
            .entry(route)
            .or_default()
            .push_back(scripted);
    }

    pub(super) fn counts(&self) -> Counts {
        self.lock().counts()
    }

    /// Zeroes the counts and forgets the recorded requests; gives the
    /// counts as they were, read in the same step.
    pub(super) fn reset_counts(&self) -> Counts {
        let mut inner = self.lock();
        let before = inner.counts();
        inner.counts = Counts::default();
        inner.rotation_baseline = (inner.tokens.rejected(), inner.tokens.reused());
        inner.recorded = VecDeque::new();
        inner.recorded_bytes = 0;
        before
    }

    pub(super) fn recorded(&self) -> Vec<RecordedRequest> {
        self.lock().recorded.iter().cloned().collect()
    }

    /// Counts the call and says how to answer it: after which delay, and
    /// with what scripted answer or fault, if any.
    pub(super) fn arrive(&self, route: Route) -> Arrival {
        let (mut arrival, script, nth) = {
            let mut inner = self.lock();
            let counts = &mut inner.counts;
            match route {
                Route::Password => counts.password += 1,
                Route::Refresh => counts.refresh += 1,
                Route::Target => counts.target += 1,
            }
            let nth = counts.password + counts.refresh;
            let arrival = Arrival {
                delay: inner.delays.get(&route).copied().unwrap_or_default(),
                scripted: inner.scripted.get_mut(&route).and_then(VecDeque::pop_front),
            };
            let script = match route {
                Route::Password | Route::Refresh => inner.auth_delays.clone(),
                Route::Target => None,
            };
            (arrival, script, nth)
        };
        // Outside the lock: the script is the caller's code.
        if let Some(script) = script {
            arrival.delay = arrival.delay.saturating_add(script(nth));
        }
        arrival
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
        inner.tokens.rotate(refresh_token).ok()?;
        Some(inner.issue())
    }

    /// Whether the target accepts an `Authorization` header value now.
    pub(super) fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let token = authorization
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .and_then(|t| std::str::from_utf8(t).ok());
        let inner = self.lock();
        !inner.reject_all && token.is_some_and(|t| inner.tokens.accepts(t))
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
        if inner.recording {
            inner.recorded_bytes += request.body.len();
            inner.recorded.push_back(request);
            while inner.recorded.len() > RECORDED_AT_MOST
                || (inner.recorded_bytes > RECORDED_BYTES_AT_MOST && inner.recorded.len() > 1)
            {
                if let Some(oldest) = inner.recorded.pop_front() {
                    inner.recorded_bytes -= oldest.body.len();
                }
            }
        }
    }
}

impl Inner {
    fn counts(&self) -> Counts {
        let (rejected, reused) = self.rotation_baseline;
        Counts {
            refresh_rejected: self.tokens.rejected() - rejected,
            refresh_reused: self.tokens.reused() - reused,
            ..self.counts
        }
    }

    fn issue(&mut self) -> Issued {
        let expires_in = self.lifetime.as_secs().max(1);
        let issued = Issued {
            access: jwt_like(),
            refresh: jwt_like(),
            id: jwt_like(),
            expires_in,
        };
        self.tokens.issue(
            &issued.access,
            &issued.refresh,
            Duration::from_secs(expires_in),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(number: usize) -> RecordedRequest {
        sized(number, 0)
    }

    fn sized(number: usize, body: usize) -> RecordedRequest {
        RecordedRequest {
            method: Method::POST,
            path: format!("/trips/{number}"),
            headers: HeaderMap::new(),
            body: Bytes::from(vec![0; body]),
            trailers: None,
            authorized: true,
        }
    }

    #[test]
    fn only_the_newest_requests_are_kept() {
        let state = State::new("user", "password");
        let sent = RECORDED_AT_MOST + 5;
        for number in 0..sent {
            state.record(request(number));
        }
        let recorded = state.recorded();
        assert_eq!(recorded.len(), RECORDED_AT_MOST);
        assert_eq!(
            recorded[0].path, "/trips/5",
            "the oldest five are forgotten"
        );
        assert_eq!(
            recorded[RECORDED_AT_MOST - 1].path,
            format!("/trips/{}", sent - 1)
        );
    }

    #[test]
    fn only_the_newest_bodies_within_the_byte_budget_are_kept() {
        let state = State::new("user", "password");
        let mib = 1024 * 1024;
        let budget = RECORDED_BYTES_AT_MOST / mib;
        for number in 0..budget + 3 {
            state.record(sized(number, mib));
        }
        let recorded = state.recorded();
        assert_eq!(recorded.len(), budget, "the oldest three are forgotten");
        assert_eq!(recorded[0].path, "/trips/3");

        // One body over the whole budget is kept alone.
        state.record(sized(budget + 3, RECORDED_BYTES_AT_MOST + 1));
        let recorded = state.recorded();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].path, format!("/trips/{}", budget + 3));

        state.reset_counts();
        assert!(state.recorded().is_empty());
        state.record(sized(0, mib));
        state.record(sized(1, mib));
        assert_eq!(state.recorded().len(), 2, "a reset forgets the bytes too");
    }
}
