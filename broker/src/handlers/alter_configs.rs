//! AlterConfigs (33) and IncrementalAlterConfigs (44): change the configs of topics and
//! of consumer groups (the GROUP resource, `groups::configs`).
//!
//! AlterConfigs replaces a resource's whole set of configs (what is not listed goes back
//! to its default); IncrementalAlterConfigs applies SET and DELETE to single configs, and
//! APPEND and SUBTRACT to the LIST topic configs (`config_ops`, `topic_configs`); group
//! configs take SET and DELETE only. The BROKER resource changes the dynamic broker
//! configs (`broker_configs`) of the cluster ("") or of one broker ("<id>"); read-only
//! names, unknown names and invalid values are INVALID_REQUEST, as Kafka answers.
//!
//! Authorization: ALTER_CONFIGS on the topic, the group or (BROKER) the cluster, else
//! TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED; DescribeConfigs the same with
//! DESCRIBE_CONFIGS ([`config_denied`]).

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use phxq_protocol::errors;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::broker_configs::ConfigError as BrokerConfigError;
use crate::config_ops::{self, Op};
use crate::groups::configs::ConfigError;
use crate::handlers::{broker_config, str};
use crate::security::acl::{AclOperation, Authz};
use crate::topic_configs;

pub const TOPIC: i8 = 2;
/// librdkafka's own code for groups (`RD_KAFKA_RESOURCE_GROUP`), which some versions put
/// on the wire unmapped; Kafka's config resource type for groups is 32.
pub const GROUP_LIBRDKAFKA: i8 = 3;
pub const BROKER: i8 = 4;
pub const GROUP: i8 = 32;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// What to do to one resource's configs.
enum Change {
    /// AlterConfigs: these are all the configs the resource has afterwards.
    Replace(BTreeMap<String, String>),
    /// IncrementalAlterConfigs.
    Ops(Vec<Op>),
}

impl Change {
    fn ops(&self) -> Vec<Op> {
        match self {
            Change::Replace(all) => all
                .iter()
                .map(|(k, v)| Op::Set(k.clone(), v.clone()))
                .collect(),
            Change::Ops(ops) => ops.clone(),
        }
    }

    /// A topic's configs after the change.
    fn edit_topic(
        &self,
        current: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let base = match self {
            Change::Replace(_) => BTreeMap::new(),
            Change::Ops(_) => current.clone(),
        };
        config_ops::apply(base, &self.ops(), topic_configs::list_default)
    }
}

