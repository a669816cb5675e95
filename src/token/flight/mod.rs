//! One flight: a token newer than the one a cache holds, from the token
//! store when another process already obtained it, otherwise from the Auth
//! API under the store's lease.
//!
//! A [`Flight`] holds what the cross-process protocol needs (the Auth API
//! client, the credentials, the store and its key, the refresh tokens this
//! process saw spent, the lease's timings) and nothing of the token cache:
//! the cache owns it and spawns [`Flight::obtain`], one at a time.
//!
//! # The protocol, and the invariant each step keeps
//!
//! 1. **Look for a newer token without the lease.** A store that announces
//!    its saves ([`TokenStore::changes`]) may hand over the record it
//!    saved: a valid token there newer than the process's is used with no
//!    store call. A process without a token, or whose store's feed is not
//!    live (none, or a subscription being made again), loads the record
//!    instead. Either way, *a process that starts with a valid stored token
//!    makes no Auth API call*, and a replica whose 401 arrives after
//!    another healed it reads nothing.
//! 2. **Take the lease** on the key. Only the holder calls the Auth API, for
//!    the password grant and the refresh grant alike: *one login and one
//!    refresh per need, fleet-wide*. Each try is one look: the failure
//!    notice read, the lease tried, the record read, sent together and in
//!    that order (one round trip to Redis). A valid newer record the look
//!    finds is used, and the lease, if taken, given back. Others wait and
//!    use the holder's result, woken the moment it is saved when the store
//!    announces its writes (with the record, or reading it), at their next
//!    look (5 to 100 ms) otherwise. The lease is short (2.5 s) and renewed
//!    every 750 ms while its holder works, so *a dead holder stalls the
//!    others for at most the lease's time to live*; a wait longer than a
//!    second is logged at `warn` and counted ([`Stats::long_lease_waits`]).
//! 3. **Work on what the look read** under the lease (the read was made
//!    after the try, so no other holder wrote since).
//! 4. **Choose what to send.** A refresh token is sent only when the store
//!    vouches for it: the stored record's own, when that record is at least
//!    as new as the token this process holds; or a chain this process
//!    obtained without the store (a save that failed), which no one else
//!    knows, unless the store turns out to hold its access token after all.
//!    A store that lost its data (no record, or an older one, under a token
//!    that came from it) vouches for nothing, and *the process logs in with
//!    the password rather than send a refresh token another may have
//!    spent*. No generation past [`TokenRecord::MAX_GENERATION`] is ever
//!    written, and that is checked before anything is sent.
//! 5. **Mark the refresh token as sent** before sending it: the record is
//!    saved again without it, one generation on. *Should the holder die
//!    after the Auth API rotated the token and before it saved the new one,
//!    the next holder finds no refresh token and logs in with the password
//!    once, instead of sending the spent one.* The look that takes the
//!    lease makes the marking in the same step ([`Marking`]) when the
//!    record it finds is the one the process read, adopted or saved last;
//!    otherwise the holder saves it with compare-and-swap. When the Auth
//!    API surely did not take it (it answered with a status, a 5xx or 429,
//!    or no connection was made), it is put back; after a timeout, a
//!    dropped connection or an unreadable answer, which may hide a
//!    rotation, it is not, and the next attempt logs in with the password.
//! 6. **Confirm the lease** right before sending the password or a refresh
//!    token (a marking saved on its own is sent along with it; confirmed
//!    again when the marking had to be retried), and give up if it is no
//!    longer held. A look that took the lease and marked in one step needs
//!    no confirmation, unless it took as long as a renewal period: whoever
//!    takes the lease after it finds the refresh token marked.
//! 7. **Save** the new record with compare-and-swap on the generation the
//!    holder wrote or read: a write never overwrites a record it did not
//!    see. Every write (the marking, a put-back, the new token) is retried
//!    on the store's schedule for up to 2.5 s while the lease is renewed,
//!    and read back when its answer was lost. A store that lost its data
//!    meanwhile gets the new token put back, the newest generation winning.
//!    When the store stays away, or already holds a record as new, the
//!    token is kept in this process's memory alone, as a chain of its own.
//! 8. **Share a failure.** When the holder's call fails, it leaves a
//!    [`FailureNotice`] until its backoff ends; the processes that waited
//!    for that call fail fast with the same kind of error instead of
//!    repeating it: *a rejected password is sent once for the fleet, not
//!    once per replica*. A notice already there when a process began to
//!    wait, or found by a process that did not wait, is about another call
//!    and is ignored.
//! 9. **Release** the lease, in a task of its own: the token is used
//!    without waiting for the store's answer.
//!
//! The lease holds as long as its holder is not paused (a stopped VM, a
//! process frozen in a debugger) for longer than its time to live between a
//! renewal and a send, and the store's clock for lease expiry runs
//! steadily. A holder whose renewals fail while its call is in flight goes
//! on (a request sent cannot be unsent) and saves with compare-and-swap; a
//! process that took the lease over meanwhile finds the refresh token
//! marked as sent and logs in with the password: one login, never a
//! refresh token sent twice.
//!
//! A store that does not serve requests in the order they were sent (the
//! look's, the marking and its confirmation) costs at worst a failed
//! compare-and-swap: every write is fenced by the generation.
//!
//! [`Stats::long_lease_waits`]: crate::stats::Stats::long_lease_waits
//! [`Marking`]: crate::store::Marking

