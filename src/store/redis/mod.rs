//! [`RedisStore`]: tokens in Redis, shared by a fleet of replicas: one
//! server, a primary found through Sentinel, or a Cluster.

mod announcements;
mod deployment;
mod seal;

use std::{
    collections::HashMap,
    fmt, io,
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{FromRedisValue, RedisError, Role, Script};
use zeroize::Zeroizing;

use self::{
    announcements::{Listener, listen, removal},
    deployment::{Connection, Deployment, DeploymentKind},
    seal::{Seal, Seals},
};
use super::{
    BoxFuture, Changes, FailureNotice, Lease, Look, Marking, StoreError, StoreKey, TokenRecord,
    TokenStore,
};
use crate::Error;

/// The key prefix unless [`RedisStore::key_prefix`] sets another.
const DEFAULT_PREFIX: &str = "simacan-auth:";
/// How long a record lives after its last write unless
/// [`RedisStore::record_ttl`] says otherwise.
const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How long one operation may take unless [`RedisStore::timeout`] says
/// otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a save waits for a replica's acknowledgement unless
/// [`RedisStore::replica_ack_timeout`] says otherwise.
const DEFAULT_REPLICA_ACK_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the answer to "has the primary a replica?" is trusted.
const REPLICAS_ASKED_EVERY: Duration = Duration::from_secs(1);
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

/// One look (see [`TokenStore::look`]): the failure notice KEYS[1] read,
/// the lease KEYS[2] tried as [`TRY_LEASE`] does (ARGV: the owner, the
/// time to live in milliseconds), and the record KEYS[3] read, in one
/// request; with a marking (ARGV: the expected record's generation and
/// bytes, the marked record's, its time to live in milliseconds or ''),
/// the marked record written when the lease was taken and the expected
/// record found. Returns the notice, 1 or 0 for the lease, the record's
/// generation and bytes as found, 1 or 0 for the marking, and 1 when the
/// record found is the expected one, whose bytes are then left out (the
/// caller has them).
///
/// A marking is written with the look's owner in the field `marker`. The
/// owner is fresh for every look, so finding the lease already its own
/// means this very call ran before and only its reply was lost; if the
/// record then is the marked one and its marker the owner, that run wrote
/// it, and this one answers as that run would have. Any other marked
/// record found, however alike (markings of one record are), was written
/// by another holder and is not this look's. A marking is written again by
/// the repeated call, so that a `WAIT` after it has a write to wait for.
static LOOK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local notice = redis.call('GET', KEYS[1])
        local taken = 0
        local again = false
        if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
            taken = 1
        elseif redis.call('GET', KEYS[2]) == ARGV[1] then
            redis.call('PEXPIRE', KEYS[2], ARGV[2])
            taken = 1
            again = true
        end
        local record = redis.call('HMGET', KEYS[3], 'generation', 'record')
        local marked = 0
        if taken == 1 and ARGV[4] then
            local mark = record[2] == ARGV[4] and record[1] == ARGV[3]
            if again and record[2] == ARGV[6]
                and redis.call('HGET', KEYS[3], 'marker') == ARGV[1] then
                record = {ARGV[3], ARGV[4]}
                mark = true
            end
            if mark then
                redis.call('HSET', KEYS[3], 'generation', ARGV[5], 'record', ARGV[6],
                    'marker', ARGV[1])
                if ARGV[7] == '' then
                    redis.call('PERSIST', KEYS[3])
                else
                    redis.call('PEXPIRE', KEYS[3], ARGV[7])
                end
                marked = 1
            end
        end
        if ARGV[4] and record[2] == ARGV[4] and record[1] == ARGV[3] then
            return {notice, taken, record[1], false, marked, 1}
        end
        return {notice, taken, record[1], record[2], marked, 0}
        ",
    )
});

/// What [`LOOK`] answers: the notice, the lease taken, the record's
/// generation and bytes (none when it is the expected one), the marking
/// made, and whether the record is the expected one.
type LookAnswer = (
    Option<Vec<u8>>,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    i64,
);

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

/// Frees the lease only while the caller still owns it, and announces it on
/// the channel ARGV[2].
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('DEL', KEYS[1])
            redis.call('PUBLISH', ARGV[2], KEYS[1])
        end
        return 0
        ",
    )
});

/// Leaves a failure notice (ARGV: the notice, its time to live in
/// milliseconds) and announces it on the channel ARGV[3] (a script, so
/// that the `PUBLISH` goes with the key to its Cluster node).
static NOTICE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        redis.call('PUBLISH', ARGV[3], KEYS[1])
        return 1
        ",
    )
});

/// Removes the record, the notice and the seal, and announces it on the
/// channel ARGV[1] with the message ARGV[2] (which key).
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
        redis.call('PUBLISH', ARGV[1], ARGV[2])
        return 1
        ",
    )
});

/// Compare and swap on the generation of the record KEYS[1]. ARGV: the
/// expected generation ('' for no record), the new generation, the encoded
/// record, the record's time to live in milliseconds ('' for none), the
/// channel on which the write is announced ('' for none), the record's key
/// (the plain announcement), the record sealed, the seal it was sealed
/// with ('' and '' for none), and '1' when that seal is new (made by the
/// caller, which knows none). A record that already is exactly the one
/// being written was written by this very call, whose reply was lost: that
/// counts as written, and is written again (not announced again), so that
/// a `WAIT` after it has a write to wait for.
///
/// The sealed record is announced when its seal is the credential's, at
/// KEYS[2]; a new seal is stored there when there is none. Otherwise the
/// record's key is. The seal's expiry follows the record's. The seal is
/// read before anything is written, so that a key of another type there
/// fails nothing (the record is then announced by key).
///
/// Returns 0 when not written; when written: 1 (nothing announced, no
/// seal given, or a key of another type where the seal goes), 2 (announced sealed: the caller's seal is the
/// credential's), 3 (announced by key: the credential has no seal and the
/// caller's was not new, so it is gone), or the stored seal (announced by
/// key: the caller's seal was another).
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local sealing = ARGV[5] ~= '' and ARGV[8] ~= ''
        local seal = false
        if sealing then
            local found = redis.pcall('GET', KEYS[2])
            if type(found) == 'table' then
                sealing = false
            else
                seal = found
            end
        end
        local current = redis.call('HGET', KEYS[1], 'generation') or ''
        local again = current == ARGV[2] and redis.call('HGET', KEYS[1], 'record') == ARGV[3]
        if current ~= ARGV[1] and not again then
            return 0
        end
        redis.call('HSET', KEYS[1], 'generation', ARGV[2], 'record', ARGV[3])
        redis.call('HDEL', KEYS[1], 'marker')
        if ARGV[4] == '' then
            redis.call('PERSIST', KEYS[1])
        else
            redis.call('PEXPIRE', KEYS[1], ARGV[4])
        end
        if ARGV[5] == '' then
            return 1
        end
        local message = ARGV[6]
        local answer = 1
        if sealing then
            if not seal and ARGV[9] == '1' then
                redis.call('SET', KEYS[2], ARGV[8])
                seal = ARGV[8]
            end
            if seal then
                if ARGV[4] == '' then
                    redis.call('PERSIST', KEYS[2])
                else
                    redis.call('PEXPIRE', KEYS[2], ARGV[4])
                end
            end
            if seal == ARGV[8] then
                message = ARGV[7]
                answer = 2
            elseif seal then
                answer = seal
            else
                answer = 3
            end
        end
        if not again then
            redis.call('PUBLISH', ARGV[5], message)
        end
        return answer
        ",
    )
});

