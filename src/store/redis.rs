//! [`RedisStore`]: tokens in Redis, shared by a fleet of replicas.

use std::{
    fmt, io,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Client, ConnectionAddr, FromRedisValue, RedisError, Script,
};
use zeroize::Zeroizing;

use super::{BoxFuture, FailureNotice, Lease, StoreError, StoreKey, TokenRecord, TokenStore};
use crate::Error;

/// The key prefix unless [`RedisStore::key_prefix`] sets another.
const DEFAULT_PREFIX: &str = "simacan-auth:";
/// How long a record lives after its last write unless
/// [`RedisStore::record_ttl`] says otherwise.
const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How long one operation may take unless [`RedisStore::timeout`] says
/// otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest expiry sent to Redis, far below what it accepts.
const LONGEST_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Takes the lease unless another owner holds it. The owner is fresh for
/// every call, so finding it already stored means this very call ran before
/// and only its reply was lost: it keeps the lease it took.
static TRY_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
            return 1
        end
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return 1
        end
        return 0
        ",
    )
});

/// Extends the lease only while the caller still owns it.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return 1
        end
        return 0
        ",
    )
});

/// Frees the lease only while the caller still owns it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('DEL', KEYS[1])
        end
        return 0
        ",
    )
});

/// Compare and swap on the generation. ARGV: the expected generation (''
/// for no record), the new generation, the encoded record, the record's time
/// to live in milliseconds ('' for none). A record that already is exactly
/// the one being written was written by this very call, whose reply was
/// lost: that counts as written.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local current = redis.call('HGET', KEYS[1], 'generation') or ''
        if current == ARGV[1] then
            redis.call('HSET', KEYS[1], 'generation', ARGV[2], 'record', ARGV[3])
            if ARGV[4] == '' then
                redis.call('PERSIST', KEYS[1])
            else
                redis.call('PEXPIRE', KEYS[1], ARGV[4])
            end
            return 1
        end
        if current == ARGV[2] and redis.call('HGET', KEYS[1], 'record') == ARGV[3] then
            return 1
        end
        return 0
        ",
    )
});

/// Tokens in Redis, for a fleet of replicas sharing one credential: every
/// replica given the same Redis URL and key prefix shares one login and one
/// refresh chain per [`StoreKey`].
///
/// [`open`](Self::open) only checks the URL; the connection is made on first
/// use, on the Tokio runtime of that use, and remade after Redis restarts
/// or the network drops it. Clones share that connection; configure a store
/// before cloning it.
///
/// # Keys
///
/// | key | holds | written by |
/// |---|---|---|
/// | `{prefix}{fingerprint}` | a hash: `generation` (decimal) and `record` ([`TokenRecord::encode`]d bytes), expiring [`record_ttl`](Self::record_ttl) after its last write | [`save`](TokenStore::save) |
/// | `{prefix}{fingerprint}:lease` | the lease owner, expiring with the lease | [`try_lease`](TokenStore::try_lease), [`renew`](TokenStore::renew), [`release`](TokenStore::release) |
///
/// The fingerprint is [`StoreKey::fingerprint`]; the record keeps the key
/// itself too, and a record found under the right fingerprint but for
/// another key is logged and treated as absent.
///
/// # How each [guarantee](super#what-a-store-must-guarantee) is kept across processes
///
/// - **One lease holder per key, fleet-wide.** Taking the lease is
///   `SET … NX PX ttl` with a fresh random owner, in a Lua script; renewing
///   and releasing are Lua scripts that act only while the stored owner is
///   the caller's, so a holder whose lease expired and was taken can neither
///   extend nor free the new holder's lease. Redis expires a dead holder's
///   lease by itself.
/// - **A write never overwrites a record it did not see.** `save` is one Lua
///   script: it compares the stored `generation` with the expected one and
///   writes the hash only when they match.
/// - **Retrying is safe.** After Redis restarts or a connection drops, an
///   operation is sent once more on a fresh connection. Each script has the
///   same effect run twice as once (a lease or a record it already wrote is
///   recognised as its own), so a reply lost with the old connection never
///   turns into a wrong answer.
/// - **A hung Redis cannot hang a caller.** Each operation, connecting
///   included, fails with [`Unavailable`](super::StoreErrorKind::Unavailable)
///   after [`timeout`](Self::timeout).
/// - **An unreadable record is an error, not an absence.**
///   [`load`](TokenStore::load) logs a warning and fails with
///   [`Corrupt`](super::StoreErrorKind::Corrupt), and the record is left as
///   it is: Redis writes are atomic, so a record cannot be torn, and one this
///   release cannot read was most likely written by a newer release during a
///   rolling upgrade, whose replicas still need it.
///   [`remove`](TokenStore::remove) clears it.
///
/// # TLS
///
/// `rediss://` goes through rustls with the ring provider and the webpki
/// root certificates, as the crate's HTTPS does; certificates are always
/// verified. redis-rs builds its TLS configuration on rustls's process-wide
/// provider, so when none is installed by the first TLS connection, the
/// store installs ring.
///
/// `Debug` shows the address, database and prefix, never the password.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use simacan_auth::{store::RedisStore, Credentials, SimacanAuthLayer};
///
/// # fn run() -> Result<(), simacan_auth::Error> {
/// let store = RedisStore::open("rediss://:password@redis.internal:6380/2")?
///     .key_prefix("planning:simacan-auth:")
///     .timeout(Duration::from_secs(1));
/// assert!(!format!("{store:?}").contains("password"));
/// let layer = SimacanAuthLayer::new(Credentials::from_env()?).token_store(store);
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    redis: Arc<Redis>,
    prefix: String,
    record_ttl: Option<Duration>,
    timeout: Duration,
}

