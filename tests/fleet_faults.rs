//! A fleet of replica processes sharing one login through a real Redis, under
//! faults: Redis killed and restarted empty, the lease holder killed
//! mid-refresh (after the Auth API rotated the refresh token, before the
//! holder stored the new one), one save to the store failing, and the
//! credential's seal in Redis replaced.
//!
//! The test starts the mock Auth API and a `redis-server` on loopback, then
//! runs this test binary again as [`REPLICAS`] child processes: the test
//! [`replica_process`], which does nothing unless [`REPLICA_ENV`] is set.
//! Each replica sends GET requests through the layer in a loop and reports
//! every outcome on its stdout. The parent revokes every access token each
//! [`REVOCATION_PERIOD`], so the fleet refreshes all the time; it injects
//! the faults one after another with steady traffic in between, and
//! measures from the replicas' reports how long the fleet went without a
//! successful request, and from the mock's counters what each fault cost
//! in logins and refreshes, and whether a refresh token was ever sent
//! twice. It prints a table and a timeline of the run, then checks them
//! against the thresholds at the top of this file.
//!
//! Every replica has a lifeline (its stdin, a pipe from the parent): it
//! exits as soon as the pipe closes, so none outlives the test however it
//! ends, and the parent kills the ones it started when it is done.
//!
//! Needs `redis-server` (skipped loudly without it, except under `CI=true`,
//! where it fails). Takes about 25 s when the fleet behaves, and every
//! wait is bounded (see [`RUN_DEADLINE`]) so that it ends well within two
//! minutes whatever happens:
//!
//! ```text
//! cargo test --all-features --test fleet_faults -- --nocapture
//! ```
#![cfg(feature = "redis")]

mod support;

use std::{
    collections::BTreeMap,
    fs,
    io::{self, BufRead},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use simacan_auth::{
    Credentials, Environment, SimacanAuthLayer, Stats,
    mock::{Counts, MockAuthApi, PASSWORD, USERNAME},
    store::{
        BoxFuture, Changes, FailureNotice, Lease, RedisStore, StoreError, StoreKey, TokenRecord,
        TokenStore,
    },
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::{oneshot, watch},
    task::JoinHandle,
    time::{MissedTickBehavior, sleep, timeout},
};
use tower::{BoxError, ServiceExt};

use support::{
    Authed, bounded,
    channel::{heard, tap},
    client_through,
    redis::RedisServer,
};

// The thresholds: what the fleet must do under each fault. Tune them here.

/// Survivors of a lease holder killed mid-refresh must each succeed again
/// within this of the kill: a dead holder's lease runs out within 2.5 s,
/// and the takeover's own calls take milliseconds.
const HOLDER_KILL_RECOVERY: Duration = Duration::from_secs(3);
/// Password logins a lease holder killed mid-refresh may cost the fleet:
/// its rotation was committed and never stored, so the chain may have to
/// start again, once.
const HOLDER_KILL_MAX_LOGINS: usize = 1;
/// Every live replica must succeed again within this of Redis restarting
/// empty: the store's own retry pauses 500 ms at most.
const REDIS_RESTART_RECOVERY: Duration = Duration::from_secs(1);
/// Password logins Redis restarting empty may cost the fleet.
const REDIS_RESTART_MAX_LOGINS: usize = 1;
/// Password logins one failed save may cost the fleet: none, as the holder
/// still has the rotated refresh token.
const FAILED_SAVE_MAX_LOGINS: usize = 0;
/// Every replica must succeed again within this of the first revocation
/// after the credential's seal was replaced: the waiters read the record
/// instead of being handed it, one Redis read each.
const SEAL_REPLACED_RECOVERY: Duration = Duration::from_millis(500);
/// Refreshes allowed over the whole run beyond one per revocation, for the
/// faults.
const EXTRA_REFRESHES: usize = 2;

// The shape of the run.

/// Replica processes at the start (a replacement joins after the kill).
const REPLICAS: usize = 4;
/// Requests each replica has in flight at once.
const WORKERS_PER_REPLICA: usize = 4;
/// The pause between one worker's requests.
const REQUEST_PAUSE: Duration = Duration::from_millis(20);
/// A request not answered within this is reported as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the parent revokes every access token.
const REVOCATION_PERIOD: Duration = Duration::from_millis(1500);
/// Traffic without a fault, before the first fault and after each one.
const STEADY: Duration = Duration::from_secs(3);
/// How long Redis stays down.
const REDIS_DOWN: Duration = Duration::from_secs(2);
/// How long the fleet is given to recover from a fault before the run goes
/// on: long enough to measure a stall several times the thresholds above.
const RECOVERY_WAIT: Duration = Duration::from_secs(12);
/// Waits for recovery end by this time after the start whatever happens, so
/// that a failing run ends well within two minutes.
const RUN_DEADLINE: Duration = Duration::from_secs(75);
/// How long a cold fleet may take to have its first successes.
const WARM_UP: Duration = Duration::from_secs(15);
/// How long the parent waits for the armed replica to kill itself.
const DEATH_WAIT: Duration = Duration::from_secs(10);
/// How long a replica may take to exit once asked to stop.
const EXIT_WAIT: Duration = Duration::from_secs(10);
/// How often the parent looks at the replicas' reports while it waits.
const POLL: Duration = Duration::from_millis(20);
/// The width of one column of the printed timeline, in milliseconds.
const TIMELINE_COLUMN_MS: u64 = 500;

// The protocol between the parent and its replicas.

/// The variable that makes [`replica_process`] a replica: the replica's
/// configuration, as [`ReplicaConfig::encode`] writes it.
const REPLICA_ENV: &str = "SIMACAN_AUTH_FLEET_FAULTS_REPLICA";
/// The test a replica process runs.
const REPLICA_TEST: &str = "replica_process";
/// The line on a replica's stdin that asks it to finish and exit cleanly.
const STOP: &str = "stop";
/// A replica's exit code when its lifeline closed before it was asked to stop.
const LIFELINE_LOST: i32 = 70;

/// The replica whose Auth API client claims it dies on its next refresh.
const DIE_ON_REFRESH: &str = "die-on-refresh";
/// The replica whose store claims it fails its next save.
const FAIL_SAVE: &str = "fail-save";

/// Milliseconds since the Unix epoch: the one clock the parent and the
/// replicas (on one host) share.
fn unix_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since_epoch.as_millis()).expect("milliseconds fit in u64")
}

