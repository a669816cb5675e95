//! The token machinery, independent of tower: credentials, environments,
//! the Auth API client and the cache that decides when to log in, refresh
//! or wait.
//!
//! The tower layer is one user of it; anything else that needs a Simacan
//! token (a websocket, another HTTP client) gets one through
//! [`SimacanAuthLayer::access_token`](crate::SimacanAuthLayer::access_token).
//!
//! # Example
//!
//! ```
//! use simacan_auth::{Credentials, Environment};
//!
//! let creds = Credentials::new("user", "password");
//! let env = Environment::custom("http://127.0.0.1:4000/api/v1")?;
//! # let _ = (creds, env);
//! # Ok::<(), simacan_auth::Error>(())
//! ```

mod access_token;
pub(crate) mod auth_api;
mod backoff;
pub(crate) mod cache;
pub mod credentials;
pub mod environment;
#[cfg(test)]
mod fake_api;
pub(crate) mod flight;
pub(crate) mod grant;

pub use access_token::AccessToken;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use auth_api::AuthProxy;
pub use credentials::{Credentials, PASSWORD_VAR, USERNAME_VAR};
pub use environment::{BaseUrl, Environment};

pub(crate) use access_token::{How, Token};
pub(crate) use auth_api::AuthClient;
pub(crate) use backoff::Backoff;
pub(crate) use cache::{AfterUnauthorized, Lookup, MAX_REPLAYS, Settings, TokenCache, TokenWait};
