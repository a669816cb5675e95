//! One access token with its refresh token and timing: what the cache holds
//! and what [`AccessToken`] lends out.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use http::HeaderValue;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::grant::Grant;

/// A token the cache holds. Immutable but for when its proactive refresh is
/// due, which moves when a proactive refresh fails and backs off.
pub(crate) struct Token {
    pub(crate) header: HeaderValue,
    pub(crate) refresh_token: Zeroizing<String>,
    /// Counts tokens obtained; a 401 names the generation it was sent with.
    pub(crate) generation: u64,
    pub(crate) received_at: Instant,
    pub(crate) expires_at: Instant,
    /// Milliseconds after `received_at` at which a proactive refresh is due;
    /// `u64::MAX` once one has been claimed.
    refresh_due_ms: AtomicU64,
    /// The first moment a proactive refresh can be due: before it, requests
    /// skip the atomic and the arithmetic (deferrals only move later).
    refresh_window_opens: Instant,
}

impl Token {
    /// `window` is how long before expiry the proactive refresh starts; it is
    /// capped at half the lifetime and widened by up to a tenth at random so
    /// that many clients do not refresh in step.
    pub(crate) fn new(
        grant: Grant,
        received_at: Instant,
        generation: u64,
        window: Duration,
    ) -> Token {
        let window = window.min(grant.lifetime / 2);
        let jitter = window.mul_f64(fastrand::f64() / 10.0);
        let due = grant.lifetime.saturating_sub(window + jitter);
        Token {
            header: grant.header,
            refresh_token: grant.refresh_token,
            generation,
            received_at,
            expires_at: received_at + grant.lifetime,
            refresh_due_ms: AtomicU64::new(millis(due)),
            refresh_window_opens: received_at + due,
        }
    }

    /// The same token, already expired: the next use refreshes it.
    pub(crate) fn expired_copy(&self, now: Instant) -> Token {
        Token {
            header: self.header.clone(),
            refresh_token: self.refresh_token.clone(),
            generation: self.generation,
            received_at: self.received_at,
            expires_at: now.min(self.expires_at),
            refresh_due_ms: AtomicU64::new(0),
            refresh_window_opens: self.received_at,
        }
    }

    #[inline]
    pub(crate) fn is_valid_at(&self, now: Instant) -> bool {
        now < self.expires_at
    }

    /// True for exactly one caller once the proactive refresh is due.
    #[inline]
    pub(crate) fn claim_proactive_refresh(&self, now: Instant) -> bool {
        now >= self.refresh_window_opens && self.claim_due_refresh(now)
    }

