//! Shared helpers: a mock Auth API, a real hyper client through the layer,
//! a real Redis server (`redis`) and a tap on the store's channel
//! (`channel`), a private CA and a forward proxy (`proxy`).
#![allow(dead_code)]

#[cfg(feature = "redis")]
pub mod channel;
pub mod hosts;
pub mod proxy;
pub mod redis;
pub mod redis_topology;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use simacan_auth::{SimacanAuth, SimacanAuthLayer, mock::MockAuthApi};
use tower::{BoxError, Layer, Service, ServiceExt};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;
pub type Authed = SimacanAuth<HttpClient>;

/// Every await in a test is bounded by this, so a hang fails fast.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub async fn mock() -> MockAuthApi {
    MockAuthApi::start()
        .await
        .expect("mock binds a loopback port")
}

pub fn layer_for(mock: &MockAuthApi) -> SimacanAuthLayer {
    SimacanAuthLayer::new(mock.credentials()).environment(mock.environment())
}

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn client_through(layer: &SimacanAuthLayer) -> Authed {
    layer.layer(client())
}

pub async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("the test hung")
}

pub async fn send(
    svc: &Authed,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, BoxError> {
    bounded(svc.clone().oneshot(request)).await
}

pub async fn get(svc: &Authed, url: &str) -> Result<Response<Incoming>, BoxError> {
    send(svc, Request::get(url).body(Full::default()).unwrap()).await
}

pub async fn get_status(svc: &Authed, url: &str) -> StatusCode {
    get(svc, url).await.expect("request succeeds").status()
}

pub async fn body_of(response: Response<Incoming>) -> Bytes {
    bounded(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes()
}

/// The `simacan_auth::Error` inside a service error.
pub fn auth_error(error: &BoxError) -> &simacan_auth::Error {
    error
        .downcast_ref::<simacan_auth::Error>()
        .unwrap_or_else(|| panic!("expected a simacan_auth::Error, got {error:?}"))
}

/// An error's message followed by those of its causes, each once, as the
/// crate prints them.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    simacan_auth::error::with_causes(error).to_string()
}

/// Calls `svc` `n` times at once and returns the statuses.
pub async fn burst(svc: &Authed, url: &str, n: usize) -> Vec<StatusCode> {
    let calls = (0..n).map(|_| {
        let svc = svc.clone();
        let url = url.to_owned();
        tokio::spawn(async move { get_status(&svc, &url).await })
    });
    let mut statuses = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        statuses.push(bounded(call).await.unwrap());
    }
    statuses
}

pub fn assert_send_sync<T: Send + Sync>() {}

pub async fn ready_call<S, R>(svc: &mut S, request: R) -> Result<S::Response, S::Error>
where
    S: Service<R>,
{
    bounded(async { svc.ready().await?.call(request).await }).await
}

/// Keeps a paused clock still while it lives: with I/O in flight the runtime
/// would otherwise skip ahead to the next timer whenever it is idle, firing
/// timeouts that have not really passed. Time then moves only by
/// `tokio::time::advance`. (Tokio does not auto-advance while a blocking
/// task runs; this guard is one.)
pub struct HeldClock {
    _release: std::sync::mpsc::Sender<()>,
}

pub fn hold_clock() -> HeldClock {
    let (release, held) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    });
    HeldClock { _release: release }
}

/// `bounded` for a held clock, whose timers do not fire on their own: the
/// bound is wall-clock time.
pub async fn bounded_wall<F: std::future::Future>(future: F) -> F::Output {
    let (expired, expiry) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(PATIENCE);
        let _ = expired.send(());
    });
    tokio::select! {
        output = future => output,
        _ = expiry => panic!("the test hung"),
    }
}

/// Lets other tasks and the I/O driver run, without moving a held clock,
/// until `done` holds.
pub async fn settle_until(mut done: impl FnMut() -> bool) {
    bounded_wall(async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// Sends this thread's tracing events, at every level, to a buffer until
/// the guard drops. Test runtimes are current-thread, so the token flights
/// and hyper's connection tasks log here too.
pub fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    keep_callsites_open();
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Buffer(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

/// Installs, once per test binary, a global subscriber that records
/// nothing and calls every callsite of interest "sometimes".
///
/// Tracing caches each callsite's interest process-wide, computed by the
/// first thread to reach it from the subscribers registered then. Another
/// test's thread, without a subscriber, can reach a callsite first (or
/// rebuild the cache while this thread's capture is being registered) and
/// cache "never": the event would then be lost to [`capture_logs`] now and
/// then. With this subscriber registered, no callsite is ever "never", the
/// global level stays at `TRACE`, and each event asks the subscriber of its
/// own thread. A test binary that installs a global subscriber of its own
/// (as `layer.rs` does) cannot use [`capture_logs`] as well.
fn keep_callsites_open() {
    use tracing::{
        Event, Metadata, Subscriber,
        span::{Attributes, Id, Record},
        subscriber::Interest,
    };

    struct KeepOpen;

    impl Subscriber for KeepOpen {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            Interest::sometimes()
        }
        fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
            Some(tracing::level_filters::LevelFilter::TRACE)
        }
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // A binary that installed its own global subscriber keeps it.
        let _ = tracing::subscriber::set_global_default(KeepOpen);
    });
}
