//! Wall-clock time that follows tokio's clock, for every part of the crate
//! that reads the wall clock: the token cache's flights, the stores'
//! failure notices and the stats' token age.
//!
//! Stored expiries are wall-clock times, because a monotonic instant means
//! nothing to another process. The cache itself runs on tokio's monotonic
//! clock, which tests pause and advance; [`wall_now`] moves with it, so
//! stored expiries and in-memory expiries agree under a paused clock too.
//! When the clock is not paused it is exactly `SystemTime::now()`.

use std::time::{Duration, SystemTime};

/// The wall-clock time now, offset by however far tokio's clock has been
/// paused or advanced.
pub(crate) fn wall_now() -> SystemTime {
    let tokio_now = tokio::time::Instant::now().into_std();
    let real_now = std::time::Instant::now();
    let wall = SystemTime::now();
    match tokio_now.checked_duration_since(real_now) {
        Some(ahead) => wall + ahead,
        None => wall
            .checked_sub(real_now.saturating_duration_since(tokio_now))
            .unwrap_or(wall),
    }
}

/// How long from now until `at` by the wall clock; zero when it has passed.
pub(crate) fn until(at: SystemTime) -> Duration {
    at.duration_since(wall_now()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_a_paused_clock() {
        let before = wall_now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let after = wall_now();
        let moved = after.duration_since(before).unwrap();
        assert!(
            moved > Duration::from_millis(3_599_990) && moved < Duration::from_millis(3_600_010),
            "{moved:?}"
        );
    }

    #[tokio::test]
    async fn is_the_system_clock_otherwise() {
        let wall = wall_now();
        let system = SystemTime::now();
        let apart = system.duration_since(wall).unwrap_or_else(|e| e.duration());
        assert!(apart < Duration::from_millis(50), "{apart:?}");
    }
}
