use std::error::Error as _;

use super::*;

const PASSWORD_URL: &str = "https://auth-service-stg.services.simacan.com/api/v1/auth/password";

fn uri() -> Uri {
    Uri::from_static(PASSWORD_URL)
}

fn refused() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused")
}

#[test]
fn unreachable_names_the_url_and_keeps_the_cause_as_its_source() {
    let error = Error::unreachable(Endpoint::Password, &uri(), refused());
    assert_eq!(
        error.to_string(),
        format!("simacan auth api unreachable at {PASSWORD_URL}")
    );
    assert_eq!(
        error.source().map(ToString::to_string).as_deref(),
        Some("refused")
    );
    assert_eq!(error.kind(), ErrorKind::AuthApiUnavailable);
    assert!(error.is_transient());
    assert_eq!(error.url(), Some(PASSWORD_URL));
    assert_eq!(error.endpoint(), Some(Endpoint::Password));
    assert_eq!(error.status(), None);
}

#[test]
fn call_errors_name_the_full_url() {
    let errors = [
        Error::timeout(Endpoint::Password, &uri(), Duration::from_secs(30)),
        Error::unexpected_status(Endpoint::Password, &uri(), StatusCode::BAD_GATEWAY, None),
        Error::malformed(Endpoint::Password, &uri(), "not json"),
        Error::too_large(Endpoint::Password, &uri(), 65536),
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            format!("simacan auth api did not answer {PASSWORD_URL} within 30s"),
            format!("simacan auth api answered {PASSWORD_URL} with 502 Bad Gateway"),
            format!("malformed token response from {PASSWORD_URL}: not json"),
            format!("token response from {PASSWORD_URL} is larger than 65536 bytes"),
        ]
    );
    for error in &errors {
        assert_eq!(error.url(), Some(PASSWORD_URL));
    }
    assert!(errors[0].is_timeout());
    assert!(!errors[1].is_timeout());
    assert_eq!(errors[1].status(), Some(StatusCode::BAD_GATEWAY));
}

#[test]
fn an_outage_is_transient_and_a_wrong_answer_is_not() {
    for status in [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let error = Error::unexpected_status(Endpoint::Refresh, &uri(), status, None);
        assert_eq!(error.kind(), ErrorKind::AuthApiUnavailable, "{status}");
        assert!(error.is_transient(), "{status}");
    }
    for status in [
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
        StatusCode::MOVED_PERMANENTLY,
    ] {
        let error = Error::unexpected_status(Endpoint::Refresh, &uri(), status, None);
        assert_eq!(error.kind(), ErrorKind::UnexpectedResponse, "{status}");
        assert!(!error.is_transient(), "{status}");
    }
    let malformed = Error::malformed(Endpoint::Password, &uri(), "not json");
    assert!(!malformed.is_transient());
}

