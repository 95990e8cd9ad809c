//! CreateTopics (19): create topics with a partition count (or the broker default for -1)
//! and a replication factor up to the store groups' (-1: theirs), or with manual replica
//! assignments mapped onto store groups (`placement.rs`), and topic configs phxq honours.
//! `validate_only` checks everything and creates nothing. Needs CREATE on the cluster or
//! on the topic, else TOPIC_AUTHORIZATION_FAILED.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use tracing::info;

use crate::broker::Broker;
use crate::handlers::{str, topic_config};
use crate::security::acl::{AclOperation, Authz};
use crate::topics::TopicError;

pub async fn handle(
    broker: &Broker,
    req: CreateTopicsRequest,
    _version: i16,
    az: &Authz,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let cluster_create = az.cluster(AclOperation::Create);
    for t in req.topics {
        let name = t.name.0.to_string();
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if !cluster_create && !az.topic(AclOperation::Create, &name) {
            results.push(
                result
                    .with_error_code(phxq_protocol::errors::TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message(Some(str(
                        "creating a topic needs CREATE on the cluster or the topic",
                    ))),
            );
            continue;
        }
        let partitions = if t.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            t.num_partitions
        };
        let assignments: Vec<(i32, Vec<i32>)> = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        let outcome =
            if !assignments.is_empty() && (t.num_partitions != -1 || t.replication_factor != -1) {
                Err(TopicError::InvalidRequest(
                    "both numPartitions or replicationFactor and replicasAssignments were set; \
                 both cannot be used at the same time"
                        .into(),
                ))
            } else if t.replication_factor != -1
                && !(1..=broker.replication_factor()).contains(&t.replication_factor)
            {
                // Every partition gets its store group's replicas: asking for fewer is served
                // with more (never less durable than asked), asking for more cannot be.
                Err(TopicError::InvalidReplicationFactor(format!(
                    "replication factor {} is not available: partitions have {} replicas here",
                    t.replication_factor,
                    broker.replication_factor()
                )))
            } else {
                let configs: BTreeMap<String, String> = t
                    .configs
                    .into_iter()
                    .filter_map(|c| c.value.map(|v| (c.name.to_string(), v.to_string())))
                    .collect();
                broker
                    .topics
                    .create(
                        broker,
                        &name,
                        partitions,
                        &assignments,
                        configs,
                        req.validate_only,
                    )
                    .await
            };
        results.push(match outcome {
            Ok(topic) => {
                if !req.validate_only {
                    info!(topic = %name, partitions = topic.partition_count(), "created topic");
                }
                let configs = topic_config::describe_topic(broker, &topic, None, false, false)
                    .into_iter()
                    .map(|c| {
                        CreatableTopicConfigs::default()
                            .with_name(c.name)
                            .with_value(c.value)
                            .with_config_source(c.config_source)
                            .with_read_only(c.read_only)
                    })
                    .collect();
                result
                    .with_topic_id(topic.uuid())
                    .with_num_partitions(topic.partition_count())
                    .with_replication_factor(broker.replication_factor())
                    .with_configs(Some(configs))
            }
            Err(e) => {
                let message = match &e {
                    TopicError::AlreadyExists => format!("Topic '{name}' already exists."),
                    e => e.to_string(),
                };
                result
                    .with_error_code(e.code())
                    .with_error_message(Some(str(message)))
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}
