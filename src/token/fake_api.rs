//! An Auth API in memory for unit tests of the token machinery: scripted
//! replies, a delay per call, rotation of refresh tokens (a spent one is
//! answered 401, as the real API does) and a record of every form.

use std::{
    collections::{HashSet, VecDeque},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};
use zeroize::Zeroizing;

use super::{
    auth_api::transport::{BoxFuture, RawResponse, Transport},
    cache::{Lookup, Settings, TokenCache},
    Credentials, Environment,
};
use crate::{
    store::{MemoryStore, TokenStore},
    Endpoint, Error,
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
    /// Refresh tokens sent so far: each may be used once.
    spent: Mutex<HashSet<String>>,
    reused: AtomicUsize,
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
            spent: Mutex::new(HashSet::new()),
            reused: AtomicUsize::new(0),
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
        self.reused.load(Ordering::SeqCst)
    }

    /// Whether the refresh token in `form` was spent before; counts it.
    fn is_spent(&self, form: &str) -> bool {
        let reused = self.spent.lock().unwrap().contains(refresh_token_of(form));
        if reused {
            self.reused.fetch_add(1, Ordering::SeqCst);
        }
        reused
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
        let reply = if endpoint == Endpoint::Refresh && self.is_spent(&form) {
            Reply::Status(401)
        } else {
            self.script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(self.otherwise)
        };
        if endpoint == Endpoint::Refresh && matches!(reply, Reply::Token(_) | Reply::CommitThenDown)
        {
            // Rotation: the refresh token sent is spent once a new pair is issued.
            let spent = refresh_token_of(&form).to_owned();
            self.spent.lock().unwrap().insert(spent);
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let (status, body) = match reply {
                Reply::Token(secs) => (
                    200,
                    format!(
                        r#"{{"access_token":"access-{n}","refresh_token":"refresh-{n}","token_type":"bearer","expires_in":{secs}}}"#
                    ),
                ),
                Reply::Status(status) => (status, String::new()),
                Reply::Down | Reply::CommitThenDown => {
                    return Err(Error::unreachable(
                        endpoint,
                        &uri,
                        std::io::Error::other("connection refused"),
                    ))
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