/// The seal of a credential, KEYS[1]: ARGV[1] stored when there is none,
/// expiring after ARGV[2] milliseconds ('' for never). Returns the stored
/// seal.
static SEAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if ARGV[2] == '' then
            redis.call('SET', KEYS[1], ARGV[1], 'NX')
        else
            redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
        end
        return redis.call('GET', KEYS[1])
        ",
    )
});

/// Tokens in Redis, for a fleet of replicas sharing one credential: every
/// replica given the same Redis URL and key prefix shares one login and one
/// refresh chain per [`StoreKey`].
///
/// [`open`](Self::open) only checks the URL; the connection is made on first
/// use, on the Tokio runtime of that use, and remade after Redis restarts,
/// a failover, or the network drops it. Clones share that connection;
/// configure a store before cloning it.
///
/// # Which Redis deployments
///
/// | deployment | URL | what the store does |
/// |---|---|---|
/// | one server | `redis://[[user]:password@]host[:port][/db]`, `rediss://…` (TLS), `redis+unix:///path[?db=N&pass=…]` | one connection, remade after a restart |
/// | Sentinel | `redis+sentinel://[[user]:password@]sentinel[:port][,sentinel[:port]…]/master[/db]`, `rediss+sentinel://…` (TLS to sentinels and servers) | asks the sentinels for the primary (default port 26379), and asks again when the primary's connection drops or it answers `READONLY` |
/// | Cluster | `redis+cluster://[[user]:password@]node[:port][,node[:port]…]`, `rediss+cluster://…` | redis-rs's cluster client, which learns the slots from the seed nodes and follows `MOVED` and `ASK` |
///
/// The user and password of the URL are sent with `AUTH` to the servers
/// (the primary and replicas, every cluster node). Sentinels that require
/// a password of their own get it from the parameters
/// `sentinel_username` and `sentinel_password`.
///
/// ```
/// use simacan_auth::store::RedisStore;
///
/// // One server.
/// let one = RedisStore::open("rediss://:secret@redis.internal:6380/2")?;
/// // Three sentinels watching the master `tokens`, database 2.
/// let sentinel = RedisStore::open(
///     "redis+sentinel://:secret@10.0.0.1,10.0.0.2,10.0.0.3:26380/tokens/2?sentinel_password=watch",
/// )?;
/// // A cluster, reached through any of its nodes.
/// let cluster = RedisStore::open("rediss+cluster://:secret@10.0.1.1:7000,10.0.1.2:7000")?;
/// assert!(format!("{sentinel:?}").contains("Sentinel(\"tokens\")"));
/// # let _ = (one, cluster);
/// # Ok::<(), simacan_auth::Error>(())
/// ```
///
/// **What a failover costs.** While Sentinel or the Cluster has not yet
/// promoted a replica (its down-after time plus the election, typically a
/// few seconds), store operations fail with
/// [`Unavailable`](super::StoreErrorKind::Unavailable): requests with a
/// valid token go on from memory, and those that need a token wait for the
/// store on its retry schedule or fail. After the promotion the next
/// operation reaches the new primary, with no restart and, because every
/// write was acknowledged by a replica (below), with the token and refresh
/// token the fleet last saved: no extra password login.
///
/// # Writes wait for a replica
///
/// Redis replicates asynchronously: a primary that dies right after a save
/// can be replaced by a replica that never saw it, whose record still
/// holds a refresh token the Auth API already rotated. So each successful
/// save (the refresh token marked as sent, the new token), and each look
/// that carries a [`Marking`](super::Marking), is followed by `WAIT 1 <ms>`
/// on the same connection, in the same pipeline, whenever the primary has
/// a replica connected (it is asked with `ROLE`, at most once a second per
/// key); for a look that wrote nothing it waits only for the connection's
/// earlier writes (at once, unless a replica lags). A look's
/// marking that no replica acknowledged is reported as not made, and the
/// holder writes the same record again, which waits again. [`replica_ack_timeout`](Self::replica_ack_timeout)
/// sets how long the wait may be (500 ms by default) or turns it off.
///
/// When no replica acknowledges in time, the save fails with
/// [`Unavailable`](super::StoreErrorKind::Unavailable) although the
/// primary holds it. The token state retries it (a save already written is
/// written again, and counts once a replica acknowledges it) while it
/// holds the lease, for up to 2.5 s. If the
/// replicas stay behind: a refresh token whose marking was not
/// acknowledged is not sent (requests that need a token get a store error
/// until a replica catches up or the primary has none left); a new token
/// whose save was not acknowledged is kept by its process, is on the
/// primary for the others to use, and is lost only if the primary fails
/// before a replica has it, which then costs one password login. A
/// primary with no replica connected saves without waiting.
///
/// # Waiters are woken
///
/// Every write of the store (a saved record, a released lease, a failure
/// notice, a removal) is published on the channel `{prefix}changes`
/// (`{prefix}changes:<db>` for a database other than 0), in the same
/// script as the write; a record saved without a refresh token (a refresh
/// token marked as sent) is not, as it gives waiters nothing to use.
///
/// **A saved record is published sealed**, and replicas take the new token
/// from the message: a replica waiting for the lease holder uses it the
/// moment it arrives, and one whose 401 comes after the save makes no
/// Redis call at all. Each credential has a seal, 32 random bytes under
/// `{prefix}{<fingerprint>}:seal`, made by the first process that needs it
/// and given the record's time to live, which each announced save renews;
/// the record is encrypted and authenticated under it with
/// ChaCha20-Poly1305, bound to its record key. So the channel carries no
/// token in the clear: whoever can subscribe but not read the store's keys
/// sees bytes they cannot open, and whoever can publish but not read the
/// seal cannot make a message a replica believes. Whoever can read the
/// seal can read the record itself, and with the right to publish can
/// also hand replicas a record: grant both only to the store's users. A
/// record published again (by someone who can publish) is not handed over
/// by a process that already handed over one as new or newer under the
/// same seal.
///
/// A process learns a credential's seal with a command sent alongside a
/// look (the look does not wait for it; one at a time, and not again for
/// 5 s after one failed), or from a save. A message it cannot open (a seal
/// it has not learnt yet, one replaced since, a stranger's message) only
/// wakes its waiters, who read the record, and the process asks for the
/// seal again at its next look. Writing other random bytes to the seal key
/// rotates it: a writer learns the new seal from its next save, the others
/// at their next look. A removal ([`remove`](TokenStore::remove)) deletes
/// the seal: its process forgets it, those that hear the removal ask for
/// it again, a writer that still remembers it learns from its next save
/// that it is gone (and never stores it again), and the next save or look
/// makes a new one.
///
/// A message goes out with its write, before the
/// [replica's acknowledgement](Self#writes-wait-for-a-replica); a token
/// taken from it that a failover then loses is still a valid token, and
/// its refresh token is never sent from a message (a holder sends only the
/// one the store holds), so such a loss costs what the failover costs
/// anyway: one password login.
///
/// Each store subscribes on a connection of its own (one per channel,
/// shared by clones, with the same TLS and AUTH), made the first time a
/// token state needs a newer token ([`changes`](TokenStore::changes)). The
/// subscription is made again when it breaks (a restart, a failover of a
/// single server or Sentinel primary; after 100 ms, doubling to 2 s), and
/// until then the records it handed over are forgotten, token states read
/// the store, and waiters look every 5 to 100 ms as they would without it.
/// A subscription that hears nothing for a second sends a `PING`, and one
/// not answered within the store's timeout counts as broken, so that a
/// connection that died without a reset (a host gone, a paused server) is
/// found out too. In a Cluster the subscription is on one node (a Cluster
/// passes every `PUBLISH` on to all its nodes), so a failover of another
/// node's slots does not break it: a record it handed over earlier may
/// then outlive a lost write, at the cost above.
///
/// A token state that needs a newer token and finds none in the
/// subscription makes one [`look`](TokenStore::look): one script reads the
/// failure notice, tries the lease, reads the record and, for the replica
/// that takes the lease, marks the refresh token it is about to send, so
/// that a 401 storm costs each replica one round trip and Redis one command
/// (with a replica connected, a `WAIT` in the same pipeline, and at most
/// once a second a `ROLE` before it; in a Cluster, three commands sent
/// together, which follow a moving slot, and the marking saved and the
/// lease renewed after them; a process that has not learnt the
/// credential's seal, or doubts it, sends one more command alongside, until
/// it has it). When the record found is the one the marking expected, its
/// bytes are not sent back.
///
/// # Keys
///
/// | key | holds | written by |
/// |---|---|---|
/// | `{prefix}{<fingerprint>}` | a hash: `generation` (decimal) and `record` ([`TokenRecord::encode`]d bytes), expiring [`record_ttl`](Self::record_ttl) after its last write | [`save`](TokenStore::save) |
/// | `{prefix}{<fingerprint>}:lease` | the lease owner, expiring with the lease | [`try_lease`](TokenStore::try_lease), [`renew`](TokenStore::renew), [`release`](TokenStore::release) |
/// | `{prefix}{<fingerprint>}:failure` | a [`FailureNotice`], expiring with it | [`save_failure`](TokenStore::save_failure) |
/// | `{prefix}{<fingerprint>}:seal` | the credential's seal (32 random bytes), expiring with the record | [`look`](TokenStore::look) and [`save`](TokenStore::save) when there is none; deleted by [`remove`](TokenStore::remove) |
///
/// The fingerprint is [`StoreKey::fingerprint`], in braces: a Cluster hash
/// tag, so that every key of one credential lands in one hash slot (on a
/// single server the braces are just characters). The record keeps the key
/// itself too, and a record found under the right fingerprint but for
/// another key is logged and treated as absent. A save names the record
/// and the seal, and a removal the record, the notice and the seal: while
/// their slot moves to another Cluster node, a node refuses such a script
/// for the moment its keys are apart (`TRYAGAIN`), which redis-rs retries
/// within the store's timeout and the token state retries for 2.5 s.
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
/// - **Retrying is safe.** After Redis restarts, a failover or a dropped
///   connection, an operation is sent once more on a fresh connection. Each
///   script has the same effect run twice as once (a lease or a record it
///   already wrote is recognised as its own: a look's marking only when
///   the lease too is the look's own), so a reply lost with the old
///   connection never turns into a wrong answer.
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
/// `rediss://`, `rediss+sentinel://` and `rediss+cluster://` go through
/// rustls with the ring provider and the webpki root certificates, as the
/// crate's HTTPS does; certificates are always verified. redis-rs builds its
/// TLS configuration on rustls's process-wide provider, so when none is
/// installed by the first TLS connection, the store installs ring.
///
/// `Debug` shows the deployment, addresses, database and prefix, never a
/// password.
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
    replica_ack_timeout: Option<Duration>,
}

