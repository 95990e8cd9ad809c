//! Network addresses in configuration: `host:port` and `[v6]:port` parsed into socket
//! addresses or host and port. Shared by the node configuration and the cluster file.

use std::net::SocketAddr;

/// Parses `host:port` or `[v6]:port` into a socket address (names are resolved by the
/// listener, so only literal addresses and `localhost` are accepted here).
pub fn parse_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let s = s.replace("localhost:", "127.0.0.1:");
    s.parse()
        .map_err(|_| anyhow::anyhow!("invalid listener address {s:?} (expected HOST:PORT)"))
}

pub fn split_host_port(s: &str) -> anyhow::Result<(String, i32)> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("invalid address {s:?} (expected HOST:PORT)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid port in {s:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    anyhow::ensure!(!host.is_empty(), "empty host in {s:?}");
    Ok((host.to_string(), port as i32))
}
