//! Fetch (1): read whole record batches from each requested partition's store group.
//!
//! A long poll: if fewer than `min_bytes` would be returned the request waits for new
//! appends to any of the involved store groups, answering as soon as `min_bytes` are there
//! and no later than `max_wait_ms`. Every requested partition is in the response, in request
//! order. The response's size follows KIP-74 (`max_bytes` in total, `partition_max_bytes`
//! per partition, whole batches, the first batch of the first non-empty partition always
//! whole), and the partitions take turns at the budget across a connection's fetches: see
//! [`budget`]. Fetch sessions (KIP-227) are not kept: the answer is always a full response
//! with session id 0. v13+ names topics by id ([`resolve_topic_ids`]); an unknown id
//! answers UNKNOWN_TOPIC_ID.

pub mod budget;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use phxq_protocol::errors;
use phxq_replication::{GroupId, ReadLimit};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::handlers::replication_error_code;
use budget::{PartitionKey, ResponseBudget, Rotation};

/// Answers `req`; `rotation` is the connection's, and is moved on by the answer given.
/// Partitions of the `held_back` topics are answered without records (a speed limit);
/// those of the `denied` topics (no READ for the principal) with TOPIC_AUTHORIZATION_FAILED.
pub async fn handle(
    broker: &Broker,
    req: FetchRequest,
    _version: i16,
    rotation: &mut Rotation,
    held_back: &BTreeSet<String>,
    denied: &BTreeSet<String>,
) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.clamp(0, 60_000) as u64);
    let mut watches = watches(broker, &req);
    let (response, cut_off) = loop {
        for w in watches.iter_mut() {
            w.borrow_and_update();
        }
        let (response, bytes, cut_off) = read_off_worker(broker, &req, rotation, held_back, denied);
        if bytes >= req.min_bytes.max(1) as usize
            || Instant::now() >= deadline
            || watches.is_empty()
        {
            break (response, cut_off);
        }
        let changed =
            futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            (result, _, _) = changed => if result.is_err() { break (response, cut_off); },
            _ = tokio::time::sleep_until(deadline) => {
                // Read once more so that what arrived at the deadline is not missed.
                let (response, _, cut_off) = read_off_worker(broker, &req, rotation, held_back, denied);
                break (response, cut_off);
            }
        }
    };
    rotation.cut_off_at(cut_off);
    response
}

/// Fetch v13+ names topics by id only: fills in each such topic's name, so the rest of
/// the fetch (quotas, ACLs, reads) works by name. Returns the ids no topic has.
pub fn resolve_topic_ids(broker: &Broker, req: &mut FetchRequest) -> BTreeSet<uuid::Uuid> {
    let mut unknown = BTreeSet::new();
    for t in req.topics.iter_mut() {
        if !t.topic.0.is_empty() || t.topic_id.is_nil() {
            continue;
        }
        match broker.topics.get_by_id(t.topic_id) {
            Some(topic) => t.topic = TopicName(crate::handlers::str(topic.name.clone())),
            None => {
                unknown.insert(t.topic_id);
            }
        }
    }
    unknown
}

/// The partitions of topics whose id is `unknown` answer UNKNOWN_TOPIC_ID.
pub fn mark_unknown_ids(resp: &mut FetchResponse, unknown: &BTreeSet<uuid::Uuid>) {
    if unknown.is_empty() {
        return;
    }
    for t in resp
        .responses
        .iter_mut()
        .filter(|t| unknown.contains(&t.topic_id))
    {
        for p in t.partitions.iter_mut() {
            p.error_code = errors::UNKNOWN_TOPIC_ID;
            p.records = None;
        }
    }
}

/// Each requested partition's fetch offset, for the audit's record of what a consumer was
/// given (`None` for a follower's Fetch, or when no group is audited).
pub fn positions(broker: &Broker, req: &FetchRequest) -> Option<BTreeMap<(String, i32), i64>> {
    let consumer = req.replica_id.0 < 0 && req.replica_state.replica_id.0 < 0;
    (consumer && broker.audit_on()).then(|| {
        req.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| ((t.topic.0.to_string(), p.partition), p.fetch_offset))
            })
            .collect()
    })
}

/// Apply watches of the store groups holding the requested partitions.
fn watches(broker: &Broker, req: &FetchRequest) -> Vec<watch::Receiver<u64>> {
    let mut groups: Vec<GroupId> = req
        .topics
        .iter()
        .filter_map(|t| broker.topics.get(&t.topic.0).map(|topic| (t, topic)))
        .flat_map(|(t, topic)| {
            t.partitions
                .iter()
                .filter_map(move |p| topic.partition(p.partition))
                .map(|(_, g)| g)
        })
        .collect();
    groups.sort();
    groups.dedup();
    groups
        .into_iter()
        .filter_map(|g| broker.leading(g).ok())
        .map(|g| g.applied_watch())
        .collect()
}