/// The connection shared by clones.
struct Redis {
    deployment: Deployment,
    /// The connection in use and its number, made on first use.
    connection: tokio::sync::Mutex<Option<(u64, Connection)>>,
    connections_made: AtomicU64,
    /// Whether the primary of a record key had a replica, and when that
    /// was asked.
    replicas: Mutex<HashMap<String, (Instant, bool)>>,
    /// The subscription to each channel clones use (one per key prefix).
    listeners: Mutex<HashMap<String, Listener>>,
    /// The seals of the credentials this process looked at or saved.
    seals: Seals,
    /// Where, for errors and `Debug`: never the password.
    address: String,
    db: i64,
    tls: bool,
}

impl RedisStore {
    /// A store at `url`, for one server, a Sentinel deployment or a Cluster
    /// (see [Which Redis deployments](Self#which-redis-deployments)). The
    /// password, when given, is sent with `AUTH` on every connection.
    /// Nothing is connected until the store is first used.
    ///
    /// # Errors
    ///
    /// An error of kind [`Configuration`](crate::ErrorKind::Configuration) when the URL does not parse, has
    /// another scheme, has a fragment (such as `#insecure`: certificates are
    /// always verified), or does not name a Redis server, a master behind
    /// sentinels, or cluster nodes. The reason never repeats the URL.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::{store::RedisStore, Error};
    ///
    /// assert!(RedisStore::open("redis://127.0.0.1:6379").is_ok());
    /// assert!(RedisStore::open("rediss://redis.internal:6380/1").is_ok());
    /// assert!(RedisStore::open("redis+sentinel://10.0.0.1,10.0.0.2/tokens").is_ok());
    /// assert!(RedisStore::open("redis+cluster://10.0.1.1:7000,10.0.1.2:7000").is_ok());
    /// let refused = RedisStore::open("http://:secret@127.0.0.1:6379").unwrap_err();
    /// assert!(refused.kind() == simacan_auth::ErrorKind::Configuration);
    /// assert!(!refused.to_string().contains("secret"));
    /// ```
    pub fn open(url: impl AsRef<str>) -> Result<RedisStore, Error> {
        let parsed = deployment::parse(url.as_ref()).map_err(Error::config)?;
        Ok(RedisStore {
            redis: Arc::new(Redis {
                deployment: parsed.deployment,
                connection: tokio::sync::Mutex::new(None),
                connections_made: AtomicU64::new(0),
                replicas: Mutex::new(HashMap::new()),
                listeners: Mutex::new(HashMap::new()),
                seals: Seals::default(),
                address: parsed.address,
                db: parsed.db,
                tls: parsed.tls,
            }),
            prefix: DEFAULT_PREFIX.to_owned(),
            record_ttl: Some(DEFAULT_RECORD_TTL),
            timeout: DEFAULT_TIMEOUT,
            replica_ack_timeout: Some(DEFAULT_REPLICA_ACK_TIMEOUT),
        })
    }

