//! `simacan_auth::https_client`: what its TLS client offers and refuses,
//! against a loopback TLS server that records the ClientHello and then
//! answers with a self-signed certificate (which the webpki roots do not
//! trust).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::Acceptor,
};
use tokio::{net::TcpListener, task::JoinHandle, time::timeout};
use tokio_rustls::LazyConfigAcceptor;
use tower::ServiceExt;

const PATIENCE: Duration = Duration::from_secs(10);

/// What the server saw of one TLS client.
#[derive(Debug)]
struct Hello {
    server_name: Option<String>,
    alpn: Vec<Vec<u8>>,
}

/// A TLS server on 127.0.0.1 for one connection, with its port.
async fn server() -> (u16, JoinHandle<Hello>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let start = LazyConfigAcceptor::new(Acceptor::default(), socket)
            .await
            .expect("a ClientHello");
        let hello = start.client_hello();
        let seen = Hello {
            server_name: hello.server_name().map(str::to_owned),
            alpn: hello
                .alpn()
                .into_iter()
                .flatten()
                .map(<[u8]>::to_vec)
                .collect(),
        };
        // The client refuses the certificate; the handshake fails here too.
        let _ = start.into_stream(self_signed()).await;
        seen
    });
    (port, task)
}

fn self_signed() -> Arc<ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    Arc::new(config)
}

/// A GET of `uri` through a new `https_client()`, bounded.
async fn get(
    uri: String,
) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
    let client = simacan_auth::https_client::<Full<Bytes>>();
    let request = http::Request::get(uri).body(Full::default()).unwrap();
    timeout(PATIENCE, client.oneshot(request))
        .await
        .expect("no hang")
}

/// The error and everything below it, as text.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(": ");
        text.push_str(&error.to_string());
        source = error.source();
    }
    text
}

#[tokio::test]
async fn offers_http2_and_http1_by_alpn_and_names_the_host() {
    let (port, server) = server().await;
    let _ = get(format!("https://localhost:{port}/")).await;
    let hello = timeout(PATIENCE, server).await.unwrap().unwrap();
    assert_eq!(hello.server_name.as_deref(), Some("localhost"));
    assert_eq!(hello.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[tokio::test]
async fn refuses_a_certificate_outside_the_webpki_roots() {
    let (port, server) = server().await;
    let error = get(format!("https://localhost:{port}/"))
        .await
        .expect_err("a self-signed certificate is not trusted");
    let text = chain(&error);
    assert!(text.contains("invalid peer certificate"), "{text}");
    timeout(PATIENCE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn refuses_plain_http_without_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let error = get(format!("http://127.0.0.1:{port}/"))
        .await
        .expect_err("http is refused");
    assert!(error.is_connect(), "{}", chain(&error));
    let accepted = timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "nothing connected to the plain port");
}

#[test]
fn the_client_is_a_clone_send_sync_service_that_shows_no_internals() {
    fn assert_service<S>(_: &S)
    where
        S: tower::Service<http::Request<Full<Bytes>>> + Clone + Send + Sync + std::fmt::Debug,
    {
    }
    let client = simacan_auth::https_client::<Full<Bytes>>();
    assert_service(&client);
    assert_eq!(format!("{:?}", client.clone()), "HttpsClient { .. }");
}

/// Ring's provider for the tests' TLS servers and clients. rustls 0.23.48
/// deprecates its constructor (ring has no post-quantum key exchange) and
/// offers no other.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