mod lease;
mod notice;
mod save;
mod spent;
mod timings;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use zeroize::Zeroizing;

use self::lease::{Found, Leased};
pub(crate) use self::{spent::SpentTokens, timings::LeaseTimings};
use super::{
    Credentials,
    access_token::{Fresh, How, Origin, Token},
    auth_api::{AuthApi, RefreshError},
    backoff::Backoff,
    grant::{Grant, bearer_header},
};
use crate::join::both;
use crate::{
    Error,
    clock::{until, wall_now},
    error::Detail,
    stats::Counters,
    store::{
        Changes, Lease, Marking, StoreError, StoreErrorKind, StoreKey, TokenRecord, TokenStore,
    },
};

/// Why a flight starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// No token, or an expired one.
    Token,
    /// The token nears expiry; requests keep using it meanwhile.
    Proactive,
    /// The token was refused with a 401.
    Unauthorized,
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

/// Whose refresh token a holder sends.
enum Chain {
    /// The stored record's: marked as sent in the store first (with the
    /// marking made for the look, when it is for that record).
    Stored(Option<Marking>),
    /// The stored record's, marked as sent by the look that took the lease
    /// (set out at the instant given).
    Marked(Marking, tokio::time::Instant),
    /// This process's own, obtained without the store.
    Own,
}

/// The settings a flight reads.
#[derive(Clone, Debug)]
pub(crate) struct FlightSettings {
    pub(crate) lease: LeaseTimings,
    pub(crate) auth_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) max_clock_skew: Duration,
    pub(crate) local_login_on_store_outage: bool,
}

/// Everything one login or refresh needs, owned by the token cache.
pub(crate) struct Flight {
    api: AuthApi,
    credentials: Credentials,
    store: Arc<dyn TokenStore>,
    key: StoreKey,
    /// Refresh tokens this process saw rotated or refused.
    spent: SpentTokens,
    /// The record this process last adopted or saved: what the store
    /// holds, as long as no other process wrote since.
    known: Mutex<Option<TokenRecord>>,
    settings: FlightSettings,
    counters: Arc<Counters>,
}

impl Flight {
    pub(crate) fn new(
        api: AuthApi,
        credentials: Credentials,
        store: Arc<dyn TokenStore>,
        key: StoreKey,
        mut settings: FlightSettings,
        counters: Arc<Counters>,
    ) -> Self {
        settings.lease = settings.lease.validated();
        Flight {
            api,
            credentials,
            store,
            key,
            spent: SpentTokens::new(),
            known: Mutex::new(None),
            settings,
            counters,
        }
    }

    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub(crate) fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    pub(crate) fn lease_timings(&self) -> &LeaseTimings {
        &self.settings.lease
    }

