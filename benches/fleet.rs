//! A fleet of replicas with and without a shared token store, against the
//! mock Auth API over loopback:
//!
//! 1. **Auth API calls per token lifetime** for N = 1, 4 and 16 replicas
//!    under steady traffic for several short lifetimes: without a shared
//!    store every replica keeps its own refresh chain (N refreshes per
//!    lifetime); with one, the fleet keeps one (1 per lifetime whatever N).
//!    Printed as a table; counts, not timings.
//! 2. **Time to heal a 401 storm** across the fleet (every replica's
//!    token revoked at once, a burst from each), through a shared memory
//!    store and through Redis, as a ratio to the same burst healed by a
//!    single process. Measured with criterion, and again with the storms
//!    taken in turns (one process, memory, Redis, and again), whose medians
//!    a machine busy with other work skews less, and the median CPU time a
//!    storm took (this process's, all threads, and `redis-server`'s; Unix,
//!    the server's on Linux only). The whole fleet runs in this one
//!    process, so on a small machine a storm is bound by CPU, and the
//!    ratio of the CPU times is about the floor of the ratio of the medians.
//!
//! ```text
//! cargo bench --bench fleet
//! ```
//!
//! Redis rows need `redis-server` (Debian's package); without it they are
//! skipped with a note.

#[path = "../tests/support/redis.rs"]
#[allow(dead_code)]
mod redis;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use redis::RedisServer;
use simacan_auth::{
    SimacanAuth, SimacanAuthLayer,
    mock::MockAuthApi,
    store::{FileStore, MemoryStore, RedisStore, TokenStore},
};
use tower::{Layer, ServiceExt};

type Replica = SimacanAuth<Client<HttpConnector, Empty<Bytes>>>;

/// Where the replicas of a fleet keep their tokens.
#[derive(Clone, Copy, Debug)]
enum Sharing {
    /// Each replica its own memory: separate processes without a store.
    Nothing,
    File,
    Redis,
}

fn replicas(
    mock: &MockAuthApi,
    n: usize,
    store: Option<Arc<dyn Fn() -> Box<dyn StoreFactory> + Send + Sync>>,
    configure: impl Fn(SimacanAuthLayer) -> SimacanAuthLayer,
) -> Vec<Replica> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    (0..n)
        .map(|_| {
            let layer = configure(
                SimacanAuthLayer::new(mock.credentials()).environment(mock.environment()),
            );
            let layer = match &store {
                Some(make) => make().attach(layer),
                None => layer,
            };
            layer.layer(client.clone())
        })
        .collect()
}

/// Makes a store of one kind and gives it to a layer (`token_store` takes
/// the store by value, so each kind is attached through its own type).
trait StoreFactory {
    fn attach(self: Box<Self>, layer: SimacanAuthLayer) -> SimacanAuthLayer;
}

impl<S: TokenStore> StoreFactory for S {
    fn attach(self: Box<Self>, layer: SimacanAuthLayer) -> SimacanAuthLayer {
        layer.token_store(*self)
    }
}

fn factory<S: TokenStore + Clone>(
    store: S,
) -> Arc<dyn Fn() -> Box<dyn StoreFactory> + Send + Sync> {
    Arc::new(move || Box::new(store.clone()) as Box<dyn StoreFactory>)
}

async fn get(replica: &Replica, url: &str) -> StatusCode {
    let request = Request::get(url).body(Empty::new()).unwrap();
    let response = replica.clone().oneshot(request).await.expect("request");
    response.status()
}

