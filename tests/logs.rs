//! Warnings carry the cause of the failure they report, each cause once.

mod support;

use std::{
    io,
    sync::{Arc, Mutex},
};

use simacan_auth::{Credentials, Environment, SimacanAuthLayer};
use support::{bounded, capture_logs};

fn text(logs: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

/// The log lines at `level` that contain `message`.
fn lines_with(logs: &str, level: &str, message: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| line.contains(level) && line.contains(message))
        .map(str::to_owned)
        .collect()
}

/// A port on the loopback address nothing listens on: one just freed.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn an_unreachable_auth_api_is_logged_with_its_cause() {
    let (logs, _guard) = capture_logs();
    let url = format!("http://127.0.0.1:{}/api/v1", closed_port());
    let layer = SimacanAuthLayer::new(Credentials::new("user", "password"))
        .environment(Environment::custom(&url).unwrap());
    bounded(layer.access_token()).await.unwrap_err();
    let logs = text(&logs);
    let warned = lines_with(&logs, "WARN", "could not obtain a token; backing off");
    assert_eq!(warned.len(), 1, "{logs}");
    let refused = io::Error::from_raw_os_error(refused_code()).to_string();
    assert_eq!(warned[0].matches(&refused).count(), 1, "{}", warned[0]);
    assert!(warned[0].contains("tcp connect error"), "{}", warned[0]);
}

/// `ECONNREFUSED` where the tests run.
fn refused_code() -> i32 {
    let error = std::net::TcpStream::connect(("127.0.0.1", closed_port())).unwrap_err();
    error.raw_os_error().expect("an os error")
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unavailable_store_is_logged_with_its_cause_once() {
    use std::time::Duration;

    use simacan_auth::{mock::MockAuthApi, store::RedisStore};

    let (logs, _guard) = capture_logs();
    let mock = MockAuthApi::start().await.unwrap();
    let store = RedisStore::open(format!("redis://127.0.0.1:{}", closed_port()))
        .unwrap()
        .timeout(Duration::from_secs(2));
    let layer = SimacanAuthLayer::new(mock.credentials())
        .environment(mock.environment())
        .token_store(store)
        .local_login_on_store_outage(false);
    let error = bounded(layer.access_token()).await.unwrap_err();
    let refused = io::Error::from_raw_os_error(refused_code()).to_string();
    // The error itself, printed with its causes, says why once.
    let shown = simacan_auth::error::with_causes(&error).to_string();
    assert!(
        shown.starts_with("token store unavailable: redis at 127.0.0.1:"),
        "{shown}"
    );
    assert_eq!(shown.matches(&refused).count(), 1, "{shown}");
    // And so does the warning.
    let logs = text(&logs);
    let warned = lines_with(&logs, "WARN", "the token store is unavailable");
    assert_eq!(warned.len(), 1, "{logs}");
    assert_eq!(warned[0].matches(&refused).count(), 1, "{}", warned[0]);
}
