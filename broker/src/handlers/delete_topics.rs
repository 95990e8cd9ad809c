//! DeleteTopics (20): delete topics by name; their partitions and data go with them.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use tracing::info;

use phxq_protocol::errors;

use crate::broker::Broker;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};

pub async fn handle(
    broker: &Broker,
    req: DeleteTopicsRequest,
    _version: i16,
    az: &Authz,
) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6+ in `topics` (by name or id).
    let mut names: Vec<TopicName> = req.topic_names;
    for t in req.topics {
        match (t.name, broker.topics.get_by_id(t.topic_id)) {
            (Some(n), _) => names.push(n),
            (None, Some(topic)) => names.push(TopicName(str(topic.name.clone()))),
            (None, None) => {}
        }
    }
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let result = DeletableTopicResult::default().with_name(Some(name.clone()));
        if !az.topic(AclOperation::Delete, &name.0) {
            responses.push(result.with_error_code(errors::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        responses.push(match broker.topics.delete(broker, &name.0).await {
            Ok(topic) => {
                info!(topic = %name.0, "deleted topic");
                result.with_topic_id(topic.uuid())
            }
            Err(e) => result
                .with_error_code(e.code())
                .with_error_message(Some(str(e.to_string()))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
