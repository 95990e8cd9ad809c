//! Topic and broker configs: which topic configs phxq accepts (only ones it honours), their
//! defaults, and their DescribeConfigs view.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::handlers::str;
use crate::topics::Topic;

/// DescribeConfigs config sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
/// DescribeConfigs config types.
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;

/// A topic config phxq honours, with the only values it accepts.
struct Def {
    name: &'static str,
    kind: i8,
    /// `None`: any integer >= 0 is honoured. `Some(v)`: only `v` is (the behaviour phxq has).
    fixed: Option<&'static str>,
}

const TOPIC_CONFIGS: &[Def] = &[
    Def {
        name: "cleanup.policy",
        kind: STRING,
        fixed: Some("delete"),
    },
    Def {
        name: "compression.type",
        kind: STRING,
        fixed: Some("producer"),
    },
    Def {
        name: "max.message.bytes",
        kind: INT,
        fixed: None,
    },
    Def {
        name: "message.timestamp.type",
        kind: STRING,
        fixed: Some("CreateTime"),
    },
    // phxq keeps records until DeleteRecords or topic deletion: no time or size retention.
    Def {
        name: "retention.bytes",
        kind: LONG,
        fixed: Some("-1"),
    },
    Def {
        name: "retention.ms",
        kind: LONG,
        fixed: Some("-1"),
    },
];

/// Checks configs given to CreateTopics: only configs phxq honours, with values it honours.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        let def = TOPIC_CONFIGS
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| format!("topic config {name} is not supported by phxq"))?;
        match def.fixed {
            Some(v) if v != value => {
                return Err(format!(
                    "{name}={value} is not supported by phxq (only {v})"
                ));
            }
            None if value.parse::<i32>().map(|v| v < 0).unwrap_or(true) => {
                return Err(format!(
                    "{name} must be a non-negative integer, got {value:?}"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The largest record batch the topic accepts.
pub fn max_message_bytes(broker: &Broker, topic: &Topic) -> i32 {
    topic
        .configs
        .get("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(broker.config.message_max_bytes)
}

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
        .map(|d| match topic.configs.get(d.name) {
            Some(v) => entry(d.name, v.clone(), DYNAMIC_TOPIC_CONFIG, d.kind),
            None => match d.fixed {
                Some(v) => entry(d.name, v.to_string(), DEFAULT_CONFIG, d.kind),
                None => entry(
                    d.name,
                    broker.config.message_max_bytes.to_string(),
                    STATIC_BROKER_CONFIG,
                    d.kind,
                ),
            },
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
        ("log.retention.ms", "-1".to_string(), LONG),
    ];
    all.into_iter()
        .filter(|(name, _, _)| wanted(keys, name))
        .map(|(name, value, kind)| entry(name, value, STATIC_BROKER_CONFIG, kind))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_honoured_configs() {
        let ok: BTreeMap<_, _> = [
            ("max.message.bytes".to_string(), "2048".to_string()),
            ("cleanup.policy".into(), "delete".into()),
        ]
        .into();
        assert!(validate(&ok).is_ok());
        for (k, v) in [
            ("cleanup.policy", "compact"),
            ("max.message.bytes", "-5"),
            ("segment.bytes", "1"),
            ("retention.ms", "1000"),
        ] {
            let c: BTreeMap<_, _> = [(k.to_string(), v.to_string())].into();
            assert!(validate(&c).is_err(), "{k}={v} should be refused");
        }
    }
}
