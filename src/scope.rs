//! [`TokenScope`]: which requests get the token.
//!
//! A client is often shared: the hyper client that talks to Simacan may
//! also talk to a geocoder, a webhook receiver, or whatever host a redirect
//! names. The layer therefore decides for every request, replays included,
//! whether it may carry the Simacan token. It does when both hold:
//!
//! - **the host is in the scope.** By default the scope follows the layer's
//!   [`Environment`]:
//!
//!   | environment | hosts that get the token |
//!   |---|---|
//!   | [`Environment::Production`] | `*.services.simacan.com`, except `*-stg.services.simacan.com` |
//!   | [`Environment::Staging`] | `*-stg.services.simacan.com` |
//!   | [`Environment::custom`] | any host; set a scope with [`SimacanAuthLayer::token_scope`](crate::SimacanAuthLayer::token_scope) |
//!
//! - **the channel keeps the token secret, whatever the scope:** the URI is
//!   `https`, or plain `http` to a loopback host (`localhost`, `127.0.0.0/8`,
//!   `::1`, as written in the URI; a name that merely resolves to loopback
//!   does not count, nor does one written with a trailing dot, such as
//!   `localhost.`, which a connector resolves through DNS).
//!
//! A request whose URI has no authority (a path such as `/trips`, as a tonic
//! client wrapped outside its `Channel` sends) always gets the token: the
//! inner service, not the request, picks the host.
//!
//! A request outside the scope passes through untouched: no token, no login,
//! no replay copy, its own `Authorization` header (if any) as it was, and its
//! response, a 401 included, goes to the caller as is.
//!
//! # Example
//!
//! ```
//! use http::Uri;
//! use simacan_auth::{Credentials, SimacanAuthLayer, TokenScope};
//!
//! let scope = TokenScope::hosts(["*.services.simacan.com", "planner.example.com"])?;
//! assert!(scope.allows(&Uri::from_static("https://trips.services.simacan.com/api/v2/trips")));
//! assert!(scope.allows(&Uri::from_static("https://PLANNER.example.com:8443/")));
//! assert!(!scope.allows(&Uri::from_static("http://trips.services.simacan.com/")));
//! assert!(!scope.allows(&Uri::from_static("https://geocoder.example.org/")));
//! assert!(scope.allows(&Uri::from_static("/trips")));
//!
//! let layer = SimacanAuthLayer::new(Credentials::new("user", "password")).token_scope(scope);
//! # let _ = layer;
//! # Ok::<(), simacan_auth::Error>(())
//! ```

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
    sync::Arc,
};

use http::Uri;

use crate::{
    Error,
    token::{Environment, environment::is_loopback},
};

/// Where Simacan services live in production; staging ones carry `-stg`.
const PRODUCTION_HOSTS: &str = ".services.simacan.com";
const STAGING_HOSTS: &str = "-stg.services.simacan.com";

/// The longest host name DNS allows.
const MAX_NAME: usize = 253;
/// The longest label DNS allows.
const MAX_LABEL: usize = 63;

/// The hosts a layer's token may be sent to. See the [module docs](self).
///
/// Cloning is cheap: the host list is shared.
///
/// # Example
///
/// ```
/// use simacan_auth::TokenScope;
///
/// let scope = TokenScope::hosts(["*.services.simacan.com"])?;
/// assert!(scope.allows(&"https://trips.services.simacan.com/".parse()?));
/// assert!(!scope.allows(&"https://example.com/".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenScope {
    hosts: Hosts,
}

#[derive(Clone, PartialEq, Eq)]
enum Hosts {
    Any,
    Listed {
        allow: Arc<[Pattern]>,
        except: Arc<[Pattern]>,
    },
}

/// One host pattern, normalised when it was parsed.
#[derive(Clone, PartialEq, Eq)]
enum Pattern {
    /// A host name: lowercase ASCII, without a trailing dot.
    Name(Box<str>),
    /// An IP address, in canonical form.
    Ip(IpAddr),
    /// Any host that ends in this lowercase text, with at least one
    /// character before it that is not a dot: `.services.simacan.com` for
    /// `*.services.simacan.com`.
    Suffix(Box<str>),
}

