//! DescribeShareGroupOffsets (90), AlterShareGroupOffsets (91) and
//! DeleteShareGroupOffsets (92), KIP-932's admin APIs, sent to the group's coordinator.
//! The coordinator checks the group (a share group; no members for alter and delete) and
//! the partition leaders do the work (`share/admin.rs`). Describe without topics covers
//! every partition the group has state on in this broker's store groups, and the
//! partitions of the topics its members subscribe to.
//! Authorization: describing needs DESCRIBE on the group, altering READ, deleting DELETE
//! (else GROUP_AUTHORIZATION_FAILED).

use std::collections::BTreeSet;

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, TopicName,
};
use phxq_protocol::errors;

use crate::broker::Broker;
use crate::groups::consumer_coordinator::Catalog;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};
use crate::share::admin::{self, Answer, Op, Request};

/// The tag of phxq's counts of a described share-partition (JSON [`admin::Standing`]:
/// in flight, acquired, redeliverable, archived); Kafka clients skip it, `phxq group
/// describe` shows it.
pub const STANDING_TAG: i32 = 0x7068;

async fn run(broker: &Broker, requests: Vec<Request>) -> Vec<Answer> {
    let settings = |g: &str| broker.share_settings(g);
    admin::run(
        &broker.topics,
        &broker.node,
        &broker.share,
        &settings,
        requests,
    )
    .await
}

/// Every partition `group` has persisted state on in this broker's store groups.
fn persisted(broker: &Broker, group: &str) -> Result<BTreeSet<(String, i32)>, (i16, String)> {
    let mut out = BTreeSet::new();
    for gid in broker.store_group_ids() {
        if let Some(store) = broker.store_group(gid) {
            let parts = crate::share::manager::persisted_partitions(&store, group)
                .map_err(|e| (crate::errors::replication_error_code(&e), e.to_string()))?;
            out.extend(parts);
        }
    }
    Ok(out)
}

/// The partitions `group` has state on, or may have: persisted here, or of the topics its
/// members subscribe to.
pub fn state_partitions(
    broker: &Broker,
    group: &str,
    subscribed: BTreeSet<String>,
) -> Result<BTreeSet<(String, i32)>, (i16, String)> {
    let mut all = persisted(broker, group)?;
    for t in subscribed {
        let n = broker.topics.get(&t).map_or(0, |t| t.partition_count());
        all.extend((0..n).map(|p| (t.clone(), p)));
    }
    Ok(all)
}

/// Deletes the share-partition states of `group` on `parts`; the first error, or NONE.
pub async fn delete_states(broker: &Broker, group: &str, parts: BTreeSet<(String, i32)>) -> i16 {
    let requests = parts
        .into_iter()
        .map(|(t, p)| Request {
            key: (group.to_string(), t, p),
            op: Op::Delete,
        })
        .collect();
    match run(broker, requests)
        .await
        .into_iter()
        .find_map(Result::err)
    {
        None => errors::NONE,
        Some((code, msg)) => {
            tracing::warn!(%group, code, "share-partition state not deleted: {msg}");
            code
        }
    }
}