    /// A token newer than `ours`, for the reason `need`.
    pub(crate) async fn obtain(&self, ours: Option<&Token>, need: Need) -> Result<Fresh, Failed> {
        match self.newest(ours, need).await {
            Ok(fresh) => Ok(fresh),
            Err(Trouble::Auth(failed)) => Err(failed),
            // Only an unreachable store may be done without: a lease held
            // or lost elsewhere means another process is at the Auth API,
            // and a corrupt or insecure store needs a person.
            Err(Trouble::Store(error)) if error.kind() == StoreErrorKind::Unavailable => {
                self.without_store(error, ours, need).await
            }
            Err(Trouble::Store(error)) => Err(Error::store(error).into()),
        }
    }

    async fn newest(&self, ours: Option<&Token>, need: Need) -> Result<Fresh, Trouble> {
        // Subscribed before anything is read, so that no save after it is
        // missed.
        let changes = self.store.changes(&self.key);
        // A newer token another process saved and the store announced: no
        // store call at all.
        let announced = self.announced(changes.as_ref());
        if let Some(fresh) = self.adoptable(announced.as_ref(), ours) {
            return Ok(fresh.predating_flight());
        }
        // A live feed that hands over records would have handed over a
        // newer one, so a process with a token goes for the lease at once
        // (the look reads the record too). Otherwise the record is read
        // first, so that a process that finds a valid token takes no lease.
        let read_first =
            ours.is_none() || !changes.as_ref().is_some_and(|c| c.is_live_for(&self.key));
        let believed = if read_first {
            let record = self.load().await?;
            if let Some(fresh) = self.adoptable(record.as_ref(), ours) {
                return Ok(fresh.predating_flight());
            }
            record
        } else {
            self.known_record(ours)
        };
        // The refresh token the holder would send is marked as sent by the
        // look that takes the lease, when the record is still the one
        // believed stored.
        let marking = self.marking(believed.as_ref(), ours, need);
        let (lease, found) = match self.lease(ours, changes, !read_first, marking).await? {
            Leased::Held { lease, found } => (lease, *found),
            Leased::Adopted(fresh) => return Ok(fresh),
        };
        let obtained = self
            .renewing(&lease, self.under_lease(&lease, found, ours, need))
            .await;
        self.release_soon(lease);
        obtained
    }

