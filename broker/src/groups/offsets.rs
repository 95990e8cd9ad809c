//! Committed offsets and the group record, as stored in the coordinating store group's
//! key-value space (written only through its Raft log, so durable before acknowledged):
//!
//! - `offsets/<group>/<topic>/<partition>` -> JSON [`CommittedOffset`]
//! - `groups/<group>` -> JSON [`GroupRecord`] (generation and protocol, so a restarted
//!   coordinator never hands out a generation twice)
//! - `audit/<group>/<topic>/<partition>` -> JSON `audit::reconcile::PartitionAudit` (the
//!   group's reconciliation of that partition, written with the commit it checked)
//!
//! - `txnoffsets/<group>/<producer id>` -> JSON list of (topic-partition,
//!   [`CommittedOffset`]): offsets committed in a transaction not yet decided
//!   (`txn_offsets.rs`)
//!
//! Group ids may contain `/`; topic names cannot, so offset keys are parsed from the right.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::consumer_protocol::TopicPartition;

pub const OFFSETS_PREFIX: &str = "offsets/";
pub const GROUPS_PREFIX: &str = "groups/";
pub const AUDIT_PREFIX: &str = "audit/";
pub const TXN_OFFSETS_PREFIX: &str = "txnoffsets/";

/// One committed offset with what the client sent along with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when the client did not send one.
    pub leader_epoch: i32,
    /// Null metadata is stored as "" (Kafka's `OffsetAndMetadata.NoMetadata`).
    pub metadata: String,
    /// Wall-clock time of the commit, ms since the epoch.
    pub commit_timestamp: i64,
}

/// What must outlive a restart of the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The classic generation, or the group epoch of a KIP-848 group.
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// "consumer" for a KIP-848 group; absent for a classic one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    /// A live replay under way (`replay.rs`).
    #[serde(default, skip_serializing_if = "ReplayRecord::is_empty")]
    pub replay: ReplayRecord,
}

/// The stored form of a live replay's state: fenced partitions with the generation (or
/// group epoch) of their reset, and partitions withheld from classic assignments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRecord {
    #[serde(default)]
    pub fence: Vec<(String, i32, i32)>,
    #[serde(default)]
    pub withhold: Vec<TopicPartition>,
}

impl ReplayRecord {
    pub fn is_empty(&self) -> bool {
        self.fence.is_empty() && self.withhold.is_empty()
    }
}

pub fn offset_key(group: &str, tp: &TopicPartition) -> Bytes {
    Bytes::from(format!("{OFFSETS_PREFIX}{group}/{}/{}", tp.0, tp.1))
}

pub fn audit_key(group: &str, tp: &TopicPartition) -> Bytes {
    Bytes::from(format!("{AUDIT_PREFIX}{group}/{}/{}", tp.0, tp.1))
}

/// The deletions of `group`'s committed offset and audit record of each of `tps`.
pub fn partition_deletes<'a>(
    group: &str,
    tps: impl IntoIterator<Item = &'a TopicPartition>,
) -> Vec<(Bytes, Option<Bytes>)> {
    tps.into_iter()
        .flat_map(|tp| [offset_key(group, tp), audit_key(group, tp)])
        .map(|k| (k, None))
        .collect()
}

pub fn txn_offsets_key(group: &str, producer_id: i64) -> Bytes {
    Bytes::from(format!("{TXN_OFFSETS_PREFIX}{group}/{producer_id}"))
}

/// `(group, producer id)` of a pending transactional offsets key.
pub fn parse_txn_offsets_key(key: &[u8]) -> Option<(String, i64)> {
    let key = std::str::from_utf8(key)
        .ok()?
        .strip_prefix(TXN_OFFSETS_PREFIX)?;
    let (group, pid) = key.rsplit_once('/')?;
    Some((group.to_string(), pid.parse().ok()?))
}

pub fn group_key(group: &str) -> Bytes {
    Bytes::from(format!("{GROUPS_PREFIX}{group}"))
}

/// `(group, topic-partition)` of an offset key.
pub fn parse_offset_key(key: &[u8]) -> Option<(String, TopicPartition)> {
    parse_partition_key(key, OFFSETS_PREFIX)
}

/// `(group, topic-partition)` of an audit key.
pub fn parse_audit_key(key: &[u8]) -> Option<(String, TopicPartition)> {
    parse_partition_key(key, AUDIT_PREFIX)
}

fn parse_partition_key(key: &[u8], prefix: &str) -> Option<(String, TopicPartition)> {
    let key = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    let (rest, partition) = key.rsplit_once('/')?;
    let (group, topic) = rest.rsplit_once('/')?;
    Some((
        group.to_string(),
        (topic.to_string(), partition.parse().ok()?),
    ))
}

pub fn parse_group_key(key: &[u8]) -> Option<String> {
    Some(
        std::str::from_utf8(key)
            .ok()?
            .strip_prefix(GROUPS_PREFIX)?
            .to_string(),
    )
}

pub fn encode<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("serializes"))
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Option<T> {
    serde_json::from_slice(b).ok()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_even_with_slashes_in_group_ids() {
        let tp = ("orders.v1".to_string(), 17);
        for g in ["g", "a/b", "with/many/slashes/", ""] {
            let k = offset_key(g, &tp);
            assert_eq!(parse_offset_key(&k), Some((g.to_string(), tp.clone())));
            let a = audit_key(g, &tp);
            assert_eq!(parse_audit_key(&a), Some((g.to_string(), tp.clone())));
            assert_eq!(parse_offset_key(&a), None);
            assert_eq!(parse_group_key(&group_key(g)).as_deref(), Some(g));
            let t = txn_offsets_key(g, 4242);
            assert_eq!(parse_txn_offsets_key(&t), Some((g.to_string(), 4242)));
            assert_eq!(parse_offset_key(&t), None);
        }
        assert_eq!(parse_offset_key(b"offsets/g/t/x"), None);
        assert_eq!(parse_offset_key(b"groups/g"), None);
    }

    #[test]
    fn values_round_trip() {
        let c = CommittedOffset {
            offset: 42,
            leader_epoch: -1,
            metadata: "m\u{e9}ta".into(),
            commit_timestamp: 1,
        };
        assert_eq!(decode::<CommittedOffset>(&encode(&c)), Some(c));
        let r = GroupRecord {
            generation: 7,
            protocol_type: Some("consumer".into()),
            protocol_name: None,
            group_type: None,
            replay: ReplayRecord {
                fence: vec![("t".into(), 0, 7)],
                withhold: vec![("t".into(), 0)],
            },
        };
        assert_eq!(decode::<GroupRecord>(&encode(&r)), Some(r));
        // Records written before group types existed still read.
        let old = br#"{"generation":3,"protocol_type":"consumer","protocol_name":"range"}"#;
        let old = decode::<GroupRecord>(old).unwrap();
        assert_eq!(old.group_type, None);
        assert!(old.replay.is_empty());
    }
}
