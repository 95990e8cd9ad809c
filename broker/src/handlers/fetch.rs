//! Fetch (1): read whole record batches from each requested partition's store group.
//!
//! A long poll: if fewer than `min_bytes` are available the request waits for new appends
//! to any of the involved store groups, answering as soon as `min_bytes` are there and no
//! later than `max_wait_ms`. Every requested partition is in the response. Fetch sessions
//! (KIP-227) are not kept: the answer is always a full response with session id 0.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use phxq_protocol::errors;
use phxq_replication::GroupId;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::handlers::replication_error_code;

pub async fn handle(broker: &Broker, req: FetchRequest, _version: i16) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.clamp(0, 60_000) as u64);
    let mut watches = watches(broker, &req);
    loop {
        for w in watches.iter_mut() {
            w.borrow_and_update();
        }
        let (response, bytes) = read_off_worker(broker, &req);
        if bytes >= req.min_bytes.max(1) as usize
            || Instant::now() >= deadline
            || watches.is_empty()
        {
            return response;
        }
        let changed =
            futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            (result, _, _) = changed => if result.is_err() { return response; },
            _ = tokio::time::sleep_until(deadline) => {
                // Read once more so that what arrived at the deadline is not missed.
                return read_off_worker(broker, &req).0;
            }
        }
    }
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
fn read_off_worker(broker: &Broker, req: &FetchRequest) -> (FetchResponse, usize) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| read(broker, req)),
        _ => read(broker, req),
    }
}

/// One pass over every requested partition. Returns the response and the record bytes in it.
fn read(broker: &Broker, req: &FetchRequest) -> (FetchResponse, usize) {
    let mut budget = if req.max_bytes <= 0 {
        usize::MAX
    } else {
        req.max_bytes as usize
    };
    let mut total = 0usize;
    let read_committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = broker.topics.get(&t.topic.0);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica((-1).into())
                .with_aborted_transactions(read_committed.then(Vec::new));
            let Some((pid, g)) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                partitions.push(data.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            let group = match broker.leading(g) {
                Ok(group) => group,
                Err(code) => {
                    partitions.push(data.with_error_code(code));
                    continue;
                }
            };
            let Some(offsets) = group.offsets(pid) else {
                partitions.push(data.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            data = data
                .with_high_watermark(offsets.high_watermark)
                .with_last_stable_offset(offsets.high_watermark)
                .with_log_start_offset(offsets.log_start_offset);
            if p.fetch_offset < offsets.log_start_offset || p.fetch_offset > offsets.high_watermark
            {
                partitions.push(data.with_error_code(errors::OFFSET_OUT_OF_RANGE));
                continue;
            }
            // KIP-74: the first partition with data returns at least one whole batch, even past
            // the limits; after that, stop when the response budget is spent.
            let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
            if p.fetch_offset == offsets.high_watermark || (limit == 0 && total > 0) {
                partitions.push(data.with_records(Some(Default::default())));
                continue;
            }
            let mut buf = BytesMut::new();
            match group.read(pid, p.fetch_offset, limit, &mut buf) {
                Ok(r) => {
                    total += r.bytes;
                    budget = budget.saturating_sub(r.bytes);
                    partitions.push(data.with_records(Some(buf.freeze())));
                }
                Err(e) => partitions.push(data.with_error_code(replication_error_code(&e))),
            }
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
    )
}
