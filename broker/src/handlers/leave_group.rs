//! LeaveGroup (13): members leave (v3+: several at once, static members by instance id);
//! their partitions are released and the group rebalances. Needs READ on the group.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::broker::Broker;
use crate::groups::errors::NONE;
use crate::security::acl::{AclOperation, Authz};

pub fn handle(
    broker: &Broker,
    req: LeaveGroupRequest,
    version: i16,
    az: &Authz,
) -> LeaveGroupResponse {
    if !az.group(AclOperation::Read, &req.group_id.0) {
        return LeaveGroupResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED);
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match broker.groups.leave(&req.group_id.0, &members) {
        Err(code) => LeaveGroupResponse::default().with_error_code(code),
        Ok(codes) if version < 3 => {
            LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(NONE))
        }
        Ok(codes) => LeaveGroupResponse::default().with_members(
            req.members
                .into_iter()
                .zip(codes)
                .map(|(m, code)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(code)
                })
                .collect(),
        ),
    }
}
