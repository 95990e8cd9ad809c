//! ConsumerGroupDescribe (69, KIP-848): a consumer group's state, epochs, assignor and
//! members with their current and target assignments. A classic group, or none, gets
//! GROUP_ID_NOT_FOUND, as in Kafka.
//!
//! phxq adds what the scheduler measured in a tagged field of each described group
//! ([`SCHEDULER_TAG`], JSON: per member its consume rate, time since its last progress and
//! backlog; the last decision and why). Kafka clients skip tagged fields they do not know;
//! `phxq group describe` shows them.
//! Needs DESCRIBE on each group (else GROUP_AUTHORIZATION_FAILED).

use std::collections::BTreeSet;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use crate::broker::Broker;
use crate::groups::consumer_coordinator::ConsumerGroupView;
use crate::groups::consumer_protocol::{self, TopicPartition};
use crate::groups::errors::*;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz, ResourceType};

/// The tag of phxq's scheduler figures in a described group.
pub const SCHEDULER_TAG: i32 = 0x7068;

pub fn handle(
    broker: &Broker,
    req: ConsumerGroupDescribeRequest,
    _version: i16,
    az: &Authz,
) -> ConsumerGroupDescribeResponse {
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let g = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(az.operations(
                    req.include_authorized_operations,
                    ResourceType::Group,
                    &id.0,
                ));
            if !az.group(AclOperation::Describe, &id.0) {
                return g
                    .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED)
                    .with_authorized_operations(crate::security::acl::authz::OPERATIONS_NOT_ASKED);
            }
            match broker.groups.consumer_describe(&id.0) {
                Ok(Some(view)) => described(broker, g, view),
                Ok(None) => g
                    .with_error_code(GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(str(format!("group {} not found", &*id.0))))
                    .with_group_state(str("Dead")),
                Err(GROUP_ID_NOT_FOUND) => g
                    .with_error_code(GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(str(format!(
                        "group {} is not a consumer group",
                        &*id.0
                    )))),
                Err(code) => g.with_error_code(code),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn described(broker: &Broker, g: DescribedGroup, view: ConsumerGroupView) -> DescribedGroup {
    let figures = serde_json::json!({
        "assignor": view.assignor,
        "last_decision": view.last_decision.as_ref().map(|(ago, why)| serde_json::json!({"ms_ago": ago, "reason": why})),
        "members": view.members.iter().map(|m| (m.member_id.clone(), serde_json::json!({
            "state": m.state.name(),
            "consume_rate": m.consume_rate,
            "idle_ms": m.idle_ms,
            "backlog": m.backlog,
            "revoking": m.revoking.iter().map(|(t, p)| format!("{t}:{p}")).collect::<Vec<_>>(),
        }))).collect::<serde_json::Map<_, _>>(),
    });
    let mut g = g
        .with_group_state(str(view.state))
        .with_group_epoch(view.group_epoch)
        .with_assignment_epoch(view.assignment_epoch)
        .with_assignor_name(str(view.assignor.clone()))
        .with_members(
            view.members
                .into_iter()
                .map(|m| {
                    Member::default()
                        .with_member_id(str(m.member_id))
                        .with_instance_id(m.instance_id.map(str))
                        .with_rack_id(m.rack_id.map(str))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(str(m.client_id))
                        .with_client_host(str(m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed_topic_names
                                .into_iter()
                                .map(|t| TopicName(str(t)))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(m.subscribed_topic_regex.map(str))
                        .with_assignment(assignment(broker, &m.assigned))
                        .with_target_assignment(assignment(broker, &m.target))
                        .with_member_type(1)
                })
                .collect(),
        );
    g.unknown_tagged_fields
        .insert(SCHEDULER_TAG, Bytes::from(figures.to_string()));
    g
}

fn assignment(broker: &Broker, parts: &BTreeSet<TopicPartition>) -> Assignment {
    Assignment::default().with_topic_partitions(
        consumer_protocol::grouped(parts)
            .into_iter()
            .map(|(t, ps)| {
                TopicPartitions::default()
                    .with_topic_id(broker.topics.get(&t).map(|t| t.uuid()).unwrap_or_default())
                    .with_topic_name(TopicName(str(t)))
                    .with_partitions(ps)
            })
            .collect(),
    )
}
