//! ShareFetch (78, KIP-932): a share consumer's fetch from the partitions this broker
//! leads. In order: the share session is checked (`share/sessions.rs`), records of a
//! replaced session or of forgotten partitions are released, the piggy-backed
//! acknowledgements are applied, records are acquired for the member (a long poll of up
//! to `max_wait_ms` when none are available), every changed share-partition is persisted
//! through its store group's Raft log, and only then the answer goes out: records handed
//! to a member are always durable as acquired (their delivery count survives a crash).
//! A final request (epoch -1) acknowledges, fetches nothing and closes the session.
//! Needs READ on the group (else GROUP_AUTHORIZATION_FAILED) and on each topic (else its
//! partitions are TOPIC_AUTHORIZATION_FAILED).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ShareFetchRequest, ShareFetchResponse};
use phxq_protocol::errors;
use tokio::time::Instant;

use super::share_partitions::{self as sp, Named};
use crate::broker::Broker;
use crate::groups::consumer_coordinator::Catalog;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};
use crate::share::assignor::TopicPartition;
use crate::share::manager::{Entry, Failure};
use crate::share::partition::{AckBatch, AcquireMode, AcquiredRange};
use crate::share::sessions::SessionRequest;

/// Records per ShareFetch when the request sets no limit (Kafka's `max.poll.records`).
const DEFAULT_MAX_RECORDS: u32 = 500;
/// How often a waiting fetch looks again for records released or expired meanwhile.
const RECHECK: Duration = Duration::from_millis(100);

#[derive(Default)]
struct PartitionOutcome {
    error: Option<Failure>,
    ack_error: Option<Failure>,
    records: Option<Bytes>,
    ranges: Vec<AcquiredRange>,
}

