//! The full text behind the README, one guide a topic. Every example here is
//! compiled and run as a doctest.
//!
//! | guide | what it covers |
//! |---|---|
//! | [`testing`] | testing without credentials: the mock Auth API in process and as a server |
//! | [`configuration`] | every setting of the layer, and what clones share |
//! | [`proxies_and_cas`] | the Auth API behind a `CONNECT` proxy or a private CA, or through a client of your own |
//! | [`token_scope`] | which requests get the token, and redirects |
//! | [`what_happens`] | what the layer does when a token expires, is revoked, or the Auth API fails |
//! | [`stores`] | token stores: memory, file and Redis, the fleet protocol and its failure modes |
//! | [`streaming_and_grpc`] | streaming bodies, their replay, and gRPC through tonic |
//! | [`stacking`] | the layer with timeout, retry and buffer |
//! | [`reqwest`] | the reqwest-middleware integration |
//! | [`command_line`] | the `simacan-auth` command-line tool |
//! | [`errors`] | errors, their kinds, and gRPC status codes |
//! | [`observability`] | logs, [`Stats`](crate::Stats) and metrics |

#[doc = include_str!("../docs/guide/testing.md")]
pub mod testing {}

#[doc = include_str!("../docs/guide/configuration.md")]
pub mod configuration {}

#[doc = include_str!("../docs/guide/proxies_and_cas.md")]
pub mod proxies_and_cas {}

#[doc = include_str!("../docs/guide/token_scope.md")]
pub mod token_scope {}

#[doc = include_str!("../docs/guide/what_happens.md")]
pub mod what_happens {}

#[doc = include_str!("../docs/guide/stores.md")]
pub mod stores {}

#[doc = include_str!("../docs/guide/streaming_and_grpc.md")]
pub mod streaming_and_grpc {}

#[doc = include_str!("../docs/guide/stacking.md")]
pub mod stacking {}

#[doc = include_str!("../docs/guide/reqwest.md")]
pub mod reqwest {}

#[doc = include_str!("../docs/guide/command_line.md")]
pub mod command_line {}

#[doc = include_str!("../docs/guide/errors.md")]
pub mod errors {}

#[doc = include_str!("../docs/guide/observability.md")]
pub mod observability {}
