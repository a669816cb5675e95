//! Real Redis deployments on loopback ports, for the Redis store's tests:
//! a Cluster of three primaries and a primary with a replica watched by
//! three sentinels. Like [`RedisServer`], each is skipped loudly without
//! the binaries (`redis-server`, `redis-cli`) and fails under CI.
//!
//! ```ignore
//! let Some(cluster) = RedisCluster::start() else { return };
//! let store = RedisStore::open(cluster.url())?;
//! ```

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::redis::{RedisServer, find_program, free_port};

/// How long a deployment may take to settle.
const SETTLE: Duration = Duration::from_secs(15);

/// The master name the sentinels watch.
pub const MASTER: &str = "tokens";

/// `redis-cli -p PORT ARGS…`, its output as lines.
fn run_cli(program: &PathBuf, port: u16, args: &[&str]) -> Vec<String> {
    let output = Command::new(program)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The value after `name` in `redis-cli`'s flat listing of a map.
fn field<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .position(|l| l == name)
        .and_then(|at| lines.get(at + 1))
        .map(String::as_str)
}

/// Waits until `ready`, or panics naming `what`.
fn settle(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {SETTLE:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A Cluster of three primaries (no replicas), made with
/// `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    cli: PathBuf,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// A cluster whose every node says `cluster_state:ok`, or `None`
    /// (loudly) without the binaries outside CI.
    ///
    /// # Panics
    ///
    /// When the binaries are missing under CI, or the cluster does not form.
    pub fn start() -> Option<RedisCluster> {
        let cli = find_program("redis-cli")?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut nodes = Vec::new();
        for n in 0..3 {
            let conf = dir.path().join(format!("nodes-{n}.conf"));
            let extra = [
                "--cluster-enabled".to_owned(),
                "yes".into(),
                "--cluster-config-file".into(),
                conf.to_string_lossy().into_owned(),
                "--cluster-node-timeout".into(),
                "1000".into(),
                // The bus port is the port plus 10000 unless given: past
                // 65535 for a high free port.
                "--cluster-port".into(),
                free_port().to_string(),
            ];
            nodes.push(RedisServer::start_with(&extra, free_port)?);
        }
        let addresses: Vec<_> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let status = Command::new(&cli)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster {
            nodes,
            cli,
            _dir: dir,
        };
        for node in &cluster.nodes {
            settle("every cluster node sees the cluster ok", || {
                run_cli(&cluster.cli, node.port(), &["cluster", "info"])
                    .iter()
                    .any(|l| l == "cluster_state:ok")
            });
        }
        Some(cluster)
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        self.url_through(&(0..self.nodes.len()).collect::<Vec<_>>())
    }

    /// `redis+cluster://` with the nodes at `seeds` only.
    pub fn url_through(&self, seeds: &[usize]) -> String {
        let hosts: Vec<_> = seeds
            .iter()
            .map(|&n| format!("127.0.0.1:{}", self.nodes[n].port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// `redis-cli` against node `n`.
    pub fn cli(&self, n: usize, args: &[&str]) -> Vec<String> {
        run_cli(&self.cli, self.nodes[n].port(), args)
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        let answer = self.cli(0, &["cluster", "keyslot", key]);
        answer[0].parse().expect("a slot number")
    }

    /// The node (index) that serves `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        (0..self.nodes.len())
            .find(|&n| {
                self.cli(n, &["cluster", "nodes"])
                    .iter()
                    .any(|line| line.contains("myself") && owns(line, slot))
            })
            .expect("a node serves every slot")
    }

    fn node_id(&self, n: usize) -> String {
        self.cli(n, &["cluster", "myid"]).remove(0)
    }

    /// Starts moving `slot` from node `from` to node `to`, with its keys:
    /// `from` answers `ASK` for the keys it no longer holds.
    pub fn begin_migration(&self, slot: u16, from: usize, to: usize) {
        let slot_arg = slot.to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let ok = |answer: Vec<String>| assert_eq!(answer, ["OK"], "cluster setslot");
        ok(self.cli(
            to,
            &["cluster", "setslot", &slot_arg, "importing", &from_id],
        ));
        ok(self.cli(
            from,
            &["cluster", "setslot", &slot_arg, "migrating", &to_id],
        ));
        let keys = self.cli(from, &["cluster", "getkeysinslot", &slot_arg, "100"]);
        let keys: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| !k.is_empty())
            .collect();
        if !keys.is_empty() {
            let port = self.nodes[to].port().to_string();
            let mut args = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "keys"];
            args.extend(keys);
            ok(self.cli(from, &args));
        }
    }

    /// Finishes a migration begun with [`begin_migration`](Self::begin_migration):
    /// every node learns that `to` serves `slot`, and `from` answers `MOVED`.
    pub fn end_migration(&self, slot: u16, to: usize) {
        let (slot_arg, to_id) = (slot.to_string(), self.node_id(to));
        for n in 0..self.nodes.len() {
            let answer = self.cli(n, &["cluster", "setslot", &slot_arg, "node", &to_id]);
            assert_eq!(answer, ["OK"], "cluster setslot node on node {n}");
        }
    }
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges.
fn owns(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        match (low.parse::<u16>(), high.parse::<u16>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&slot),
            _ => false,
        }
    })
}