    /// The lease holder's part, on the record and notice read as the lease
    /// was taken: refresh or log in, and save; a failed call is shared.
    async fn under_lease(
        &self,
        lease: &Lease,
        found: Found,
        ours: Option<&Token>,
        need: Need,
    ) -> Result<Fresh, Trouble> {
        // A record to adopt was adopted instead of holding the lease.
        let mut record = found.record;
        self.respect_failure(record.as_ref(), found.notice.as_ref(), &found.waited)?;
        let called = self
            .call(lease, &mut record, ours, need, found.marking)
            .await;
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

    /// Refreshes the refresh token the store vouches for, or logs in, and
    /// saves the token over `record` (updated as the flight writes it).
    async fn call(
        &self,
        lease: &Lease,
        record: &mut Option<TokenRecord>,
        ours: Option<&Token>,
        need: Need,
        marking: Option<(Marking, Option<tokio::time::Instant>)>,
    ) -> Result<Fresh, Trouble> {
        // Room for a marking and a new token, checked before anything is
        // sent: a grant must never be obtained only to be thrown away.
        let newest = record
            .as_ref()
            .map_or(0, TokenRecord::generation)
            .max(ours.map_or(0, |t| t.version));
        next_generation(newest).and_then(next_generation)?;
        let to_send = match marking {
            // Marked by the look (over the record it found, this one): its
            // refresh token, which `marking` vouched for.
            Some((marking, Some(looked))) => {
                let refresh_token = marking.expected().refresh_token().map(str::to_owned);
                *record = Some(marking.marked().clone());
                refresh_token.map(|t| (Zeroizing::new(t), Chain::Marked(marking, looked)))
            }
            // Not written by the look (a store without replicas' answer in
            // time, say): written now, the same record, so that a store
            // that already has it counts it as this write.
            not_written => match self.refresh_token_to_send(record.as_ref(), ours) {
                Some((token, Chain::Stored(_))) => {
                    let marking = not_written
                        .map(|(marking, _)| marking)
                        .filter(|m| m.expects(record.as_ref()));
                    Some((token, Chain::Stored(marking)))
                }
                other => other,
            },
        };
        let (grant, how) = match to_send {
            Some((refresh_token, chain)) => {
                self.refresh_under_lease(lease, record, &refresh_token, chain, need)
                    .await?
            }
            None => {
                self.confirm(lease, "the password").await?;
                (self.password(need).await?, How::LoggedIn)
            }
        };
        let expected = record.as_ref().map(TokenRecord::generation);
        let newest = expected.unwrap_or(0).max(ours.map_or(0, |t| t.version));
        let version = next_generation(newest)?;
        let origin = self.save(lease, &grant, version, expected).await;
        Ok(Fresh::issued(grant, version, origin, how))
    }

    /// The refresh token the store vouches for, else this process's own
    /// chain's; never one this process saw spent.
    fn refresh_token_to_send(
        &self,
        record: Option<&TokenRecord>,
        ours: Option<&Token>,
    ) -> Option<(Zeroizing<String>, Chain)> {
        let vouched = match (record, ours) {
            (Some(stored), Some(ours)) if ours.origin == Origin::Store => {
                stored.generation() >= ours.version
            }
            (Some(_), _) => true,
            (None, _) => false,
        };
        let unspent = |t: &str| !self.spent.contains(t);
        let stored = record
            .filter(|_| vouched)
            .and_then(TokenRecord::refresh_token)
            .filter(|t| unspent(t));
        if let Some(token) = stored {
            return Some((Zeroizing::new(token.to_owned()), Chain::Stored(None)));
        }
        // A chain of this process's own, unless the store knows its access
        // token after all (a save whose answer was lost): then another
        // process may hold its refresh token too.
        let own = ours.filter(|t| {
            t.origin == Origin::Local && record.is_none_or(|r| r.access_token() != t.access_token())
        });
        if let Some(own) = own {
            let token = own.refresh_token.as_ref().filter(|t| unspent(t))?;
            return Some((token.clone(), Chain::Own));
        }
        if !vouched && ours.is_some_and(|t| t.refresh_token.is_some()) {
            tracing::info!(
                key = %self.key.fingerprint(),
                "the token store no longer holds the token this process has (it lost its data); \
                 logging in with the password rather than sending a refresh token another process may have spent"
            );
        }
        None
    }

    /// Sends `refresh_token` under the confirmed lease, marked as sent in
    /// the store first when it is the stored chain's; falls back to the
    /// password when the Auth API refuses it.
    async fn refresh_under_lease(
        &self,
        lease: &Lease,
        record: &mut Option<TokenRecord>,
        refresh_token: &str,
        chain: Chain,
        need: Need,
    ) -> Result<(Grant, How), Trouble> {
        // Marked first, then the lease confirmed right before the send: a
        // holder that lost its lease meanwhile sends nothing and leaves the
        // token marked (the next holder logs in with the password). The two
        // are sent together, the confirmation second (one round trip to a
        // store that serves requests in order); a marking that had to be
        // retried is confirmed again.
        let unmarked = match chain {
            Chain::Marked(marking, looked) => {
                // The lease was taken with the marking; confirmed again
                // only when the look took as long as a renewal period.
                if looked.elapsed() >= self.settings.lease.renew_every {
                    self.confirm(lease, "a refresh token").await?;
                }
                Some(marking.expected().clone())
            }
            Chain::Stored(marking) => {
                let started = tokio::time::Instant::now();
                let confirmed = self.confirm(lease, "a refresh token");
                let marked = self.mark_sent(lease, record, need, marking.as_ref());
                let (marked, confirmed) = both(marked, confirmed).await;
                let unmarked = marked?;
                confirmed?;
                if started.elapsed() >= self.settings.lease.renew_every {
                    self.confirm(lease, "a refresh token").await?;
                }
                Some(unmarked)
            }
            Chain::Own => {
                self.confirm(lease, "a refresh token").await?;
                None
            }
        };
        match self.refresh(refresh_token).await {
            Ok(grant) => Ok((grant, How::Refreshed)),
            Err(RefreshError::Failed(error)) => {
                let failed = failed_refresh(error);
                if let Some(unmarked) = unmarked.filter(|_| !failed.refresh_spent) {
                    self.unmark(lease, record, unmarked).await;
                }
                Err(failed.into())
            }
            Err(RefreshError::Rejected) => {
                tracing::warn!("refresh token rejected; logging in with the password again");
                self.confirm(lease, "the password").await?;
                Ok((self.fall_back().await?, How::FellBack))
            }
        }
    }

    /// The refresh grant, remembering a refresh token the Auth API rotated,
    /// refused, or may have rotated (see [`not_taken`]) so that it is never
    /// sent again.
    async fn refresh(&self, refresh_token: &str) -> Result<Grant, RefreshError> {
        let refreshed = self.api.refresh(refresh_token).await;
        let spent = match &refreshed {
            Ok(_) | Err(RefreshError::Rejected) => true,
            Err(RefreshError::Failed(error)) => !not_taken(error),
        };
        if spent {
            self.spent.insert(refresh_token);
        }
        refreshed
    }

    /// The password grant after the Auth API refused the refresh token,
    /// which is spent whatever the login's outcome.
    async fn fall_back(&self) -> Result<Grant, Failed> {
        self.api
            .password(&self.credentials)
            .await
            .map_err(|error| Failed {
                error,
                refresh_spent: true,
            })
    }

    async fn password(&self, need: Need) -> Result<Grant, Failed> {
        if need == Need::Proactive {
            tracing::debug!("no refresh token to renew with; logging in with the password");
        }
        Ok(self.api.password(&self.credentials).await?)
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
            return Err(Error::store(error).into());
        }
        tracing::warn!(error = %crate::error::with_causes(&error), "token store unavailable; obtaining a token for this process only");
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
                    return Ok(Fresh::issued(grant, version, Origin::Local, How::Refreshed));
                }
                Err(RefreshError::Failed(error)) => return Err(failed_refresh(error)),
                Err(RefreshError::Rejected) => {
                    let grant = self.fall_back().await?;
                    return Ok(Fresh::issued(grant, version, Origin::Local, How::FellBack));
                }
            }
        }
        let grant = self.api.password(&self.credentials).await?;
        Ok(Fresh::issued(grant, version, Origin::Local, How::LoggedIn))
    }

    /// A stored token this cache should use instead of `ours`: one that is
    /// valid (less a margin for clock skew) and of a later generation. A
    /// token of this process's own carries the generation it would have had
    /// in the store. `record` comes from [`load`](Self::load), which
    /// believes only a record of this key.
    fn adoptable(&self, record: Option<&TokenRecord>, ours: Option<&Token>) -> Option<Fresh> {
        let record = record?;
        let newer = ours.is_none_or(|t| record.generation() > t.version);
        if !newer {
            return None;
        }
        // The same access token under a newer generation (its refresh token
        // marked as sent) is nothing new.
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
        self.remember(record);
        Some(Fresh {
            header,
            refresh_token: record.refresh_token().map(|t| Zeroizing::new(t.to_owned())),
            // The record format has no ID token: it stays with the process
            // that obtained it.
            id_token: None,
            lifetime: record.lifetime(),
            remaining,
            version: record.generation(),
            origin: Origin::Store,
            how: How::Adopted,
            predates_flight: false,
        })
    }

    /// The record this process last adopted or saved, when it is the one
    /// `ours` came from.
    fn known_record(&self, ours: Option<&Token>) -> Option<TokenRecord> {
        let ours = ours.filter(|t| t.origin == Origin::Store)?;
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .as_ref()
            .filter(|r| r.generation() == ours.version && r.access_token() == ours.access_token())
            .cloned()
    }

    /// Remembers `record` as the one the store holds.
    pub(super) fn remember(&self, record: &TokenRecord) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = Some(record.clone());
    }

    /// The marking a look should make for a holder that finds `believed`
    /// stored: when the holder would send its refresh token (see
    /// [`refresh_token_to_send`](Self::refresh_token_to_send)) and there is
    /// room for the marking and the new token.
    fn marking(
        &self,
        believed: Option<&TokenRecord>,
        ours: Option<&Token>,
        need: Need,
    ) -> Option<Marking> {
        let stored = believed.filter(|r| r.key() == &self.key)?;
        let (_, chain) = self.refresh_token_to_send(Some(stored), ours)?;
        if !matches!(chain, Chain::Stored(_)) {
            return None;
        }
        let newest = stored.generation().max(ours.map_or(0, |t| t.version));
        next_generation(newest).and_then(next_generation).ok()?;
        let marked = marked_as_sent(stored, need).ok()?;
        Some(Marking::new(stored.clone(), marked))
    }

    /// The record a change feed handed over for this cache's key.
    fn announced(&self, changes: Option<&Changes>) -> Option<TokenRecord> {
        changes?.saved(&self.key)
    }

    /// The record of this cache's key (a store that answers with another
    /// key's record is not believed).
    async fn load(&self) -> Result<Option<TokenRecord>, StoreError> {
        let record = self.bounded(self.store.load(&self.key)).await?;
        Ok(record.filter(|r| r.key() == &self.key))
    }

    /// A store operation, bounded by the lease's store timeout.
    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.settings.lease.store_timeout;
        tokio::time::timeout(limit, operation)
            .await
            .unwrap_or_else(|elapsed| {
                Err(StoreError::unavailable(
                    format!("token store did not answer within {limit:?}"),
                    elapsed,
                ))
            })
    }
}

