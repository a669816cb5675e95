//! Built by `.ci/quickstart` into the quick-start crate that also has
//! rustls' aws-lc-rs provider turned on. With two providers compiled in,
//! rustls cannot pick a process-wide default, and a client relying on one
//! panics. This starts a TLS handshake with `simacan_auth::https_client()`
//! and one with the layer's own Auth API client, against a loopback listener
//! that reads what each sends and hangs up, and checks that each sent a TLS
//! ClientHello.

use std::{error::Error, io::Read, net::TcpListener, thread, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use simacan_auth::{Credentials, Environment, SimacanAuthLayer};
use tokio::time::timeout;
use tower::ServiceExt;

const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = thread::spawn(move || -> std::io::Result<Vec<[u8; 6]>> {
        let mut heads = Vec::new();
        for _ in 0..2 {
            let (mut socket, _) = listener.accept()?;
            socket.set_read_timeout(Some(PATIENCE))?;
            let mut head = [0; 6];
            socket.read_exact(&mut head)?;
            heads.push(head);
        }
        Ok(heads)
    });

    let client = simacan_auth::https_client::<Full<Bytes>>();
    let request = http::Request::get(format!("https://127.0.0.1:{port}/")).body(Full::default())?;
    let sent = timeout(PATIENCE, client.oneshot(request)).await?;
    assert!(sent.is_err(), "the listener answers no handshake");

    let auth_api = Environment::custom(format!("https://127.0.0.1:{port}/api/v1"))?;
    let layer = SimacanAuthLayer::new(Credentials::new("user", "password")).environment(auth_api);
    let token = timeout(PATIENCE, layer.access_token()).await?;
    assert!(token.is_err(), "the listener answers no handshake");

    let heads = server.join().expect("the listener thread")?;
    for (client, head) in ["https_client()", "the Auth API client"].iter().zip(heads) {
        // A TLS record of type handshake (22) whose message is a ClientHello (1).
        if head[0] != 22 || head[5] != 1 {
            return Err(format!("{client} sent {head:?}, not a TLS ClientHello").into());
        }
        println!("{client}: TLS ClientHello sent");
    }
    Ok(())
}
