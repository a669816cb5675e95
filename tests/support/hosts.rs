//! Loopback servers under made-up host names, over TLS with a self-signed
//! certificate or over plain HTTP, each recording the `Authorization`
//! headers it received; and a real hyper client that resolves those names to
//! 127.0.0.1 and trusts that certificate.
//!
//! The names matter to the layer (they are what a token scope matches), the
//! addresses do not: every name resolves to loopback, and the URI keeps the
//! name, so `http://api.services.simacan.test:PORT` is plain HTTP to a
//! non-loopback *name* even though the bytes stay on this machine.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    io,
    iter::{Once, once},
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::{TokioExecutor, TokioIo},
};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

/// A Simacan API host, in the scope [`scope`] makes.
pub const API: &str = "api.services.simacan.test";
/// Another Simacan API host, also in that scope.
pub const FILES: &str = "files.services.simacan.test";
/// A host outside that scope.
pub const OTHER: &str = "other.example.test";

/// Every name the resolver maps to loopback and the certificate covers.
const NAMES: [&str; 4] = [API, FILES, OTHER, "localhost"];

/// The scope of the tests: the made-up Simacan services.
pub fn scope() -> simacan_auth::TokenScope {
    simacan_auth::TokenScope::hosts(["*.services.simacan.test"]).expect("a valid scope")
}

/// A client over [`Resolver`], speaking https and plain http.
pub type HttpsClient = Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>;

/// Resolves the test names to 127.0.0.1 and refuses every other name.
#[derive(Clone, Copy, Debug)]
pub struct Resolver;

impl tower::Service<Name> for Resolver {
    type Response = Once<SocketAddr>;
    type Error = io::Error;
    type Future = Ready<io::Result<Once<SocketAddr>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        // Port 0: the connector puts in the URI's port.
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        ready(if NAMES.contains(&name.as_str()) {
            Ok(once(loopback))
        } else {
            Err(io::Error::other(format!("{name} is not a test host")))
        })
    }
}

/// A self-signed certificate for the test names, as a server and a client
/// configuration.
pub struct Tls {
    acceptor: TlsAcceptor,
    client: ClientConfig,
}

impl Tls {
    pub fn new() -> Tls {
        let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("a certificate");
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(ring_provider());
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("the key fits the certificate");
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("a root certificate");
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            client,
        }
    }

    /// A rustls client configuration (ring) trusting this certificate, for
    /// clients other than hyper's.
    pub fn client_config(&self) -> ClientConfig {
        self.client.clone()
    }

    /// A hyper client trusting this certificate, resolving test names to
    /// loopback, for both `https` and plain `http` URIs.
    pub fn client(&self) -> HttpsClient {
        let mut http = HttpConnector::new_with_resolver(Resolver);
        http.enforce_http(false);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(self.client.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new()).build(https)
    }
}

/// What a server answers: given the request, the response.
pub type Respond = Arc<dyn Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync>;

/// Answers 200 to everything.
pub fn ok() -> Respond {
    Arc::new(|_| Response::new(Full::default()))
}

/// Answers `status` with `location` to everything.
pub fn redirect(status: StatusCode, location: String) -> Respond {
    Arc::new(move |_| {
        Response::builder()
            .status(status)
            .header(http::header::LOCATION, &location)
            .body(Full::default())
            .unwrap()
    })
}

/// Answers `status` to everything.
pub fn status(status: StatusCode) -> Respond {
    Arc::new(move |_| {
        Response::builder()
            .status(status)
            .body(Full::default())
            .unwrap()
    })
}

/// One request as a server saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    /// Every `Authorization` header, in order.
    pub authorization: Vec<String>,
}

/// A server on 127.0.0.1 under a test name.
pub struct Host {
    name: &'static str,
    scheme: &'static str,
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Host {
    /// Serves https as `name`, with the certificate of `tls`.
    pub async fn https(tls: &Tls, name: &'static str, respond: Respond) -> Host {
        Host::serve(name, Some(tls.acceptor.clone()), respond).await
    }

    /// Serves plain http as `name`.
    pub async fn http(name: &'static str, respond: Respond) -> Host {
        Host::serve(name, None, respond).await
    }

    async fn serve(name: &'static str, tls: Option<TlsAcceptor>, respond: Respond) -> Host {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(accept(listener, tls, respond, seen.clone()));
        Host {
            name,
            scheme,
            port,
            seen,
            task,
        }
    }

    /// The URL of `path` on this server, by its name.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}:{}{path}", self.scheme, self.name, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The `Authorization` headers of every request received so far.
    pub fn authorizations(&self) -> Vec<Vec<String>> {
        self.seen().into_iter().map(|s| s.authorization).collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    respond: Respond,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (respond, seen) = (respond.clone(), seen.clone());
        let service = service_fn(move |request: Request<Incoming>| {
            seen.lock().unwrap().push(Seen {
                method: request.method().clone(),
                path: request.uri().path().to_owned(),
                authorization: request
                    .headers()
                    .get_all(AUTHORIZATION)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect(),
            });
            ready(Ok::<_, Infallible>(respond(&request)))
        });
        let tls = tls.clone();
        tokio::spawn(async move {
            // A connection that fails ends; the test sees what was recorded.
            let _ = match tls {
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Err(_) => return,
                },
                None => {
                    http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
        });
    }
}

/// Ring's provider for the tests' TLS servers and clients. rustls 0.23.48
/// deprecates its constructor (ring has no post-quantum key exchange) and
/// offers no other.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
