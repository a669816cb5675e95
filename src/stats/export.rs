//! The events of [`Counters`](super::Counters) through the `metrics` facade
//! (feature `metrics`), to whichever recorder is current where they happen.
//! The names, and what each means, are in the [module docs](super).

use std::time::{Duration, SystemTime};

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use tokio::time::Instant;

use super::PassedThrough;
use crate::{ErrorKind, clock::wall_now, token::How};

const LOGINS: &str = "simacan_auth_logins_total";
const REFRESHES: &str = "simacan_auth_refreshes_total";
const PASSWORD_FALLBACKS: &str = "simacan_auth_password_fallbacks_total";
const TOKENS_ADOPTED: &str = "simacan_auth_tokens_adopted_total";
const FAILURES: &str = "simacan_auth_failures_total";
const UNAUTHORIZED: &str = "simacan_auth_unauthorized_total";
const HEALED: &str = "simacan_auth_unauthorized_healed_total";
const PASSED_THROUGH: &str = "simacan_auth_unauthorized_passed_through_total";
const UNAUTHORIZED_ERRORS: &str = "simacan_auth_unauthorized_errors_total";
const LEASE_WAITS: &str = "simacan_auth_lease_waits_total";
const LONG_LEASE_WAITS: &str = "simacan_auth_lease_waits_long_total";
const CONSECUTIVE_FAILURES: &str = "simacan_auth_consecutive_failures";
const BACKOFF_UNTIL: &str = "simacan_auth_backoff_until_timestamp_seconds";
const TOKEN_OBTAINED: &str = "simacan_auth_token_obtained_timestamp_seconds";
const TOKEN_EXPIRY: &str = "simacan_auth_token_expiry_timestamp_seconds";

/// Gives the current recorder each metric's unit and help text.
pub(super) fn describe() {
    let counters = [
        (LOGINS, "Password logins, password fallbacks apart."),
        (REFRESHES, "Tokens obtained with the refresh grant."),
        (
            PASSWORD_FALLBACKS,
            "Password logins after the Auth API refused the refresh token.",
        ),
        (
            TOKENS_ADOPTED,
            "Tokens read from the token store, obtained by another process.",
        ),
        (
            FAILURES,
            "Logins and refreshes that obtained no token, by kind.",
        ),
        (
            UNAUTHORIZED,
            "401s and gRPC UNAUTHENTICATED answered to a first attempt.",
        ),
        (
            HEALED,
            "Refusals healed by a replay with a newer token that was accepted.",
        ),
        (
            PASSED_THROUGH,
            "Refusals handed to the caller as they came, by reason.",
        ),
        (
            UNAUTHORIZED_ERRORS,
            "Refusals that ended as an error: the refresh or the replay failed.",
        ),
        (
            LEASE_WAITS,
            "Waits for another process's login or refresh through the token store.",
        ),
        (
            LONG_LEASE_WAITS,
            "Waits for another process's login or refresh that passed a second.",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, Unit::Count, help);
    }
    describe_gauge!(
        CONSECUTIVE_FAILURES,
        Unit::Count,
        "Logins and refreshes that failed since a token was last obtained."
    );
    let timestamps = [
        (
            BACKOFF_UNTIL,
            "Unix time at which the backoff ends; 0 once a token is obtained.",
        ),
        (
            TOKEN_OBTAINED,
            "Unix time at which the current token was obtained.",
        ),
        (
            TOKEN_EXPIRY,
            "Unix time at which the current token expires by its expires_in.",
        ),
    ];
    for (name, help) in timestamps {
        describe_gauge!(name, Unit::Seconds, help);
    }
}

pub(super) fn obtained(how: How, expires_in: Duration) {
    let name = match how {
        How::LoggedIn => LOGINS,
        How::Refreshed => REFRESHES,
        How::FellBack => PASSWORD_FALLBACKS,
        How::Adopted => TOKENS_ADOPTED,
    };
    counter!(name).increment(1);
    gauge!(TOKEN_OBTAINED).set(unix_seconds_in(Duration::ZERO));
    gauge!(TOKEN_EXPIRY).set(unix_seconds_in(expires_in));
    gauge!(CONSECUTIVE_FAILURES).set(0.0);
    gauge!(BACKOFF_UNTIL).set(0.0);
}

pub(super) fn lease_wait(long: bool) {
    counter!(if long { LONG_LEASE_WAITS } else { LEASE_WAITS }).increment(1);
}

pub(super) fn failed(kind: ErrorKind) {
    counter!(FAILURES, "kind" => kind.as_str()).increment(1);
}

pub(super) fn backing_off(consecutive: u32, until: Instant) {
    gauge!(CONSECUTIVE_FAILURES).set(consecutive);
    let left = until.saturating_duration_since(Instant::now());
    gauge!(BACKOFF_UNTIL).set(unix_seconds_in(left));
}

pub(super) fn unauthorized() {
    counter!(UNAUTHORIZED).increment(1);
}

pub(super) fn healed() {
    counter!(HEALED).increment(1);
}

pub(super) fn passed_through(reason: PassedThrough) {
    counter!(PASSED_THROUGH, "reason" => reason.as_str()).increment(1);
}

pub(super) fn unauthorized_error() {
    counter!(UNAUTHORIZED_ERRORS).increment(1);
}

/// The Unix time `from_now` after now, by the clock the cache runs on.
fn unix_seconds_in(from_now: Duration) -> f64 {
    let now = wall_now();
    now.checked_add(from_now)
        .unwrap_or(now)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
