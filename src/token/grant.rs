//! Strict parsing of the Auth API's token response.
//!
//! Accepted: a JSON object with a non-empty `access_token` and
//! `refresh_token` that are valid header characters, `token_type` equal to
//! `bearer` in any case, and a positive integer `expires_in` of at most a
//! year. Anything else is refused with a reason, which never repeats the
//! body; the client makes it an an error of kind [`UnexpectedResponse`](crate::ErrorKind::UnexpectedResponse).
//!
//! The `id_token` is kept when it is a non-empty string and is otherwise
//! left out: the crate never sends it, so an answer without a usable one
//! still carries a token pair (and a refresh that rotated the refresh token
//! must not be thrown away over it).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The longest `expires_in` accepted; beyond it the response is malformed.
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// A token response that passed every check.
pub(crate) struct Grant {
    /// `Bearer <access_token>`, marked sensitive.
    pub(crate) header: HeaderValue,
    pub(crate) refresh_token: Zeroizing<String>,
    /// The OpenID Connect ID token, when the answer carried one.
    pub(crate) id_token: Option<Zeroizing<String>>,
    pub(crate) lifetime: Duration,
}

impl Grant {
    /// The grant in `body`, or why there is none.
    pub(crate) fn parse(body: &[u8]) -> Result<Grant, String> {
        let value: Value = serde_json::from_slice(body).map_err(|_| "not json")?;
        let Value::Object(mut fields) = value else {
            return Err("not a json object".into());
        };
        let token_type = take_string(&mut fields, "token_type")?;
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err("token_type is not bearer".into());
        }
        let lifetime = match fields.get("expires_in").and_then(Value::as_u64) {
            Some(0) | None => return Err("expires_in is not a positive integer".into()),
            Some(secs) if Duration::from_secs(secs) > MAX_LIFETIME => {
                return Err("expires_in is longer than a year".into());
            }
            Some(secs) => Duration::from_secs(secs),
        };
        let access = Zeroizing::new(take_string(&mut fields, "access_token")?);
        let refresh_token = Zeroizing::new(take_string(&mut fields, "refresh_token")?);
        if !is_token_text(&refresh_token) {
            return Err("refresh_token has characters a token cannot have".into());
        }
        if !is_token_text(&access) {
            return Err("access_token has characters a token cannot have".into());
        }
        let header = bearer_header(&access).ok_or("access_token is not a valid header value")?;
        let id_token = match fields.remove("id_token") {
            Some(Value::String(token)) if !token.is_empty() => Some(Zeroizing::new(token)),
            _ => None,
        };
        Ok(Grant {
            header,
            refresh_token,
            id_token,
            lifetime,
        })
    }
}

