//! What stands between a layer and the mock Auth API in the proxy and
//! private-CA tests, all on loopback: a private CA (rcgen), a TLS
//! terminator in front of the mock with a certificate the CA signed
//! ([`BehindTls`] puts the three together), and an HTTP `CONNECT` proxy that
//! counts its tunnels and keeps the bytes the client sent through them.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};
use simacan_auth::{AuthRoots, Environment, SimacanAuthLayer, mock::MockAuthApi};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;

/// The mock Auth API behind TLS, with a certificate for some names signed
/// by a private CA.
pub struct BehindTls {
    pub mock: MockAuthApi,
    pub ca: PrivateCa,
    pub front: TlsFront,
}

impl BehindTls {
    /// The mock behind a TLS terminator whose certificate covers `names`.
    pub async fn start(names: &[&str]) -> BehindTls {
        let mock = super::mock().await;
        let ca = PrivateCa::new();
        let front = TlsFront::start(ca.server_config(names), mock.addr()).await;
        BehindTls { mock, ca, front }
    }

    /// The Auth API as `host` (one of the names), through the terminator.
    pub fn environment(&self, host: &str) -> Environment {
        Environment::custom(format!("https://{}/api/v1", self.authority(host)))
            .expect("an https url")
    }

    /// `host:port` of the terminator, as `host`.
    pub fn authority(&self, host: &str) -> String {
        format!("{host}:{}", self.front.port())
    }

    pub fn password_url(&self, host: &str) -> String {
        format!("https://{}/api/v1/auth/password", self.authority(host))
    }

    /// A layer for the Auth API as `host`, trusting the private CA, with
    /// nothing said about proxies.
    pub fn layer(&self, host: &str) -> SimacanAuthLayer {
        SimacanAuthLayer::new(self.mock.credentials())
            .environment(self.environment(host))
            .auth_roots(self.ca.roots())
    }
}

/// A certificate authority of the test's own, which no root store trusts.
pub struct PrivateCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl PrivateCa {
    pub fn new() -> PrivateCa {
        // Each its own name: a verifier looks for the issuer by name, and
        // would find another test CA of the same name.
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("simacan-auth test ca {n}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a ca key");
        PrivateCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a ca certificate"),
        }
    }

    /// The CA certificate, PEM-encoded.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The webpki roots and this CA.
    pub fn roots(&self) -> AuthRoots {
        AuthRoots::webpki()
            .with_pem(self.pem())
            .expect("the ca's pem")
    }

    /// A server configuration with a certificate for `names` (host names
    /// or IP addresses) that this CA signed.
    pub fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).expect("server parameters");
        let key = KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the key fits the certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Terminates TLS on a loopback port and passes the bytes on to a plain
/// backend (the mock Auth API).
pub struct TlsFront {
    port: u16,
    task: JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(config: Arc<ServerConfig>, backend: SocketAddr) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().unwrap().port();
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront { port, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP `CONNECT` proxy on loopback. Every name it is asked for is
/// taken as 127.0.0.1, so names that no resolver knows reach loopback
/// servers through it (and only through it).
pub struct ConnectProxy {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Seen {
    /// The `host:port` of every tunnel opened, in order.
    tunnels: Vec<String>,
    /// `CONNECT`s refused with 407.
    refused: usize,
    /// Every byte clients sent into the tunnels.
    sent: Vec<u8>,
}

impl ConnectProxy {
    /// A proxy that tunnels for anyone.
    pub async fn start() -> ConnectProxy {
        ConnectProxy::serve(None).await
    }

    /// A proxy that tunnels only for a `Proxy-Authorization` of exactly
    /// `authorization`, and answers 407 otherwise.
    pub async fn with_authorization(authorization: &'static str) -> ConnectProxy {
        ConnectProxy::serve(Some(authorization)).await
    }

    async fn serve(authorization: Option<&'static str>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(tunnel(client, authorization, seen.clone()));
                }
            })
        };
        ConnectProxy { port, seen, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `host:port` of every tunnel opened so far.
    pub fn tunnels(&self) -> Vec<String> {
        self.seen.lock().unwrap().tunnels.clone()
    }

    /// How many `CONNECT`s were refused for want of credentials.
    pub fn refused(&self) -> usize {
        self.seen.lock().unwrap().refused
    }

    /// Every byte clients sent into the tunnels so far.
    pub fn sent(&self) -> Vec<u8> {
        self.seen.lock().unwrap().sent.clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one client connection: reads the `CONNECT` head, checks the
/// credentials, connects and copies both ways.
async fn tunnel(mut client: TcpStream, authorization: Option<&str>, seen: Arc<Mutex<Seen>>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        match client.read(&mut byte).await {
            Ok(1) if head.len() < 8192 => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let Some(target) = request_line
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
        .map(str::to_owned)
    else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let given = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    if authorization.is_some_and(|expected| given.as_deref() != Some(expected)) {
        seen.lock().unwrap().refused += 1;
        let _ = client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  proxy-authenticate: Basic realm=\"test\"\r\ncontent-length: 0\r\n\r\n",
            )
            .await;
        return;
    }
    let Some(port) = target
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
    else {
        let _ = client
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    seen.lock().unwrap().tunnels.push(target);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_upstream, &mut to_client).await;
    });
    let mut buffer = [0u8; 8192];
    loop {
        let n = match from_client.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen.lock().unwrap().sent.extend_from_slice(&buffer[..n]);
        if to_upstream.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to_upstream.shutdown().await;
    let _ = down.await;
}

/// Ring's provider for the tests' TLS servers and clients. rustls 0.23.48
/// deprecates its constructor (ring has no post-quantum key exchange) and
/// offers no other.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
