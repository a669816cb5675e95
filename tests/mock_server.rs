//! `simacan-auth mock` run as a process of its own (feature `cli`): it
//! prints its URLs as one JSON line, another process (`simacan-auth token`)
//! logs in against it, the test drives it through the control API only, and
//! SIGTERM or SIGINT stops it with exit code 0.
#![cfg(all(feature = "cli", unix))]

mod support;

use std::process::Stdio;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use simacan_auth::mock::{PASSWORD, USERNAME};
use support::{HttpClient, bounded, client};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, Command},
};

const BIN: &str = env!("CARGO_BIN_EXE_simacan-auth");

/// A running `simacan-auth mock` and what it printed first.
struct Server {
    child: Child,
    first_line: String,
}

impl Server {
    async fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("mock")
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first_line = String::new();
        bounded(stdout.read_line(&mut first_line)).await.unwrap();
        // Keep reading what else it prints, so that it never blocks on a
        // full pipe.
        tokio::spawn(async move {
            let mut rest = Vec::new();
            let _ = stdout.read_to_end(&mut rest).await;
        });
        Server { child, first_line }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.first_line)
            .unwrap_or_else(|e| panic!("not json ({e}): {:?}", self.first_line))
    }

    /// Sends `signal` and waits for the exit; the exit code and what it
    /// wrote on standard error.
    async fn stop(mut self, signal: &str) -> (Option<i32>, String) {
        let pid = self.child.id().unwrap().to_string();
        let sent = bounded(Command::new("kill").args(["-s", signal, &pid]).status())
            .await
            .unwrap();
        assert!(sent.success());
        let mut stderr = self.child.stderr.take().unwrap();
        let status = bounded(self.child.wait()).await.unwrap();
        let mut text = String::new();
        bounded(stderr.read_to_string(&mut text)).await.unwrap();
        (status.code(), text)
    }
}

async fn get_json(client: &HttpClient, url: String) -> serde_json::Value {
    let response = bounded(client.get(url.parse().unwrap())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let body = bounded(response.into_body().collect()).await.unwrap();
    serde_json::from_slice(&body.to_bytes()).unwrap()
}

async fn post_json(client: &HttpClient, url: String, body: &str) -> serde_json::Value {
    let request = Request::post(&url)
        .body(Full::from(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    let response = bounded(client.request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let body = bounded(response.into_body().collect()).await.unwrap();
    serde_json::from_slice(&body.to_bytes()).unwrap()
}

async fn target_status(client: &HttpClient, target_url: &str, token: &str) -> StatusCode {
    let request = Request::get(format!("{target_url}/trips"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    bounded(client.request(request)).await.unwrap().status()
}

/// `simacan-auth token` against `auth_url` as another process, with the
/// mock's credentials from the environment and a home of its own.
async fn token_run(home: &std::path::Path, auth_url: &str, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .arg("token")
        .args(args)
        .args(["--auth-url", auth_url])
        .env_clear()
        .env("HOME", home)
        .env("SIMACAN_USERNAME", USERNAME)
        .env("SIMACAN_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = bounded(output).await.unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

#[tokio::test]
async fn a_token_run_revoked_and_counted_through_the_control_api_then_sigterm_stops_it_cleanly() {
    let server = Server::start(&["--listen", "127.0.0.1:0", "--format", "json"]).await;
    let started = server.json();
    let addr = started["addr"].as_str().unwrap().to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{started}"
    );
    let auth_url = started["auth_url"].as_str().unwrap().to_owned();
    let target_url = started["target_url"].as_str().unwrap().to_owned();
    let control_url = started["control_url"].as_str().unwrap().to_owned();
    assert_eq!(auth_url, format!("http://{addr}/api/v1"));
    assert_eq!(control_url, format!("http://{addr}/_mock"));
    assert_eq!(started["username"], USERNAME);
    assert_eq!(started["password"], PASSWORD);

    let client = client();
    let zero = get_json(&client, format!("{control_url}/counts")).await;
    assert_eq!(zero["password"], 0);

    let home = tempfile::tempdir().unwrap();
    let token = token_run(home.path(), &auth_url, &[]).await;
    assert_eq!(
        target_status(&client, &target_url, &token).await,
        StatusCode::OK
    );

    post_json(&client, format!("{control_url}/revoke-access-tokens"), "").await;
    assert_eq!(
        target_status(&client, &target_url, &token).await,
        StatusCode::UNAUTHORIZED
    );
    // The tool renews with its stored refresh token, without the password.
    let renewed = token_run(home.path(), &auth_url, &["--force-refresh"]).await;
    assert_ne!(renewed, token);
    assert_eq!(
        target_status(&client, &target_url, &renewed).await,
        StatusCode::OK
    );

    let counts = get_json(&client, format!("{control_url}/counts")).await;
    assert_eq!(
        counts,
        serde_json::json!({
            "password": 1,
            "password_rejected": 0,
            "refresh": 1,
            "refresh_rejected": 0,
            "refresh_reused": 0,
            "target": 3,
            "target_unauthorized": 1,
        })
    );

    let (code, stderr) = server.stop("TERM").await;
    assert_eq!(code, Some(0), "a clean stop: {stderr}");
    assert!(stderr.contains("mock stopped"), "{stderr}");
    let after = bounded(client.get(format!("{control_url}/counts").parse().unwrap())).await;
    assert!(after.is_err(), "nothing listens any more");
}

#[tokio::test]
async fn a_fixed_port_in_text_and_ctrl_c_stops_it_cleanly() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let server = Server::start(&["--listen", &addr.to_string()]).await;
    assert_eq!(
        server.first_line,
        format!("auth url:    http://{addr}/api/v1\n")
    );
    let client = client();
    let info = get_json(&client, format!("http://{addr}/_mock")).await;
    assert_eq!(info["username"], USERNAME);

    let (code, stderr) = server.stop("INT").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&format!("listening on {addr}")), "{stderr}");
}

#[tokio::test]
async fn a_non_loopback_or_taken_address_is_refused() {
    let refused = Command::new(BIN)
        .args(["mock", "--listen", "0.0.0.0:0"])
        .env_clear()
        .kill_on_drop(true)
        .output();
    let refused = bounded(refused).await.unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(stderr.contains("loopback addresses only"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let in_use = Command::new(BIN)
        .args(["mock", "--listen", &addr])
        .env_clear()
        .kill_on_drop(true)
        .output();
    let in_use = bounded(in_use).await.unwrap();
    assert_eq!(in_use.status.code(), Some(1), "{in_use:?}");
    let stderr = String::from_utf8(in_use.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}
