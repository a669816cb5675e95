//! Soak: many workers POST streaming and full bodies through the layer over
//! HTTP/1.1 and HTTP/2 on loopback while the mock revokes every access token
//! every 150 ms and every fifth Auth API call is slow.
//!
//! Asserts that no request fails, every echoed body is byte-identical to the
//! one sent, there is exactly one password login, at most one refresh per
//! revocation (plus one), and no refresh token is ever sent twice. Prints
//! requests, throughput and the mock's counts.
//!
//! Ignored in the suite; `.ci/run` runs it on the suite's (debug) build, and
//! `--release` measures throughput:
//!
//! ```text
//! cargo test --all-features --locked --test soak -- --ignored --nocapture
//! ```

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use simacan_auth::SimacanAuth;
use support::{layer_for, mock};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::{BoxError, Layer, ServiceExt};

const WORKERS: usize = 20;
/// How long workers start new requests; in-flight ones then finish.
const RUN_FOR: Duration = Duration::from_secs(8);
const REVOKE_EVERY: Duration = Duration::from_millis(150);
/// Every fifth Auth API call takes this long: well below `REVOKE_EVERY`, so
/// that a replay rarely races the next revocation.
const SLOW: Duration = Duration::from_millis(40);
/// The longest any one request may take.
const REQUEST_PATIENCE: Duration = Duration::from_secs(5);

type Streamed = BoxBody<Bytes, BoxError>;

fn client<B>(http2: bool) -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(http2);
    builder.build_http()
}

/// What the workers share: the services, the clock, the tallies.
struct Soak {
    streamed: [SimacanAuth<Client<HttpConnector, Streamed>>; 2],
    full: [SimacanAuth<Client<HttpConnector, Full<Bytes>>>; 2],
    base: String,
    running: AtomicBool,
    requests: AtomicUsize,
    bytes: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// A body of 2 to 6 frames of 1 to 8 KiB, different for every request.
fn frames(rng: &mut fastrand::Rng) -> Vec<Bytes> {
    (0..rng.usize(2..=6))
        .map(|_| {
            let mut frame = vec![0u8; rng.usize(1024..=8192)];
            rng.fill(&mut frame);
            Bytes::from(frame)
        })
        .collect()
}

fn post<B>(uri: String, body: B) -> Request<B> {
    Request::post(uri)
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap()
}

/// Runs a call in a task of its own. (Holding the layer's future for a
/// boxed body inside the spawned worker trips a limit of the compiler's
/// `Send` check on higher-ranked lifetimes.)
fn spawned<F>(call: F) -> impl std::future::Future<Output = Result<Response<Incoming>, BoxError>>
where
    F: std::future::Future<Output = Result<Response<Incoming>, BoxError>> + Send + 'static,
{
    let task = tokio::spawn(call);
    async move { task.await? }
}

/// An error and its sources, on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks the echo of a body sent through the layer.
async fn echo_of(
    call: impl std::future::Future<Output = Result<Response<Incoming>, BoxError>>,
    sent: &Bytes,
) -> Result<(), String> {
    let response = call.await.map_err(|e| format!("error: {}", chain(&*e)))?;
    let status = response.status();
    let echoed = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("echo unreadable: {e}"))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(format!("status {status}"));
    }
    if echoed != *sent {
        return Err(format!(
            "echo differs: sent {} bytes, got {}",
            sent.len(),
            echoed.len()
        ));
    }
    Ok(())
}

