//! TxnOffsetCommit (28): a transactional producer commits its consumer group's offsets
//! inside the transaction (`send_offsets_to_transaction`). Sent to the group's
//! coordinator, checked like OffsetCommit when the consumer's group metadata comes along
//! (v3+), and kept pending until the transaction's marker (`groups/txn_offsets.rs`).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::broker::Broker;
use crate::groups::commits::Committer;
use crate::groups::errors::*;
use crate::groups::offsets::{now_ms, CommittedOffset};

const API_KEY: i16 = 28;

pub async fn handle(
    broker: &Broker,
    req: TxnOffsetCommitRequest,
    version: i16,
    client_id: &str,
    host: &str,
) -> TxnOffsetCommitResponse {
    let max_metadata = broker.groups.config().max_metadata_bytes;
    let timestamp = now_ms();
    let mut items = Vec::new();
    let mut slots = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = broker.topics.get(&t.name.0);
        let mut tc = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let metadata = p.committed_metadata.as_deref().unwrap_or("");
            let code = if topic
                .as_ref()
                .is_none_or(|t| t.partition(p.partition_index).is_none())
            {
                UNKNOWN_TOPIC_OR_PARTITION
            } else if metadata.len() > max_metadata {
                OFFSET_METADATA_TOO_LARGE
            } else {
                items.push((
                    (t.name.0.to_string(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 2 {
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
        let results = broker
            .groups
            .txn_commit(
                &req.group_id.0,
                &Committer {
                    member_id: &req.member_id,
                    instance_id: req.group_instance_id.as_deref(),
                    generation: req.generation_id,
                    client_id,
                    host,
                    operator: false,
                },
                req.producer_id.0,
                items,
            )
            .await;
        for ((ti, pi), code) in slots.into_iter().zip(results) {
            codes[ti][pi] = crate::txn::errors::for_version(code, API_KEY, version);
        }
    }
    let topics = req
        .topics
        .into_iter()
        .zip(codes)
        .map(|(t, tc)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(tc)
                        .map(|(p, code)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