/// `Bearer <token>` as a sensitive header value, shared rather than copied
/// when cloned.
pub(crate) fn bearer_header(token: &str) -> Option<HeaderValue> {
    let mut bytes = Vec::with_capacity(7 + token.len());
    bytes.extend_from_slice(b"Bearer ");
    bytes.extend_from_slice(token.as_bytes());
    let mut header = HeaderValue::from_maybe_shared(Bytes::from(bytes)).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// Visible ASCII only: no spaces, no control characters, no CR/LF.
fn is_token_text(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

fn take_string(fields: &mut Map<String, Value>, name: &str) -> Result<String, String> {
    match fields.remove(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(format!("{name} is empty")),
        Some(_) => Err(format!("{name} is not a string")),
        None => Err(format!("{name} is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Grant, String> {
        Grant::parse(body.as_bytes())
    }

    fn reason(body: &str) -> String {
        match parse(body) {
            Err(reason) => reason,
            Ok(_) => panic!("accepted {body}"),
        }
    }

    #[test]
    fn accepts_the_documented_shape() {
        let grant = parse(r#"{"access_token":"eyA.b.c","refresh_token":"eyR","id_token":"eyI","token_type":"bearer","expires_in":3600}"#).unwrap();
        assert_eq!(grant.header.to_str().unwrap(), "Bearer eyA.b.c");
        assert!(grant.header.is_sensitive());
        assert_eq!(grant.refresh_token.as_str(), "eyR");
        assert_eq!(grant.id_token.as_deref().map(String::as_str), Some("eyI"));
        assert_eq!(grant.lifetime, Duration::from_secs(3600));
    }

    #[test]
    fn the_id_token_is_optional() {
        for id_token in [
            "",
            r#","id_token":null"#,
            r#","id_token":"" "#,
            r#","id_token":5"#,
        ] {
            let body = format!(
                r#"{{"access_token":"a","refresh_token":"r","token_type":"bearer","expires_in":1{id_token}}}"#
            );
            let grant = parse(&body).unwrap_or_else(|reason| panic!("{body}: {reason}"));
            assert!(grant.id_token.is_none(), "{body}");
            assert_eq!(grant.refresh_token.as_str(), "r");
        }
    }

    #[test]
    fn token_type_is_case_insensitive() {
        assert!(
            parse(
                r#"{"access_token":"a","refresh_token":"r","token_type":"Bearer","expires_in":1}"#
            )
            .is_ok()
        );
        assert!(
            parse(
                r#"{"access_token":"a","refresh_token":"r","token_type":"BEARER","expires_in":1}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        assert_eq!(reason("<html>"), "not json");
        assert_eq!(reason("[]"), "not a json object");
        assert_eq!(
            reason(r#"{"refresh_token":"r","token_type":"bearer","expires_in":1}"#),
            "access_token is missing"
        );
        assert_eq!(
            reason(r#"{"access_token":"a","token_type":"bearer","expires_in":1}"#),
            "refresh_token is missing"
        );
        assert_eq!(
            reason(r#"{"access_token":"a","refresh_token":"r","expires_in":1}"#),
            "token_type is missing"
        );
        assert_eq!(
            reason(r#"{"access_token":"a","refresh_token":"r","token_type":"mac","expires_in":1}"#),
            "token_type is not bearer"
        );
        for expires in ["0", "-5", "1.5", "\"3600\"", "null", "99999999999"] {
            let body = format!(
                r#"{{"access_token":"a","refresh_token":"r","token_type":"bearer","expires_in":{expires}}}"#
            );
            assert!(
                reason(&body).starts_with("expires_in"),
                "{expires} accepted"
            );
        }
        assert_eq!(
            reason(
                r#"{"access_token":"","refresh_token":"r","token_type":"bearer","expires_in":1}"#
            ),
            "access_token is empty"
        );
        assert_eq!(
            reason(
                r#"{"access_token":5,"refresh_token":"r","token_type":"bearer","expires_in":1}"#
            ),
            "access_token is not a string"
        );
    }

    #[test]
    fn rejects_tokens_that_cannot_travel_in_a_header() {
        for token in ["a\\r\\nx-evil: 1", "a b", "a\\u0000", "caf\u{e9}"] {
            let body = format!(
                r#"{{"access_token":"{token}","refresh_token":"r","token_type":"bearer","expires_in":1}}"#
            );
            assert!(parse(&body).is_err(), "{token:?} accepted");
            let body = format!(
                r#"{{"access_token":"a","refresh_token":"{token}","token_type":"bearer","expires_in":1}}"#
            );
            assert!(parse(&body).is_err(), "{token:?} accepted as refresh token");
        }
    }

    #[test]
    fn reasons_never_repeat_the_body() {
        let secret = "eySECRETSECRET";
        let bodies = [
            format!(
                r#"{{"access_token":"{secret}","refresh_token":"r","token_type":"{secret}","expires_in":1}}"#
            ),
            format!(
                r#"{{"access_token":"{secret}","refresh_token":"r","token_type":"bearer","expires_in":"{secret}"}}"#
            ),
            format!(r#"{{"access_token":"{secret}"#),
        ];
        for body in bodies {
            let reason = parse(&body).err().unwrap();
            assert!(!reason.contains("SECRET"));
        }
    }
}
