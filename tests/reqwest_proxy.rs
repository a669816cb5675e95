//! Whether the reqwest middleware's token can reach an HTTP proxy in clear
//! text. reqwest honours `HTTP_PROXY` and `ALL_PROXY` for plain `http` URLs,
//! loopback ones included, unless `NO_PROXY` excludes them. The environment
//! is the process's, so these tests have a binary of their own and set it
//! once, before any client is built.

mod support;

use std::sync::Arc;

use reqwest_middleware::ClientBuilder;
use simacan_auth::SimacanAuthMiddleware;
use support::{bounded, layer_for, mock};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Mutex,
};

/// A loopback "proxy" that records each request head it is sent and
/// answers 200.
async fn proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .await
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, heads)
}

#[tokio::test]
async fn the_token_never_reaches_a_proxy_in_clear_text() {
    let mock = mock().await;
    let (proxy_url, heads) = proxy().await;
    // SAFETY: this binary has this one test, on a current-thread runtime
    // (the mock's tasks run on this thread too), and no client is built
    // yet, so no other thread reads the environment meanwhile.
    unsafe {
        std::env::set_var("HTTP_PROXY", &proxy_url);
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(simacan_auth::reqwest::tls_config())
        .build()
        .unwrap();
    let layer = layer_for(&mock);
    let target = format!("{}/trips", mock.base_url().trim_end_matches("/api/v1"));

    // What reqwest 0.13 does: a plain-http loopback URL goes to the proxy.
    let plain = bounded(client.get(&target).send()).await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(
        heads.lock().await.len(),
        1,
        "reqwest used the proxy for loopback"
    );

    let with_middleware = ClientBuilder::new(client.clone())
        .with(SimacanAuthMiddleware::new(&layer))
        .build();
    let _ = bounded(with_middleware.get(&target).send()).await;
    let seen = heads.lock().await.clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        !seen[1].to_ascii_lowercase().contains("authorization"),
        "the token went to the proxy in clear text: {}",
        seen[1]
    );

    // A client that uses no proxy, and says so: the token goes to the API.
    let direct = reqwest::Client::builder()
        .tls_backend_preconfigured(simacan_auth::reqwest::tls_config())
        .no_proxy()
        .build()
        .unwrap();
    let with_middleware = ClientBuilder::new(direct)
        .with(SimacanAuthMiddleware::new(&layer).client_uses_no_proxy(true))
        .build();
    let answer = bounded(with_middleware.get(&target).send()).await.unwrap();
    assert_eq!(answer.status(), 200, "the mock API accepted the token");
    assert_eq!(
        heads.lock().await.len(),
        2,
        "nothing more went to the proxy"
    );
}
