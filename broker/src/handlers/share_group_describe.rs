//! ShareGroupDescribe (77, KIP-932): a share group's state, epochs and members with their
//! assignments. A group of another type, or none, gets GROUP_ID_NOT_FOUND, as in Kafka.
//! Needs DESCRIBE on each group (else GROUP_AUTHORIZATION_FAILED).

use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName};

use crate::broker::Broker;
use crate::groups::consumer_protocol;
use crate::groups::errors::*;
use crate::groups::share_coordinator::ShareGroupView;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz, ResourceType};

pub fn handle(
    broker: &Broker,
    req: ShareGroupDescribeRequest,
    _version: i16,
    az: &Authz,
) -> ShareGroupDescribeResponse {
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
            match broker.groups.share_describe(&id.0) {
                Ok(Some(view)) => described(broker, g, view),
                Ok(None) => g
                    .with_error_code(GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(str(format!("Group {} not found.", &*id.0))))
                    .with_group_state(str("Dead")),
                Err(GROUP_ID_NOT_FOUND) => g
                    .with_error_code(GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(str(format!(
                        "Group {} is not a share group.",
                        &*id.0
                    )))),
                Err(code) => g.with_error_code(code),
            }
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

fn described(broker: &Broker, g: DescribedGroup, view: ShareGroupView) -> DescribedGroup {
    g.with_group_state(str(view.state))
        .with_group_epoch(view.group_epoch)
        .with_assignment_epoch(view.assignment_epoch)
        .with_assignor_name(str("simple"))
        .with_members(
            view.members
                .into_iter()
                .map(|m| {
                    let parts = consumer_protocol::grouped(&m.assigned)
                        .into_iter()
                        .filter_map(|(t, ps)| {
                            let topic = broker.topics.get(&t)?;
                            Some(
                                TopicPartitions::default()
                                    .with_topic_id(topic.uuid())
                                    .with_topic_name(TopicName(str(t)))
                                    .with_partitions(ps),
                            )
                        })
                        .collect();
                    Member::default()
                        .with_member_id(str(m.member_id))
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
                        .with_assignment(Assignment::default().with_topic_partitions(parts))
                })
                .collect(),
        )
}
