//! The Auth API client: the two grant calls and everything that carries
//! them to the Simacan Auth API.
//!
//! One job per submodule, each depending only on those listed before it:
//!
//! - `transport`: the [`Transport`] trait (one form POST, its whole answer)
//!   and the adapter that makes any tower service of form POSTs one;
//! - `https`: the crate's one TLS setup, the roots the Auth API's
//!   certificate may chain to ([`AuthRoots`]) and [`https_client`], a
//!   client for Simacan's APIs on the same setup (feature `rustls`);
//! - `proxy`: which HTTP proxy, if any, the built-in client goes through
//!   ([`AuthProxy`]), and the `CONNECT` tunnel it opens there (feature
//!   `rustls`);
//! - `built_in`: the built-in client, a hyper-util client over the TLS setup,
//!   directly or through the proxy;
//! - `client`: which client carries a layer's calls, the user's or the
//!   built-in one ([`AuthClient`]);
//! - `grants`: the password and refresh grants over a [`Transport`], with
//!   their timeout, and what their answers mean ([`AuthApi`]).
//!
//! The token cache uses [`AuthClient`] and [`AuthApi`]; nothing here knows
//! of the cache.

mod built_in;
mod client;
pub(crate) mod grants;
#[cfg(feature = "rustls")]
pub(crate) mod https;
#[cfg(feature = "rustls")]
mod proxy;
pub(crate) mod transport;

pub(crate) use client::AuthClient;
pub(crate) use grants::{AuthApi, RefreshError};
#[cfg(feature = "rustls")]
pub use https::{AuthRoots, HttpsClient, https_client};
#[cfg(feature = "rustls")]
pub use proxy::AuthProxy;
pub(crate) use transport::Transport;
