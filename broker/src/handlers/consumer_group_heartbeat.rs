//! ConsumerGroupHeartbeat (68, KIP-848): join, stay in, reconcile with, and leave a
//! consumer group whose assignment the broker computes (`groups/consumer`, `scheduler/`).
//! Topics travel by id; owned partitions of topics that no longer exist are dropped. v0
//! lets the broker pick the member id; from v1 the client does (KIP-1082). Needs READ on
//! the group (else GROUP_AUTHORIZATION_FAILED).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use crate::broker::Broker;
use crate::groups::consumer::Heartbeat;
use crate::groups::consumer_protocol::{self, TopicPartition};
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};

pub async fn handle(
    broker: &Broker,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    peer: Option<SocketAddr>,
    az: &Authz,
) -> ConsumerGroupHeartbeatResponse {
    if !az.group(AclOperation::Read, &req.group_id.0) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED);
    }
    let mut member_id = req.member_id.to_string();
    if member_id.is_empty() && version == 0 && req.member_epoch == 0 {
        member_id = uuid::Uuid::new_v4().simple().to_string();
    }
    let owned = req.topic_partitions.map(|tps| {
        tps.into_iter()
            .filter_map(|t| {
                broker
                    .topics
                    .get_by_id(t.topic_id)
                    .map(|topic| (topic, t.partitions))
            })
            .flat_map(|(topic, ps)| ps.into_iter().map(move |p| (topic.name.to_string(), p)))
            .collect::<BTreeSet<TopicPartition>>()
    });
    let hb = Heartbeat {
        member_id,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        member_epoch: req.member_epoch,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: client_id.to_string(),
        client_host: super::client_host(peer),
    };
    match broker.groups.consumer_heartbeat(&req.group_id.0, hb).await {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| assignment(broker, &a))),
        Err((code, message)) => {
            tracing::debug!(group = %&*req.group_id.0, code, "consumer group heartbeat refused: {message}");
            ConsumerGroupHeartbeatResponse::default()
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
