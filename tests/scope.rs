//! The token scope over real hyper clients and loopback servers under
//! made-up host names: which host receives the token, with and without
//! redirects, with tower-http's `FollowRedirect` inside and outside the
//! layer.

mod support;

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::Full;
use hyper::body::Incoming;
use simacan_auth::{
    Credentials, Environment, SimacanAuthLayer, body::ReplayBody, mock::MockAuthApi,
};
use support::{hosts::*, *};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_http::follow_redirect::{FollowRedirectLayer, policy};

/// The mock Auth API, the test certificate, and a layer scoped to
/// `*.services.simacan.test` that logs in to the mock.
struct Setup {
    mock: MockAuthApi,
    tls: Tls,
    layer: SimacanAuthLayer,
}

async fn setup() -> Setup {
    let mock = mock().await;
    let layer = layer_for(&mock).token_scope(scope());
    Setup {
        mock,
        tls: Tls::new(),
        layer,
    }
}

impl Setup {
    /// The header the layer sets, with the token it holds now.
    async fn bearer(&self) -> Vec<String> {
        let token = bounded(self.layer.access_token()).await.unwrap();
        vec![format!("Bearer {}", token.expose_secret())]
    }
}

fn empty() -> Vec<String> {
    Vec::new()
}

async fn call<S>(svc: S, request: Request<Full<Bytes>>) -> Response<Incoming>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>>,
    S::Error: std::fmt::Debug,
{
    bounded(svc.oneshot(request))
        .await
        .expect("the request succeeds")
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

#[tokio::test]
async fn a_request_outside_the_scope_passes_through_untouched() {
    let s = setup().await;
    let other = Host::https(&s.tls, OTHER, status(StatusCode::UNAUTHORIZED)).await;
    let svc = s.layer.layer(s.tls.client());
    let request = Request::get(other.url("/report"))
        .header(AUTHORIZATION, "Basic b3RoZXI6YXBp")
        .body(Full::default())
        .unwrap();
    let response = call(svc, request).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the 401 is the caller's"
    );
    assert_eq!(
        other.authorizations(),
        [vec!["Basic b3RoZXI6YXBp".to_owned()]],
        "the caller's own header, as it was"
    );
    let counts = s.mock.counts();
    assert_eq!(
        (counts.password, counts.refresh),
        (0, 0),
        "no login, and no refresh for a 401 from a host outside the scope"
    );
}

#[tokio::test]
async fn a_request_in_the_scope_gets_the_token_and_its_401_heals() {
    let s = setup().await;
    let validator = s.mock.validator();
    let api = Host::https(
        &s.tls,
        API,
        Arc::new(move |request| {
            let authorization = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
            let status = match validator.check(authorization) {
                true => StatusCode::OK,
                false => StatusCode::UNAUTHORIZED,
            };
            Response::builder()
                .status(status)
                .body(Full::default())
                .unwrap()
        }),
    )
    .await;
    let svc = s.layer.layer(s.tls.client());
    assert_eq!(
        call(svc.clone(), get(&api.url("/trips"))).await.status(),
        StatusCode::OK
    );
    let first = s.bearer().await;
    s.mock.revoke_access_tokens();
    assert_eq!(
        call(svc, get(&api.url("/trips"))).await.status(),
        StatusCode::OK
    );
    let second = s.bearer().await;
    assert_ne!(first, second);
    assert_eq!(
        api.authorizations(),
        [first.clone(), first, second],
        "the first call, the refused attempt and its replay each carried the token"
    );
    assert_eq!(s.mock.counts().refresh, 1);
}

#[tokio::test]
async fn plain_http_carries_the_token_only_to_loopback_names() {
    let mock = mock().await;
    let tls = Tls::new();
    // A custom environment: any host, so only the scheme rule decides.
    let layer = layer_for(&mock);
    let api = Host::http(API, ok()).await;
    let svc = layer.layer(tls.client());

    call(svc.clone(), get(&api.url("/trips"))).await;
    assert_eq!(
        mock.counts().password,
        0,
        "plain http to a name that is not loopback: no login"
    );
    let port = api.port();
    for loopback in [
        format!("http://localhost:{port}/trips"),
        format!("http://127.0.0.1:{port}/trips"),
    ] {
        call(svc.clone(), get(&loopback)).await;
    }
    let token = vec![format!(
        "Bearer {}",
        layer.access_token().await.unwrap().expose_secret()
    )];
    assert_eq!(api.authorizations(), [empty(), token.clone(), token]);
}

