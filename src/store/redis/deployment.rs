//! Which Redis a store's URL names (one server, a primary found through
//! Sentinel, or a Cluster), and the connection each one gets.

use std::{fmt, time::Duration};

use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError,
    RedisFuture, TlsMode, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
};

/// The default ports of a Sentinel and of a Cluster node.
const SENTINEL_PORT: u16 = 26379;
const REDIS_PORT: u16 = 6379;

/// The Redis deployment a store talks to.
pub(super) enum Deployment {
    /// One server (`redis://`, `rediss://`, `redis+unix://`).
    Server(Client),
    /// A primary found through Sentinel, asked again after a failover.
    Sentinel {
        /// Behind an async lock: redis-rs's client keeps its sentinel
        /// connections and needs `&mut` to ask.
        sentinels: tokio::sync::Mutex<SentinelClient>,
        master: String,
    },
    /// A Cluster: the seed nodes, each with the URL's AUTH and TLS.
    Cluster(Vec<ConnectionInfo>),
}

/// What a URL names, and how to describe it without its secrets.
pub(super) struct Parsed {
    pub(super) deployment: Deployment,
    /// Where, for errors and `Debug`: `host:port`, a socket path, or the
    /// sentinels' or seed nodes' addresses. Never a password.
    pub(super) address: String,
    pub(super) db: i64,
    pub(super) tls: bool,
}

impl Deployment {
    /// What kind of deployment, for `Debug`.
    pub(super) fn kind(&self) -> DeploymentKind<'_> {
        match self {
            Deployment::Server(_) => DeploymentKind::Server,
            Deployment::Sentinel { master, .. } => DeploymentKind::Sentinel(master),
            Deployment::Cluster(_) => DeploymentKind::Cluster,
        }
    }

    /// A new connection with `timeout` for connecting and for each answer.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<Connection, RedisError> {
        match self {
            Deployment::Server(client) => {
                // Reconnecting is retried by the store, within the operation's time.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
                Ok(Connection::Server(manager))
            }
            Deployment::Sentinel { sentinels, .. } => {
                // Asks the sentinels for the current primary, which redis-rs
                // checks with `ROLE` before handing it out.
                let primary = sentinels.lock().await.async_get_client().await?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let connection = primary
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Connection::Primary(connection))
            }
            Deployment::Cluster(seeds) => {
                let client = ClusterClient::builder(seeds.clone())
                    .tcp_settings(seeds[0].tcp_settings().clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()?;
                Ok(Connection::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// A client for a connection of its own to the primary (asked of the
    /// sentinels) or, for a Cluster, to the seed node `attempt` picks.
    pub(super) async fn subscriber_client(&self, attempt: u32) -> Result<Client, RedisError> {
        match self {
            Deployment::Server(client) => Ok(client.clone()),
            Deployment::Sentinel { sentinels, .. } => {
                sentinels.lock().await.async_get_client().await
            }
            Deployment::Cluster(seeds) => {
                Client::open(seeds[attempt as usize % seeds.len()].clone())
            }
        }
    }
}

/// The kind of deployment, shown by the store's `Debug`.
pub(super) enum DeploymentKind<'a> {
    Server,
    Sentinel(&'a str),
    Cluster,
}

impl fmt::Debug for DeploymentKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeploymentKind::Server => f.write_str("Server"),
            DeploymentKind::Sentinel(master) => f.debug_tuple("Sentinel").field(master).finish(),
            DeploymentKind::Cluster => f.write_str("Cluster"),
        }
    }
}

/// A connection of any deployment: each follows its own deployment's
/// changes (a reconnect, a failover, a `MOVED` slot) in its own way.
#[derive(Clone)]
pub(super) enum Connection {
    Server(ConnectionManager),
    Primary(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Server(c) => c.req_packed_command(cmd),
            Connection::Primary(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Primary(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(c) => c.get_db(),
            Connection::Primary(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Reads a store URL. The reason for a refusal never repeats the URL.
pub(super) fn parse(url: &str) -> Result<Parsed, String> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "redis" | "rediss" | "redis+unix" => server(url),
        "redis+sentinel" | "rediss+sentinel" => sentinel(url, scheme == "rediss+sentinel"),
        "redis+cluster" | "rediss+cluster" => cluster(url, scheme == "rediss+cluster"),
        _ => {
            url::Url::parse(url).map_err(|e| format!("redis url does not parse: {e}"))?;
            Err(
                "redis url must start with redis://, rediss://, redis+unix://, \
                 redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://"
                    .into(),
            )
        }
    }
}

fn server(url: &str) -> Result<Parsed, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("redis url does not parse: {e}"))?;
    if parsed.fragment().is_some() {
        return Err(no_fragment());
    }
    let info = parsed.into_connection_info().map_err(|e| invalid(&e))?;
    let client = Client::open(no_delay(info)).map_err(|e| invalid(&e))?;
    let info = client.get_connection_info();
    let (address, tls) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => (host_port(host, *port), false),
        ConnectionAddr::TcpTls { host, port, .. } => (host_port(host, *port), true),
        other => (other.to_string(), false),
    };
    let db = info.redis_settings().db();
    Ok(Parsed {
        deployment: Deployment::Server(client),
        address,
        db,
        tls,
    })
}

