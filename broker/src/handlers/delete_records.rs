//! DeleteRecords (21): move partitions' log start offsets forward (-1: to the high
//! watermark); whole batches below the new start are dropped.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use phxq_protocol::errors;
use phxq_replication::{AppendError, Command, CommandResponse, GroupId, PartitionId};

use crate::broker::Broker;
use crate::handlers::replication_error_code;
use crate::security::acl::{AclOperation, Authz};

pub async fn handle(
    broker: &Broker,
    req: DeleteRecordsRequest,
    _version: i16,
    az: &Authz,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    // (group) -> [(topic slot, partition slot, partition, offset)]
    let mut work: BTreeMap<GroupId, Vec<(usize, usize, PartitionId, i64)>> = BTreeMap::new();
    for (ti, t) in req.topics.into_iter().enumerate() {
        let denied = !az.topic(AclOperation::Delete, &t.name.0);
        let topic = broker.topics.get(&t.name.0).filter(|_| !denied);
        let mut partitions = Vec::new();
        for (pi, p) in t.partitions.into_iter().enumerate() {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                Some((pid, group)) => {
                    work.entry(group).or_default().push((ti, pi, pid, p.offset));
                    partitions.push(result);
                }
                None if denied => {
                    partitions.push(result.with_error_code(errors::TOPIC_AUTHORIZATION_FAILED))
                }
                None => partitions.push(result.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)),
            }
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    for (group, items) in work {
        let cmd =
            Command::DeleteRecords(items.iter().map(|(_, _, pid, off)| (*pid, *off)).collect());
        let outcome = match broker.leading(group) {
            Ok(g) => g.propose(cmd).await.map_err(|e| replication_error_code(&e)),
            Err(code) => Err(code),
        };
        for (i, (ti, pi, _, _)) in items.iter().enumerate() {
            let slot = &mut topics[*ti].partitions[*pi];
            match &outcome {
                Ok(CommandResponse::RecordsDeleted(r)) => match r.get(i) {
                    Some(Ok(low)) => slot.low_watermark = *low,
                    Some(Err(AppendError::OffsetOutOfRange)) => {
                        slot.error_code = errors::OFFSET_OUT_OF_RANGE
                    }
                    Some(Err(_)) | None => slot.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
                },
                Ok(_) => slot.error_code = errors::UNKNOWN_SERVER_ERROR,
                Err(code) => slot.error_code = *code,
            }
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