pub async fn handle(
    broker: &Broker,
    req: ShareFetchRequest,
    _version: i16,
    connection: u64,
    az: &Authz,
) -> ShareFetchResponse {
    let group = req
        .group_id
        .as_ref()
        .map(|g| g.0.to_string())
        .unwrap_or_default();
    let member = req
        .member_id
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let top = |code: i16, msg: String| {
        tracing::debug!(%group, %member, code, "share fetch refused: {msg}");
        ShareFetchResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str(msg)))
    };
    if group.is_empty() || member.is_empty() {
        return top(
            errors::INVALID_REQUEST,
            "ShareFetch needs a group id and a member id".into(),
        );
    }
    if !az.group(AclOperation::Read, &group) {
        return top(
            phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED,
            format!("{} may not READ group {group}", az.principal),
        );
    }
    let settings = broker.share_settings(&group);
    // The request's partitions, merged by topic (clients may name a topic twice).
    let mut outcomes: BTreeMap<Named, PartitionOutcome> = BTreeMap::new();
    let mut added: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut acks: BTreeMap<TopicPartition, Result<Vec<AckBatch>, Failure>> = BTreeMap::new();
    let mut has_acks = false;
    for t in &req.topics {
        for p in &t.partitions {
            let n = Named::new(broker, t.topic_id, p.partition_index);
            let raw: Vec<(i64, i64, &[i8])> = p
                .acknowledgement_batches
                .iter()
                .map(|b| {
                    (
                        b.first_offset,
                        b.last_offset,
                        b.acknowledge_types.as_slice(),
                    )
                })
                .collect();
            has_acks |= !raw.is_empty();
            match n.tp() {
                Some(tp) if !az.topic(AclOperation::Read, &tp.0) => {
                    let o = outcomes.entry(n.clone()).or_default();
                    o.error = Some((
                        phxq_protocol::errors::TOPIC_AUTHORIZATION_FAILED,
                        format!("{} may not READ topic {}", az.principal, tp.0),
                    ));
                }
                Some(tp) => {
                    added.insert(tp.clone());
                    if !raw.is_empty() {
                        // A partition named twice: its batches together (a clash of
                        // overlapping batches is then refused as a whole).
                        let batches = sp::ack_batches(&raw);
                        match (acks.remove(&tp), batches) {
                            (Some(Ok(mut had)), Ok(more)) => {
                                had.extend(more);
                                had.sort_by_key(|b| b.first_offset);
                                acks.insert(tp, Ok(had));
                            }
                            (Some(Err(e)), _) | (_, Err(e)) => {
                                acks.insert(tp, Err(e));
                            }
                            (None, Ok(more)) => {
                                acks.insert(tp, Ok(more));
                            }
                        }
                    }
                }
                None => {
                    let o = outcomes.entry(n.clone()).or_default();
                    o.error = Some((errors::UNKNOWN_TOPIC_ID, "unknown topic id".into()));
                }
            }
            outcomes.entry(n).or_default();
        }
    }
    let forgotten: BTreeSet<TopicPartition> = req
        .forgotten_topics_data
        .iter()
        .filter_map(|t| broker.topics.get_by_id(t.topic_id).map(|topic| (topic, t)))
        .flat_map(|(topic, t)| t.partitions.iter().map(move |p| (topic.name.clone(), *p)))
        .collect();
    let now = crate::groups::offsets::now_ms();
    let admitted = broker.share.sessions().fetch(
        &(group.clone(), member.clone()),
        SessionRequest {
            epoch: req.share_session_epoch,
            added: &added,
            forgotten: &forgotten,
            has_acks,
        },
        connection,
        now.max(0) as u64,
    );
    let mut admitted = match admitted {
        Ok(a) => a,
        Err((code, release)) => {
            if let Some(r) = release {
                broker.share.release(r).await;
            }
            return top(
                code,
                format!("share session epoch {} refused", req.share_session_epoch),
            );
        }
    };
    if !admitted.closing {
        if let Some(r) = admitted.release.take() {
            broker.share.release(r).await;
        }
    }
    let mut touched: Vec<Arc<Entry>> = Vec::new();
    let acked: BTreeSet<TopicPartition> = acks.keys().cloned().collect();
    for (tp, err) in sp::acknowledge(broker, &group, &member, &settings, acks, &mut touched) {
        if let Some(n) = sp::named(broker, &tp) {
            outcomes.entry(n).or_default().ack_error = err;
        }
    }
    let mut acquired_entries: Vec<(TopicPartition, Arc<Entry>)> = Vec::new();
    // PhxQueue's dequeue speed limits (`phxq.consumer.records.per.sec`, `...bytes.per.sec`)
    // hold for share groups as for the others: a fetch takes what the group's budget
    // allows, and one over budget waits (throttle_time_ms) with nothing acquired.
    let (owed, records_allowed, bytes_allowed) = broker
        .quotas
        .groups
        .share_allowance(&group, broker.quotas.now_ms());
    if !admitted.closing && owed > 0 {
        // Over budget: wait (up to max_wait_ms) rather than let the client spin.
        let wait = owed.min(req.max_wait_ms.clamp(0, 60_000) as u64);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    if !admitted.closing && owed == 0 {
        let mut max_records = if req.max_records > 0 {
            req.max_records as u32
        } else {
            DEFAULT_MAX_RECORDS
        };
        let mut max_bytes = if req.max_bytes > 0 {
            req.max_bytes as usize
        } else {
            50 << 20
        };
        let mut mode = AcquireMode::BatchOptimized;
        if let Some(r) = records_allowed {
            max_records = max_records.min(r.clamp(1, u32::MAX as u64) as u32);
            mode = AcquireMode::RecordLimit;
        }
        if let Some(b) = bytes_allowed {
            max_bytes = max_bytes.min(b.clamp(1, usize::MAX as u64) as usize);
        }
        let deadline =
            Instant::now() + Duration::from_millis(req.max_wait_ms.clamp(0, 60_000) as u64);
        let mut watches = watches(broker, &admitted.partitions);
        loop {
            for w in watches.iter_mut() {
                w.borrow_and_update();
            }
            // The log reads may go to the disk: not on this worker's other tasks' time.
            let got = off_worker(|| {
                acquire_round(
                    broker,
                    &group,
                    &member,
                    &settings,
                    &admitted.partitions,
                    // A speed-limited group takes exactly what its budget allows.
                    (max_records, max_bytes, mode),
                    &mut outcomes,
                    &mut acquired_entries,
                )
            });
            let now = Instant::now();
            if got || now >= deadline || admitted.partitions.is_empty() {
                break;
            }
            // New records wake the fetch at once; released or expired ones are looked
            // for every RECHECK.
            let pause = tokio::time::sleep((deadline - now).min(RECHECK));
            if watches.is_empty() {
                pause.await;
            } else {
                let appended =
                    futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
                tokio::select! {
                    _ = appended => {}
                    _ = pause => {}
                }
            }
        }
    }
    let (records, bytes) = outcomes.values().fold((0u64, 0u64), |(n, b), o| {
        let r: u64 = o
            .ranges
            .iter()
            .map(|r| (r.last_offset - r.first_offset + 1) as u64)
            .sum();
        (n + r, b + o.records.as_ref().map_or(0, |r| r.len() as u64))
    });
    let throttle = if records > 0 {
        broker
            .quotas
            .groups
            .charge_share(&group, records, bytes, broker.quotas.now_ms())
    } else {
        owed
    };
    touched.extend(acquired_entries.iter().map(|(_, e)| e.clone()));
    // Nothing goes out that is not durable: a share-partition that could not be
    // persisted answers with the error, its records withheld (they stay acquired until
    // their lock expires) and its acknowledgements unconfirmed.
    for (tp, f) in sp::persist_all(broker, &touched).await {
        if let Some(n) = sp::named(broker, &tp) {
            let o = outcomes.entry(n).or_default();
            if !o.ranges.is_empty() || o.records.is_some() {
                o.records = None;
                o.ranges.clear();
                o.error = Some(f.clone());
            }
            if o.ack_error.is_none() && acked.contains(&tp) {
                o.ack_error = Some(f);
            }
        }
    }
    if admitted.closing {
        if let Some(r) = admitted.release.take() {
            broker.share.release(r).await;
        }
    }
    response(broker, outcomes, settings.record_lock_duration_ms)
        .with_throttle_time_ms(throttle.min(i32::MAX as u64) as i32)
}

