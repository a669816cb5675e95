//! The rustls crypto provider the crate's TLS uses (the Auth API client,
//! `rediss://`).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The process-wide default when the application installed one (aws-lc-rs,
/// say, for post-quantum key exchange), else ring, which the features
/// `rustls` and `redis` compile in. Given explicitly, so that a build with
/// two providers compiled in and none installed does not panic.
#[cfg(feature = "rustls")]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    match CryptoProvider::get_default() {
        Some(installed) => Arc::clone(installed),
        None => Arc::new(ring()),
    }
}

/// Ring's provider. rustls 0.23.48 deprecates `ring::default_provider`,
/// for ring's lack of post-quantum key exchange, and offers no other way
/// to build it; the supported way out is installing another provider as
/// the process default, which [`provider`] then uses. This is the crate's
/// one call of it.
#[allow(deprecated)]
pub(crate) fn ring() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}