/// What a replica needs to know, passed in [`REPLICA_ENV`].
#[derive(Debug, Clone)]
struct ReplicaConfig {
    auth_base_url: String,
    target_url: String,
    redis_url: String,
    switch_dir: PathBuf,
}

impl ReplicaConfig {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.auth_base_url,
            self.target_url,
            self.redis_url,
            self.switch_dir.display()
        )
    }

    fn decode(spec: &str) -> ReplicaConfig {
        let [auth_base_url, target_url, redis_url, switch_dir] =
            spec.splitn(4, '|').collect::<Vec<_>>()[..]
        else {
            panic!("{REPLICA_ENV} is auth-url|target-url|redis-url|switch-dir, not {spec:?}");
        };
        ReplicaConfig {
            auth_base_url: auth_base_url.to_owned(),
            target_url: target_url.to_owned(),
            redis_url: redis_url.to_owned(),
            switch_dir: PathBuf::from(switch_dir),
        }
    }
}

/// One-shot fault switches: files the parent creates in a directory shared
/// with the replicas. A replica claims one by renaming it to a name of its
/// own, which only one replica can do.
#[derive(Debug, Clone)]
struct Switches {
    dir: PathBuf,
}

impl Switches {
    fn new(dir: &Path) -> Switches {
        Switches {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, switch: &str) -> PathBuf {
        self.dir.join(switch)
    }

    /// Whether this process claimed `switch`, armed and unclaimed until now.
    fn claim(&self, switch: &str) -> bool {
        let claimed = self
            .dir
            .join(format!("{switch}.claimed-by-{}", std::process::id()));
        fs::rename(self.path(switch), claimed).is_ok()
    }

    /// Whether `switch` is still armed: no replica has claimed it.
    fn is_armed(&self, switch: &str) -> bool {
        self.path(switch).exists()
    }
}

// ---------------------------------------------------------------------------
// The replica process.
// ---------------------------------------------------------------------------

/// Not a test: the body of a replica process started by
/// [`a_fleet_of_processes_rides_out_redis_restarts_killed_lease_holders_and_failed_saves`],
/// which sets [`REPLICA_ENV`]. Returns at once otherwise.
///
/// Reports on stdout, one line each: `ok <unix_ms>` or
/// `err <unix_ms> <reason>` for every request, `dying <unix_ms>` right
/// before it kills itself, `save-failed <unix_ms>` when it fails a save on
/// purpose, and `done …` with its counts and stats when asked to stop.
#[test]
fn replica_process() {
    let Ok(spec) = std::env::var(REPLICA_ENV) else {
        return;
    };
    let config = ReplicaConfig::decode(&spec);
    // The harness has printed `test replica_process ... ` with no newline:
    // end that line, so that the first report is a line of its own.
    println!();
    let stop = watch_lifeline();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run_replica(config, stop));
}

/// Watches stdin in a thread: [`STOP`] asks the replica to finish; the end
/// of the pipe (the parent is gone, however it ended) ends the process.
fn watch_lifeline() -> watch::Receiver<bool> {
    let (stop, stopped) = watch::channel(false);
    thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == STOP {
                let _ = stop.send(true);
            }
        }
        std::process::exit(LIFELINE_LOST);
    });
    stopped
}

async fn run_replica(config: ReplicaConfig, stop: watch::Receiver<bool>) {
    let layer = replica_layer(&config, &Switches::new(&config.switch_dir));
    let service = client_through(&layer);
    let workers: Vec<_> = (0..WORKERS_PER_REPLICA)
        .map(|_| {
            tokio::spawn(send_until_stopped(
                service.clone(),
                config.target_url.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let (mut succeeded, mut failed) = (0, 0);
    for worker in workers {
        let (ok, err) = worker.await.expect("a worker ran to its end");
        succeeded += ok;
        failed += err;
    }
    println!(
        "done ok={succeeded} err={failed} {}",
        describe_stats(&layer.stats())
    );
}

/// The layer of a replica: the mock's credentials, a Redis store with a
/// save that can fail on purpose, and an Auth API client that can die on
/// purpose.
fn replica_layer(config: &ReplicaConfig, switches: &Switches) -> SimacanAuthLayer {
    let store = FaultyStore {
        inner: RedisStore::open(&config.redis_url).expect("a valid redis url"),
        switches: switches.clone(),
    };
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let switches = switches.clone();
    let auth_client = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let dies = is_refresh(&request) && switches.claim(DIE_ON_REFRESH);
        let answer = http.request(request);
        async move {
            // The answer's head has arrived: the mock has committed the
            // rotation, and this process dies before anyone sees it.
            let response = answer.await?;
            if dies {
                die_with_the_rotation_unsaved();
            }
            Ok::<_, BoxError>(response)
        }
    });
    SimacanAuthLayer::new(Credentials::new(USERNAME, PASSWORD))
        .environment(Environment::custom(&config.auth_base_url).expect("the mock's base url"))
        .auth_client(auth_client)
        .token_store(store)
}

fn is_refresh(request: &Request<Full<Bytes>>) -> bool {
    request.method() == Method::POST && request.uri().path().ends_with("/auth/refresh")
}

/// Kills this process with SIGKILL, as a node failure would: no destructor,
/// no lease released, nothing saved.
fn die_with_the_rotation_unsaved() -> ! {
    println!("dying {}", unix_ms());
    let _ = std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    std::process::abort()
}

/// One worker: a request, its report, a pause, until the replica is asked
/// to stop. Returns how many requests succeeded and failed.
async fn send_until_stopped(
    service: Authed,
    url: String,
    stop: watch::Receiver<bool>,
) -> (u64, u64) {
    let (mut succeeded, mut failed) = (0, 0);
    while !*stop.borrow() {
        match send_one(&service, &url).await {
            Ok(()) => {
                succeeded += 1;
                println!("ok {}", unix_ms());
            }
            Err(reason) => {
                failed += 1;
                println!("err {} {reason}", unix_ms());
            }
        }
        sleep(REQUEST_PAUSE).await;
    }
    (succeeded, failed)
}

/// A GET through the layer, its body read; a short reason when it was not
/// answered 200 within [`REQUEST_TIMEOUT`].
async fn send_one(service: &Authed, url: &str) -> Result<(), String> {
    let request = Request::get(url)
        .body(Full::default())
        .expect("a valid request");
    let exchange = async {
        let response = service
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| failure_reason(&e))?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(format!("status {}", status.as_u16()))
        }
    };
    timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("timeout after {REQUEST_TIMEOUT:?}")))
}