impl TokenScope {
    /// A scope of the hosts in `patterns`: exact host names or IP addresses,
    /// and wildcards `*.suffix`.
    ///
    /// - A **host name** matches itself, in any case and on any port.
    ///   A trailing dot (`api.example.com.`) is the same name, in the list
    ///   and in request URIs. Internationalised names are written in their
    ///   ASCII (`xn--`) form.
    /// - An **IP address** (`10.0.0.5`, `::1` or `[::1]`) matches the same
    ///   address written in the URI, on any port.
    /// - A **wildcard** `*.suffix` matches every name below `suffix`, at any
    ///   depth (`*.simacan.com` matches `a.simacan.com` and `a.b.simacan.com`),
    ///   but not `suffix` itself. The suffix must have at least two labels
    ///   and end in a name, not a number, so that a wildcard never covers a
    ///   whole top-level domain or IP addresses.
    ///
    /// The scheme rule of the [module docs](self) applies on top: `https`,
    /// or plain `http` to a loopback host only.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) when `patterns` is empty (use
    /// [`TokenScope::any_host`] to attach the token everywhere), or when a
    /// pattern is not one of the above: `*`, `*.com`, `*.*.example.com`,
    /// `api*.example.com`, a URL, a host with a port, a name with spaces or
    /// other characters a host name cannot have.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::TokenScope;
    ///
    /// let scope = TokenScope::hosts(["*.services.simacan.com", "10.0.0.5", "::1"])?;
    /// assert!(scope.allows(&"https://10.0.0.5:8443/".parse()?));
    /// assert!(scope.allows(&"http://[::1]:8080/".parse()?));
    ///
    /// for bad in ["*", "*.com", "*.*.simacan.com", "https://simacan.com", "a b.com"] {
    ///     assert!(TokenScope::hosts([bad]).is_err(), "{bad}");
    /// }
    /// assert!(TokenScope::hosts(Vec::<String>::new()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hosts(patterns: impl IntoIterator<Item = impl AsRef<str>>) -> Result<TokenScope, Error> {
        let allow = patterns
            .into_iter()
            .map(|pattern| Pattern::parse(pattern.as_ref()))
            .collect::<Result<Arc<[Pattern]>, Error>>()?;
        if allow.is_empty() {
            return Err(Error::config(
                "token scope lists no hosts; use TokenScope::any_host() to attach the token everywhere",
            ));
        }
        Ok(TokenScope::listed(allow, []))
    }

    /// A scope of every host. The scheme rule still applies: the token goes
    /// over `https`, or plain `http` to a loopback host.
    ///
    /// The default for [`Environment::custom`]. Prefer a list of hosts with
    /// [`TokenScope::hosts`] whenever the wrapped client may reach hosts
    /// that are not the API's.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::TokenScope;
    ///
    /// let scope = TokenScope::any_host();
    /// assert!(scope.allows(&"https://example.com/".parse()?));
    /// assert!(scope.allows(&"http://localhost:8080/".parse()?));
    /// assert!(!scope.allows(&"http://example.com/".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn any_host() -> TokenScope {
        TokenScope { hosts: Hosts::Any }
    }

    /// The scope a layer uses for `environment` unless it is given one (see
    /// the table in the [module docs](self)): for a layer pointed at a
    /// test server whose requests should still be scoped as in
    /// production, or to check where a layer's token would go.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{Environment, TokenScope};
    ///
    /// let production = TokenScope::for_environment(&Environment::Production);
    /// assert!(production.allows(&"https://trips.services.simacan.com/".parse()?));
    /// assert!(!production.allows(&"https://trips-stg.services.simacan.com/".parse()?));
    ///
    /// let staging = TokenScope::for_environment(&Environment::Staging);
    /// assert!(staging.allows(&"https://trips-stg.services.simacan.com/".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_environment(environment: &Environment) -> TokenScope {
        let suffix = |s: &str| Pattern::Suffix(s.into());
        match environment {
            Environment::Production => {
                TokenScope::listed([suffix(PRODUCTION_HOSTS)], [suffix(STAGING_HOSTS)])
            }
            Environment::Staging => TokenScope::listed([suffix(STAGING_HOSTS)], []),
            Environment::Custom(_) => TokenScope::any_host(),
        }
    }

    fn listed(allow: impl Into<Arc<[Pattern]>>, except: impl Into<Arc<[Pattern]>>) -> TokenScope {
        TokenScope {
            hosts: Hosts::Listed {
                allow: allow.into(),
                except: except.into(),
            },
        }
    }

    /// Whether a request to `uri` gets the token: its host is in the scope
    /// and its scheme is `https`, or `http` to a loopback host; or it has no
    /// authority at all (the inner service picks the host).
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::TokenScope;
    ///
    /// let scope = TokenScope::hosts(["api.example.com"])?;
    /// assert!(scope.allows(&"https://API.example.com./v1".parse()?));
    /// assert!(!scope.allows(&"https://api.example.com.evil.test/".parse()?));
    /// assert!(!scope.allows(&"https://api.example.com@evil.test/".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn allows(&self, uri: &Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return true;
        };
        let authority = authority.as_str();
        match uri.scheme_str() {
            Some("https") => self.hosts.contain(authority),
            // As written: `localhost.` or `127.0.0.1.` is no IP literal nor
            // the hosts file's name to a connector, but a question to DNS.
            Some("http") => {
                let host = Host::of(authority);
                is_loopback(host.name())
                    && !uri.host().is_some_and(|name| name.ends_with('.'))
                    && self.hosts.contain_host(host)
            }
            _ => false,
        }
    }
}

