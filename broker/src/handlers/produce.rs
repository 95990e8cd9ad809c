//! Produce (0): validate each partition's record batches (CRC, size, format), route them to
//! the partition's store group, append through Raft and answer with base offsets.
//!
//! All partitions of one request that live in the same store group go into one Raft entry
//! (one proposal); the replication layer's writer then shares one fsync among concurrent
//! proposals of every group: PhxQueue's server-side batch enqueue. acks=1 and acks=all are
//! answered once the entry is committed (fsync'd on a majority; on a single node, fsync'd);
//! acks=0 gets no response.
//!
//! Authorization: a transactional produce needs WRITE on its transactional id (else every
//! partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and each topic WRITE (else its
//! partitions are TOPIC_AUTHORIZATION_FAILED, whether or not the topic exists).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use phxq_protocol::{batch, errors, records};
use phxq_replication::{AppendBatch, AppendError, Appended, Command, CommandResponse, GroupId};
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::handlers::{replication_error_code, str, topic_config};
use crate::metrics::Metrics;
use crate::security::acl::{AclOperation, Authz};

/// Where a partition's batches went: its slot in the response and its appends in a group.
struct Pending {
    topic: usize,
    partition: usize,
    group: GroupId,
    /// Index of the partition's first batch in the group's append list, and how many.
    first: usize,
    count: usize,
    /// Record bytes and records of its batches (the metrics count them once appended).
    bytes: u64,
    records: u64,
}