fn failure_reason(error: &BoxError) -> String {
    match error.downcast_ref::<simacan_auth::Error>() {
        Some(error) => match error.store_error() {
            Some(store) => format!("store {:?}", store.kind()),
            None => format!("auth {}", error.kind()),
        },
        None => {
            let mut text = format!("transport: {error}");
            text.truncate(60);
            text.replace('\n', " ")
        }
    }
}

fn describe_stats(stats: &Stats) -> String {
    let failures: Vec<_> = simacan_auth::ErrorKind::ALL
        .iter()
        .filter(|kind| stats.failures(**kind) > 0)
        .map(|kind| format!("{kind}:{}", stats.failures(*kind)))
        .collect();
    format!(
        "logins={} refreshes={} fallbacks={} adopted={} 401s={} healed={} passed_through={} failures=[{}]",
        stats.logins,
        stats.refreshes,
        stats.password_fallbacks,
        stats.tokens_adopted,
        stats.unauthorized,
        stats.unauthorized_healed,
        stats.unauthorized_passed_through,
        failures.join(" "),
    )
}

/// A [`RedisStore`] whose next save of a new token (a record with a
/// refresh token: the one written after a rotation) fails, once, when this
/// replica claims the [`FAIL_SAVE`] switch.
#[derive(Debug)]
struct FaultyStore {
    inner: RedisStore,
    switches: Switches,
}

impl TokenStore for FaultyStore {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        self.inner.load(key)
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        self.inner.try_lease(key, ttl)
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.renew(lease, ttl)
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.release(lease)
    }

    fn save<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        if record.has_refresh_token() && self.switches.claim(FAIL_SAVE) {
            println!("save-failed {}", unix_ms());
            let cause = io::Error::other("the fleet test fails this save on purpose");
            return Box::pin(std::future::ready(Err(StoreError::unavailable(
                "redis (fleet test)",
                cause,
            ))));
        }
        self.inner.save(lease, record, expected)
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.remove(key)
    }

    fn save_failure<'a>(
        &'a self,
        lease: &'a Lease,
        notice: &'a FailureNotice,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.save_failure(lease, notice)
    }

    fn load_failure<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<FailureNotice>, StoreError>> {
        self.inner.load_failure(key)
    }

    fn changes(&self, key: &StoreKey) -> Option<Changes> {
        self.inner.changes(key)
    }
}

// ---------------------------------------------------------------------------
// The parent: the fleet, its timeline, the faults.
// ---------------------------------------------------------------------------

/// What a replica reported.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Report {
    Ok,
    Err(String),
    Dying,
    SaveFailed,
}

#[derive(Debug, Clone)]
struct Event {
    replica: usize,
    at_ms: u64,
    report: Report,
}

/// Every replica's reports, in the order they arrived, and the summary each
/// printed when it stopped.
#[derive(Debug, Default)]
struct Timeline {
    events: Vec<Event>,
    summaries: BTreeMap<usize, String>,
}

impl Timeline {
    fn record(&mut self, replica: usize, line: &str) {
        if let Some(summary) = line.strip_prefix("done ") {
            self.summaries.insert(replica, summary.to_owned());
            return;
        }
        let mut words = line.splitn(3, ' ');
        let (Some(tag), Some(Ok(at_ms))) = (words.next(), words.next().map(str::parse)) else {
            return; // the test harness's own lines
        };
        let report = match tag {
            "ok" => Report::Ok,
            "err" => Report::Err(words.next().unwrap_or("?").to_owned()),
            "dying" => Report::Dying,
            "save-failed" => Report::SaveFailed,
            _ => return,
        };
        self.events.push(Event {
            replica,
            at_ms,
            report,
        });
    }

    /// When `replica` first succeeded at or after `from`.
    fn first_success(&self, replica: usize, from: u64) -> Option<u64> {
        self.events
            .iter()
            .filter(|e| e.replica == replica && e.report == Report::Ok && e.at_ms >= from)
            .map(|e| e.at_ms)
            .min()
    }

    /// The first report `report` at or after `from`, and who made it.
    fn first(&self, report: &Report, from: u64) -> Option<(usize, u64)> {
        self.events
            .iter()
            .filter(|e| e.report == *report && e.at_ms >= from)
            .map(|e| (e.replica, e.at_ms))
            .min_by_key(|(_, at)| *at)
    }

    /// The successes of `replicas` in `from..=to`, in time order.
    fn successes(&self, replicas: &[usize], from: u64, to: u64) -> Vec<u64> {
        let mut times: Vec<_> = self
            .events
            .iter()
            .filter(|e| e.report == Report::Ok && replicas.contains(&e.replica))
            .map(|e| e.at_ms)
            .filter(|at| (from..=to).contains(at))
            .collect();
        times.sort_unstable();
        times
    }

