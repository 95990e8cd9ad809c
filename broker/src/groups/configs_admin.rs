//! `phxq group config GROUP [--set NAME=VALUE]... [--delete NAME]...`: shows a group's
//! configs (DescribeConfigs on the GROUP resource) after applying the changes asked for
//! (IncrementalAlterConfigs), as `kafka-configs --entity-type groups` does.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};

use super::admin::{s, table};
use super::errors::NONE;
use crate::handlers::alter_configs::GROUP;
use crate::kafka_client::KafkaClient;

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// The group id.
    pub group: String,
    /// Set a group config (repeatable), e.g. phxq.consumer.records.per.sec=1000.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Remove a group config (back to its default; repeatable).
    #[arg(long = "delete", value_name = "NAME")]
    pub delete: Vec<String>,
    /// `{"group": ..., "configs": [{"name", "value", "source"}]}`.
    #[arg(long)]
    pub json: bool,
}

const SET: i8 = 0;
const DELETE: i8 = 1;

pub fn run(bootstrap: &str, a: &ConfigArgs) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    let mut ops = Vec::new();
    for kv in &a.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set takes NAME=VALUE, got {kv:?}"))?;
        ops.push(
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(SET)
                .with_value(Some(s(v))),
        );
    }
    for k in &a.delete {
        ops.push(
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(DELETE),
        );
    }
    if !ops.is_empty() {
        let r = c.send(
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(GROUP)
                    .with_resource_name(s(&a.group))
                    .with_configs(ops),
            ]),
            1,
        )?;
        for e in &r.responses {
            anyhow::ensure!(
                e.error_code == NONE,
                "not changed (Kafka error code {}): {}",
                e.error_code,
                e.error_message.as_deref().unwrap_or("")
            );
        }
    }
    let r = c.send(
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(GROUP)
            .with_resource_name(s(&a.group))
            .with_configuration_keys(None)]),
        4,
    )?;
    let mut rows = vec![["NAME", "VALUE", "SOURCE"].map(String::from).to_vec()];
    for res in r.results {
        anyhow::ensure!(
            res.error_code == NONE,
            "DescribeConfigs failed with Kafka error code {}: {}",
            res.error_code,
            res.error_message.as_deref().unwrap_or("")
        );
        for e in res.configs {
            rows.push(vec![
                e.name.to_string(),
                e.value.as_deref().unwrap_or("-").to_string(),
                match e.config_source {
                    8 => "group",
                    4 => "broker",
                    _ => "default",
                }
                .to_string(),
            ]);
        }
    }
    if a.json {
        // Config values stay strings (as Kafka's are); an unset one is null.
        let configs: Vec<serde_json::Value> = rows[1..]
            .iter()
            .map(|r| {
                let value = (r[1] != "-").then(|| r[1].clone());
                serde_json::json!({ "name": r[0], "value": value, "source": r[2] })
            })
            .collect();
        let v = serde_json::json!({ "group": a.group, "configs": configs });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    Ok(table(&rows))
}
