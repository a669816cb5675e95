//! Checks that a [`TokenStore`] keeps the
//! [guarantees](super#what-a-store-must-guarantee) the token state relies
//! on, for stores of your own (feature `conformance`). The built-in stores
//! pass the same checks.
//!
//! Call [`check`] from a test of yours with a function that opens a new
//! handle on one shared backend each time it is called: a new connection
//! to the same database, a clone of a shared value. The checks use several
//! handles at once, as the replicas of a fleet would, and panic, as
//! `assert!` does, with a message that starts with `TokenStore contract
//! violated:` and names the guarantee that was broken.
//!
//! | check | guarantee |
//! |---|---|
//! | [`records_round_trip`] | `load` returns what the last successful `save` wrote, whole: tokens with every character a token may have, no refresh token, the highest generation |
//! | [`save_is_compare_and_swap`] | `save` writes only over the generation expected (`None`: no record), and a refused save writes nothing |
//! | [`one_save_wins_a_race`] | of many handles saving over one generation at once, exactly one wins |
//! | [`keys_are_kept_apart`] | every key has a record and a lease of its own, however its username and URL are spelled |
//! | [`remove_forgets_the_record`] | after `remove`, there is no record to load or to compare with |
//! | [`one_lease_per_key`] | one lease per key at a time across handles, free again once released |
//! | [`renew_is_for_the_holder_only`] | `renew` extends the holder's lease and no one else's; a released lease is not renewed |
//! | [`leases_expire_after_their_ttl`] | a lease (taken by `try_lease` or `look`) ends on its own after its time to live, and its holder's `renew` then says it was lost |
//! | [`a_dropped_lease_is_freed`] | (stores whose lease is an OS resource) a lease ends with its holder |
//! | [`failure_notices_are_kept_whole`] | `load_failure` returns the notice `save_failure` kept, equal in every field |
//! | [`a_look_tries_the_lease_and_reads`] | `look` takes a free lease and only a free one, and returns the record and notice as `load` and `load_failure` do |
//! | [`a_look_marks_only_under_a_lease_it_took`] | `look` writes a `Marking` only when it takes the lease and finds the record the marking expects, and returns the record as found |
//! | [`changes_are_announced`] | (stores whose `changes` returns a feed) a save and a release through one handle wake a subscription made through another; a record the feed hands over is the one saved, and gone once removed |
//!
//! [`check`] runs them all for a store whose leases expire after their time
//! to live and which keeps failure notices. A store that keeps none (the
//! trait's provided `save_failure` and `load_failure`, or a wrapper that
//! does not pass them through) fails it with a message that says so; if
//! that is meant, [`Suite::without_failure_notices`] leaves that check out.
//! [`Suite::leases_end_with_their_holder`] fits a store whose lease is an
//! OS lock, and each check can be run on its own.
//!
//! # What the checks need
//!
//! - **A Tokio runtime with its time driver, on the real clock.** The lease
//!   checks wait for real (half a second in all), since a store may measure
//!   a lease's time to live on the wall clock or on a server's: do not
//!   pause the test's clock. [`check`] takes well under a second against a
//!   local backend.
//! - **A backend that works.** A store operation that fails, or that takes
//!   more than 10 seconds, fails the check with the operation's name and
//!   its error.
//! - **Handles that accept each other's leases.** [`one_save_wins_a_race`]
//!   saves through every handle under one lease; the other checks use a
//!   lease only through the handle that took it, or to show that a lease
//!   object of another owner is refused.
//! - **Keys of their own.** Every check uses keys with a random part, so a
//!   backend that outlives the test (a shared database) holds nothing of an
//!   earlier run under them, and removes the records it wrote when it
//!   passes. Lease keys, lock files and the like are the store's to expire.
//!
//! A lease that should be free (never taken, released, dropped) is asked
//! for again for up to a second before the check fails: an OS lock released
//! by a process that forks meanwhile stays held until the child starts its
//! program.
//!
//! The records the checks save have an expiry in whole milliseconds and a
//! lifetime in whole seconds: what [`TokenRecord::encode`] keeps. Two
//! different saves always carry different records: a store may count the
//! very same record saved again as the retry of a save whose reply was lost
//! (the Redis store does).
//!
//! # Example
//!
//! In a test of your store (with `simacan-auth` in the dev-dependencies,
//! feature `conformance`):
//!
//! ```
//! use simacan_auth::store::{conformance, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // #[tokio::test]
//! // async fn my_store_keeps_the_contract() {
//! let backend = MemoryStore::new();
//! // A handle on the backend: for a memory store, a clone.
//! conformance::check(move || backend.clone()).await;
//! // }
//! # }
//! ```