/// A primary and its replica, watched by three sentinels that fail over
/// half a second after the primary stops answering.
#[derive(Debug)]
pub struct RedisSentinels {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
    cli: PathBuf,
    _dir: tempfile::TempDir,
}

impl RedisSentinels {
    /// A deployment whose sentinels know the primary, its replica and each
    /// other, or `None` (loudly) without the binaries outside CI.
    ///
    /// # Panics
    ///
    /// When the binaries are missing under CI, or the deployment does not
    /// settle.
    pub fn start() -> Option<RedisSentinels> {
        let cli = find_program("redis-cli")?;
        let primary = RedisServer::start()?;
        let replicaof = [
            "--replicaof".to_owned(),
            "127.0.0.1".into(),
            primary.port().to_string(),
        ];
        let replica = RedisServer::start_with(&replicaof, free_port)?;
        settle("the replica is in sync", || {
            cli_has(
                &cli,
                replica.port(),
                &["info", "replication"],
                "master_link_status:up",
            )
        });
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut sentinels = Vec::new();
        for n in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{n}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {MASTER} 500\n\
                     sentinel failover-timeout {MASTER} 5000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    primary = primary.port()
                ),
            )
            .expect("the sentinel's configuration is written");
            sentinels.push(RedisServer::start_sentinel(&conf, port)?);
        }
        let deployment = RedisSentinels {
            primary,
            replica,
            sentinels,
            cli,
            _dir: dir,
        };
        for sentinel in &deployment.sentinels {
            settle(
                "every sentinel knows the replica and the other sentinels",
                || {
                    let master = run_cli(
                        &deployment.cli,
                        sentinel.port(),
                        &["sentinel", "master", MASTER],
                    );
                    field(&master, "num-slaves") == Some("1")
                        && field(&master, "num-other-sentinels") == Some("2")
                },
            );
        }
        Some(deployment)
    }

    /// `redis+sentinel://` with the three sentinels and the master's name.
    pub fn url(&self) -> String {
        let hosts: Vec<_> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The primary's port, as the first sentinel tells it.
    pub fn primary_port(&self) -> Option<u16> {
        let answer = run_cli(
            &self.cli,
            self.sentinels[0].port(),
            &["sentinel", "get-master-addr-by-name", MASTER],
        );
        answer.get(1).and_then(|port| port.parse().ok())
    }

    /// `redis-cli` against the server on `port`.
    pub fn cli(&self, port: u16, args: &[&str]) -> Vec<String> {
        run_cli(&self.cli, port, args)
    }
}

fn cli_has(cli_path: &PathBuf, port: u16, args: &[&str], line: &str) -> bool {
    run_cli(cli_path, port, args).iter().any(|l| l == line)
}
