//! A plain hyper-util client through `SimacanAuthLayer`, streaming a large
//! body that is interrupted by an early token expiry and replayed whole.
//!
//! ```text
//! cargo run --example hyper_client
//! ```
//!
//! The mock target API here reads the whole upload before checking the token,
//! and the token is revoked halfway through: the layer refreshes once and
//! replays the upload from its lazy copy, byte for byte.

use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use simacan_auth::{SimacanAuthLayer, mock::MockAuthApi};
use tower::{BoxError, ServiceBuilder, ServiceExt};

const CHUNKS: usize = 64;
const CHUNK_SIZE: usize = 8 * 1024;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mock = MockAuthApi::start().await?;
    mock.set_target_reads_body_first(true);
    let client = Client::builder(TokioExecutor::new()).build_http::<BoxBody<Bytes, BoxError>>();
    let svc = ServiceBuilder::new()
        .layer(SimacanAuthLayer::new(mock.credentials()).environment(mock.environment()))
        .service(client);

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    let request = Request::post(mock.url("/api/v1/uploads")).body(body)?;
    let started = Instant::now();
    let upload = tokio::spawn(svc.oneshot(request));

    let mut sent = Vec::with_capacity(CHUNKS * CHUNK_SIZE);
    for i in 0..CHUNKS {
        if i == CHUNKS / 2 {
            mock.revoke_access_tokens();
            println!("token revoked after {} KiB", sent.len() / 1024);
        }
        let chunk: Vec<u8> = (0..CHUNK_SIZE).map(|j| (i * 7 + j) as u8).collect();
        sent.extend_from_slice(&chunk);
        tx.send(Ok(Frame::data(Bytes::from(chunk)))).await?;
    }
    drop(tx);

    let response = upload.await??;
    let status = response.status();
    let echoed = response.into_body().collect().await?.to_bytes();
    let counts = mock.counts();
    println!(
        "uploaded {} KiB in {:?}: {status}",
        sent.len() / 1024,
        started.elapsed()
    );
    println!(
        "target saw {} attempts ({} answered 401); auth api: {} login, {} refresh",
        counts.target, counts.target_unauthorized, counts.password, counts.refresh
    );
    println!("replayed byte for byte: {}", echoed == sent);
    Ok(())
}