    fn failures(&self, replicas: &[usize], from: u64, to: u64) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.report, Report::Err(_)) && replicas.contains(&e.replica))
            .filter(|e| (from..=to).contains(&e.at_ms))
            .count()
    }

    /// How often each failure reason was reported, most frequent first.
    fn failure_reasons(&self) -> Vec<(String, usize)> {
        let mut reasons = BTreeMap::<String, usize>::new();
        for event in &self.events {
            if let Report::Err(reason) = &event.report {
                *reasons.entry(reason.clone()).or_default() += 1;
            }
        }
        let mut reasons: Vec<_> = reasons.into_iter().collect();
        reasons.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        reasons
    }

    fn outcome_counts(&self, replica: Option<usize>) -> (usize, usize) {
        let mine = |e: &&Event| replica.is_none_or(|r| e.replica == r);
        let ok = self
            .events
            .iter()
            .filter(mine)
            .filter(|e| e.report == Report::Ok)
            .count();
        let err = self
            .events
            .iter()
            .filter(mine)
            .filter(|e| matches!(e.report, Report::Err(_)))
            .count();
        (ok, err)
    }
}

/// The longest stretch in `from..=to` without any of `successes` (sorted):
/// from `from` to the first, between two, or from the last to `to`.
fn longest_gap(successes: &[u64], from: u64, to: u64) -> u64 {
    let mut longest = 0;
    let mut last = from;
    for &at in successes {
        longest = longest.max(at - last);
        last = at;
    }
    longest.max(to.saturating_sub(last))
}

/// How a replica ended.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Exited(ExitStatus),
    /// It did not exit within [`EXIT_WAIT`] of being asked to stop, and was
    /// killed.
    Hung,
}

impl Ending {
    fn is_clean(self) -> bool {
        matches!(self, Ending::Exited(status) if status.success())
    }

    fn describe(self) -> String {
        match self {
            Ending::Exited(status) if status.success() => "exited cleanly".into(),
            Ending::Exited(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(9)) => "killed by SIGKILL".into(),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => format!("ended: {status}"),
            },
            Ending::Hung => "did not stop; killed".into(),
        }
    }
}

struct Replica {
    child: Child,
    lifeline: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
    started_ms: u64,
    ended: Option<(u64, Ending)>,
}

/// The replica processes this test started. Dropping it kills those still
/// running, so a failing test leaves none behind (and their lifelines see
/// to it if the parent itself is killed).
struct Fleet {
    program: PathBuf,
    spec: String,
    timeline: Arc<Mutex<Timeline>>,
    replicas: Vec<Replica>,
}

impl Fleet {
    fn new(config: &ReplicaConfig, timeline: Arc<Mutex<Timeline>>) -> Fleet {
        Fleet {
            program: std::env::current_exe().expect("the test binary's path"),
            spec: config.encode(),
            timeline,
            replicas: Vec::new(),
        }
    }

    /// Starts a replica; returns its number.
    fn spawn(&mut self) -> usize {
        let number = self.replicas.len();
        let mut child = Command::new(&self.program)
            .args(["--exact", REPLICA_TEST, "--nocapture", "--test-threads=1"])
            .env(REPLICA_ENV, &self.spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the test binary runs again as a replica");
        let stdout = child.stdout.take().expect("stdout is piped");
        let reader = tokio::spawn(read_reports(number, stdout, Arc::clone(&self.timeline)));
        self.replicas.push(Replica {
            lifeline: child.stdin.take(),
            child,
            reader: Some(reader),
            started_ms: unix_ms(),
            ended: None,
        });
        number
    }

    /// The replicas still running, as far as the last look went.
    fn running(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&n| self.replicas[n].ended.is_none())
            .collect()
    }

    /// The first replica to exit within `wait`, if any.
    async fn next_exit(&mut self, wait: Duration) -> Option<usize> {
        let limit = Instant::now() + wait;
        while Instant::now() < limit {
            for (number, replica) in self.replicas.iter_mut().enumerate() {
                if replica.ended.is_some() {
                    continue;
                }
                if let Ok(Some(status)) = replica.child.try_wait() {
                    replica.ended = Some((unix_ms(), Ending::Exited(status)));
                    replica.lifeline = None;
                    return Some(number);
                }
            }
            sleep(POLL).await;
        }
        None
    }

    /// Asks every running replica to stop, waits for each to exit (killing
    /// those that do not) and for their last reports.
    async fn stop_all(&mut self) {
        for replica in &mut self.replicas {
            if let (None, Some(lifeline)) = (replica.ended, replica.lifeline.as_mut()) {
                let _ = lifeline.write_all(format!("{STOP}\n").as_bytes()).await;
                let _ = lifeline.flush().await;
            }
        }
        for replica in &mut self.replicas {
            if replica.ended.is_none() {
                let ending = match timeout(EXIT_WAIT, replica.child.wait()).await {
                    Ok(Ok(status)) => Ending::Exited(status),
                    _ => {
                        let _ = replica.child.start_kill();
                        let _ = timeout(EXIT_WAIT, replica.child.wait()).await;
                        Ending::Hung
                    }
                };
                replica.ended = Some((unix_ms(), ending));
            }
            replica.lifeline = None;
            if let Some(reader) = replica.reader.take() {
                let _ = timeout(EXIT_WAIT, reader).await;
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            if replica.ended.is_none() {
                let _ = replica.child.start_kill();
            }
        }
    }
}

async fn read_reports(replica: usize, stdout: ChildStdout, timeline: Arc<Mutex<Timeline>>) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        timeline.lock().unwrap().record(replica, &line);
    }
}

/// Revokes every access token each [`REVOCATION_PERIOD`], arming a fault
/// switch right before a revocation when asked to.
#[derive(Default)]
struct Revoker {
    /// The switch to create before the next revocation, if any, and who
    /// waits for that revocation.
    armed: Mutex<Option<(Option<PathBuf>, oneshot::Sender<u64>)>>,
    times: Mutex<Vec<u64>>,
}

impl Revoker {
    fn start(mock: Arc<MockAuthApi>) -> (Arc<Revoker>, JoinHandle<()>) {
        let revoker = Arc::new(Revoker::default());
        let task = tokio::spawn(Arc::clone(&revoker).revoke_periodically(mock));
        (revoker, task)
    }

