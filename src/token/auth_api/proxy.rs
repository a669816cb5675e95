//! [`AuthProxy`]: which proxy, if any, the built-in Auth API client goes
//! through, and the tunnel it opens there.
//!
//! Only `https` Auth API URLs are proxied, through an HTTP `CONNECT` tunnel
//! to an `http://` proxy: the TLS session with the Auth API runs inside the
//! tunnel, so the proxy sees the Auth API's host and port, never the
//! password or a token. Plain `http` URLs, which an [`Environment`] allows on
//! loopback only, always go direct.
//!
//! The proxy's credentials (its URL's user info) go only into the tunnel's
//! `Proxy-Authorization` header, marked sensitive; `Debug`, logs and errors
//! show the proxy as `http://host:port`.
//!
//! [`Environment`]: crate::Environment

use std::{
    env::VarError,
    error::Error as StdError,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::Uri;
use hyper_util::client::{
    legacy::connect::{HttpConnector, proxy::Tunnel},
    proxy::matcher::{Intercept, Matcher},
};

use crate::Error;

/// How the built-in Auth API client reaches an `https` Auth API: through
/// an HTTP proxy, except for the hosts a bypass list names, or directly.
/// For [`SimacanAuthLayer::auth_proxy`](crate::SimacanAuthLayer::auth_proxy).
///
/// The client asks the proxy for a `CONNECT` tunnel to the Auth API and
/// speaks TLS with the Auth API inside it: the proxy sees the host name,
/// never the password or a token. Plain `http` (a loopback Auth API) is
/// never proxied. The proxy URL's user name and password, percent-encoded,
/// go to the proxy as `Proxy-Authorization: Basic …` and nowhere else:
/// `Debug`, logs and errors show the proxy as `http://host:port`.
///
/// Every value has been checked when it was made, so a layer given one
/// cannot fail to build its client on its account.
///
/// # Example
///
/// ```
/// use simacan_auth::{AuthProxy, Credentials, SimacanAuthLayer};
///
/// let proxy = AuthProxy::new("http://svc-planner:p%40ss@proxy.corp.example:3128")?;
/// assert_eq!(
///     format!("{proxy:?}"),
///     r#"AuthProxy { url: "http://proxy.corp.example:3128", credentials: "<redacted>" }"#
/// );
/// let layer = SimacanAuthLayer::new(Credentials::new("user", "password")).auth_proxy(proxy);
/// # let _ = layer;
/// # Ok::<(), simacan_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct AuthProxy {
    /// `None`: no proxy.
    proxy: Option<Proxy>,
    /// `NO_PROXY`, as given: host names (and their subdomains), IP
    /// addresses and networks, or `*`.
    no_proxy: String,
}

#[derive(Clone)]
struct Proxy {
    /// Decides per URL, and holds the credentials.
    matcher: Arc<Matcher>,
    /// `http://host:port`: what may be shown.
    address: Arc<str>,
    with_credentials: bool,
}

impl AuthProxy {
    /// The HTTP proxy at `url`, `http://[user:password@]host[:port]` (a URL
    /// without a scheme is taken as `http://`), for every `https` Auth API.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) for a URL that does not parse, has no
    /// host or another scheme than `http` (`https://` and `socks5://`
    /// proxies are not supported). The message never quotes the URL, which
    /// may hold a password.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{AuthProxy, Error};
    ///
    /// let proxy = AuthProxy::new("http://proxy.example.com:3128")?;
    /// # let _ = proxy;
    /// let error = AuthProxy::new("socks5://proxy.example.com:1080").unwrap_err();
    /// assert!(error.kind() == simacan_auth::ErrorKind::Configuration);
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    pub fn new(url: impl AsRef<str>) -> Result<Self, Error> {
        Ok(AuthProxy {
            proxy: Some(Proxy::parse(url.as_ref(), "", "the auth proxy url")?),
            no_proxy: String::new(),
        })
    }

