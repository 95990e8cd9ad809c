//! `phxq topic list|describe|create|delete|add-partitions`: topics over the Kafka protocol
//! (Metadata, ListOffsets, DescribeConfigs, CreateTopics, DeleteTopics, CreatePartitions),
//! as `kafka-topics` and `rpk topic` do, so they work against any Kafka broker too. Topic
//! configs are changed with `phxq topic alter-config` (the same code as `phxq config set|delete
//! --topic`). Human tables, or `--json`.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    TopicName,
};
use serde_json::json;

use super::offsets::{list_offsets, EARLIEST, LATEST};
use super::{check, metadata, s, table, topic_metadata};
use crate::kafka_client::KafkaClient;

const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs sources that are not defaults (DYNAMIC_TOPIC_CONFIG).
const TOPIC_CONFIG_SOURCE: i8 = 1;
const TIMEOUT_MS: i32 = 30_000;

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Topic names.
    #[arg(required = true)]
    pub topics: Vec<String>,
    /// Partitions of each (-1: the broker's num_partitions).
    #[arg(short, long, default_value_t = -1, allow_hyphen_values = true)]
    pub partitions: i32,
    /// Replicas of each partition (-1: the broker's default).
    #[arg(short, long, default_value_t = -1, allow_hyphen_values = true)]
    pub replication_factor: i16,
    /// Topic configs, KEY=VALUE (repeatable), e.g. -c retention.ms=3600000.
    #[arg(short = 'c', long = "config")]
    pub configs: Vec<String>,
    /// Only check that the topics could be created.
    #[arg(long)]
    pub validate_only: bool,
}

fn name(t: &MetadataResponseTopic) -> String {
    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default()
}

