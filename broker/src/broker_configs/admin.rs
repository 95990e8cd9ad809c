//! `phxq config describe|set|delete --broker [ID] | --broker-defaults | --topic T`: broker
//! and topic configs over the Kafka protocol (DescribeConfigs, IncrementalAlterConfigs),
//! as `kafka-configs --entity-type brokers|topics` does. A broker's own configs are asked
//! of that broker (found through Metadata), as Kafka's Admin client does, so this works
//! against Kafka too.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::kafka_client::KafkaClient;

/// Whose configs.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A broker's configs: broker ID, or without one the broker --bootstrap names (then
    /// put it after the KEY=VALUE pairs, or it takes the first for an ID).
    #[arg(long, value_name = "ID", num_args = 0..=1)]
    pub broker: Option<Option<i32>>,
    /// The cluster-wide dynamic defaults of every broker.
    #[arg(long)]
    pub broker_defaults: bool,
    /// A topic's configs.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Show configs with their value, source and synonyms.
    Describe {
        #[command(flatten)]
        target: Target,
        /// `{"resource": ..., "configs": [{"name", "value", "source", "read_only",
        /// "sensitive", "synonyms": [{"name", "value", "source"}]}]}`.
        #[arg(long)]
        json: bool,
    },
    /// Set configs (dynamic broker configs take effect on every broker within seconds).
    Set {
        #[command(flatten)]
        target: Target,
        /// KEY=VALUE pairs, e.g. log.retention.ms=3600000.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Remove configs (back to the next level: cluster default, static, Kafka's default).
    Delete {
        #[command(flatten)]
        target: Target,
        /// Config names.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

/// Kafka's config resource types and IncrementalAlterConfigs operations.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        _ => "UNKNOWN",
    }
}

/// `host:port` of a broker as Metadata gives it.
fn address(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The resource to ask about and a connection to the broker to ask.
fn resolve(bootstrap: &str, t: &Target) -> anyhow::Result<(i8, String, KafkaClient)> {
    let mut c = KafkaClient::connect(bootstrap)?;
    if let Some(topic) = &t.topic {
        return Ok((TOPIC, topic.clone(), c));
    }
    if t.broker_defaults {
        return Ok((BROKER, String::new(), c));
    }
    let meta = c.send(&MetadataRequest::default().with_topics(Some(vec![])), 1)?;
    let id = match t.broker.flatten() {
        Some(id) => id,
        None => {
            let here = meta
                .brokers
                .iter()
                .find(|b| address(&b.host, b.port) == c.addr())
                .or(meta.brokers.first().filter(|_| meta.brokers.len() == 1));
            here.map(|b| b.node_id.0).ok_or_else(|| {
                anyhow::anyhow!("which broker is {}? name it: --broker ID", c.addr())
            })?
        }
    };
    let b = meta
        .brokers
        .iter()
        .find(|b| b.node_id.0 == id)
        .ok_or_else(|| anyhow::anyhow!("no broker {id} in the cluster's metadata"))?;
    let addr = address(&b.host, b.port);
    if addr != c.addr() {
        c = KafkaClient::connect(&addr)?;
    }
    Ok((BROKER, id.to_string(), c))
}

fn what(kind: i8, name: &str) -> String {
    match (kind, name) {
        (TOPIC, n) => format!("topic {n}"),
        (_, "") => "the default config of brokers in the cluster".into(),
        (_, id) => format!("broker {id}"),
    }
}

pub fn run(bootstrap: &str, cmd: &ConfigCommand) -> anyhow::Result<String> {
    match cmd {
        ConfigCommand::Describe { target, json } => describe(bootstrap, target, *json),
        ConfigCommand::Set { target, pairs } => alter(bootstrap, target, set_ops(pairs)?),
        ConfigCommand::Delete { target, keys } => alter(bootstrap, target, delete_ops(keys)),
    }
}

/// `phxq topic alter-config TOPIC --set K=V --delete K`: the same IncrementalAlterConfigs
/// as `phxq config set|delete --topic`, sets and deletes in one request.
pub fn alter_topic(
    bootstrap: &str,
    topic: &str,
    sets: &[String],
    deletes: &[String],
) -> anyhow::Result<String> {
    let target = Target {
        broker: None,
        broker_defaults: false,
        topic: Some(topic.to_string()),
    };
    let mut ops = set_ops(sets)?;
    ops.extend(delete_ops(deletes));
    anyhow::ensure!(
        !ops.is_empty(),
        "nothing to change: give --set KEY=VALUE or --delete KEY"
    );
    alter(bootstrap, &target, ops)
}

/// Configs to set, from KEY=VALUE pairs.
fn set_ops(pairs: &[String]) -> anyhow::Result<Vec<(String, Option<String>)>> {
    pairs
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("set takes KEY=VALUE, got {kv:?}"))?;
            Ok((k.to_string(), Some(v.to_string())))
        })
        .collect()
}

