//! How the layer reaches the Auth API: through an HTTP `CONNECT` proxy, with
//! a private CA's certificate, or through a client of the user's own. All
//! real parts over loopback: the mock Auth API, a TLS terminator in front of
//! it with a certificate from an rcgen CA, and a small forward proxy.
//!
//! Every layer here says how to reach the Auth API explicitly, so that proxy
//! variables in the environment running the tests change nothing; the
//! environment variables themselves are tested in `auth_proxy_env.rs`.

mod support;

use std::{
    convert::Infallible,
    error::Error as _,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use simacan_auth::ErrorKind;
use simacan_auth::{AuthProxy, AuthRoots, Endpoint, SimacanAuthLayer};
use support::{
    proxy::{BehindTls, ConnectProxy, PrivateCa},
    *,
};
use tower::service_fn;

/// A name only the test proxy resolves (to loopback).
const AUTH_HOST: &str = "auth.simacan.test";

/// The mock Auth API behind TLS, with a certificate for [`AUTH_HOST`] and
/// 127.0.0.1 signed by a private CA.
async fn behind_tls() -> BehindTls {
    BehindTls::start(&[AUTH_HOST, "127.0.0.1"]).await
}

/// The proxy at `url`, which must be usable.
fn via(url: impl AsRef<str>) -> AuthProxy {
    AuthProxy::new(url).expect("a usable proxy url")
}

// --- Proxies -------------------------------------------------------------

#[tokio::test]
async fn logs_in_and_refreshes_through_a_connect_proxy() {
    let api = behind_tls().await;
    let proxy = ConnectProxy::start().await;
    // Only the proxy resolves AUTH_HOST: a direct connection cannot succeed.
    let layer = api.layer(AUTH_HOST).auth_proxy(via(proxy.url()));
    bounded(layer.access_token()).await.expect("a token");
    layer.invalidate();
    bounded(layer.access_token())
        .await
        .expect("a refreshed token");

    let counts = api.mock.counts();
    assert_eq!((counts.password, counts.refresh), (1, 1));
    let tunnels = proxy.tunnels();
    assert!(!tunnels.is_empty());
    let target = api.authority(AUTH_HOST);
    assert!(tunnels.iter().all(|t| *t == target), "{tunnels:?}");
}

#[tokio::test]
async fn the_proxy_sees_neither_the_password_nor_a_token() {
    let api = behind_tls().await;
    let proxy = ConnectProxy::start().await;
    let layer = api.layer(AUTH_HOST).auth_proxy(via(proxy.url()));
    let token = bounded(layer.access_token()).await.expect("a token");
    layer.invalidate();
    bounded(layer.access_token())
        .await
        .expect("a refreshed token");

    let sent = proxy.sent();
    assert!(!sent.is_empty(), "the calls went through the proxy");
    let sent = String::from_utf8_lossy(&sent);
    for clear in [
        "auth/password",
        "auth/refresh",
        "grant",
        simacan_auth::mock::USERNAME,
    ] {
        assert!(!sent.contains(clear), "{clear} crossed the proxy in clear");
    }
    assert!(!sent.contains(token.expose_secret()));
}

#[tokio::test]
async fn proxy_credentials_are_sent_and_never_shown() {
    // ann:s3cr@t, as the proxy expects it.
    const AUTHORIZATION: &str = "Basic YW5uOnMzY3JAdA==";
    let api = behind_tls().await;
    let proxy = ConnectProxy::with_authorization(AUTHORIZATION).await;
    let (logs, _guard) = capture_logs();
    let host_port = format!("127.0.0.1:{}", proxy.port());

    let wrong = api
        .layer(AUTH_HOST)
        .auth_proxy(via(format!("http://ann:wr0ng-pw@{host_port}")));
    let error = bounded(wrong.access_token()).await.unwrap_err();
    assert!(
        (error.kind() == ErrorKind::AuthApiUnavailable
            && error.endpoint() == Some(Endpoint::Password)),
        "{error:?}"
    );
    let causes = with_causes(&error);
    assert!(
        causes.ends_with(&format!(
            ": client error (Connect): through the proxy at http://{host_port}: \
             tunnel error: proxy authorization required"
        )),
        "{causes}"
    );
    assert_eq!(proxy.refused(), 1);

    let right = api
        .layer(AUTH_HOST)
        .auth_proxy(via(format!("http://ann:s3cr%40t@{host_port}")));
    bounded(right.access_token()).await.expect("a token");
    assert_eq!(proxy.tunnels().len(), 1);
    assert_eq!(api.mock.counts().password, 1);

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logs.contains("could not obtain a token"), "{logs}");
    let shown = format!("{wrong:?} {right:?} {error} {error:?} {causes} {logs}");
    assert!(
        shown.contains(&format!("url: \"http://{host_port}\"")),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");
    // The passwords, percent-encoded or not, and the Basic credentials
    // (every encoding of `ann:` starts so).
    for secret in ["wr0ng", "s3cr", "YW5uOn", simacan_auth::mock::PASSWORD] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

#[tokio::test]
async fn plain_http_to_loopback_never_goes_through_the_proxy() {
    let mock = mock().await;
    let proxy = ConnectProxy::start().await;
    let layer = layer_for(&mock).auth_proxy(via(proxy.url()));
    bounded(layer.access_token()).await.expect("a token");
    assert_eq!(mock.counts().password, 1);
    assert!(proxy.tunnels().is_empty());
    assert!(proxy.sent().is_empty());
}

#[tokio::test]
async fn an_unreachable_proxy_is_named_in_the_error() {
    let api = behind_tls().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let layer = api
        .layer(AUTH_HOST)
        .auth_proxy(via(format!("127.0.0.1:{port}")));
    let error = bounded(layer.access_token()).await.unwrap_err();
    assert!(error.kind() == ErrorKind::AuthApiUnavailable, "{error:?}");
    assert!(
        error.to_string().contains(&api.password_url(AUTH_HOST)),
        "{error}"
    );
    let causes = with_causes(&error);
    assert!(
        causes.contains(&format!("through the proxy at http://127.0.0.1:{port}")),
        "{causes}"
    );
}

#[test]
fn unusable_proxy_urls_are_refused_at_once_without_quoting_them() {
    for (url, why) in [
        (
            "https://ann:s3cret@proxy:3128",
            "https:// proxies are not supported",
        ),
        (
            "socks5://ann:s3cret@proxy:1080",
            "socks proxies are not supported",
        ),
        ("http://ann:s3 cret@proxy:3128", "not a url"),
        ("", "not a url"),
    ] {
        let error = AuthProxy::new(url).unwrap_err();
        assert!(error.kind() == ErrorKind::Configuration, "{error:?}");
        let text = error.to_string();
        assert!(text.contains(why), "{url}: {text}");
        assert!(!text.contains("s3"), "{text}");
    }
}

// --- A private CA -----------------------------------------------------------

#[tokio::test]
async fn a_private_ca_is_trusted_only_once_given() {
    let api = behind_tls().await;
    let untrusting = SimacanAuthLayer::new(api.mock.credentials())
        .environment(api.environment("127.0.0.1"))
        .no_auth_proxy();
    let error = bounded(untrusting.access_token()).await.unwrap_err();
    assert!(
        (error.kind() == ErrorKind::AuthApiUnavailable
            && error.endpoint() == Some(Endpoint::Password)),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with(&format!(
            "simacan auth api unreachable at {}: its certificate does not chain to a \
             trusted root; for a private ca, trust it with auth_roots",
            api.password_url("127.0.0.1")
        )),
        "{error}"
    );
    let causes = with_causes(&error);
    assert!(causes.contains("UnknownIssuer"), "{causes}");

    let other_ca = SimacanAuthLayer::new(api.mock.credentials())
        .environment(api.environment("127.0.0.1"))
        .no_auth_proxy()
        .auth_roots(PrivateCa::new().roots());
    let error = bounded(other_ca.access_token()).await.unwrap_err();
    assert!(with_causes(&error).contains("UnknownIssuer"), "{error}");
    assert_eq!(api.mock.counts().password, 0);

    let trusting = api.layer("127.0.0.1").no_auth_proxy();
    bounded(trusting.access_token()).await.expect("a token");
    assert_eq!(api.mock.counts().password, 1);
}

#[tokio::test]
async fn several_certificates_in_one_pem_and_several_pems_add_up() {
    let api = behind_tls().await;
    let bundle = format!("{}{}", PrivateCa::new().pem(), api.ca.pem());
    let roots = AuthRoots::webpki()
        .with_pem(bundle)
        .unwrap()
        .with_pem(PrivateCa::new().pem())
        .unwrap();
    let layer = SimacanAuthLayer::new(api.mock.credentials())
        .environment(api.environment("127.0.0.1"))
        .no_auth_proxy()
        .auth_roots(roots);
    bounded(layer.access_token()).await.expect("a token");
}

#[tokio::test]
async fn the_last_roots_given_apply() {
    let api = behind_tls().await;
    let base = || {
        SimacanAuthLayer::new(api.mock.credentials())
            .environment(api.environment("127.0.0.1"))
            .no_auth_proxy()
    };
    let replaced = base()
        .auth_roots(api.ca.roots())
        .auth_roots(PrivateCa::new().roots());
    let error = bounded(replaced.access_token()).await.unwrap_err();
    assert!(with_causes(&error).contains("UnknownIssuer"), "{error}");
    assert_eq!(api.mock.counts().password, 0);

    let last = base()
        .auth_roots(PrivateCa::new().roots())
        .auth_roots(api.ca.roots());
    bounded(last.access_token()).await.expect("a token");
}

#[test]
fn pem_without_a_usable_certificate_is_refused_at_once() {
    let key_only = rcgen::KeyPair::generate().unwrap().serialize_pem();
    for (pem, why) in [
        ("".to_owned(), "no PEM `CERTIFICATE` section"),
        ("not pem at all".to_owned(), "no PEM `CERTIFICATE` section"),
        (key_only, "no PEM `CERTIFICATE` section"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned(),
            "root certificate 1: not usable as a root",
        ),
    ] {
        let error = AuthRoots::webpki().with_pem(pem).unwrap_err();
        assert!(error.kind() == ErrorKind::Configuration, "{error:?}");
        assert!(error.to_string().contains(why), "{error}");
    }
}

// --- A client of your own ---------------------------------------------------

/// One request as a client of the user's own saw it.
#[derive(Debug, PartialEq)]
struct Call {
    method: http::Method,
    path: String,
    content_type: Option<String>,
}

#[tokio::test]
async fn a_client_of_your_own_carries_every_auth_api_call() {
    let mock = mock().await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let counting = {
        let (calls, hyper) = (calls.clone(), client());
        service_fn(move |request: Request<Full<Bytes>>| {
            calls.lock().unwrap().push(Call {
                method: request.method().clone(),
                path: request.uri().path().to_owned(),
                content_type: request
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned()),
            });
            hyper.request(request)
        })
    };
    let layer = layer_for(&mock).auth_client(counting);
    let svc = client_through(&layer);
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);
    mock.revoke_access_tokens();
    assert_eq!(get_status(&svc, &mock.url("/trips")).await, StatusCode::OK);

    let counts = mock.counts();
    assert_eq!((counts.password, counts.refresh), (1, 1));
    let form = Some("application/x-www-form-urlencoded".to_owned());
    assert_eq!(
        *calls.lock().unwrap(),
        [
            Call {
                method: http::Method::POST,
                path: "/api/v1/auth/password".into(),
                content_type: form.clone(),
            },
            Call {
                method: http::Method::POST,
                path: "/api/v1/auth/refresh".into(),
                content_type: form,
            },
        ]
    );
}