    /// The proxy the environment names, read now: `HTTPS_PROXY` (or
    /// `https_proxy`), else `ALL_PROXY` (or `all_proxy`), unless `NO_PROXY`
    /// (or `no_proxy`) lists the Auth API's host; none of them set (or
    /// `NO_PROXY=*`) is a direct connection. An empty variable counts as
    /// unset; `HTTP_PROXY` does not apply, as plain `http` goes to loopback
    /// only and is never proxied. `NO_PROXY` is a comma-separated list of
    /// host names (each matching itself and every name below it; a leading
    /// dot is ignored), IP addresses, networks (`10.0.0.0/8`) or `*` for
    /// every host.
    ///
    /// A layer reads the same variables by default, when its token state is
    /// made (its first use), and then fails every login on an unusable
    /// value; this reads them at once, so that such a value fails here.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration), naming the variable but never
    /// quoting it, for a value that is not valid UTF-8 or not a usable
    /// proxy URL (see [`new`](Self::new)).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use simacan_auth::{AuthProxy, Credentials, SimacanAuthLayer};
    ///
    /// // HTTPS_PROXY=http://proxy.example.com:3128 NO_PROXY=.internal.example.com
    /// let proxy = AuthProxy::from_env()?;
    /// println!("the auth api through {proxy:?}");
    /// let layer = SimacanAuthLayer::new(Credentials::new("user", "password")).auth_proxy(proxy);
    /// # let _ = layer;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var(name))
    }

    /// A direct connection.
    pub(crate) fn direct() -> Self {
        AuthProxy {
            proxy: None,
            no_proxy: String::new(),
        }
    }

    /// `HTTPS_PROXY` (or `https_proxy`), else `ALL_PROXY` (or `all_proxy`),
    /// with `NO_PROXY` (or `no_proxy`), as curl reads them; an empty value
    /// counts as unset. `HTTP_PROXY` does not apply: plain `http` Auth API
    /// URLs are loopback only and never proxied.
    fn from_vars(var: impl Fn(&str) -> Result<String, VarError>) -> Result<Self, Error> {
        let found = match first_set(&var, ["HTTPS_PROXY", "https_proxy"])? {
            Some(found) => Some(found),
            None => first_set(&var, ["ALL_PROXY", "all_proxy"])?,
        };
        let no_proxy = first_set(&var, ["NO_PROXY", "no_proxy"])?
            .map(|(_, list)| list)
            .unwrap_or_default();
        let proxy = match found {
            Some((name, url)) => Some(Proxy::parse(&url, &no_proxy, name)?),
            None => None,
        };
        // `*` bypasses the proxy for every host; the matcher applies it to
        // names but not to IP addresses.
        let proxy = proxy.filter(|_| !no_proxy.split(',').any(|entry| entry.trim() == "*"));
        Ok(AuthProxy { proxy, no_proxy })
    }

    /// The proxy to reach `uri` through, if any.
    pub(crate) fn proxy_for(&self, uri: &Uri) -> Option<(Intercept, Arc<str>)> {
        if uri.scheme_str() != Some("https") {
            return None;
        }
        let proxy = self.proxy.as_ref()?;
        let intercept = proxy.matcher.intercept(uri)?;
        Some((intercept, Arc::clone(&proxy.address)))
    }
}

