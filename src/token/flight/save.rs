//! Writing under the lease: a refresh token marked as sent before it is,
//! put back when the Auth API did not take it, and the new token saved;
//! each write retried while the store is away and read back when its answer
//! was lost.

use tokio::time::Instant;

use super::{Flight, Need, Trouble, marked_as_sent, next_generation};
use crate::{
    clock::wall_now,
    store::{Lease, Marking, StoreError, TokenRecord},
    token::{
        access_token::{Origin, bare_token},
        grant::Grant,
    },
};

/// How a write ended.
enum Written {
    /// The record is in the store.
    Saved,
    /// Another record is, of a generation as new or newer.
    Superseded,
    /// The store did not answer for the whole retry window.
    Failed(StoreError),
}

/// Whether a record read back is the one written.
fn same_record(found: &TokenRecord, written: &TokenRecord) -> bool {
    found.generation() == written.generation()
        && found.access_token() == written.access_token()
        && found.refresh_token() == written.refresh_token()
}

impl Flight {
    /// Saves the stored record without its refresh token, one generation
    /// on, before that token is sent: a holder that dies after the Auth API
    /// rotated it leaves no spent token behind. Returns the record as it
    /// was, to put back should the Auth API not take the token. `made` is
    /// the marking made for the look, when it is for this record: written
    /// as it is, so that a store that already holds it (a look's marking
    /// that no replica acknowledged in time) takes it for this write.
    pub(super) async fn mark_sent(
        &self,
        lease: &Lease,
        record: &mut Option<TokenRecord>,
        need: Need,
        made: Option<&Marking>,
    ) -> Result<TokenRecord, Trouble> {
        let stored = record
            .clone()
            .expect("the stored chain's refresh token comes from a record");
        let marked = match made {
            Some(made) => made.marked().clone(),
            None => marked_as_sent(&stored, need)?,
        };
        match self
            .write(lease, &marked, Some(stored.generation()), false)
            .await
        {
            Written::Saved => {
                *record = Some(marked);
                Ok(stored)
            }
            Written::Superseded => Err(StoreError::contended(format!(
                "the record of {} changed under the lease before the refresh token was sent",
                self.key
            ))
            .into()),
            Written::Failed(error) => Err(error.into()),
        }
    }

    /// The Auth API did not take the refresh token marked as sent: put it
    /// back, one generation on, so that the next holder refreshes rather
    /// than logs in. The access token keeps the expiry the marking gave it
    /// (a refused one stays expired).
    pub(super) async fn unmark(
        &self,
        lease: &Lease,
        record: &mut Option<TokenRecord>,
        unmarked: TokenRecord,
    ) {
        let Some(marked) = record.as_ref() else {
            return;
        };
        let Ok(generation) = next_generation(marked.generation()) else {
            return;
        };
        let restored = TokenRecord::new(
            marked.key().clone(),
            generation,
            marked.access_token(),
            unmarked.refresh_token(),
            marked.expires_at(),
            marked.lifetime(),
        );
        let Ok(restored) = restored else { return };
        match self
            .write(lease, &restored, Some(marked.generation()), true)
            .await
        {
            Written::Saved => *record = Some(restored),
            Written::Superseded => {}
            Written::Failed(error) => tracing::warn!(
                error = %crate::error::with_causes(&error),
                "could not put back the refresh token the auth api did not take; \
                 the next attempt logs in with the password"
            ),
        }
    }

    /// Saves a new token as generation `version` over the generation
    /// `expected`. Returns where the token's chain lives: in the store, or,
    /// when the store stayed away or holds a record as new, in this process
    /// only.
    pub(super) async fn save(
        &self,
        lease: &Lease,
        grant: &Grant,
        version: u64,
        expected: Option<u64>,
    ) -> Origin {
        let record = match self.record_of(grant, version) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(error = %crate::error::with_causes(&error), "could not make a token record");
                return Origin::Local;
            }
        };
        match self.write(lease, &record, expected, true).await {
            Written::Saved => {
                self.remember(&record);
                Origin::Store
            }
            Written::Superseded => {
                tracing::error!(
                    "the token store holds a record as new as the token just obtained; \
                     the new token is kept in this process"
                );
                Origin::Local
            }
            Written::Failed(error) => {
                tracing::warn!(
                    error = %crate::error::with_causes(&error),
                    key = %self.key.fingerprint(),
                    "could not save the new token; it is kept in this process, \
                     and the next process to need a token logs in with the password"
                );
                Origin::Local
            }
        }
    }

    /// Writes `record` over the generation `expected`, trying a store that
    /// fails again on its schedule for up to `save_patience` (the lease is
    /// renewed meanwhile). A write whose answer was lost is recognised by
    /// reading the record back. When the compare-and-swap fails, a store
    /// that lost its data (no record, or an older one) gets `record` written
    /// over what it holds if `put_back`; otherwise (a marking) the write is
    /// superseded, and a marking whose every write failed is not read back
    /// at the end.
    async fn write(
        &self,
        lease: &Lease,
        record: &TokenRecord,
        mut expected: Option<u64>,
        put_back: bool,
    ) -> Written {
        let timings = self.settings.lease;
        let started = Instant::now();
        let mut failures = 0;
        let mut last_error = None;
        loop {
            match self.bounded(self.store.save(lease, record, expected)).await {
                Ok(true) => {
                    if failures > 0 {
                        tracing::info!(failures, "saved to the token store after it came back");
                    }
                    return Written::Saved;
                }
                Ok(false) => match self.load().await {
                    Ok(found) => {
                        // A marking is this write's only when it is the very
                        // record (another holder's marking of the same
                        // record has the same tokens); even then it may be
                        // a stale holder's, alike byte for byte, whose own
                        // lease confirmation fails.
                        let ours = |f: &TokenRecord| match put_back {
                            true => same_record(f, record),
                            false => f.encode() == record.encode(),
                        };
                        if found.as_ref().is_some_and(ours) {
                            return Written::Saved;
                        }
                        let generation = found.as_ref().map(TokenRecord::generation);
                        if !put_back || generation.is_some_and(|g| g >= record.generation()) {
                            return Written::Superseded;
                        }
                        tracing::warn!(
                            key = %self.key.fingerprint(),
                            "the token store lost the record under the lease; putting the newest token back"
                        );
                        expected = generation;
                    }
                    Err(error) => last_error = Some(error),
                },
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(error = %crate::error::with_causes(&error), "could not write to the token store; retrying while the lease is held");
                    }
                    last_error = Some(error);
                }
            }
            failures += 1;
            if started.elapsed() >= timings.save_patience {
                // The last answer may have been lost after the write landed.
                // Not for a marking (`!put_back`): found on the store, it may
                // be one no replica acknowledged (its write failed for
                // that), and the refresh token is not sent on a marking a
                // failover loses.
                if put_back
                    && let Ok(Some(found)) = self.load().await
                    && same_record(&found, record)
                {
                    return Written::Saved;
                }
                return Written::Failed(last_error.unwrap_or_else(|| {
                    StoreError::contended(format!("the record of {} kept changing", self.key))
                }));
            }
            tokio::time::sleep(timings.store_retry(failures)).await;
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
}