#[tokio::test]
async fn an_error_of_your_client_is_unreachable_with_the_url_and_its_cause() {
    let mock = mock().await;
    let failing = service_fn(|_: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>(io::Error::other("the vpn is down"))
    });
    let layer = layer_for(&mock).auth_client(failing);
    let error = bounded(layer.access_token()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthApiUnavailable, "{error:?}");
    assert_eq!(error.endpoint(), Some(Endpoint::Password));
    let url = format!("{}/auth/password", mock.base_url());
    assert_eq!(error.url(), Some(url.as_str()));
    assert_eq!(
        error.source().map(ToString::to_string).as_deref(),
        Some("the vpn is down")
    );
    assert_eq!(mock.counts().password, 0);
}

#[tokio::test]
async fn your_client_gets_no_redirect_followed_and_its_answers_are_capped() {
    let mock = mock().await;
    let answer = |status: u16, body: Vec<u8>| {
        service_fn(move |_: Request<Full<Bytes>>| {
            let response = Response::builder()
                .status(status)
                .header(header::LOCATION, "https://elsewhere.example/steal")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            async move { Ok::<_, Infallible>(response) }
        })
    };

    let redirected = layer_for(&mock).auth_client(answer(307, Vec::new()));
    let error = bounded(redirected.access_token()).await.unwrap_err();
    assert!(
        error.status().map(|s| s.as_u16()) == Some(307)
            && error.kind() == ErrorKind::UnexpectedResponse,
        "{error:?}"
    );

    let huge = layer_for(&mock).auth_client(answer(200, vec![b' '; 64 * 1024 + 1]));
    let error = bounded(huge.access_token()).await.unwrap_err();
    assert!(
        error.kind() == ErrorKind::UnexpectedResponse
            && error.to_string().ends_with("is larger than 65536 bytes"),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_auth_timeout_covers_your_client() {
    let mock = mock().await;
    let hanging = service_fn(|_: Request<Full<Bytes>>| {
        std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
    });
    let layer = layer_for(&mock)
        .auth_timeout(Duration::from_secs(3))
        .auth_client(hanging);
    let error = bounded(layer.access_token()).await.unwrap_err();
    assert!(
        error.is_timeout() && error.to_string().ends_with("within 3s"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_client_of_your_own_wins_over_the_proxy_and_roots_in_either_order() {
    let api = behind_tls().await;
    let proxy = ConnectProxy::start().await;
    let (logs, _guard) = capture_logs();
    let calls = Arc::new(AtomicUsize::new(0));
    // Straight to the mock over plain HTTP, whatever URL it is asked for.
    let own = {
        let (calls, hyper, mock) = (calls.clone(), client(), api.mock.addr());
        service_fn(move |mut request: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::Relaxed);
            let path = request.uri().path().to_owned();
            *request.uri_mut() = format!("http://{mock}{path}").parse().unwrap();
            hyper.request(request)
        })
    };

    // `api.layer` gives the layer roots; a proxy before or after the client.
    let before = api
        .layer(AUTH_HOST)
        .auth_proxy(via(proxy.url()))
        .auth_client(own.clone());
    let after = api
        .layer(AUTH_HOST)
        .auth_client(own.clone())
        .auth_proxy(via(proxy.url()));
    let direct_after = api
        .layer(AUTH_HOST)
        .auth_client(own.clone())
        .no_auth_proxy();
    for layer in [before, after, direct_after] {
        bounded(layer.access_token()).await.expect("a token");
    }
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert!(proxy.tunnels().is_empty());

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let warnings: Vec<&str> = logs.lines().filter(|line| line.contains("WARN")).collect();
    assert_eq!(warnings.len(), 3, "{logs}");
    for warning in warnings {
        assert!(
            warning.contains(
                "the auth api proxy and roots given to the layer are ignored: \
                 they configure the built-in client, which auth_client replaces"
            ) && warning.contains("proxy=true roots=true"),
            "{warning}"
        );
    }

    // Nothing to ignore, nothing to warn about.
    let (logs, _guard) = capture_logs();
    let plain = layer_for(&api.mock).auth_client(own);
    bounded(plain.access_token()).await.expect("a token");
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!logs.contains("WARN"), "{logs}");
}

#[tokio::test]
async fn the_last_of_auth_proxy_and_no_auth_proxy_applies() {
    let api = behind_tls().await;
    let proxy = ConnectProxy::start().await;
    let direct = api
        .layer("127.0.0.1")
        .auth_proxy(via(proxy.url()))
        .no_auth_proxy();
    bounded(direct.access_token()).await.expect("a token");
    assert!(proxy.tunnels().is_empty());

    let proxied = api
        .layer("127.0.0.1")
        .no_auth_proxy()
        .auth_proxy(via(proxy.url()));
    bounded(proxied.access_token()).await.expect("a token");
    assert_eq!(proxy.tunnels(), [api.authority("127.0.0.1")]);
}

#[test]
fn the_layer_shows_how_it_reaches_the_auth_api() {
    let layer = SimacanAuthLayer::new(simacan_auth::Credentials::new("u", "p"));
    assert!(
        format!("{layer:?}").contains(
            r#"auth_client: HyperClient { proxy: FromEnv, roots: AuthRoots { base: "webpki", added: 0 } }"#
        ),
        "{layer:?}"
    );
    let layer = layer.no_auth_proxy().auth_roots(PrivateCa::new().roots());
    assert!(
        format!("{layer:?}").contains(
            r#"auth_client: HyperClient { proxy: Direct, roots: AuthRoots { base: "webpki", added: 1 } }"#
        ),
        "{layer:?}"
    );
    let layer = layer.auth_client(client());
    assert!(
        format!("{layer:?}").contains("auth_client: Custom"),
        "{layer:?}"
    );
}