    /// Puts `prefix` before every key the store writes, so several
    /// applications or environments can share one Redis database. Replicas
    /// share tokens only when they use the same prefix. Defaults to
    /// `"simacan-auth:"`.
    ///
    /// Keep braces out of a prefix for a Cluster: the fingerprint's braces
    /// after it are the hash tag, and a `{…}` before them would be taken
    /// instead (an empty `{}` would spread one credential's keys over
    /// several slots).
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

    /// How long a save waits for a replica to acknowledge it (`WAIT 1`)
    /// when the primary has one connected; `None` never waits, and a
    /// failover may then lose the last save (see
    /// [Writes wait for a replica](Self#writes-wait-for-a-replica)).
    /// Defaults to 500 ms. Keep it well below the store's
    /// [`timeout`](Self::timeout) and the token state's 750 ms bound on one
    /// store operation.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use simacan_auth::store::RedisStore;
    /// let store = RedisStore::open("redis+sentinel://10.0.0.1/tokens")?
    ///     .replica_ack_timeout(Some(Duration::from_millis(200)));
    /// # let _ = store;
    /// # Ok::<(), simacan_auth::Error>(())
    /// ```
    #[must_use]
    pub fn replica_ack_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.replica_ack_timeout = timeout;
        self
    }

    /// `{prefix}{<fingerprint>}`: the braces make the fingerprint the
    /// Cluster hash tag of every key of the credential.
    fn record_key(&self, key: &StoreKey) -> String {
        format!("{}{{{}}}", self.prefix, key.fingerprint())
    }

    fn lease_key(&self, key: &StoreKey) -> String {
        format!("{}:lease", self.record_key(key))
    }

    fn failure_key(&self, key: &StoreKey) -> String {
        format!("{}:failure", self.record_key(key))
    }

    fn seal_key(record_key: &str) -> String {
        format!("{record_key}:seal")
    }

    /// The channel on which the store's writes are announced:
    /// `{prefix}changes`, and `{prefix}changes:<db>` for a database other
    /// than 0 (pub/sub spans a server's databases).
    fn channel(&self) -> String {
        match self.redis.db {
            0 => format!("{}changes", self.prefix),
            db => format!("{}changes:{db}", self.prefix),
        }
    }

    /// The shared connection and its number, made on first use.
    async fn connection(&self) -> Result<(u64, Connection), RedisError> {
        let mut slot = self.redis.connection.lock().await;
        if let Some((number, connection)) = slot.as_ref() {
            return Ok((*number, connection.clone()));
        }
        self.redis.tls_provider();
        let made = self.redis.deployment.connect(self.timeout).await?;
        let number = self.redis.connections_made.fetch_add(1, Ordering::Relaxed);
        *slot = Some((number, made.clone()));
        Ok((number, made))
    }

    /// Drops connection `number`, unless another has replaced it already:
    /// the next use makes a new one (and asks the sentinels again).
    async fn forget(&self, number: u64) {
        let mut slot = self.redis.connection.lock().await;
        if slot.as_ref().is_some_and(|(n, _)| *n == number) {
            *slot = None;
        }
    }

    /// Sends `request`, once more on a new connection if the one in use
    /// turned out dropped (a restart) or no longer the primary's (a
    /// failover), all within the store's timeout.
    async fn call<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(self.unavailable("redis store used outside a tokio runtime"));
        }
        let attempts = async {
            let (number, mut connection) = self.connection().await?;
            match request.send(&mut connection).await {
                Err(e) if outdated(&e) => {
                    self.forget(number).await;
                    let (_, mut connection) = self.connection().await?;
                    request.send(&mut connection).await
                }
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

    /// The keys and arguments of the `LOOK` script for one look by `owner`.
    fn look_arguments(
        &self,
        key: &StoreKey,
        owner: &str,
        ttl: Duration,
        marking: Option<&Marking>,
    ) -> ([String; 3], Vec<Zeroizing<Vec<u8>>>) {
        let bytes = |text: String| Zeroizing::new(text.into_bytes());
        let mut args = vec![bytes(owner.to_owned()), bytes(millis(ttl))];
        if let Some(marking) = marking {
            let (expected, marked) = (marking.expected(), marking.marked());
            args.push(bytes(expected.generation().to_string()));
            args.push(expected.encode());
            args.push(bytes(marked.generation().to_string()));
            args.push(marked.encode());
            args.push(bytes(self.record_ttl.map(millis).unwrap_or_default()));
        }
        let keys = [
            self.failure_key(key),
            self.lease_key(key),
            self.record_key(key),
        ];
        (keys, args)
    }

    /// Saves with the `SAVE` script, acknowledged by a replica when the
    /// primary has one; returns the script's answer, and the error to
    /// report when no replica acknowledged a write.
    async fn save_acknowledged(
        &self,
        record_key: String,
        seal_key: String,
        args: &[&[u8]],
    ) -> Result<(redis::Value, Option<StoreError>), StoreError> {
        let keys = [record_key, seal_key];
        let writes = Some(keys[0].as_str());
        let (saved, unacknowledged): (redis::Value, _) =
            self.durably(&SAVE, &keys, args, writes).await?;
        let unacknowledged = match unacknowledged {
            Some(wait) if saved != redis::Value::Int(0) => Some(self.unavailable(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the write reached the primary but no replica acknowledged it within {wait:?}"
                ),
            ))),
            _ => None,
        };
        Ok((saved, unacknowledged))
    }

    /// Runs `script` on `keys` with `args`; when it `writes` a key whose
    /// primary has a replica, waits for one to acknowledge the write (in one
    /// pipeline, so on the connection that wrote). Also returns how long it
    /// waited when no replica acknowledged in time.
    async fn durably<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[&[u8]],
        writes: Option<&str>,
    ) -> Result<(T, Option<Duration>), StoreError> {
        let wait = match (self.replica_ack_timeout, writes) {
            (Some(wait), Some(written)) if self.has_replicas(written).await? => wait,
            _ => {
                let mut invocation = script.prepare_invoke();
                for key in keys {
                    invocation.key(key);
                }
                for arg in args {
                    invocation.arg(*arg);
                }
                let value = self.call(Request::Script(invocation)).await?;
                return Ok((value, None));
            }
        };
        let mut pipeline = redis::pipe();
        let run = pipeline
            .cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(keys.len());
        for key in keys {
            run.arg(key);
        }
        for arg in args {
            run.arg(*arg);
        }
        pipeline.cmd("WAIT").arg(1).arg(millis(wait));
        let (value, acknowledged): (T, i64) = self
            .call(Request::Acknowledged { script, pipeline })
            .await?;
        if acknowledged >= 1 {
            return Ok((value, None));
        }
        // Perhaps the replicas left: ask again before the next write.
        if let Some(written) = writes {
            self.lock_replicas().remove(written);
        }
        Ok((value, Some(wait)))
    }

    /// Asks for the seal of `key`'s credential in a task of its own, when
    /// this process does not know it or doubts it and is not asking
    /// already (nor failed to, moments ago): sent along with a look, whose
    /// answer never waits for it.
    fn learn_seal_soon(&self, key: &StoreKey) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let record_key = self.record_key(key);
        if !self.redis.seals.claim_asking(&record_key) {
            return;
        }
        let store = self.clone();
        runtime.spawn(async move {
            let asking = Asking {
                store: &store,
                record_key: &record_key,
                learnt: false,
            };
            asking.ask().await;
        });
    }

    /// Keeps `stored` as the seal of `record_key`, when it is one.
    fn learn_seal(&self, record_key: &str, stored: &[u8]) -> bool {
        match Seal::from_bytes(stored) {
            Some(seal) => {
                self.redis.seals.learn(record_key, seal);
                true
            }
            None => {
                tracing::warn!(
                    key = %Self::seal_key(record_key),
                    "a redis key holds data that is not the store's seal; \
                     saved records are announced by key until it is removed"
                );
                false
            }
        }
    }

    /// Whether the primary holding `record_key` has a replica connected,
    /// asked with `ROLE` at most once a second per key.
    async fn has_replicas(&self, record_key: &str) -> Result<bool, StoreError> {
        if let Some((asked, replicas)) = self.lock_replicas().get(record_key)
            && asked.elapsed() < REPLICAS_ASKED_EVERY
        {
            return Ok(*replicas);
        }
        // `EXISTS` routes the pipeline to the key's primary in a Cluster.
        let mut pipeline = redis::pipe();
        pipeline.cmd("EXISTS").arg(record_key).cmd("ROLE");
        let (_, role): (i64, Role) = self.call(Request::Pipeline(pipeline)).await?;
        let replicas = matches!(role, Role::Primary { replicas, .. } if !replicas.is_empty());
        let mut known = self.lock_replicas();
        if known.len() >= 1024 {
            known.clear();
        }
        known.insert(record_key.to_owned(), (Instant::now(), replicas));
        Ok(replicas)
    }

    fn lock_replicas(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, bool)>> {
        self.redis
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn unavailable(
        &self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::unavailable(format!("redis at {}", self.redis.address), source)
    }
}

