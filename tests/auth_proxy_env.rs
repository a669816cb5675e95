//! The proxy environment variables (`HTTPS_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`) and, with the feature `native-roots`, `SSL_CERT_FILE`.
//!
//! Environment variables are the process's: this file is a test binary of
//! its own, and its tests take turns through [`ENVIRONMENT`]. Every URL is
//! an IP address, so nothing resolves names (and reads the environment) on
//! another thread while a test changes it.

mod support;

use std::{future::Future, sync::Mutex};

use simacan_auth::ErrorKind;
use simacan_auth::{AuthProxy, SimacanAuthLayer};
use support::{
    proxy::{BehindTls, ConnectProxy},
    *,
};

static ENVIRONMENT: Mutex<()> = Mutex::new(());

const VARIABLES: [&str; 10] = [
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Runs `test` on a runtime of its own in its turn with the environment,
/// every variable of [`VARIABLES`] unset at the start.
fn in_turn<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let _turn = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    set(&[]);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(test());
}

/// Unsets every variable of [`VARIABLES`], then sets `these`.
fn set(these: &[(&str, &str)]) {
    // SAFETY: called in a test's turn (see the module's documentation), so
    // no other thread reads or writes the environment meanwhile.
    for name in VARIABLES {
        unsafe { std::env::remove_var(name) };
    }
    for (name, value) in these {
        unsafe { std::env::set_var(name, value) };
    }
}

/// The mock Auth API behind TLS at 127.0.0.1, its certificate signed by a
/// private CA.
async fn behind_tls() -> BehindTls {
    BehindTls::start(&["127.0.0.1"]).await
}

/// A layer for it, with nothing said about proxies.
fn layer(api: &BehindTls) -> SimacanAuthLayer {
    api.layer("127.0.0.1")
}

fn target(api: &BehindTls) -> String {
    api.authority("127.0.0.1")
}

#[test]
fn https_proxy_is_honoured_by_default() {
    in_turn(|| async {
        let api = behind_tls().await;
        let proxy = ConnectProxy::start().await;
        set(&[("HTTPS_PROXY", &proxy.url())]);
        bounded(layer(&api).access_token()).await.expect("a token");
        assert_eq!(proxy.tunnels(), [target(&api)]);
        assert_eq!(api.mock.counts().password, 1);
    })
}

#[test]
fn all_proxy_is_honoured_when_https_proxy_is_unset_or_empty() {
    in_turn(|| async {
        let api = behind_tls().await;
        let proxy = ConnectProxy::start().await;
        set(&[("HTTPS_PROXY", ""), ("all_proxy", &proxy.url())]);
        bounded(layer(&api).access_token()).await.expect("a token");
        assert_eq!(proxy.tunnels(), [target(&api)]);
    })
}

#[test]
fn http_proxy_does_not_apply() {
    in_turn(|| async {
        let api = behind_tls().await;
        let proxy = ConnectProxy::start().await;
        set(&[("HTTP_PROXY", &proxy.url()), ("http_proxy", &proxy.url())]);
        bounded(layer(&api).access_token()).await.expect("a token");
        assert!(proxy.tunnels().is_empty());
    })
}

#[test]
fn no_proxy_bypasses_the_proxy() {
    in_turn(|| async {
        let api = behind_tls().await;
        let proxy = ConnectProxy::start().await;
        for list in ["127.0.0.1", "example.com, 127.0.0.0/8", "*"] {
            set(&[("HTTPS_PROXY", &proxy.url()), ("no_proxy", list)]);
            bounded(layer(&api).access_token()).await.expect("a token");
            assert!(proxy.tunnels().is_empty(), "NO_PROXY={list}");
        }
        assert_eq!(api.mock.counts().password, 3);

        set(&[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "example.com")]);
        bounded(layer(&api).access_token()).await.expect("a token");
        assert_eq!(proxy.tunnels(), [target(&api)], "a list without the host");
    })
}

#[test]
fn no_auth_proxy_and_auth_proxy_ignore_the_environment() {
    in_turn(|| async {
        let api = behind_tls().await;
        let (proxy, other) = (ConnectProxy::start().await, ConnectProxy::start().await);
        set(&[("HTTPS_PROXY", &proxy.url())]);
        bounded(layer(&api).no_auth_proxy().access_token())
            .await
            .expect("a token");
        assert!(proxy.tunnels().is_empty());
        let explicit = layer(&api).auth_proxy(AuthProxy::new(other.url()).unwrap());
        bounded(explicit.access_token()).await.expect("a token");
        assert!(proxy.tunnels().is_empty());
        assert_eq!(other.tunnels(), [target(&api)]);
    })
}

#[test]
fn an_auth_proxy_from_env_reads_the_variables_when_made() {
    in_turn(|| async {
        let api = behind_tls().await;
        let proxy = ConnectProxy::start().await;
        set(&[("HTTPS_PROXY", &proxy.url())]);
        let layer = layer(&api).auth_proxy(AuthProxy::from_env().unwrap());
        set(&[]);
        let none = AuthProxy::from_env().unwrap();
        assert_eq!(
            format!("{none:?}"),
            "Direct",
            "no variable: a direct connection"
        );
        bounded(layer.access_token()).await.expect("a token");
        assert_eq!(proxy.tunnels(), [target(&api)]);
    })
}

#[test]
fn an_unusable_variable_is_refused_naming_it_but_never_quoting_it() {
    in_turn(|| async {
        let api = behind_tls().await;
        set(&[("HTTPS_PROXY", "socks5://ann:s3cret@127.0.0.1:1080")]);
        let expected = "invalid configuration: HTTPS_PROXY: socks proxies are not supported; \
                    use an http:// proxy";

        let early = AuthProxy::from_env().unwrap_err();
        assert!(early.kind() == ErrorKind::Configuration, "{early:?}");
        assert_eq!(early.to_string(), expected);

        // By default the variables are read with the token state: every login
        // fails with the same error, and nothing is sent.
        let layer = layer(&api);
        let late = bounded(layer.access_token()).await.unwrap_err();
        assert!(late.kind() == ErrorKind::Configuration, "{late:?}");
        assert_eq!(late.to_string(), expected);
        assert!(!format!("{late:?} {layer:?}").contains("s3cret"));
        assert_eq!(api.mock.counts().password, 0);
    })
}

#[cfg(feature = "native-roots")]
#[test]
fn native_roots_come_from_ssl_cert_file() {
    use simacan_auth::AuthRoots;

    in_turn(|| async {
        let api = behind_tls().await;
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("roots.pem");
        std::fs::write(&bundle, api.ca.pem()).unwrap();
        let base = || {
            SimacanAuthLayer::new(api.mock.credentials())
                .environment(api.environment("127.0.0.1"))
                .no_auth_proxy()
        };

        set(&[("SSL_CERT_FILE", bundle.to_str().unwrap())]);
        let webpki = bounded(base().access_token()).await.unwrap_err();
        assert!(with_causes(&webpki).contains("UnknownIssuer"), "{webpki}");
        let native = base().auth_roots(AuthRoots::native().unwrap());
        bounded(native.access_token()).await.expect("a token");
        assert_eq!(api.mock.counts().password, 1);

        let missing = dir.path().join("missing.pem");
        // SAFETY: in this test's turn, as `set`.
        unsafe { std::env::set_var("SSL_CERT_FILE", &missing) };
        let error = AuthRoots::native().unwrap_err();
        assert!(error.kind() == ErrorKind::Configuration, "{error:?}");
        assert!(
            error
                .to_string()
                .contains("no usable certificate in the platform's certificate store"),
            "{error}"
        );
    })
}