    fn claim_due_refresh(&self, now: Instant) -> bool {
        let due = self.refresh_due_ms.load(Ordering::Relaxed);
        let age = millis(now.saturating_duration_since(self.received_at));
        age >= due
            && self
                .refresh_due_ms
                .compare_exchange(due, u64::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Moves the proactive refresh to `at` (after a failed one backs off).
    pub(crate) fn defer_proactive_refresh(&self, at: Instant) {
        let due = millis(at.saturating_duration_since(self.received_at));
        self.refresh_due_ms.store(due, Ordering::Release);
    }

    /// When the proactive refresh is due, if it has not been claimed.
    #[cfg(test)]
    pub(crate) fn refresh_due(&self) -> Option<Instant> {
        let due = self.refresh_due_ms.load(Ordering::Relaxed);
        (due != u64::MAX).then(|| self.received_at + Duration::from_millis(due))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1)
}

/// An access token to use outside tower: a websocket handshake, another HTTP
/// client. Obtained with
/// [`SimacanAuthLayer::access_token`](crate::SimacanAuthLayer::access_token).
///
/// Its `Debug` shows when it expires, never the token.
///
/// # Example
///
/// ```no_run
/// # async fn run(layer: simacan_auth::SimacanAuthLayer) -> Result<(), simacan_auth::Error> {
/// let token = layer.access_token().await?;
/// let mut request = http::Request::new(());
/// request.headers_mut().insert(http::header::AUTHORIZATION, token.header_value().clone());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AccessToken(pub(crate) Arc<Token>);

impl AccessToken {
    /// The bare token, for protocols that do not take an `Authorization`
    /// header. Keep it out of logs.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(layer: simacan_auth::SimacanAuthLayer) -> Result<(), simacan_auth::Error> {
    /// let token = layer.access_token().await?;
    /// let url = format!("wss://example.com/stream?access_token={}", token.expose_secret());
    /// # Ok(()) }
    /// ```
    pub fn expose_secret(&self) -> &str {
        let bytes = self.0.header.as_bytes();
        // The header was built from "Bearer " and a visible-ASCII token.
        std::str::from_utf8(&bytes[7..]).unwrap_or_default()
    }

    /// `Bearer <token>`, ready for an `Authorization` header and marked
    /// sensitive.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(layer: simacan_auth::SimacanAuthLayer) -> Result<(), simacan_auth::Error> {
    /// assert!(layer.access_token().await?.header_value().is_sensitive());
    /// # Ok(()) }
    /// ```
    pub fn header_value(&self) -> &HeaderValue {
        &self.0.header
    }

    /// How long until the token expires by its `expires_in` (the Auth API may
    /// still revoke it earlier). Zero once expired.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(layer: simacan_auth::SimacanAuthLayer) -> Result<(), simacan_auth::Error> {
    /// let left = layer.access_token().await?.expires_in();
    /// # Ok(()) }
    /// ```
    pub fn expires_in(&self) -> Duration {
        self.0.expires_at.saturating_duration_since(Instant::now())
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_in", &self.expires_in())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::grant::bearer_header;

    fn grant(lifetime: u64) -> Grant {
        Grant {
            header: bearer_header("tok").unwrap(),
            refresh_token: Zeroizing::new("ref".into()),
            lifetime: Duration::from_secs(lifetime),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn proactive_refresh_is_due_a_window_before_expiry_with_a_little_jitter() {
        let now = Instant::now();
        for _ in 0..50 {
            let token = Token::new(grant(3600), now, 1, Duration::from_secs(300));
            let due = token.refresh_due().unwrap() - now;
            assert!(due <= Duration::from_secs(3300), "{due:?}");
            assert!(due >= Duration::from_secs(3270), "{due:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn window_is_capped_at_half_the_lifetime() {
        let now = Instant::now();
        let token = Token::new(grant(60), now, 1, Duration::from_secs(300));
        let due = token.refresh_due().unwrap() - now;
        assert!(
            due <= Duration::from_secs(30) && due >= Duration::from_secs(27),
            "{due:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_one_caller_claims_the_proactive_refresh() {
        let token = Token::new(grant(60), Instant::now(), 1, Duration::from_secs(10));
        assert!(!token.claim_proactive_refresh(Instant::now()));
        tokio::time::advance(Duration::from_secs(51)).await;
        assert!(token.claim_proactive_refresh(Instant::now()));
        assert!(!token.claim_proactive_refresh(Instant::now()));
        token.defer_proactive_refresh(Instant::now() + Duration::from_secs(2));
        assert!(!token.claim_proactive_refresh(Instant::now()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(token.claim_proactive_refresh(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_is_measured_from_arrival() {
        let token = Token::new(grant(10), Instant::now(), 1, Duration::ZERO);
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(token.is_valid_at(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!token.is_valid_at(Instant::now()));
        assert_eq!(AccessToken(Arc::new(token)).expires_in(), Duration::ZERO);
    }

    #[test]
    fn debug_hides_the_token() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let token = AccessToken(Arc::new(Token::new(
            grant(10),
            Instant::now(),
            1,
            Duration::ZERO,
        )));
        assert_eq!(token.expose_secret(), "tok");
        let shown = format!("{token:?}");
        assert!(
            !shown.contains("tok\"") && !shown.contains("ref"),
            "{shown}"
        );
    }
}