/// A request's host as [`Authority::host`](http::uri::Authority::host)
/// finds it (after the last `@`, up to the first `:` after it, or the whole
/// bracketed IPv6 literal), with a trailing dot left out. Finding it takes a
/// pass over the whole authority, which an https request whose authority
/// is a bare name that a pattern ends skips (see [`Hosts::contain`]).
#[derive(Clone, Copy)]
struct Host<'a> {
    name: &'a str,
}

impl<'a> Host<'a> {
    #[inline]
    fn of(authority: &'a str) -> Self {
        let bytes = authority.as_bytes();
        let (mut start, mut end) = (0, bytes.len());
        // Most authorities are a bare host: told eight bytes at a time,
        // before the byte-by-byte pass.
        if !has_either(bytes, b'@', b':') {
            return Host::trimmed(authority, start, end);
        }
        for (at, byte) in bytes.iter().enumerate().rev() {
            match byte {
                b'@' => {
                    start = at + 1;
                    break;
                }
                b':' => end = at,
                _ => {}
            }
        }
        if bytes.get(start) == Some(&b'[') {
            end = bytes[start..]
                .iter()
                .position(|&byte| byte == b']')
                .map_or(bytes.len(), |close| start + close + 1);
        }
        Host::trimmed(authority, start, end)
    }

    /// `authority[start..end]` without a trailing dot.
    #[inline]
    fn trimmed(authority: &'a str, start: usize, mut end: usize) -> Self {
        if end > start && authority.as_bytes()[end - 1] == b'.' {
            end -= 1;
        }
        Host {
            name: &authority[start..end],
        }
    }

    /// The host.
    fn name(self) -> &'a str {
        self.name
    }

    /// Whether the host is `lowercase` (a name stored in lowercase),
    /// ignoring ASCII case.
    #[inline(always)]
    fn is(self, lowercase: &[u8]) -> bool {
        equals_lowercase(self.name.as_bytes(), lowercase)
    }

    /// Whether the host ends in `suffix` (`.` and a name, lowercase),
    /// ignoring ASCII case, with at least one more label before it.
    #[inline(always)]
    fn is_below(self, suffix: &[u8]) -> bool {
        let name = self.name.as_bytes();
        match name.len().checked_sub(suffix.len()) {
            Some(start) if start > 0 => {
                equals_lowercase(&name[start..], suffix) && name[start - 1] != b'.'
            }
            _ => false,
        }
    }
}

impl Hosts {
    /// Whether the host of `authority` is in the scope.
    #[inline]
    fn contain(&self, authority: &str) -> bool {
        let Hosts::Listed { allow, except } = self else {
            return true;
        };
        // Most authorities are a bare name that an allowed pattern ends:
        // the host is then the whole authority, and only the part before
        // the pattern is looked at for a user or a port.
        let host = match allow.iter().find_map(|p| p.matches_bare(authority)) {
            Some(host) => host,
            None => {
                let host = Host::of(authority);
                if !allow.iter().any(|p| p.matches(host)) {
                    return false;
                }
                host
            }
        };
        !except.iter().any(|p| p.matches(host))
    }

    /// Whether `host` is in the scope.
    fn contain_host(&self, host: Host<'_>) -> bool {
        match self {
            Hosts::Any => true,
            Hosts::Listed { allow, except } => {
                allow.iter().any(|p| p.matches(host)) && !except.iter().any(|p| p.matches(host))
            }
        }
    }
}

