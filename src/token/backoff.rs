//! How long to wait after a failed login or refresh before calling the Auth
//! API again.

use std::time::Duration;

use crate::{Error, ErrorKind};

/// Exponential backoff with "equal jitter": the n-th consecutive failure
/// waits between half and all of `initial * 2^(n-1)`, capped at `max`, and at
/// least as long as the Auth API's `Retry-After` (up to
/// [`MAX_RETRY_AFTER`], beyond `max`). Rejected credentials wait
/// `max` straight away: retrying them cannot help and risks locking the
/// account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

/// The longest `Retry-After` honoured: an hour. A longer one is read as an
/// hour, so that one answer cannot stop the token for a day.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl Backoff {
    /// The shortest wait [`delay`](Self::delay) can give after a first
    /// failure: how long other processes are asked not to repeat a failed
    /// call, so that the process that made it is never held up by its own
    /// notice.
    pub(crate) fn shortest_first(&self, error: &Error) -> Duration {
        if error.kind() == ErrorKind::InvalidCredentials {
            return self.max;
        }
        let retry_after = error.asked_wait().unwrap_or_default().min(MAX_RETRY_AFTER);
        (self.initial.min(self.max) / 2).max(retry_after)
    }

    /// The wait after the `failures`-th consecutive failure (1-based).
    pub(crate) fn delay(&self, failures: u32, error: &Error) -> Duration {
        if error.kind() == ErrorKind::InvalidCredentials {
            return self.max;
        }
        let doublings = failures.saturating_sub(1).min(30);
        let full = self.initial.saturating_mul(1 << doublings).min(self.max);
        let jittered = (full / 2).saturating_add((full / 2).mul_f64(fastrand::f64()));
        // Never sooner than the Auth API asked, up to an hour.
        jittered.max(error.asked_wait().unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;
    use http::StatusCode;

    fn outage(retry_after: Option<u64>) -> Error {
        Error::unexpected_status(
            Endpoint::Refresh,
            &http::Uri::from_static("https://auth.example.com/api/v1/auth/refresh"),
            StatusCode::SERVICE_UNAVAILABLE,
            retry_after.map(Duration::from_secs),
        )
    }

    #[test]
    fn doubles_with_jitter_up_to_the_cap() {
        let backoff = Backoff::default();
        for failures in 1..40 {
            let full = Duration::from_secs(1u64 << (failures - 1).min(20)).min(backoff.max);
            for _ in 0..20 {
                let d = backoff.delay(failures, &outage(None));
                assert!(d >= full / 2 && d <= full, "{failures}: {d:?} vs {full:?}");
            }
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let d = Backoff::default().delay(1, &outage(Some(42)));
        assert_eq!(d, Duration::from_secs(42));
    }

    #[test]
    fn a_retry_after_beyond_the_longest_backoff_is_honoured_up_to_an_hour() {
        let backoff = Backoff::default();
        assert_eq!(
            backoff.delay(1, &outage(Some(600))),
            Duration::from_secs(600)
        );
        assert_eq!(
            backoff.shortest_first(&outage(Some(600))),
            Duration::from_secs(600)
        );
        assert_eq!(backoff.delay(1, &outage(Some(86_400))), MAX_RETRY_AFTER);
    }

    #[test]
    fn rejected_credentials_wait_the_longest() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(1, &Error::invalid_credentials()), backoff.max);
    }
}
