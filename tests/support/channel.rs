//! The Redis store's channel as any subscriber hears it: a tap, and the
//! payloads it heard.

use std::time::Duration;

use tokio_stream::{Stream, StreamExt};

use super::bounded;

/// Everything published on the store's channel (default prefix) of the
/// Redis at `url` from now on.
pub async fn tap(url: &str) -> impl Stream<Item = ::redis::Msg> + Unpin + use<> {
    let client = ::redis::Client::open(url).expect("the Redis URL");
    let mut tap = bounded(client.get_async_pubsub())
        .await
        .expect("a subscription to Redis");
    bounded(tap.subscribe("simacan-auth:changes"))
        .await
        .expect("SUBSCRIBE");
    Box::pin(tap.into_on_message())
}

/// The payloads `tapped` hears until it has been quiet for 200 ms (at
/// most 100 of them).
pub async fn heard(tapped: &mut (impl Stream<Item = ::redis::Msg> + Unpin)) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(200), tapped.next()).await
    {
        messages.push(message.get_payload_bytes().to_vec());
        if messages.len() == 100 {
            break;
        }
    }
    messages
}