impl Pattern {
    fn parse(raw: &str) -> Result<Pattern, Error> {
        let refuse = |why: &str| Error::config(format!("token scope host {raw:?} {why}"));
        if let Some(ip) = parse_ip(raw) {
            return Ok(Pattern::Ip(ip));
        }
        let name = raw.strip_suffix('.').unwrap_or(raw);
        if name == "*" {
            return Err(refuse(
                "covers every host: use TokenScope::any_host() for that",
            ));
        }
        if let Some(suffix) = name.strip_prefix("*.") {
            check_name(suffix).map_err(refuse)?;
            if !suffix.contains('.') {
                return Err(refuse(
                    "covers too much: a wildcard needs a suffix of at least two labels, as in *.services.simacan.com",
                ));
            }
            return Ok(Pattern::Suffix(
                format!(".{}", suffix.to_ascii_lowercase()).into(),
            ));
        }
        check_name(name).map_err(refuse)?;
        Ok(Pattern::Name(name.to_ascii_lowercase().into()))
    }

    /// The host of `authority` when the pattern, a name or a wildcard,
    /// matches it as the whole authority (with a trailing dot or not), which
    /// is then that host ([`Host::of`] finds no user and no port); `None`
    /// otherwise, whether the pattern matches the host or not.
    #[inline(always)]
    fn matches_bare<'a>(&self, authority: &'a str) -> Option<Host<'a>> {
        let host = Host::trimmed(authority, 0, authority.len());
        let name = host.name().as_bytes();
        let bare = match self {
            // A name holds no '@' or ':': equal to it, the authority is bare.
            Pattern::Name(pattern) => host.is(pattern.as_bytes()),
            Pattern::Ip(_) => false,
            // Nor does a suffix: then only the labels before it can hold
            // one. Eight bytes are looked at however short they are (those
            // after them are the suffix), so that one word does.
            Pattern::Suffix(suffix) => {
                host.is_below(suffix.as_bytes()) && {
                    let before = name.len() - suffix.len();
                    !has_either(&name[..before.max(8).min(name.len())], b'@', b':')
                }
            }
        };
        bare.then_some(host)
    }

    #[inline(always)]
    fn matches(&self, host: Host<'_>) -> bool {
        match self {
            Pattern::Name(name) => host.is(name.as_bytes()),
            Pattern::Ip(ip) => parse_ip(host.name()) == Some(*ip),
            Pattern::Suffix(suffix) => host.is_below(suffix.as_bytes()),
        }
    }
}

/// Whether `bytes` has the byte `a` or `b`, checked a word at a time (the
/// last word overlapping the one before it).
#[inline(always)]
fn has_either(bytes: &[u8], a: u8, b: u8) -> bool {
    let (a_s, b_s) = (ONES * u64::from(a), ONES * u64::from(b));
    let has = |word: u64| has_zero(word ^ a_s) || has_zero(word ^ b_s);
    if bytes.len() < 8 {
        return bytes.iter().any(|&byte| byte == a || byte == b);
    }
    let last = bytes.len() - 8;
    let mut at = 0;
    while at < last {
        if has(word(bytes, at)) {
            return true;
        }
        at += 8;
    }
    has(word(bytes, last))
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether a byte of `word` is zero (the classic bit trick: exact, with no
/// false positives when any byte is zero).
#[inline]
fn has_zero(word: u64) -> bool {
    word.wrapping_sub(ONES) & !word & HIGHS != 0
}

/// The eight bytes of `bytes` from `at`.
#[inline]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(word)
}

/// `word` with ASCII capitals made small, a word at a time: exactly
/// [`u8::to_ascii_lowercase`] on each byte.
#[inline]
fn to_ascii_lowercase(word: u64) -> u64 {
    let low7 = word & !HIGHS;
    // The high bit of each byte: from 'A' on, and beyond 'Z' (no carry
    // crosses bytes, as each sum stays below 0x100).
    let from_a = low7 + ONES * u64::from(0x80 - b'A');
    let beyond_z = low7 + ONES * u64::from(0x7f - b'Z');
    let capital = from_a & !beyond_z & !word & HIGHS;
    word | (capital >> 2)
}

/// Whether `bytes` equals `lowercase` (a pattern, stored in lowercase),
/// ignoring ASCII case, a word at a time. Hosts are nearly always lowercase
/// already, so a plain comparison settles most words.
#[inline(always)]
fn equals_lowercase(bytes: &[u8], lowercase: &[u8]) -> bool {
    if bytes.len() != lowercase.len() {
        return false;
    }
    if bytes.len() < 8 {
        return bytes
            .iter()
            .zip(lowercase)
            .all(|(b, l)| b.to_ascii_lowercase() == *l);
    }
    // Bytes equal but for case are equal with bit 0x20 set: most words that
    // differ are told without making them lowercase.
    const CASE: u64 = ONES * 0x20;
    let same = |at| {
        let (host, pattern) = (word(bytes, at), word(lowercase, at));
        host == pattern || (host | CASE == pattern | CASE && to_ascii_lowercase(host) == pattern)
    };
    let last = bytes.len() - 8;
    let mut at = 0;
    while at < last {
        if !same(at) {
            return false;
        }
        at += 8;
    }
    same(last)
}

/// An IP address as a URI writes it (`10.0.0.5`, `[::1]`) or as a bare
/// IPv6 literal (`::1`), in canonical form, so that `::ffff:10.0.0.5` and
/// `10.0.0.5` are one address.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip = match text.strip_prefix('[') {
        Some(rest) => IpAddr::V6(rest.strip_suffix(']')?.parse::<Ipv6Addr>().ok()?),
        None => text.parse::<IpAddr>().ok()?,
    };
    Some(ip.to_canonical())
}

