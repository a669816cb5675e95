//! Refresh-token rotation as the Auth API keeps it: the one model of the
//! server's side of it, used by both stand-ins for the Auth API, the mock
//! (feature `mock`) and the unit tests' fake.
//!
//! Each login or refresh issues a pair: an access token valid for its
//! lifetime, and a refresh token that a refresh may rotate once. A refresh
//! spends the token it was sent (it can never be used again) and issues a
//! new pair. A refresh token sent after it was spent is a reuse, refused and
//! counted apart from tokens that were never issued or have expired, so
//! that tests can assert a client never sends one twice.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use tokio::time::Instant;

/// The tokens issued so far and what became of them. See the
/// [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Rotation {
    /// Access token -> when it expires. Revoked tokens are removed.
    access: HashMap<String, Instant>,
    /// Refresh tokens that may still be rotated, each once.
    live: HashSet<String>,
    /// Refresh tokens a refresh has rotated away: sending one again is a
    /// reuse, told apart from unknown and expired tokens.
    spent: HashSet<String>,
    /// Refreshes refused, whatever the reason.
    rejected: usize,
    /// Refreshes refused for sending a spent token.
    reused: usize,
}

/// Where a refresh token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Issued, and neither spent nor expired: a refresh may rotate it.
    Live,
    /// Rotated away by an earlier refresh: sending it again is a reuse.
    Spent,
    /// Never issued, or expired.
    Unknown,
}

impl Rotation {
    /// Issues a pair: `access` is accepted for `lifetime` from now (on
    /// tokio's clock), `refresh` may be rotated once.
    pub(crate) fn issue(&mut self, access: &str, refresh: &str, lifetime: Duration) {
        // A lifetime past what the clock can hold never ends.
        let now = Instant::now();
        let until = now
            .checked_add(lifetime)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 366 * 24 * 60 * 60));
        self.access.insert(access.to_owned(), until);
        self.live.insert(refresh.to_owned());
    }

    /// Where `refresh_token` stands now.
    pub(crate) fn standing(&self, refresh_token: &str) -> Standing {
        if self.live.contains(refresh_token) {
            Standing::Live
        } else if self.spent.contains(refresh_token) {
            Standing::Spent
        } else {
            Standing::Unknown
        }
    }

    /// The refresh grant's check: spends a live `refresh_token`, which the
    /// caller then replaces with a new pair; refuses any other, counted,
    /// and says why.
    pub(crate) fn rotate(&mut self, refresh_token: &str) -> Result<(), Standing> {
        match self.standing(refresh_token) {
            Standing::Live => {
                self.spend(refresh_token);
                Ok(())
            }
            refused => {
                self.refuse(refresh_token);
                Err(refused)
            }
        }
    }

    /// Spends `refresh_token` for good, whatever it stood at: a refresh took
    /// it. [`rotate`](Self::rotate) spends only live tokens; the unit tests'
    /// fake also rotates tokens it never issued (ones a test put in a store
    /// itself) when its script says so.
    pub(crate) fn spend(&mut self, refresh_token: &str) {
        self.live.remove(refresh_token);
        self.spent.insert(refresh_token.to_owned());
    }

    /// Counts a refused refresh with `refresh_token`: as rejected, and as a
    /// reuse when the token was spent.
    pub(crate) fn refuse(&mut self, refresh_token: &str) {
        self.rejected += 1;
        if self.standing(refresh_token) == Standing::Spent {
            self.reused += 1;
        }
    }

    /// Refreshes refused, whatever the reason.
    #[cfg_attr(not(feature = "mock"), allow(dead_code))]
    pub(crate) fn rejected(&self) -> usize {
        self.rejected
    }

    /// Refreshes refused for sending a spent refresh token.
    pub(crate) fn reused(&self) -> usize {
        self.reused
    }

    /// Whether `access_token` was issued and has neither expired nor been
    /// revoked.
    #[cfg_attr(not(feature = "mock"), allow(dead_code))]
    pub(crate) fn accepts(&self, access_token: &str) -> bool {
        let now = Instant::now();
        self.access
            .get(access_token)
            .is_some_and(|expires_at| now < *expires_at)
    }

    /// Revokes every access token issued so far, as when tokens expire
    /// early.
    #[cfg_attr(not(feature = "mock"), allow(dead_code))]
    pub(crate) fn revoke_access_tokens(&mut self) {
        self.access.clear();
    }

    /// Expires every live refresh token: a refresh with one is refused as
    /// unknown, not counted as a reuse.
    #[cfg_attr(not(feature = "mock"), allow(dead_code))]
    pub(crate) fn expire_refresh_tokens(&mut self) {
        self.live.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_refresh_token_rotates_once_and_a_reuse_is_counted_apart() {
        let mut rotation = Rotation::default();
        rotation.issue("a1", "r1", HOUR);
        assert_eq!(rotation.standing("r1"), Standing::Live);
        assert_eq!(rotation.rotate("r1"), Ok(()));
        rotation.issue("a2", "r2", HOUR);
        assert_eq!(rotation.rotate("r1"), Err(Standing::Spent));
        assert_eq!(rotation.rotate("never-issued"), Err(Standing::Unknown));
        assert_eq!((rotation.rejected(), rotation.reused()), (2, 1));
        assert_eq!(rotation.rotate("r2"), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_refresh_token_is_refused_but_is_no_reuse() {
        let mut rotation = Rotation::default();
        rotation.issue("a1", "r1", HOUR);
        rotation.expire_refresh_tokens();
        assert_eq!(rotation.rotate("r1"), Err(Standing::Unknown));
        assert_eq!((rotation.rejected(), rotation.reused()), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_token_of_another_issuer_is_a_reuse_too() {
        let mut rotation = Rotation::default();
        rotation.spend("from-a-store");
        assert_eq!(rotation.standing("from-a-store"), Standing::Spent);
        rotation.refuse("from-a-store");
        assert_eq!(rotation.reused(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_access_token_is_accepted_until_it_expires_or_is_revoked() {
        let mut rotation = Rotation::default();
        rotation.issue("a1", "r1", HOUR);
        assert!(rotation.accepts("a1"));
        assert!(
            !rotation.accepts("r1"),
            "a refresh token is no access token"
        );
        tokio::time::advance(HOUR).await;
        assert!(!rotation.accepts("a1"), "expired");
        rotation.issue("a2", "r2", HOUR);
        rotation.revoke_access_tokens();
        assert!(!rotation.accepts("a2"), "revoked");
    }
}