#[test]
fn the_default_scope_follows_the_environment() {
    // Read through Debug, so that no request can reach the real Auth API.
    let scope_of = |layer: SimacanAuthLayer| {
        let shown = format!("{layer:?}");
        let start = shown
            .find("token_scope: ")
            .expect("the layer shows its scope");
        let rest = &shown[start..];
        rest.strip_suffix(" }").unwrap_or(rest).to_owned()
    };
    let layer = || SimacanAuthLayer::new(Credentials::new("u", "p"));
    assert_eq!(
        scope_of(layer()),
        "token_scope: TokenScope { hosts: [*.services.simacan.com], except: [*-stg.services.simacan.com] }"
    );
    assert_eq!(
        scope_of(layer().environment(Environment::Staging)),
        "token_scope: TokenScope { hosts: [*-stg.services.simacan.com] }"
    );
    let custom = Environment::custom("https://auth.example.com/api/v1").unwrap();
    assert_eq!(
        scope_of(layer().environment(custom)),
        "token_scope: TokenScope(any host)"
    );
    let chosen = "token_scope: TokenScope { hosts: [*.services.simacan.test] }";
    assert_eq!(
        scope_of(
            layer()
                .token_scope(scope())
                .environment(Environment::Staging)
        ),
        chosen
    );
    assert_eq!(
        scope_of(
            layer()
                .environment(Environment::Staging)
                .token_scope(scope())
        ),
        chosen
    );
}

#[tokio::test]
async fn the_scope_given_to_the_layer_survives_a_later_environment() {
    let mock = mock().await;
    let before = SimacanAuthLayer::new(mock.credentials())
        .token_scope(scope())
        .environment(mock.environment());
    let after = SimacanAuthLayer::new(mock.credentials())
        .environment(mock.environment())
        .token_scope(scope());
    for layer in [before, after] {
        let status = get_status(&client_through(&layer), &mock.url("/trips")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "127.0.0.1 is outside the scope"
        );
    }
    assert_eq!(mock.counts().password, 0);
    // Without a scope of its own the layer follows the custom environment:
    // any host.
    assert_eq!(
        get_status(&client_through(&layer_for(&mock)), &mock.url("/trips")).await,
        StatusCode::OK
    );
}

/// A body that counts the replay copies the layer asks of it.
struct Counted(Arc<AtomicUsize>);

impl ReplayBody for Counted {
    type Replay = Arc<AtomicUsize>;

    fn prepare_replay(&mut self, _limit: usize) -> Option<Self::Replay> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Some(self.0.clone())
    }

    fn replay(replay: Self::Replay) -> Option<Self> {
        Some(Counted(replay))
    }
}

#[tokio::test]
async fn no_replay_copy_is_made_outside_the_scope() {
    let s = setup().await;
    let inner = service_fn(|_: Request<Counted>| async { Ok::<_, Infallible>(Response::new(())) });
    let svc = s.layer.layer(inner);
    let copies = Arc::new(AtomicUsize::new(0));
    let send = |url: &str| {
        let mut request = Request::new(Counted(copies.clone()));
        *request.uri_mut() = url.parse().unwrap();
        bounded(svc.clone().oneshot(request))
    };
    send("https://other.example.test/upload").await.unwrap();
    assert_eq!(copies.load(Ordering::SeqCst), 0);
    send("https://api.services.simacan.test/upload")
        .await
        .unwrap();
    assert_eq!(copies.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_uri_without_authority_gets_the_token_whatever_the_scope() {
    // As from a tonic client wrapped outside its channel: the inner service
    // picks the host.
    let s = setup().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let seen = seen.clone();
        service_fn(move |request: Request<Full<Bytes>>| {
            seen.lock()
                .unwrap()
                .push(request.headers().get(AUTHORIZATION).cloned());
            async { Ok::<_, Infallible>(Response::new(())) }
        })
    };
    let svc = s.layer.layer(inner);
    bounded(svc.oneshot(get("/grpc.health.v1.Health/Check")))
        .await
        .unwrap();
    let token = s.bearer().await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].as_ref().map(|v| v.to_str().unwrap()),
        Some(&*token[0])
    );
}