/// Every topic with its partition count and replication factor.
pub fn list(bootstrap: &str, as_json: bool) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    let mut topics = metadata(&mut c, None)?;
    topics.sort_by_key(name);
    if as_json {
        let v: Vec<_> = topics
            .iter()
            .map(|t| {
                json!({
                    "topic": name(t),
                    "partitions": t.partitions.len(),
                    "replication_factor": t.partitions.first().map_or(0, |p| p.replica_nodes.len()),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut rows = vec![vec!["TOPIC".into(), "PARTITIONS".into(), "REPLICAS".into()]];
    for t in &topics {
        rows.push(vec![
            name(t),
            t.partitions.len().to_string(),
            t.partitions
                .first()
                .map_or(0, |p| p.replica_nodes.len())
                .to_string(),
        ]);
    }
    Ok(table(&rows))
}

/// A topic's partitions (leader, replicas, in-sync replicas, log start and end) and the
/// configs set on it.
pub fn describe(bootstrap: &str, topic: &str, as_json: bool) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    let t = topic_metadata(&mut c, topic)?;
    let parts: BTreeSet<(String, i32)> = t
        .partitions
        .iter()
        .map(|p| (topic.to_string(), p.partition_index))
        .collect();
    let starts = list_offsets(bootstrap, &parts, EARLIEST)?;
    let ends = list_offsets(bootstrap, &parts, LATEST)?;
    let configs = topic_configs(&mut c, topic)?;
    let mut partitions: Vec<_> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let offset = |m: &BTreeMap<(String, i32), i64>, p: i32| m.get(&(topic.to_string(), p)).copied();
    if as_json {
        let v = json!({
            "topic": topic,
            "topic_id": t.topic_id.to_string(),
            "partitions": partitions.iter().map(|p| json!({
                "partition": p.partition_index,
                "leader": p.leader_id.0,
                "replicas": ids(&p.replica_nodes),
                "isr": ids(&p.isr_nodes),
                "log_start_offset": offset(&starts, p.partition_index),
                "log_end_offset": offset(&ends, p.partition_index),
            })).collect::<Vec<_>>(),
            "configs": configs,
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut out = format!("topic {topic}  id {}\n\n", t.topic_id);
    let mut rows = vec![[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG_START",
        "LOG_END",
    ]
    .map(String::from)
    .to_vec()];
    let list = |v: Vec<i32>| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let shown = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
    for p in &partitions {
        rows.push(vec![
            p.partition_index.to_string(),
            p.leader_id.0.to_string(),
            list(ids(&p.replica_nodes)),
            list(ids(&p.isr_nodes)),
            shown(offset(&starts, p.partition_index)),
            shown(offset(&ends, p.partition_index)),
        ]);
    }
    out.push_str(&table(&rows));
    if !configs.is_empty() {
        out.push('\n');
        let mut rows = vec![vec!["CONFIG".to_string(), "VALUE".to_string()]];
        rows.extend(configs.iter().map(|(k, v)| vec![k.clone(), v.clone()]));
        out.push_str(&table(&rows));
    }
    Ok(out)
}

/// The configs set on the topic itself (not inherited).
fn topic_configs(c: &mut KafkaClient, topic: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let r = c.send(
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(s(topic))
            .with_configuration_keys(None)]),
        1,
    )?;
    let mut out = BTreeMap::new();
    for res in r.results {
        check(res.error_code, &format!("DescribeConfigs of {topic}"))?;
        for cfg in res.configs {
            if cfg.config_source == TOPIC_CONFIG_SOURCE {
                out.insert(
                    cfg.name.to_string(),
                    cfg.value.map(|v| v.to_string()).unwrap_or_default(),
                );
            }
        }
    }
    Ok(out)
}

pub fn create(bootstrap: &str, a: &CreateArgs) -> anyhow::Result<String> {
    let mut configs = Vec::new();
    for kv in &a.configs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("config {kv:?} is not KEY=VALUE"))?;
        configs.push(
            CreatableTopicConfig::default()
                .with_name(s(k))
                .with_value(Some(s(v))),
        );
    }
    let req = CreateTopicsRequest::default()
        .with_topics(
            a.topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_num_partitions(a.partitions)
                        .with_replication_factor(a.replication_factor)
                        .with_configs(configs.clone())
                })
                .collect(),
        )
        .with_timeout_ms(TIMEOUT_MS)
        .with_validate_only(a.validate_only);
    let r = KafkaClient::connect(bootstrap)?.send(&req, 5)?;
    let mut out = String::new();
    let mut failed = Vec::new();
    for t in r.topics {
        match check(t.error_code, &format!("creating {}", t.name.0)) {
            Ok(()) => out.push_str(&format!(
                "{} {} ({} partitions, replication factor {})\n",
                if a.validate_only { "valid:" } else { "created" },
                t.name.0,
                t.num_partitions,
                t.replication_factor
            )),
            Err(e) => failed.push(match t.error_message {
                Some(m) => format!("{e}: {m}"),
                None => e.to_string(),
            }),
        }
    }
    anyhow::ensure!(failed.is_empty(), "{out}{}", failed.join("\n"));
    Ok(out)
}

pub fn delete(bootstrap: &str, topics: &[String]) -> anyhow::Result<String> {
    let req = DeleteTopicsRequest::default()
        .with_topic_names(topics.iter().map(|t| TopicName(s(t))).collect())
        .with_timeout_ms(TIMEOUT_MS);
    let r = KafkaClient::connect(bootstrap)?.send(&req, 4)?;
    let mut out = String::new();
    let mut failed = Vec::new();
    for t in r.responses {
        let n = t.name.map(|n| n.0.to_string()).unwrap_or_default();
        match check(t.error_code, &format!("deleting {n}")) {
            Ok(()) => out.push_str(&format!("deleted {n}\n")),
            Err(e) => failed.push(e.to_string()),
        }
    }
    anyhow::ensure!(failed.is_empty(), "{out}{}", failed.join("\n"));
    Ok(out)
}

/// Grows `topic` to `count` partitions.
pub fn add_partitions(bootstrap: &str, topic: &str, count: i32) -> anyhow::Result<String> {
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_count(count)])
        .with_timeout_ms(TIMEOUT_MS);
    let r = KafkaClient::connect(bootstrap)?.send(&req, 1)?;
    for t in r.results {
        if let Err(e) = check(t.error_code, &format!("adding partitions to {topic}")) {
            return Err(match t.error_message {
                Some(m) => anyhow::anyhow!("{e}: {m}"),
                None => e,
            });
        }
    }
    Ok(format!("{topic} now has {count} partitions\n"))
}