/// [`read`], telling the runtime that it may block: bytes older than the page-cache window
/// of the segment files come from the disk, and other connections' tasks must not wait
/// behind that on this worker thread.
fn read_off_worker(
    broker: &Broker,
    req: &FetchRequest,
    rotation: &Rotation,
    held_back: &BTreeSet<String>,
    denied: &BTreeSet<String>,
) -> (FetchResponse, usize, Option<PartitionKey>) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| read(broker, req, rotation, held_back, denied))
        }
        _ => read(broker, req, rotation, held_back, denied),
    }
}

/// One pass over every requested partition, filling the response budget in the order
/// `rotation` gives. Returns the response, the record bytes in it, and the first partition
/// that had data but was cut off by the budget (where the next fetch should start).
fn read(
    broker: &Broker,
    req: &FetchRequest,
    rotation: &Rotation,
    held_back: &BTreeSet<String>,
    denied: &BTreeSet<String>,
) -> (FetchResponse, usize, Option<PartitionKey>) {
    let read_committed = req.isolation_level == 1;
    let requested: Vec<(&str, &FetchPartition)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (&*t.topic.0, p)))
        .collect();
    let keys: Vec<(&str, i32)> = requested.iter().map(|(t, p)| (*t, p.partition)).collect();
    let mut slots: Vec<Option<PartitionData>> = vec![None; requested.len()];
    let mut budget = ResponseBudget::new(req.max_bytes);
    let mut total = 0usize;
    let mut cut_off = None;
    for i in rotation.order(&keys) {
        let (topic, p) = requested[i];
        if denied.contains(topic) {
            slots[i] = Some(
                PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
                    .with_preferred_read_replica((-1).into()),
            );
            continue;
        }
        let limit = budget.limit(p.partition_max_bytes);
        let held = held_back.contains(topic);
        let (data, bytes, starved) = read_partition(broker, topic, p, limit, read_committed, held);
        if starved && cut_off.is_none() {
            cut_off = Some((topic.to_string(), p.partition));
        }
        budget.spend(bytes);
        total += bytes;
        slots[i] = Some(data);
    }
    // `order` visits every index once, so every slot is filled.
    let mut slots = slots.into_iter().map(Option::unwrap_or_default);
    let topics = req
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(slots.by_ref().take(t.partitions.len()).collect())
        })
        .collect();
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
        cut_off,
    )
}

/// Reads one partition within `limit`. Returns its response entry, the record bytes in it,
/// and whether it had data that the limit kept out entirely.
fn read_partition(
    broker: &Broker,
    topic: &str,
    p: &FetchPartition,
    limit: ReadLimit,
    read_committed: bool,
    held_back: bool,
) -> (PartitionData, usize, bool) {
    let data = PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica((-1).into())
        .with_aborted_transactions(read_committed.then(Vec::new));
    let failed = |data: PartitionData, code| (data.with_error_code(code), 0, false);
    let Some((pid, g)) = broker
        .topics
        .get(topic)
        .and_then(|t| t.partition(p.partition))
    else {
        return failed(data, errors::UNKNOWN_TOPIC_OR_PARTITION);
    };
    // KIP-320: a consumer that knows the leader epoch (v9+) is told when it is stale.
    let group = match broker.leading_at(g, p.current_leader_epoch) {
        Ok((group, _)) => group,
        Err(code) => return failed(data, code),
    };
    let Some(offsets) = group.offsets(pid) else {
        return failed(data, errors::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let data = data
        .with_high_watermark(offsets.high_watermark)
        .with_last_stable_offset(offsets.last_stable_offset)
        .with_log_start_offset(offsets.log_start_offset);
    if p.fetch_offset < offsets.log_start_offset || p.fetch_offset > offsets.high_watermark {
        return failed(data, errors::OFFSET_OUT_OF_RANGE);
    }
    // read_committed reads up to the last stable offset: past it, transactions are open.
    let end = if read_committed {
        offsets.last_stable_offset
    } else {
        offsets.high_watermark
    };
    if p.fetch_offset >= end || held_back {
        return (data.with_records(Some(Default::default())), 0, false);
    }
    let mut buf = BytesMut::new();
    let limit = if read_committed {
        limit.below(end)
    } else {
        limit
    };
    let read = match group.read(pid, p.fetch_offset, limit, &mut buf) {
        Ok(r) => r,
        Err(e) => return failed(data, replication_error_code(&e)),
    };
    let mut data = data;
    if read_committed && offsets.last_abort >= p.fetch_offset && read.batches > 0 {
        match group.aborted_transactions(pid, p.fetch_offset, end) {
            Ok(list) => {
                data.aborted_transactions = Some(
                    list.into_iter()
                        .map(|(producer_id, first_offset)| {
                            AbortedTransaction::default()
                                .with_producer_id(producer_id.into())
                                .with_first_offset(first_offset)
                        })
                        .collect(),
                )
            }
            Err(e) => return failed(data, replication_error_code(&e)),
        }
    }
    (
        data.with_records(Some(buf.freeze())),
        read.bytes,
        read.batches == 0,
    )
}
