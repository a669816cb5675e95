//! Tokens that outlive the process: the same program run three times in a
//! row logs in once, because each run finds the token the first one left in
//! a [`FileStore`].
//!
//! The first process starts the mock Auth API and then runs itself three
//! times as child processes, each a separate OS process with nothing in
//! memory but a `FileStore` directory to share:
//!
//! ```text
//! cargo run --example restart
//! ```

use std::{process::Command, time::Duration};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use simacan_auth::{
    Credentials, Environment, SimacanAuthLayer,
    mock::{MockAuthApi, PASSWORD, USERNAME},
    store::FileStore,
};
use tower::{Layer, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [child, auth_url, dir, target] if child == "--child" => run(auth_url, dir, target).await,
        _ => parent().await,
    }
}

/// Starts the mock and runs this program three times against it.
async fn parent() -> Result<(), BoxError> {
    let mock = MockAuthApi::start().await?;
    let dir = tempfile::tempdir()?;
    println!("token store: {}", dir.path().display());
    for run in 1..=3 {
        let mut child = Command::new(std::env::current_exe()?);
        child.args([
            "--child",
            &mock.base_url(),
            &dir.path().display().to_string(),
            &mock.url("/trips"),
        ]);
        let status = tokio::task::spawn_blocking(move || child.status()).await??;
        let counts = mock.counts();
        println!(
            "run {run}: {status}; auth api so far: {} password login(s), {} refresh(es)",
            counts.password, counts.refresh
        );
    }
    Ok(())
}

/// One run: a request through the layer, the token kept in `dir`.
async fn run(auth_url: &str, dir: &str, target: &str) -> Result<(), BoxError> {
    let layer = SimacanAuthLayer::new(Credentials::new(USERNAME, PASSWORD))
        .environment(Environment::custom(auth_url)?)
        .token_store(FileStore::new(dir));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let svc = layer.layer(client);
    let request = http::Request::get(target).body(Empty::new())?;
    let response = tokio::time::timeout(Duration::from_secs(10), svc.oneshot(request)).await??;
    println!(
        "  pid {}: GET {target} -> {}",
        std::process::id(),
        response.status()
    );
    Ok(())
}
