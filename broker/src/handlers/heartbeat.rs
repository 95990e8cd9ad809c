//! Heartbeat (12): keeps a member's session alive and tells it to rejoin when a rebalance
//! is in progress. Also where a change in a subscribed topic's partition count is noticed
//! (it starts a rebalance). Needs READ on the group.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use crate::security::acl::{AclOperation, Authz};

pub fn handle(
    broker: &Broker,
    req: HeartbeatRequest,
    _version: i16,
    az: &Authz,
) -> HeartbeatResponse {
    if !az.group(AclOperation::Read, &req.group_id.0) {
        return HeartbeatResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED);
    }
    let counts = |t: &str| broker.topics.get(t).map(|t| t.partition_count());
    let code = broker.groups.heartbeat(
        &req.group_id.0,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
        &counts,
    );
    HeartbeatResponse::default().with_error_code(code)
}
