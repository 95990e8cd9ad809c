//! Metadata (3): brokers, cluster id, controller, and topics with their partitions'
//! leaders and replicas. Creates requested topics that do not exist when the client allows
//! it (v4+ `allow_auto_topic_creation`, always before v4) and the broker is configured to.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use phxq_protocol::errors;
use tracing::info;

use crate::broker::Broker;
use crate::handlers::str;
use crate::topics::{validate_name, Topic};

/// `listener`: the listener the client connected to; brokers are given at their
/// addresses on it.
pub async fn handle(
    broker: &Broker,
    req: MetadataRequest,
    version: i16,
    listener: &str,
) -> MetadataResponse {
    let mut topics = Vec::new();
    match req.topics {
        // All topics: null, or an empty list before v1.
        None => topics.extend(broker.topics.all().iter().map(|t| describe(broker, t))),
        Some(list) if list.is_empty() && version == 0 => {
            topics.extend(broker.topics.all().iter().map(|t| describe(broker, t)))
        }
        Some(list) => {
            let allow_create = version < 4 || req.allow_auto_topic_creation;
            for requested in list {
                topics.push(match requested.name {
                    Some(name) => by_name(broker, &name.0, allow_create).await,
                    None => match broker.topics.get_by_id(requested.topic_id) {
                        Some(t) => describe(broker, &t),
                        None => MetadataResponseTopic::default()
                            .with_error_code(errors::UNKNOWN_TOPIC_ID)
                            .with_topic_id(requested.topic_id),
                    },
                });
            }
        }
    }
    let brokers = broker
        .brokers_on(listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_cluster_authorized_operations(i32::MIN)
        .with_topics(topics)
}

async fn by_name(broker: &Broker, name: &str, allow_create: bool) -> MetadataResponseTopic {
    let named = |code| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str(name))))
            .with_error_code(code)
    };
    if let Some(t) = broker.topics.get(name) {
        return describe(broker, &t);
    }
    if let Err(e) = validate_name(name) {
        return named(e.code());
    }
    if !(allow_create && broker.config.auto_create_topics) {
        return named(errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let partitions = broker.config.num_partitions;
    match broker
        .topics
        .create(broker, name, partitions, &[], BTreeMap::new(), false)
        .await
    {
        Ok(t) => {
            info!(topic = name, partitions, "auto-created topic");
            describe(broker, &t)
        }
        // Created concurrently by another request: describe what is there now.
        Err(crate::topics::TopicError::AlreadyExists) => match broker.topics.get(name) {
            Some(t) => describe(broker, &t),
            None => named(errors::LEADER_NOT_AVAILABLE),
        },
        Err(e) => named(e.code()),
    }
}

/// Describes a topic: every partition's leader is its store group's leader.
pub fn describe(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let partitions = topic
        .placement
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let r = broker.replicas(*group);
            let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
            let p = MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_epoch(-1)
                .with_replica_nodes(ids(r.replicas))
                .with_isr_nodes(ids(r.isr));
            match r.leader {
                Some(l) => p.with_leader_id(BrokerId(l)),
                None => p
                    .with_error_code(errors::LEADER_NOT_AVAILABLE)
                    .with_leader_id(BrokerId(-1)),
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str(topic.name.clone()))))
        .with_topic_id(topic.uuid())
        .with_topic_authorized_operations(i32::MIN)
        .with_partitions(partitions)
}
