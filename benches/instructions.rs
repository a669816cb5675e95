//! Instructions per request, for callgrind: the same four stacks as the
//! `per_request` group of `hot_path` (no layer, static `AddAuthorization`,
//! `AddAuthorization` under `Retry`, `SimacanAuth`), each sending N requests.
//! Counts are deterministic where wall-clock times are noisy; run
//! `benches/instructions.sh`, which runs every stack under callgrind with
//! two values of N and prints the difference per request.
//!
//! ```text
//! bash benches/instructions.sh
//! ```

#[path = "common/mod.rs"]
mod common;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use tower::{Layer, Service};

fn send<S>(mut svc: S, requests: usize)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..requests {
        std::hint::black_box(call_now(&mut svc, realistic_request()));
    }
}

fn main() {
    // `cargo bench` passes `--bench`; the script passes a stack and a count.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [stack, requests] = args.as_slice() else {
        eprintln!(
            "usage: instructions <bare|add_authorization|add_authorization_retry|simacan_auth> <requests>; see benches/instructions.sh"
        );
        return;
    };
    let requests: usize = requests.parse().expect("a number of requests");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_mock, layer) = warm_setup(&runtime);
    match stack.as_str() {
        "bare" => send(Noop, requests),
        "add_authorization" => send(add_authorization(), requests),
        "add_authorization_retry" => send(add_authorization_retry(), requests),
        "simacan_auth" => send(layer.layer(Noop), requests),
        other => panic!("unknown stack {other}"),
    }
}