use std::{
    fmt,
    future::Future,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use tokio::{
    sync::Barrier,
    task::JoinSet,
    time::{Instant, sleep, sleep_until},
};

use super::{FailureNotice, Lease, Marking, StoreError, StoreKey, TokenRecord, TokenStore};

/// Panics for a broken guarantee unless `$holds`, as `assert!` does.
macro_rules! ensure {
    ($holds:expr, $guarantee:expr, $($what:tt)+) => {
        if !$holds {
            violated($guarantee, format_args!($($what)+))
        }
    };
}

/// How long one store operation may take before the check gives up on it.
const PATIENCE: Duration = Duration::from_secs(10);
/// A time to live no check outlives.
const LONG: Duration = Duration::from_secs(30);
/// The time to live of the leases that are left to expire.
const SHORT: Duration = Duration::from_millis(250);
/// How long a lease that is free may still be refused: an OS lock released
/// by a process that forks meanwhile stays held until the child execs.
const FREED_WITHIN: Duration = Duration::from_secs(1);
/// How many handles race.
const RACERS: usize = 8;

const ROUND_TRIP: &str = "load returns what the last successful save wrote, whole";
const CAS: &str = "save is one atomic compare-and-swap on the generation";
const APART: &str = "every key has a record and a lease of its own";
const REMOVE: &str = "remove forgets the record";
const ONE_LEASE: &str = "try_lease grants at most one unexpired lease per key";
const FREE: &str = "a lease no one holds can be taken";
const RENEW: &str = "renew extends a lease only for its owner, and says when it was lost";
const EXPIRY: &str = "a lease expires on its own after its time to live";
const HOLDER: &str = "a lease that is an OS resource ends with its holder";
const NOTICES: &str = "save_failure and load_failure keep one notice whole";
const ANNOUNCED: &str = "a store with a change feed announces saves and releases";
const LOOK: &str = "look tries the lease and reads the record and notice";
const MARK: &str =
    "a look writes its marking only under a lease it took, over the record the marking expects";
/// How long a feed may take to start (a subscription being made).
const FEED_STARTS_WITHIN: Duration = Duration::from_secs(5);
/// How long an announcement may take once the feed runs.
const ANNOUNCED_WITHIN: Duration = Duration::from_secs(2);

/// Which checks to run, for stores that [`check`] does not fit: a store
/// whose lease is an OS lock (such as [`FileStore`](super::FileStore)), or
/// one that keeps no failure notices. See the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance::Suite, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// Suite::new(move || backend.clone()).run().await;
/// # }
/// ```
#[must_use]
pub struct Suite<F> {
    make: F,
    leases_end_with_their_holder: bool,
    failure_notices: bool,
}

impl<F, S> Suite<F>
where
    F: Fn() -> S,
    S: TokenStore,
{
    /// Every check, on handles made by `make`, each call of which opens a
    /// new handle on one shared backend. Leases are expected to expire after
    /// their time to live, and failure notices to be kept, unless set
    /// otherwise.
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::Arc;
    /// use simacan_auth::store::{conformance::Suite, MemoryStore, TokenStore};
    ///
    /// let shared: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    /// let suite = Suite::new(move || Arc::clone(&shared));
    /// # let _ = suite;
    /// ```
    pub fn new(make: F) -> Self {
        Suite {
            make,
            leases_end_with_their_holder: false,
            failure_notices: true,
        }
    }

    /// The store's lease is an OS resource kept in the lease as a guard
    /// ([`Lease::with_guard`]), such as the file store's lock: it ignores
    /// the time to live and ends when the lease is dropped or its holder
    /// dies. Runs [`a_dropped_lease_is_freed`] in place of
    /// [`leases_expire_after_their_ttl`]. Defaults to leases that expire
    /// after their time to live.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{conformance::Suite, FileStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("tokens");
    /// Suite::new(|| FileStore::new(&path)).leases_end_with_their_holder().run().await;
    /// # Ok(()) }
    /// ```
    pub fn leases_end_with_their_holder(mut self) -> Self {
        self.leases_end_with_their_holder = true;
        self
    }

    /// The store keeps no failure notices: it has the trait's provided
    /// [`save_failure`](TokenStore::save_failure) and
    /// [`load_failure`](TokenStore::load_failure), which keep nothing, so
    /// every token state backs off on its own and a fleet repeats a failing
    /// Auth API call once per replica. Leaves
    /// [`failure_notices_are_kept_whole`] out. Defaults to a store that
    /// keeps them; a wrapper around another store must pass them through.
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{conformance::Suite, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let backend = MemoryStore::new();
    /// Suite::new(move || backend.clone()).without_failure_notices().run().await;
    /// # }
    /// ```
    pub fn without_failure_notices(mut self) -> Self {
        self.failure_notices = false;
        self
    }

    /// Runs the checks, one after another.
    ///
    /// # Panics
    ///
    /// When the store breaks a guarantee, fails an operation or hangs; see
    /// the [module docs](self).
    ///
    /// # Example
    ///
    /// ```
    /// use simacan_auth::store::{conformance::Suite, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let backend = MemoryStore::new();
    /// Suite::new(move || backend.clone()).run().await;
    /// # }
    /// ```
    pub async fn run(self) {
        let make = &self.make;
        records_round_trip(make).await;
        save_is_compare_and_swap(make).await;
        one_save_wins_a_race(make).await;
        keys_are_kept_apart(make).await;
        remove_forgets_the_record(make).await;
        one_lease_per_key(make).await;
        renew_is_for_the_holder_only(make).await;
        if self.leases_end_with_their_holder {
            a_dropped_lease_is_freed(make).await;
        } else {
            leases_expire_after_their_ttl(make).await;
        }
        if self.failure_notices {
            failure_notices_are_kept_whole(make).await;
        }
        a_look_tries_the_lease_and_reads(make).await;
        a_look_marks_only_under_a_lease_it_took(make).await;
        changes_are_announced(make).await;
    }
}

impl<F> fmt::Debug for Suite<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suite")
            .field(
                "leases_end_with_their_holder",
                &self.leases_end_with_their_holder,
            )
            .field("failure_notices", &self.failure_notices)
            .finish_non_exhaustive()
    }
}

/// Every check, for a store whose leases expire after their time to live
/// and which keeps failure notices; `make` opens a new handle on one shared
/// backend each time it is called. The same as [`Suite::new`]`(make).run()`.
///
/// # Panics
///
/// When the store breaks a guarantee, fails an operation or hangs; see the
/// [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::check(move || backend.clone()).await;
/// # }
/// ```
pub async fn check<S, F>(make: F)
where
    S: TokenStore,
    F: Fn() -> S,
{
    Suite::new(make).run().await;
}

