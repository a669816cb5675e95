//! How a failure to obtain a token reaches the caller.
//!
//! As a [`simacan_auth::Error`](crate::Error) inside the service's
//! [`tower::BoxError`], except for gRPC: when the inner service answers with
//! `tonic::body::Body` (feature `tonic`), it is a `tonic::Status`, so that a
//! generated client reports a meaningful code rather than `Unknown`:
//!
//! | failure | gRPC code |
//! |---|---|
//! | transient ([`Error::is_transient`]: the Auth API or the token store unreachable, timing out, 5xx, 429) | `Unavailable` |
//! | anything else (rejected or missing credentials, a malformed answer, a configuration error) | `Unauthenticated` |
//!
//! The `Status` keeps the [`Error`] as its `source()`.

use tower::BoxError;

use crate::Error;

/// The service error for a failure to obtain a token, for a response body
/// of type `R`.
pub(crate) fn auth_failure<R: 'static>(error: Error) -> BoxError {
    #[cfg(feature = "tonic")]
    if std::any::TypeId::of::<R>() == std::any::TypeId::of::<tonic::body::Body>() {
        return Box::new(grpc_status(error));
    }
    Box::new(error)
}

/// The gRPC status of a failure to obtain a token, with the error as its
/// source.
#[cfg(feature = "tonic")]
pub(crate) fn grpc_status(error: Error) -> tonic::Status {
    let code = if error.is_transient() {
        tonic::Code::Unavailable
    } else {
        tonic::Code::Unauthenticated
    };
    let mut status = tonic::Status::new(code, error.to_string());
    status.set_source(std::sync::Arc::new(error));
    status
}

#[cfg(all(test, feature = "tonic"))]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn status_of(error: Error) -> tonic::Status {
        let boxed = auth_failure::<tonic::body::Body>(error);
        *boxed.downcast::<tonic::Status>().expect("a tonic status")
    }

    #[test]
    fn rejected_credentials_are_unauthenticated_and_outages_unavailable() {
        let status = status_of(Error::invalid_credentials());
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        let outage = Error::timeout(
            crate::Endpoint::Password,
            &http::Uri::from_static("https://auth.example.com/api/v1/auth/password"),
            std::time::Duration::from_secs(30),
        );
        assert_eq!(status_of(outage).code(), tonic::Code::Unavailable);
    }

    #[test]
    fn the_typed_error_stays_reachable() {
        let status = status_of(Error::invalid_credentials());
        let source = status.source().and_then(|e| e.downcast_ref::<Error>());
        assert_eq!(
            source.map(Error::kind),
            Some(crate::ErrorKind::InvalidCredentials)
        );
    }

    #[test]
    fn other_bodies_get_the_error_itself() {
        let boxed = auth_failure::<String>(Error::invalid_credentials());
        assert_eq!(
            boxed.downcast_ref::<Error>().map(Error::kind),
            Some(crate::ErrorKind::InvalidCredentials)
        );
    }
}
