//! The DescribeConfigs view of topic, group and broker configs (which topic configs phxq
//! accepts and their defaults are in `topic_configs`, group configs in `groups::configs`).

use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::groups::configs::{self, GROUP_CONFIGS};
use crate::handlers::str;
pub use crate::topic_configs::max_message_bytes;
use crate::topic_configs::{default_value, BOOLEAN, INT, LONG, STRING, TOPIC_CONFIGS};
use crate::topics::Topic;

/// DescribeConfigs config sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const GROUP_CONFIG: i8 = 8;

fn entry(name: &str, value: String, source: i8, kind: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str(name))
        .with_value(Some(str(value)))
        .with_config_source(source)
        .with_config_type(kind)
        .with_read_only(false)
}

fn wanted(keys: Option<&[StrBytes]>, name: &str) -> bool {
    keys.map(|k| k.iter().any(|k| k.as_str() == name))
        .unwrap_or(true)
}

/// Every config of a topic: the ones set on it, and the defaults of the rest.
pub fn describe_topic(
    broker: &Broker,
    topic: &Topic,
    keys: Option<&[StrBytes]>,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .filter(|d| wanted(keys, d.name))
        .map(|d| {
            let e = match topic.configs.get(d.name) {
                Some(v) => entry(d.name, v.clone(), DYNAMIC_TOPIC_CONFIG, d.kind),
                None => match default_value(&broker.config, d) {
                    (v, true) => entry(d.name, v, STATIC_BROKER_CONFIG, d.kind),
                    (v, false) => entry(d.name, v, DEFAULT_CONFIG, d.kind),
                },
            };
            e.with_documentation(Some(str(d.doc)))
        })
        .collect()
}

/// Every config of a group: the ones set on it (group configs), and the defaults of the
/// rest (from the broker's `[groups]` settings, or phxq's).
pub fn describe_group(
    broker: &Broker,
    group: &str,
    keys: Option<&[StrBytes]>,
) -> Vec<DescribeConfigsResourceResult> {
    let values = broker.group_configs.get(group);
    GROUP_CONFIGS
        .iter()
        .filter(|d| wanted(keys, d.name))
        .map(|d| {
            let (value, set) = configs::value_of(&broker.config.groups, &values, d);
            let source = match (set, d.broker_key) {
                (true, _) => GROUP_CONFIG,
                (false, Some(_)) => STATIC_BROKER_CONFIG,
                (false, None) => DEFAULT_CONFIG,
            };
            let e = entry(d.name, value.clone().unwrap_or_default(), source, d.kind)
                .with_documentation(Some(str(d.doc)));
            // An unset limit has no value (null), as Kafka shows unset configs without
            // defaults.
            if value.is_none() {
                e.with_value(None)
            } else {
                e
            }
        })
        .collect()
}

/// The broker's configs, from its running configuration.
pub fn describe_broker(
    broker: &Broker,
    keys: Option<&[StrBytes]>,
) -> Vec<DescribeConfigsResourceResult> {
    let c = &broker.config;
    let (host, port) = c.advertised();
    let all = [
        ("broker.id", c.node_id.to_string(), INT),
        ("num.partitions", c.num_partitions.to_string(), INT),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            BOOLEAN,
        ),
        ("message.max.bytes", c.message_max_bytes.to_string(), INT),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            INT,
        ),
        ("log.dirs", c.data_dir.display().to_string(), STRING),
        (
            "advertised.listeners",
            format!("PLAINTEXT://{host}:{port}"),
            STRING,
        ),
        ("default.replication.factor", "1".to_string(), INT),
        ("log.retention.ms", c.log.retention_ms().to_string(), LONG),
        (
            "log.retention.minutes",
            c.log
                .retention_minutes
                .map_or_else(String::new, |v| v.to_string()),
            INT,
        ),
        (
            "log.retention.hours",
            c.log.retention_hours.to_string(),
            INT,
        ),
        (
            "log.retention.bytes",
            c.log.retention_bytes.to_string(),
            LONG,
        ),
        ("log.segment.bytes", c.log.segment_bytes.to_string(), INT),
        ("log.roll.ms", c.log.segment_ms().to_string(), LONG),
        ("log.roll.hours", c.log.roll_hours.to_string(), INT),
        (
            "log.retention.check.interval.ms",
            c.log.retention_check_interval_ms.to_string(),
            LONG,
        ),
    ];
    all.into_iter()
        .filter(|(name, _, _)| wanted(keys, name))
        .map(|(name, value, kind)| {
            let e = entry(name, value.clone(), STATIC_BROKER_CONFIG, kind);
            // An unset key (log.retention.minutes) has no value, as Kafka shows it.
            if value.is_empty() {
                e.with_value(None)
            } else {
                e
            }
        })
        .collect()
}