/// Where the layer sits relative to tower-http's `FollowRedirect`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Placement {
    /// `FollowRedirect<SimacanAuth<_>>`: the layer sees every hop.
    Inside,
    /// `SimacanAuth<FollowRedirect<_>>`: the layer sees the first request;
    /// the redirect policy decides what later hops carry.
    Outside,
}

const PLACEMENTS: [Placement; 2] = [Placement::Inside, Placement::Outside];

/// Sends `request` through the layer and `FollowRedirect` with its default
/// policy, placed as `placement`.
async fn follow(
    placement: Placement,
    layer: &SimacanAuthLayer,
    client: HttpsClient,
    request: Request<Full<Bytes>>,
) -> Response<Incoming> {
    match placement {
        Placement::Inside => {
            let svc = ServiceBuilder::new()
                .layer(FollowRedirectLayer::new())
                .layer(layer.clone())
                .service(client);
            call(svc, request).await
        }
        Placement::Outside => {
            let svc = ServiceBuilder::new()
                .layer(layer.clone())
                .layer(FollowRedirectLayer::new())
                .service(client);
            call(svc, request).await
        }
    }
}

/// One redirect from `API` to `target`, followed: what the origin and the
/// target received, and the token.
struct Hop {
    origin: Vec<Seen>,
    target: Vec<Seen>,
    bearer: Vec<String>,
}

async fn redirect_once(
    placement: Placement,
    code: StatusCode,
    target: impl AsyncFnOnce(&Tls) -> Host,
) -> Hop {
    let s = setup().await;
    let target = target(&s.tls).await;
    let origin = Host::https(&s.tls, API, redirect(code, target.url("/landing"))).await;
    let request = Request::post(origin.url("/moved"))
        .body(Full::default())
        .unwrap();
    let response = follow(placement, &s.layer, s.tls.client(), request).await;
    assert_eq!(response.status(), StatusCode::OK, "{placement:?}");
    Hop {
        origin: origin.seen(),
        target: target.seen(),
        bearer: s.bearer().await,
    }
}

impl Hop {
    /// The origin got the token, the target one request without it.
    fn assert_the_token_stayed_at_the_origin(&self, placement: Placement, method: Method) {
        assert_eq!(self.origin.len(), 1, "{placement:?}");
        assert_eq!(self.origin[0].authorization, self.bearer, "{placement:?}");
        assert_eq!(self.target.len(), 1, "{placement:?}");
        assert_eq!(self.target[0].method, method, "{placement:?}");
        assert_eq!(self.target[0].path, "/landing", "{placement:?}");
        assert_eq!(self.target[0].authorization, empty(), "{placement:?}");
    }
}

#[tokio::test]
async fn a_cross_host_302_never_carries_the_token() {
    for placement in PLACEMENTS {
        let hop = redirect_once(placement, StatusCode::FOUND, async |tls: &Tls| {
            Host::https(tls, OTHER, ok()).await
        })
        .await;
        // A 302 turns the POST into a GET.
        hop.assert_the_token_stayed_at_the_origin(placement, Method::GET);
    }
}

#[tokio::test]
async fn a_cross_host_307_never_carries_the_token() {
    for placement in PLACEMENTS {
        let hop = redirect_once(
            placement,
            StatusCode::TEMPORARY_REDIRECT,
            async |tls: &Tls| Host::https(tls, OTHER, ok()).await,
        )
        .await;
        hop.assert_the_token_stayed_at_the_origin(placement, Method::POST);
    }
}

#[tokio::test]
async fn an_https_to_http_downgrade_never_carries_the_token() {
    // The same name, in the scope, but over plain http to a name that is
    // not loopback.
    for placement in PLACEMENTS {
        let hop = redirect_once(placement, StatusCode::FOUND, async |_: &Tls| {
            Host::http(API, ok()).await
        })
        .await;
        hop.assert_the_token_stayed_at_the_origin(placement, Method::GET);
    }
}

