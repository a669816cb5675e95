//! A reqwest client through `SimacanAuthMiddleware`, behind `reqwest-retry`,
//! sharing one token with a tower (hyper) client, against the crate's mock
//! Simacan Auth API on loopback.
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest
//! ```
//!
//! The reqwest client is set up as the `reqwest` module advises: reqwest
//! without default features, with `rustls-no-provider`, given the crate's
//! ring configuration (`simacan_auth::reqwest::tls_config`), so the program
//! has one crypto provider and the client never panics looking for one. It
//! then shows, with the mock's call counts: a cold-start burst sharing one
//! login, a 503 retried, an early expiry healed by one refresh, a streamed
//! upload whose 401 goes to the caller while the token is still refreshed,
//! and a hyper client through the same layer needing no login of its own.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
use simacan_auth::{
    SimacanAuthLayer, SimacanAuthMiddleware,
    mock::{MockAuthApi, Route},
    reqwest::tls_config,
};
use tower::{BoxError, Layer, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mock = MockAuthApi::start().await?;
    println!("mock Simacan Auth API at {}\n", mock.base_url());
    let layer = SimacanAuthLayer::new(mock.credentials()).environment(mock.environment());

    let reqwest_client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        // The mock is plain http on loopback: no proxy, so it may get the token.
        .no_proxy()
        .build()?;
    // Retry outside, authentication inside: every attempt gets the current
    // token, and a 401 is healed within the attempt.
    let policy = ExponentialBackoff::builder().build_with_max_retries(3);
    let client = ClientBuilder::new(reqwest_client.clone())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true))
        .build();
    // `reqwest-retry` refuses bodies it cannot clone: streams go without it.
    let streaming = ClientBuilder::new(reqwest_client)
        .with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true))
        .build();
    let url = mock.url("/api/trips");

    println!("1. cold start: 20 concurrent requests");
    let ok = burst(&client, &url, 20).await?;
    report(&mock, ok, 20);

    println!("2. the target answers 503 once");
    mock.respond_next(
        Route::Target,
        http::Response::builder().status(503).body(String::new())?,
    );
    let status = client.get(&url).send().await?.status();
    println!("   {status} after a retry");
    report(&mock, usize::from(status == StatusCode::OK), 1);

    println!("3. token expired early (revoked): 20 concurrent requests");
    mock.revoke_access_tokens();
    let ok = burst(&client, &url, 20).await?;
    report(&mock, ok, 20);

    println!("4. token revoked again; a streamed upload cannot be replayed");
    mock.revoke_access_tokens();
    let chunks = ["trip ", "AMS-RTM"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
    let upload = reqwest::Body::wrap_stream(tokio_stream::iter(chunks));
    let status = streaming.post(&url).body(upload).send().await?.status();
    println!("   the upload got {status}: the caller decides whether to send it again");
    while layer.stats().refreshes < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let status = streaming.get(&url).send().await?.status();
    println!("   the next request: {status}, with the token refreshed after that 401");
    report(&mock, usize::from(status == StatusCode::OK), 1);

    println!("5. a hyper client through the same layer");
    let hyper = layer.layer(Client::builder(TokioExecutor::new()).build_http());
    let request = http::Request::get(&url).body(Full::<Bytes>::default())?;
    let status = hyper.oneshot(request).await?.status();
    println!("   {status}, on the token the reqwest client obtained");
    report(&mock, usize::from(status == StatusCode::OK), 1);

    let stats = layer.stats();
    println!(
        "layer stats: {} login(s), {} refresh(es), {} 401(s) healed, {} passed through",
        stats.logins, stats.refreshes, stats.unauthorized_healed, stats.unauthorized_passed_through
    );
    Ok(())
}

/// Sends `n` GETs at once; how many were answered 200.
async fn burst(client: &ClientWithMiddleware, url: &str, n: usize) -> Result<usize, BoxError> {
    let calls: Vec<_> = (0..n)
        .map(|_| tokio::spawn(client.get(url).send()))
        .collect();
    let mut ok = 0;
    for call in calls {
        ok += usize::from(call.await??.status() == StatusCode::OK);
    }
    Ok(ok)
}

/// Prints how many requests succeeded and the mock's counts so far.
fn report(mock: &MockAuthApi, ok: usize, of: usize) {
    let counts = mock.counts();
    println!("   {ok}/{of} answered 200 OK");
    println!(
        "   auth api so far: {} password login(s), {} refresh(es); target api: {} request(s), {} of them 401\n",
        counts.password, counts.refresh, counts.target, counts.target_unauthorized
    );
}
