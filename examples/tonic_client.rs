//! A gRPC client through `SimacanAuthLayer` on a tonic `Channel`, healing an
//! UNAUTHENTICATED answer by refresh and replay.
//!
//! ```text
//! cargo run --example tonic_client --features tonic
//! ```
//!
//! It starts the mock Auth API and a tonic health server on loopback whose
//! interceptor accepts exactly the mock's tokens, then calls it before and
//! after the token is revoked.

use simacan_auth::{SimacanAuthLayer, mock::MockAuthApi};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Status, service::interceptor::InterceptedService, transport::Server};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower::{BoxError, ServiceBuilder};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mock = MockAuthApi::start().await?;

    // The gRPC server: rejects calls without a valid token as UNAUTHENTICATED.
    let validator = mock.validator();
    let interceptor = move |request: tonic::Request<()>| {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        match validator.check(header) {
            true => Ok(request),
            false => Err(Status::unauthenticated("token refused")),
        }
    };
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        Server::builder()
            .add_service(InterceptedService::new(health, interceptor))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    // The client: a tonic Channel wrapped in the layer, handed to a generated
    // client with its origin, so that every request names its host and the
    // token scope applies. (Plain http to loopback here; a real Simacan API
    // needs https, with tonic's `tls-ring` and `tls-webpki-roots` features
    // and `.tls_config(ClientTlsConfig::new().with_webpki_roots())?`.)
    let origin = format!("http://{addr}");
    let channel = tonic::transport::Endpoint::from_shared(origin.clone())?
        .connect()
        .await?;
    let layer = SimacanAuthLayer::new(mock.credentials()).environment(mock.environment());
    let svc = ServiceBuilder::new().layer(layer).service(channel);
    let mut client = HealthClient::with_origin(svc, origin.parse()?);

    for moment in ["with a fresh token", "after the token was revoked"] {
        let status = client
            .check(HealthCheckRequest::default())
            .await?
            .into_inner()
            .status;
        println!("health check {moment}: serving status {status}");
        mock.revoke_access_tokens();
    }
    let counts = mock.counts();
    println!(
        "auth api: {} login, {} refresh; grpc server: {} calls, {} answered UNAUTHENTICATED and replayed",
        counts.password, counts.refresh, counts.target, counts.target_unauthorized
    );
    Ok(())
}
