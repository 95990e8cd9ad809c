//! Writing a decided transaction's markers (Kafka's WriteTxnMarkers, done here through
//! Raft instead of a broker-to-broker API):
//!
//! - Partitions: a control batch (`phxq_protocol::control`) per partition, all those of
//!   one store group in one `Append` proposed on that group's leader, wherever it is. A
//!   partition whose topic is gone is skipped. A partition that refuses the marker's epoch
//!   as stale (INVALID_PRODUCER_EPOCH) has a newer marker already: nothing to do there.
//! - Groups: the group's coordinator (the leader of the group's home store group) commits
//!   or drops the producer's pending offsets; on another broker it is asked over the peer
//!   channel ([`SERVICE`]).
//!
//! Everything is idempotent, so a failed attempt is simply made again.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use phxq_protocol::control::{marker_batch, ControlType};
use phxq_replication::{AppendBatch, AppendError, Command, CommandResponse, GroupId};
use serde::{Deserialize, Serialize};

use super::coordinator::{Markers, TxnResult};
use super::manager::MarkerWriter;
use crate::broker::Broker;

/// Peer service: "apply or drop this producer's pending offsets of this group".
pub const SERVICE: &str = "txn.group-marker";

/// How long a peer call may take.
const PEER_TTL: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
struct GroupMarker {
    group: String,
    producer_id: i64,
    commit: bool,
}

impl MarkerWriter for Broker {
    fn write_markers<'a>(
        &'a self,
        markers: &'a Markers,
        coordinator_epoch: i32,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.write_partition_markers(markers, coordinator_epoch)
                .await?;
            let commit = markers.result == TxnResult::Commit;
            for group in &markers.groups {
                self.write_group_marker(group, markers.producer_id, commit)
                    .await?;
            }
            Ok(())
        })
    }
}

impl Broker {
    async fn write_partition_markers(
        &self,
        m: &Markers,
        coordinator_epoch: i32,
    ) -> Result<(), String> {
        let kind = match m.result {
            TxnResult::Commit => ControlType::Commit,
            TxnResult::Abort => ControlType::Abort,
        };
        let now = crate::groups::offsets::now_ms();
        let mut by_group: BTreeMap<GroupId, Vec<AppendBatch>> = BTreeMap::new();
        for p in &m.partitions {
            let Some((partition, gid)) = self
                .topics
                .get(&p.topic)
                .and_then(|t| t.partition(p.partition))
            else {
                continue;
            };
            by_group.entry(gid).or_default().push(AppendBatch {
                partition,
                batch: marker_batch(
                    m.producer_id,
                    m.producer_epoch,
                    kind,
                    coordinator_epoch,
                    now,
                ),
            });
        }
        let writes = by_group.into_iter().map(|(gid, batches)| async move {
            let store = self
                .node
                .group(gid)
                .ok_or_else(|| format!("store group {} is not on this broker", gid.0))?;
            match store.propose_on_leader(Command::Append(batches)).await {
                Ok(CommandResponse::Appended(results)) => {
                    for r in results {
                        match r {
                            Ok(_)
                            | Err(AppendError::UnknownPartition)
                            | Err(AppendError::InvalidProducerEpoch) => {}
                            Err(e) => {
                                return Err(format!("store group {}: marker refused: {e}", gid.0))
                            }
                        }
                    }
                    Ok(())
                }
                Ok(other) => Err(format!("unexpected answer to a marker append: {other:?}")),
                Err(e) => Err(format!("store group {}: {e}", gid.0)),
            }
        });
        for r in futures::future::join_all(writes).await {
            r?;
        }
        Ok(())
    }

    async fn write_group_marker(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), String> {
        let gid = self.groups.home(group);
        let store = self
            .node
            .group(gid)
            .ok_or_else(|| format!("store group {} is not on this broker", gid.0))?;
        let leader = store
            .leader()
            .ok_or_else(|| format!("store group {} has no leader", gid.0))?;
        if leader == self.config.node_id {
            return self
                .groups
                .complete_txn(group, producer_id, commit)
                .await
                .map_err(|code| format!("group {group}: error {code}"));
        }
        let body = serde_json::to_vec(&GroupMarker {
            group: group.to_string(),
            producer_id,
            commit,
        })
        .map_err(|e| e.to_string())?;
        let reply = self
            .node
            .peer_call(leader, gid, SERVICE, Bytes::from(body), PEER_TTL)
            .await?;
        if reply.is_empty() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&reply).into_owned())
        }
    }
}

/// Answers another broker's [`SERVICE`] request: empty on success, the error otherwise.
pub async fn answer_peer(broker: &Broker, body: &[u8]) -> Result<Bytes, String> {
    let m: GroupMarker =
        serde_json::from_slice(body).map_err(|e| format!("bad group marker request: {e}"))?;
    Ok(
        match broker
            .groups
            .complete_txn(&m.group, m.producer_id, m.commit)
            .await
        {
            Ok(()) => Bytes::new(),
            Err(code) => Bytes::from(format!("group {}: error {code}", m.group)),
        },
    )
}
