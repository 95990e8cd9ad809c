//! Opening this broker's replication node as a member of a cluster: the TCP transport to
//! its peers, the inter-broker listener (both upgraded as `[security.inter_broker]` says,
//! `security/inter_broker.rs`), and every group it is a voter of (the metadata group on all
//! brokers, store groups on their `replication_factor` brokers).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use phxq_replication::tcp::{self, TcpTransport};
use phxq_replication::{Command, GroupId, NodeConfig, ReplicaNode, StoreGroup};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::config::ClusterConfig;
use crate::addr::parse_addr;
use crate::config::Config;

/// A running cluster member's replication.
pub struct ClusterNode {
    pub node: Arc<ReplicaNode>,
    pub metadata: StoreGroup,
    /// Stops the inter-broker listener.
    pub stop: Arc<Notify>,
}

/// Binds the inter-broker listener, opens the node with a TCP transport to its peers and
/// opens every group this broker is a voter of. Returns without waiting for leaders.
pub async fn open(
    config: &Config,
    cluster: &ClusterConfig,
    raft: NodeConfig,
) -> anyhow::Result<ClusterNode> {
    let me = config.node_id;
    let security = crate::security::inter_broker::peer_security(&config.security, cluster)?;
    let bind = cluster.internal_bind(me)?;
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on inter-broker address {bind}: {e}"))?;
    info!(%bind, "listening for other brokers");
    let mut peers = HashMap::new();
    for b in cluster.brokers.iter().filter(|b| b.id != me) {
        peers.insert(b.id, parse_addr(&b.internal)?);
    }
    let transport: Arc<dyn phxq_replication::network::Transport> =
        Arc::new(TcpTransport::new(peers, security.clone()));
    let node = ReplicaNode::open_with_transport(raft, Some(transport))
        .await
        .map_err(|e| anyhow::anyhow!("cannot open data dir {}: {e}", config.data_dir.display()))?;
    let stop = Arc::new(Notify::new());
    let stopped = stop.clone();
    tokio::spawn(tcp::serve(
        listener,
        Arc::downgrade(&node),
        security,
        async move { stopped.notified().await },
    ));
    let metadata = node
        .open_group_with(GroupId::METADATA, cluster.voters(0).into_iter().collect())
        .await?;
    for g in 1..=config.store_groups {
        let voters: BTreeSet<u64> = cluster.voters(g).into_iter().collect();
        if voters.contains(&me) {
            node.open_group_with(GroupId(g), voters).await?;
        }
    }
    Ok(ClusterNode {
        node,
        metadata,
        stop,
    })
}

/// Waits until the metadata group knows the cluster id; the metadata leader creates it if
/// nobody has yet. Logs while no quorum of brokers is reachable. Fails when the stored id
/// cannot be read: a read error must not pass for "no id yet" and have a new one written.
pub async fn cluster_id(
    metadata: &StoreGroup,
    key: &[u8],
    fresh: impl Fn() -> String,
) -> anyhow::Result<String> {
    let read = |what: &str| -> anyhow::Result<Option<String>> {
        let id = metadata
            .kv_get(key)
            .map_err(|e| anyhow::anyhow!("cannot read the cluster id ({what}): {e}"))?;
        Ok(id.map(|id| String::from_utf8_lossy(&id).into_owned()))
    };
    let mut waited = 0u64;
    loop {
        if let Some(id) = read("local replica")? {
            return Ok(id);
        }
        if metadata.is_leader() && metadata.ensure_linearizable().await.is_ok() {
            if let Some(id) = read("leader")? {
                return Ok(id);
            }
            let id = fresh();
            let put = Command::Put(vec![(
                Bytes::copy_from_slice(key),
                Some(Bytes::from(id.clone())),
            )]);
            match metadata.propose(put).await {
                Ok(_) => return Ok(id),
                Err(e) => warn!(error = %e, "cannot store the cluster id yet"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 100;
        if waited.is_multiple_of(5000) {
            info!(
                waited_s = waited / 1000,
                "waiting for a quorum of brokers to form the metadata group"
            );
        }
    }
}