#[tokio::test]
async fn a_port_change_gets_the_token_only_from_a_layer_that_sees_the_hop() {
    for placement in PLACEMENTS {
        let hop = redirect_once(
            placement,
            StatusCode::TEMPORARY_REDIRECT,
            async |tls: &Tls| Host::https(tls, API, ok()).await,
        )
        .await;
        match placement {
            // The layer sees the hop: the host is in the scope, which names
            // hosts on any port, and the scheme is https.
            Placement::Inside => {
                assert_eq!(hop.origin[0].authorization, hop.bearer);
                assert_eq!(hop.target.len(), 1);
                assert_eq!(hop.target[0].authorization, hop.bearer);
            }
            // The default policy treats another port as another origin and
            // drops the header the layer set on the first request.
            Placement::Outside => {
                hop.assert_the_token_stayed_at_the_origin(placement, Method::POST)
            }
        }
    }
}

#[tokio::test]
async fn inside_follow_redirect_the_scope_holds_even_when_the_policy_keeps_credentials() {
    // `Limited` alone follows redirects without filtering any header: the
    // layer's own decision per hop is all that keeps the token in.
    let s = setup().await;
    let other = Host::https(&s.tls, OTHER, ok()).await;
    let origin = Host::https(
        &s.tls,
        API,
        redirect(StatusCode::TEMPORARY_REDIRECT, other.url("/landing")),
    )
    .await;
    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::with_policy(policy::Limited::default()))
        .layer(s.layer.clone())
        .service(s.tls.client());
    let response = call(svc, get(&origin.url("/moved"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(origin.authorizations(), [s.bearer().await]);
    assert_eq!(other.authorizations(), [empty()]);
}

/// With a custom environment and no scope of its own, the layer's scope is
/// any host: inside `FollowRedirect` it hands the token to whatever https
/// host a redirect names, as the token scope guide warns. A scope keeps it in.
#[tokio::test]
async fn inside_follow_redirect_only_a_scope_keeps_the_token_from_other_hosts() {
    let mock = mock().await;
    let tls = Tls::new();
    let other = Host::https(&tls, OTHER, ok()).await;
    let origin = Host::https(
        &tls,
        API,
        redirect(StatusCode::FOUND, other.url("/landing")),
    )
    .await;
    for (layer, scoped) in [
        (layer_for(&mock), false),
        (layer_for(&mock).token_scope(scope()), true),
    ] {
        let svc = ServiceBuilder::new()
            .layer(FollowRedirectLayer::new())
            .layer(layer)
            .service(tls.client());
        let response = call(svc, get(&origin.url("/download"))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let received = other.authorizations().pop().unwrap();
        assert_eq!(received.is_empty(), scoped, "scoped: {scoped}");
    }
}

#[tokio::test]
async fn inside_follow_redirect_a_401_from_a_host_outside_the_scope_is_the_callers() {
    let s = setup().await;
    let other = Host::https(&s.tls, OTHER, status(StatusCode::UNAUTHORIZED)).await;
    let origin = Host::https(&s.tls, API, redirect(StatusCode::FOUND, other.url("/x"))).await;
    let response = follow(
        Placement::Inside,
        &s.layer,
        s.tls.client(),
        get(&origin.url("/moved")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(other.authorizations(), [empty()], "one request, no replay");
    assert_eq!(s.mock.counts().refresh, 0);
}

#[tokio::test]
async fn inside_follow_redirect_a_401_on_a_later_hop_in_the_scope_heals() {
    let s = setup().await;
    let validator = s.mock.validator();
    let files = Host::https(
        &s.tls,
        FILES,
        Arc::new(move |request| {
            let authorization = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
            let status = match validator.check(authorization) {
                true => StatusCode::OK,
                false => StatusCode::UNAUTHORIZED,
            };
            Response::builder()
                .status(status)
                .body(Full::default())
                .unwrap()
        }),
    )
    .await;
    let origin = Host::https(
        &s.tls,
        API,
        redirect(StatusCode::TEMPORARY_REDIRECT, files.url("/blob")),
    )
    .await;
    let first = s.bearer().await;
    s.mock.revoke_access_tokens();
    let response = follow(
        Placement::Inside,
        &s.layer,
        s.tls.client(),
        get(&origin.url("/moved")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = s.bearer().await;
    assert_eq!(origin.authorizations(), std::slice::from_ref(&first));
    assert_eq!(
        files.authorizations(),
        [first, second],
        "the hop to another host in the scope carried the token, was refused, and was replayed"
    );
    assert_eq!(s.mock.counts().refresh, 1);
}
