//! ListOffsets (2): the earliest (-2) and latest (-1) offsets of partitions, the offset of
//! the largest timestamp (-3), and the first offset whose record timestamp is at or after a
//! given time: the time index finds the first batch whose max timestamp is that recent,
//! and its header or (with bounded decompression) its records give the offset. Under
//! `read_committed` (isolation level 1) "latest" is the last stable offset.

use std::cell::Cell;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use phxq_protocol::batch::BatchHeader;
use phxq_protocol::decompress::{decompress, DecompressError};
use phxq_protocol::errors;
use phxq_replication::{PartitionId, ReplicationError, StoreGroup};

use crate::broker::Broker;
use crate::handlers::replication_error_code;
use crate::security::acl::{AclOperation, Authz};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// phxq's own query (never on the wire, see `handle`): the last stable offset.
const LAST_STABLE: i64 = i64::MIN;

/// A topic without DESCRIBE for the principal is TOPIC_AUTHORIZATION_FAILED.
pub fn handle(
    broker: &Broker,
    req: ListOffsetsRequest,
    version: i16,
    az: &Authz,
) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let denied = !az.topic(AclOperation::Describe, &t.name.0);
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
                    if denied {
                        return resp.with_error_code(errors::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let Some((pid, g)) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return resp.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let (group, epoch) = match broker.leading_at(g, p.current_leader_epoch) {
                        Ok(found) => found,
                        Err(code) => return resp.with_error_code(code),
                    };
                    // The field is v4+ (KIP-320).
                    let resp = resp.with_leader_epoch(if version >= 4 { epoch } else { -1 });
                    let query = match p.timestamp {
                        LATEST if read_committed => LAST_STABLE,
                        ts => ts,
                    };
                    match lookup(&group, pid, query) {
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
        LAST_STABLE => Ok(Some((offsets.last_stable_offset, -1))),
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

/// Records decompressed to answer one ListOffsets by time, at most (per batch).
const MAX_DECOMPRESSED: usize = 64 << 20;

/// The first record of `batch` at or after `offset_floor` whose timestamp is >= `ts`.
///
/// Read from the batch header where it can be: a LogAppendTime batch gives every record
/// its max timestamp, and the first record's timestamp is the batch's base timestamp.
/// Otherwise the records are decoded, decompressing at most [`MAX_DECOMPRESSED`] bytes; a
/// batch that would expand to more (a compression bomb) answers its first offset, at most
/// one batch early, and is logged.
fn first_record_at(
    pid: PartitionId,
    batch: &Bytes,
    ts: i64,
    offset_floor: i64,
) -> Result<Option<(i64, i64)>, i16> {
    let storage = |what: &dyn std::fmt::Display| {
        tracing::warn!(?pid, error = %what, "a stored batch does not decode");
        errors::KAFKA_STORAGE_ERROR
    };
    let h = BatchHeader::parse(batch).map_err(|e| storage(&e))?;
    let first = h.base_offset.max(offset_floor);
    if first > h.last_offset() {
        return Ok(None);
    }
    if h.is_log_append_time() {
        return Ok((h.max_timestamp >= ts).then_some((first, h.max_timestamp)));
    }
    if h.base_offset >= offset_floor && h.base_timestamp >= ts {
        return Ok(Some((h.base_offset, h.base_timestamp)));
    }
    let too_large = Cell::new(false);
    let mut buf = batch.clone();
    let decoded = RecordBatchDecoder::decode_with_custom_compression(
        &mut buf,
        Some(|records: &mut Bytes, c: Compression| {
            decompress(c as i16, records, MAX_DECOMPRESSED).map_err(|e| {
                too_large.set(matches!(e, DecompressError::TooLarge(_)));
                anyhow::anyhow!(e)
            })
        }),
    );
    match decoded {
        Ok(set) => Ok(set
            .records
            .iter()
            .filter(|r| r.offset >= offset_floor && r.timestamp >= ts)
            .map(|r| (r.offset, r.timestamp))
            .next()),
        Err(_) if too_large.get() => {
            tracing::warn!(?pid, base_offset = h.base_offset, cap = MAX_DECOMPRESSED,
                "ListOffsets by time: a batch decompresses to more than the cap; answering its first offset");
            Ok((h.max_timestamp >= ts).then_some((first, h.max_timestamp)))
        }
        Err(e) => Err(storage(&e)),
    }
}
