//! Failure notices: a lease holder's failed Auth API call, shared so that
//! the processes that waited for it do not repeat it.

use super::{Failed, Flight, Trouble, lease::Waited};
use crate::{
    Error, ErrorKind,
    clock::until,
    store::{FailureNotice, Lease, TokenRecord},
};

impl Flight {
    /// Fails fast while the failed Auth API call of the process this one
    /// waited for, on the record as it is now, is backing off: its call is
    /// not repeated by the processes that waited on it. A notice that was
    /// there before this process began to wait is about an earlier call (a
    /// previous run, say, with a password since corrected) and is ignored;
    /// so is any notice for a process that found the lease free.
    ///
    /// `notice` is the store's, read along with `record`.
    pub(super) fn respect_failure(
        &self,
        record: Option<&TokenRecord>,
        notice: Option<&FailureNotice>,
        waited: &Waited,
    ) -> Result<(), Trouble> {
        let Waited::Since(before) = waited else {
            return Ok(());
        };
        let generation = record.map(TokenRecord::generation);
        let Some(notice) =
            notice.filter(|n| n.generation() == generation && Some(*n) != before.as_ref())
        else {
            return Ok(());
        };
        // By this clock, and never longer than the writer asked for.
        let left = until(notice.until()).min(notice.delay());
        if left.is_zero() {
            return Ok(());
        }
        let error = Error::elsewhere(notice.kind(), &self.key, left).with_next_attempt_in(left);
        tracing::debug!(error = %crate::error::with_causes(&error), "not repeating another process's failed auth api call");
        Err(Failed::from(error).into())
    }

    /// Leaves a notice of a failed call, so that other processes wait out
    /// its backoff instead of repeating it.
    pub(super) async fn share_failure(
        &self,
        lease: &Lease,
        generation: Option<u64>,
        error: &Error,
    ) {
        // Only what the Auth API answered (or failed to): not a missing
        // password or a configuration of this process's own.
        let from_the_auth_api = matches!(
            error.kind(),
            ErrorKind::InvalidCredentials
                | ErrorKind::AuthApiUnavailable
                | ErrorKind::UnexpectedResponse
        );
        if !from_the_auth_api {
            return;
        }
        let delay = self.settings.backoff.shortest_first(error);
        let notice = FailureNotice::new(self.key.clone(), generation, delay, error.kind());
        if let Err(error) = self.bounded(self.store.save_failure(lease, &notice)).await {
            tracing::warn!(error = %crate::error::with_causes(&error), "could not share the failure with other processes");
        }
    }
}