    async fn revoke_periodically(self: Arc<Self>, mock: Arc<MockAuthApi>) {
        let mut ticks = tokio::time::interval(REVOCATION_PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks.tick().await; // The first tick is at once.
        loop {
            ticks.tick().await;
            let armed = self.armed.lock().unwrap().take();
            if let Some((Some(switch), _)) = &armed {
                fs::write(switch, b"").expect("the switch file is written");
            }
            mock.revoke_access_tokens();
            let at = unix_ms();
            self.times.lock().unwrap().push(at);
            if let Some((_, revoked)) = armed {
                let _ = revoked.send(at);
            }
        }
    }

    /// Creates `switch`, if any, right before the next revocation; answers
    /// when that revocation was made.
    fn arm_before_next(&self, switch: Option<PathBuf>) -> oneshot::Receiver<u64> {
        let (revoked, revocation) = oneshot::channel();
        *self.armed.lock().unwrap() = Some((switch, revoked));
        revocation
    }

    fn count(&self) -> usize {
        self.times.lock().unwrap().len()
    }

    fn times(&self) -> Vec<u64> {
        self.times.lock().unwrap().clone()
    }
}

/// The mock's counters that matter here.
#[derive(Debug, Clone, Copy, Default)]
struct AuthCalls {
    logins: usize,
    refreshes: usize,
    reused: usize,
    rejected: usize,
}

impl AuthCalls {
    fn of(counts: Counts) -> AuthCalls {
        AuthCalls {
            logins: counts.password,
            refreshes: counts.refresh,
            reused: counts.refresh_reused,
            rejected: counts.refresh_rejected,
        }
    }

    fn since(self, before: AuthCalls) -> AuthCalls {
        AuthCalls {
            logins: self.logins - before.logins,
            refreshes: self.refreshes - before.refreshes,
            reused: self.reused - before.reused,
            rejected: self.rejected - before.rejected,
        }
    }
}

/// The Auth API calls and revocations so far, to measure a fault by.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    calls: AuthCalls,
    revocations: usize,
}

/// How the fleet (some of its replicas) did after a fault, in milliseconds
/// since the fault.
#[derive(Debug, Clone, Copy)]
struct Recovery {
    /// The longest stretch without any success among the replicas, from the
    /// fault to the end of its window.
    longest_gap_ms: u64,
    first_success_ms: Option<u64>,
    /// When the last of the replicas had succeeded again; `None` when one
    /// never did.
    every_replica_ms: Option<u64>,
    failed_requests: usize,
}

impl Recovery {
    fn measure(timeline: &Timeline, replicas: &[usize], from: u64, to: u64) -> Recovery {
        let successes = timeline.successes(replicas, from, to);
        let since = |at: u64| at - from;
        let every_replica_ms = replicas
            .iter()
            .map(|&r| timeline.first_success(r, from).filter(|at| *at <= to))
            .collect::<Option<Vec<_>>>()
            .and_then(|firsts| firsts.into_iter().max())
            .map(since);
        Recovery {
            longest_gap_ms: longest_gap(&successes, from, to),
            first_success_ms: successes.first().copied().map(since),
            every_replica_ms,
            failed_requests: timeline.failures(replicas, from, to),
        }
    }
}

/// One row of the report.
struct FaultRow {
    name: &'static str,
    recovery: Recovery,
    calls: AuthCalls,
    revocations: usize,
    notes: Vec<String>,
}

/// The run: the mock, the fleet, the revocations, and what happened when.
struct Run {
    mock: Arc<MockAuthApi>,
    fleet: Fleet,
    timeline: Arc<Mutex<Timeline>>,
    switches: Switches,
    revoker: Option<(Arc<Revoker>, JoinHandle<()>)>,
    started_ms: u64,
    deadline: Instant,
    /// Fault moments for the printed timeline.
    marks: Vec<(u64, char)>,
    /// Thresholds not met, with what was measured.
    violations: Vec<String>,
    /// The replica killed on purpose.
    killed: Option<usize>,
}

impl Run {
    fn new(mock: Arc<MockAuthApi>, config: &ReplicaConfig) -> Run {
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        Run {
            fleet: Fleet::new(config, Arc::clone(&timeline)),
            switches: Switches::new(&config.switch_dir),
            mock,
            timeline,
            revoker: None,
            started_ms: unix_ms(),
            deadline: Instant::now() + RUN_DEADLINE,
            marks: Vec::new(),
            violations: Vec::new(),
            killed: None,
        }
    }

