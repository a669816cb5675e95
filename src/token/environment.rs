//! Which Simacan Auth API to talk to.
//!
//! Production and staging have separate credentials. Any other base URL
//! (a local mock, an on-premise setup) goes through [`Environment::custom`],
//! which accepts `https://` anywhere and plain `http://` only on loopback,
//! and wants the base URL to end in its API version, like `/api/v1`: a URL
//! without it would only fail later, at login. An Auth API served without a
//! version in its path goes through [`Environment::custom_unversioned`].
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
//! assert!(Environment::custom("https://auth.example.com").is_err());
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

/// A validated Auth API base URL, made by [`Environment::custom`] or
/// [`Environment::custom_unversioned`].
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

impl BaseUrl {
    /// Checks everything but the version segment, and drops a trailing
    /// slash.
    fn parse(raw: &str) -> Result<BaseUrl, Error> {
        let raw = raw.trim();
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
                )));
            }
            _ => return Err(Error::config(format!("base url {raw:?} is not http(s)"))),
        }
        Ok(BaseUrl(format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("https"),
            authority,
            uri.path().trim_end_matches('/')
        )))
    }

    /// The path, without a trailing slash: empty for a bare host.
    fn path(&self) -> &str {
        let after_scheme = self.0.split_once("://").map_or("", |(_, rest)| rest);
        after_scheme.find('/').map_or("", |at| &after_scheme[at..])
    }

    /// The likely meant base URL: cut after a version segment when the path
    /// has one (a pasted endpoint URL), else with `/v1` or `/api/v1` added.
    fn versioned(&self) -> String {
        let path = self.path();
        let origin = &self.0[..self.0.len() - path.len()];
        let mut segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        match segments
            .iter()
            .rposition(|s| is_version(&s.to_ascii_lowercase()))
        {
            Some(at) => {
                segments.truncate(at + 1);
                segments[at].make_ascii_lowercase();
            }
            None if segments.last().is_some_and(|s| s == "api") => segments.push("v1".into()),
            None => segments.extend(["api".into(), "v1".into()]),
        }
        format!("{origin}/{}", segments.join("/"))
    }
}

