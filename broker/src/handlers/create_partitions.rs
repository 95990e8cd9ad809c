//! CreatePartitions (37): grow topics to a larger partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use tracing::info;

use crate::broker::Broker;
use crate::handlers::str;
use crate::topics::TopicError;

pub async fn handle(
    broker: &Broker,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let outcome = if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err(TopicError::InvalidPartitions(
                "manual replica assignment is not supported".into(),
            ))
        } else {
            broker
                .topics
                .add_partitions(broker, &t.name.0, t.count, req.validate_only)
                .await
        };
        results.push(match outcome {
            Ok(_) => {
                info!(topic = %t.name.0, count = t.count, "partitions added");
                result
            }
            Err(e) => result
                .with_error_code(e.code())
                .with_error_message(Some(str(e.to_string()))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