/// The generation after `generation`, unless that passes the most a record
/// may carry.
fn next_generation(generation: u64) -> Result<u64, StoreError> {
    generation
        .checked_add(1)
        .filter(|next| *next <= TokenRecord::MAX_GENERATION)
        .ok_or_else(|| StoreError::corrupt("token record generation is at its limit"))
}

/// A refresh that failed: its token is spent when the Auth API may have
/// taken it ([`Flight::refresh`] has then put it among the spent ones).
fn failed_refresh(error: Error) -> Failed {
    let refresh_spent = !not_taken(&error);
    if refresh_spent {
        tracing::warn!(
            error = %crate::error::with_causes(&error),
            "the refresh may have reached the auth api, which then rotated the refresh token: \
             it is not sent again, and the next attempt logs in with the password"
        );
    }
    Failed {
        error,
        refresh_spent,
    }
}

/// Whether a failed refresh shows that the Auth API did not take the
/// refresh token: it answered with a status (a 5xx, a 429), or no
/// connection was ever made. A timeout, a connection dropped after the
/// request went out, or an answer that could not be read may follow a
/// rotation.
fn not_taken(error: &Error) -> bool {
    match error.detail() {
        Detail::Status { .. } => true,
        Detail::Unreachable(source) => never_connected(&**source),
        _ => false,
    }
}

/// Whether `error` is hyper's failure to connect, anywhere in its chain.
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(client) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            return client.is_connect();
        }
        next = error.source();
    }
    false
}

/// `stored` with its refresh token marked as sent: one generation on,
/// without it. The access token lasts only when it was not refused itself
/// (a proactive refresh).
fn marked_as_sent(stored: &TokenRecord, need: Need) -> Result<TokenRecord, StoreError> {
    let generation = next_generation(stored.generation())?;
    let expires_at = match need {
        Need::Proactive => stored.expires_at(),
        Need::Token | Need::Unauthorized => wall_now(),
    };
    Ok(stored.spent(generation, expires_at))
}

impl std::fmt::Debug for Flight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("key", &self.key.fingerprint())
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
