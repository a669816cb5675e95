//! One flight: a token newer than the one a cache holds, from the token
//! store when another process already obtained it, otherwise from the Auth
//! API under the store's lease.
//!
//! The steps and the invariant each keeps are those of the
//! [`store`](crate::store) module docs: adopt a newer stored token without
//! the lease; take the lease (waiting, and re-reading the record, while
//! another process holds it); re-read under the lease; confirm the lease
//! right before a refresh token is sent; save with compare-and-swap; and
//! keep a refused refresh token out of the store before anything else.

use std::{future::Future, pin::pin, task::Poll, time::Duration};

use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{
    access_token::{bare_token, Fresh, How, Origin, Token},
    cache::{Need, Shared},
    client::RefreshError,
    clock::{until, wall_now},
    grant::{bearer_header, Grant},
};
use crate::{
    store::{FailureNotice, Lease, StoreError, StoreErrorKind, TokenRecord},
    Error,
};

/// The first pause between looks at a lease held elsewhere; it doubles up
/// to [`LEASE_POLL_MAX`].
const LEASE_POLL_MIN: Duration = Duration::from_millis(5);
const LEASE_POLL_MAX: Duration = Duration::from_millis(100);

/// The most added to the Auth API timeout to make the lease's time to live.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Refresh tokens this process saw rotated or refused (keyed hashes of the
/// last few): never sent again, whatever a store says.
pub(super) struct SpentTokens {
    hasher: std::hash::RandomState,
    recent: std::sync::Mutex<std::collections::VecDeque<u64>>,
}

impl SpentTokens {
    const KEPT: usize = 16;

    pub(super) fn new() -> Self {
        SpentTokens {
            hasher: std::hash::RandomState::new(),
            recent: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    fn hash(&self, token: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, token)
    }

    fn insert(&self, token: &str) {
        let hash = self.hash(token);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == Self::KEPT {
            recent.pop_front();
        }
        recent.push_back(hash);
    }

    fn contains(&self, token: &str) -> bool {
        let hash = self.hash(token);
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.contains(&hash)
    }
}

/// Why a flight did not produce a token.
pub(crate) struct Failed {
    pub(crate) error: Error,
    /// The refresh token the flight started from was refused by the Auth
    /// API: it must never be sent again.
    pub(crate) refresh_spent: bool,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            refresh_spent: false,
        }
    }
}

/// What a flight's steps can fail with: the store (before the Auth API was
/// called, so a degraded local login is still possible) or the Auth API.
enum Trouble {
    Store(StoreError),
    Auth(Failed),
}

impl From<StoreError> for Trouble {
    fn from(error: StoreError) -> Self {
        Trouble::Store(error)
    }
}

impl From<Failed> for Trouble {
    fn from(failed: Failed) -> Self {
        Trouble::Auth(failed)
    }
}

/// What waiting for the lease ended with.
enum Leased {
    /// The lease, and whether another process held it first.
    Held { lease: Lease, waited: Waited },
    /// Another process obtained a token meanwhile.
    Adopted(Fresh),
}

/// Whether a process waited for the lease, and the failure notice it found
/// when it began to: only a notice written since then is about the call it
/// waited on.
enum Waited {
    No,
    Since(Option<FailureNotice>),
}

impl Shared {
    /// A token newer than `ours`, for the reason `need`.
    pub(super) async fn obtain(&self, ours: Option<&Token>, need: Need) -> Result<Fresh, Failed> {
        match self.newest(ours, need).await {
            Ok(fresh) => Ok(fresh),
            Err(Trouble::Auth(failed)) => Err(failed),
            // Only an unreachable store may be done without: a lease held
            // or lost elsewhere means another process is at the Auth API,
            // and a corrupt or insecure store needs a person.
            Err(Trouble::Store(error)) if error.kind() == StoreErrorKind::Unavailable => {
                self.without_store(error, ours, need).await
            }
            Err(Trouble::Store(error)) => Err(Error::Store(error).into()),
        }
    }

