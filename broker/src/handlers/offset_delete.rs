//! OffsetDelete (47): removes a group's committed offsets for some partitions, refused with
//! GROUP_SUBSCRIBED_TO_TOPIC for topics a live member is subscribed to.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::Broker;
use crate::groups::errors::*;

pub async fn handle(
    broker: &Broker,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let exists = |t: &str, p: i32| {
        broker
            .topics
            .get(t)
            .is_some_and(|t| p >= 0 && p < t.partition_count())
    };
    // Unknown partitions are answered here; the others go to the coordinator.
    let known: Vec<Vec<bool>> = req
        .topics
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| exists(&t.name.0, p.partition_index))
                .collect()
        })
        .collect();
    let tps: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&known)
        .flat_map(|(t, k)| {
            t.partitions
                .iter()
                .zip(k)
                .filter(|(_, known)| **known)
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
        .zip(known)
        .map(|(t, k)| {
            let partitions = t
                .partitions
                .iter()
                .zip(k)
                .map(|(p, known)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(if known {
                            codes.next().unwrap_or(NONE)
                        } else {
                            UNKNOWN_TOPIC_OR_PARTITION
                        })
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