/// The first of `names` set to a non-empty value, with its name.
fn first_set<const N: usize>(
    var: &impl Fn(&str) -> Result<String, VarError>,
    names: [&'static str; N],
) -> Result<Option<(&'static str, String)>, Error> {
    for name in names {
        match var(name) {
            Ok(value) if !value.trim().is_empty() => return Ok(Some((name, value))),
            Ok(_) | Err(VarError::NotPresent) => {}
            Err(VarError::NotUnicode(_)) => {
                return Err(Error::config(format!("{name} is not valid UTF-8")));
            }
        }
    }
    Ok(None)
}

impl Proxy {
    /// Checks `url` and builds its matcher. `what` names the url in errors,
    /// which never quote it: it may hold a password.
    fn parse(url: &str, no_proxy: &str, what: &str) -> Result<Proxy, Error> {
        let refuse = |why: &str| Error::config(format!("{what}: {why}"));
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|_| refuse("not a url (user info must be percent-encoded)"))?;
        match uri.scheme_str() {
            // Without a scheme, as curl takes it: `proxy.example.com:3128`.
            None | Some("http") => {}
            Some("https") => {
                return Err(refuse(
                    "https:// proxies are not supported; give the proxy's http:// address \
                     (the auth api's tls runs inside the tunnel all the same)",
                ));
            }
            Some(scheme) if scheme.starts_with("socks") => {
                return Err(refuse(
                    "socks proxies are not supported; use an http:// proxy",
                ));
            }
            Some(_) => return Err(refuse("only http:// proxies are supported")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(refuse("no host"));
        }
        // The matcher is the judge of what it can use: ask it about a URL
        // that no bypass list names.
        let probe = Uri::from_static("https://simacan-auth.invalid/");
        let intercept = Matcher::builder()
            .https(url.trim())
            .build()
            .intercept(&probe)
            .ok_or_else(|| refuse("not a usable proxy url"))?;
        let address = intercept.uri().to_string();
        let matcher = Matcher::builder().https(url.trim()).no(no_proxy).build();
        Ok(Proxy {
            matcher: Arc::new(matcher),
            address: address.trim_end_matches('/').into(),
            with_credentials: intercept.basic_auth().is_some(),
        })
    }
}

impl fmt::Debug for AuthProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(proxy) = &self.proxy else {
            return f.write_str("Direct");
        };
        let mut s = f.debug_struct("AuthProxy");
        s.field("url", &proxy.address);
        if proxy.with_credentials {
            s.field("credentials", &"<redacted>");
        }
        if !self.no_proxy.is_empty() {
            s.field("no_proxy", &self.no_proxy);
        }
        s.finish()
    }
}

/// The connector of a proxied client: a `CONNECT` tunnel through the proxy,
/// whose failures name the proxy (never its credentials).
#[derive(Clone)]
pub(crate) struct ProxyTunnel {
    tunnel: Tunnel<HttpConnector>,
    address: Arc<str>,
}

impl ProxyTunnel {
    /// A tunnel through the proxy `intercept` names, at `address`, over
    /// connections that `tcp` makes to the proxy.
    pub(crate) fn new(intercept: &Intercept, address: Arc<str>, tcp: HttpConnector) -> Self {
        let mut tunnel = Tunnel::new(intercept.uri().clone(), tcp);
        if let Some(auth) = intercept.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        ProxyTunnel { tunnel, address }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A TCP connection, to the Auth API through the tunnel.
type Connection = <HttpConnector as tower::Service<Uri>>::Response;

impl tower::Service<Uri> for ProxyTunnel {
    type Response = Connection;
    type Error = ThroughProxy;
    type Future = BoxFuture<Result<Connection, ThroughProxy>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ThroughProxy>> {
        let address = &self.address;
        self.tunnel
            .poll_ready(cx)
            .map_err(|e| ThroughProxy::new(address, e))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let tunnelling = self.tunnel.call(destination);
        let address = Arc::clone(&self.address);
        Box::pin(async move { tunnelling.await.map_err(|e| ThroughProxy::new(&address, e)) })
    }
}

/// A failure to open a tunnel through the proxy at `proxy`.
#[derive(Debug)]
pub(crate) struct ThroughProxy {
    proxy: Arc<str>,
    source: Box<dyn StdError + Send + Sync>,
}

impl ThroughProxy {
    fn new(proxy: &Arc<str>, source: impl StdError + Send + Sync + 'static) -> Self {
        ThroughProxy {
            proxy: Arc::clone(proxy),
            source: Box::new(source),
        }
    }
}

impl fmt::Display for ThroughProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "through the proxy at {}", self.proxy)
    }
}