/// `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master[/db][?sentinel_username=…&sentinel_password=…]`
fn sentinel(url: &str, tls: bool) -> Result<Parsed, String> {
    let parts = Parts::split(url, SENTINEL_PORT)?;
    let mut path = parts.path.split('/').filter(|s| !s.is_empty());
    let master = path
        .next()
        .ok_or("redis url must name the master after the sentinels: /mymaster")?;
    let master = percent_decoded(master)?;
    let db = match path.next() {
        None => 0,
        Some(db) => db
            .parse::<i64>()
            .map_err(|_| "redis url must give the database as a number: /mymaster/2")?,
    };
    if path.next().is_some() {
        return Err("redis url of sentinels has the path /master or /master/db".into());
    }
    let (mut sentinel_username, mut sentinel_password) = (None, None);
    for (name, value) in form_urlencoded::parse(parts.query.as_bytes()) {
        match &*name {
            "sentinel_username" => sentinel_username = Some(value.into_owned()),
            "sentinel_password" => sentinel_password = Some(value.into_owned()),
            other => {
                return Err(format!(
                    "redis url has an unknown parameter {other:?}: \
                     only sentinel_username and sentinel_password"
                ));
            }
        }
    }
    // The primary's and replicas' AUTH and database, as a server URL has them.
    let node = parts.node_url(tls, &parts.hosts[0], db)?;
    let mut sentinels = Vec::with_capacity(parts.hosts.len());
    for host in &parts.hosts {
        let mut redis = RedisConnectionSettings::default();
        if let Some(username) = &sentinel_username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &sentinel_password {
            redis = redis.set_password(password);
        }
        let info = parts
            .node_url(tls, host, 0)
            .map(|info| info.set_redis_settings(redis))?;
        sentinels.push(info);
    }
    let mut node_info = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(node.redis_settings().clone())
        .set_tcp_settings(node.tcp_settings().clone());
    if tls {
        node_info = node_info.set_tls_mode(TlsMode::Secure);
    }
    let client = SentinelClient::build(
        sentinels,
        master.clone(),
        Some(node_info),
        SentinelServerType::Master,
    )
    .map_err(|e| invalid(&e))?;
    Ok(Parsed {
        deployment: Deployment::Sentinel {
            sentinels: tokio::sync::Mutex::new(client),
            master,
        },
        address: parts.addresses(),
        db,
        tls,
    })
}

/// `redis+cluster://[[user]:password@]host[:port][,host[:port]…]`
fn cluster(url: &str, tls: bool) -> Result<Parsed, String> {
    let parts = Parts::split(url, REDIS_PORT)?;
    if !parts.path.trim_matches('/').is_empty() {
        return Err("redis url of a cluster has no path: a cluster has database 0 only".into());
    }
    if !parts.query.is_empty() {
        return Err("redis url of a cluster takes no parameters".into());
    }
    let seeds = parts
        .hosts
        .iter()
        .map(|host| parts.node_url(tls, host, 0))
        .collect::<Result<Vec<_>, _>>()?;
    // Checks what the client checks (AUTH alike on every node) now, not at
    // first use.
    ClusterClient::builder(seeds.clone())
        .build()
        .map_err(|e| invalid(&e))?;
    Ok(Parsed {
        deployment: Deployment::Cluster(seeds),
        address: parts.addresses(),
        db: 0,
        tls,
    })
}

type RedisConnectionSettings = redis::RedisConnectionInfo;

/// A multi-host URL taken apart: `scheme://[userinfo@]hosts[/path][?query]`.
struct Parts<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<(String, u16)>,
    path: &'a str,
    query: &'a str,
}

impl<'a> Parts<'a> {
    fn split(url: &'a str, default_port: u16) -> Result<Self, String> {
        let (_, rest) = url.split_once("://").unwrap_or(("", url));
        if rest.contains('#') {
            return Err(no_fragment());
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let hosts = hosts
            .split(',')
            .map(|host| host_and_port(host, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Parts {
            userinfo,
            hosts,
            path,
            query,
        })
    }

    /// One node's connection settings, through redis-rs's own URL reading
    /// (which decodes the user and password).
    fn node_url(
        &self,
        tls: bool,
        (host, port): &(String, u16),
        db: i64,
    ) -> Result<ConnectionInfo, String> {
        let scheme = if tls { "rediss" } else { "redis" };
        let userinfo = self.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let url = format!("{scheme}://{userinfo}{}/{db}", host_port(host, *port));
        let info = url.as_str().into_connection_info();
        info.map(no_delay).map_err(|e| invalid(&e))
    }

    fn addresses(&self) -> String {
        let hosts: Vec<_> = self.hosts.iter().map(|(h, p)| host_port(h, *p)).collect();
        hosts.join(",")
    }
}

/// `info` with Nagle's algorithm off: requests are small and sent in
/// pipelines, and a request held back until the previous one's
/// acknowledgement would wait a round trip more (redis-rs leaves it on).
fn no_delay(info: ConnectionInfo) -> ConnectionInfo {
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    info.set_tcp_settings(tcp)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn host_and_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || "redis url must list its hosts as host[:port], separated by commas".to_owned();
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '[', ']']) {
        return Err(bad());
    }
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| bad())?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

fn percent_decoded(text: &str) -> Result<String, String> {
    let decoded: String = form_urlencoded::parse(format!("x={text}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default();
    if decoded.is_empty() {
        return Err("redis url must name the master after the sentinels: /mymaster".into());
    }
    Ok(decoded)
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn no_fragment() -> String {
    "redis url must not have a fragment: tls certificates are always verified".into()
}

fn invalid(error: &RedisError) -> String {
    format!("redis url is invalid: {}", describe(error))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_to_servers_and_cluster_nodes_send_without_delay() {
        let Deployment::Server(client) = parse("redis://127.0.0.1:6379").unwrap().deployment else {
            panic!("one server");
        };
        assert!(client.get_connection_info().tcp_settings().nodelay());
        let cluster = parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").unwrap();
        let Deployment::Cluster(seeds) = cluster.deployment else {
            panic!("a cluster");
        };
        assert!(seeds.iter().all(|seed| seed.tcp_settings().nodelay()));
    }
}
