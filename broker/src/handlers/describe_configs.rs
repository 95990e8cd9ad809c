//! DescribeConfigs (32): topic and group configs (set and default) and broker configs
//! (`broker_config`: the dynamic cluster defaults, or every config of this broker with the
//! value in effect); synonyms and documentation when the request asks for them. Needs
//! DESCRIBE_CONFIGS on each resource (`alter_configs::config_denied`).

use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use phxq_protocol::errors;

use crate::broker::Broker;
use crate::handlers::alter_configs::{config_denied, BROKER, GROUP, GROUP_LIBRDKAFKA, TOPIC};
use crate::handlers::{broker_config, str, topic_config};
use crate::security::acl::{AclOperation, Authz};

pub fn handle(
    broker: &Broker,
    req: DescribeConfigsRequest,
    _version: i16,
    az: &Authz,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let keys = r.configuration_keys.as_deref();
            let (synonyms, docs) = (req.include_synonyms, req.include_documentation);
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let denied = config_denied(
                az,
                AclOperation::DescribeConfigs,
                r.resource_type,
                &r.resource_name,
            );
            if let Some((code, msg)) = denied {
                return result
                    .with_error_code(code)
                    .with_error_message(Some(str(msg)));
            }
            match r.resource_type {
                TOPIC => match broker.topics.get(&r.resource_name) {
                    Some(t) => result.with_configs(topic_config::describe_topic(
                        broker, &t, keys, synonyms, docs,
                    )),
                    None => result
                        .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(Some(str(format!(
                            "topic {} does not exist",
                            &*r.resource_name
                        )))),
                },
                GROUP | GROUP_LIBRDKAFKA => result.with_configs(topic_config::describe_group(
                    broker,
                    &r.resource_name,
                    keys,
                )),
                BROKER => {
                    match broker_config::describe(broker, &r.resource_name, keys, synonyms, docs) {
                        Ok(configs) => result.with_configs(configs),
                        Err(msg) => result
                            .with_error_code(errors::INVALID_REQUEST)
                            .with_error_message(Some(str(msg))),
                    }
                }
                other => result
                    .with_error_code(errors::INVALID_REQUEST)
                    .with_error_message(Some(str(format!(
                        "resource type {other} is not supported"
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
