//! One access token with its refresh token and timing: what a flight
//! obtains ([`Fresh`]), what the cache holds ([`Token`]) and what
//! [`AccessToken`] lends out.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use http::HeaderValue;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::grant::Grant;

/// Where a token's refresh chain lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Written to (or read from) the token store: the chain every token
    /// state on the store shares.
    Store,
    /// Known to this process only: obtained while the store was unavailable
    /// (degraded mode) or when saving it failed. Given up for the store's
    /// chain as soon as the store has a valid token of a later generation.
    Local,
}

/// How a flight came by its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    /// Read from the store: another token state obtained it.
    Adopted,
    /// The refresh grant.
    Refreshed,
    /// The password grant.
    LoggedIn,
    /// The password grant after the refresh token was refused.
    FellBack,
}

/// A token a flight obtained, before it becomes the current one.
pub(crate) struct Fresh {
    pub(crate) header: HeaderValue,
    pub(crate) refresh_token: Option<Zeroizing<String>>,
    /// `None` when read from the store, which does not keep it.
    pub(crate) id_token: Option<Zeroizing<String>>,
    /// The lifetime it was issued with.
    pub(crate) lifetime: Duration,
    /// How long it is valid from now.
    pub(crate) remaining: Duration,
    /// The store generation of its record.
    pub(crate) version: u64,
    pub(crate) origin: Origin,
    pub(crate) how: How,
    /// Taken from a record that was in the store when the flight first
    /// looked: another process stored it before this one set out, so it may
    /// have been revoked with the token refused, and its own refusal says
    /// nothing of the resource (it is healed, not cooled down). A record
    /// found later, while waiting for the lease or under it, was stored by
    /// a process healing the same 401s.
    pub(crate) predates_flight: bool,
}

impl Fresh {
    /// The same token, taken from a record stored before the flight set
    /// out (see `predates_flight`).
    pub(crate) fn predating_flight(self) -> Fresh {
        Fresh {
            predates_flight: true,
            ..self
        }
    }

    /// A token the Auth API just issued, valid for its whole lifetime.
    pub(crate) fn issued(grant: Grant, version: u64, origin: Origin, how: How) -> Fresh {
        Fresh {
            header: grant.header,
            refresh_token: Some(grant.refresh_token),
            id_token: grant.id_token,
            lifetime: grant.lifetime,
            remaining: grant.lifetime,
            version,
            origin,
            how,
            predates_flight: false,
        }
    }
}

/// The token of a `Bearer <token>` header built by the crate.
pub(crate) fn bare_token(header: &HeaderValue) -> &str {
    // The header was built from "Bearer " and a visible-ASCII token.
    header
        .as_bytes()
        .get(7..)
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or_default()
}

/// A token the cache holds. Immutable but for when its proactive refresh is
/// due, which moves when a proactive refresh fails and backs off, and
/// whether it is still unproven.
pub(crate) struct Token {
    pub(crate) header: HeaderValue,
    /// `None` once the Auth API refused it: it is never sent again.
    pub(crate) refresh_token: Option<Zeroizing<String>>,
    /// Held in memory only: never stored, sent or shown.
    pub(crate) id_token: Option<Zeroizing<String>>,
    /// Counts the tokens this cache has held; a 401 names the generation it
    /// was sent with.
    pub(crate) generation: u64,
    /// The store generation of its record.
    pub(crate) version: u64,
    pub(crate) origin: Origin,
    pub(crate) lifetime: Duration,
    pub(crate) received_at: Instant,
    pub(crate) expires_at: Instant,
    /// Milliseconds after `received_at` at which a proactive refresh is due;
    /// `u64::MAX` once one has been claimed.
    refresh_due_ms: AtomicU64,
    /// The first moment a proactive refresh can be due: before it, requests
    /// skip the atomic and the arithmetic (deferrals only move later).
    refresh_window_opens: Instant,
    /// Obtained to heal a 401 and not yet accepted by any request: a 401 for
    /// it means the resource, not the token, refuses.
    unproven: AtomicBool,
}

impl Token {
    /// `window` is how long before expiry the proactive refresh starts; it is
    /// capped at half the lifetime and widened by up to a tenth at random so
    /// that many clients do not refresh in step.
    pub(crate) fn new(
        fresh: Fresh,
        received_at: Instant,
        generation: u64,
        window: Duration,
        unproven: bool,
    ) -> Token {
        let window = window.min(fresh.lifetime / 2);
        let jitter = window.mul_f64(fastrand::f64() / 10.0);
        let due = fresh.remaining.saturating_sub(window + jitter);
        Token {
            header: fresh.header,
            refresh_token: fresh.refresh_token,
            id_token: fresh.id_token,
            generation,
            version: fresh.version,
            origin: fresh.origin,
            lifetime: fresh.lifetime,
            received_at,
            expires_at: received_at + fresh.remaining,
            refresh_due_ms: AtomicU64::new(millis(due)),
            refresh_window_opens: received_at + due,
            unproven: AtomicBool::new(unproven),
        }
    }

