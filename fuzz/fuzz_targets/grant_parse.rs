//! The token-response parser on arbitrary bytes, against an independent
//! reading of the documented shape: a JSON object with non-empty
//! `access_token` and `refresh_token` of visible ASCII, `token_type`
//! `bearer` in any case, and an integer `expires_in` from 1 s to 366 days.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use simacan_auth::{fuzzing::parse_grant, ErrorKind};

const MAX_LIFETIME: u64 = 366 * 24 * 3600;

struct Documented {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

fn documented(body: &[u8]) -> Option<Documented> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let text = |name: &str| match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let token = |name: &str| text(name).filter(|t| t.bytes().all(|b| b.is_ascii_graphic()));
    if !text("token_type")?.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(Documented {
        expires_in: fields
            .get("expires_in")?
            .as_u64()
            .filter(|s| (1..=MAX_LIFETIME).contains(s))?,
        access_token: token("access_token")?,
        refresh_token: token("refresh_token")?,
    })
}

fuzz_target!(|body: &[u8]| {
    match (parse_grant(body), documented(body)) {
        (Ok(grant), Some(expected)) => {
            assert_eq!(
                grant.header.as_bytes(),
                format!("Bearer {}", expected.access_token).as_bytes()
            );
            assert!(grant.header.is_sensitive());
            assert_eq!(grant.refresh_token, expected.refresh_token);
            assert_eq!(grant.lifetime.as_secs(), expected.expires_in);
        }
        (Err(error), None) if error.kind() == ErrorKind::UnexpectedResponse => {
            // Reasons are fixed phrases about field names, never body text.
            let message = error.to_string();
            let reason = message
                .split_once("/auth/password: ")
                .map_or("", |(_, reason)| reason);
            assert!(!reason.is_empty(), "{message}");
            assert!(
                reason
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b' '),
                "{reason:?}"
            );
        }
        (Ok(_), None) => panic!("accepted a body outside the documented shape"),
        (Err(error), Some(_)) => panic!("refused a documented body: {error}"),
        (Err(error), None) => panic!("refused with the wrong error: {error:?}"),
    }
});