async fn worker(soak: Arc<Soak>, id: usize) {
    let mut rng = fastrand::Rng::with_seed(id as u64);
    // Workers take turns: HTTP/1.1 and HTTP/2, streamed and full bodies.
    let http2 = id % 2 == 1;
    let streaming = id % 4 < 2;
    let mut seq = 0;
    while soak.running.load(Ordering::Relaxed) {
        seq += 1;
        let parts = frames(&mut rng);
        let sent: Bytes = parts
            .iter()
            .fold(BytesMut::new(), |mut all, part| {
                all.extend_from_slice(part);
                all
            })
            .freeze();
        let uri = format!("{}/soak/{id}/{seq}", soak.base);
        let exchanged = if streaming {
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(2);
            let body = StreamBody::new(ReceiverStream::new(rx)).boxed();
            let feed = async move {
                for part in parts {
                    if tx.send(Ok(Frame::data(part))).await.is_err() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            };
            let svc = soak.streamed[usize::from(http2)].clone();
            let call = echo_of(spawned(svc.oneshot(post(uri, body))), &sent);
            tokio::time::timeout(REQUEST_PATIENCE, async { tokio::join!(call, feed).0 }).await
        } else {
            let svc = soak.full[usize::from(http2)].clone();
            let call = echo_of(
                spawned(svc.oneshot(post(uri, Full::new(sent.clone())))),
                &sent,
            );
            tokio::time::timeout(REQUEST_PATIENCE, call).await
        };
        let outcome = exchanged.unwrap_or_else(|_| Err("timed out".to_owned()));
        soak.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                soak.bytes.fetch_add(sent.len(), Ordering::Relaxed);
            }
            Err(why) => {
                let kind = if streaming { "streamed" } else { "full" };
                let protocol = if http2 { "h2" } else { "http/1.1" };
                soak.failures.lock().unwrap().push(format!(
                    "worker {id} request {seq} ({kind}, {protocol}): {why}"
                ));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 10 s soak; .ci/run runs it on its own"]
async fn soak_under_revocations_and_a_slow_auth_api() {
    let mock = Arc::new(mock().await);
    mock.set_auth_delays(|n| if n % 5 == 0 { SLOW } else { Duration::ZERO });
    mock.set_target_recording(false);
    let layer = layer_for(&mock);
    let soak = Arc::new(Soak {
        streamed: [layer.layer(client(false)), layer.layer(client(true))],
        full: [layer.layer(client(false)), layer.layer(client(true))],
        base: mock.url(""),
        running: AtomicBool::new(true),
        requests: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
    });

    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| tokio::spawn(worker(Arc::clone(&soak), id)))
        .collect();
    let mut revocations = 0;
    while started.elapsed() < RUN_FOR {
        tokio::time::sleep(REVOKE_EVERY).await;
        mock.revoke_access_tokens();
        revocations += 1;
    }
    soak.running.store(false, Ordering::Relaxed);
    for worker in workers {
        tokio::time::timeout(REQUEST_PATIENCE * 2, worker)
            .await
            .expect("a worker hung")
            .expect("a worker panicked");
    }
    let elapsed = started.elapsed();

    let counts = mock.counts();
    let requests = soak.requests.load(Ordering::Relaxed);
    let bytes = soak.bytes.load(Ordering::Relaxed);
    let failures = soak.failures.lock().unwrap().clone();
    let seconds = elapsed.as_secs_f64();
    println!(
        "soak: {WORKERS} workers for {elapsed:.1?}: {requests} requests, {} failed",
        failures.len()
    );
    println!(
        "soak: {:.0} requests/s, {:.1} MiB/s echoed",
        requests as f64 / seconds,
        bytes as f64 / seconds / (1024.0 * 1024.0)
    );
    println!(
        "soak: {revocations} revocations; auth api: {} password, {} refresh ({} rejected, {} reused); \
         target api: {} requests, {} answered 401",
        counts.password,
        counts.refresh,
        counts.refresh_rejected,
        counts.refresh_reused,
        counts.target,
        counts.target_unauthorized,
    );
    for failure in failures.iter().take(20) {
        println!("soak: failed: {failure}");
    }

    assert!(revocations > 0 && requests > WORKERS, "the soak ran");
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed",
        failures.len()
    );
    assert_eq!(counts.password, 1, "exactly one password login");
    assert!(
        counts.refresh <= revocations + 1,
        "{} refreshes for {revocations} revocations",
        counts.refresh
    );
    assert_eq!(counts.refresh_reused, 0, "no refresh token sent twice");
    assert_eq!(counts.refresh_rejected, 0);
}
