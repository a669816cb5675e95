//! A real `redis-server` for tests: started on a free loopback port with no
//! persistence, stopped when dropped, and never outliving the test binary.
//!
//! ```ignore
//! let Some(server) = RedisServer::start() else { return }; // loudly skipped
//! let store = RedisStore::open(server.url())?;
//! ```
//!
//! Without `redis-server` installed, [`RedisServer::start`] says so on
//! stderr and returns `None`, so the test passes as skipped; under CI
//! (`CI=true`) it panics instead, so a skipped Redis test cannot pass there.

use std::{
    env,
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long a fresh server may take to answer PING.
const STARTUP: Duration = Duration::from_secs(10);
/// Ports tried when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// A running `redis-server`. See the [module docs](self).
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    password: Option<String>,
    /// Arguments before the usual ones (a sentinel's configuration file
    /// and `--sentinel`), and after them.
    leading: Vec<String>,
    extra: Vec<String>,
    process: Option<Process>,
}

/// The server process and its watchdog: a `sh` that waits for its stdin, a
/// pipe from this process, to close, then kills the server. The kernel
/// closes the pipe however the test binary ends (a panic, `SIGKILL`, a CI
/// timeout), so no server outlives it.
#[derive(Debug)]
struct Process {
    server: Child,
    watchdog: Child,
    _lifeline: ChildStdin,
}

impl RedisServer {
    /// A server with no password, or `None` (after a loud `SKIPPED` line on
    /// stderr) when `redis-server` is not installed outside CI.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing under CI, or does not start.
    pub fn start() -> Option<RedisServer> {
        Self::launch(None)
    }

    /// A server that requires `password` (`--requirepass`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_password(password: &str) -> Option<RedisServer> {
        Self::launch(Some(password.to_owned()))
    }

    fn launch(password: Option<String>) -> Option<RedisServer> {
        Self::launch_with(password, Vec::new(), Vec::new(), free_port)
    }

    /// A server given `extra` arguments after the usual ones, on a port
    /// from `port` (tried again while the port turns out taken).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with(extra: &[String], port: impl FnMut() -> u16) -> Option<RedisServer> {
        Self::launch_with(None, Vec::new(), extra.to_vec(), port)
    }

    /// A sentinel on the configuration file `conf` (which it rewrites).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_sentinel(conf: &Path, port: u16) -> Option<RedisServer> {
        let leading = vec![conf.to_string_lossy().into_owned(), "--sentinel".into()];
        Self::launch_with(None, leading, Vec::new(), || port)
    }

    fn launch_with(
        password: Option<String>,
        leading: Vec<String>,
        extra: Vec<String>,
        mut port: impl FnMut() -> u16,
    ) -> Option<RedisServer> {
        let binary = find_binary()?;
        let mut server = RedisServer {
            binary,
            port: 0,
            password,
            leading,
            extra,
            process: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = port();
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("redis-server did not start on any of {PORT_ATTEMPTS} free loopback ports");
    }

    /// `redis://127.0.0.1:PORT`, with the password when the server has one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => self.url_without_password(),
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|process| process.server.id())
    }

    /// `redis://127.0.0.1:PORT`, even when the server requires a password.
    pub fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server: its clients see their connections drop and new
    /// ones refused. Its data is gone (there is no persistence).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            // The watchdog first, so it never signals a reused pid.
            let _ = process.watchdog.kill();
            let _ = process.watchdog.wait();
            let _ = process.server.kill();
            let _ = process.server.wait();
        }
    }

    /// Stops the server and starts an empty one on the same port.
    ///
    /// # Panics
    ///
    /// When the port cannot be had again within a few seconds.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + STARTUP;
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start again on port {}",
                self.port
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open and nothing
    /// answers, as with a hung Redis. [`resume`](Self::resume) thaws it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let process = self.process.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(process.server.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the server on `self.port`; `false` when it exited (the port
    /// was taken) before answering.
    fn spawn(&mut self) -> bool {
        let mut command = Command::new(&self.binary);
        command
            .args(&self.leading)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"]);
        if self.leading.is_empty() {
            command
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--dir", &env::temp_dir().to_string_lossy()]);
        }
        command
            .args(["--loglevel", "warning"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let mut server = command.spawn().expect("redis-server runs");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"cat >/dev/null; kill -9 "$1" 2>/dev/null"#)
            .arg("redis-watchdog")
            .arg(server.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                let _ = server.kill();
                let _ = server.wait();
                panic!("sh runs: {e}")
            });
        let lifeline = watchdog.stdin.take().expect("stdin is piped");
        let mut process = Process {
            server,
            watchdog,
            _lifeline: lifeline,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if answers_ping(self.port) {
                self.process = Some(process);
                return true;
            }
            if matches!(process.server.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                let _ = process.watchdog.kill();
                let _ = process.watchdog.wait();
                let _ = process.server.kill();
                let _ = process.server.wait();
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis server answers on `port` (`+PONG`, or `-NOAUTH` when it
/// requires a password).
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 16];
    stream.write_all(b"PING\r\n").is_ok()
        && matches!(stream.read(&mut reply), Ok(n) if n > 0 && (reply[0] == b'+' || reply[0] == b'-'))
}

/// A loopback port no one listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a loopback port is free")
        .port()
}

pub fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `redis-server` on `PATH` or in the usual places; `None` (loudly) when
/// missing outside CI.
fn find_binary() -> Option<PathBuf> {
    find_program("redis-server")
}

/// `name` (from Debian's redis-server package, which brings redis-cli too)
/// on `PATH` or in the usual places; `None` (loudly) when missing outside
/// CI.
///
/// # Panics
///
/// When it is missing under CI.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    let found = env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate));
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is not installed, and CI must run the Redis tests: \
             apt-get install -y redis-server (.ci/run does this)"
        );
        // Past the test harness's output capture, so it shows in a passing run.
        let _ = std::io::stderr().write_all(
            format!("SKIPPED: {name} not installed (apt-get install -y redis-server)\n").as_bytes(),
        );
    }
    found
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
