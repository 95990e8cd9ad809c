//! TxnOffsetCommit (28): a transactional producer commits its consumer group's offsets
//! inside the transaction (`send_offsets_to_transaction`). Sent to the group's
//! coordinator, checked like OffsetCommit when the consumer's group metadata comes along
//! (v3+), and kept pending until the transaction's marker (`groups/txn_offsets.rs`).
//! Needs WRITE on the transactional id (else every partition is
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then READ on the group and topics as
//! OffsetCommit does.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::broker::Broker;
use crate::groups::commits::Committer;
use crate::handlers::offset_commit::{check, Checked, Wanted};
use crate::security::acl::{AclOperation, Authz};

const API_KEY: i16 = 28;

pub async fn handle(
    broker: &Broker,
    req: TxnOffsetCommitRequest,
    version: i16,
    client_id: &str,
    host: &str,
    az: &Authz,
) -> TxnOffsetCommitResponse {
    let Checked {
        mut items,
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
                leader_epoch: if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_deref(),
            });
            (t.name.0.as_str(), ps.collect())
        }),
    );
    if !az.transactional_id(AclOperation::Write, &req.transactional_id) {
        items.clear();
        for code in codes.iter_mut().flatten() {
            *code = phxq_protocol::errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        }
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
