//! The `TokenStore` contract, checked once for every built-in store by the
//! suite users run against their own (`store::conformance`): several
//! handles on one backend stand for the replicas of a fleet. What only one
//! store does (files on disk, Redis's keys, AUTH and timeouts) is tested in
//! that store's own test file.

mod support;

use simacan_auth::store::{FileStore, MemoryStore, conformance};

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    // Handles on one backend: clones of one memory store.
    let store = MemoryStore::new();
    conformance::check(move || store.clone()).await;
}

#[tokio::test]
async fn the_file_store_keeps_the_contract() {
    // Handles on one backend: stores on one directory. The lease is the
    // lock file's OS lock, which ignores its time to live.
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("simacan-auth");
    conformance::Suite::new(|| FileStore::new(&dir))
        .leases_end_with_their_holder()
        .run()
        .await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_redis_store_keeps_the_contract() {
    use simacan_auth::store::RedisStore;
    use support::redis::RedisServer;

    let Some(server) = RedisServer::start() else {
        return;
    };
    // Handles on one backend: stores with connections of their own to one
    // server, as replicas have.
    let url = server.url();
    conformance::check(|| RedisStore::open(&url).unwrap()).await;
}
