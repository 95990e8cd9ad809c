//! A node's settings: where its data lives, Raft timings, and storage sizes.

use std::path::PathBuf;

use crate::types::NodeId;

/// Node settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub node_id: NodeId,
    /// Directory holding the node's redb database (created if missing).
    pub data_dir: PathBuf,
    /// Raft heartbeat interval; hundreds of ms keeps idle groups cheap.
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Cap on bytes of entries in one AppendEntries / one log read.
    pub max_append_bytes: usize,
    /// Memory redb may use to cache database pages (its default is 1 GiB).
    pub cache_bytes: usize,
    /// Size at which a segment file of batch bytes rolls over to the next.
    pub segment_bytes: u64,
}

impl NodeConfig {
    pub fn single(node_id: NodeId, data_dir: PathBuf) -> Self {
        NodeConfig {
            node_id,
            data_dir,
            heartbeat_interval_ms: 500,
            election_timeout_min_ms: 1500,
            election_timeout_max_ms: 3000,
            max_append_bytes: 8 << 20,
            cache_bytes: 256 << 20,
            segment_bytes: crate::store::segments::SEGMENT_BYTES,
        }
    }
}
