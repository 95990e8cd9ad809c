//! Share-group offsets for administrators (DescribeShareGroupOffsets,
//! AlterShareGroupOffsets, DeleteShareGroupOffsets): each operation runs on the leader of
//! the partition, where the share-partition lives, reached over the peer transport when
//! that is another broker (as the audit's checks are).
//!
//! Rules:
//! - **Describe** gives the share-partition's start offset (SPSO): the in-memory one when
//!   loaded in the leader's current term, else the persisted one; -1 when the group never
//!   fetched from the partition.
//! - **Alter** starts the share-partition over at the given offset (clamped into the log)
//!   with nothing in flight and a new state epoch, persisted before the answer.
//! - **Delete** removes the share-partition's state (memory and store); the next fetch
//!   starts at `share.auto.offset.reset`.
//! - The caller (the group coordinator's handler) checks that the group is a share group
//!   and, for alter and delete, that it has no members.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use phxq_replication::{NodeId, ReplicaNode};
use serde::{Deserialize, Serialize};

use super::config::ShareSettings;
use super::manager::{Location, ShareKey, ShareManager};
use crate::topics::TopicRegistry;

/// The peer service name.
pub const SERVICE: &str = "share-offsets";
const PEER_TTL: Duration = Duration::from_secs(10);

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;

/// One operation on one share-partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Describe,
    Alter { start_offset: i64 },
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub key: ShareKey,
    pub op: Op,
}

/// Where a share-partition stands, as describe shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The start offset (SPSO); -1 when the group has no state on the partition.
    pub start_offset: i64,
    /// Counts of the in-flight window, when the share-partition is loaded on its leader.
    pub in_flight: Option<u64>,
    pub acquired: Option<u64>,
    pub redeliverable: Option<u64>,
    pub archived: Option<u64>,
}

/// A share-partition's standing or an error code and message.
pub type Answer = Result<Standing, (i16, String)>;

/// Runs `requests` on this broker, which leads their partitions.
pub async fn answer_local(
    topics: &TopicRegistry,
    node: &ReplicaNode,
    manager: &ShareManager,
    settings: &(dyn Fn(&str) -> ShareSettings + Send + Sync),
    requests: &[Request],
) -> Vec<Answer> {
    let mut out = Vec::with_capacity(requests.len());
    for r in requests {
        out.push(answer_one(topics, node, manager, settings, r).await);
    }
    out
}

async fn answer_one(
    topics: &TopicRegistry,
    node: &ReplicaNode,
    manager: &ShareManager,
    settings: &(dyn Fn(&str) -> ShareSettings + Send + Sync),
    r: &Request,
) -> Answer {
    let (group, topic, partition) = &r.key;
    let (pid, gid) = topics
        .get(topic)
        .and_then(|t| t.partition(*partition))
        .ok_or((
            UNKNOWN_TOPIC_OR_PARTITION,
            format!("no partition {topic}-{partition}"),
        ))?;
    let store = node.group(gid).filter(|s| s.leader_ready()).ok_or((
        NOT_LEADER_OR_FOLLOWER,
        format!("this broker does not lead {topic}-{partition}"),
    ))?;
    let at = Location { store, pid };
    let start = |start_offset| Standing {
        start_offset,
        ..Default::default()
    };
    match r.op {
        Op::Describe => {
            let start_offset = manager.start_offset(&r.key, &at)?;
            Ok(match manager.stats_of(&r.key, &at) {
                Some(s) => Standing {
                    start_offset,
                    in_flight: Some((s.end_offset - s.start_offset).max(0) as u64),
                    acquired: Some(s.acquired),
                    redeliverable: Some(s.redeliverable),
                    archived: Some(s.archived),
                },
                None => start(start_offset),
            })
        }
        Op::Alter { start_offset } => manager
            .alter(&r.key, &at, &settings(group), start_offset)
            .await
            .map(start),
        Op::Delete => manager.delete(&r.key, &at).await.map(|()| start(-1)),
    }
}

/// Decodes a peer request, answers it with [`answer_local`], encodes the answer.
pub async fn answer_peer(
    topics: &TopicRegistry,
    node: &ReplicaNode,
    manager: &ShareManager,
    settings: &(dyn Fn(&str) -> ShareSettings + Send + Sync),
    body: &[u8],
) -> Result<Bytes, String> {
    let requests: Vec<Request> =
        serde_json::from_slice(body).map_err(|e| format!("bad share offsets request: {e}"))?;
    let answers = answer_local(topics, node, manager, settings, &requests).await;
    serde_json::to_vec(&answers)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Runs each request on its partition's leader, this broker or another; one answer per
/// request, in order.
pub async fn run(
    topics: &TopicRegistry,
    node: &ReplicaNode,
    manager: &ShareManager,
    settings: &(dyn Fn(&str) -> ShareSettings + Send + Sync),
    requests: Vec<Request>,
) -> Vec<Answer> {
    let mut answers: Vec<Option<Answer>> = vec![None; requests.len()];
    let mut remote: BTreeMap<NodeId, (phxq_replication::GroupId, Vec<usize>)> = BTreeMap::new();
    for (i, r) in requests.iter().enumerate() {
        let (_, topic, partition) = &r.key;
        let Some((_, gid)) = topics.get(topic).and_then(|t| t.partition(*partition)) else {
            answers[i] = Some(Err((
                UNKNOWN_TOPIC_OR_PARTITION,
                format!("no partition {topic}-{partition}"),
            )));
            continue;
        };
        match node.group(gid) {
            Some(s) if s.is_leader() => {
                answers[i] = answer_local(topics, node, manager, settings, std::slice::from_ref(r))
                    .await
                    .pop();
            }
            Some(s) => match s.leader() {
                Some(leader) => remote.entry(leader).or_insert((gid, Vec::new())).1.push(i),
                None => {
                    answers[i] = Some(Err((
                        NOT_LEADER_OR_FOLLOWER,
                        format!("store group {} has no leader", gid.0),
                    )))
                }
            },
            None => {
                answers[i] = Some(Err((
                    NOT_LEADER_OR_FOLLOWER,
                    format!("store group {} is not on this broker", gid.0),
                )))
            }
        }
    }
    for (leader, (gid, idx)) in remote {
        let batch: Vec<&Request> = idx.iter().map(|&i| &requests[i]).collect();
        let body = match serde_json::to_vec(&batch) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                for i in idx {
                    answers[i] = Some(Err((REQUEST_TIMED_OUT, e.to_string())));
                }
                continue;
            }
        };
        let decoded: Result<Vec<Answer>, String> = node
            .peer_call(leader, gid, SERVICE, body, PEER_TTL)
            .await
            .and_then(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| format!("bad share offsets answer from node {leader}: {e}"))
            });
        match decoded {
            Ok(list) if list.len() == idx.len() => {
                for (i, a) in idx.into_iter().zip(list) {
                    answers[i] = Some(a);
                }
            }
            Ok(_) | Err(_) => {
                let msg = match decoded {
                    Err(e) => e,
                    Ok(_) => format!("node {leader} answered the wrong number of requests"),
                };
                for i in idx {
                    answers[i] = Some(Err((REQUEST_TIMED_OUT, msg.clone())));
                }
            }
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or(Err((REQUEST_TIMED_OUT, "no answer".into()))))
        .collect()
}
