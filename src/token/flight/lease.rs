//! Taking, keeping and giving up the store's lease.

use std::{future::Future, pin::pin, sync::Arc, task::Poll};

use tokio::time::Instant;

use super::{Flight, Trouble};
use crate::{
    store::{Changes, FailureNotice, Lease, Look, Marking, StoreError, TokenRecord, TokenStore},
    token::access_token::{Fresh, Token},
};

/// What waiting for the lease ended with.
pub(super) enum Leased {
    /// The lease, and what was found as it was taken.
    Held { lease: Lease, found: Box<Found> },
    /// Another process obtained a token meanwhile.
    Adopted(Fresh),
}

/// What the lease holder found as it took the lease: whether another
/// process held it first, and the record and failure notice read along
/// with taking it.
pub(super) struct Found {
    pub(super) waited: Waited,
    pub(super) record: Option<TokenRecord>,
    pub(super) notice: Option<FailureNotice>,
    /// The marking the look that took the lease carried, and when that
    /// look set out if it wrote it.
    pub(super) marking: Option<(Marking, Option<Instant>)>,
}

/// Whether a process waited for the lease, and the failure notice it found
/// when it began to: only a notice written since then is about the call it
/// waited on.
pub(super) enum Waited {
    No,
    Since(Option<FailureNotice>),
}

impl Flight {
    /// Waits for the lease, looking at the record between attempts: the
    /// holder's token is used as soon as it is there. Between looks it
    /// waits for the store to announce a change (a save, a release) on
    /// `changes` or for a short pause, whichever comes first, so that a
    /// lost announcement costs a pause and a store without announcements
    /// is polled; a record the announcement carries is used without
    /// reading the store. A dead holder's lease runs out within its time
    /// to live and is taken then.
    ///
    /// `first_read` says that the record was not read before: a token the
    /// first look finds was stored before this flight set out. `marking`
    /// goes with the first look only: a holder that waited works on what
    /// the other holder left.
    pub(super) async fn lease(
        &self,
        ours: Option<&Token>,
        mut changes: Option<Changes>,
        first_read: bool,
        mut marking: Option<Marking>,
    ) -> Result<Leased, Trouble> {
        let timings = self.settings.lease;
        let patience = timings.patience(self.settings.auth_timeout);
        let started = Instant::now();
        let mut pause = timings.poll_min;
        let mut waited = Waited::No;
        let mut long = false;
        loop {
            let set_out = Instant::now();
            let marking_now = marking.take();
            let Look {
                notice,
                lease,
                record,
                marked,
                ..
            } = self.look(timings.ttl, marking_now.as_ref()).await?;
            // Believed only of the record the marking was for.
            let marked = marked
                && lease.is_some()
                && marking_now
                    .as_ref()
                    .is_some_and(|m| m.expects(record.as_ref()));
            let first = matches!(waited, Waited::No);
            let adoptable = (!marked).then(|| self.adoptable(record.as_ref(), ours));
            if let Some(fresh) = adoptable.flatten() {
                // The lease was free but is not needed after all.
                if let Some(lease) = lease {
                    self.release_soon(lease);
                }
                let fresh = if first && first_read {
                    fresh.predating_flight()
                } else {
                    fresh
                };
                return Ok(Leased::Adopted(fresh));
            }
            if let Some(lease) = lease {
                let found = Found {
                    waited,
                    record,
                    notice,
                    marking: marking_now.map(|m| (m, marked.then_some(set_out))),
                };
                return Ok(Leased::Held {
                    lease,
                    found: Box::new(found),
                });
            }
            // The first look's notice was read before the first try, so
            // that a notice the holder writes while this process waits is
            // never taken for an earlier one.
            if first {
                waited = Waited::Since(notice.clone());
                self.counters.lease_wait();
            }
            self.respect_failure(record.as_ref(), notice.as_ref(), &waited)?;
            let elapsed = started.elapsed();
            if !long && elapsed >= timings.long_wait {
                long = true;
                self.counters.long_lease_wait();
                tracing::warn!(
                    store = ?self.store,
                    key = %self.key.fingerprint(),
                    waited = ?elapsed,
                    "waiting for another process's login or refresh; \
                     if it died, its lease runs out within {:?}",
                    timings.ttl
                );
            }
            if elapsed >= patience {
                return Err(StoreError::contended(format!(
                    "another process held the lease on {} for more than {patience:?}",
                    self.key
                ))
                .into());
            }
            next_look(&mut changes, pause.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
            pause = pause.saturating_mul(2).min(timings.poll_max);
            // Most wakes are for the holder's token: taken from the
            // announcement, or read, without trying the lease, which would
            // then have to be given back.
            let announced = self.announced(changes.as_ref());
            if let Some(fresh) = self.adoptable(announced.as_ref(), ours) {
                return Ok(Leased::Adopted(fresh));
            }
            let record = self.load().await?;
            if let Some(fresh) = self.adoptable(record.as_ref(), ours) {
                return Ok(Leased::Adopted(fresh));
            }
        }
    }

    /// One look at the key ([`TokenStore::look`]): the failure notice
    /// read, the lease tried, the record read, in that order. A store that
    /// does not keep that order may answer the record from before the
    /// lease was taken; the generation fences every write made on it, so
    /// that costs a failed compare-and-swap, never a refresh token sent
    /// twice. What the store answers for another key is not believed.
    async fn look(
        &self,
        ttl: std::time::Duration,
        marking: Option<&Marking>,
    ) -> Result<Look, Trouble> {
        let mut look = self
            .bounded(self.store.look(&self.key, ttl, marking))
            .await?;
        look.record = look.record.filter(|r| r.key() == &self.key);
        look.notice = look.notice.filter(|n| n.key() == &self.key);
        Ok(look)
    }

    /// Renews `lease` right before `what` is sent to the Auth API; fails
    /// when it was lost, sending nothing.
    pub(super) async fn confirm(&self, lease: &Lease, what: &str) -> Result<(), Trouble> {
        let ttl = self.settings.lease.ttl;
        if self.bounded(self.store.renew(lease, ttl)).await? {
            return Ok(());
        }
        Err(StoreError::contended(format!(
            "lost the lease on {} before sending {what}",
            self.key
        ))
        .into())
    }

    /// Runs `work` while renewing `lease` on the lease's heartbeat. A
    /// renewal that fails is logged; the work goes on, since a call already
    /// sent cannot be taken back, and its save is fenced by the record's
    /// generation.
    pub(super) async fn renewing<T>(&self, lease: &Lease, work: impl Future<Output = T>) -> T {
        let timings = self.settings.lease;
        let mut work = pin!(work);
        let mut warned = false;
        loop {
            let mut tick = pin!(tokio::time::sleep(timings.renew_every));
            let done = std::future::poll_fn(|cx| match work.as_mut().poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending => tick.as_mut().poll(cx).map(|()| None),
            })
            .await;
            if let Some(out) = done {
                return out;
            }
            let renewed = self.bounded(self.store.renew(lease, timings.ttl)).await;
            match renewed {
                Ok(true) => {}
                Ok(false) if !warned => {
                    warned = true;
                    tracing::warn!(
                        key = %self.key.fingerprint(),
                        "lost the token store lease while calling the auth api"
                    );
                }
                Err(error) if !warned => {
                    warned = true;
                    tracing::warn!(error = %crate::error::with_causes(&error), "could not renew the token store lease");
                }
                _ => {}
            }
        }
    }