impl StdError for ThroughProxy {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        set: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<String, VarError> {
        move |name| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .ok_or(VarError::NotPresent)
        }
    }

    fn auth_api() -> Uri {
        Uri::from_static("https://auth.example.com/api/v1/auth/password")
    }

    fn through(rules: &AuthProxy, uri: &Uri) -> Option<String> {
        rules.proxy_for(uri).map(|(_, address)| address.to_string())
    }

    #[test]
    fn https_proxy_wins_over_all_proxy_and_empty_counts_as_unset() {
        let rules = AuthProxy::from_vars(vars(&[
            ("HTTPS_PROXY", ""),
            ("https_proxy", "http://lower:3128"),
            ("ALL_PROXY", "http://all:3128"),
        ]))
        .unwrap();
        assert_eq!(
            through(&rules, &auth_api()).as_deref(),
            Some("http://lower:3128")
        );
        let rules = AuthProxy::from_vars(vars(&[("all_proxy", "all.example:8080")])).unwrap();
        assert_eq!(
            through(&rules, &auth_api()).as_deref(),
            Some("http://all.example:8080")
        );
        let rules = AuthProxy::from_vars(vars(&[("HTTP_PROXY", "http://plain:3128")])).unwrap();
        assert_eq!(
            through(&rules, &auth_api()),
            None,
            "HTTP_PROXY does not apply"
        );
    }

    #[test]
    fn no_proxy_names_hosts_below_it_and_addresses() {
        let rules = AuthProxy::from_vars(vars(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "example.com, 10.0.0.0/8"),
        ]))
        .unwrap();
        assert_eq!(through(&rules, &auth_api()), None);
        assert_eq!(
            through(&rules, &Uri::from_static("https://10.1.2.3/")),
            None
        );
        assert_eq!(
            through(&rules, &Uri::from_static("https://notexample.com/")).as_deref(),
            Some("http://proxy:3128")
        );
        let everything = AuthProxy::from_vars(vars(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("no_proxy", "example.org, *"),
        ]))
        .unwrap();
        assert_eq!(through(&everything, &auth_api()), None);
        assert_eq!(
            through(&everything, &Uri::from_static("https://10.1.2.3/")),
            None
        );
    }

    #[test]
    fn plain_http_is_never_proxied() {
        let rules = AuthProxy::new("http://proxy:3128").unwrap();
        assert_eq!(
            through(&rules, &Uri::from_static("http://127.0.0.1:4000/")),
            None
        );
        assert!(through(&rules, &auth_api()).is_some());
        assert_eq!(through(&AuthProxy::direct(), &auth_api()), None);
    }

    #[test]
    fn credentials_go_to_the_tunnel_header_only() {
        let rules = AuthProxy::new("http://ann:s3cr%40t@proxy.example:3128").unwrap();
        let (intercept, address) = rules.proxy_for(&auth_api()).unwrap();
        assert_eq!(&*address, "http://proxy.example:3128");
        let header = intercept.basic_auth().unwrap();
        assert!(header.is_sensitive());
        // ann:s3cr@t
        assert_eq!(header, "Basic YW5uOnMzY3JAdA==");
        let shown = format!("{rules:?}");
        assert_eq!(
            shown,
            r#"AuthProxy { url: "http://proxy.example:3128", credentials: "<redacted>" }"#
        );
    }

    #[test]
    fn unusable_urls_are_refused_without_quoting_them() {
        for (url, why) in [
            (
                "https://ann:s3cret@proxy:3128",
                "https:// proxies are not supported",
            ),
            (
                "socks5://ann:s3cret@proxy:1080",
                "socks proxies are not supported",
            ),
            (
                "ftp://ann:s3cret@proxy",
                "only http:// proxies are supported",
            ),
            ("http://ann:s3 cret@proxy:3128", "not a url"),
            ("http://", "not a url"),
        ] {
            let error = AuthProxy::new(url).unwrap_err().to_string();
            assert!(error.contains(why), "{url}: {error}");
            assert!(
                error.starts_with("invalid configuration: the auth proxy url: "),
                "{error}"
            );
            assert!(!error.contains("s3"), "{error}");
        }
        let error = AuthProxy::from_vars(vars(&[("HTTPS_PROXY", "socks5h://ann:s3cret@p:1")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "invalid configuration: HTTPS_PROXY: socks proxies are not supported; use an http:// proxy"
        );
    }
}