/// The connection shared by clones.
struct Redis {
    client: Client,
    manager: Mutex<Option<ConnectionManager>>,
    /// `host:port` or a socket path: never the password.
    address: String,
    db: i64,
    tls: bool,
}

impl RedisStore {
    /// A store at `url`: `redis://[[user]:password@]host[:port][/db]`,
    /// `rediss://…` for TLS, or `redis+unix:///path/to/socket[?db=N&pass=…]`.
    /// The password, when given, is sent with `AUTH` on every connection.
    /// Nothing is connected until the store is first used.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) when the URL does not parse, has
    /// another scheme, has a fragment (such as `#insecure`: certificates are
    /// always verified), or does not name a Redis server. The reason never
    /// repeats the URL.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{store::RedisStore, Error};
    ///
    /// assert!(RedisStore::open("redis://127.0.0.1:6379").is_ok());
    /// assert!(RedisStore::open("rediss://redis.internal:6380/1").is_ok());
    /// let refused = RedisStore::open("http://:secret@127.0.0.1:6379").unwrap_err();
    /// assert!(refused.kind() == simacan_auth::ErrorKind::Configuration);
    /// assert!(!refused.to_string().contains("secret"));
    /// ```
    pub fn open(url: impl AsRef<str>) -> Result<RedisStore, Error> {
        let invalid = Error::config;
        let parsed = url::Url::parse(url.as_ref())
            .map_err(|e| invalid(format!("redis url does not parse: {e}")))?;
        if !matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix") {
            return Err(invalid(
                "redis url must start with redis://, rediss:// or redis+unix://".into(),
            ));
        }
        if parsed.fragment().is_some() {
            return Err(invalid(
                "redis url must not have a fragment: tls certificates are always verified".into(),
            ));
        }
        let client = Client::open(parsed)
            .map_err(|e| invalid(format!("redis url is invalid: {}", describe(&e))))?;
        let info = client.get_connection_info();
        let (address, tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host_port(host, *port), false),
            ConnectionAddr::TcpTls { host, port, .. } => (host_port(host, *port), true),
            other => (other.to_string(), false),
        };
        let db = info.redis_settings().db();
        Ok(RedisStore {
            redis: Arc::new(Redis {
                client,
                manager: Mutex::new(None),
                address,
                db,
                tls,
            }),
            prefix: DEFAULT_PREFIX.to_owned(),
            record_ttl: Some(DEFAULT_RECORD_TTL),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Puts `prefix` before every key the store writes, so several
    /// applications or environments can share one Redis database. Replicas
    /// share tokens only when they use the same prefix. Defaults to
    /// `"simacan-auth:"`.
    ///
    /// # Example
    ///
    /// ```
    /// # use simacan_auth::store::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1")?.key_prefix("billing:simacan-auth:");
    /// assert!(format!("{store:?}").contains("billing:simacan-auth:"));
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a record stays in Redis after its last write; `None` keeps
    /// it until [`remove`](TokenStore::remove)d. Defaults to 30 days: a
    /// record no replica has written for that long belongs to a fleet that
    /// has been gone or idle as long, and its tokens are long expired.
    /// Dropping it keeps stale secrets out of Redis and costs a returning
    /// fleet one password login.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::store::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1")?.record_ttl(Some(Duration::from_secs(7 * 86_400)));
    /// # let _ = store;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    #[must_use]
    pub fn record_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.record_ttl = ttl;
        self
    }

    /// The longest one operation may take, connecting included, before it
    /// fails with [`Unavailable`](super::StoreErrorKind::Unavailable).
    /// Defaults to 2 seconds. The connection made on first use times out
    /// connecting and reading by the timeout of the store that made it.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::store::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1")?.timeout(Duration::from_millis(500));
    /// # let _ = store;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn record_key(&self, key: &StoreKey) -> String {
        format!("{}{}", self.prefix, key.fingerprint())
    }

    fn lease_key(&self, key: &StoreKey) -> String {
        format!("{}{}:lease", self.prefix, key.fingerprint())
    }

    fn failure_key(&self, key: &StoreKey) -> String {
        format!("{}{}:failure", self.prefix, key.fingerprint())
    }

    /// The shared connection manager, made on first use.
    fn manager(&self) -> Result<ConnectionManager, RedisError> {
        let mut manager = self.redis.manager.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(manager) = manager.as_ref() {
            return Ok(manager.clone());
        }
        if self.redis.tls && rustls::crypto::CryptoProvider::get_default().is_none() {
            // redis-rs builds its TLS configuration on the process-wide
            // provider; with more than one compiled in, rustls cannot pick.
            let _ = crate::crypto::ring().install_default();
        }
        // Reconnecting is retried by `call`, within the operation's time.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let made = ConnectionManager::new_lazy_with_config(self.redis.client.clone(), config)?;
        *manager = Some(made.clone());
        Ok(made)
    }

    /// Sends `request`, once more if the connection turned out dropped (a
    /// Redis restart), all within the store's timeout.
    async fn call<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(self.unavailable("redis store used outside a tokio runtime"));
        }
        let attempts = async {
            let mut manager = self.manager()?;
            match request.send(&mut manager).await {
                Err(e) if e.is_connection_dropped() => request.send(&mut manager).await,
                sent => sent,
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.code() == Some("WRONGTYPE") => Err(StoreError::corrupt(format!(
                "a redis key under prefix {:?} holds data that is not the store's",
                self.prefix
            ))),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {:?}", self.timeout),
            ))),
        }
    }

    fn unavailable(
        &self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::unavailable(format!("redis at {}", self.redis.address), source)
    }
}

