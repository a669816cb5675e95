//! An Auth API in memory for unit tests of the token machinery: scripted
//! replies, a delay per call, rotation of refresh tokens and a record of
//! every form.
//!
//! Rotation is the crate's one model of it, the mock's too
//! ([`Rotation`]): a spent refresh token is answered 401 and counted as a
//! reuse, before any script. Other refresh tokens are answered as the
//! script says, including tokens the fake never issued (ones a test put in
//! a store itself); a refresh that takes effect spends the token it was
//! sent.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};
use zeroize::Zeroizing;

use super::{
    Credentials, Environment,
    auth_api::transport::{BoxFuture, RawResponse, Transport},
    cache::{Lookup, Settings, TokenCache},
};
use crate::{
    Endpoint, Error,
    rotation::{Rotation, Standing},
    store::{MemoryStore, TokenStore},
};

/// What the fake Auth API answers to one call.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    /// A fresh token pair valid for this many seconds.
    Token(u64),
    Status(u16),
    /// A transport failure.
    Down,
    /// A refresh the Auth API commits (the refresh token is spent, a pair
    /// issued) whose answer is then lost.
    CommitThenDown,
}

/// An Auth API in memory: scripted replies, a delay per call, and a record of
/// every form it received.
pub(crate) struct FakeApi {
    script: Mutex<VecDeque<Reply>>,
    otherwise: Reply,
    delay: Duration,
    issued: AtomicUsize,
    calls: Mutex<Vec<(Endpoint, String)>>,
    /// The pairs issued and the refresh tokens spent.
    tokens: Mutex<Rotation>,
}

impl FakeApi {
    pub(crate) fn new(otherwise: Reply) -> Arc<Self> {
        Self::with_delay(otherwise, Duration::from_millis(50))
    }

    pub(crate) fn with_delay(otherwise: Reply, delay: Duration) -> Arc<Self> {
        Arc::new(FakeApi {
            script: Mutex::new(VecDeque::new()),
            otherwise,
            delay,
            issued: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
            tokens: Mutex::new(Rotation::default()),
        })
    }

    pub(crate) fn then(self: &Arc<Self>, reply: Reply) -> &Arc<Self> {
        self.script.lock().unwrap().push_back(reply);
        self
    }

    pub(crate) fn calls(&self, endpoint: Endpoint) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| *e == endpoint)
            .count()
    }

    pub(crate) fn forms(&self) -> Vec<(Endpoint, String)> {
        self.calls.lock().unwrap().clone()
    }

    /// Refresh tokens that were sent after they had been used once.
    pub(crate) fn reused(&self) -> usize {
        self.tokens.lock().unwrap().reused()
    }
}

impl Transport for FakeApi {
    fn post_form(
        &self,
        endpoint: Endpoint,
        uri: Uri,
        form: Zeroizing<String>,
    ) -> BoxFuture<'static, Result<RawResponse, Error>> {
        self.calls
            .lock()
            .unwrap()
            .push((endpoint, form.to_string()));
        let refresh_token = (endpoint == Endpoint::Refresh).then(|| refresh_token_of(&form));
        let mut tokens = self.tokens.lock().unwrap();
        let reply = match refresh_token {
            Some(sent) if tokens.standing(sent) == Standing::Spent => {
                tokens.refuse(sent);
                Reply::Status(401)
            }
            _ => self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(self.otherwise),
        };
        if let (Some(sent), Reply::Token(_) | Reply::CommitThenDown) = (refresh_token, reply) {
            // Rotation: the refresh token sent is spent once a new pair is issued.
            tokens.spend(sent);
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let (access, refresh) = (format!("access-{n}"), format!("refresh-{n}"));
        if let Reply::Token(secs) = reply {
            tokens.issue(&access, &refresh, Duration::from_secs(secs));
        }
        drop(tokens);
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let (status, body) = match reply {
                Reply::Token(secs) => (
                    200,
                    format!(
                        r#"{{"access_token":"{access}","refresh_token":"{refresh}","token_type":"bearer","expires_in":{secs}}}"#
                    ),
                ),
                Reply::Status(status) => (status, String::new()),
                Reply::Down | Reply::CommitThenDown => {
                    return Err(Error::unreachable(
                        endpoint,
                        &uri,
                        std::io::Error::other("connection refused"),
                    ));
                }
            };
            Ok(RawResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: HeaderMap::new(),
                body: Bytes::from(body),
            })
        })
    }
}

/// The refresh token in a refresh grant's form.
fn refresh_token_of(form: &str) -> &str {
    form.trim_start_matches("refresh_token=")
}

pub(crate) fn cache(api: &Arc<FakeApi>) -> TokenCache {
    cache_with(api, Settings::default())
}

pub(crate) fn cache_with(api: &Arc<FakeApi>, settings: Settings) -> TokenCache {
    cache_on(api, settings, Arc::new(MemoryStore::new()))
}

/// A cache on `store`: several of them on one store are replicas.
pub(crate) fn cache_on(
    api: &Arc<FakeApi>,
    settings: Settings,
    store: Arc<dyn TokenStore>,
) -> TokenCache {
    cache_as(Credentials::new("user", "pw"), api, settings, store)
}

/// A cache of `credentials` on `store`.
pub(crate) fn cache_as(
    credentials: Credentials,
    api: &Arc<FakeApi>,
    settings: Settings,
    store: Arc<dyn TokenStore>,
) -> TokenCache {
    TokenCache::with_transport(
        credentials,
        Environment::custom("http://127.0.0.1:1/api/v1").unwrap(),
        settings,
        store,
        api.clone(),
    )
}

pub(crate) fn header_of(lookup: Lookup) -> String {
    match lookup {
        Lookup::Valid { header, .. } => header.to_str().unwrap().to_owned(),
        Lookup::Wait(_) => panic!("expected a valid token, had to wait"),
        Lookup::Failed(e) => panic!("expected a valid token, got {e}"),
    }
}

pub(crate) async fn settle() {
    // Lets spawned flights run; the paused clock advances through their delay.
    tokio::time::sleep(Duration::from_secs(1)).await;
}
