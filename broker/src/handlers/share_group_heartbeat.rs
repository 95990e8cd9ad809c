//! ShareGroupHeartbeat (76, KIP-932): join, stay in and leave a share group; the answer
//! carries the partitions the member fetches from (`share/group.rs`). Topics travel by id.
//! Needs READ on the group (else GROUP_AUTHORIZATION_FAILED).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};

use crate::broker::Broker;
use crate::groups::consumer_protocol;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};
use crate::share::assignor::TopicPartition;
use crate::share::group::ShareHeartbeat;

pub async fn handle(
    broker: &Broker,
    req: ShareGroupHeartbeatRequest,
    _version: i16,
    client_id: &str,
    peer: Option<SocketAddr>,
    az: &Authz,
) -> ShareGroupHeartbeatResponse {
    if !az.group(AclOperation::Read, &req.group_id.0) {
        return ShareGroupHeartbeatResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED);
    }
    let hb = ShareHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|s| s.to_string()),
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|t| t.0.to_string()).collect()),
        client_id: client_id.to_string(),
        client_host: super::client_host(peer),
    };
    match broker.groups.share_heartbeat(&req.group_id.0, hb).await {
        Ok(r) => ShareGroupHeartbeatResponse::default()
            .with_member_id(Some(str(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| assignment(broker, &a))),
        Err((code, message)) => {
            tracing::debug!(group = %&*req.group_id.0, code, "share group heartbeat refused: {message}");
            ShareGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_error_message((!message.is_empty()).then(|| str(message)))
        }
    }
}

/// Partitions grouped by topic id.
fn assignment(broker: &Broker, parts: &BTreeSet<TopicPartition>) -> Assignment {
    Assignment::default().with_topic_partitions(
        consumer_protocol::grouped(parts)
            .into_iter()
            .filter_map(|(t, ps)| {
                let topic = broker.topics.get(&t)?;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(topic.uuid())
                        .with_partitions(ps),
                )
            })
            .collect(),
    )
}
