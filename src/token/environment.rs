//! Which Simacan Auth API to talk to.
//!
//! Production and staging have separate credentials. Any other base URL
//! (a local mock, an on-premise setup) goes through [`Environment::custom`],
//! which accepts `https://` anywhere and plain `http://` only on loopback.
//!
//! # Example
//!
//! ```
//! use simacan_auth::Environment;
//!
//! assert_eq!(Environment::default(), Environment::Production);
//! assert_eq!(
//!     Environment::Staging.base_url(),
//!     "https://auth-service-stg.services.simacan.com/api/v1"
//! );
//! let local = Environment::custom("http://127.0.0.1:8080/api/v1")?;
//! assert!(Environment::custom("http://auth.example.com/api/v1").is_err());
//! # let _ = local;
//! # Ok::<(), simacan_auth::Error>(())
//! ```

use std::{fmt, net::IpAddr};

use http::Uri;

use crate::{Endpoint, Error};

const PRODUCTION: &str = "https://auth-service.services.simacan.com/api/v1";
const STAGING: &str = "https://auth-service-stg.services.simacan.com/api/v1";

/// A Simacan Auth API deployment. See the [module docs](self).
///
/// # Example
///
/// ```
/// let env = simacan_auth::Environment::Staging;
/// assert!(env.base_url().contains("-stg"));
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Environment {
    /// `https://auth-service.services.simacan.com/api/v1`. The default.
    /// Its token goes to `*.services.simacan.com`, except
    /// `*-stg.services.simacan.com`, unless the layer is given another
    /// [`TokenScope`](crate::TokenScope).
    #[default]
    Production,
    /// `https://auth-service-stg.services.simacan.com/api/v1`. Its token
    /// goes to `*-stg.services.simacan.com`, unless the layer is given
    /// another [`TokenScope`](crate::TokenScope).
    Staging,
    /// Any other base URL, made with [`Environment::custom`]. Its token goes
    /// to any host unless the layer is given a
    /// [`TokenScope`](crate::TokenScope).
    Custom(BaseUrl),
}

/// A validated Auth API base URL, made by [`Environment::custom`].
///
/// # Example
///
/// ```
/// use simacan_auth::Environment;
///
/// let Environment::Custom(url) = Environment::custom("https://auth.example.com/api/v1/")? else {
///     unreachable!()
/// };
/// assert_eq!(url.as_str(), "https://auth.example.com/api/v1");
/// # Ok::<(), simacan_auth::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// The base URL, without a trailing slash.
    ///
    /// # Example
    ///
    /// ```
    /// # use simacan_auth::Environment;
    /// let env = Environment::custom("http://localhost:9000/api/v1")?;
    /// assert_eq!(env.base_url(), "http://localhost:9000/api/v1");
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Environment {
    /// An Auth API at `base_url`: everything up to and including `/api/v1`.
    ///
    /// The crate cannot know which hosts such a deployment serves, so a
    /// layer with a custom environment attaches its token to requests to any
    /// host (still only over `https`, or plain `http` to loopback). Give the
    /// layer the API's hosts with
    /// [`SimacanAuthLayer::token_scope`](crate::SimacanAuthLayer::token_scope)
    /// whenever the wrapped client may reach other hosts.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfiguration`] when `base_url` is not an absolute
    /// `http(s)` URL, carries a query, fragment or user info, or is plain
    /// `http://` to a host other than a loopback address.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::Environment;
    ///
    /// assert!(Environment::custom("https://auth.example.com/api/v1").is_ok());
    /// assert!(Environment::custom("http://[::1]:4000/api/v1").is_ok());
    /// assert!(Environment::custom("auth.example.com").is_err());
    /// assert!(Environment::custom("ftp://auth.example.com/api/v1").is_err());
    /// ```
    pub fn custom(base_url: impl AsRef<str>) -> Result<Environment, Error> {
        let raw = base_url.as_ref().trim();
        let uri: Uri = raw
            .parse()
            .map_err(|_| Error::config(format!("base url {raw:?} is not a url")))?;
        let authority = uri
            .authority()
            .ok_or_else(|| Error::config(format!("base url {raw:?} is not absolute")))?;
        if authority.as_str().contains('@') {
            return Err(Error::config("base url must not carry user info"));
        }
        if uri.query().is_some() || raw.contains('#') {
            return Err(Error::config("base url must not carry a query or fragment"));
        }
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if is_loopback(authority.host()) => {}
            Some("http") => {
                return Err(Error::config(format!(
                    "plain http is allowed only for loopback hosts, not {:?}",
                    authority.host()
                )))
            }
            _ => return Err(Error::config(format!("base url {raw:?} is not http(s)"))),
        }
        let base = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("https"),
            authority,
            uri.path().trim_end_matches('/')
        );
        Ok(Environment::Custom(BaseUrl(base)))
    }

    /// The base URL, without a trailing slash.
    ///
    /// # Example
    ///
    /// ```
    /// assert_eq!(
    ///     simacan_auth::Environment::Production.base_url(),
    ///     "https://auth-service.services.simacan.com/api/v1"
    /// );
    /// ```
    pub fn base_url(&self) -> &str {
        match self {
            Environment::Production => PRODUCTION,
            Environment::Staging => STAGING,
            Environment::Custom(url) => url.as_str(),
        }
    }

    /// The full URL of an Auth API endpoint.
    pub(crate) fn endpoint_uri(&self, endpoint: Endpoint) -> Result<Uri, Error> {
        format!("{}{}", self.base_url(), endpoint.path())
            .parse()
            .map_err(|_| Error::config("endpoint url does not parse"))
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Environment::Production => f.write_str("Production"),
            Environment::Staging => f.write_str("Staging"),
            Environment::Custom(url) => f.debug_tuple("Custom").field(url).finish(),
        }
    }
}

/// Whether `host`, as a URI writes it, is a loopback name or address.
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_trims_the_trailing_slash_and_builds_endpoints() {
        let env = Environment::custom("http://127.0.0.1:1234/api/v1/").unwrap();
        assert_eq!(env.base_url(), "http://127.0.0.1:1234/api/v1");
        assert_eq!(
            env.endpoint_uri(Endpoint::Refresh).unwrap().to_string(),
            "http://127.0.0.1:1234/api/v1/auth/refresh"
        );
    }

    #[test]
    fn custom_rejects_what_is_not_an_absolute_http_url() {
        for bad in [
            "",
            "/api/v1",
            "not a url",
            "ftp://host/api/v1",
            "http://10.0.0.1/api/v1",
            "http://example.com/api/v1",
            "https://user:pw@example.com/api/v1",
            "https://example.com/api/v1?x=1",
            "https://example.com/api/v1#frag",
        ] {
            assert!(Environment::custom(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn custom_accepts_https_anywhere_and_http_on_loopback() {
        for good in [
            "https://auth.example.com/api/v1",
            "http://localhost:80/api/v1",
            "http://127.0.0.2:9/api/v1",
            "http://[::1]:9/api/v1",
        ] {
            assert!(Environment::custom(good).is_ok(), "{good:?} was rejected");
        }
    }

    #[test]
    fn production_is_the_default() {
        assert_eq!(Environment::default(), Environment::Production);
        assert_eq!(format!("{:?}", Environment::Staging), "Staging");
    }
}
