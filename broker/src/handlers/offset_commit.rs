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
use crate::groups::errors::*;
use crate::groups::offsets::{now_ms, CommittedOffset};

/// The tagged field (OffsetCommit v8+) by which `phxq group reset` asks for a live reset.
pub const LIVE_RESET_TAG: i32 = 0x7069;

pub async fn handle(
    broker: &Broker,
    req: OffsetCommitRequest,
    version: i16,
    client_id: &str,
    host: &str,
) -> OffsetCommitResponse {
    let max_metadata = broker.groups.config().max_metadata_bytes;
    let timestamp = now_ms();
    // (topic index, partition index) of each item sent to the coordinator.
    let mut items = Vec::new();
    let mut slots = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = broker.topics.get(&t.name.0);
        let mut tc = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let metadata = p.committed_metadata.as_deref().unwrap_or("");
            let code = if !topic
                .as_ref()
                .is_some_and(|t| p.partition_index >= 0 && p.partition_index < t.partition_count())
            {
                UNKNOWN_TOPIC_OR_PARTITION
            } else if metadata.len() > max_metadata {
                OFFSET_METADATA_TOO_LARGE
            } else {
                items.push((
                    (t.name.0.to_string(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: metadata.to_string(),
                        commit_timestamp: timestamp,
                    },
                ));
                slots.push((ti, pi));
                NONE
            };
            tc.push(code);
        }
        codes.push(tc);
    }
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
