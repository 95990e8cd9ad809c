//! ListOffsets (2): the earliest (-2) and latest (-1) offsets of partitions, the offset of
//! the largest timestamp (-3), and the first offset whose record timestamp is at or after a
//! given time, found exactly by reading the batch that may hold it.

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;
use phxq_protocol::errors;
use phxq_replication::{PartitionId, ReplicationError, StoreGroup};

use crate::broker::Broker;
use crate::handlers::replication_error_code;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle(broker: &Broker, req: ListOffsetsRequest, _version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some((pid, g)) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return resp.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let group = match broker.leading(g) {
                        Ok(group) => group,
                        Err(code) => return resp.with_error_code(code),
                    };
                    match lookup(&group, pid, p.timestamp) {
                        Ok(Some((offset, timestamp))) => {
                            resp.with_offset(offset).with_timestamp(timestamp)
                        }
                        Ok(None) => resp,
                        Err(code) => resp.with_error_code(code),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp)` for a ListOffsets query, `None` when no record matches. A batch
/// that cannot be read or decoded answers KAFKA_STORAGE_ERROR, never "no match".
pub(crate) fn lookup(
    group: &StoreGroup,
    pid: PartitionId,
    query: i64,
) -> Result<Option<(i64, i64)>, i16> {
    let offsets = group
        .offsets(pid)
        .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    let failed = |e: ReplicationError| {
        tracing::warn!(?pid, error = %e, "ListOffsets cannot read the partition");
        replication_error_code(&e)
    };
    match query {
        LATEST => Ok(Some((offsets.high_watermark, -1))),
        EARLIEST => Ok(Some((offsets.log_start_offset, -1))),
        MAX_TIMESTAMP => match group.max_timestamp(pid).map_err(failed)? {
            Some((ts, b)) => Ok(
                first_record_at(pid, &b.batch, ts, offsets.log_start_offset)?
                    .filter(|(_, t)| *t == ts),
            ),
            None => Ok(None),
        },
        ts if ts >= 0 => match group.batch_by_timestamp(pid, ts).map_err(failed)? {
            Some(b) => first_record_at(pid, &b.batch, ts, offsets.log_start_offset),
            None => Ok(None),
        },
        _ => Err(errors::INVALID_REQUEST),
    }
}

/// The first record of `batch` at or after `offset_floor` whose timestamp is >= `ts`.
fn first_record_at(
    pid: PartitionId,
    batch: &Bytes,
    ts: i64,
    offset_floor: i64,
) -> Result<Option<(i64, i64)>, i16> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
        tracing::warn!(?pid, error = %e, "a stored batch does not decode");
        errors::KAFKA_STORAGE_ERROR
    })?;
    Ok(set
        .records
        .iter()
        .filter(|r| r.offset >= offset_floor && r.timestamp >= ts)
        .map(|r| (r.offset, r.timestamp))
        .next())
}
