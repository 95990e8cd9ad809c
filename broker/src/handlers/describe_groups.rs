//! DescribeGroups (15): state, protocol and members of groups; a Stable group also shows
//! each member's subscription and assignment. An unknown group is "Dead" (v6+: with
//! GROUP_ID_NOT_FOUND), as in Kafka. Needs DESCRIBE on each group (else
//! GROUP_AUTHORIZATION_FAILED); v3+ can ask for the operations the principal may do.
//!
//! v5+ (flexible) responses also carry, in a tagged field Kafka clients skip
//! ([`SCHEDULER_TAG`], JSON), what phxq measured of each member: its consume rate, the
//! backlog of the partitions it holds and the time since its last progress, so
//! `phxq group describe` can show whether a classic group is unbalanced.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use bytes::Bytes;

use crate::broker::Broker;
use crate::groups::errors::*;
use crate::handlers::consumer_group_describe::SCHEDULER_TAG;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz, ResourceType};

pub fn handle(
    broker: &Broker,
    req: DescribeGroupsRequest,
    version: i16,
    az: &Authz,
) -> DescribeGroupsResponse {
    let ops = req.include_authorized_operations;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let g = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(az.operations(ops, ResourceType::Group, &id.0));
            if !az.group(AclOperation::Describe, &id.0) {
                return g
                    .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED)
                    .with_authorized_operations(crate::security::acl::authz::OPERATIONS_NOT_ASKED);
            }
            match broker.groups.describe(&id.0) {
                Err(code) => g.with_error_code(code),
                Ok(None) if version >= 6 => g
                    .with_error_code(GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(str(format!("group {} not found", &*id.0))))
                    .with_group_state(str("Dead")),
                Ok(None) => g.with_group_state(str("Dead")),
                Ok(Some(d)) => {
                    let mut figures = serde_json::Map::new();
                    for m in &d.members {
                        figures.insert(
                            m.member_id.clone(),
                            serde_json::json!({
                                "consume_rate": m.consume_rate,
                                "backlog": m.backlog,
                                "idle_ms": m.idle_ms,
                            }),
                        );
                    }
                    let mut g = g
                        .with_group_state(str(d.state.name()))
                        .with_protocol_type(str(d.protocol_type))
                        .with_protocol_data(str(d.protocol_name))
                        .with_members(
                            d.members
                                .into_iter()
                                .map(|m| {
                                    DescribedGroupMember::default()
                                        .with_member_id(str(m.member_id))
                                        .with_group_instance_id(m.instance_id.map(str))
                                        .with_client_id(str(m.client_id))
                                        .with_client_host(str(m.client_host))
                                        .with_member_metadata(m.metadata)
                                        .with_member_assignment(m.assignment)
                                })
                                .collect(),
                        );
                    if version >= 5 {
                        let figures = serde_json::json!({ "members": figures });
                        g.unknown_tagged_fields
                            .insert(SCHEDULER_TAG, Bytes::from(figures.to_string()));
                    }
                    g
                }
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
