//! The mock's listener: HTTP/1.1 and HTTP/2 on a loopback address.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{
    net::TcpListener,
    task::{JoinHandle, JoinSet},
};

use super::{
    handler::{self, Hangup},
    state::State,
};

/// Binds `addr` and serves until the returned task is aborted; aborting it
/// also ends every open connection.
pub(super) async fn serve(
    state: Arc<State>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, Arc::clone(&state)));
                }
                Some(_) = connections.join_next() => {}
            }
        }
    });
    Ok((addr, server))
}

/// Serves one connection until the client closes it or a handler hangs up.
async fn connection(stream: tokio::net::TcpStream, state: Arc<State>) {
    let hangup = Hangup::default();
    let service = {
        let hangup = hangup.clone();
        service_fn(move |request| {
            let (state, hangup) = (Arc::clone(&state), hangup.clone());
            async move { Ok::<_, Infallible>(handler::handle(state, request, hangup).await) }
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        // The connection first, so that what a handler wrote before hanging
        // up is flushed.
        biased;
        _ = serving => {}
        () = hangup.requested() => {}
    }
}
