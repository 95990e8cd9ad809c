//! Client quotas and consumer groups' dequeue speed limits applied to Produce and Fetch
//! (rules in `quotas/` and `quotas/groups.rs`): what a response served is counted against
//! the client's quota and the limits of the groups the fetch is attributed to, the response carries the resulting
//! `throttle_time_ms`, and the connection reads nothing more until that time has passed
//! (KIP-219). A Fetch that arrives while its client still owes time gets no records.
//! Follower fetches (replica id >= 0) are never throttled; phxq's followers replicate
//! through Raft anyway.

use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest};
use tokio::time::{Duration, Instant};
use tracing::debug;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::broker::Broker;
use crate::groups::consumer_protocol::TopicPartition;
use crate::handlers::{client_host, Session};
use crate::quotas::{ANONYMOUS, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};
use phxq_protocol::batch::count_records;

fn mute(session: &mut Session, throttle_ms: u64) {
    if throttle_ms > 0 {
        let until = Instant::now() + Duration::from_millis(throttle_ms);
        session.mute_until = Some(session.mute_until.map_or(until, |t| t.max(until)));
    }
}

/// The partitions a Fetch asks for.
fn requested(req: &FetchRequest) -> Vec<TopicPartition> {
    req.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic.0.to_string(), p.partition))
        })
        .collect()
}

/// Whether this broker leads `tp` (its share of a group's limit depends on it).
fn leads(broker: &Broker, tp: &TopicPartition) -> bool {
    broker
        .topics
        .get(&tp.0)
        .and_then(|t| t.partition(tp.1))
        .and_then(|(_, group)| broker.node.group(group))
        .is_some_and(|g| g.is_leader())
}

/// Cuts a Fetch to what the speed-limited groups it is attributed to may still take: in
/// all, and per topic where a group limits single topics.
pub fn shape_fetch(
    broker: &Broker,
    client_id: &str,
    req: &mut FetchRequest,
    peer: Option<SocketAddr>,
) {
    if req.replica_id.0 >= 0 || !broker.quotas.groups.any() {
        return;
    }
    let tps = requested(req);
    let now = broker.quotas.now_ms();
    let (total, per_topic) =
        broker
            .quotas
            .groups
            .allowance_bytes(&tps, client_id, &client_host(peer), now, &|tp| {
                leads(broker, tp)
            });
    let cap = |a: u64| a.min(i32::MAX as u64) as i32;
    if let Some(total) = total {
        req.max_bytes = req.max_bytes.min(cap(total));
    }
    for t in &mut req.topics {
        // A topic's budget is shared by its partitions in this fetch.
        let n = t.partitions.len().max(1) as u64;
        let topic_cap = per_topic.get(t.topic.as_str()).map(|a| a / n);
        for p in &mut t.partitions {
            for c in total.iter().chain(topic_cap.iter()) {
                p.partition_max_bytes = p.partition_max_bytes.min(cap(*c));
            }
        }
    }
}

/// The topics of a Fetch that get no records this time: a group it is attributed to has
/// used up its limit on them (`phxq.consumer.topic.*.per.sec`). The fetch's other
/// partitions are served; if none is left, it waits out `max_wait_ms` as an empty fetch.
pub fn held_back_topics(
    broker: &Broker,
    client_id: &str,
    req: &FetchRequest,
    peer: Option<SocketAddr>,
) -> BTreeSet<String> {
    if req.replica_id.0 >= 0 || !broker.quotas.groups.any() {
        return BTreeSet::new();
    }
    let now = broker.quotas.now_ms();
    broker.quotas.groups.held_back_topics(
        &requested(req),
        client_id,
        &client_host(peer),
        now,
        &|tp| leads(broker, tp),
    )
}

/// How long a fetching client (or a group it fetches for) still owes (0: serve it).
pub fn fetch_owed(
    broker: &Broker,
    client_id: &str,
    req: &FetchRequest,
    peer: Option<SocketAddr>,
) -> u64 {
    if req.replica_id.0 >= 0 {
        return 0;
    }
    let now = broker.quotas.now_ms();
    let client = broker
        .quotas
        .owed_ms(CONSUMER_BYTE_RATE, ANONYMOUS, client_id, now);
    if !broker.quotas.groups.any() {
        return client;
    }
    let tps = requested(req);
    let group = broker
        .quotas
        .groups
        .owed_ms(&tps, client_id, &client_host(peer), now, &|tp| {
            leads(broker, tp)
        });
    client.max(group)
}

/// Withholds the records of partitions a member of a fetch-locked group does not hold
/// (`phxq.consumer.fetch.lock.enable`): it gets none, as if the partition were empty.
pub fn enforce_fetch_lock(
    broker: &Broker,
    client_id: &str,
    resp: &mut FetchResponse,
    peer: Option<SocketAddr>,
) {
    if !broker.quotas.groups.any() {
        return;
    }
    let host = client_host(peer);
    for t in &mut resp.responses {
        for p in &mut t.partitions {
            if p.records.as_ref().is_some_and(|r| !r.is_empty())
                && broker.quotas.groups.fetch_refused(
                    &(t.topic.0.to_string(), p.partition_index),
                    client_id,
                    &host,
                )
            {
                debug!(client_id, %host, topic = %t.topic.0, partition = p.partition_index,
                    "fetch withheld: another member holds the partition's lock");
                p.records = Some(bytes::Bytes::new());
            }
        }
    }
}

/// Counts what a Fetch response carries and sets its throttle time (at least `owed`).
pub fn after_fetch(
    broker: &Broker,
    client_id: &str,
    resp: &mut FetchResponse,
    owed: u64,
    session: &mut Session,
) {
    let bytes: usize = resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .sum();
    let now = broker.quotas.now_ms();
    let mut throttle = if bytes > 0 {
        broker
            .quotas
            .record(CONSUMER_BYTE_RATE, ANONYMOUS, client_id, bytes as f64, now)
    } else {
        0
    }
    .max(owed);
    if bytes > 0 && broker.quotas.groups.any() {
        let served: Vec<(TopicPartition, u64, u64)> = resp
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().filter_map(|p| {
                    let r = p.records.as_ref().filter(|r| !r.is_empty())?;
                    Some((
                        (t.topic.0.to_string(), p.partition_index),
                        count_records(r),
                        r.len() as u64,
                    ))
                })
            })
            .collect();
        throttle = throttle.max(broker.quotas.groups.charge(
            &served,
            client_id,
            &client_host(session.peer),
            now,
            &|tp| leads(broker, tp),
        ));
    }
    resp.throttle_time_ms = throttle.min(i32::MAX as u64) as i32;
    mute(session, throttle);
}

/// Counts a Produce request's record bytes; returns the throttle time for its response.
pub fn produce(
    broker: &Broker,
    client_id: &str,
    req: &ProduceRequest,
    session: &mut Session,
) -> u64 {
    let bytes: usize = req
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .sum();
    if bytes == 0 {
        return 0;
    }
    let now = broker.quotas.now_ms();
    let throttle =
        broker
            .quotas
            .record(PRODUCER_BYTE_RATE, ANONYMOUS, client_id, bytes as f64, now);
    mute(session, throttle);
    throttle
}
