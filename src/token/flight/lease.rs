//! Taking, keeping and giving up the store's lease.

use std::{future::Future, pin::pin, task::Poll};

use tokio::time::Instant;

use super::{Flight, Trouble};
use crate::{
    store::{Changes, FailureNotice, Lease, StoreError},
    token::access_token::{Fresh, Token},
};

/// What waiting for the lease ended with.
pub(super) enum Leased {
    /// The lease, and whether another process held it first.
    Held { lease: Lease, waited: Waited },
    /// Another process obtained a token meanwhile.
    Adopted(Fresh),
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
    /// waits for the store to announce a change (a save, a release) or for
    /// a short pause, whichever comes first, so that a lost announcement
    /// costs a pause and a store without announcements is polled. A dead
    /// holder's lease runs out within its time to live and is taken then.
    pub(super) async fn lease(&self, ours: Option<&Token>) -> Result<Leased, Trouble> {
        let timings = self.settings.lease;
        let patience = timings.patience(self.settings.auth_timeout);
        let started = Instant::now();
        let mut pause = timings.poll_min;
        // Subscribed before the first try, so that no change after it is
        // missed.
        let mut changes = self.store.changes(&self.key);
        // Read before the first try, so that a notice the holder writes
        // while this process waits is never taken for an earlier one.
        let before = self.bounded(self.store.load_failure(&self.key)).await?;
        let mut waited = Waited::No;
        let mut long = false;
        loop {
            let taken = self
                .bounded(self.store.try_lease(&self.key, timings.ttl))
                .await?;
            if let Some(lease) = taken {
                return Ok(Leased::Held { lease, waited });
            }
            if let Waited::No = waited {
                waited = Waited::Since(before.clone());
                self.counters.lease_wait();
            }
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
            let record = self.load().await?;
            if let Some(fresh) = self.adoptable(record.as_ref(), ours) {
                return Ok(Leased::Adopted(fresh));
            }
            self.respect_failure(record.as_ref(), &waited).await?;
        }
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
                    tracing::warn!(%error, "could not renew the token store lease");
                }
                _ => {}
            }
        }
    }

    pub(super) async fn release(&self, lease: Lease) {
        if let Err(error) = self.bounded(self.store.release(lease)).await {
            tracing::warn!(%error, "could not release the token store lease; it expires on its own");
        }
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
