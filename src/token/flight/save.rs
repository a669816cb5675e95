//! Writing under the lease: a refresh token marked as sent before it is,
//! and the new token saved, retried while the store is away.

use tokio::time::Instant;

use super::{expiry_once_marked, next_generation, Flight, Need, Trouble};
use crate::{
    store::{Lease, StoreError, TokenRecord},
    token::{
        access_token::{bare_token, Origin},
        clock::wall_now,
        grant::Grant,
    },
};

impl Flight {
    /// Saves the stored record without its refresh token, one generation
    /// on, before that token is sent: a holder that dies after the Auth API
    /// rotated it leaves no spent token behind. A store that fails is tried
    /// again on its schedule while the lease is held. Returns the record as
    /// it was, to put back should the Auth API not rotate it.
    pub(super) async fn mark_sent(
        &self,
        lease: &Lease,
        record: &mut Option<TokenRecord>,
        need: Need,
    ) -> Result<TokenRecord, Trouble> {
        let stored = record
            .take()
            .expect("the stored chain's refresh token comes from a record");
        *record = Some(stored.clone());
        let generation = next_generation(stored.generation())?;
        let marked = stored.spent(generation, expiry_once_marked(&stored, need));
        let timings = self.settings.lease;
        let started = Instant::now();
        let mut failures = 0;
        loop {
            let saved = self
                .bounded(self.store.save(lease, &marked, Some(stored.generation())))
                .await;
            match saved {
                Ok(true) => {
                    *record = Some(marked);
                    return Ok(stored);
                }
                Ok(false) => {
                    return Err(StoreError::contended(format!(
                    "the record of {} changed under the lease before the refresh token was sent",
                    self.key
                ))
                    .into())
                }
                Err(error) if started.elapsed() >= timings.save_patience => {
                    return Err(error.into())
                }
                Err(_) => {}
            }
            failures += 1;
            tokio::time::sleep(timings.store_retry(failures)).await;
        }
    }

    /// The Auth API did not rotate the refresh token marked as sent: put it
    /// back, one generation on, so that the next holder refreshes rather
    /// than logs in.
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
        let restored = unmarked.regenerated(generation);
        let saved = self
            .bounded(self.store.save(lease, &restored, Some(marked.generation())))
            .await;
        match saved {
            Ok(true) => *record = Some(restored),
            Ok(false) => {}
            Err(error) => tracing::warn!(
                %error,
                "could not put back the refresh token the auth api did not take; \
                 the next attempt logs in with the password"
            ),
        }
    }

    /// Saves a new token as generation `version` over the generation
    /// `expected`, retrying on the store's schedule for a while: the lease
    /// is renewed meanwhile, and no other process refreshes. A store that
    /// lost its data (no record, or an older one) gets the token put back.
    /// Returns where the token's chain lives: in the store, or, when the
    /// store stayed away or holds a newer record, in this process only.
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
                tracing::error!(%error, "could not make a token record");
                return Origin::Local;
            }
        };
        let timings = self.settings.lease;
        let started = Instant::now();
        let mut expected = expected;
        let mut failures = 0;
        loop {
            if failures > 0 && started.elapsed() >= timings.save_patience {
                tracing::warn!(
                    key = %self.key.fingerprint(),
                    "could not save the new token; it is kept in this process, \
                     and the next process to need a token logs in with the password"
                );
                return Origin::Local;
            }
            let saved = self
                .bounded(self.store.save(lease, &record, expected))
                .await;
            match saved {
                Ok(true) => {
                    if failures > 0 {
                        tracing::info!(
                            failures,
                            "saved the new token after the token store came back"
                        );
                    }
                    return Origin::Store;
                }
                Ok(false) => match self.load().await {
                    Ok(now) => {
                        let found = now.as_ref().map(TokenRecord::generation);
                        if found.is_some_and(|g| g >= version) {
                            tracing::error!(
                                "the token store holds a newer record than the token just obtained; \
                                 it is kept in this process"
                            );
                            return Origin::Local;
                        }
                        if found != expected {
                            tracing::warn!(
                                key = %self.key.fingerprint(),
                                "the token store lost the record under the lease; putting the newest token back"
                            );
                            expected = found;
                            failures += 1;
                            continue;
                        }
                    }
                    Err(error) => tracing::debug!(%error, "could not read the record back"),
                },
                Err(error) if failures == 0 => {
                    tracing::warn!(%error, "could not save the new token; retrying while the lease is held")
                }
                Err(_) => {}
            }
            failures += 1;
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
