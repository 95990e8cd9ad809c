//! Store group leaders as the metadata group records them: how a broker that does not
//! host a store group (more brokers than the replication factor) still tells clients its
//! partitions' leader and leader epoch in Metadata, and a consumer group's coordinator in
//! FindCoordinator.
//!
//! Rules:
//! - The leader of a store group records itself under `leader/<group>` (JSON node and
//!   epoch) in the metadata group, soon after it is elected ([`publish`] checks every
//!   [`PUBLISH_EVERY`]). The write is a CompareAndPut against the record it read, and only
//!   ever raises the epoch: a deposed leader that publishes late changes nothing.
//! - Brokers that host the group answer from their own Raft state; the others from the
//!   record (it may name the previous leader for a moment after an election: the client
//!   then gets NOT_LEADER_OR_FOLLOWER from it and asks again).
//! - Every broker re-reads the records after each metadata change, like topics.

use std::collections::BTreeMap;
use std::sync::{RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use phxq_replication::{Command, GroupId, StoreGroup};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::broker::Broker;

pub const PREFIX: &str = "leader/";
/// How often a broker checks whether it leads a store group whose record is not its own.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// Who leads a store group, and in which epoch (Raft term).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub node: u64,
    pub epoch: i32,
}

pub fn key(g: GroupId) -> Bytes {
    Bytes::from(format!("{PREFIX}{}", g.0))
}

/// The recorded leaders of every store group.
#[derive(Default)]
pub struct LeaderDirectory {
    by_group: RwLock<BTreeMap<u32, LeaderRecord>>,
}

impl LeaderDirectory {
    pub fn load(metadata: &StoreGroup) -> anyhow::Result<LeaderDirectory> {
        let d = LeaderDirectory::default();
        d.reload(metadata)?;
        Ok(d)
    }

    /// Re-reads every record; on a read error the previous ones stay.
    pub fn reload(&self, metadata: &StoreGroup) -> anyhow::Result<()> {
        let rows = metadata
            .kv_scan(PREFIX.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot read the store group leaders: {e}"))?;
        let mut all = BTreeMap::new();
        for (k, v) in rows {
            let g: u32 = std::str::from_utf8(&k[PREFIX.len()..])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("corrupt leader key {k:?}"))?;
            let r: LeaderRecord = serde_json::from_slice(&v)
                .map_err(|e| anyhow::anyhow!("corrupt leader record of group {g}: {e}"))?;
            all.insert(g, r);
        }
        *self.by_group.write().unwrap_or_else(|p| p.into_inner()) = all;
        Ok(())
    }

    pub fn get(&self, g: GroupId) -> Option<LeaderRecord> {
        self.by_group
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&g.0)
            .copied()
    }
}

/// Records this broker as the leader of each store group it leads whose record says
/// otherwise; runs on every broker of a cluster until the broker goes.
pub async fn publish(broker: Weak<Broker>) {
    loop {
        tokio::time::sleep(PUBLISH_EVERY).await;
        let Some(b) = broker.upgrade() else { return };
        for gid in b.store_group_ids() {
            let Some(g) = b.node.group(gid) else { continue };
            let (Some(_), Some(epoch)) = (g.leader_term(), g.leader_epoch()) else {
                continue;
            };
            let mine = LeaderRecord {
                node: b.config.node_id,
                epoch,
            };
            // The directory (re-read on every metadata change) says whether a write is due;
            // only then is the stored record read, for the compare-and-put.
            if b.leaders
                .get(gid)
                .is_some_and(|r| r == mine || r.epoch > epoch)
            {
                continue;
            }
            let k = key(gid);
            let stored = match b.metadata.kv_get(&k) {
                Ok(v) => v,
                Err(e) => {
                    debug!(group = gid.0, error = %e, "cannot read the leader record");
                    continue;
                }
            };
            let recorded = stored
                .as_ref()
                .and_then(|v| serde_json::from_slice::<LeaderRecord>(v).ok());
            if recorded.is_some_and(|r| r == mine || r.epoch > epoch) {
                continue;
            }
            let value = Bytes::from(serde_json::to_vec(&mine).expect("a record serializes"));
            let cmd = Command::CompareAndPut {
                key: k,
                expected: stored,
                value: Some(value),
            };
            match b.metadata.propose_on_leader(cmd).await {
                Ok(_) => debug!(group = gid.0, epoch, "recorded as the store group's leader"),
                Err(e) => debug!(group = gid.0, error = %e, "leader record not written; again"),
            }
        }
    }
}