    fn timeline(&self) -> std::sync::MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap()
    }

    fn revoker(&self) -> &Revoker {
        &self.revoker.as_ref().expect("revocations have started").0
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            calls: AuthCalls::of(self.mock.counts()),
            revocations: self.revoker.as_ref().map_or(0, |(r, _)| r.count()),
        }
    }

    fn violation(&mut self, violation: String) {
        self.violations.push(violation);
    }

    /// Waits until each of `replicas` has succeeded at or after `from`, for
    /// [`RECOVERY_WAIT`] at most and never past the run's deadline.
    async fn until_each_succeeds(&self, replicas: &[usize], from: u64) -> bool {
        let limit = (Instant::now() + RECOVERY_WAIT).min(self.deadline);
        loop {
            let recovered = {
                let timeline = self.timeline();
                replicas
                    .iter()
                    .all(|&r| timeline.first_success(r, from).is_some())
            };
            if recovered {
                return true;
            }
            if Instant::now() >= limit {
                return false;
            }
            sleep(POLL).await;
        }
    }

    /// Arms `switch`, if any, right before the next revocation; returns
    /// when that revocation was made.
    async fn revoke_with_armed(&self, switch: Option<&str>) -> u64 {
        let switch = switch.map(|switch| self.switches.path(switch));
        let revocation = self.revoker().arm_before_next(switch);
        timeout(REVOCATION_PERIOD * 2, revocation)
            .await
            .expect("the revoker revokes on time")
            .expect("the revoker runs")
    }

    fn row(
        &self,
        name: &'static str,
        before: Snapshot,
        replicas: &[usize],
        from: u64,
        notes: Vec<String>,
    ) -> FaultRow {
        let after = self.snapshot();
        FaultRow {
            name,
            recovery: Recovery::measure(&self.timeline(), replicas, from, unix_ms()),
            calls: after.calls.since(before.calls),
            revocations: after.revocations - before.revocations,
            notes,
        }
    }

    /// Starts [`REPLICAS`] replicas and waits for each to succeed once.
    async fn warm_up(&mut self) {
        for _ in 0..REPLICAS {
            self.fleet.spawn();
        }
        let replicas = self.fleet.running();
        let limit = Instant::now() + WARM_UP;
        loop {
            let warm = {
                let timeline = self.timeline();
                replicas
                    .iter()
                    .all(|&r| timeline.first_success(r, 0).is_some())
            };
            if warm {
                return;
            }
            assert!(
                Instant::now() < limit,
                "the fleet did not warm up within {WARM_UP:?}: {:?}",
                self.timeline().failure_reasons()
            );
            sleep(POLL).await;
        }
    }

    fn start_revoking(&mut self) {
        self.revoker = Some(Revoker::start(Arc::clone(&self.mock)));
    }

    /// Fault 1: Redis killed with SIGKILL and, after [`REDIS_DOWN`],
    /// restarted empty on the same port.
    async fn restart_redis_empty(&mut self, redis: &mut RedisServer) -> FaultRow {
        const NAME: &str = "Redis SIGKILLed, restarted empty";
        let before = self.snapshot();
        let live = self.fleet.running();
        self.marks.push((unix_ms(), 'R'));
        tokio::task::block_in_place(|| redis.stop());
        sleep(REDIS_DOWN).await;
        tokio::task::block_in_place(|| redis.restart());
        let restarted = unix_ms();
        self.marks.push((restarted, 'r'));
        self.until_each_succeeds(&live, restarted).await;
        sleep(STEADY).await;
        let row = self.row(NAME, before, &live, restarted, Vec::new());
        match row.recovery.every_replica_ms {
            Some(ms) if ms <= millis(REDIS_RESTART_RECOVERY) => {}
            every => self.violation(format!(
                "{NAME}: every live replica must succeed again within {REDIS_RESTART_RECOVERY:?} \
                 of the restart; took {}",
                describe_wait(every)
            )),
        }
        if row.calls.logins > REDIS_RESTART_MAX_LOGINS {
            self.violation(format!(
                "{NAME}: at most {REDIS_RESTART_MAX_LOGINS} password login(s); made {}",
                row.calls.logins
            ));
        }
        row
    }

    /// Fault 2: the lease holder killed with SIGKILL mid-refresh, after the
    /// Auth API committed the rotation and before the holder stored it; a
    /// replacement replica started as soon as its death is seen.
    async fn kill_lease_holder_mid_refresh(&mut self) -> FaultRow {
        const NAME: &str = "lease holder SIGKILLed mid-refresh";
        let before = self.snapshot();
        let revoked = self.revoke_with_armed(Some(DIE_ON_REFRESH)).await;
        let Some(victim) = self.fleet.next_exit(DEATH_WAIT).await else {
            self.violation(format!(
                "{NAME}: no replica died within {DEATH_WAIT:?} of the revocation (the switch is {})",
                if self.switches.is_armed(DIE_ON_REFRESH) {
                    "still armed: no replica refreshed"
                } else {
                    "claimed"
                }
            ));
            let live = self.fleet.running();
            return self.row(NAME, before, &live, revoked, vec!["no replica died".into()]);
        };
        self.killed = Some(victim);
        let noticed = unix_ms();
        let killed = self
            .timeline()
            .first(&Report::Dying, revoked)
            .filter(|(replica, _)| *replica == victim)
            .map_or(noticed, |(_, at)| at);
        self.marks.push((killed, 'K'));
        let survivors = self.fleet.running();
        let replacement = self.fleet.spawn();
        let replacement_started = unix_ms();
        let mut awaited = survivors.clone();
        awaited.push(replacement);
        self.until_each_succeeds(&awaited, killed).await;
        sleep(STEADY).await;

        let replacement_success = self.timeline().first_success(replacement, killed);
        let mut notes = vec![
            format!(
                "r{victim} killed itself {} ms after the revocation; its death was seen {} ms later",
                killed.saturating_sub(revoked),
                noticed.saturating_sub(killed)
            ),
            format!(
                "replacement r{replacement} started {}, first success {}",
                describe_since(Some(replacement_started - killed)),
                describe_since(replacement_success.map(|at| at - killed)),
            ),
        ];
        if let Some(success) = replacement_success {
            notes.push(format!(
                "  (the replacement's first success came {} ms after it started)",
                success.saturating_sub(replacement_started)
            ));
        }
        let row = self.row(NAME, before, &survivors, killed, notes);
        match row.recovery.every_replica_ms {
            Some(ms) if ms <= millis(HOLDER_KILL_RECOVERY) => {}
            every => self.violation(format!(
                "{NAME}: every surviving replica must succeed again within \
                 {HOLDER_KILL_RECOVERY:?} of the kill; took {} (longest gap {} ms)",
                describe_wait(every),
                row.recovery.longest_gap_ms
            )),
        }
        if replacement_success.is_none() {
            self.violation(format!("{NAME}: the replacement replica never succeeded"));
        }
        if row.calls.logins > HOLDER_KILL_MAX_LOGINS {
            self.violation(format!(
                "{NAME}: at most {HOLDER_KILL_MAX_LOGINS} extra password login(s); made {}",
                row.calls.logins
            ));
        }
        row
    }

    /// Fault 3: the next save to the store (the one after a revocation's
    /// refresh) fails once.
    async fn fail_one_save(&mut self) -> FaultRow {
        const NAME: &str = "one save fails";
        let before = self.snapshot();
        let live = self.fleet.running();
        let revoked = self.revoke_with_armed(Some(FAIL_SAVE)).await;
        self.until_each_succeeds(&live, revoked).await;
        sleep(STEADY).await;
        let failed = self.timeline().first(&Report::SaveFailed, revoked);
        let notes = match failed {
            Some((replica, at)) => {
                self.marks.push((at, 'S'));
                vec![format!(
                    "r{replica} failed its save {} ms after the revocation",
                    at - revoked
                )]
            }
            None => {
                self.violation(format!(
                    "{NAME}: no replica saved after the revocation, so no save failed"
                ));
                vec!["no save failed".into()]
            }
        };
        let row = self.row(NAME, before, &live, revoked, notes);
        if row.recovery.every_replica_ms.is_none() {
            self.violation(format!(
                "{NAME}: a replica never succeeded again after the failed save"
            ));
        }
        if row.calls.logins > FAILED_SAVE_MAX_LOGINS {
            self.violation(format!(
                "{NAME}: at most {FAILED_SAVE_MAX_LOGINS} password login(s); made {}",
                row.calls.logins
            ));
        }
        if row.calls.reused > 0 {
            self.violation(format!(
                "{NAME}: a refresh token was sent twice ({} time(s))",
                row.calls.reused
            ));
        }
        row
    }

    /// Fault 4: the credential's seal in Redis replaced by another (as by
    /// its key overwritten) before the next revocation. The channel is
    /// tapped to see that the fault took effect: the first save after it
    /// is announced by the record's key, not sealed.
    async fn replace_the_seal(&mut self, redis: &RedisServer) -> FaultRow {
        const NAME: &str = "the seal replaced in Redis";
        const REPLACED: [u8; 32] = [0x5a; 32];
        let before = self.snapshot();
        let live = self.fleet.running();
        let client = ::redis::Client::open(redis.url()).expect("the Redis URL");
        let mut raw = bounded(client.get_multiplexed_async_connection())
            .await
            .expect("a connection to Redis");
        let mut tapped = tap(&redis.url()).await;
        let seals: Vec<String> = bounded(
            ::redis::cmd("KEYS")
                .arg("simacan-auth:*:seal")
                .query_async(&mut raw),
        )
        .await
        .expect("KEYS");
        let [seal] = seals.as_slice() else {
            self.violation(format!(
                "{NAME}: one seal in Redis expected, found {seals:?}"
            ));
            return self.row(NAME, before, &live, unix_ms(), vec!["no seal".into()]);
        };
        let record_key = seal.strip_suffix(":seal").expect("a seal key");
        let () = bounded(
            ::redis::cmd("SET")
                .arg(seal)
                .arg(REPLACED.as_slice())
                .query_async(&mut raw),
        )
        .await
        .expect("SET");
        self.marks.push((unix_ms(), 'Z'));
        let revoked = self.revoke_with_armed(None).await;
        self.until_each_succeeds(&live, revoked).await;
        sleep(STEADY).await;

        // What the saves since the fault were announced as, in order.
        let announced: Vec<bool> = heard(&mut tapped)
            .await
            .into_iter()
            .filter_map(|payload| {
                if payload.starts_with(b"simacan-auth sealed record") {
                    Some(true)
                } else {
                    (payload == record_key.as_bytes()).then_some(false)
                }
            })
            .collect();
        let by_key = announced.iter().filter(|sealed| !**sealed).count();
        let notes = vec![format!(
            "saves announced since: {by_key} by key, {} sealed",
            announced.len() - by_key
        )];
        if announced.first() != Some(&false) {
            self.violation(format!(
                "{NAME}: the first save after the fault must be announced by key; \
                 announcements (true: sealed): {announced:?}"
            ));
        }
        // The fleet learns the seal it finds; none puts its own back.
        let kept: Option<Vec<u8>> = bounded(::redis::cmd("GET").arg(seal).query_async(&mut raw))
            .await
            .expect("GET");
        if kept.as_deref() != Some(REPLACED.as_slice()) {
            self.violation(format!("{NAME}: the fleet replaced the seal it found"));
        }
        let row = self.row(NAME, before, &live, revoked, notes);
        match row.recovery.every_replica_ms {
            Some(ms) if ms <= millis(SEAL_REPLACED_RECOVERY) => {}
            every => self.violation(format!(
                "{NAME}: every replica must succeed again within {SEAL_REPLACED_RECOVERY:?} \
                 of the next revocation; took {}",
                describe_wait(every)
            )),
        }
        if (row.calls.logins, row.calls.reused, row.calls.rejected) != (0, 0, 0) {
            self.violation(format!(
                "{NAME}: no login and no refresh token refused or sent twice; made {:?}",
                row.calls
            ));
        }
        row
    }

    /// Stops the revocations and the fleet; checks the whole run.
    async fn finish(&mut self) {
        if let Some((_, task)) = &self.revoker {
            task.abort();
        }
        self.fleet.stop_all().await;
        let calls = AuthCalls::of(self.mock.counts());
        let revocations = self.revoker.as_ref().map_or(0, |(r, _)| r.count());
        if calls.reused > 0 {
            self.violation(format!(
                "whole run: a refresh token must never be sent twice; {} were",
                calls.reused
            ));
        }
        if calls.refreshes > revocations + EXTRA_REFRESHES {
            self.violation(format!(
                "whole run: at most one refresh per revocation (+{EXTRA_REFRESHES}): \
                 {} refreshes for {revocations} revocations",
                calls.refreshes
            ));
        }
        let unclean: Vec<_> = self
            .fleet
            .replicas
            .iter()
            .enumerate()
            .filter(|(n, _)| Some(*n) != self.killed)
            .filter_map(|(n, r)| match r.ended {
                Some((_, ending)) if ending.is_clean() => None,
                Some((_, ending)) => Some(format!("r{n} {}", ending.describe())),
                None => Some(format!("r{n} did not end")),
            })
            .collect();
        if !unclean.is_empty() {
            self.violation(format!(
                "every replica but the killed one must exit cleanly: {}",
                unclean.join(", ")
            ));
        }
    }

    fn print_report(&self, rows: &[FaultRow]) {
        let timeline = self.timeline();
        println!();
        println!(
            "{:<36} | {:>35} | {:>22} | {:>34} | {:>6} | {:>9} | {:>25} | {:>16} | {:>11} | {:>15}",
            "fault",
            "longest gap without success (fleet)",
            "first success anywhere",
            "time until every replica succeeded",
            "logins",
            "refreshes",
            "refresh tokens sent twice",
            "refresh refused",
            "revocations",
            "failed requests",
        );
        println!("{}", "-".repeat(240));
        for row in rows {
            println!(
                "{:<36} | {:>35} | {:>22} | {:>34} | {:>6} | {:>9} | {:>25} | {:>16} | {:>11} | {:>15}",
                row.name,
                seconds(row.recovery.longest_gap_ms),
                describe_wait(row.recovery.first_success_ms),
                describe_wait(row.recovery.every_replica_ms),
                row.calls.logins,
                row.calls.refreshes,
                row.calls.reused,
                row.calls.rejected,
                row.revocations,
                row.recovery.failed_requests,
            );
            for note in &row.notes {
                println!("    {note}");
            }
        }
        let calls = AuthCalls::of(self.mock.counts());
        let (ok, err) = timeline.outcome_counts(None);
        println!(
            "totals: requests ok={ok} err={err}; revocations={}; logins={}; refreshes={}; \
             refresh tokens sent twice={}; refreshes refused={}",
            self.revoker.as_ref().map_or(0, |(r, _)| r.count()),
            calls.logins,
            calls.refreshes,
            calls.reused,
            calls.rejected,
        );
        println!();
        println!("replicas:");
        for (number, replica) in self.fleet.replicas.iter().enumerate() {
            let (ok, err) = timeline.outcome_counts(Some(number));
            let own = timeline.successes(&[number], 0, u64::MAX);
            let gap = match (own.first(), replica.ended) {
                (Some(&first), Some((ended, _))) => seconds(longest_gap(&own, first, ended)),
                _ => "-".into(),
            };
            println!(
                "  r{number}: ok={ok} err={err}, longest gap between successes {gap}, {}; {}",
                replica
                    .ended
                    .map_or("still running".into(), |(_, e)| e.describe()),
                timeline
                    .summaries
                    .get(&number)
                    .map_or("no summary", String::as_str),
            );
        }
        let reasons = timeline.failure_reasons();
        if !reasons.is_empty() {
            println!("failed requests by reason:");
            for (reason, count) in reasons.iter().take(8) {
                println!("  {count:>6}  {reason}");
            }
        }
        drop(timeline);
        self.print_timeline();
    }

    /// One column per [`TIMELINE_COLUMN_MS`]: `#` a success, `x` failures
    /// only, `.` no answer, blank before a replica started or after it
    /// ended; the top line shows revocations and faults.
    fn print_timeline(&self) {
        let end = unix_ms();
        let column = |at: u64| {
            usize::try_from(at.saturating_sub(self.started_ms) / TIMELINE_COLUMN_MS).unwrap()
        };
        let width = column(end) + 1;
        let mut marks = vec![' '; width];
        for at in self
            .revoker
            .as_ref()
            .map_or_else(Vec::new, |(r, _)| r.times())
        {
            marks[column(at).min(width - 1)] = '|';
        }
        for &(at, mark) in &self.marks {
            marks[column(at).min(width - 1)] = mark;
        }
        println!();
        println!(
            "timeline, {TIMELINE_COLUMN_MS} ms a column: '#' a success, 'x' failures only, '.' nothing; \
             '|' revocation, R/r Redis killed/restarted, K holder killed, S save failed, \
             Z seal replaced"
        );
        println!("     {}", marks.iter().collect::<String>());
        let timeline = self.timeline();
        for (number, replica) in self.fleet.replicas.iter().enumerate() {
            let mut strip = vec![' '; width];
            let ended = replica.ended.map_or(end, |(at, _)| at);
            for cell in &mut strip[column(replica.started_ms)..=column(ended).min(width - 1)] {
                *cell = '.';
            }
            for event in timeline.events.iter().filter(|e| e.replica == number) {
                let cell = &mut strip[column(event.at_ms).min(width - 1)];
                match event.report {
                    Report::Ok => *cell = '#',
                    Report::Err(_) if *cell != '#' => *cell = 'x',
                    _ => {}
                }
            }
            println!("  r{number} {}", strip.iter().collect::<String>());
        }
        println!();
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).expect("milliseconds fit in u64")
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