impl Redis {
    /// redis-rs builds its TLS configuration on rustls's process-wide
    /// provider; with more than one compiled in, rustls cannot pick, so
    /// ring is installed when none is.
    fn tls_provider(&self) {
        if self.tls && rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = crate::crypto::ring().install_default();
        }
    }
}

/// Whether a request failed because its connection is gone or no longer
/// leads to the primary, so that a new connection should be made.
fn outdated(error: &RedisError) -> bool {
    error.is_connection_dropped()
        || error.is_io_error()
        || error.is_unrecoverable_error()
        || error.code() == Some("READONLY")
}

/// A `SEAL` command claimed with [`Seals::claim_asking`]; the claim ends
/// when it does, or when it is dropped unfinished.
struct Asking<'a> {
    store: &'a RedisStore,
    record_key: &'a str,
    learnt: bool,
}

impl Asking<'_> {
    /// The credential's seal, stored when there is none.
    async fn ask(mut self) {
        let Some(candidate) = Seal::random() else {
            return;
        };
        let store = self.store;
        let ttl = store.record_ttl.map(millis).unwrap_or_default();
        let args: [&[u8]; 2] = [candidate.as_bytes(), ttl.as_bytes()];
        let request = script(&SEAL, RedisStore::seal_key(self.record_key), &args);
        match store.call::<Vec<u8>>(request).await {
            Ok(stored) => self.learnt = store.learn_seal(self.record_key, &Zeroizing::new(stored)),
            Err(error) => tracing::debug!(
                error = %crate::error::with_causes(&error),
                "could not learn the seal of a credential; its announcements only wake waiters"
            ),
        }
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        self.store.redis.seals.asked(self.record_key, self.learnt);
    }
}