/// Sends `each` requests at once from every replica; all must be 200.
async fn storm(fleet: &[Replica], url: &str, each: usize) {
    let calls: Vec<_> = fleet
        .iter()
        .flat_map(|replica| (0..each).map(move |_| replica.clone()))
        .map(|replica| {
            let url = url.to_owned();
            tokio::spawn(async move { get(&replica, &url).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
}

const LIFETIME: Duration = Duration::from_secs(2);
const LIFETIMES: u32 = 5;

/// Runs `n` replicas sharing `sharing` under steady traffic for
/// [`LIFETIMES`] token lifetimes; returns (logins, refreshes).
async fn steady(n: usize, sharing: Sharing, redis_url: Option<String>) -> Option<(usize, usize)> {
    let mock = MockAuthApi::start().await.unwrap();
    mock.set_target_recording(false);
    mock.set_token_lifetime(LIFETIME);
    let dir = tempfile::tempdir().unwrap();
    let store = match sharing {
        Sharing::Nothing => None,
        Sharing::File => Some(factory(FileStore::new(dir.path()))),
        Sharing::Redis => Some(factory(RedisStore::open(redis_url?).unwrap())),
    };
    let fleet = replicas(&mock, n, store, |layer| {
        layer
            .refresh_before_expiry(Duration::from_millis(200))
            .max_clock_skew(Duration::ZERO)
    });
    let url = mock.url("/trips");
    let started = Instant::now();
    while started.elapsed() < LIFETIME * LIFETIMES {
        for replica in &fleet {
            assert_eq!(get(replica, &url).await, StatusCode::OK);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = mock.counts();
    assert_eq!(counts.refresh_rejected, 0, "a refresh token was sent twice");
    Some((counts.password, counts.refresh))
}

fn calls_per_lifetime(runtime: &tokio::runtime::Runtime, redis: Option<&RedisServer>) {
    println!(
        "\nauth api calls per token lifetime ({} s tokens, {LIFETIMES} lifetimes, a request per replica every 100 ms)\n",
        LIFETIME.as_secs()
    );
    println!("| replicas | store | password logins | refreshes | refreshes per lifetime |");
    println!("|---:|---|---:|---:|---:|");
    let runs: Vec<_> = [1usize, 4, 16]
        .into_iter()
        .flat_map(|n| [Sharing::Nothing, Sharing::File, Sharing::Redis].map(move |s| (n, s)))
        .map(|(n, sharing)| {
            let url = redis.map(RedisServer::url);
            (n, sharing, runtime.spawn(steady(n, sharing, url)))
        })
        .collect();
    for (n, sharing, run) in runs {
        let store = match sharing {
            Sharing::Nothing => "none (one per replica)",
            Sharing::File => "file",
            Sharing::Redis => "redis",
        };
        match runtime.block_on(run).unwrap() {
            Some((logins, refreshes)) => println!(
                "| {n} | {store} | {logins} | {refreshes} | {:.2} |",
                refreshes as f64 / f64::from(LIFETIMES)
            ),
            None => println!("| {n} | {store} | skipped: no redis-server | | |"),
        }
    }
    println!();
}

const REPLICAS: usize = 8;
const EACH: usize = 4;

/// One process with the whole burst, and fleets of [`REPLICAS`] sharing a
/// memory store and (with a server) Redis, each sending [`EACH`].
fn heal_fleets(
    mock: &MockAuthApi,
    redis: Option<&RedisServer>,
) -> Vec<(&'static str, Vec<Replica>, usize)> {
    let mut fleets = vec![
        (
            "single_process",
            replicas(mock, 1, None, |l| l),
            REPLICAS * EACH,
        ),
        (
            "memory_store",
            replicas(mock, REPLICAS, Some(factory(MemoryStore::new())), |l| l),
            EACH,
        ),
    ];
    if let Some(server) = redis {
        let store = RedisStore::open(server.url()).unwrap();
        fleets.push((
            "redis_store",
            replicas(mock, REPLICAS, Some(factory(store)), |l| l),
            EACH,
        ));
    } else {
        eprintln!("fleet_heal/redis_store skipped: no redis-server");
    }
    fleets
}

/// The mock for the storms, recording no target request: its record (on
/// by default, for tests to inspect) would grow by some hundreds of
/// kilobytes a storm up to its bound, and the growing heap would cost the
/// storms page faults that are the mock's, not the fleet's.
fn quiet_mock(runtime: &tokio::runtime::Runtime) -> MockAuthApi {
    let mock = runtime.block_on(MockAuthApi::start()).unwrap();
    mock.set_target_recording(false);
    mock
}

/// Heals one storm on `fleet`: the time from a revocation to every request
/// answered, with exactly one refresh.
async fn heal_once(mock: &MockAuthApi, fleet: &[Replica], url: &str, each: usize) -> Duration {
    let refreshes = mock.counts().refresh;
    mock.revoke_access_tokens();
    let started = Instant::now();
    storm(fleet, url, each).await;
    let took = started.elapsed();
    assert_eq!(
        mock.counts().refresh,
        refreshes + 1,
        "one refresh per storm"
    );
    took
}

/// The time from a revocation to every request of a burst healed.
fn heal_storm(c: &mut Criterion, runtime: &tokio::runtime::Runtime, redis: Option<&RedisServer>) {
    let mut group = c.benchmark_group("fleet_heal");
    group.sample_size(30);
    let mock = quiet_mock(runtime);
    let url = mock.url("/trips");
    let fleets = heal_fleets(&mock, redis);
    for (name, fleet, each) in &fleets {
        runtime.block_on(storm(fleet, &url, 1));
        let id = BenchmarkId::new(*name, REPLICAS * EACH);
        group.bench_with_input(id, each, |b, &each| {
            b.to_async(runtime).iter_custom(|iters| {
                let mock = &mock;
                let url = url.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += heal_once(mock, fleet, &url, each).await;
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

/// The same storms taken in turns (one process, the memory store, Redis,
/// again and again), so that a machine whose load changes during the run
/// weighs on each alike: the medians and their ratios to one process.
fn heal_in_turns(runtime: &tokio::runtime::Runtime, redis: Option<&RedisServer>) {
    const ROUNDS: usize = 300;
    let mock = quiet_mock(runtime);
    let url = mock.url("/trips");
    let fleets = heal_fleets(&mock, redis);
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); fleets.len()];
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); fleets.len()];
    let clock = CpuClock {
        server: redis.and_then(RedisServer::pid),
    };
    runtime.block_on(async {
        for (_, fleet, _) in &fleets {
            storm(fleet, &url, 1).await;
        }
        for round in 0..ROUNDS + 20 {
            for (((_, fleet, each), times), cpu) in fleets.iter().zip(&mut times).zip(&mut cpu) {
                let before = clock.start();
                let took = heal_once(&mock, fleet, &url, *each).await;
                let used = clock.since(before);
                // The first rounds warm connections and the allocator.
                if round >= 20 {
                    times.push(took);
                    cpu.push(used);
                }
            }
        }
    });
    let median = |times: &mut Vec<Duration>| {
        times.sort_unstable();
        times[times.len() / 2]
    };
    let medians: Vec<Duration> = times.iter_mut().map(median).collect();
    println!(
        "\n401 storm healed, {} requests, taken in turns ({ROUNDS} storms each)\n",
        REPLICAS * EACH
    );
    println!("| where | median | ratio to one process | median CPU per storm | CPU ratio |");
    println!("|---|---:|---:|---:|---:|");
    let per_storm: Vec<Duration> = cpu.iter_mut().map(median).collect();
    for (((name, _, _), median), cpu) in fleets.iter().zip(&medians).zip(&per_storm) {
        println!(
            "| {name} | {median:.2?} | {:.2} | {cpu:.2?} | {:.2} |",
            median.as_secs_f64() / medians[0].as_secs_f64(),
            cpu.as_secs_f64() / per_storm[0].as_secs_f64().max(f64::MIN_POSITIVE)
        );
    }
    println!();
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let redis = RedisServer::start();
    calls_per_lifetime(&runtime, redis.as_ref());
    let mut criterion = Criterion::default().configure_from_args();
    heal_storm(&mut criterion, &runtime, redis.as_ref());
    criterion.final_summary();
    heal_in_turns(&runtime, redis.as_ref());
}

/// CPU time used so far by this process and by the process `server`.
/// The server's is read from `/proc/<pid>/task/*/schedstat` (zero where
/// there is no `/proc`), before this process's clock on the way in and
/// after it on the way out, so that the reading is not counted.
struct CpuClock {
    server: Option<u32>,
}

impl CpuClock {
    fn start(&self) -> (Duration, Duration) {
        let server = self.server_time();
        (own_time(), server)
    }

    fn since(&self, (own, server): (Duration, Duration)) -> Duration {
        let own_used = own_time().saturating_sub(own);
        own_used + self.server_time().saturating_sub(server)
    }

    fn server_time(&self) -> Duration {
        let Some(pid) = self.server else {
            return Duration::ZERO;
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Duration::ZERO;
        };
        let nanos = tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(nanos)
    }
}

/// This process's CPU time, all threads (zero off Unix).
fn own_time() -> Duration {
    #[cfg(unix)]
    {
        let time = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let nanos = u32::try_from(time.tv_nsec).unwrap_or(0);
        Duration::new(u64::try_from(time.tv_sec).unwrap_or(0), nanos)
    }
    #[cfg(not(unix))]
    Duration::ZERO
}