pub async fn describe(
    broker: &Broker,
    req: DescribeShareGroupOffsetsRequest,
    _version: i16,
    az: &Authz,
) -> DescribeShareGroupOffsetsResponse {
    let mut groups = Vec::new();
    for g in req.groups {
        let id = g.group_id.0.to_string();
        let out =
            DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id.clone());
        if !az.group(AclOperation::Describe, &id) {
            groups.push(out.with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED));
            continue;
        }
        let subscribed = match broker.groups.share_admin_check(&id, false) {
            Ok(s) => s,
            Err((code, msg)) => {
                groups.push(out.with_error_code(code).with_error_message(Some(str(msg))));
                continue;
            }
        };
        let partitions: BTreeSet<(String, i32)> = match g.topics {
            Some(topics) => topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.topic_name.0.to_string(), *p))
                })
                .collect(),
            None => match state_partitions(broker, &id, subscribed) {
                Ok(p) => p,
                Err((code, msg)) => {
                    groups.push(out.with_error_code(code).with_error_message(Some(str(msg))));
                    continue;
                }
            },
        };
        let partitions: Vec<(String, i32)> = partitions.into_iter().collect();
        let answers = run(
            broker,
            partitions
                .iter()
                .map(|(t, p)| Request {
                    key: (id.clone(), t.clone(), *p),
                    op: Op::Describe,
                })
                .collect(),
        )
        .await;
        let mut topics: Vec<DescribeShareGroupOffsetsResponseTopic> = Vec::new();
        for ((t, p), a) in partitions.into_iter().zip(answers) {
            let part = DescribeShareGroupOffsetsResponsePartition::default()
                .with_partition_index(p)
                .with_leader_epoch(-1);
            let part = match a {
                Ok(s) => {
                    let mut part = part.with_start_offset(s.start_offset);
                    if let Ok(figures) = serde_json::to_vec(&s) {
                        part.unknown_tagged_fields
                            .insert(STANDING_TAG, bytes::Bytes::from(figures));
                    }
                    part
                }
                Err((code, msg)) => part
                    .with_start_offset(-1)
                    .with_error_code(code)
                    .with_error_message(Some(str(msg))),
            };
            match topics.last_mut() {
                Some(last) if *last.topic_name.0 == *t => last.partitions.push(part),
                _ => topics.push(
                    DescribeShareGroupOffsetsResponseTopic::default()
                        .with_topic_id(broker.topics.get(&t).map(|t| t.uuid()).unwrap_or_default())
                        .with_topic_name(TopicName(str(t)))
                        .with_partitions(vec![part]),
                ),
            }
        }
        groups.push(out.with_topics(topics));
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

pub async fn alter(
    broker: &Broker,
    req: AlterShareGroupOffsetsRequest,
    _version: i16,
    az: &Authz,
) -> AlterShareGroupOffsetsResponse {
    let id = req.group_id.0.to_string();
    if !az.group(AclOperation::Read, &id) {
        return AlterShareGroupOffsetsResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED);
    }
    if let Err((code, msg)) = broker.groups.share_admin_check(&id, true) {
        return AlterShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str(msg)));
    }
    let mut requests = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            requests.push(Request {
                key: (id.clone(), t.topic_name.0.to_string(), p.partition_index),
                op: Op::Alter {
                    start_offset: p.start_offset,
                },
            });
        }
    }
    let mut answers = run(broker, requests).await.into_iter();
    let responses = req
        .topics
        .iter()
        .map(|t| {
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(
                    broker
                        .topics
                        .get(&t.topic_name.0)
                        .map(|t| t.uuid())
                        .unwrap_or_default(),
                )
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let r = AlterShareGroupOffsetsResponsePartition::default()
                                .with_partition_index(p.partition_index);
                            match answers.next() {
                                Some(Ok(_)) => r,
                                Some(Err((code, msg))) => {
                                    r.with_error_code(code).with_error_message(Some(str(msg)))
                                }
                                None => r.with_error_code(errors::REQUEST_TIMED_OUT),
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    AlterShareGroupOffsetsResponse::default().with_responses(responses)
}

pub async fn delete(
    broker: &Broker,
    req: DeleteShareGroupOffsetsRequest,
    _version: i16,
    az: &Authz,
) -> DeleteShareGroupOffsetsResponse {
    let id = req.group_id.0.to_string();
    if !az.group(AclOperation::Delete, &id) {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED);
    }
    if let Err((code, msg)) = broker.groups.share_admin_check(&id, true) {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str(msg)));
    }
    let mut responses = Vec::new();
    for t in &req.topics {
        let name = t.topic_name.0.to_string();
        let out =
            DeleteShareGroupOffsetsResponseTopic::default().with_topic_name(t.topic_name.clone());
        let Some(topic) = broker.topics.get(&name) else {
            responses.push(
                out.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)
                    .with_error_message(Some(str(format!("no topic {name}")))),
            );
            continue;
        };
        let requests = (0..topic.partition_count())
            .map(|p| Request {
                key: (id.clone(), name.clone(), p),
                op: Op::Delete,
            })
            .collect();
        let failed = run(broker, requests)
            .await
            .into_iter()
            .find_map(Result::err);
        let out = out.with_topic_id(topic.uuid());
        responses.push(match failed {
            None => out,
            Some((code, msg)) => out.with_error_code(code).with_error_message(Some(str(msg))),
        });
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(responses)
}