/// A record saved through one handle loads whole through another, on every
/// read: an access token with every character a token may have (JSON's
/// `"` and `\` among them) and a refresh token with quotes, a record with
/// no refresh token, one at [`TokenRecord::MAX_GENERATION`]. A record
/// saved over another is the new one, with no field of the old (its
/// refresh token).
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::records_round_trip(move || backend.clone()).await;
/// # }
/// ```
pub async fn records_round_trip<S: TokenStore>(make: impl Fn() -> S) {
    let (writer, reader) = (make(), make());
    let keys = Keys::new();
    let every_visible: String = (b'!'..=b'~').map(char::from).collect();
    let top = TokenRecord::MAX_GENERATION;
    let records = [
        record(
            &keys.key("escapes"),
            1,
            &every_visible,
            Some(r#"ey"Refresh'\%s{}"#),
        ),
        record(&keys.key("no refresh token"), 7, "eyAccess", None),
        record(&keys.key("highest generation"), top, "eyA.b.c", Some("eyR")),
    ];
    for saved in &records {
        let key = saved.key();
        let found = done("load", reader.load(key)).await;
        ensure!(
            found.is_none(),
            ROUND_TRIP,
            "load of {key}, never saved, returned a record"
        );
        let lease = take(&writer, key, LONG).await;
        ensure!(
            done("save", writer.save(&lease, saved, None)).await,
            CAS,
            "a save expecting no record, of {key}, which has none, returned false"
        );
        for read in ["first", "second"] {
            let loaded = done("load", reader.load(key)).await;
            expect_record(
                loaded,
                saved,
                ROUND_TRIP,
                &format!("the {read} read through another handle"),
            );
        }
        done("release", writer.release(lease)).await;
    }

    let key = keys.key("written over");
    let first = record(&key, 1, "eyFirst", Some("eyRefresh"));
    let second = record(&key, 2, "eySecond", None);
    let lease = take(&writer, &key, LONG).await;
    ensure!(
        done("save", writer.save(&lease, &first, None)).await,
        CAS,
        "a save expecting no record, of {key}, which has none, returned false"
    );
    ensure!(
        done("save", writer.save(&lease, &second, Some(1))).await,
        CAS,
        "a save expecting generation 1, the stored one, returned false"
    );
    let loaded = done("load", reader.load(&key)).await;
    expect_record(
        loaded,
        &second,
        ROUND_TRIP,
        "a record without a refresh token saved over one with",
    );
    done("release", writer.release(lease)).await;

    let written: Vec<_> = records.iter().map(|r| r.key().clone()).collect();
    forget(&writer, written.iter().chain([&key])).await;
}

/// `save` writes only over the generation expected: expecting a record
/// when there is none, expecting none when there is one, expecting an older
/// or a newer generation, all return `false` and write nothing; expecting
/// the stored one writes, up to [`TokenRecord::MAX_GENERATION`].
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::save_is_compare_and_swap(move || backend.clone()).await;
/// # }
/// ```
pub async fn save_is_compare_and_swap<S: TokenStore>(make: impl Fn() -> S) {
    let (writer, reader) = (make(), make());
    let keys = Keys::new();
    let key = keys.key("compare and swap");
    let at = |generation, access: &str| record(&key, generation, access, Some("eyRefresh"));
    let lease = take(&writer, &key, LONG).await;

    let save = |record: TokenRecord, expected: Option<u64>| {
        let (writer, lease) = (&writer, &lease);
        async move { done("save", writer.save(lease, &record, expected)).await }
    };
    ensure!(
        !save(at(1, "eyOne"), Some(1)).await,
        CAS,
        "a save expecting generation 1 returned true where there was no record"
    );
    let found = done("load", reader.load(&key)).await;
    ensure!(
        found.is_none(),
        CAS,
        "a save that returned false wrote a record where there was none"
    );
    ensure!(
        save(at(1, "eyOne"), None).await,
        CAS,
        "a save expecting no record returned false where there was none"
    );

    let one = at(1, "eyOne");
    let refused = [
        (at(1, "eyRival"), None, "no record"),
        (at(3, "eyStale"), Some(0), "generation 0"),
        (at(3, "eyAhead"), Some(2), "generation 2, not yet written"),
    ];
    for (rival, expected, expecting) in refused {
        ensure!(
            !save(rival, expected).await,
            CAS,
            "a save expecting {expecting} returned true over generation 1"
        );
        let loaded = done("load", reader.load(&key)).await;
        expect_record(
            loaded,
            &one,
            CAS,
            &format!("after a save expecting {expecting} was refused"),
        );
    }

    ensure!(
        save(at(2, "eyTwo"), Some(1)).await,
        CAS,
        "a save expecting generation 1, the stored one, returned false"
    );
    ensure!(
        !save(at(3, "eyStale"), Some(1)).await,
        CAS,
        "a save expecting generation 1 returned true over generation 2"
    );
    let loaded = done("load", reader.load(&key)).await;
    expect_record(
        loaded,
        &at(2, "eyTwo"),
        CAS,
        "after a stale save was refused",
    );

    // The top of the range: stores that keep generations as numbers of
    // their own must hold them exactly.
    let top = TokenRecord::MAX_GENERATION;
    let near_top = keys.key("near the highest generation");
    let high = |generation, access: &str| record(&near_top, generation, access, None);
    let high_lease = take(&writer, &near_top, LONG).await;
    let save_high = |record: TokenRecord, expected: Option<u64>| {
        let (writer, lease) = (&writer, &high_lease);
        async move { done("save", writer.save(lease, &record, expected)).await }
    };
    ensure!(
        save_high(high(top - 1, "eyBelow"), None).await,
        CAS,
        "a save expecting no record returned false where there was none"
    );
    ensure!(
        !save_high(high(top, "eyStale"), Some(top - 2)).await,
        CAS,
        "a save expecting generation {} returned true over generation {}",
        top - 2,
        top - 1
    );
    ensure!(
        save_high(high(top, "eyTop"), Some(top - 1)).await,
        CAS,
        "a save expecting generation {}, the stored one, returned false",
        top - 1
    );
    ensure!(
        !save_high(high(top, "eyRival"), Some(top - 1)).await,
        CAS,
        "a save expecting generation {} returned true over generation {top}",
        top - 1
    );
    let loaded = done("load", reader.load(&near_top)).await;
    expect_record(
        loaded,
        &high(top, "eyTop"),
        CAS,
        "at the highest generation",
    );

    done("release", writer.release(lease)).await;
    done("release", writer.release(high_lease)).await;
    forget(&writer, [&key, &near_top]).await;
}

/// Eight handles save at once over the same expected generation, first
/// over no record, then over generation 1, each its own record: exactly
/// one save returns `true`, and its record is the one stored.
///
/// The handles save under one lease, taken through the first of them: a
/// store that checks the lease must accept it from every handle on its
/// backend, as the file store does (it stands for a holder whose lease was
/// lost and the next holder, saving at once, which only the generation
/// tells apart).
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::one_save_wins_a_race(move || backend.clone()).await;
/// # }
/// ```
pub async fn one_save_wins_a_race<S: TokenStore>(make: impl Fn() -> S) {
    let handles: Vec<Arc<S>> = (0..RACERS).map(|_| Arc::new(make())).collect();
    let keys = Keys::new();
    let key = keys.key("raced");
    let lease = Arc::new(take(&*handles[0], &key, LONG).await);
    for (generation, expected) in [(1, None), (2, Some(1))] {
        let records: Vec<TokenRecord> = (0..RACERS)
            .map(|i| record(&key, generation, &format!("eyRacer{i}"), Some("eyRefresh")))
            .collect();
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut racers = JoinSet::new();
        for (i, (store, record)) in handles.iter().zip(records.clone()).enumerate() {
            let (store, lease, barrier) =
                (Arc::clone(store), Arc::clone(&lease), Arc::clone(&barrier));
            racers.spawn(async move {
                barrier.wait().await;
                let won = done("save", store.save(&lease, &record, expected)).await;
                (i, won)
            });
        }
        let winners: Vec<usize> = joined(racers)
            .await
            .into_iter()
            .filter_map(|(i, won)| won.then_some(i))
            .collect();
        let expecting = expected.map_or("no record".to_owned(), |g| format!("generation {g}"));
        ensure!(
            winners.len() == 1,
            CAS,
            "{RACERS} handles saved generation {generation} at once, expecting {expecting}: \
             {} saves returned true",
            winners.len()
        );
        let loaded = done("load", handles[1].load(&key)).await;
        expect_record(
            loaded,
            &records[winners[0]],
            CAS,
            "after the race, the winner's record",
        );
    }
    let lease = Arc::into_inner(lease).expect("the racers are done with the lease");
    done("release", handles[0].release(lease)).await;
    forget(&*handles[0], [&key]).await;
}

/// Keys that a store could confuse stay apart: usernames with a backslash,
/// quotes, an apostrophe and SQL, `:` `/` `*` `%` and braces, a line break,
/// letters beyond ASCII, usernames that differ only in case, the same
/// username under URLs that differ by a trailing slash, and two keys whose
/// URL and username joined without a separator are one string. Each holds
/// its lease while all the others do, saves its record over no record
/// while the others have one, and loads its own record; a key never saved
/// loads none, and removing one key leaves the others.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::keys_are_kept_apart(move || backend.clone()).await;
/// # }
/// ```
pub async fn keys_are_kept_apart<S: TokenStore>(make: impl Fn() -> S) {
    let (writer, reader) = (make(), make());
    let keys = Keys::new();
    let slash = format!("{BASE_URL}/");
    let spelled = [
        (BASE_URL, "planner@example.com"),
        (BASE_URL, "Planner@example.com"),
        (slash.as_str(), "planner@example.com"),
        ("https://a.example/api/v1", "bc"),
        ("https://a.example/api/v1b", "c"),
        (BASE_URL, r"EUROPE\planner"),
        (BASE_URL, r#"the "planner""#),
        (BASE_URL, "o'brien'; DROP TABLE tokens; --"),
        (BASE_URL, "a:b/../c*?%s{}[]"),
        (BASE_URL, "line\nbreak\ttab"),
        (BASE_URL, "plänner ✓"),
    ];
    let all: Vec<StoreKey> = spelled
        .iter()
        .map(|(url, username)| keys.key_at(url, username))
        .collect();
    let records: Vec<TokenRecord> = (all.iter().enumerate())
        .map(|(i, key)| {
            record(
                key,
                i as u64 + 1,
                &format!("eyAccess{i}"),
                Some(&format!("eyRefresh{i}")),
            )
        })
        .collect();

    let mut leases = Vec::new();
    for key in &all {
        let found = done("try_lease", writer.try_lease(key, LONG)).await;
        let Some(lease) = found else {
            violated(
                APART,
                format_args!(
                    "the lease on {key:?} was refused while the leases of other keys were held"
                ),
            );
        };
        leases.push(lease);
    }
    for (lease, saved) in leases.iter().zip(&records) {
        ensure!(
            done("save", writer.save(lease, saved, None)).await,
            APART,
            "a save expecting no record, of {:?}, which has none, returned false \
             (the records of other keys were compared)",
            saved.key()
        );
    }
    for saved in &records {
        let loaded = done("load", reader.load(saved.key())).await;
        if let Some(other) = loaded.as_ref().filter(|r| r.key() != saved.key()) {
            violated(
                APART,
                format_args!(
                    "load of {:?} returned the record of {:?}",
                    saved.key(),
                    other.key()
                ),
            );
        }
        expect_record(loaded, saved, APART, "a key among keys spelled alike");
    }
    let never = keys.key("planner@example.com, never saved");
    let found = done("load", reader.load(&never)).await;
    ensure!(
        found.is_none(),
        APART,
        "load of {never:?}, never saved, returned the record of {:?}",
        found.as_ref().map(TokenRecord::key)
    );
    for lease in leases {
        done("release", writer.release(lease)).await;
    }

    done("remove", reader.remove(&all[0])).await;
    let found = done("load", reader.load(&all[0])).await;
    ensure!(
        found.is_none(),
        REMOVE,
        "load of {:?} returned a record after remove",
        all[0]
    );
    for saved in &records[1..] {
        let loaded = done("load", reader.load(saved.key())).await;
        expect_record(
            loaded,
            saved,
            APART,
            &format!("after remove of {:?}", all[0]),
        );
    }
    forget(&writer, &all).await;
}

/// After `remove` (a logout, through another handle), no record loads, a
/// save expecting the removed generation returns `false` (a holder that
/// read the record before the logout cannot bring it back), and a save
/// expecting no record writes. Removing a key that has no record succeeds.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::remove_forgets_the_record(move || backend.clone()).await;
/// # }
/// ```
pub async fn remove_forgets_the_record<S: TokenStore>(make: impl Fn() -> S) {
    let (writer, other) = (make(), make());
    let keys = Keys::new();
    let key = keys.key("removed");
    let lease = take(&writer, &key, LONG).await;
    let first = record(&key, 1, "eyFirst", Some("eyRefresh"));
    ensure!(
        done("save", writer.save(&lease, &first, None)).await,
        CAS,
        "a save expecting no record returned false where there was none"
    );
    done("release", writer.release(lease)).await;

    done("remove", other.remove(&key)).await;
    let found = done("load", writer.load(&key)).await;
    ensure!(
        found.is_none(),
        REMOVE,
        "load returned a record after remove"
    );
    done("remove", other.remove(&key)).await;

    let lease = take(&writer, &key, LONG).await;
    let stale = record(&key, 2, "eyStale", Some("eyRefresh"));
    ensure!(
        !done("save", writer.save(&lease, &stale, Some(1))).await,
        REMOVE,
        "a save expecting generation 1 returned true after that record was removed"
    );
    let found = done("load", writer.load(&key)).await;
    ensure!(
        found.is_none(),
        CAS,
        "a save that returned false wrote a record where there was none"
    );
    let again = record(&key, 1, "eyAgain", None);
    ensure!(
        done("save", writer.save(&lease, &again, None)).await,
        REMOVE,
        "a save expecting no record returned false after remove"
    );
    let loaded = done("load", other.load(&key)).await;
    expect_record(loaded, &again, ROUND_TRIP, "the record saved after remove");
    done("release", writer.release(lease)).await;
    forget(&writer, [&key]).await;
}

/// Eight handles ask for one key's lease at once: exactly one gets it, and
/// while it is held no handle gets it (the holder's own included), while
/// another key's lease can be had. Once released, another handle gets it.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::one_lease_per_key(move || backend.clone()).await;
/// # }
/// ```
pub async fn one_lease_per_key<S: TokenStore>(make: impl Fn() -> S) {
    let handles: Vec<Arc<S>> = (0..RACERS).map(|_| Arc::new(make())).collect();
    let keys = Keys::new();
    let key = keys.key("leased");
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut askers = JoinSet::new();
    for (i, store) in handles.iter().enumerate() {
        let (store, key, barrier) = (Arc::clone(store), key.clone(), Arc::clone(&barrier));
        askers.spawn(async move {
            barrier.wait().await;
            (i, done("try_lease", store.try_lease(&key, LONG)).await)
        });
    }
    let mut granted: Vec<(usize, Lease)> = joined(askers)
        .await
        .into_iter()
        .filter_map(|(i, lease)| Some((i, lease?)))
        .collect();
    ensure!(
        granted.len() == 1,
        ONE_LEASE,
        "{RACERS} handles asked for one key's lease at once and {} got it",
        granted.len()
    );
    let (holder, lease) = granted.pop().expect("one lease was granted");

    for (i, store) in handles.iter().enumerate() {
        let found = done("try_lease", store.try_lease(&key, LONG)).await;
        let whose = if i == holder {
            "the holder's own handle"
        } else {
            "another handle"
        };
        ensure!(
            found.is_none(),
            ONE_LEASE,
            "a lease held through one handle was granted again through {whose}"
        );
    }
    let other_key = keys.key("leased too");
    let other = take(&*handles[holder], &other_key, LONG).await;

    done("release", handles[holder].release(lease)).await;
    let next = &handles[(holder + 1) % RACERS];
    let again = take(&**next, &key, LONG).await;
    done("release", next.release(again)).await;
    done("release", handles[holder].release(other)).await;
}

/// The holder's `renew` returns `true`; a lease object of another owner on
/// the key, or of the holder's owner on another key, is not renewed, and
/// releasing it frees nothing; once the holder released its lease, a lease
/// object of its owner is not renewed either.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::renew_is_for_the_holder_only(move || backend.clone()).await;
/// # }
/// ```
pub async fn renew_is_for_the_holder_only<S: TokenStore>(make: impl Fn() -> S) {
    let (holder, other) = (make(), make());
    let keys = Keys::new();
    let key = keys.key("renewed");
    let held = take(&holder, &key, LONG).await;
    ensure!(
        done("renew", holder.renew(&held, LONG)).await,
        RENEW,
        "renew of a held lease, by its holder, returned false"
    );

    let impostor = Lease::new(key.clone(), Lease::random_owner());
    for (store, through) in [(&other, "another handle"), (&holder, "the holder's handle")] {
        ensure!(
            !done("renew", store.renew(&impostor, LONG)).await,
            RENEW,
            "renew of a lease object of another owner than the holder, through {through}, \
             returned true"
        );
    }
    let elsewhere = Lease::new(keys.key("never leased"), held.owner());
    ensure!(
        !done("renew", other.renew(&elsewhere, LONG)).await,
        RENEW,
        "renew of a lease object of the holder's owner on another key, never leased, returned true"
    );
    done("release", other.release(impostor)).await;
    let found = done("try_lease", other.try_lease(&key, LONG)).await;
    ensure!(
        found.is_none(),
        ONE_LEASE,
        "release of a lease object of another owner freed the holder's lease"
    );
    ensure!(
        done("renew", holder.renew(&held, LONG)).await,
        RENEW,
        "renew by the holder returned false after another owner's release"
    );

    let owner = held.owner().to_owned();
    done("release", holder.release(held)).await;
    let released = Lease::new(key.clone(), owner);
    ensure!(
        !done("renew", holder.renew(&released, LONG)).await,
        RENEW,
        "renew of a released lease returned true"
    );
    let again = take(&other, &key, LONG).await;
    done("release", other.release(again)).await;
}

/// Leases taken for 250 ms exclude others until then and are free by
/// 500 ms: another handle takes the lapsed one, whose first holder's
/// `renew` then returns `false` and whose `release` frees nothing; a lease
/// renewed at once outlives its first time to live; a lapsed lease that no
/// one took is not renewed either, and can be taken again.
///
/// Takes about half a second, on the real clock.
///
/// # Panics
///
/// When the store breaks the guarantee, or answers too slowly to tell (an
/// operation slower than the 250 ms time to live); see the
/// [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::leases_expire_after_their_ttl(move || backend.clone()).await;
/// # }
/// ```
pub async fn leases_expire_after_their_ttl<S: TokenStore>(make: impl Fn() -> S) {
    let (first, second, third) = (make(), make(), make());
    let keys = Keys::new();
    let (lapsing, renewed, idle) = (keys.key("lapsing"), keys.key("renewed"), keys.key("idle"));
    let looked_at = keys.key("looked at");

    let granted = Instant::now();
    let lapsed = take(&first, &lapsing, SHORT).await;
    let kept = take(&first, &renewed, SHORT).await;
    let forgotten = take(&first, &idle, SHORT).await;
    let Some(looked) = done("look", first.look(&looked_at, SHORT, None))
        .await
        .lease
    else {
        violated(
            LOOK,
            format_args!("a look did not take the lease on {looked_at}, which no one held"),
        );
    };
    let all_granted = Instant::now();
    let extended = done("renew", first.renew(&kept, LONG)).await;
    let found = done("try_lease", second.try_lease(&lapsing, LONG)).await;
    if granted.elapsed() >= SHORT {
        too_slow(granted.elapsed());
    }
    ensure!(
        extended,
        RENEW,
        "renew of a held lease, by its holder, within its time to live, returned false"
    );
    ensure!(
        found.is_none(),
        ONE_LEASE,
        "a lease taken for {SHORT:?} was granted to another handle within that time"
    );

    sleep_until(all_granted + 2 * SHORT).await;
    let Some(taken_over) = done("try_lease", second.try_lease(&lapsing, LONG)).await else {
        violated(
            EXPIRY,
            format_args!(
                "a lease taken for {SHORT:?} was still held {:?} later",
                2 * SHORT
            ),
        );
    };
    ensure!(
        !done("renew", first.renew(&lapsed, LONG)).await,
        RENEW,
        "renew of a lease that expired and was taken by another handle returned true"
    );
    done("release", first.release(lapsed)).await;
    let found = done("try_lease", third.try_lease(&lapsing, LONG)).await;
    ensure!(
        found.is_none(),
        ONE_LEASE,
        "release of a lease that had expired freed the lease of its next holder"
    );

    let found = done("try_lease", second.try_lease(&renewed, LONG)).await;
    ensure!(
        found.is_none(),
        RENEW,
        "a lease renewed for {LONG:?} was granted to another handle once its first time to \
         live of {SHORT:?} had passed"
    );
    ensure!(
        done("renew", first.renew(&kept, LONG)).await,
        RENEW,
        "renew of a renewed lease, by its holder, returned false"
    );

    ensure!(
        !done("renew", first.renew(&forgotten, LONG)).await,
        RENEW,
        "renew of a lease whose time to live had passed returned true (no one had taken it, \
         but its holder must learn that it was lost)"
    );
    let again = take(&third, &idle, LONG).await;
    let Some(looked_over) = done("look", second.look(&looked_at, LONG, None))
        .await
        .lease
    else {
        violated(
            EXPIRY,
            format_args!(
                "a lease a look took for {SHORT:?} was still held {:?} later",
                2 * SHORT
            ),
        );
    };
    drop(looked);

    done("release", second.release(looked_over)).await;
    done("release", second.release(taken_over)).await;
    done("release", first.release(kept)).await;
    done("release", third.release(again)).await;
}

/// For a store whose lease is an OS resource kept in the lease (such as the
/// file store's lock), which ignores the time to live: a lease excludes
/// others until it is dropped without a `release` (as when its holder's
/// task is aborted or its process dies), and is free within a second.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, FileStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("tokens");
/// conformance::a_dropped_lease_is_freed(|| FileStore::new(&path)).await;
/// # Ok(()) }
/// ```
pub async fn a_dropped_lease_is_freed<S: TokenStore>(make: impl Fn() -> S) {
    let (holder, other) = (make(), make());
    let keys = Keys::new();
    let key = keys.key("dropped");
    let lease = take(&holder, &key, LONG).await;
    let found = done("try_lease", other.try_lease(&key, LONG)).await;
    ensure!(
        found.is_none(),
        ONE_LEASE,
        "a lease that is still held was granted to another handle"
    );
    drop(lease);
    let deadline = Instant::now() + FREED_WITHIN;
    let again = loop {
        if let Some(lease) = done("try_lease", other.try_lease(&key, LONG)).await {
            break lease;
        }
        ensure!(
            Instant::now() < deadline,
            HOLDER,
            "a lease dropped without a release was still held {FREED_WITHIN:?} later"
        );
        sleep(Duration::from_millis(10)).await;
    };
    done("release", other.release(again)).await;
}

/// A notice saved through one handle loads through another equal in every
/// field, on every read; a second notice replaces the first; the notices of
/// two keys stay apart, and a key with none loads none.
///
/// A store with the trait's provided `save_failure` and `load_failure`
/// keeps no notices and fails this check with a message that says so: run
/// the others with [`Suite::without_failure_notices`] if that is meant.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::failure_notices_are_kept_whole(move || backend.clone()).await;
/// # }
/// ```
pub async fn failure_notices_are_kept_whole<S: TokenStore>(make: impl Fn() -> S) {
    let (writer, reader) = (make(), make());
    let keys = Keys::new();
    let (key, other_key) = (keys.key("failed"), keys.key("failed too"));
    let found = done("load_failure", reader.load_failure(&key)).await;
    ensure!(
        found.is_none(),
        NOTICES,
        "load_failure of a key never given a notice returned one"
    );

    let lease = take(&writer, &key, LONG).await;
    let first = as_kept(FailureNotice::new(
        key.clone(),
        Some(3),
        Duration::from_secs(60),
        crate::ErrorKind::AuthApiUnavailable,
    ));
    done("save_failure", writer.save_failure(&lease, &first)).await;
    let found = done("load_failure", reader.load_failure(&key)).await;
    ensure!(
        found.is_some(),
        NOTICES,
        "load_failure returned no notice after save_failure: the store keeps no failure notices \
         (the trait's provided methods keep none, and a wrapper must pass both through), so \
         every replica repeats a failing Auth API call; if that is meant, run the other checks \
         with Suite::without_failure_notices"
    );
    expect_notice(found, &first, "the first read through another handle");
    let loaded = done("load_failure", reader.load_failure(&key)).await;
    expect_notice(loaded, &first, "the second read through another handle");

    let second = as_kept(FailureNotice::new(
        key.clone(),
        None,
        Duration::from_secs(120),
        crate::ErrorKind::InvalidCredentials,
    ));
    done("save_failure", writer.save_failure(&lease, &second)).await;
    let loaded = done("load_failure", reader.load_failure(&key)).await;
    expect_notice(loaded, &second, "a second notice, saved over the first");

    let found = done("load_failure", reader.load_failure(&other_key)).await;
    ensure!(
        found.is_none(),
        NOTICES,
        "load_failure of a key never given a notice returned another key's"
    );
    let other_lease = take(&writer, &other_key, LONG).await;
    let other = as_kept(FailureNotice::new(
        other_key.clone(),
        Some(1),
        Duration::from_secs(90),
        crate::ErrorKind::AuthApiUnavailable,
    ));
    done("save_failure", writer.save_failure(&other_lease, &other)).await;
    let loaded = done("load_failure", reader.load_failure(&other_key)).await;
    expect_notice(loaded, &other, "the notice of another key");
    let loaded = done("load_failure", reader.load_failure(&key)).await;
    expect_notice(loaded, &second, "after another key's notice was saved");

    done("release", writer.release(lease)).await;
    done("release", writer.release(other_lease)).await;
    forget(&writer, [&key, &other_key]).await;
}

/// For a store whose [`changes`](TokenStore::changes) returns a feed: a
/// save and a release through one handle wake a subscription made through
/// another, which has looked at the key first (as a waiting token state
/// has). A feed may take a moment to start (a subscription to a server
/// being made): the check saves until the first announcement arrives, for
/// up to 5 seconds, then expects the next save and the release to be
/// announced within 2 seconds each. A store without a feed passes: its
/// waiters poll.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::changes_are_announced(move || backend.clone()).await;
/// # }
/// ```
pub async fn changes_are_announced<S: TokenStore>(make: impl Fn() -> S) {
    let (writer, waiter) = (make(), make());
    let keys = Keys::new();
    let key = keys.key("announced");
    if let Some(lease) = done("look", waiter.look(&key, LONG, None)).await.lease {
        done("release", waiter.release(lease)).await;
    }
    let Some(mut changes) = waiter.changes(&key) else {
        return;
    };
    let lease = take(&writer, &key, LONG).await;
    let started = Instant::now();
    let mut generation = 0;
    loop {
        let expected = (generation > 0).then_some(generation);
        generation += 1;
        let saved = record(
            &key,
            generation,
            &format!("eyAccess{generation}"),
            Some("eyR"),
        );
        ensure!(
            done("save", writer.save(&lease, &saved, expected)).await,
            CAS,
            "a save expecting the stored generation {expected:?} returned false"
        );
        match tokio::time::timeout(Duration::from_millis(100), changes.changed()).await {
            Ok(true) => break,
            Ok(false) => violated(ANNOUNCED, format_args!("the feed ended")),
            Err(_) => ensure!(
                started.elapsed() < FEED_STARTS_WITHIN,
                ANNOUNCED,
                "no save through another handle was announced within {FEED_STARTS_WITHIN:?} \
                 ({generation} saves)"
            ),
        }
    }
    // Announcements of the first saves may still be on their way.
    sleep(Duration::from_millis(100)).await;
    let _ = tokio::time::timeout(Duration::ZERO, changes.changed()).await;

    let saved = record(&key, generation + 1, "eyAccessNext", Some("eyR"));
    ensure!(
        done("save", writer.save(&lease, &saved, Some(generation))).await,
        CAS,
        "a save expecting the stored generation {generation} returned false"
    );
    let announced = tokio::time::timeout(ANNOUNCED_WITHIN, changes.changed()).await;
    ensure!(
        matches!(announced, Ok(true)),
        ANNOUNCED,
        "a save through another handle was not announced within {ANNOUNCED_WITHIN:?}"
    );
    // A feed that hands over records hands over the one saved.
    if let Some(handed) = changes.saved(&key) {
        expect_record(
            Some(handed),
            &saved,
            ANNOUNCED,
            "the record the feed handed over",
        );
    }
    done("release", writer.release(lease)).await;
    let announced = tokio::time::timeout(ANNOUNCED_WITHIN, changes.changed()).await;
    ensure!(
        matches!(announced, Ok(true)),
        ANNOUNCED,
        "a release through another handle was not announced within {ANNOUNCED_WITHIN:?}"
    );
    done("remove", writer.remove(&key)).await;
    let removed = Instant::now();
    while changes.saved(&key).is_some() {
        ensure!(
            removed.elapsed() < ANNOUNCED_WITHIN,
            ANNOUNCED,
            "the feed still handed over a record {ANNOUNCED_WITHIN:?} after it was removed"
        );
        let _ = tokio::time::timeout(Duration::from_millis(20), changes.changed()).await;
    }
}

/// [`look`](TokenStore::look) through one handle takes a lease no one
/// holds, and another handle's look then does not; both read the record
/// and the failure notice as [`load`](TokenStore::load) and
/// [`load_failure`](TokenStore::load_failure) do. A store that keeps no
/// notices passes with none.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::a_look_tries_the_lease_and_reads(move || backend.clone()).await;
/// # }
/// ```
pub async fn a_look_tries_the_lease_and_reads<S: TokenStore>(make: impl Fn() -> S) {
    let (writer, first, second) = (make(), make(), make());
    let keys = Keys::new();
    let key = keys.key("looked at");
    let saved = record(&key, 3, "eyLooked", Some("eyR"));
    let lease = take(&writer, &key, LONG).await;
    ensure!(
        done("save", writer.save(&lease, &saved, None)).await,
        CAS,
        "a save expecting no record, of {key}, which has none, returned false"
    );
    let notice = as_kept(FailureNotice::new(
        key.clone(),
        Some(3),
        Duration::from_secs(60),
        crate::ErrorKind::AuthApiUnavailable,
    ));
    done("save_failure", writer.save_failure(&lease, &notice)).await;
    let kept = done("load_failure", writer.load_failure(&key)).await;
    done("release", writer.release(lease)).await;

    let looked = done("look", first.look(&key, LONG, None)).await;
    let Some(held) = looked.lease else {
        violated(
            LOOK,
            format_args!("a look did not take the lease on {key}, which no one held"),
        )
    };
    expect_record(looked.record, &saved, LOOK, "the record a look read");
    ensure!(
        looked.notice == kept,
        LOOK,
        "a look read another failure notice than load_failure did"
    );
    let again = done("look", second.look(&key, LONG, None)).await;
    ensure!(
        again.lease.is_none(),
        LOOK,
        "a look through another handle took the lease on {key} while it was held"
    );
    expect_record(
        again.record,
        &saved,
        LOOK,
        "the record a look read while the lease was held",
    );
    done("release", first.release(held)).await;
    let freed = done("look", second.look(&key, LONG, None)).await;
    let Some(held) = freed.lease else {
        violated(
            LOOK,
            format_args!("a look did not take the lease on {key} once it was released"),
        )
    };
    done("release", second.release(held)).await;
    forget(&writer, [&key]).await;
}

/// [`look`](TokenStore::look) with a [`Marking`] writes the marked record
/// only when it takes the lease and finds the record the marking expects:
/// not while another handle holds the lease, not over another record, and
/// a record another look marked already is not reported as marked by this
/// one; it returns the record as it found it.
///
/// # Panics
///
/// When the store breaks the guarantee; see the [module docs](self).
///
/// # Example
///
/// ```
/// use simacan_auth::store::{conformance, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = MemoryStore::new();
/// conformance::a_look_marks_only_under_a_lease_it_took(move || backend.clone()).await;
/// # }
/// ```
pub async fn a_look_marks_only_under_a_lease_it_took<S: TokenStore>(make: impl Fn() -> S) {
    let (writer, first, second) = (make(), make(), make());
    let keys = Keys::new();
    let key = keys.key("marked");
    let saved = record(&key, 3, "eyStored", Some("eyR"));
    let lease = take(&writer, &key, LONG).await;
    ensure!(
        done("save", writer.save(&lease, &saved, None)).await,
        CAS,
        "a save expecting no record, of {key}, which has none, returned false"
    );
    done("release", writer.release(lease)).await;
    let marking = Marking::new(saved.clone(), record(&key, 4, "eyStored", None));
    let stale = Marking::new(
        record(&key, 3, "eyElsewhere", Some("eyR")),
        record(&key, 4, "eyElsewhere", None),
    );

    // Held by another handle: nothing written.
    let held = done("look", first.look(&key, LONG, None)).await;
    let Some(held) = held.lease else {
        violated(
            LOOK,
            format_args!("a look did not take the lease on {key}, which no one held"),
        )
    };
    let refused = done("look", second.look(&key, LONG, Some(&marking))).await;
    ensure!(
        refused.lease.is_none() && !refused.marked,
        MARK,
        "a look marked {key} while another handle held its lease"
    );
    let unchanged = done("load", writer.load(&key)).await;
    expect_record(
        unchanged,
        &saved,
        MARK,
        "the record after a look under another's lease",
    );
    done("release", first.release(held)).await;

    // Another record than the one expected: nothing written.
    let other = done("look", second.look(&key, LONG, Some(&stale))).await;
    let Some(held) = other.lease else {
        violated(
            LOOK,
            format_args!("a look did not take the lease on {key} once it was released"),
        )
    };
    ensure!(
        !other.marked,
        MARK,
        "a look marked {key} over a record the marking did not expect"
    );
    let unchanged = done("load", writer.load(&key)).await;
    expect_record(
        unchanged,
        &saved,
        MARK,
        "the record after a look that expected another",
    );
    done("release", second.release(held)).await;

    // The lease free and the record expected: marked, and found as it was.
    let looked = done("look", second.look(&key, LONG, Some(&marking))).await;
    let Some(held) = looked.lease else {
        violated(
            LOOK,
            format_args!("a look did not take the lease on {key}, which no one held"),
        )
    };
    ensure!(
        looked.marked,
        MARK,
        "a look that took the lease on {key} and found the record expected did not mark it"
    );
    expect_record(
        looked.record,
        &saved,
        MARK,
        "the record a marking look found",
    );
    let marked = done("load", writer.load(&key)).await;
    expect_record(
        marked,
        marking.marked(),
        MARK,
        "the record after a marking look",
    );
    done("release", second.release(held)).await;

    // The same marking again, by another holder: the record is marked
    // already, by the look before, and not by this one.
    let again = done("look", first.look(&key, LONG, Some(&marking))).await;
    let Some(held) = again.lease else {
        violated(
            LOOK,
            format_args!("a look did not take the lease on {key} once it was released"),
        )
    };
    ensure!(
        !again.marked,
        MARK,
        "a look took the marking another look had made of {key} for its own"
    );
    expect_record(
        again.record,
        marking.marked(),
        MARK,
        "the record found marked already",
    );
    done("release", first.release(held)).await;
    forget(&writer, [&key]).await;
}

// --- Helpers ----------------------------------------------------------------

const BASE_URL: &str = "https://auth.conformance.invalid/api/v1";

/// Keys of one check: every username ends in the same random tag, so that
/// keys spelled alike stay alike and no earlier run's data is found.
struct Keys {
    tag: String,
}

impl Keys {
    fn new() -> Self {
        Keys {
            tag: format!("{:08x}", fastrand::u32(..)),
        }
    }

    fn key(&self, username: &str) -> StoreKey {
        self.key_at(BASE_URL, username)
    }

    fn key_at(&self, base_url: &str, username: &str) -> StoreKey {
        StoreKey::new(base_url, format!("{username} #{}", self.tag))
    }
}

/// A record of `key`. Its expiry is in whole milliseconds and its lifetime
/// in whole seconds, as the encoding keeps them.
fn record(key: &StoreKey, generation: u64, access: &str, refresh: Option<&str>) -> TokenRecord {
    let expires_at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
    let lifetime = Duration::from_secs(3600);
    TokenRecord::new(
        key.clone(),
        generation,
        access,
        refresh,
        expires_at,
        lifetime,
    )
    .expect("the checks' records are valid")
}

/// `notice` as its encoding keeps it (times in whole milliseconds): what a
/// store keeping the bytes returns, and equal to what a store keeping the
/// value returns.
fn as_kept(notice: FailureNotice) -> FailureNotice {
    FailureNotice::decode(&notice.encode()).expect("a notice decodes from its encoding")
}

/// Panics for a broken guarantee.
#[track_caller]
fn violated(guarantee: &str, what: fmt::Arguments<'_>) -> ! {
    panic!("TokenStore contract violated: {guarantee}: {what}")
}

fn too_slow(took: Duration) -> ! {
    panic!(
        "TokenStore conformance: the store took {took:?} to answer, longer than the {SHORT:?} \
         time to live the lease check needs to outlast its operations"
    )
}

/// The outcome of a store operation, which must succeed within
/// [`PATIENCE`].
async fn done<T>(operation: &str, future: impl Future<Output = Result<T, StoreError>>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => panic!(
            "TokenStore conformance: {operation} failed: {error} (the checks need a store that works)"
        ),
        Err(_) => panic!(
            "TokenStore conformance: {operation} did not finish within {PATIENCE:?}: a store \
             operation must not hang"
        ),
    }
}

/// The lease on `key`, which no one holds. It is tried for a moment: an OS
/// lock released by this process stays held while a child process forked
/// meanwhile has not yet started its program.
async fn take<S: TokenStore + ?Sized>(store: &S, key: &StoreKey, ttl: Duration) -> Lease {
    let deadline = Instant::now() + FREED_WITHIN;
    loop {
        if let Some(lease) = done("try_lease", store.try_lease(key, ttl)).await {
            return lease;
        }
        ensure!(
            Instant::now() < deadline,
            FREE,
            "try_lease refused the lease on {key:?} for {FREED_WITHIN:?}, though no one held it \
             (never taken, or released)"
        );
        sleep(Duration::from_millis(10)).await;
    }
}

/// Removes the records the check wrote.
async fn forget<'k, S: TokenStore + ?Sized>(
    store: &S,
    keys: impl IntoIterator<Item = &'k StoreKey>,
) {
    for key in keys {
        done("remove", store.remove(key)).await;
    }
}