/// The refusal of `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config resource, if the
/// principal may not.
pub fn config_denied(
    az: &Authz,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> Option<(i16, String)> {
    let (allowed, code, what) = match resource_type {
        TOPIC => (
            az.topic(op, name),
            errors::TOPIC_AUTHORIZATION_FAILED,
            "the topic",
        ),
        GROUP | GROUP_LIBRDKAFKA => (
            az.group(op, name),
            errors::GROUP_AUTHORIZATION_FAILED,
            "the group",
        ),
        BROKER => (
            az.cluster(op),
            errors::CLUSTER_AUTHORIZATION_FAILED,
            "the cluster",
        ),
        _ => return None,
    };
    (!allowed).then(|| (code, format!("{} needs {op} on {what}", az.principal)))
}

/// Applies `change` to one resource: (error code, message).
async fn alter(
    broker: &Broker,
    az: &Authz,
    resource_type: i8,
    name: &str,
    change: Change,
    validate_only: bool,
) -> (i16, Option<String>) {
    if let Some((code, msg)) = config_denied(az, AclOperation::AlterConfigs, resource_type, name) {
        return (code, Some(msg));
    }
    let outcome = match resource_type {
        TOPIC => broker
            .topics
            .alter_configs(broker, name, |c| change.edit_topic(c), validate_only)
            .await
            .map(|_| ())
            .map_err(|e| (e.code(), e.to_string())),
        GROUP | GROUP_LIBRDKAFKA => {
            if name.is_empty() {
                return (
                    errors::INVALID_REQUEST,
                    Some("the group id is empty".into()),
                );
            }
            let ops = match &change {
                // Replace: delete every known config, then set the listed ones.
                Change::Replace(_) => crate::groups::configs::GROUP_CONFIGS
                    .iter()
                    .map(|d| Op::Delete(d.name.to_string()))
                    .chain(change.ops())
                    .collect(),
                Change::Ops(ops) => ops.clone(),
            };
            broker
                .group_configs
                .alter(
                    &broker.metadata,
                    &broker.config.groups,
                    name,
                    &ops,
                    validate_only,
                )
                .await
                .map(|_| ())
                .map_err(|e| {
                    let code = match &e {
                        ConfigError::Invalid(_) => errors::INVALID_CONFIG,
                        ConfigError::Conflict => errors::INVALID_REQUEST,
                        ConfigError::Replication(r) => crate::errors::replication_error_code(r),
                    };
                    (code, e.to_string())
                })
        }
        BROKER => {
            let level = match broker_config::level_to_alter(broker, name) {
                Ok(level) => level,
                Err(msg) => return (errors::INVALID_REQUEST, Some(msg)),
            };
            let replace = matches!(change, Change::Replace(_));
            broker
                .broker_configs
                .alter(
                    &broker.metadata,
                    level,
                    replace,
                    &change.ops(),
                    validate_only,
                )
                .await
                .map(|_| ())
                .map_err(|e| {
                    // Kafka answers INVALID_REQUEST to every broker config it refuses,
                    // read-only names and invalid values alike (KAFKA-13609).
                    let code = match &e {
                        BrokerConfigError::Invalid(_) | BrokerConfigError::Conflict => {
                            errors::INVALID_REQUEST
                        }
                        BrokerConfigError::Replication(r) => {
                            crate::errors::replication_error_code(r)
                        }
                    };
                    (code, e.to_string())
                })
        }
        other => Err((
            errors::INVALID_REQUEST,
            format!("resource type {other} has no configs to alter"),
        )),
    };
    match outcome {
        Ok(()) => {
            if !validate_only {
                info!(resource_type, name, "configs altered");
            }
            (errors::NONE, None)
        }
        Err((code, msg)) => {
            warn!(resource_type, name, code, "config change refused: {msg}");
            (code, Some(msg))
        }
    }
}

pub async fn handle(
    broker: &Broker,
    req: AlterConfigsRequest,
    _version: i16,
    az: &Authz,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let all = r
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let (code, msg) = alter(
            broker,
            az,
            r.resource_type,
            &r.resource_name,
            Change::Replace(all),
            req.validate_only,
        )
        .await;
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(msg.map(str))
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn handle_incremental(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
    az: &Authz,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let ops: Result<Vec<Op>, (i16, String)> = r
            .configs
            .iter()
            .map(|c| match (c.config_operation, &c.value) {
                (SET, Some(v)) => Ok(Op::Set(c.name.to_string(), v.to_string())),
                (SET, None) => Err((
                    errors::INVALID_REQUEST,
                    format!("SET of {} without a value", c.name.as_str()),
                )),
                (DELETE, _) => Ok(Op::Delete(c.name.to_string())),
                (APPEND, Some(v)) => Ok(Op::Append(c.name.to_string(), v.to_string())),
                (SUBTRACT, Some(v)) => Ok(Op::Subtract(c.name.to_string(), v.to_string())),
                (APPEND | SUBTRACT, None) => Err((
                    errors::INVALID_REQUEST,
                    format!("APPEND or SUBTRACT of {} without a value", c.name.as_str()),
                )),
                (op, _) => Err((
                    errors::INVALID_REQUEST,
                    format!("unknown config operation {op}"),
                )),
            })
            .collect();
        let (code, msg) = match ops {
            Ok(ops) => {
                alter(
                    broker,
                    az,
                    r.resource_type,
                    &r.resource_name,
                    Change::Ops(ops),
                    req.validate_only,
                )
                .await
            }
            Err((code, msg)) => (code, Some(msg)),
        };
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(msg.map(str))
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