/// Why `name` is not a host name a scope can list, if it is not.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.contains('*') {
        return Err(
            "has a wildcard where none is allowed: only a whole first label can be one, as in *.services.simacan.com",
        );
    }
    if name.contains(['/', ':', '@', '?', '#']) {
        return Err("is not a host name: give the host alone, without scheme, port or path");
    }
    if name.len() > MAX_NAME {
        return Err("is longer than a host name can be");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err("has an empty or overlong label");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(
                "is not a host name: only ASCII letters, digits, '-' and '_' may appear between the dots",
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("is not a host name: a label cannot start or end with '-'");
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "ends in a number: write IP addresses in full, and names with their top-level domain",
        );
    }
    Ok(())
}

impl fmt::Debug for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hosts {
            Hosts::Any => f.write_str("TokenScope(any host)"),
            Hosts::Listed { allow, except } => {
                let mut s = f.debug_struct("TokenScope");
                s.field("hosts", allow);
                if !except.is_empty() {
                    s.field("except", except);
                }
                s.finish()
            }
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Name(name) => f.write_str(name),
            Pattern::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Pattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Pattern::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    fn allows(scope: &TokenScope, uri: &str) -> bool {
        scope.allows(&uri.parse().unwrap())
    }

    #[test]
    fn production_covers_simacan_services_but_not_staging() {
        let scope = TokenScope::for_environment(&Environment::Production);
        for uri in [
            "https://trips.services.simacan.com/api/v2/trips",
            "https://auth-service.services.simacan.com/api/v1",
            "https://TRIPS.Services.Simacan.COM:8443/",
            "https://trips.services.simacan.com./",
            "https://a.b.services.simacan.com/",
            "https://stg.services.simacan.com/",
        ] {
            assert!(allows(&scope, uri), "{uri}");
        }
        for uri in [
            "https://trips-stg.services.simacan.com/",
            "https://TRIPS-STG.services.simacan.com/",
            "https://a.trips-stg.services.simacan.com/",
            "https://services.simacan.com/",
            "https://simacan.com/",
            "https://evilservices.simacan.com/",
            "https://trips.services.simacan.com.evil.test/",
            "https://trips.services.simacan.com@evil.test/",
            "https://example.com/",
            "http://trips.services.simacan.com/",
            "http://127.0.0.1:8080/",
        ] {
            assert!(!allows(&scope, uri), "{uri}");
        }
    }

    #[test]
    fn staging_covers_only_stg_services() {
        let scope = TokenScope::for_environment(&Environment::Staging);
        assert!(allows(&scope, "https://trips-stg.services.simacan.com/"));
        assert!(allows(
            &scope,
            "https://auth-service-stg.services.simacan.com/"
        ));
        assert!(!allows(&scope, "https://trips.services.simacan.com/"));
        assert!(!allows(&scope, "https://-stg.services.simacan.com/"));
        assert!(!allows(&scope, "https://x.-stg.services.simacan.com/"));
        assert!(!allows(&scope, "http://trips-stg.services.simacan.com/"));
    }