/// Validates the request and queues its appends in their store groups' Raft logs, in
/// order; the returned future waits for them to commit and builds the response (`None` for
/// acks=0).
pub async fn handle(
    broker: &Broker,
    req: ProduceRequest,
    _version: i16,
    az: &Authz,
) -> impl Future<Output = Option<ProduceResponse>> + Send + 'static {
    let acks = req.acks;
    let transactional = req.transactional_id.is_some();
    let txn_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !az.transactional_id(AclOperation::Write, id));
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    let mut appends: BTreeMap<GroupId, Vec<AppendBatch>> = BTreeMap::new();
    let mut pending = Vec::new();

    let refuse_all = if !matches!(acks, -1..=1) {
        Some(errors::INVALID_REQUIRED_ACKS)
    } else if txn_denied {
        Some(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else if broker.disk.low() || broker.node.storage_failed() {
        // Below the free-space floor, or the writer failed (`disk/`): clients retry,
        // nothing is appended.
        Some(errors::KAFKA_STORAGE_ERROR)
    } else {
        None
    };

    for (ti, topic_data) in req.topic_data.into_iter().enumerate() {
        let denied = !az.topic(AclOperation::Write, &topic_data.name.0);
        let topic = broker.topics.get(&topic_data.name.0);
        let max_bytes = topic
            .as_ref()
            .map(|t| topic_config::max_message_bytes(broker, t))
            .unwrap_or_else(|| broker.broker_configs.effective().message_max_bytes);
        let compacted = topic.as_ref().is_some_and(|t| {
            crate::topic_configs::is_compacted(&broker.broker_configs.effective(), t)
        });
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for (pi, data) in topic_data.partition_data.into_iter().enumerate() {
            let mut resp = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let target = topic
                .as_ref()
                .filter(|_| !denied)
                .and_then(|t| t.partition(data.index));
            let checked = match (refuse_all, target) {
                (Some(code), _) => Err((code, None, Vec::new())),
                (None, _) if denied => Err((
                    errors::TOPIC_AUTHORIZATION_FAILED,
                    Some(format!("{} may not write to this topic", az.principal)),
                    Vec::new(),
                )),
                (None, None) => Err((errors::UNKNOWN_TOPIC_OR_PARTITION, None, Vec::new())),
                (None, Some(_)) => check_records(data.records.as_ref(), max_bytes, transactional)
                    .and_then(|ranges| {
                        if compacted {
                            let records = data.records.as_deref().unwrap_or_default();
                            let label = format!("{}-{}", topic_data.name.0.as_str(), data.index);
                            check_keys(records, &ranges, &label)?;
                        }
                        Ok(ranges)
                    }),
            };
            match (checked, target) {
                (Ok(ranges), Some((partition, group))) => {
                    let records = data.records.expect("checked above");
                    let list = appends.entry(group).or_default();
                    pending.push(Pending {
                        topic: ti,
                        partition: pi,
                        group,
                        first: list.len(),
                        count: ranges.len(),
                        bytes: records.len() as u64,
                        records: if broker.metrics.on() {
                            batch::count_records(&records)
                        } else {
                            0
                        },
                    });
                    list.extend(ranges.into_iter().map(|r| AppendBatch {
                        partition,
                        batch: records.slice(r),
                    }));
                }
                (Err((code, message, record_errors)), _) => {
                    if let Some(m) = &message {
                        debug!(topic = %topic_data.name.0, partition = data.index, "produce refused: {m}");
                    }
                    resp = resp
                        .with_error_code(code)
                        .with_error_message(message.map(str))
                        .with_record_errors(record_errors);
                }
                (Ok(_), None) => unreachable!("records are only checked for known partitions"),
            }
            partitions.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }

    let timeout = Duration::from_millis(req.timeout_ms.clamp(1, 300_000) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut submitted = Vec::with_capacity(appends.len());
    for (group, list) in appends {
        let queued = match broker.leading(group) {
            Err(code) => Err(code),
            // Queueing waits while the group's unapplied log is full (e.g. no quorum):
            // that wait counts against the request's timeout too.
            Ok(g) => match tokio::time::timeout_at(deadline, g.submit(Command::Append(list))).await
            {
                Err(_) => Err(errors::REQUEST_TIMED_OUT),
                Ok(queued) => queued.map_err(|e| {
                    warn!(group = group.0, "append not queued: {e}");
                    replication_error_code(&e)
                }),
            },
        };
        submitted.push((group, queued));
    }
    let metrics = broker.metrics.clone();
    async move {
        let results =
            futures::future::join_all(submitted.into_iter().map(|(group, queued)| async move {
                let outcome = match queued {
                    Err(code) => Err(code),
                    Ok(commit) => match tokio::time::timeout_at(deadline, commit).await {
                        Err(_) => Err(errors::REQUEST_TIMED_OUT),
                        Ok(Err(e)) => {
                            warn!(group = group.0, "append failed: {e}");
                            Err(replication_error_code(&e))
                        }
                        Ok(Ok(CommandResponse::Appended(r))) => Ok(r),
                        Ok(Ok(other)) => {
                            warn!(group = group.0, "unexpected answer to append: {other:?}");
                            Err(errors::UNKNOWN_SERVER_ERROR)
                        }
                    },
                };
                (group, outcome)
            }))
            .await;
        let results: BTreeMap<GroupId, _> = results.into_iter().collect();
        respond(acks, responses, pending, results, &metrics)
    }
}

/// Fills each partition's response from its group's append results.
fn respond(
    acks: i16,
    mut responses: Vec<TopicProduceResponse>,
    pending: Vec<Pending>,
    results: BTreeMap<GroupId, Result<Vec<Result<Appended, AppendError>>, i16>>,
    metrics: &Metrics,
) -> Option<ProduceResponse> {
    for p in pending {
        let t = &mut responses[p.topic];
        let (name, resp) = (&t.name, &mut t.partition_responses[p.partition]);
        match &results[&p.group] {
            Err(code) => resp.error_code = *code,
            Ok(items) => {
                let mut first = None;
                for item in &items[p.first..p.first + p.count] {
                    match item {
                        Ok(a) => {
                            first.get_or_insert(*a);
                        }
                        Err(e) => {
                            resp.error_code = append_error_code(e);
                            break;
                        }
                    }
                }
                if resp.error_code == errors::NONE {
                    if let Some(a) = first {
                        resp.base_offset = a.base_offset;
                        resp.log_start_offset = a.log_start_offset;
                    }
                    metrics.produced(&name.0, p.bytes, p.records);
                }
            }
        }
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// Why a partition's records were refused: error code, message and (KIP-467, Produce v8+)
/// the records at fault.
type Refusal = (i16, Option<String>, Vec<BatchIndexAndErrorMessage>);

/// Records decompressed to check the keys of one batch for a compacted topic, at most.
const MAX_KEY_CHECK_BYTES: usize = 64 << 20;

/// On a compacted topic every record needs a key. As Kafka's `LogValidator` does, a
/// partition's records with any keyless record are refused as a whole with INVALID_RECORD,
/// naming each keyless record (its index in its batch) in `record_errors`; nothing of the
/// partition's data is written.
fn check_keys(
    records: &[u8],
    ranges: &[std::ops::Range<usize>],
    partition: &str,
) -> Result<(), Refusal> {
    let mut faults = Vec::new();
    for r in ranges {
        let keyless = records::keyless_records(&records[r.clone()], MAX_KEY_CHECK_BYTES)
            .map_err(|e| (errors::INVALID_RECORD, Some(e.to_string()), Vec::new()))?;
        faults.extend(keyless.into_iter().map(|i| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(Some(str(format!(
                "Compacted topic cannot accept message without key in topic partition {partition}."
            ))))
        }));
    }
    if faults.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = faults
        .iter()
        .take(3)
        .map(|f| {
            format!(
                "RecordError(batchIndex={}, message='{}')",
                f.batch_index,
                f.batch_index_error_message
                    .as_ref()
                    .map_or("", |m| m.as_str())
            )
        })
        .collect();
    Err((
        errors::INVALID_RECORD,
        Some(format!(
            "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
            faults.len(),
            shown.join(", ")
        )),
        faults,
    ))
}

/// Splits a partition's records into whole batches and checks each one.
fn check_records(
    records: Option<&Bytes>,
    max_bytes: i32,
    transactional: bool,
) -> Result<Vec<std::ops::Range<usize>>, Refusal> {
    let records = match records {
        Some(r) if !r.is_empty() => r,
        _ => {
            return Err((
                errors::INVALID_RECORD,
                Some("no record batch in the request".into()),
                Vec::new(),
            ))
        }
    };
    let batches = batch::split(records)
        .map_err(|e| (errors::CORRUPT_MESSAGE, Some(e.to_string()), Vec::new()))?;
    let mut ranges = Vec::with_capacity(batches.len());
    for (range, h) in batches {
        if h.total_len() > max_bytes as usize {
            return Err((
                errors::MESSAGE_TOO_LARGE,
                Some(format!(
                    "record batch of {} bytes exceeds max.message.bytes {max_bytes}",
                    h.total_len()
                )),
                Vec::new(),
            ));
        }
        // Markers are the transaction coordinator's to write, never a client's.
        if h.is_control() {
            return Err((
                errors::INVALID_RECORD,
                Some("control batches are written by the transaction coordinator only".into()),
                Vec::new(),
            ));
        }
        if h.is_transactional() != transactional {
            return Err((
                errors::INVALID_RECORD,
                Some(if transactional {
                    "a transactional produce carries only transactional batches".into()
                } else {
                    "a transactional batch needs the request's transactional id".into()
                }),
                Vec::new(),
            ));
        }
        ranges.push(range);
    }
    Ok(ranges)
}

fn append_error_code(e: &AppendError) -> i16 {
    match e {
        AppendError::UnknownPartition => errors::UNKNOWN_TOPIC_OR_PARTITION,
        AppendError::OutOfOrderSequence => errors::OUT_OF_ORDER_SEQUENCE_NUMBER,
        AppendError::InvalidProducerEpoch => errors::INVALID_PRODUCER_EPOCH,
        AppendError::UnknownProducerId => errors::UNKNOWN_PRODUCER_ID,
        AppendError::OffsetOutOfRange => errors::OFFSET_OUT_OF_RANGE,
        AppendError::CorruptBatch => errors::CORRUPT_MESSAGE,
        AppendError::InvalidTxnState => crate::txn::errors::INVALID_TXN_STATE,
    }
}