fn describe_wait(ms: Option<u64>) -> String {
    ms.map_or_else(|| "never (in the window)".into(), seconds)
}

fn describe_since(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "never (in the window)".into(),
        |ms| format!("+{} after the kill", seconds(ms)),
    )
}

/// N = [`REPLICAS`] replica processes on one Redis, with every access token
/// revoked each [`REVOCATION_PERIOD`], through four faults in a row. See
/// the [module docs](self).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_processes_rides_out_redis_restarts_killed_holders_failed_saves_and_new_seals() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mock = Arc::new(support::mock().await);
    mock.set_target_recording(false);
    let switch_dir = tempfile::tempdir().expect("a temporary directory");
    let config = ReplicaConfig {
        auth_base_url: mock.base_url(),
        target_url: mock.url("/trips"),
        redis_url: redis.url(),
        switch_dir: switch_dir.path().to_owned(),
    };
    let mut run = Run::new(Arc::clone(&mock), &config);

    run.warm_up().await;
    run.start_revoking();
    sleep(STEADY).await;
    let rows = vec![
        run.restart_redis_empty(&mut redis).await,
        run.kill_lease_holder_mid_refresh().await,
        run.fail_one_save().await,
        run.replace_the_seal(&redis).await,
    ];
    run.finish().await;
    run.print_report(&rows);

    assert!(
        run.violations.is_empty(),
        "the fleet missed {} threshold(s):\n  - {}",
        run.violations.len(),
        run.violations.join("\n  - ")
    );
}
