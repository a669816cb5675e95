//! [`with_causes`]: an error's message followed by its causes', each once.

use std::{error::Error as StdError, fmt};

/// The longest chain of causes printed; a chain is rarely longer than five.
const MAX_CAUSES: usize = 32;

/// `error`'s message followed by those of its causes (its
/// [`source()`](std::error::Error::source) chain), joined with `": "`, each
/// cause once.
///
/// Some errors put their cause in their own message and also return it as
/// their source: redis-rs's I/O errors print `Connection refused (os error
/// 111)` and have that same `io::Error` as their source. Walking the chain
/// naively prints such a cause twice. A cause whose message the previous
/// message already shows is skipped here; its own causes still follow.
///
/// The crate's `warn` and `error` events log their errors this way, so that
/// a log line says why (connection refused, a DNS failure, a TLS error) as
/// well as what.
///
/// # Example
///
/// ```
/// use simacan_auth::{error::with_causes, store::StoreError};
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let error = StoreError::unavailable("redis at 127.0.0.1:6379", refused);
/// assert_eq!(
///     with_causes(&error).to_string(),
///     "token store unavailable: redis at 127.0.0.1:6379: connection refused"
/// );
/// ```
pub fn with_causes<'a>(error: &'a (dyn StdError + 'static)) -> WithCauses<'a> {
    WithCauses { error }
}

/// An error printed with its causes, each once; made by [`with_causes`].
///
/// # Example
///
/// ```
/// use simacan_auth::error::with_causes;
///
/// let error = std::io::Error::other("disk full");
/// assert_eq!(format!("{}", with_causes(&error)), "disk full");
/// ```
#[derive(Clone, Copy)]
pub struct WithCauses<'a> {
    error: &'a (dyn StdError + 'static),
}

impl fmt::Display for WithCauses<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.error.to_string();
        f.write_str(&shown)?;
        let mut cause = self.error.source();
        for _ in 0..MAX_CAUSES {
            let Some(error) = cause else { break };
            let message = error.to_string();
            if !message.is_empty() && !shown.contains(&message) {
                write!(f, ": {message}")?;
                shown = message;
            }
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for WithCauses<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    /// An error that shows its cause in its own message and returns it as
    /// its source, as redis-rs's I/O errors do.
    #[derive(Debug)]
    struct Repeats(io::Error);

    impl fmt::Display for Repeats {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&self.0, f)
        }
    }

    impl StdError for Repeats {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    /// An error with a message of its own and a source.
    #[derive(Debug)]
    struct Outer(&'static str, Box<dyn StdError + Send + Sync>);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.1)
        }
    }

    fn refused() -> io::Error {
        io::Error::from_raw_os_error(111)
    }

    #[test]
    fn a_cause_that_its_parent_already_shows_is_printed_once() {
        let shown = refused().to_string();
        let error = Outer("token store unavailable", Box::new(Repeats(refused())));
        assert_eq!(
            with_causes(&error).to_string(),
            format!("token store unavailable: {shown}")
        );
    }

    #[test]
    fn the_causes_of_a_skipped_cause_still_follow() {
        let inner = Outer("tls handshake failed", Box::new(io::Error::other("eof")));
        let error = Outer(
            "unreachable",
            Box::new(Outer("tls handshake failed", Box::new(inner))),
        );
        assert_eq!(
            with_causes(&error).to_string(),
            "unreachable: tls handshake failed: eof"
        );
    }

    #[test]
    fn distinct_causes_are_all_printed_in_order() {
        let error = Outer(
            "client error (Connect)",
            Box::new(Outer("tcp connect error", Box::new(refused()))),
        );
        let shown = with_causes(&error).to_string();
        assert_eq!(
            shown,
            format!("client error (Connect): tcp connect error: {}", refused())
        );
    }

    #[test]
    fn an_error_without_a_source_is_its_message() {
        let error = io::Error::other("disk full");
        assert_eq!(with_causes(&error).to_string(), "disk full");
        assert_eq!(format!("{:?}", with_causes(&error)), "disk full");
    }
}