/// The outputs of `tasks`; a task's panic is this one's.
async fn joined<T: 'static>(mut tasks: JoinSet<T>) -> Vec<T> {
    let mut outputs = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(output) => outputs.push(output),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => panic!("TokenStore conformance: a task of the check ended: {error}"),
        }
    }
    outputs
}

/// Checks that `loaded` is `saved`, field by field (naming the field that
/// differs, never a token).
#[track_caller]
fn expect_record(loaded: Option<TokenRecord>, saved: &TokenRecord, guarantee: &str, when: &str) {
    let Some(loaded) = loaded else {
        violated(
            guarantee,
            format_args!("{when}: load of {:?} returned no record", saved.key()),
        );
    };
    let differs = if loaded.key() != saved.key() {
        Some("key")
    } else if loaded.generation() != saved.generation() {
        Some("generation")
    } else if loaded.access_token() != saved.access_token() {
        Some("access token")
    } else if loaded.refresh_token() != saved.refresh_token() {
        Some("refresh token")
    } else if loaded.expires_at() != saved.expires_at() {
        Some("expiry")
    } else if loaded.lifetime() != saved.lifetime() {
        Some("lifetime")
    } else {
        None
    };
    if let Some(field) = differs {
        violated(
            guarantee,
            format_args!(
                "{when}: load of {:?} returned a record whose {field} differs from the one saved \
                 (saved {saved:?}, loaded {loaded:?})",
                saved.key()
            ),
        );
    }
}