    async fn newest(&self, ours: Option<&Token>, need: Need) -> Result<Fresh, Trouble> {
        let record = self.load().await?;
        if let Some(fresh) = self.adoptable(record.as_ref(), ours) {
            return Ok(Fresh {
                predates_flight: true,
                ..fresh
            });
        }
        let (lease, waited) = match self.lease(ours).await? {
            Leased::Held { lease, waited } => (lease, waited),
            Leased::Adopted(fresh) => return Ok(fresh),
        };
        let obtained = self
            .renewing(&lease, self.under_lease(&lease, &waited, ours, need))
            .await;
        if let Err(error) = self.bounded(self.store.release(lease)).await {
            tracing::warn!(%error, "could not release the token store lease; it expires on its own");
        }
        obtained
    }

    /// Fails fast while the failed Auth API call of the process this one
    /// waited for, on the record as it is now, is backing off: its call is
    /// not repeated by the processes that waited on it. A notice that was
    /// there before this process began to wait is about an earlier call (a
    /// previous run, say, with a password since corrected) and is ignored;
    /// so is any notice for a process that found the lease free.
    async fn respect_failure(
        &self,
        record: Option<&TokenRecord>,
        waited: &Waited,
    ) -> Result<(), Trouble> {
        let Waited::Since(before) = waited else {
            return Ok(());
        };
        let generation = record.map(TokenRecord::generation);
        let notice = self.bounded(self.store.load_failure(&self.key)).await?;
        let Some(notice) =
            notice.filter(|n| n.generation() == generation && Some(n) != before.as_ref())
        else {
            return Ok(());
        };
        // By this clock, and never longer than the writer asked for.
        let left = until(notice.until()).min(notice.delay());
        if left.is_zero() {
            return Ok(());
        }
        let error = if notice.credentials_rejected() {
            Error::InvalidCredentials { retry_after: None }
        } else {
            Error::Store(StoreError::backing_off(
                format!(
                    "the auth api call of another process for {} failed moments ago",
                    self.key
                ),
                left,
            ))
        };
        tracing::debug!(%error, "not repeating another process's failed auth api call");
        Err(Failed::from(error).into())
    }

    /// Leaves a notice of a failed call, so that other processes wait out
    /// its backoff instead of repeating it.
    async fn share_failure(&self, lease: &Lease, generation: Option<u64>, error: &Error) {
        // Only what the Auth API answered (or failed to): not a missing
        // password or a configuration of this process's own.
        let from_the_auth_api = matches!(
            error,
            Error::InvalidCredentials { .. }
                | Error::Unreachable { .. }
                | Error::Timeout { .. }
                | Error::UnexpectedStatus { .. }
                | Error::MalformedResponse { .. }
                | Error::ResponseTooLarge { .. }
        );
        if !from_the_auth_api {
            return;
        }
        let delay = self.settings.backoff.shortest_first(error);
        let rejected = matches!(error, Error::InvalidCredentials { .. });
        let notice = FailureNotice::new(self.key.clone(), generation, delay, rejected);
        if let Err(error) = self.bounded(self.store.save_failure(lease, &notice)).await {
            tracing::warn!(%error, "could not share the failure with other processes");
        }
    }