/// One command, one script call or one pipeline, sent as often as `call`
/// needs.
enum Request<'a> {
    Command(redis::Cmd),
    Script(redis::ScriptInvocation<'a>),
    Pipeline(redis::Pipeline),
    /// A pipeline that calls `script` by its hash, loaded first when the
    /// server does not know it.
    Acknowledged {
        script: &'a Script,
        pipeline: redis::Pipeline,
    },
}

impl Request<'_> {
    async fn send<T: FromRedisValue>(&self, connection: &mut Connection) -> Result<T, RedisError> {
        match self {
            Request::Command(command) => command.query_async(connection).await,
            Request::Script(script) => script.invoke_async(connection).await,
            Request::Pipeline(pipeline) => pipeline.query_async(connection).await,
            Request::Acknowledged { script, pipeline } => {
                match pipeline.query_async(connection).await {
                    Err(e) if e.code() == Some("NOSCRIPT") => {
                        script.load_async(connection).await?;
                        pipeline.query_async(connection).await
                    }
                    sent => sent,
                }
            }
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

/// Milliseconds for `PX`/`PEXPIRE`/`WAIT`: at least 1 (Redis refuses 0 for
/// an expiry, and `WAIT 0` would wait forever), at most [`LONGEST_TTL`].
fn millis(ttl: Duration) -> String {
    ttl.clamp(Duration::from_millis(1), LONGEST_TTL)
        .as_millis()
        .to_string()
}

/// The record in the fields `generation` and `bytes` of `redis_key`, read
/// for `key`: corrupt when they disagree, none when it is another key's.
fn record_of(
    redis_key: &str,
    key: &StoreKey,
    generation: Option<Vec<u8>>,
    bytes: Option<Vec<u8>>,
) -> Result<Option<TokenRecord>, StoreError> {
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
}

/// What kind of answer `value` is, for an error: never its content.
fn value_kind(value: &redis::Value) -> &'static str {
    match value {
        redis::Value::Nil => "nil",
        redis::Value::Int(_) => "an integer",
        redis::Value::Array(_) => "an array",
        redis::Value::SimpleString(_) => "a status",
        redis::Value::ServerError(_) => "an error",
        _ => "an unexpected type",
    }
}

/// The failure notice in `bytes`, for `key`. Advisory: a notice that
/// cannot be read is none.
fn notice_of(bytes: Option<Vec<u8>>, key: &StoreKey) -> Option<FailureNotice> {
    bytes
        .and_then(|bytes| FailureNotice::decode(&bytes).ok())
        .filter(|notice| notice.key() == key)
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
            record_of(&redis_key, key, generation, bytes)
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
            let channel = self.channel();
            let args: [&[u8]; 2] = [lease.owner().as_bytes(), channel.as_bytes()];
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
            // A record without a refresh token (one marked as sent) gives
            // waiters nothing to use: not announced.
            let channel = match record.refresh_token() {
                Some(_) => self.channel(),
                None => String::new(),
            };
            let record_key = self.record_key(record.key());
            // Sealed under the seal this process knows, or a new one the
            // script stores when the credential has none yet.
            let known = self.redis.seals.get(&record_key);
            let new: &[u8] = if known.is_none() { b"1" } else { b"" };
            let seal = match channel.is_empty() {
                true => None,
                false => known.or_else(Seal::random),
            };
            let sealed = seal
                .as_ref()
                .and_then(|seal| Some((seal.seal(&record_key, &encoded)?, seal)));
            let (message, seal_bytes): (&[u8], &[u8]) = match &sealed {
                Some((message, seal)) => (message, seal.as_bytes()),
                None => (b"", b""),
            };
            let args: [&[u8]; 9] = [
                expected.as_bytes(),
                generation.as_bytes(),
                &encoded,
                ttl.as_bytes(),
                channel.as_bytes(),
                record_key.as_bytes(),
                message,
                seal_bytes,
                new,
            ];
            let seal_key = Self::seal_key(&record_key);
            let (answer, unacknowledged) = self
                .save_acknowledged(record_key.clone(), seal_key, &args)
                .await?;
            // What the answer says of the seal holds whether or not a
            // replica acknowledged the write.
            let sent = sealed.as_ref().map(|(_, seal)| *seal);
            let saved = self.seal_answered(&record_key, answer, sent)?;
            match unacknowledged {
                Some(error) => Err(error),
                None => Ok(saved),
            }
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let record_key = self.record_key(key);
            self.redis.seals.forget(&record_key);
            let mut remove = REMOVE.key(&record_key);
            remove
                .key(self.failure_key(key))
                .key(Self::seal_key(&record_key))
                .arg(self.channel())
                .arg(removal(key));
            let _: i64 = self.call(Request::Script(remove)).await?;
            Ok(())
        })
    }

    /// `SET {prefix}{<fingerprint>}:failure … PX`: it expires with its notice.
    /// Announced on the store's channel.
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
            let encoded = notice.encode();
            let (left, channel) = (millis(left), self.channel());
            let args: [&[u8]; 3] = [&encoded, left.as_bytes(), channel.as_bytes()];
            let _: i64 = self
                .call(script(&NOTICE, self.failure_key(notice.key()), &args))
                .await?;
            Ok(())
        })
    }

    fn load_failure<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<FailureNotice>, StoreError>> {
        Box::pin(async move {
            let get = redis::cmd("GET").arg(self.failure_key(key)).clone();
            let bytes: Option<Vec<u8>> = self.call(Request::Command(get)).await?;
            Ok(notice_of(bytes, key))
        })
    }

    /// The notice read, the lease tried and the record read in one
    /// script: one round trip, one command for the server. In a Cluster,
    /// three commands sent together instead: while a slot moves, a node
    /// refuses a script on keys that are only partly moved (`TRYAGAIN`,
    /// which redis-rs retries until the store's timeout), and the notice's
    /// key is most often not there at all.
    fn look<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        marking: Option<&'a Marking>,
    ) -> BoxFuture<'a, Result<Look, StoreError>> {
        Box::pin(async move {
            self.learn_seal_soon(key);
            self.look_once(key, ttl, marking).await
        })
    }

    /// A subscription to `{prefix}changes`, on which every write of the
    /// store's scripts is published; see
    /// [Waiters are woken](Self#waiters-are-woken). `None` outside a Tokio
    /// runtime.
    fn changes(&self, _key: &StoreKey) -> Option<Changes> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let channel = self.channel();
        let mut listeners = self
            .redis
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let listener = listeners
            .entry(channel.clone())
            .or_insert_with(Listener::new);
        // Started on first use, and again when the runtime it ran on ended
        // (which stopped the task wherever it was: its feed heard nothing
        // since, and may hold records that are no longer the newest).
        if listener.task.as_ref().is_none_or(|task| task.is_finished()) {
            listener.feed.interrupted();
            let subscription = listen(
                Arc::downgrade(&self.redis),
                channel,
                self.prefix.clone(),
                listener.feed.clone(),
                self.timeout,
            );
            listener.task = Some(runtime.spawn(subscription));
        }
        Some(listener.feed.subscribe())
    }
}

