//! The lease's timings, fixed once and checked together, in the way
//! client-go checks its leader-election settings: a short lease kept alive
//! by a heartbeat, so that a dead holder costs seconds, not an Auth API
//! timeout.

use std::time::Duration;

/// How a flight holds, renews and waits for the store's lease, and how it
/// retries the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaseTimings {
    /// The lease's time to live: how long a dead holder stalls the others.
    pub(crate) ttl: Duration,
    /// How often a holder renews its lease while it works.
    pub(crate) renew_every: Duration,
    /// The longest one store operation may take.
    pub(crate) store_timeout: Duration,
    /// The first and longest pause between looks at a lease held elsewhere.
    pub(crate) poll_min: Duration,
    pub(crate) poll_max: Duration,
    /// A wait for a lease held elsewhere longer than this is logged at
    /// `warn` and counted as long.
    pub(crate) long_wait: Duration,
    /// How long a holder retries saving a token it obtained before it keeps
    /// it in its own memory only.
    pub(crate) save_patience: Duration,
    /// The store's own retry schedule: the first and longest pause after a
    /// store failure. Short, and apart from the Auth API's backoff, so that
    /// a process is back within a second of the store.
    pub(crate) store_retry_min: Duration,
    pub(crate) store_retry_max: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        LeaseTimings {
            ttl: Duration::from_millis(2_500),
            renew_every: Duration::from_millis(750),
            store_timeout: Duration::from_millis(750),
            poll_min: Duration::from_millis(5),
            poll_max: Duration::from_millis(100),
            long_wait: Duration::from_secs(1),
            save_patience: Duration::from_millis(2_500),
            store_retry_min: Duration::from_millis(50),
            store_retry_max: Duration::from_millis(500),
        }
    }
}

impl LeaseTimings {
    /// These timings, made consistent: a holder renews at least twice per
    /// time to live, and a renewal that takes all of its time still lands
    /// before the lease runs out.
    pub(crate) fn validated(self) -> Self {
        let ttl = self.ttl.max(Duration::from_millis(30));
        let renew_every = self.renew_every.clamp(Duration::from_millis(1), ttl / 3);
        let store_timeout = self
            .store_timeout
            .clamp(Duration::from_millis(1), ttl - 2 * renew_every);
        let poll_min = self.poll_min.max(Duration::from_millis(1));
        let store_retry_min = self.store_retry_min.max(Duration::from_millis(1));
        LeaseTimings {
            ttl,
            renew_every,
            store_timeout,
            poll_min,
            poll_max: self.poll_max.max(poll_min),
            long_wait: self.long_wait,
            save_patience: self.save_patience,
            store_retry_min,
            store_retry_max: self.store_retry_max.max(store_retry_min),
        }
    }

    /// The pause after the `failures`-th store failure in a row (1-based):
    /// doubling from `store_retry_min` up to `store_retry_max`, with half
    /// of it jittered.
    pub(crate) fn store_retry(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let full = self
            .store_retry_min
            .saturating_mul(1 << doublings)
            .min(self.store_retry_max);
        jittered(full)
    }

    /// How long to wait for a lease another process holds before failing:
    /// its holder's two Auth API calls (`auth_timeout` each), its store
    /// operations, its writes (a marking, then a put-back or a new token,
    /// each retried for up to `save_patience`), and the lease's expiry
    /// should it die.
    pub(crate) fn patience(&self, auth_timeout: Duration) -> Duration {
        auth_timeout
            .saturating_mul(2)
            .saturating_add(self.store_timeout.saturating_mul(12))
            .saturating_add(self.save_patience.saturating_mul(2))
            .saturating_add(self.ttl)
    }
}

/// Between half and all of `full`.
fn jittered(full: Duration) -> Duration {
    (full / 2).saturating_add((full / 2).mul_f64(fastrand::f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_holder_costs_at_most_three_seconds_by_default() {
        let timings = LeaseTimings::default().validated();
        assert_eq!(
            timings,
            LeaseTimings::default(),
            "the defaults are consistent"
        );
        assert!(timings.ttl + timings.poll_max <= Duration::from_secs(3));
        assert!(timings.renew_every + timings.store_timeout < timings.ttl - timings.renew_every);
    }

    #[test]
    fn validation_keeps_renewals_inside_the_lease() {
        let odd = LeaseTimings {
            ttl: Duration::from_millis(300),
            renew_every: Duration::from_secs(10),
            store_timeout: Duration::from_secs(10),
            poll_min: Duration::ZERO,
            poll_max: Duration::ZERO,
            store_retry_min: Duration::ZERO,
            store_retry_max: Duration::ZERO,
            ..LeaseTimings::default()
        }
        .validated();
        assert_eq!(odd.renew_every, Duration::from_millis(100));
        assert!(odd.renew_every * 2 + odd.store_timeout <= odd.ttl);
        assert!(odd.poll_min > Duration::ZERO && odd.poll_max >= odd.poll_min);
        assert!(odd.store_retry(1) > Duration::ZERO);
    }

    #[test]
    fn the_store_retry_doubles_up_to_half_a_second() {
        let timings = LeaseTimings::default();
        for failures in 1..40 {
            let pause = timings.store_retry(failures);
            assert!(pause <= Duration::from_millis(500), "{failures}: {pause:?}");
            assert!(pause >= Duration::from_millis(25), "{failures}: {pause:?}");
        }
        assert!(timings.store_retry(30) >= Duration::from_millis(250));
    }
}
