//! Time to heal, against the mock Simacan Auth API in the same process: a
//! cold-start burst (N concurrent first requests share one login) and a
//! refresh storm (N concurrent 401s share one refresh and are replayed),
//! each against the same burst with a warm token as the baseline.
//!
//! ```text
//! cargo bench --bench heal
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use common::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use simacan_auth::{SimacanAuth, SimacanAuthLayer, mock::MockAuthApi};
use tower::{Layer, Service, ServiceExt};

/// A target that answers 401 to one revoked token and 200 to any other.
#[derive(Clone, Default)]
struct Revoking {
    revoked: Arc<Mutex<Option<HeaderValue>>>,
}

impl<B> Service<Request<B>> for Revoking {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let revoked = self.revoked.lock().unwrap();
        let status = match (request.headers().get(AUTHORIZATION), revoked.as_ref()) {
            (Some(sent), Some(revoked)) if sent == revoked => StatusCode::UNAUTHORIZED,
            _ => StatusCode::OK,
        };
        ready(Ok(Response::builder().status(status).body(()).unwrap()))
    }
}

/// Sends `n` requests at once and waits for all; panics unless all are 200.
async fn burst(svc: &SimacanAuth<Revoking>, n: usize) -> Duration {
    let started = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|_| tokio::spawn(svc.clone().oneshot(realistic_request())))
        .collect();
    for call in calls {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    started.elapsed()
}

fn layer(mock: &MockAuthApi) -> SimacanAuthLayer {
    SimacanAuthLayer::new(mock.credentials()).environment(mock.environment())
}

fn heal(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockAuthApi::start()).unwrap();
    let mut group = c.benchmark_group("heal");
    for n in [16, 64] {
        let warm = layer(&mock).layer(Revoking::default());
        runtime
            .block_on(warm.get_ref().clone().oneshot(realistic_request()))
            .unwrap();
        group.bench_with_input(BenchmarkId::new("warm_burst", n), &n, |b, &n| {
            b.to_async(&runtime).iter_custom(|iters| {
                let warm = warm.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += burst(&warm, n).await;
                    }
                    total
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("cold_start_burst", n), &n, |b, &n| {
            b.to_async(&runtime).iter_custom(|iters| {
                let mock = &mock;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let before = mock.counts().password;
                        let cold = layer(mock).layer(Revoking::default());
                        total += burst(&cold, n).await;
                        assert_eq!(mock.counts().password, before + 1, "one login per burst");
                    }
                    total
                }
            })
        });
        let stormy_layer = layer(&mock);
        let stormy = stormy_layer.layer(Revoking::default());
        group.bench_with_input(BenchmarkId::new("refresh_storm", n), &n, |b, &n| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (mock, stormy, stormy_layer) = (&mock, stormy.clone(), &stormy_layer);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let token = stormy_layer.access_token().await.unwrap();
                        *stormy.get_ref().revoked.lock().unwrap() =
                            Some(token.header_value().clone());
                        let before = mock.counts().refresh;
                        total += burst(&stormy, n).await;
                        assert_eq!(mock.counts().refresh, before + 1, "one refresh per storm");
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = heal
}
criterion_main!(benches);