impl RedisStore {
    /// Whether the `SAVE` script's `answer` says the record was written;
    /// learns or forgets the credential's seal as it says (`sent`, the seal
    /// the save was sealed with).
    fn seal_answered(
        &self,
        record_key: &str,
        answer: redis::Value,
        sent: Option<&Seal>,
    ) -> Result<bool, StoreError> {
        match answer {
            redis::Value::Int(0) => Ok(false),
            redis::Value::Int(1) => Ok(true),
            // Announced sealed: this seal is the credential's.
            redis::Value::Int(2) => {
                if let Some(seal) = sent {
                    self.redis.seals.learn(record_key, seal.clone());
                }
                Ok(true)
            }
            // The credential's seal is gone (removed, or lost in a
            // failover): the next look makes a new one.
            redis::Value::Int(3) => {
                self.redis.seals.forget(record_key);
                Ok(true)
            }
            redis::Value::BulkString(stored) => {
                let _ = self.learn_seal(record_key, &Zeroizing::new(stored));
                Ok(true)
            }
            other => {
                Err(self.unavailable(format!("redis answered a save with {}", value_kind(&other))))
            }
        }
    }

    /// One look: the `LOOK` script, or in a Cluster the provided reads,
    /// sent together.
    async fn look_once(
        &self,
        key: &StoreKey,
        ttl: Duration,
        marking: Option<&Marking>,
    ) -> Result<Look, StoreError> {
        if matches!(self.redis.deployment.kind(), DeploymentKind::Cluster) {
            return super::look::separately(self, key, ttl, marking).await;
        }
        let owner = Lease::random_owner();
        // A marking of another key's records is none.
        let marking = marking.filter(|m| m.is_for(key));
        let (keys, args) = self.look_arguments(key, &owner, ttl, marking);
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let record_key = keys[2].clone();
        let ((notice, taken, generation, bytes, marked, expected), unacknowledged): (
            LookAnswer,
            _,
        ) = self
            .durably(&LOOK, &keys, &args, marking.map(|_| keys[2].as_str()))
            .await?;
        // A marking no replica acknowledged is left to the holder's own
        // marking, which writes it again and waits for a replica again
        // (only a look that wrote has anything to wait for: the others'
        // `WAIT` returns at once).
        let marked = marked == 1 && unacknowledged.is_none();
        let lease = (taken == 1).then(|| Lease::new(key.clone(), owner));
        // Found exactly, generation field and bytes: the caller has it.
        let found = match marking.filter(|_| expected == 1) {
            Some(marking) => Ok(Some(marking.expected().clone())),
            None => record_of(&record_key, key, generation, bytes),
        };
        match found {
            Ok(record) => {
                let mut look = Look::new(notice_of(notice, key), lease, record);
                look.marked = marked;
                Ok(look)
            }
            Err(error) => {
                if let Some(lease) = lease {
                    let _ = self.release(lease).await;
                }
                Err(error)
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("deployment", &self.redis.deployment.kind())
            .field("address", &self.redis.address)
            .field("db", &self.redis.db)
            .field("tls", &self.redis.tls)
            .field("prefix", &self.prefix)
            .field("record_ttl", &self.record_ttl)
            .field("timeout", &self.timeout)
            .field("replica_ack_timeout", &self.replica_ack_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `redis-server` of this test's own on a free loopback port, stopped
    /// when dropped (the integration tests' fuller helper is not part of the
    /// package). None when the binary is missing, which fails under CI.
    struct Server(std::process::Child, u16);

    impl Server {
        fn start() -> Option<Server> {
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = free.local_addr().unwrap().port();
            drop(free);
            let spawned = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(_) if std::env::var("CI").as_deref() != Ok("true") => return None,
                Err(error) => panic!("CI must run the Redis tests: redis-server: {error}"),
            };
            let started = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "redis-server did not start"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Some(Server(child, port))
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.1)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A marked record a look expects for `record`, as a holder makes it.
    fn marking_of(record: &TokenRecord) -> Marking {
        let marked = record.spent(record.generation() + 1, std::time::SystemTime::now());
        Marking::new(record.clone(), marked)
    }

    /// Whether a look found the record its marking expected (and left its
    /// bytes out of the answer), or another (and sent it).
    #[derive(Clone, Debug, PartialEq)]
    enum Expected {
        Found,
        Other,
    }

    /// Runs the `LOOK` script as `owner` twice, as a call sent again after
    /// its reply was lost: (lease taken, marked, generation found) each time.
    async fn look_twice(
        url: &str,
        store: &RedisStore,
        key: &StoreKey,
        marking: &Marking,
    ) -> [(i64, i64, Option<Vec<u8>>, Expected); 2] {
        let owner = Lease::random_owner();
        let (keys, args) = store.look_arguments(key, &owner, Duration::from_secs(5), Some(marking));
        let client = redis::Client::open(url).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let mut answers = Vec::new();
        for _ in 0..2 {
            let mut invocation = LOOK.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for arg in &args {
                invocation.arg(arg.as_slice());
            }
            let (_, taken, generation, bytes, marked, expected): LookAnswer =
                invocation.invoke_async(&mut connection).await.unwrap();
            let expected = match (expected, bytes) {
                (1, None) => Expected::Found,
                (0, Some(_)) => Expected::Other,
                other => panic!("an answer with {other:?}"),
            };
            answers.push((taken, marked, generation, expected));
        }
        [answers[0].clone(), answers[1].clone()]
    }

    /// A store on `server` and the record of generation 1 it saved for
    /// `username`, an hour long, its lease given back.
    async fn with_record(server: &Server, username: &str) -> (RedisStore, StoreKey, TokenRecord) {
        let store = RedisStore::open(server.url()).unwrap();
        let key = StoreKey::new("https://auth.example.com/api/v1", username);
        let hour = Duration::from_secs(3600);
        let expires = std::time::SystemTime::now() + hour;
        let stored = TokenRecord::new(key.clone(), 1, "eyA", Some("eyR"), expires, hour).unwrap();
        let lease = store.try_lease(&key, hour).await.unwrap().unwrap();
        assert!(store.save(&lease, &stored, None).await.unwrap());
        store.release(lease).await.unwrap();
        (store, key, stored)
    }

    #[tokio::test]
    async fn a_look_sent_again_claims_only_the_marking_it_wrote() {
        let Some(server) = Server::start() else {
            return;
        };
        let (store, key, stored) = with_record(&server, "marked twice").await;
        let marking = marking_of(&stored);

        // The first run marks; the second, the same call again, answers as
        // the first did: marked, over the record as it was.
        let [first, again] = look_twice(&server.url(), &store, &key, &marking).await;
        assert_eq!((first.0, first.1, &first.3), (1, 1, &Expected::Found));
        assert_eq!(
            again,
            (1, 1, Some(b"1".to_vec()), Expected::Found),
            "the same call's marking, over the record as it was"
        );

        // Another holder's marking, byte for byte this one, left by a look
        // (its marker another owner) or saved (no marker): neither run
        // claims it.
        let lease = store.try_lease(&key, Duration::from_secs(3600)).await;
        assert!(lease.unwrap().is_none(), "held by the looks");
        let record_key = store.record_key(&key);
        let client = redis::Client::open(server.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let free = redis::cmd("DEL").arg(store.lease_key(&key)).clone();
        let _: () = free.query_async(&mut connection).await.unwrap();
        let [first, again] = look_twice(&server.url(), &store, &key, &marking).await;
        assert_eq!((first.0, first.1), (1, 0), "found marked by another look");
        assert_eq!((again.0, again.1), (1, 0), "not claimed when sent again");
        assert_eq!((first.3, again.3), (Expected::Other, Expected::Other));
        let _: () = free.query_async(&mut connection).await.unwrap();
        let _: () = redis::cmd("HDEL")
            .arg(&record_key)
            .arg("marker")
            .query_async(&mut connection)
            .await
            .unwrap();
        let [first, again] = look_twice(&server.url(), &store, &key, &marking).await;
        assert_eq!((first.0, first.1), (1, 0), "found marked by another");
        assert_eq!((again.0, again.1), (1, 0), "not claimed when sent again");
        assert_eq!(again.2, Some(b"2".to_vec()), "the record as found");
    }

    #[tokio::test]
    async fn a_look_marks_only_a_record_whose_generation_field_is_the_expected_one() {
        let Some(server) = Server::start() else {
            return;
        };
        let (store, key, stored) = with_record(&server, "generation field").await;
        // The record's bytes as expected, its generation field not.
        let client = redis::Client::open(server.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("HSET")
            .arg(store.record_key(&key))
            .arg("generation")
            .arg("5")
            .query_async(&mut connection)
            .await
            .unwrap();
        let looked = store
            .look(&key, Duration::from_secs(3600), Some(&marking_of(&stored)))
            .await;
        let error = looked.expect_err("a record at odds with itself");
        assert_eq!(error.kind(), crate::store::StoreErrorKind::Corrupt);
        let record: Vec<u8> = redis::cmd("HGET")
            .arg(store.record_key(&key))
            .arg("record")
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(record, *stored.encode(), "not marked");
    }

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
            "redis+sentinel://:hunter2@127.0.0.1:26379",
            "redis+sentinel://:hunter2@127.0.0.1:26379/",
            "redis+sentinel://:hunter2@127.0.0.1:26379/tokens/x",
            "redis+sentinel://:hunter2@127.0.0.1:26379/tokens/1/2",
            "redis+sentinel://:hunter2@127.0.0.1:26379/tokens?sentinel_pasword=hunter2",
            "redis+sentinel://:hunter2@127.0.0.1:263799/tokens",
            "redis+sentinel://:hunter2@127.0.0.1,,127.0.0.2/tokens",
            "rediss+sentinel://:hunter2@127.0.0.1/tokens#insecure",
            "redis+cluster://:hunter2@127.0.0.1:7000/1",
            "redis+cluster://:hunter2@127.0.0.1:7000?protocol=resp3",
            "redis+cluster://:hunter2@[::1:7000",
            "redis+cluster://:hunter2@",
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

        let sentinel = RedisStore::open(
            "rediss+sentinel://user:hunter2@a.internal,[::1]:26380/tokens/4?sentinel_password=watchword",
        )
        .unwrap();
        let shown = format!("{sentinel:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("watchword"),
            "{shown}"
        );
        for part in [
            "Sentinel(\"tokens\")",
            "a.internal:26379,[::1]:26380",
            "db: 4",
            "tls: true",
        ] {
            assert!(shown.contains(part), "{shown} lacks {part}");
        }
        let cluster =
            RedisStore::open("redis+cluster://:hunter2@b.internal,c.internal:7001").unwrap();
        let shown = format!("{cluster:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        for part in [
            "Cluster",
            "b.internal:6379,c.internal:7001",
            "db: 0",
            "tls: false",
        ] {
            assert!(shown.contains(part), "{shown} lacks {part}");
        }
    }

    #[test]
    fn keys_are_prefixed_fingerprints() {
        let key = StoreKey::new("https://auth-service.services.simacan.com/api/v1", "u");
        let store = RedisStore::open("redis://127.0.0.1")
            .unwrap()
            .key_prefix("p:");
        assert_eq!(
            store.record_key(&key),
            "p:{c899cab5b66fb71d17f0ca301e7a9d64}"
        );
        assert_eq!(
            store.lease_key(&key),
            "p:{c899cab5b66fb71d17f0ca301e7a9d64}:lease"
        );
        assert_eq!(
            store.failure_key(&key),
            "p:{c899cab5b66fb71d17f0ca301e7a9d64}:failure"
        );
        assert_eq!(
            RedisStore::seal_key(&store.record_key(&key)),
            "p:{c899cab5b66fb71d17f0ca301e7a9d64}:seal"
        );
    }

    #[test]
    fn expiries_stay_in_the_range_redis_accepts() {
        assert_eq!(millis(Duration::ZERO), "1");
        assert_eq!(millis(Duration::from_millis(1500)), "1500");
        assert_eq!(millis(Duration::MAX), LONGEST_TTL.as_millis().to_string());
    }
}