#[test]
fn the_auth_apis_retry_after_is_kept_apart_from_the_next_attempt() {
    let error = Error::unexpected_status(
        Endpoint::Refresh,
        &uri(),
        StatusCode::TOO_MANY_REQUESTS,
        Some(Duration::from_secs(3)),
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(error.next_attempt_in(), None);
    let during = error.clone().with_next_attempt_in(Duration::from_secs(7));
    assert_eq!(during.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(during.next_attempt_in(), Some(Duration::from_secs(7)));
    assert_eq!(error.next_attempt_in(), None, "a clone of its own");
}

#[test]
fn the_message_is_the_same_however_long_the_wait() {
    let error = Error::unreachable(Endpoint::Password, &uri(), refused());
    let messages: std::collections::HashSet<String> = [1, 734, 5_000, 300_000]
        .into_iter()
        .map(|ms| {
            let during = error
                .clone()
                .with_next_attempt_in(Duration::from_millis(ms));
            assert!(during.next_attempt_in().is_some());
            during.to_string()
        })
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
}

#[test]
fn a_sub_second_next_attempt_is_rounded_up_to_whole_milliseconds() {
    let error = Error::unreachable(Endpoint::Password, &uri(), refused());
    for (wait, millis) in [
        (Duration::from_nanos(1), 1),
        (Duration::from_millis(100), 100),
        (Duration::from_micros(199_001), 200),
    ] {
        let during = error.clone().with_next_attempt_in(wait);
        assert_eq!(
            during.next_attempt_in(),
            Some(Duration::from_millis(millis))
        );
    }
    let almost = error
        .clone()
        .with_next_attempt_in(Duration::from_nanos(999_999_999));
    assert_eq!(almost.next_attempt_in(), Some(Duration::from_secs(1)));
}

#[test]
fn the_next_attempt_is_rounded_up_to_whole_seconds() {
    let error = Error::unreachable(Endpoint::Password, &uri(), refused());
    for (wait, secs) in [
        (Duration::from_secs(1), 1),
        (Duration::from_millis(1001), 2),
        (Duration::from_secs(60), 60),
        (Duration::from_millis(59_001), 60),
        (Duration::MAX, u64::MAX),
    ] {
        let during = error.clone().with_next_attempt_in(wait);
        assert_eq!(during.next_attempt_in(), Some(Duration::from_secs(secs)));
        assert!(during.source().is_some(), "the cause is kept");
    }
}

#[test]
fn store_errors_carry_the_next_attempt_and_the_store_error() {
    let store = StoreError::unavailable("redis at 127.0.0.1:6379", refused());
    let error = Error::store(store).with_next_attempt_in(Duration::from_millis(2500));
    assert_eq!(error.kind(), ErrorKind::Store);
    assert_eq!(error.next_attempt_in(), Some(Duration::from_secs(3)));
    assert_eq!(
        error.to_string(),
        "token store unavailable: redis at 127.0.0.1:6379"
    );
    assert_eq!(
        error.store_error().map(StoreError::kind),
        Some(crate::store::StoreErrorKind::Unavailable)
    );
    assert!(error.is_transient());
    assert_eq!(
        error.source().map(ToString::to_string).as_deref(),
        Some("refused"),
        "the store's cause, printed once"
    );
    let insecure = Error::store(StoreError::insecure("symlink"));
    assert!(!insecure.is_transient());
}

#[test]
fn rejected_credentials_say_when_the_password_is_tried_again() {
    let rejected = Error::invalid_credentials();
    assert!(
        rejected.to_string().ends_with(
            "not sent again until the longest backoff (5 minutes by default) has passed"
        ),
        "{rejected}"
    );
    let during = rejected
        .clone()
        .with_next_attempt_in(Duration::from_millis(299_001));
    assert_eq!(during.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(during.next_attempt_in(), Some(Duration::from_secs(300)));
    assert_eq!(during.to_string(), rejected.to_string());
    assert!(!during.is_transient());
}

#[test]
fn errors_not_from_a_call_have_no_next_attempt() {
    for error in [
        Error::password_required(),
        Error::config("bad"),
        Error::missing_variable("SIMACAN_PASSWORD"),
        Error::no_runtime(),
    ] {
        let during = error.with_next_attempt_in(Duration::from_secs(3));
        assert_eq!(during.next_attempt_in(), None, "{during}");
        assert_eq!(during.url(), None);
    }
    let error = Error::password_required();
    assert!(!error.is_transient());
    assert_eq!(
        error.to_string(),
        "a password login is needed (no usable token or refresh token is stored) \
         and the credentials have no password"
    );
}

#[test]
fn another_process_failure_keeps_its_kind() {
    let key = crate::store::StoreKey::new("https://auth.example.com/api/v1", "user");
    let outage = Error::elsewhere(ErrorKind::AuthApiUnavailable, &key, Duration::from_secs(2))
        .with_next_attempt_in(Duration::from_secs(2));
    assert_eq!(outage.kind(), ErrorKind::AuthApiUnavailable);
    assert!(outage.is_transient());
    assert!(outage.store_error().is_none());
    assert_eq!(outage.next_attempt_in(), Some(Duration::from_secs(2)));
    assert!(outage.to_string().contains("another process"), "{outage}");
    assert_eq!(outage.asked_wait(), Some(Duration::from_secs(2)));
    let rejected = Error::elsewhere(ErrorKind::InvalidCredentials, &key, Duration::ZERO);
    assert_eq!(
        rejected.to_string(),
        Error::invalid_credentials().to_string()
    );
    let wrong = Error::elsewhere(ErrorKind::UnexpectedResponse, &key, Duration::ZERO);
    assert!(!wrong.is_transient());
}

#[test]
fn debug_shows_the_kind_and_no_secret() {
    let error = Error::unexpected_status(
        Endpoint::Password,
        &uri(),
        StatusCode::SERVICE_UNAVAILABLE,
        Some(Duration::from_secs(1)),
    );
    let debug = format!("{error:?}");
    assert!(debug.contains("AuthApiUnavailable"), "{debug}");
    assert!(debug.contains(PASSWORD_URL), "{debug}");
}

#[cfg(feature = "rustls")]
#[test]
fn a_peer_that_does_not_speak_tls_gets_a_hint() {
    use rustls::InvalidMessage;
    // As the connector wraps it: rustls in an io::Error in an io::Error.
    let tls = rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType);
    let wrapped = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
    let error = Error::unreachable(Endpoint::Password, &uri(), wrapped);
    assert_eq!(
        error.to_string(),
        format!(
            "simacan auth api unreachable at {PASSWORD_URL}: \
             the server does not speak tls; is the auth api url plain http?"
        )
    );
    let other_tls = rustls::Error::InvalidMessage(InvalidMessage::HandshakePayloadTooLarge);
    let error = Error::unreachable(Endpoint::Password, &uri(), other_tls);
    assert!(!error.to_string().contains("does not speak tls"), "{error}");
    let error = Error::unreachable(Endpoint::Password, &uri(), refused());
    assert!(!error.to_string().contains("does not speak tls"), "{error}");
}

#[cfg(feature = "rustls")]
#[test]
fn a_certificate_of_an_unknown_issuer_gets_a_hint() {
    use rustls::CertificateError;
    let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
    let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
    let error = Error::unreachable(Endpoint::Password, &uri(), wrapped);
    assert_eq!(
        error.to_string(),
        format!(
            "simacan auth api unreachable at {PASSWORD_URL}: its certificate does not \
             chain to a trusted root; for a private ca, trust it with auth_roots"
        )
    );
    let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
    let error = Error::unreachable(Endpoint::Password, &uri(), expired);
    assert!(!error.to_string().contains("private ca"), "{error}");
}
