//! JoinGroup (11): a member joins (or rejoins) a group and waits for the rebalance; the
//! leader gets every member's protocol metadata. v4+ first join answers MEMBER_ID_REQUIRED
//! with the member's id. The request is parked until the coordinator completes the
//! rebalance (see `groups/rebalance.rs`). Needs READ on the group.

use std::net::SocketAddr;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use crate::broker::Broker;
use crate::groups::rebalance::JoinRequest;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};

pub async fn handle(
    broker: &Broker,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    peer: Option<SocketAddr>,
    az: &Authz,
) -> JoinGroupResponse {
    if !az.group(AclOperation::Read, &req.group_id.0) {
        return JoinGroupResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED)
            .with_generation_id(-1)
            .with_protocol_name((version < 7).then(|| str("")))
            .with_member_id(req.member_id);
    }
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: super::client_host(peer),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let r = broker.groups.join(&req.group_id.0, join).await;
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str(m.member_id))
                .with_group_instance_id(m.instance_id.filter(|_| version >= 5).map(str))
                .with_metadata(m.metadata)
        })
        .collect();
    // protocol_name is nullable only from v7 on.
    let protocol_name = match r.protocol_name {
        None if version < 7 => Some(String::new()),
        p => p,
    };
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.map(str))
        .with_protocol_name(protocol_name.map(str))
        .with_leader(str(r.leader))
        .with_member_id(str(r.member_id))
        .with_members(members)
}