    /// Gives `lease` up in a task of its own, so that the token this
    /// process obtained is used without waiting for the store's answer.
    /// Without a runtime to run it, the lease is dropped and expires on
    /// its own (a lease that is a guard, such as a file lock, is freed).
    pub(super) fn release_soon(&self, lease: Lease) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = Arc::clone(&self.store);
        let timeout = self.settings.lease.store_timeout;
        runtime.spawn(async move { release(&*store, lease, timeout).await });
    }
}

/// Waits until the store announces a change or `pause` has passed. A feed
/// that ends is dropped: the waits go on as pauses.
async fn next_look(changes: &mut Option<Changes>, pause: std::time::Duration) {
    let deadline = Instant::now() + pause;
    if let Some(feed) = changes {
        match tokio::time::timeout_at(deadline, feed.changed()).await {
            Ok(true) | Err(_) => return,
            Ok(false) => *changes = None,
        }
    }
    tokio::time::sleep_until(deadline).await;
}

async fn release(store: &dyn TokenStore, lease: Lease, timeout: std::time::Duration) {
    let released = tokio::time::timeout(timeout, store.release(lease)).await;
    if let Err(error) = released.unwrap_or_else(|elapsed| {
        Err(StoreError::unavailable(
            format!("token store did not answer within {timeout:?}"),
            elapsed,
        ))
    }) {
        tracing::warn!(error = %crate::error::with_causes(&error), "could not release the token store lease; it expires on its own");
    }
}
