//! CreatePartitions (37): grow topics to a larger partition count, the new partitions
//! placed by load or by manual replica assignments (`placement.rs`); `validate_only`
//! checks and changes nothing.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use tracing::info;

use phxq_protocol::errors;

use crate::broker::Broker;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};

pub async fn handle(
    broker: &Broker,
    req: CreatePartitionsRequest,
    _version: i16,
    az: &Authz,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !az.topic(AclOperation::Alter, &t.name.0) {
            results.push(
                result
                    .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message(Some(str("adding partitions needs ALTER on the topic"))),
            );
            continue;
        }
        let first = broker
            .topics
            .get(&t.name.0)
            .map_or(0, |topic| topic.partition_count());
        let assignments: Vec<(i32, Vec<i32>)> = t
            .assignments
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, a)| (first + i as i32, a.broker_ids.iter().map(|b| b.0).collect()))
            .collect();
        let outcome = broker
            .topics
            .add_partitions(broker, &t.name.0, t.count, &assignments, req.validate_only)
            .await;
        results.push(match outcome {
            Ok(_) => {
                if !req.validate_only {
                    info!(topic = %t.name.0, count = t.count, "partitions added");
                }
                result
            }
            Err(e) => result
                .with_error_code(e.code())
                .with_error_message(Some(str(e.to_string()))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