/// Configs to delete.
fn delete_ops(keys: &[String]) -> Vec<(String, Option<String>)> {
    keys.iter().map(|k| (k.clone(), None)).collect()
}

fn alter(
    bootstrap: &str,
    target: &Target,
    ops: Vec<(String, Option<String>)>,
) -> anyhow::Result<String> {
    let (kind, name, mut c) = resolve(bootstrap, target)?;
    let configs = ops
        .into_iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(&k))
                .with_config_operation(if v.is_some() { SET } else { DELETE })
                .with_value(v.as_deref().map(s))
        })
        .collect();
    let r = c.send(
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(s(&name))
                .with_configs(configs),
        ]),
        1,
    )?;
    for e in &r.responses {
        anyhow::ensure!(
            e.error_code == 0,
            "{} not changed: {} ({}): {}",
            what(kind, &name),
            phxq_protocol::errors::name(e.error_code),
            e.error_code,
            e.error_message.as_deref().unwrap_or("")
        );
    }
    Ok(format!(
        "Completed updating config for {}.\n",
        what(kind, &name)
    ))
}

fn describe(bootstrap: &str, target: &Target, as_json: bool) -> anyhow::Result<String> {
    let (kind, name, mut c) = resolve(bootstrap, target)?;
    let r = c.send(
        &DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(s(&name))
                .with_configuration_keys(None)]),
        4,
    )?;
    let mut out = format!("Configs for {}:\n", what(kind, &name));
    let mut listed = Vec::new();
    for res in r.results {
        anyhow::ensure!(
            res.error_code == 0,
            "DescribeConfigs failed with Kafka error code {}: {}",
            res.error_code,
            res.error_message.as_deref().unwrap_or("")
        );
        if as_json {
            listed.extend(res.configs.iter().map(|e| {
                serde_json::json!({
                    "name": e.name.as_str(),
                    "value": e.value.as_deref(),
                    "source": source_name(e.config_source),
                    "read_only": e.read_only,
                    "sensitive": e.is_sensitive,
                    "synonyms": e.synonyms.iter().map(|y| serde_json::json!({
                        "name": y.name.as_str(),
                        "value": y.value.as_deref(),
                        "source": source_name(y.source),
                    })).collect::<Vec<_>>(),
                })
            }));
            continue;
        }
        if res.configs.is_empty() {
            out.push_str("  (none set)\n");
        }
        for e in res.configs {
            let synonyms: Vec<String> = e
                .synonyms
                .iter()
                .map(|y| {
                    format!(
                        "{}:{}={}",
                        source_name(y.source),
                        y.name.as_str(),
                        y.value.as_deref().unwrap_or("null")
                    )
                })
                .collect();
            out.push_str(&format!(
                "  {}={} source={}{} synonyms={{{}}}\n",
                e.name.as_str(),
                e.value.as_deref().unwrap_or("null"),
                source_name(e.config_source),
                if e.read_only { " read-only" } else { "" },
                synonyms.join(", ")
            ));
        }
    }
    if as_json {
        let v = serde_json::json!({ "resource": what(kind, &name), "configs": listed });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    Ok(out)
}
