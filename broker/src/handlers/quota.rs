//! Client quotas applied to Produce and Fetch (rules in `quotas/`): what a response served
//! is counted against the client's quota, the response carries the resulting
//! `throttle_time_ms`, and the connection reads nothing more until that time has passed
//! (KIP-219). A Fetch that arrives while its client still owes time gets no records.
//! Follower fetches (replica id >= 0) are never throttled; phxq's followers replicate
//! through Raft anyway.

use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest};
use tokio::time::{Duration, Instant};

use crate::broker::Broker;
use crate::handlers::Session;
use crate::quotas::{ANONYMOUS, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

fn mute(session: &mut Session, throttle_ms: u64) {
    if throttle_ms > 0 {
        let until = Instant::now() + Duration::from_millis(throttle_ms);
        session.mute_until = Some(session.mute_until.map_or(until, |t| t.max(until)));
    }
}

/// How long a fetching client still owes (0: serve it).
pub fn fetch_owed(broker: &Broker, client_id: &str, req: &FetchRequest) -> u64 {
    if req.replica_id.0 >= 0 {
        return 0;
    }
    let now = broker.quotas.now_ms();
    broker
        .quotas
        .owed_ms(CONSUMER_BYTE_RATE, ANONYMOUS, client_id, now)
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
    let throttle = if bytes > 0 {
        broker
            .quotas
            .record(CONSUMER_BYTE_RATE, ANONYMOUS, client_id, bytes as f64, now)
    } else {
        0
    }
    .max(owed);
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
