//! OffsetDelete (47): removes a group's committed offsets for some partitions, refused with
//! GROUP_SUBSCRIBED_TO_TOPIC for topics a live member is subscribed to. Needs DELETE on
//! the group (else GROUP_AUTHORIZATION_FAILED) and READ on each topic (else
//! TOPIC_AUTHORIZATION_FAILED).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::Broker;
use crate::groups::errors::*;
use crate::security::acl::{AclOperation, Authz};

pub async fn handle(
    broker: &Broker,
    req: OffsetDeleteRequest,
    _version: i16,
    az: &Authz,
) -> OffsetDeleteResponse {
    if !az.group(AclOperation::Delete, &req.group_id.0) {
        return OffsetDeleteResponse::default()
            .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED);
    }
    let exists = |t: &str, p: i32| {
        broker
            .topics
            .get(t)
            .is_some_and(|t| p >= 0 && p < t.partition_count())
    };
    // Unknown or unreadable partitions are answered here; the others go to the coordinator.
    let answered: Vec<Vec<Option<i16>>> = req
        .topics
        .iter()
        .map(|t| {
            let readable = az.topic(AclOperation::Read, &t.name.0);
            t.partitions
                .iter()
                .map(|p| {
                    if !readable {
                        Some(phxq_protocol::errors::TOPIC_AUTHORIZATION_FAILED)
                    } else if !exists(&t.name.0, p.partition_index) {
                        Some(UNKNOWN_TOPIC_OR_PARTITION)
                    } else {
                        None
                    }
                })
                .collect()
        })
        .collect();
    let tps: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&answered)
        .flat_map(|(t, k)| {
            t.partitions
                .iter()
                .zip(k)
                .filter(|(_, answered)| answered.is_none())
                .map(|(p, _)| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let mut codes = match broker.groups.delete_offsets(&req.group_id.0, &tps).await {
        Ok(c) => c.into_iter(),
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let topics = req
        .topics
        .into_iter()
        .zip(answered)
        .map(|(t, k)| {
            let partitions = t
                .partitions
                .iter()
                .zip(k)
                .map(|(p, answered)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(answered.unwrap_or_else(|| codes.next().unwrap_or(NONE)))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