    #[test]
    fn custom_covers_any_host_over_a_private_channel() {
        let env = Environment::custom("https://auth.example.com/api/v1").unwrap();
        let scope = TokenScope::for_environment(&env);
        assert_eq!(scope, TokenScope::any_host());
        for uri in [
            "https://example.com/",
            "http://localhost:3000/",
            "http://127.0.0.1:9/",
            "http://127.8.9.10/",
            "http://[::1]:9/",
        ] {
            assert!(allows(&scope, uri), "{uri}");
        }
        for uri in [
            // A trailing dot makes a name the connector asks DNS for.
            "http://LOCALHOST./",
            "http://localhost.:8080/",
            "http://127.0.0.1./",
            "http://example.com/",
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "http://[::ffff:127.0.0.1]/",
            "ws://localhost/",
            "ftp://example.com/",
            "example.com:443",
        ] {
            assert!(!allows(&scope, uri), "{uri}");
        }
    }

    #[test]
    fn a_uri_without_authority_always_gets_the_token() {
        let scope = TokenScope::hosts(["api.example.com"]).unwrap();
        assert!(allows(&scope, "/grpc.health.v1.Health/Check"));
        assert!(allows(&scope, "*"));
        assert!(allows(
            &TokenScope::for_environment(&Environment::Production),
            "/trips?x=1"
        ));
    }

    #[test]
    fn has_either_finds_a_byte_anywhere() {
        for len in 0..40 {
            let mut bytes = vec![b'x'; len];
            assert!(!has_either(&bytes, b'@', b':'), "{len}");
            for at in 0..len {
                for byte in [b'@', b':'] {
                    bytes[at] = byte;
                    assert!(has_either(&bytes, b'@', b':'), "{len} {at}");
                    bytes[at] = b'x';
                }
                // Neighbours of the bytes looked for are not them.
                bytes[at] = b'?';
                assert!(!has_either(&bytes, b'@', b':'), "{len} {at}");
                bytes[at] = b'A';
                assert!(!has_either(&bytes, b'@', b':'), "{len} {at}");
                bytes[at] = b'x';
            }
        }
    }

