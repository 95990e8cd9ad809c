//! SyncGroup (14): members wait for their assignment; the leader's request carries
//! everyone's. The assignment also sets the group's partition locks (see
//! `groups/locks.rs`). Needs READ on the group.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use crate::broker::Broker;
use crate::groups::rebalance::SyncRequest;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};

pub async fn handle(
    broker: &Broker,
    req: SyncGroupRequest,
    version: i16,
    az: &Authz,
) -> SyncGroupResponse {
    if !az.group(AclOperation::Read, &req.group_id.0) {
        return SyncGroupResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED);
    }
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let counts = |t: &str| broker.topics.get(t).map(|t| t.partition_count());
    let r = broker.groups.sync(&req.group_id.0, sync, &counts).await;
    let v5 = version >= 5;
    SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_protocol_type(r.protocol_type.filter(|_| v5).map(str))
        .with_protocol_name(r.protocol_name.filter(|_| v5).map(str))
        .with_assignment(r.assignment)
}
