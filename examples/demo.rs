//! The crate's main job in one run: a mock Simacan Auth API and target API
//! on loopback, and a client going through `SimacanAuthLayer`.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! It tells four short stories with the mock's call counts: a cold-start
//! burst sharing one login, an early expiry healed by one refresh, a
//! rejected refresh token falling back to the password, and a token renewed
//! ahead of expiry without a single 401.
//!
//! With `--staging` or `--production` and `SIMACAN_USERNAME` /
//! `SIMACAN_PASSWORD` set, it logs in to the real Simacan Auth API instead
//! and says whether it got a token (never printing it). Set `RUST_LOG=debug`
//! to see the layer's own events.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use simacan_auth::{
    Credentials, Environment, SimacanAuth, SimacanAuthLayer,
    mock::{Counts, MockAuthApi, Route},
};
use tower::{BoxError, Layer, ServiceExt};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()),
        )
        .init();
    match std::env::args().nth(1).as_deref() {
        Some("--staging") => real_login(Environment::Staging).await,
        Some("--production") => real_login(Environment::Production).await,
        Some(other) => {
            Err(format!("unknown argument {other}; try --staging or --production").into())
        }
        None => against_the_mock().await,
    }
}

async fn against_the_mock() -> Result<(), BoxError> {
    let mock = MockAuthApi::start().await?;
    println!("mock Simacan Auth API at {}\n", mock.base_url());
    let layer = SimacanAuthLayer::new(mock.credentials())
        .environment(mock.environment())
        .refresh_before_expiry(Duration::from_secs(1));
    let svc = layer.layer(Client::builder(TokioExecutor::new()).build_http());
    let url = mock.url("/api/trips");

    let before = mock.counts();
    let ok = burst(&svc, &url, 25).await;
    story(
        "1. cold start: 25 concurrent requests",
        ok,
        25,
        before,
        mock.counts(),
    );

    mock.revoke_access_tokens();
    let before = mock.counts();
    let ok = burst(&svc, &url, 25).await;
    story(
        "2. token expired early (revoked): 25 concurrent requests",
        ok,
        25,
        before,
        mock.counts(),
    );

    mock.set_token_lifetime(Duration::from_secs(2));
    mock.revoke_access_tokens();
    mock.expire_refresh_tokens();
    let before = mock.counts();
    let ok = burst(&svc, &url, 10).await;
    story(
        "3. refresh token rejected too: 10 concurrent requests",
        ok,
        10,
        before,
        mock.counts(),
    );

    // The token from story 3 lives 2 s; the layer renews it 1 s ahead.
    mock.set_delay(Route::Refresh, Duration::from_millis(200));
    let before = mock.counts();
    let mut ok = 0;
    for _ in 0..12 {
        ok += burst(&svc, &url, 1).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    story(
        "4. steady traffic for 3 s on a 2 s token",
        ok,
        12,
        before,
        mock.counts(),
    );

    let total = mock.counts();
    println!(
        "in total: {} logins, {} refreshes, {} target requests of which {} were 401s healed by the layer",
        total.password, total.refresh, total.target, total.target_unauthorized
    );
    Ok(())
}

/// Sends `n` concurrent GETs and returns how many were answered 200.
async fn burst(svc: &SimacanAuth<HttpClient>, url: &str, n: usize) -> usize {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let request = Request::get(url)
                .body(Full::default())
                .expect("valid request");
            tokio::spawn(svc.clone().oneshot(request))
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        if matches!(call.await, Ok(Ok(response)) if response.status() == StatusCode::OK) {
            ok += 1;
        }
    }
    ok
}

fn story(title: &str, ok: usize, sent: usize, before: Counts, after: Counts) {
    println!("{title}");
    println!("   {ok}/{sent} answered 200 OK");
    println!(
        "   auth api: {} password login(s), {} refresh(es){}",
        after.password - before.password,
        after.refresh - before.refresh,
        match after.refresh_rejected - before.refresh_rejected {
            0 => String::new(),
            n => format!(" ({n} refresh token rejected -> password fallback)"),
        }
    );
    println!(
        "   target api: {} request(s), {} of them 401 and replayed\n",
        after.target - before.target,
        after.target_unauthorized - before.target_unauthorized
    );
}

async fn real_login(environment: Environment) -> Result<(), BoxError> {
    let credentials = Credentials::from_env()?;
    println!(
        "logging in to {} as {} ...",
        environment.base_url(),
        credentials.username()
    );
    let layer = SimacanAuthLayer::new(credentials).environment(environment);
    match layer.access_token().await {
        Ok(token) => {
            println!("got an access token, valid for {:?}", token.expires_in());
            Ok(())
        }
        Err(error) => {
            println!("no token: {error}");
            Err(error.into())
        }
    }
}
