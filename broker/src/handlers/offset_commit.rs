//! OffsetCommit (8): a group's consumed positions. Each partition is checked (topic exists,
//! metadata size, then membership, generation and the partition lock in the coordinator);
//! the accepted ones are written through the coordinating store group's Raft log as ONE
//! proposal, and the response goes out only once it is durable.
//!
//! A commit without member (the Admin API's AlterConsumerGroupOffsets) on a group with
//! members is refused with UNKNOWN_MEMBER_ID, as in Kafka, unless it is a *live reset*
//! (`groups/replay.rs`): the group config `phxq.offsets.live.reset.enable` is true, or the
//! request carries [`LIVE_RESET_TAG`] (`phxq group reset` sets it: the operator asked).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::broker::Broker;
use crate::groups::commits::Committer;
use crate::groups::configs::GroupSettings;
use crate::groups::consumer_protocol::TopicPartition;
use crate::groups::errors::*;
use crate::groups::offsets::{now_ms, CommittedOffset};
use crate::security::acl::{AclOperation, Authz};

/// The tagged field (OffsetCommit v8+) by which `phxq group reset` asks for a live reset.
pub const LIVE_RESET_TAG: i32 = 0x7069;

/// One partition of a commit as requested (OffsetCommit or TxnOffsetCommit).
pub(crate) struct Wanted<'a> {
    pub partition: i32,
    pub offset: i64,
    /// -1 when the request's version has none.
    pub leader_epoch: i32,
    pub metadata: Option<&'a str>,
}

/// What [`check`] found: the items for the coordinator, where each sits in the request
/// (topic, partition index), and a code per requested partition (NONE for the items,
/// whose final code the coordinator gives).
pub(crate) struct Checked {
    pub items: Vec<(TopicPartition, CommittedOffset)>,
    pub slots: Vec<(usize, usize)>,
    pub codes: Vec<Vec<i16>>,
}

/// The checks done before the coordinator's: the principal may READ the group
/// (GROUP_AUTHORIZATION_FAILED) and the topic (TOPIC_AUTHORIZATION_FAILED), the partition
/// exists (UNKNOWN_TOPIC_OR_PARTITION) and its metadata fits (OFFSET_METADATA_TOO_LARGE).
pub(crate) fn check<'a>(
    broker: &Broker,
    az: &Authz,
    group: &str,
    topics: impl Iterator<Item = (&'a str, Vec<Wanted<'a>>)>,
) -> Checked {
    let group_allowed = az.group(AclOperation::Read, group);
    let max_metadata = broker.groups.config().max_metadata_bytes;
    let timestamp = now_ms();
    let mut out = Checked {
        items: Vec::new(),
        slots: Vec::new(),
        codes: Vec::new(),
    };
    for (ti, (name, partitions)) in topics.enumerate() {
        let topic = broker.topics.get(name);
        let topic_allowed = group_allowed && az.topic(AclOperation::Read, name);
        let mut tc = Vec::with_capacity(partitions.len());
        for (pi, p) in partitions.into_iter().enumerate() {
            let metadata = p.metadata.unwrap_or("");
            let code = if !group_allowed {
                phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED
            } else if !topic_allowed {
                phxq_protocol::errors::TOPIC_AUTHORIZATION_FAILED
            } else if topic
                .as_ref()
                .is_none_or(|t| t.partition(p.partition).is_none())
            {
                UNKNOWN_TOPIC_OR_PARTITION
            } else if metadata.len() > max_metadata {
                OFFSET_METADATA_TOO_LARGE
            } else {
                out.items.push((
                    (name.to_string(), p.partition),
                    CommittedOffset {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: metadata.to_string(),
                        commit_timestamp: timestamp,
                    },
                ));
                out.slots.push((ti, pi));
                NONE
            };
            tc.push(code);
        }
        out.codes.push(tc);
    }
    out
}

pub async fn handle(
    broker: &Broker,
    req: OffsetCommitRequest,
    version: i16,
    client_id: &str,
    host: &str,
    az: &Authz,
) -> OffsetCommitResponse {
    let Checked {
        items,
        slots,
        mut codes,
    } = check(
        broker,
        az,
        &req.group_id.0,
        req.topics.iter().map(|t| {
            let ps = t.partitions.iter().map(|p| Wanted {
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_deref(),
            });
            (t.name.0.as_str(), ps.collect())
        }),
    );
    if !items.is_empty() {
        let operator = req.unknown_tagged_fields.contains_key(&LIVE_RESET_TAG);
        let live_reset = operator
            || GroupSettings::resolve(
                &broker.config.groups,
                &broker.group_configs.get(&req.group_id.0),
            )
            .live_reset;
        let results = broker
            .groups
            .commit(
                &req.group_id.0,
                &Committer {
                    member_id: &req.member_id,
                    instance_id: req.group_instance_id.as_deref(),
                    generation: req.generation_id_or_member_epoch,
                    client_id,
                    host,
                    operator,
                },
                items,
                live_reset,
            )
            .await;
        for ((ti, pi), code) in slots.into_iter().zip(results) {
            codes[ti][pi] = code;
        }
    }
    let topics = req
        .topics
        .into_iter()
        .zip(codes)
        .map(|(t, tc)| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(tc)
                        .map(|(p, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