    /// A copy with other timing or without the refresh token.
    fn copy(&self, expires_at: Instant, refresh_token: Option<Zeroizing<String>>) -> Token {
        let due = self.refresh_due_ms.load(Ordering::Relaxed);
        Token {
            header: self.header.clone(),
            refresh_token,
            id_token: self.id_token.clone(),
            generation: self.generation,
            version: self.version,
            origin: self.origin,
            lifetime: self.lifetime,
            received_at: self.received_at,
            expires_at,
            refresh_due_ms: AtomicU64::new(due),
            refresh_window_opens: self.refresh_window_opens,
            unproven: AtomicBool::new(self.is_unproven()),
        }
    }

    /// The same token, already expired: the next use refreshes it.
    pub(crate) fn expired_copy(&self, now: Instant) -> Token {
        let copy = self.copy(now.min(self.expires_at), self.refresh_token.clone());
        copy.refresh_due_ms.store(0, Ordering::Relaxed);
        Token {
            refresh_window_opens: self.received_at,
            ..copy
        }
    }

    /// The same token without its refresh token, which the Auth API refused.
    pub(crate) fn without_refresh_token(&self) -> Token {
        self.copy(self.expires_at, None)
    }

    /// The access token itself, without `Bearer `.
    pub(crate) fn access_token(&self) -> &str {
        bare_token(&self.header)
    }

    #[inline]
    pub(crate) fn is_valid_at(&self, now: Instant) -> bool {
        now < self.expires_at
    }

    #[inline]
    pub(crate) fn is_unproven(&self) -> bool {
        self.unproven.load(Ordering::Relaxed)
    }

    /// A request with this token was accepted.
    pub(crate) fn prove(&self) {
        self.unproven.store(false, Ordering::Relaxed);
    }

    /// True for exactly one caller while the token is unproven.
    pub(crate) fn take_unproven(&self) -> bool {
        self.unproven.swap(false, Ordering::AcqRel)
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

    /// Moves the proactive refresh to `at` (after a failed one backs off, or
    /// a flight was abandoned).
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
/// Its `Debug` shows when it expires, never the token (nor the
/// [ID token](AccessToken::expose_id_token)).
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
        self.0.access_token()
    }

    /// The OpenID Connect ID token the Auth API issued with this access
    /// token: a signed JWT about the user who logged in (who they are, for
    /// whom and until when it was issued), for an application that needs to
    /// know the user. It is not a credential for Simacan's APIs, and the
    /// crate never sends it. Keep it out of logs all the same: it names the
    /// user and may be accepted as proof of a login elsewhere.
    ///
    /// Held in memory only, in a buffer wiped when the last clone of the
    /// token is dropped, and never written to the
    /// [token store](crate::SimacanAuthLayer::token_store) (whose record
    /// format has no place for it). `None`, then, for a token read from the
    /// store, obtained by another process or another layer sharing it;
    /// and `None` when the Auth API's answer carried no (non-empty) ID token.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(layer: simacan_auth::SimacanAuthLayer) -> Result<(), simacan_auth::Error> {
    /// let token = layer.access_token().await?;
    /// if let Some(id_token) = token.expose_id_token() {
    ///     // A JWT: header.payload.signature.
    ///     assert_eq!(id_token.split('.').count(), 3);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn expose_id_token(&self) -> Option<&str> {
        self.0.id_token.as_deref().map(String::as_str)
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

    fn grant(lifetime: u64) -> Fresh {
        let grant = Grant {
            header: bearer_header("tok").unwrap(),
            refresh_token: Zeroizing::new("ref".into()),
            id_token: Some(Zeroizing::new("idt".into())),
            lifetime: Duration::from_secs(lifetime),
        };
        Fresh::issued(grant, 1, Origin::Store, How::LoggedIn)
    }

    #[tokio::test(start_paused = true)]
    async fn proactive_refresh_is_due_a_window_before_expiry_with_a_little_jitter() {
        let now = Instant::now();
        for _ in 0..50 {
            let token = Token::new(grant(3600), now, 1, Duration::from_secs(300), false);
            let due = token.refresh_due().unwrap() - now;
            assert!(due <= Duration::from_secs(3300), "{due:?}");
            assert!(due >= Duration::from_secs(3270), "{due:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn window_is_capped_at_half_the_lifetime() {
        let now = Instant::now();
        let token = Token::new(grant(60), now, 1, Duration::from_secs(300), false);
        let due = token.refresh_due().unwrap() - now;
        assert!(
            due <= Duration::from_secs(30) && due >= Duration::from_secs(27),
            "{due:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_one_caller_claims_the_proactive_refresh() {
        let token = Token::new(grant(60), Instant::now(), 1, Duration::from_secs(10), false);
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
        let token = Token::new(grant(10), Instant::now(), 1, Duration::ZERO, false);
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
            false,
        )));
        assert_eq!(token.expose_secret(), "tok");
        assert_eq!(token.expose_id_token(), Some("idt"));
        let shown = format!("{token:?}");
        assert!(
            !shown.contains("tok\"") && !shown.contains("ref") && !shown.contains("idt"),
            "{shown}"
        );
    }
}
