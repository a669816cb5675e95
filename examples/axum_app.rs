//! An axum service whose handler streams uploads on to a (mock) Simacan API
//! through `SimacanAuthLayer`: `axum::body::Body` goes through unchanged,
//! and an early token expiry is healed by replaying the streamed body.
//!
//! ```text
//! cargo run --example axum_app --features axum
//! ```
//!
//! The example starts the mock Auth API, the axum app on loopback, and then
//! plays a client that uploads to the app twice, with the token revoked in
//! between.

use axum::{Router, body::Body, extract::State, http::StatusCode, routing::post};
use http_body_util::BodyExt;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use simacan_auth::{SimacanAuth, SimacanAuthLayer, mock::MockAuthApi};
use tower::{BoxError, Layer, ServiceExt};

type Simacan = SimacanAuth<Client<HttpConnector, Body>>;

#[derive(Clone)]
struct App {
    simacan: Simacan,
    upstream: String,
}

/// Streams the incoming body straight on to the Simacan API.
async fn push(State(app): State<App>, body: Body) -> (StatusCode, String) {
    let request = http::Request::post(&app.upstream)
        .body(body)
        .expect("valid request");
    match app.simacan.oneshot(request).await {
        Ok(response) => {
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            (
                status,
                format!("simacan answered {status} after reading {bytes} bytes"),
            )
        }
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!("simacan unreachable: {error}"),
        ),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mock = MockAuthApi::start().await?;
    let layer = SimacanAuthLayer::new(mock.credentials()).environment(mock.environment());
    let app = App {
        simacan: layer.layer(Client::builder(TokioExecutor::new()).build_http()),
        upstream: mock.url("/api/v1/trips/import"),
    };
    let router = Router::new().route("/push", post(push)).with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_url = format!("http://{}/push", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<String>();
    let payload = "{\"trip\":\"AMS-RTM\"}\n".repeat(4096);
    for attempt in ["first upload", "after an early token expiry"] {
        let response = client
            .request(http::Request::post(&app_url).body(payload.clone())?)
            .await?;
        let text = response.into_body().collect().await?.to_bytes();
        println!("{attempt}: {}", String::from_utf8_lossy(&text));
        mock.revoke_access_tokens();
    }
    let counts = mock.counts();
    println!(
        "auth api: {} login, {} refresh; target: {} requests, {} answered 401 and replayed",
        counts.password, counts.refresh, counts.target, counts.target_unauthorized
    );
    Ok(())
}