/// `v` followed by one or more ASCII digits.
fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Environment {
    /// An Auth API at `base_url`: everything up to and including the API
    /// version, such as `https://auth.example.com/api/v1`.
    ///
    /// The last path segment must be a version: a lowercase `v` followed by
    /// digits (`v1`, `v2`, `v10`). A base URL without one is refused, with a
    /// suggestion, because the endpoints below it would not be found and the
    /// mistake would surface only at login. Use
    /// [`Environment::custom_unversioned`] for an Auth API that really has
    /// no version in its path.
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
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) when `base_url` is not an absolute
    /// `http(s)` URL, carries a query, fragment or user info, is plain
    /// `http://` to a host other than a loopback address, or does not end in
    /// a version segment.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{Environment, ErrorKind};
    ///
    /// assert!(Environment::custom("https://auth.example.com/api/v1").is_ok());
    /// assert!(Environment::custom("http://[::1]:4000/api/v1").is_ok());
    /// assert!(Environment::custom("auth.example.com").is_err());
    /// assert!(Environment::custom("ftp://auth.example.com/api/v1").is_err());
    ///
    /// let error = Environment::custom("https://auth.example.com").unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Configuration);
    /// assert!(error.to_string().contains(r#"did you mean "https://auth.example.com/api/v1"?"#));
    /// ```
    pub fn custom(base_url: impl AsRef<str>) -> Result<Environment, Error> {
        let base = BaseUrl::parse(base_url.as_ref())?;
        if !base.path().rsplit('/').next().is_some_and(is_version) {
            return Err(Error::config(format!(
                "base url {:?} does not end in a version segment such as /api/v1; did you mean {:?}? \
                 (Environment::custom_unversioned takes it as it is)",
                base.0,
                base.versioned()
            )));
        }
        Ok(Environment::Custom(base))
    }

    /// An Auth API at `base_url`, which is used as it is: without the
    /// version segment [`Environment::custom`] insists on. Only for an Auth
    /// API whose endpoints really are `{base_url}/auth/password` and
    /// `{base_url}/auth/refresh`; otherwise logins fail, typically as
    /// `404` or as rejected credentials.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) when `base_url` is not an absolute
    /// `http(s)` URL, carries a query, fragment or user info, or is plain
    /// `http://` to a host other than a loopback address.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::Environment;
    ///
    /// let env = Environment::custom_unversioned("https://auth.example.com/")?;
    /// assert_eq!(env.base_url(), "https://auth.example.com");
    /// assert!(Environment::custom_unversioned("http://auth.example.com").is_err());
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    pub fn custom_unversioned(base_url: impl AsRef<str>) -> Result<Environment, Error> {
        BaseUrl::parse(base_url.as_ref()).map(Environment::Custom)
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

    fn refusal(base_url: &str) -> String {
        match Environment::custom(base_url) {
            Err(error) if error.kind() == crate::ErrorKind::Configuration => error
                .to_string()
                .trim_start_matches("invalid configuration: ")
                .to_owned(),
            other => panic!("{base_url:?} gave {other:?}"),
        }
    }

    #[test]
    fn custom_wants_a_version_segment_last() {
        for good in [
            "https://auth.example.com/api/v1",
            "https://auth.example.com/api/v2/",
            "https://auth.example.com/v1",
            "http://127.0.0.1:9/auth/api/v10",
        ] {
            assert!(Environment::custom(good).is_ok(), "{good:?} was refused");
        }
        for bad in [
            "https://auth.example.com",
            "https://auth.example.com/api",
            "https://auth.example.com/api/V1",
            "https://auth.example.com/api/v",
            "https://auth.example.com/api/v1beta",
            "https://auth.example.com/api/v1/auth/password",
        ] {
            assert!(
                refusal(bad).contains("does not end in a version segment"),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_refused_base_url_comes_with_the_likely_fix() {
        for (bad, meant) in [
            (
                "https://auth.example.com",
                "https://auth.example.com/api/v1",
            ),
            (
                "https://auth.example.com/",
                "https://auth.example.com/api/v1",
            ),
            (
                "https://auth.example.com/api",
                "https://auth.example.com/api/v1",
            ),
            (
                "https://auth.example.com/api/V2",
                "https://auth.example.com/api/v2",
            ),
            (
                "https://auth.example.com/api/v1/auth/password",
                "https://auth.example.com/api/v1",
            ),
            (
                "http://[::1]:8080/auth-service",
                "http://[::1]:8080/auth-service/api/v1",
            ),
        ] {
            let reason = refusal(bad);
            let trimmed = bad.trim_end_matches('/');
            assert_eq!(
                reason,
                format!(
                    "base url {trimmed:?} does not end in a version segment such as /api/v1; did you mean {meant:?}? \
                     (Environment::custom_unversioned takes it as it is)"
                )
            );
            let fixed = Environment::custom(meant).unwrap();
            assert_eq!(fixed.base_url(), meant);
        }
    }

    #[test]
    fn custom_unversioned_takes_a_base_url_as_it_is_but_checks_the_rest() {
        let env = Environment::custom_unversioned("https://auth.example.com/").unwrap();
        assert_eq!(env.base_url(), "https://auth.example.com");
        assert_eq!(
            env.endpoint_uri(Endpoint::Password).unwrap().to_string(),
            "https://auth.example.com/auth/password"
        );
        let env = Environment::custom_unversioned("http://127.0.0.1:9/auth").unwrap();
        assert_eq!(env.base_url(), "http://127.0.0.1:9/auth");
        for bad in [
            "http://auth.example.com",
            "https://user:pw@auth.example.com",
            "https://auth.example.com?x=1",
            "auth.example.com",
        ] {
            assert!(
                Environment::custom_unversioned(bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn production_is_the_default() {
        assert_eq!(Environment::default(), Environment::Production);
        assert_eq!(format!("{:?}", Environment::Staging), "Staging");
    }
}