/// Apply watches of the store groups this broker leads among `partitions`'.
fn watches(
    broker: &Broker,
    partitions: &BTreeSet<TopicPartition>,
) -> Vec<tokio::sync::watch::Receiver<u64>> {
    let mut groups: Vec<phxq_replication::GroupId> = partitions
        .iter()
        .filter_map(|(t, p)| broker.topics.get(t)?.partition(*p).map(|(_, g)| g))
        .collect();
    groups.sort();
    groups.dedup();
    groups
        .into_iter()
        .filter_map(|g| broker.leading(g).ok())
        .map(|g| g.applied_watch())
        .collect()
}

/// Runs `f`, telling a multi-threaded runtime that it may block (as Fetch's reads do).
fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// One pass over the session's partitions, acquiring within the budget. Returns whether
/// anything was acquired.
#[allow(clippy::too_many_arguments)]
fn acquire_round(
    broker: &Broker,
    group: &str,
    member: &str,
    settings: &crate::share::config::ShareSettings,
    partitions: &BTreeSet<TopicPartition>,
    (mut records_left, mut bytes_left, mode): (u32, usize, AcquireMode),
    outcomes: &mut BTreeMap<Named, PartitionOutcome>,
    acquired: &mut Vec<(TopicPartition, Arc<Entry>)>,
) -> bool {
    let now = crate::groups::offsets::now_ms();
    let mut any = false;
    for tp in partitions {
        let Some(n) = sp::named(broker, tp) else {
            continue;
        };
        if records_left == 0 || bytes_left == 0 {
            break;
        }
        let o = outcomes.entry(n).or_default();
        if !o.ranges.is_empty() {
            continue;
        }
        let result = sp::open(broker, group, tp, settings).and_then(|(entry, at)| {
            let a =
                broker
                    .share
                    .acquire(&entry, &at, member, (records_left, mode), bytes_left, now)?;
            Ok((entry, a))
        });
        match result {
            Ok((entry, a)) if !a.ranges.is_empty() => {
                let n: u64 = a
                    .ranges
                    .iter()
                    .map(|r| (r.last_offset - r.first_offset + 1) as u64)
                    .sum();
                records_left = records_left.saturating_sub(n.min(u32::MAX as u64) as u32);
                bytes_left = bytes_left.saturating_sub(a.records.len());
                o.records = Some(a.records);
                o.ranges = a.ranges;
                o.error = None;
                acquired.push((tp.clone(), entry));
                any = true;
            }
            Ok((entry, _)) => {
                // Lock expiry inside the acquisition may have changed the state.
                acquired.push((tp.clone(), entry));
                o.error = None;
            }
            Err(f) => o.error = Some(f),
        }
    }
    any
}

fn response(
    broker: &Broker,
    outcomes: BTreeMap<Named, PartitionOutcome>,
    lock_ms: u32,
) -> ShareFetchResponse {
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    for (n, o) in outcomes {
        let mut p = PartitionData::default()
            .with_partition_index(n.partition)
            .with_current_leader(
                kafka_protocol::messages::share_fetch_response::LeaderIdAndEpoch::default()
                    .with_leader_id(-1)
                    .with_leader_epoch(-1),
            )
            .with_records(Some(o.records.unwrap_or_default()))
            .with_acquired_records(
                o.ranges
                    .iter()
                    .map(|r| {
                        AcquiredRecords::default()
                            .with_first_offset(r.first_offset)
                            .with_last_offset(r.last_offset)
                            .with_delivery_count(r.delivery_count.min(i16::MAX as u16) as i16)
                    })
                    .collect(),
            );
        if let Some((code, msg)) = o.error {
            if code == errors::NOT_LEADER_OR_FOLLOWER {
                if let Some(tp) = n.tp() {
                    p = p.with_current_leader(sp::current_leader(broker, &tp));
                }
            }
            p = p.with_error_code(code).with_error_message(Some(str(msg)));
        }
        if let Some((code, msg)) = o.ack_error {
            p = p
                .with_acknowledge_error_code(code)
                .with_acknowledge_error_message(Some(str(msg)));
        }
        match topics.last_mut() {
            Some(t) if t.topic_id == n.topic_id => t.partitions.push(p),
            _ => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(n.topic_id)
                    .with_partitions(vec![p]),
            ),
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_ms.min(i32::MAX as u32) as i32)
        .with_responses(topics)
}
