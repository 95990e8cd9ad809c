//! OffsetFetch (9): committed offsets of a group. A partition without a commit answers
//! offset -1, empty metadata and no error; null topics (v2+) means every committed
//! partition; v8+ asks for several groups at once; v9 carries the member id and epoch of a
//! KIP-848 member, checked as Kafka does (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH). Reads wait for a commit of the group
//! that is being written, so a partition's next owner sees its previous owner's last commit.
//! v6-v7 requests carrying [`AUDIT_TAG`] also get the group's audit (`phxq group audit`).
//! With `require_stable` (v7+, KIP-447), a partition with offsets committed in a
//! transaction not decided yet answers UNSTABLE_OFFSET_COMMIT (the client retries).
//! Needs DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED); a topic asked for
//! without DESCRIBE on it is TOPIC_AUTHORIZATION_FAILED, and left out of "every topic".

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use crate::broker::Broker;
use crate::groups::consumer_protocol::TopicPartition;
use crate::groups::errors::*;
use crate::groups::offsets::CommittedOffset;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};

/// The tagged field (OffsetFetch v6 and v7, request and response) by which
/// `phxq group audit` asks for the group's reconciliation (`audit/`), answered as JSON.
pub const AUDIT_TAG: i32 = 0x706A;

type Fetched = BTreeMap<TopicPartition, Option<CommittedOffset>>;
/// (partition, offset, leader epoch, metadata, error code) of one partition.
type PartitionAnswer = (i32, i64, i32, String, i16);
type TopicAnswer = (String, Vec<PartitionAnswer>);

/// One partition's answer: (index, offset, leader epoch, metadata, error code).
fn partition(tp: &TopicPartition, c: &Option<CommittedOffset>) -> PartitionAnswer {
    match c {
        Some(c) => (tp.1, c.offset, c.leader_epoch, c.metadata.clone(), NONE),
        None => (tp.1, -1, -1, String::new(), NONE),
    }
}

/// Groups partitions by topic, keeping the request's topic order when there was one.
fn by_topic(fetched: &Fetched, order: Option<&[(String, Vec<i32>)]>) -> Vec<TopicAnswer> {
    let names: Vec<String> = match order {
        Some(o) => o.iter().map(|(t, _)| t.clone()).collect(),
        None => {
            let mut v: Vec<String> = fetched.keys().map(|(t, _)| t.clone()).collect();
            v.dedup();
            v
        }
    };
    names
        .into_iter()
        .map(|name| {
            let parts = match order.and_then(|o| o.iter().find(|(t, _)| *t == name)) {
                Some((_, ps)) => ps
                    .iter()
                    .map(|p| {
                        let tp = (name.clone(), *p);
                        partition(&tp, fetched.get(&tp).unwrap_or(&None))
                    })
                    .collect(),
                None => fetched
                    .iter()
                    .filter(|((t, _), _)| *t == name)
                    .map(|(tp, c)| partition(tp, c))
                    .collect(),
            };
            (name, parts)
        })
        .collect()
}

async fn fetch(
    broker: &Broker,
    az: &Authz,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> (i16, Vec<TopicAnswer>) {
    if !az.group(AclOperation::Describe, group) {
        return (
            phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED,
            by_topic(&Fetched::new(), topics.as_deref()),
        );
    }
    match broker.groups.committed(group, topics.as_deref()).await {
        Ok(f) => {
            let mut answer = by_topic(&f, topics.as_deref());
            if topics.is_none() {
                answer.retain(|(name, _)| az.topic(AclOperation::Describe, name));
            }
            for (name, parts) in &mut answer {
                if !az.topic(AclOperation::Describe, name) {
                    for p in parts.iter_mut() {
                        *p = (
                            p.0,
                            -1,
                            -1,
                            String::new(),
                            phxq_protocol::errors::TOPIC_AUTHORIZATION_FAILED,
                        );
                    }
                }
            }
            if require_stable {
                for (name, parts) in &mut answer {
                    for p in parts.iter_mut() {
                        let tp = (name.clone(), p.0);
                        if broker.groups.has_pending_txn_offsets(group, &tp) {
                            *p = (p.0, -1, -1, String::new(), UNSTABLE_OFFSET_COMMIT);
                        }
                    }
                }
            }
            (NONE, answer)
        }
        Err(code) => (code, by_topic(&Fetched::new(), topics.as_deref())),
    }
}

pub async fn handle(
    broker: &Broker,
    req: OffsetFetchRequest,
    version: i16,
    az: &Authz,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            // v9: a KIP-848 member names itself; it must be at its current epoch.
            let member_check = match g.member_id.as_deref() {
                Some(member) if version >= 9 && g.member_epoch >= 0 => broker
                    .groups
                    .check_offset_fetch(&g.group_id.0, member, g.member_epoch),
                _ => NONE,
            };
            let (code, topics) = if member_check == NONE {
                fetch(broker, az, &g.group_id.0, topics, req.require_stable).await
            } else {
                (member_check, Vec::new())
            };
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(code)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(name, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str(name)))
                                    .with_partitions(
                                        parts
                                            .into_iter()
                                            .map(|(p, o, e, m, c)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(o)
                                                    .with_committed_leader_epoch(e)
                                                    .with_metadata(Some(str(m)))
                                                    .with_error_code(c)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let require_stable = version >= 7 && req.require_stable;
    let (code, topics) = fetch(broker, az, &req.group_id.0, topics, require_stable).await;
    // v1 has no top-level error code: a group-level error goes on every partition.
    let partition_code = if version < 2 { code } else { NONE };
    let mut tagged = BTreeMap::new();
    if version >= 6 && req.unknown_tagged_fields.contains_key(&AUDIT_TAG) && code == NONE {
        if let Ok(audit) = broker.groups.audit_report(&req.group_id.0).await {
            tagged.insert(AUDIT_TAG, bytes::Bytes::from(audit.to_string()));
        }
    }
    OffsetFetchResponse::default()
        .with_unknown_tagged_fields(tagged)
        .with_error_code(if version >= 2 { code } else { NONE })
        .with_topics(
            topics
                .into_iter()
                .map(|(name, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str(name)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, o, e, m, c)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(e)
                                        .with_metadata(Some(str(m)))
                                        .with_error_code(if c != NONE { c } else { partition_code })
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}