    #[test]
    fn words_are_made_lowercase_as_bytes_are() {
        for byte in 0..=u8::MAX {
            for at in 0..8 {
                let mut bytes = *b"aZ@[`{.9";
                bytes[at] = byte;
                let lowered = to_ascii_lowercase(u64::from_ne_bytes(bytes)).to_ne_bytes();
                assert_eq!(
                    lowered.to_vec(),
                    bytes.to_ascii_lowercase(),
                    "{byte:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn equal_names_are_told_a_word_at_a_time_in_any_case() {
        let pattern = b".services.simacan.com";
        for len in 0..pattern.len() {
            let pattern = &pattern[pattern.len() - len..];
            assert!(equals_lowercase(pattern, pattern), "{len}");
            assert!(equals_lowercase(&pattern.to_ascii_uppercase(), pattern));
            for at in 0..len {
                for other in [
                    b'x',
                    b'@',
                    b'.' ^ 0x20,
                    pattern[at] ^ 0x20,
                    pattern[at] ^ 0x80,
                ] {
                    let mut host = pattern.to_vec();
                    host[at] = other;
                    let expected = host.eq_ignore_ascii_case(pattern);
                    assert_eq!(
                        equals_lowercase(&host, pattern),
                        expected,
                        "{len} {at} {other:#x}"
                    );
                }
            }
            if len > 0 {
                assert!(!equals_lowercase(&pattern[1..], pattern), "{len}");
            }
        }
    }

    #[test]
    fn an_authority_is_matched_as_its_host_is() {
        let scopes = [
            TokenScope::for_environment(&Environment::Production),
            TokenScope::for_environment(&Environment::Staging),
            TokenScope::hosts(["services.simacan.com", "a.services.simacan.com", "x"]).unwrap(),
            TokenScope::hosts(["10.0.0.5", "*.simacan.com", "a", "*.x.com"]).unwrap(),
        ];
        let users = ["", "u@", "u:p@", "@", "a.b@", ":@", "a@b@"];
        let names = ["", "a", "A", "a.", ".", "a-stg", "x:y", "[::1]", "10.0.0.5"];
        let suffixes = [
            "",
            "services.simacan.com",
            ".services.simacan.com",
            ".SERVICES.Simacan.com",
            "-stg.services.simacan.com",
            ".simacan.com",
            "x",
            ".x.com",
        ];
        let mut checked = 0;
        for user in users {
            for name in names {
                for suffix in suffixes {
                    for end in ["", ".", ":443", ".:1", ":"] {
                        let Ok(uri) = format!("https://{user}{name}{suffix}{end}/").parse::<Uri>()
                        else {
                            continue;
                        };
                        let authority = uri.authority().unwrap().as_str();
                        for scope in &scopes {
                            let host = Host::of(authority);
                            let expected = scope.hosts.contain_host(host);
                            assert_eq!(
                                scope.hosts.contain(authority),
                                expected,
                                "{authority} {scope:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 4000, "{checked}");
    }

    #[test]
    fn the_host_is_found_as_the_uri_finds_it() {
        for authority in [
            "api.example.com",
            "api.example.com:8443",
            "user@api.example.com",
            "user:pw@api.example.com:1",
            "a@b@api.example.com",
            "[::1]",
            "[::1]:8080",
            "user@[2001:db8::1]:443",
            "127.0.0.1:80",
            "api.example.com.:1",
        ] {
            let uri: Uri = format!("https://{authority}/").parse().unwrap();
            let parsed = uri.authority().unwrap();
            let host = parsed.host();
            let host = host.strip_suffix('.').unwrap_or(host);
            assert_eq!(Host::of(parsed.as_str()).name(), host, "{authority}");
        }
    }

    #[test]
    fn exact_names_match_in_any_case_on_any_port() {
        let scope = TokenScope::hosts(["Planner.Example.com.", "intranet"]).unwrap();
        for uri in [
            "https://planner.example.com/",
            "https://PLANNER.EXAMPLE.COM:444/",
            "https://planner.example.com./",
            "https://intranet/",
        ] {
            assert!(allows(&scope, uri), "{uri}");
        }
        for uri in [
            "https://a.planner.example.com/",
            "https://planner.example.co/",
            "https://planner.example.com.evil/",
            "https://xplanner.example.com/",
        ] {
            assert!(!allows(&scope, uri), "{uri}");
        }
    }

    #[test]
    fn wildcards_match_every_name_below_their_suffix() {
        let scope = TokenScope::hosts(["*.Example.com"]).unwrap();
        assert!(allows(&scope, "https://a.example.com/"));
        assert!(allows(&scope, "https://a.b.EXAMPLE.com:1/"));
        assert!(!allows(&scope, "https://example.com/"));
        assert!(!allows(&scope, "https://.example.com/"));
        assert!(!allows(&scope, "https://aexample.com/"));
        assert!(!allows(&scope, "https://a.example.com.evil/"));
    }

    #[test]
    fn ip_addresses_match_as_addresses() {
        let scope = TokenScope::hosts(["10.0.0.5", "::1", "[2001:db8::7]"]).unwrap();
        for uri in [
            "https://10.0.0.5/",
            "https://10.0.0.5:8443/",
            "https://[::ffff:10.0.0.5]/",
            "http://[0:0:0:0:0:0:0:1]:80/",
            "https://[2001:DB8:0::7]/",
        ] {
            assert!(allows(&scope, uri), "{uri}");
        }
        for uri in [
            "https://10.0.0.50/",
            "https://10.0.0.5.example.com/",
            "http://10.0.0.5/",
            "https://[2001:db8::8]/",
        ] {
            assert!(!allows(&scope, uri), "{uri}");
        }
    }

    #[test]
    fn what_is_not_a_host_or_covers_too_much_is_refused() {
        for bad in [
            "",
            ".",
            "*",
            "*.",
            "*.com",
            "*.com.",
            "*.*.x.com",
            "*x.com",
            "a*.x.com",
            "x.*.com",
            "**.x.com",
            "*.0.1",
            "*.10.0.0",
            "300.1.1.1",
            "https://api.example.com",
            "api.example.com/",
            "api.example.com:443",
            "[::1]:443",
            "user@api.example.com",
            "api example.com",
            " api.example.com",
            "api.example.com\n",
            "api..example.com",
            ".example.com",
            "bücher.example",
            "a.b\u{0}c",
            "-stg.x.com",
            "foo-.example.com",
            "*.-stg.x.com",
            "api.example-",
        ] {
            let error = TokenScope::hosts([bad]).unwrap_err();
            assert!(
                error.kind() == ErrorKind::Configuration,
                "{bad:?}: {error:?}"
            );
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(TokenScope::hosts([long_label]).is_err());
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        assert!(TokenScope::hosts([long_name]).is_err());
    }

    #[test]
    fn errors_name_the_pattern_and_why() {
        let error = TokenScope::hosts(["api.example.com", "*.com"]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("\"*.com\""), "{text}");
        assert!(text.contains("at least two labels"), "{text}");
        assert_eq!(text, text.to_lowercase());
        let empty = TokenScope::hosts(Vec::<&str>::new())
            .unwrap_err()
            .to_string();
        assert!(empty.contains("lists no hosts"), "{empty}");
    }

    #[test]
    fn debug_shows_the_patterns_as_written_normalised() {
        let scope = TokenScope::hosts([
            "*.Services.Simacan.com",
            "API.example.com.",
            "::1",
            "10.0.0.5",
        ])
        .unwrap();
        assert_eq!(
            format!("{scope:?}"),
            "TokenScope { hosts: [*.services.simacan.com, api.example.com, [::1], 10.0.0.5] }"
        );
        assert_eq!(
            format!(
                "{:?}",
                TokenScope::for_environment(&Environment::Production)
            ),
            "TokenScope { hosts: [*.services.simacan.com], except: [*-stg.services.simacan.com] }"
        );
        assert_eq!(
            format!("{:?}", TokenScope::any_host()),
            "TokenScope(any host)"
        );
    }

    proptest! {
        #[test]
        fn production_and_staging_cover_disjoint_simacan_hosts(
            prefix in "[a-zA-Z0-9.\\-]{0,12}",
            suffix in prop::sample::select(vec![
                "", ".", ".services.simacan.com", ".services.simacan.com.", ".SERVICES.Simacan.com",
                "services.simacan.com", "-stg.services.simacan.com", "-STG.services.simacan.com.",
                ".services.simacan.com.evil", ".services-simacan.com", ".simacan.com",
            ]),
        ) {
            let production = TokenScope::for_environment(&Environment::Production);
            let staging = TokenScope::for_environment(&Environment::Staging);
            let host = format!("{prefix}{suffix}");
            if let Ok(uri) = format!("https://{host}/").parse::<Uri>() {
                let name = host.strip_suffix('.').unwrap_or(&host).to_ascii_lowercase();
                if production.allows(&uri) || staging.allows(&uri) {
                    prop_assert!(name.ends_with(".services.simacan.com"), "{host}");
                }
                prop_assert!(!(production.allows(&uri) && staging.allows(&uri)), "{host}");
            }
        }

        #[test]
        fn the_host_found_and_matched_is_the_one_the_uri_names(
            authority in "([a-zA-Z0-9._~%!$&'()*+,;=:-]{0,8}@)?([a-zA-Z0-9.-]{1,20}|\\[[0-9a-fA-F:.]{2,20}\\])(:[0-9]{0,5})?",
            name in "[a-z0-9-]{1,6}(\\.[a-z0-9-]{1,6}){0,2}",
        ) {
            if let Ok(uri) = format!("https://{authority}/").parse::<Uri>() {
                let parsed = uri.authority().unwrap();
                let host = parsed.host();
                let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                let found = Host::of(parsed.as_str());
                prop_assert_eq!(found.name().to_ascii_lowercase(), host.clone());
                // Matching at the end of the authority is matching the host.
                prop_assert_eq!(found.is(name.as_bytes()), host == name);
                let suffix = format!(".{name}");
                let below = host.len() > suffix.len()
                    && host.ends_with(&suffix)
                    && !host[..host.len() - suffix.len()].ends_with('.');
                prop_assert_eq!(found.is_below(suffix.as_bytes()), below);
                // The name itself as the host, with other text before it.
                let tail = format!("https://x{authority}.{name}/");
                if let Ok(uri) = tail.parse::<Uri>() {
                    let parsed = uri.authority().unwrap();
                    let host = parsed.host();
                    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                    let below = host.ends_with(&suffix) && !host[..host.len() - suffix.len()].ends_with('.') && host.len() > suffix.len();
                    prop_assert_eq!(Host::of(parsed.as_str()).is_below(suffix.as_bytes()), below, "{}", parsed);
                }
            }
        }

        #[test]
        fn parsing_and_matching_never_panic(pattern in "\\PC{0,30}", host in "\\PC{0,30}") {
            if let Ok(scope) = TokenScope::hosts([&pattern])
                && let Ok(uri) = format!("https://{host}/").parse::<Uri>()
            {
                let _ = scope.allows(&uri);
            }
        }
    }
}
