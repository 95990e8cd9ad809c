//! The audit's I/O: what a Fetch answer gave is recorded on the partition leader, and a
//! coordinator's checks go to each partition's leader: answered here when this broker
//! leads the partition, otherwise sent as a peer request ([`SERVICE`]) over the
//! inter-broker transport to the leader, which answers with [`answer_local`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::FetchResponse;
use phxq_replication::{GroupId, NodeId, PartitionId, ReadLimit, ReplicaNode, StoreGroup};

use super::chain::{self, Link};
use super::deliveries::{Check, Deliveries, LeaderView, Verdict};
use super::TopicPartition;
use crate::topics::TopicRegistry;

/// The peer request name of audit checks.
pub const SERVICE: &str = "audit.check";
/// How long a coordinator waits for a leader's answer.
const PEER_TTL: Duration = Duration::from_secs(5);
/// Bytes read per step when the log's own batches are chained.
const LOG_READ_BYTES: usize = 1 << 20;

/// The store group of `tp` and the partition's id in it.
fn locate(topics: &TopicRegistry, tp: &TopicPartition) -> Option<(PartitionId, GroupId)> {
    topics.get(&tp.0)?.partition(tp.1)
}

/// The leader's view of a partition, if this broker leads its store group.
fn view(store: &StoreGroup, pid: PartitionId) -> Option<LeaderView> {
    let term = store.leader_term()?;
    let offsets = store.offsets(pid)?;
    Some(LeaderView {
        known_from: store
            .term_start_offset(pid, term)
            .unwrap_or(offsets.high_watermark),
        log_start: offsets.log_start_offset,
    })
}

/// Records what a Fetch answer gave the client: `requested` holds each partition's fetch
/// offset.
pub fn record_fetch(
    deliveries: &Deliveries,
    client_id: &str,
    host: &str,
    requested: &BTreeMap<TopicPartition, i64>,
    resp: &FetchResponse,
    now_ms: i64,
) {
    for t in &resp.responses {
        for p in &t.partitions {
            let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) else {
                continue;
            };
            let tp = (t.topic.0.to_string(), p.partition_index);
            let Some(&fetch_offset) = requested.get(&tp) else {
                continue;
            };
            if p.error_code != 0 {
                continue;
            }
            let links = chain::links(records);
            deliveries.record(&tp, (client_id, host), fetch_offset, &links, now_ms);
        }
    }
}

/// The links of the log's batches overlapping `[from, to)`.
fn log_links(
    store: &StoreGroup,
    pid: PartitionId,
    from: i64,
    to: i64,
) -> Result<Vec<Link>, String> {
    let mut out = Vec::new();
    let mut at = from.max(store.offsets(pid).map_or(from, |o| o.log_start_offset));
    let mut buf = BytesMut::new();
    while at < to {
        buf.clear();
        store
            .read(
                pid,
                at,
                ReadLimit::at_least_one_batch(LOG_READ_BYTES),
                &mut buf,
            )
            .map_err(|e| format!("cannot read the log at {at}: {e}"))?;
        let links = chain::links(&buf);
        let Some(last) = links.last().map(|l| l.last) else {
            break;
        };
        out.extend(links.into_iter().filter(|l| l.base < to));
        at = last + 1;
    }
    Ok(out)
}

/// Answers checks of partitions this broker leads.
pub fn answer_local(
    deliveries: &Deliveries,
    topics: &TopicRegistry,
    node: &ReplicaNode,
    checks: &[Check],
) -> Vec<Result<Verdict, String>> {
    checks
        .iter()
        .map(|c| {
            let (pid, gid) = locate(topics, &c.tp)
                .ok_or_else(|| format!("{}-{} does not exist", c.tp.0, c.tp.1))?;
            let store = node
                .group(gid)
                .ok_or_else(|| format!("store group {} is not on this broker", gid.0))?;
            let at = view(&store, pid)
                .ok_or_else(|| format!("this broker does not lead {}-{}", c.tp.0, c.tp.1))?;
            deliveries.check(c, at, &|a, b| log_links(&store, pid, a, b))
        })
        .collect()
}

/// Decodes a peer request, answers it with [`answer_local`], encodes the answer.
pub fn answer_peer(
    deliveries: &Deliveries,
    topics: &TopicRegistry,
    node: &ReplicaNode,
    body: &[u8],
) -> Result<Bytes, String> {
    let checks: Vec<Check> =
        serde_json::from_slice(body).map_err(|e| format!("bad audit check: {e}"))?;
    let answers = answer_local(deliveries, topics, node, &checks);
    serde_json::to_vec(&answers)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Asks each check's partition leader, this broker or another; one answer per check, in
/// order (an error when the leader is unknown or did not answer).
pub async fn check(
    deliveries: &Deliveries,
    topics: &TopicRegistry,
    node: &ReplicaNode,
    checks: Vec<Check>,
) -> Vec<Result<Verdict, String>> {
    let mut answers: Vec<Option<Result<Verdict, String>>> = vec![None; checks.len()];
    let mut remote: BTreeMap<NodeId, (GroupId, Vec<usize>)> = BTreeMap::new();
    for (i, c) in checks.iter().enumerate() {
        let Some((_, gid)) = locate(topics, &c.tp) else {
            answers[i] = Some(Err(format!("{}-{} does not exist", c.tp.0, c.tp.1)));
            continue;
        };
        match node.group(gid) {
            Some(s) if s.is_leader() => {
                answers[i] = answer_local(deliveries, topics, node, std::slice::from_ref(c)).pop();
            }
            Some(s) => match s.leader() {
                Some(leader) => remote.entry(leader).or_insert((gid, Vec::new())).1.push(i),
                None => answers[i] = Some(Err(format!("store group {} has no leader", gid.0))),
            },
            None => answers[i] = Some(Err(format!("store group {} is not on this broker", gid.0))),
        }
    }
    for (leader, (gid, idx)) in remote {
        let batch: Vec<&Check> = idx.iter().map(|&i| &checks[i]).collect();
        let body = Bytes::from(serde_json::to_vec(&batch).unwrap_or_default());
        let reply = node.peer_call(leader, gid, SERVICE, body, PEER_TTL).await;
        let decoded: Result<Vec<Result<Verdict, String>>, String> = reply.and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| format!("bad audit answer from node {leader}: {e}"))
        });
        match decoded {
            Ok(list) if list.len() == idx.len() => {
                for (i, a) in idx.into_iter().zip(list) {
                    answers[i] = Some(a);
                }
            }
            Ok(_) => {
                for i in idx {
                    answers[i] = Some(Err(format!(
                        "node {leader} answered the wrong number of checks"
                    )));
                }
            }
            Err(e) => {
                for i in idx {
                    answers[i] = Some(Err(e.clone()));
                }
            }
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err("not checked".into())))
        .collect()
}
