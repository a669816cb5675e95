//! Hints for the TLS failures whose cause an error message can guess.

use std::error::Error as StdError;

/// A hint for the two TLS failures whose cause a message can guess: a
/// server that answers the handshake with something else, typically plain
/// HTTP (rustls then reads `HTTP/1.1 …` as a record of an invalid content
/// type), and a certificate that chains to no trusted root, typically a
/// private CA's.
///
/// The connector wraps the rustls error in `io::Error`s, whose `source()`
/// skips the error they wrap, so those are opened with `get_ref`.
#[cfg(feature = "rustls")]
pub(super) fn tls_hint(error: &(dyn StdError + 'static)) -> Option<&'static str> {
    use rustls::{CertificateError, Error as Tls, InvalidMessage};
    let mut next = Some(error);
    while let Some(error) = next {
        match error.downcast_ref() {
            Some(Tls::InvalidMessage(InvalidMessage::InvalidContentType)) => {
                return Some(": the server does not speak tls; is the auth api url plain http?");
            }
            Some(Tls::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                return Some(
                    ": its certificate does not chain to a trusted root; for a private ca, \
                     trust it with auth_roots",
                );
            }
            _ => {}
        }
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => error.source(),
        };
    }
    None
}

/// Without rustls there is no TLS to fail.
#[cfg(not(feature = "rustls"))]
pub(super) fn tls_hint(_: &(dyn StdError + 'static)) -> Option<&'static str> {
    None
}