/// Checks that `loaded` is `saved`, equal in every field.
#[track_caller]
fn expect_notice(loaded: Option<FailureNotice>, saved: &FailureNotice, when: &str) {
    let Some(loaded) = loaded else {
        violated(
            NOTICES,
            format_args!(
                "{when}: load_failure of {:?} returned no notice",
                saved.key()
            ),
        );
    };
    ensure!(
        loaded == *saved,
        NOTICES,
        "{when}: load_failure of {:?} returned a notice that differs from the one saved \
         (saved {saved:?}, loaded {loaded:?})",
        saved.key()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BoxFuture, ChangeFeed, Changes, MemoryStore};

    /// What a store gets wrong.
    #[derive(Debug, Clone, Copy)]
    enum Flaw {
        /// `save` writes whatever generation is stored.
        BlindSave,
        /// `load` loses the refresh token.
        LoadWithoutRefreshToken,
        /// Leases never end: the time to live is ignored.
        EndlessLeases,
        /// `renew` is true for anyone while the key is leased.
        RenewForAnyone,
        /// The trait's provided failure methods: no notices kept.
        NoNotices,
        /// A change feed on which nothing is announced.
        SilentFeed,
    }

    /// A memory store with a flaw.
    #[derive(Debug, Clone)]
    struct Flawed {
        inner: MemoryStore,
        flaw: Flaw,
        silent: ChangeFeed,
    }

    fn flawed(flaw: Flaw) -> impl Fn() -> Flawed {
        let inner = MemoryStore::new();
        let silent = ChangeFeed::new();
        move || Flawed {
            inner: inner.clone(),
            flaw,
            silent: silent.clone(),
        }
    }

    impl TokenStore for Flawed {
        fn load<'a>(
            &'a self,
            key: &'a StoreKey,
        ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
            Box::pin(async move {
                let record = self.inner.load(key).await?;
                Ok(match self.flaw {
                    Flaw::LoadWithoutRefreshToken => record.map(|r| {
                        let (expires_at, lifetime) = (r.expires_at(), r.lifetime());
                        TokenRecord::new(
                            r.key().clone(),
                            r.generation(),
                            r.access_token(),
                            None,
                            expires_at,
                            lifetime,
                        )
                        .unwrap()
                    }),
                    _ => record,
                })
            })
        }

        fn try_lease<'a>(
            &'a self,
            key: &'a StoreKey,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
            match self.flaw {
                Flaw::EndlessLeases => self.inner.try_lease(key, LONG),
                _ => self.inner.try_lease(key, ttl),
            }
        }

        fn renew<'a>(
            &'a self,
            lease: &'a Lease,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<bool, StoreError>> {
            Box::pin(async move {
                let renewed = self.inner.renew(lease, ttl).await?;
                Ok(match self.flaw {
                    Flaw::RenewForAnyone => {
                        renewed || self.inner.try_lease(lease.key(), ttl).await?.is_none()
                    }
                    _ => renewed,
                })
            })
        }

        fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
            self.inner.release(lease)
        }

        fn save<'a>(
            &'a self,
            lease: &'a Lease,
            record: &'a TokenRecord,
            expected: Option<u64>,
        ) -> BoxFuture<'a, Result<bool, StoreError>> {
            Box::pin(async move {
                let expected = match self.flaw {
                    Flaw::BlindSave => self.inner.load(record.key()).await?.map(|r| r.generation()),
                    _ => expected,
                };
                self.inner.save(lease, record, expected).await
            })
        }

        fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
            self.inner.remove(key)
        }

        fn save_failure<'a>(
            &'a self,
            lease: &'a Lease,
            notice: &'a FailureNotice,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            match self.flaw {
                Flaw::NoNotices => Box::pin(std::future::ready(Ok(()))),
                _ => self.inner.save_failure(lease, notice),
            }
        }

        fn load_failure<'a>(
            &'a self,
            key: &'a StoreKey,
        ) -> BoxFuture<'a, Result<Option<FailureNotice>, StoreError>> {
            match self.flaw {
                Flaw::NoNotices => Box::pin(std::future::ready(Ok(None))),
                _ => self.inner.load_failure(key),
            }
        }

        fn changes(&self, key: &StoreKey) -> Option<Changes> {
            match self.flaw {
                Flaw::SilentFeed => Some(self.silent.subscribe()),
                _ => self.inner.changes(key),
            }
        }
    }

    #[tokio::test]
    #[should_panic(expected = "TokenStore contract violated: save is one atomic compare-and-swap")]
    async fn a_save_that_ignores_the_generation_is_caught() {
        check(flawed(Flaw::BlindSave)).await;
    }

    #[tokio::test]
    #[should_panic(
        expected = "violated: load returns what the last successful save wrote, \
                               whole: the first read through another handle: load of"
    )]
    async fn a_record_loaded_without_its_refresh_token_is_caught() {
        check(flawed(Flaw::LoadWithoutRefreshToken)).await;
    }

    #[tokio::test]
    #[should_panic(expected = "violated: a lease expires on its own after its time to live")]
    async fn a_lease_that_outlives_its_ttl_is_caught() {
        check(flawed(Flaw::EndlessLeases)).await;
    }

    #[tokio::test]
    #[should_panic(expected = "violated: a lease that is an OS resource ends with its holder")]
    async fn a_lease_kept_after_its_holder_dropped_it_is_caught() {
        a_dropped_lease_is_freed(flawed(Flaw::EndlessLeases)).await;
    }

    #[tokio::test]
    #[should_panic(expected = "violated: renew extends a lease only for its owner")]
    async fn a_renew_for_anyone_is_caught() {
        check(flawed(Flaw::RenewForAnyone)).await;
    }

    #[tokio::test]
    #[should_panic(expected = "the store keeps no failure notices")]
    async fn a_store_without_failure_notices_is_told_so() {
        check(flawed(Flaw::NoNotices)).await;
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(
        expected = "violated: a store with a change feed announces saves and releases: \
                               no save through another handle was announced"
    )]
    async fn a_feed_that_announces_nothing_is_caught() {
        changes_are_announced(flawed(Flaw::SilentFeed)).await;
    }

    #[tokio::test]
    async fn a_store_without_a_feed_passes_the_announcement_check() {
        #[derive(Debug, Clone)]
        struct Polled(MemoryStore);
        impl TokenStore for Polled {
            fn load<'a>(
                &'a self,
                key: &'a StoreKey,
            ) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
                self.0.load(key)
            }
            fn try_lease<'a>(
                &'a self,
                key: &'a StoreKey,
                ttl: Duration,
            ) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
                self.0.try_lease(key, ttl)
            }
            fn renew<'a>(
                &'a self,
                lease: &'a Lease,
                ttl: Duration,
            ) -> BoxFuture<'a, Result<bool, StoreError>> {
                self.0.renew(lease, ttl)
            }
            fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
                self.0.release(lease)
            }
            fn save<'a>(
                &'a self,
                lease: &'a Lease,
                record: &'a TokenRecord,
                expected: Option<u64>,
            ) -> BoxFuture<'a, Result<bool, StoreError>> {
                self.0.save(lease, record, expected)
            }
            fn remove<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
                self.0.remove(key)
            }
        }
        let backend = MemoryStore::new();
        changes_are_announced(move || Polled(backend.clone())).await;
    }

    #[tokio::test]
    async fn a_store_without_failure_notices_may_say_so() {
        Suite::new(flawed(Flaw::NoNotices))
            .without_failure_notices()
            .run()
            .await;
    }
}
