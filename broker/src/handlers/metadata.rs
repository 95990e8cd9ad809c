//! Metadata (3): brokers, cluster id, controller, and topics with their partitions'
//! leaders and replicas. Creates requested topics that do not exist when the client allows
//! it (v4+ `allow_auto_topic_creation`, always before v4) and the broker is configured to.
//!
//! Authorization: a listing of all topics leaves out those the principal may not
//! DESCRIBE; a topic asked for by name or id without DESCRIBE is TOPIC_AUTHORIZATION_FAILED,
//! and so is one that would be auto-created without CREATE on the cluster or the topic.
//! The `*_authorized_operations` fields are filled when asked for (v8+).

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use phxq_protocol::errors;
use tracing::info;

use crate::broker::Broker;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz, ResourceType};
use crate::topics::{validate_name, Topic};

/// `listener`: the listener the client connected to; brokers are given at their
/// addresses on it.
pub async fn handle(
    broker: &Broker,
    req: MetadataRequest,
    version: i16,
    listener: &str,
    az: &Authz,
) -> MetadataResponse {
    let ops = req.include_topic_authorized_operations;
    let describe = |t: &Topic| {
        describe(broker, t).with_topic_authorized_operations(az.operations(
            ops,
            ResourceType::Topic,
            &t.name,
        ))
    };
    let mut topics = Vec::new();
    // All topics: null, or an empty list before v1.
    let named = req.topics.filter(|l| !(l.is_empty() && version == 0));
    match named {
        None => topics.extend(
            broker
                .topics
                .all()
                .iter()
                .filter(|t| az.topic(AclOperation::Describe, &t.name))
                .map(|t| describe(t)),
        ),
        Some(list) => {
            let allow_create = version < 4 || req.allow_auto_topic_creation;
            for requested in list {
                topics.push(match requested.name {
                    Some(name) if !az.topic(AclOperation::Describe, &name.0) => {
                        MetadataResponseTopic::default()
                            .with_name(Some(name))
                            .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED)
                    }
                    Some(name) => {
                        let may_create = az.cluster(AclOperation::Create)
                            || az.topic(AclOperation::Create, &name.0);
                        by_name(broker, &name.0, allow_create, may_create)
                            .await
                            .map_or_else(|unnamed| unnamed, |t| describe(&t))
                    }
                    None => match broker.topics.get_by_id(requested.topic_id) {
                        Some(t) if az.topic(AclOperation::Describe, &t.name) => describe(&t),
                        Some(_) => MetadataResponseTopic::default()
                            .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED)
                            .with_topic_id(requested.topic_id),
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
        .with_cluster_authorized_operations(az.operations(
            req.include_cluster_authorized_operations,
            ResourceType::Cluster,
            crate::security::acl::model::CLUSTER_NAME,
        ))
        .with_topics(topics)
}

/// The topic named `name`, auto-created if allowed; `Err` is the answer when there is none.
async fn by_name(
    broker: &Broker,
    name: &str,
    allow_create: bool,
    may_create: bool,
) -> Result<std::sync::Arc<Topic>, MetadataResponseTopic> {
    let named = |code| {
        Err(MetadataResponseTopic::default()
            .with_name(Some(TopicName(str(name))))
            .with_error_code(code))
    };
    if let Some(t) = broker.topics.get(name) {
        return Ok(t);
    }
    if let Err(e) = validate_name(name) {
        return named(e.code());
    }
    if !(allow_create && broker.config.auto_create_topics) {
        return named(errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if !may_create {
        return named(errors::TOPIC_AUTHORIZATION_FAILED);
    }
    let partitions = broker.config.num_partitions;
    match broker
        .topics
        .create(broker, name, partitions, &[], BTreeMap::new(), false)
        .await
    {
        Ok(t) => {
            info!(topic = name, partitions, "auto-created topic");
            Ok(t)
        }
        // Created concurrently by another request: describe what is there now.
        Err(crate::topics::TopicError::AlreadyExists) => match broker.topics.get(name) {
            Some(t) => Ok(t),
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
                .with_leader_epoch(r.leader_epoch)
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
        .with_topic_authorized_operations(crate::security::acl::authz::OPERATIONS_NOT_ASKED)
        .with_partitions(partitions)
}