/// One command or one script call, sent as often as `call` needs.
enum Request<'a> {
    Command(redis::Cmd),
    Script(redis::ScriptInvocation<'a>),
}

impl Request<'_> {
    async fn send<T: FromRedisValue>(
        &self,
        manager: &mut ConnectionManager,
    ) -> Result<T, RedisError> {
        match self {
            Request::Command(command) => command.query_async(manager).await,
            Request::Script(script) => script.invoke_async(manager).await,
        }
    }
}

fn script<'a>(script: &'a Script, key: String, args: &[&[u8]]) -> Request<'a> {
    let mut invocation = script.key(key);
    for arg in args {
        invocation.arg(*arg);
    }
    Request::Script(invocation)
}

/// Milliseconds for `PX`/`PEXPIRE`: at least 1 (Redis refuses 0), at most
/// [`LONGEST_TTL`].
fn millis(ttl: Duration) -> String {
    ttl.clamp(Duration::from_millis(1), LONGEST_TTL)
        .as_millis()
        .to_string()
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A redis-rs error's description, lowercase, without its kind's name.
fn describe(error: &RedisError) -> String {
    let text = error.to_string();
    let description = text.split(" - ").next().unwrap_or_default();
    let mut chars = description.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

impl TokenStore for RedisStore {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        Box::pin(async move {
            let redis_key = self.record_key(key);
            let fields = redis::cmd("HMGET")
                .arg(&redis_key)
                .arg("generation")
                .arg("record")
                .clone();
            let (generation, bytes): (Option<Vec<u8>>, Option<Vec<u8>>) =
                self.call(Request::Command(fields)).await?;
            let (generation, bytes) = match (generation, bytes) {
                (None, None) => return Ok(None),
                (Some(generation), Some(bytes)) => (generation, Zeroizing::new(bytes)),
                _ => {
                    tracing::warn!(key = %redis_key, "token record in redis lacks a field");
                    return Err(StoreError::corrupt("token record in redis lacks a field"));
                }
            };
            let record = TokenRecord::decode(&bytes).inspect_err(|error| {
                tracing::warn!(key = %redis_key, %error, "token record in redis cannot be read");
            })?;
            if record.generation().to_string().as_bytes() != generation {
                tracing::warn!(key = %redis_key, "token record in redis disagrees with its generation");
                return Err(StoreError::corrupt(
                    "token record in redis disagrees with its generation",
                ));
            }
            if record.key() != key {
                tracing::warn!(
                    key = %redis_key,
                    wanted = %key,
                    found = %record.key(),
                    "token record in redis belongs to another key with the same fingerprint"
                );
                return Ok(None);
            }
            Ok(Some(record))
        })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        Box::pin(async move {
            let owner = Lease::random_owner();
            let ttl = millis(ttl);
            let args: [&[u8]; 2] = [owner.as_bytes(), ttl.as_bytes()];
            let taken: bool = self
                .call(script(&TRY_LEASE, self.lease_key(key), &args))
                .await?;
            Ok(taken.then(|| Lease::new(key.clone(), owner)))
        })
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let ttl = millis(ttl);
            let args: [&[u8]; 2] = [lease.owner().as_bytes(), ttl.as_bytes()];
            self.call(script(&RENEW, self.lease_key(lease.key()), &args))
                .await
        })
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let args: [&[u8]; 1] = [lease.owner().as_bytes()];
            self.call(script(&RELEASE, self.lease_key(lease.key()), &args))
                .await
        })
    }

    fn save<'a>(
        &'a self,
        _lease: &'a Lease,
        record: &'a TokenRecord,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let expected = expected.map(|g| g.to_string()).unwrap_or_default();
            let generation = record.generation().to_string();
            let encoded = record.encode();
            let ttl = self.record_ttl.map(millis).unwrap_or_default();
            let args: [&[u8]; 4] = [
                expected.as_bytes(),
                generation.as_bytes(),
                &encoded,
                ttl.as_bytes(),
            ];
            self.call(script(&SAVE, self.record_key(record.key()), &args))
                .await
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let delete = redis::cmd("DEL")
                .arg(self.record_key(key))
                .arg(self.failure_key(key))
                .clone();
            self.call(Request::Command(delete)).await
        })
    }

    /// `SET {prefix}{fingerprint}:failure … PX`: it expires with its notice.
    fn save_failure<'a>(
        &'a self,
        _lease: &'a Lease,
        notice: &'a FailureNotice,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let left = notice
                .until()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                .max(Duration::from_millis(1));
            let set = redis::cmd("SET")
                .arg(self.failure_key(notice.key()))
                .arg(notice.encode())
                .arg("PX")
                .arg(millis(left))
                .clone();
            self.call(Request::Command(set)).await
        })
    }

    fn load_failure<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<FailureNotice>, StoreError>> {
        Box::pin(async move {
            let get = redis::cmd("GET").arg(self.failure_key(key)).clone();
            let bytes: Option<Vec<u8>> = self.call(Request::Command(get)).await?;
            // Advisory: a notice that cannot be read is none.
            Ok(bytes
                .and_then(|bytes| FailureNotice::decode(&bytes).ok())
                .filter(|notice| notice.key() == key))
        })
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.redis.address)
            .field("db", &self.redis.db)
            .field("tls", &self.redis.tls)
            .field("prefix", &self.prefix)
            .field("record_ttl", &self.record_ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        match RedisStore::open(url) {
            Err(error) if error.kind() == crate::ErrorKind::Configuration => error
                .to_string()
                .trim_start_matches("invalid configuration: ")
                .to_owned(),
            other => panic!("{url} gave {other:?}"),
        }
    }

    #[test]
    fn urls_are_checked_without_repeating_them() {
        for url in [
            "",
            "not a url",
            "redis://",
            "http://:hunter2@127.0.0.1:6379",
            "valkey://:hunter2@127.0.0.1:6379",
            "rediss://:hunter2@127.0.0.1:6379/#insecure",
            "redis://:hunter2@127.0.0.1:6379/notadb",
            "redis://:hunter2@127.0.0.1:99999",
            "redis://:hunter2@0.0.0.0:6379",
            "redis://:hunter2@127.0.0.1:6379/?protocol=resp9",
        ] {
            let reason = reason(url);
            assert!(!reason.contains("hunter2"), "{url}: {reason}");
            assert!(reason.starts_with("redis url "), "{url}: {reason}");
        }
    }

    #[test]
    fn debug_shows_where_not_the_password() {
        let store = RedisStore::open("rediss://user:hunter2@cache.internal:6380/3").unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        for part in ["cache.internal:6380", "db: 3", "tls: true", "simacan-auth:"] {
            assert!(shown.contains(part), "{shown} lacks {part}");
        }
        let v6 = RedisStore::open("redis://[::1]:7000").unwrap();
        assert!(format!("{v6:?}").contains("\"[::1]:7000\""));
    }

    #[test]
    fn keys_are_prefixed_fingerprints() {
        let key = StoreKey::new("https://auth-service.services.simacan.com/api/v1", "u");
        let store = RedisStore::open("redis://127.0.0.1")
            .unwrap()
            .key_prefix("p:");
        assert_eq!(store.record_key(&key), "p:c899cab5b66fb71d17f0ca301e7a9d64");
        assert_eq!(
            store.lease_key(&key),
            "p:c899cab5b66fb71d17f0ca301e7a9d64:lease"
        );
    }

    #[test]
    fn expiries_stay_in_the_range_redis_accepts() {
        assert_eq!(millis(Duration::ZERO), "1");
        assert_eq!(millis(Duration::from_millis(1500)), "1500");
        assert_eq!(millis(Duration::MAX), LONGEST_TTL.as_millis().to_string());
    }
}
