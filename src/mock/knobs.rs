//! The vocabulary of the mock's knobs: which endpoint a knob applies to,
//! and the faults it can inject.

/// Which of the mock's endpoints a knob applies to. More may be added as
/// the mock learns more of the Auth API, so a `match` on it needs a `_` arm.
///
/// # Example
///
/// ```
/// assert_ne!(simacan_auth::mock::Route::Password, simacan_auth::mock::Route::Target);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// `POST {base}/auth/password`.
    Password,
    /// `POST {base}/auth/refresh`.
    Refresh,
    /// Every other path but the control API's (`/_mock/…`): the target
    /// API.
    Target,
}

/// A fault to inject into the next call to a route, with
/// [`MockAuthApi::fail_next`](super::MockAuthApi::fail_next). See the
/// [module docs](super).
///
/// "Takes effect" means the mock's real logic runs: a login issues a token
/// pair, a refresh spends the refresh token and issues a new pair, the
/// target API records the request. The dropped connection is the whole TCP
/// connection, on HTTP/1.1 and HTTP/2 alike.
///
/// # Example
///
/// A refresh whose connection is dropped before it takes effect leaves the
/// refresh token unspent, but the layer cannot tell that from a rotation
/// whose answer was lost: after the backoff it logs in with the password
/// rather than send the token again.
///
/// ```
/// use std::time::Duration;
/// use simacan_auth::{mock::{Fault, MockAuthApi, Route}, SimacanAuthLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mock = MockAuthApi::start().await?;
/// let layer = SimacanAuthLayer::new(mock.credentials())
///     .environment(mock.environment())
///     .backoff(Duration::from_millis(10), Duration::from_millis(10));
/// layer.access_token().await.expect("logged in");
/// mock.fail_next(Route::Refresh, Fault::Close);
/// layer.invalidate();
/// assert!(layer.access_token().await.is_err());
/// tokio::time::sleep(Duration::from_millis(20)).await;
/// layer.access_token().await.expect("logged in again");
/// let counts = mock.counts();
/// assert_eq!((counts.refresh, counts.refresh_reused, counts.password), (1, 0, 2));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The connection is dropped before any of the answer is sent, and the
    /// call has no effect: as when the service crashes on arrival.
    Close,
    /// The call takes effect, then the connection is dropped before any of
    /// the answer is sent: on `/auth/refresh`, a rotation committed whose
    /// new refresh token the client never sees.
    CommitThenClose,
    /// The call takes effect and the status line, the headers (with the
    /// whole body's `content-length`) and the first half of the body are
    /// sent, then the connection is dropped.
    CutBody,
}