    /// Waits for the lease, looking at the record between attempts: the
    /// holder's token is used as soon as it is there.
    async fn lease(&self, ours: Option<&Token>) -> Result<Leased, Trouble> {
        let ttl = self.lease_ttl();
        let patience = self.lease_patience();
        let started = Instant::now();
        let mut pause = LEASE_POLL_MIN;
        // Read before the first try, so that a notice the holder writes
        // while this process waits is never taken for an earlier one.
        let before = self.bounded(self.store.load_failure(&self.key)).await?;
        let mut waited = Waited::No;
        loop {
            if let Some(lease) = self.bounded(self.store.try_lease(&self.key, ttl)).await? {
                return Ok(Leased::Held { lease, waited });
            }
            if let Waited::No = waited {
                waited = Waited::Since(before.clone());
            }
            if started.elapsed() >= patience {
                return Err(StoreError::contended(format!(
                    "another process held the lease on {} for more than {patience:?}",
                    self.key
                ))
                .into());
            }
            tokio::time::sleep(pause.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
            pause = (pause * 2).min(LEASE_POLL_MAX);
            let record = self.load().await?;
            if let Some(fresh) = self.adoptable(record.as_ref(), ours) {
                return Ok(Leased::Adopted(fresh));
            }
            self.respect_failure(record.as_ref(), &waited).await?;
        }
    }

    /// The lease holder's part: re-read, then refresh or log in, and save;
    /// a failed call is shared.
    async fn under_lease(
        &self,
        lease: &Lease,
        waited: &Waited,
        ours: Option<&Token>,
        need: Need,
    ) -> Result<Fresh, Trouble> {
        let mut record = self.load().await?;
        // Not there at the first look: a process that held the lease since
        // stored it, most likely healing the same 401s.
        if let Some(fresh) = self.adoptable(record.as_ref(), ours) {
            return Ok(fresh);
        }
        self.respect_failure(record.as_ref(), waited).await?;
        let called = self.call(lease, &mut record, ours, need).await;
        match called {
            Ok(fresh) => Ok(fresh),
            Err(Trouble::Auth(failed)) => {
                let generation = record.as_ref().map(TokenRecord::generation);
                self.share_failure(lease, generation, &failed.error).await;
                Err(Trouble::Auth(failed))
            }
            Err(store) => Err(store),
        }
    }

    /// Refreshes the newest refresh token, or logs in, and saves the token
    /// over `record` (updated when a refused refresh token is saved away).
    async fn call(
        &self,
        lease: &Lease,
        record: &mut Option<TokenRecord>,
        ours: Option<&Token>,
        need: Need,
    ) -> Result<Fresh, Trouble> {
        // The stored chain is the newest unless ours is newer (the store
        // lost its data) or the store has nothing.
        let stored_is_newest = match (&record, ours) {
            (Some(stored), Some(ours)) => {
                ours.origin == Origin::Local || stored.generation() >= ours.version
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        let refresh_token: Option<Zeroizing<String>> = if stored_is_newest {
            record
                .as_ref()
                .and_then(TokenRecord::refresh_token)
                .map(|t| Zeroizing::new(t.to_owned()))
        } else {
            ours.and_then(|t| t.refresh_token.clone())
        };
        // Never send a refresh token this process saw rotated or refused.
        let refresh_token = refresh_token.filter(|t| !self.spent.contains(t));
        let (grant, how) = match refresh_token {
            Some(refresh_token) => {
                if !self
                    .bounded(self.store.renew(lease, self.lease_ttl()))
                    .await?
                {
                    return Err(StoreError::contended(format!(
                        "lost the lease on {} before sending the refresh token",
                        self.key
                    ))
                    .into());
                }
                match self.refresh(&refresh_token).await {
                    Ok(grant) => (grant, How::Refreshed),
                    Err(RefreshError::Failed(error)) => return Err(Failed::from(error).into()),
                    Err(RefreshError::Rejected) => {
                        tracing::warn!(
                            "refresh token rejected; logging in with the password again"
                        );
                        if stored_is_newest {
                            *record = self.save_spent(lease, record.take(), need).await;
                        }
                        let grant =
                            self.api
                                .password(&self.credentials)
                                .await
                                .map_err(|error| Failed {
                                    error,
                                    refresh_spent: true,
                                })?;
                        (grant, How::FellBack)
                    }
                }
            }
            None => (self.password(need).await?, How::LoggedIn),
        };
        let expected = record.as_ref().map(TokenRecord::generation);
        let version = expected.unwrap_or(0).max(ours.map_or(0, |t| t.version)) + 1;
        self.save(lease, &grant, version, expected).await;
        Ok(Fresh::issued(grant, version, Origin::Store, how))
    }

    /// The refresh grant, remembering a refresh token the Auth API rotated
    /// or refused so that it is never sent again.
    async fn refresh(&self, refresh_token: &str) -> Result<Grant, RefreshError> {
        let refreshed = self.api.refresh(refresh_token).await;
        if matches!(refreshed, Ok(_) | Err(RefreshError::Rejected)) {
            self.spent.insert(refresh_token);
        }
        refreshed
    }

    async fn password(&self, need: Need) -> Result<Grant, Failed> {
        if need == Need::Proactive {
            tracing::debug!("no refresh token to renew with; logging in with the password");
        }
        Ok(self.api.password(&self.credentials).await?)
    }

    /// Keeps a refused refresh token out of the store, so that no process
    /// sends it again. The access token stays usable only when it was not
    /// refused itself (a proactive refresh). Returns the record now stored.
    async fn save_spent(
        &self,
        lease: &Lease,
        record: Option<TokenRecord>,
        need: Need,
    ) -> Option<TokenRecord> {
        let stored = record?;
        let expires_at = match need {
            Need::Proactive => stored.expires_at(),
            Need::Token | Need::Unauthorized => wall_now(),
        };
        let spent = stored.spent(stored.generation() + 1, expires_at);
        match self
            .bounded(self.store.save(lease, &spent, Some(stored.generation())))
            .await
        {
            Ok(true) => Some(spent),
            Ok(false) => {
                tracing::error!("the token store changed under the lease; could not mark the refused refresh token");
                Some(stored)
            }
            Err(error) => {
                tracing::warn!(%error, "could not mark the refused refresh token in the token store");
                Some(stored)
            }
        }
    }

    /// Saves a new token as generation `version` over the generation
    /// `expected`. A failed save is logged; the token stays the successor
    /// of `expected` in memory (its refresh token is the live one), and the
    /// next flight saves its own successor over `expected` again.
    async fn save(&self, lease: &Lease, grant: &Grant, version: u64, expected: Option<u64>) {
        let record = match self.record_of(grant, version) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(%error, "could not make a token record");
                return;
            }
        };
        match self
            .bounded(self.store.save(lease, &record, expected))
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                "the token store changed under the lease; the new token is kept in this process"
            ),
            Err(error) => {
                tracing::warn!(%error, "could not save the new token; it is kept in this process")
            }
        }
    }

    fn record_of(&self, grant: &Grant, version: u64) -> Result<TokenRecord, StoreError> {
        let access = bare_token(&grant.header);
        TokenRecord::new(
            self.key.clone(),
            version,
            access,
            Some(&grant.refresh_token),
            wall_now() + grant.lifetime,
            grant.lifetime,
        )
    }

    /// The store is unavailable. Requests with a valid token go on from
    /// memory and nothing refreshes without the lease; a process without a
    /// valid token logs in on its own only when allowed to.
    async fn without_store(
        &self,
        error: StoreError,
        ours: Option<&Token>,
        need: Need,
    ) -> Result<Fresh, Failed> {
        if !self.settings.local_login_on_store_outage || need == Need::Proactive {
            return Err(Error::Store(error).into());
        }
        tracing::warn!(%error, "token store unavailable; obtaining a token for this process only");
        let version = ours.map_or(0, |t| t.version);
        // Only a chain of this process's own may be refreshed without the
        // lease: the store's is shared.
        let own = ours.filter(|t| t.origin == Origin::Local);
        let own_refresh = own
            .and_then(|t| t.refresh_token.as_ref())
            .filter(|t| !self.spent.contains(t));
        if let Some(refresh_token) = own_refresh {
            match self.refresh(refresh_token).await {
                Ok(grant) => {
                    return Ok(Fresh::issued(grant, version, Origin::Local, How::Refreshed))
                }
                Err(RefreshError::Failed(error)) => return Err(error.into()),
                Err(RefreshError::Rejected) => {
                    let grant = self
                        .api
                        .password(&self.credentials)
                        .await
                        .map_err(|error| Failed {
                            error,
                            refresh_spent: true,
                        })?;
                    return Ok(Fresh::issued(grant, version, Origin::Local, How::FellBack));
                }
            }
        }
        let grant = self.api.password(&self.credentials).await?;
        Ok(Fresh::issued(grant, version, Origin::Local, How::LoggedIn))
    }

    /// A stored token this cache should use instead of `ours`: one that is
    /// valid (less a margin for clock skew) and newer. Any valid stored
    /// token is newer than one of this process's own. `record` comes from
    /// [`load`](Self::load), which believes only a record of this key.
    fn adoptable(&self, record: Option<&TokenRecord>, ours: Option<&Token>) -> Option<Fresh> {
        let record = record?;
        let newer =
            ours.is_none_or(|t| t.origin == Origin::Local || record.generation() > t.version);
        if !newer {
            return None;
        }
        // The same access token under a newer generation (a refused refresh
        // token saved away) is nothing new.
        if ours.is_some_and(|t| t.access_token() == record.access_token()) {
            return None;
        }
        let margin = self.settings.max_clock_skew.min(record.lifetime() / 10);
        // No longer than its lifetime, whatever the writer's clock said.
        let remaining = until(record.expires_at())
            .min(record.lifetime())
            .checked_sub(margin)?;
        if remaining.is_zero() {
            return None;
        }
        let header = bearer_header(record.access_token())?;
        Some(Fresh {
            header,
            refresh_token: record.refresh_token().map(|t| Zeroizing::new(t.to_owned())),
            lifetime: record.lifetime(),
            remaining,
            version: record.generation(),
            origin: Origin::Store,
            how: How::Adopted,
            predates_flight: false,
        })
    }

    /// The record of this cache's key (a store that answers with another
    /// key's record is not believed).
    async fn load(&self) -> Result<Option<TokenRecord>, StoreError> {
        let record = self.bounded(self.store.load(&self.key)).await?;
        Ok(record.filter(|r| r.key() == &self.key))
    }

    /// Runs `work` while renewing `lease` every third of its time to live.
    async fn renewing<T>(&self, lease: &Lease, work: impl Future<Output = T>) -> T {
        let ttl = self.lease_ttl();
        let mut work = pin!(work);
        loop {
            let mut tick = pin!(tokio::time::sleep(ttl / 3));
            let done = std::future::poll_fn(|cx| match work.as_mut().poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending => tick.as_mut().poll(cx).map(|()| None),
            })
            .await;
            if let Some(out) = done {
                return out;
            }
            match self.bounded(self.store.renew(lease, ttl)).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("lost the token store lease while calling the auth api")
                }
                Err(error) => tracing::warn!(%error, "could not renew the token store lease"),
            }
        }
    }

    /// A store operation, bounded by the Auth API timeout.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.settings.auth_timeout;
        tokio::time::timeout(limit, operation)
            .await
            .unwrap_or_else(|elapsed| {
                Err(StoreError::unavailable(
                    format!("token store did not answer within {limit:?}"),
                    elapsed,
                ))
            })
    }

    /// Longer than one Auth API call plus a margin; renewed while calls are
    /// in flight.
    fn lease_ttl(&self) -> Duration {
        let timeout = self.settings.auth_timeout;
        timeout.saturating_add(timeout.min(LEASE_MARGIN))
    }

    /// How long to wait for a lease held elsewhere: its holder's two Auth
    /// API calls and its store operations (each bounded by the Auth API
    /// timeout), and the lease's expiry should the holder die.
    fn lease_patience(&self) -> Duration {
        let timeout = self.settings.auth_timeout;
        timeout.saturating_mul(6).saturating_add(self.lease_ttl())
    }
}

#[cfg(test)]
#[path = "flight_tests.rs"]
mod tests;
