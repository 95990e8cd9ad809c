//! The DescribeConfigs view of topic, group and broker configs (which topic configs phxq
//! accepts and their defaults are in `topic_configs`, group configs in `groups::configs`).
//! A topic config's source is Kafka's: DYNAMIC_TOPIC_CONFIG when the topic sets it,
//! STATIC_BROKER_CONFIG when its default is a broker config phxq runs with (`log.*`,
//! `message.max.bytes`), DEFAULT_CONFIG otherwise.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsSynonym,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::config::Config;
use crate::groups::configs::{self, GROUP_CONFIGS};
use crate::handlers::str;
pub use crate::topic_configs::max_message_bytes;
use crate::topic_configs::{default_value, Def, BOOLEAN, INT, LONG, STRING, TOPIC_CONFIGS};
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

/// What DescribeConfigs says of one topic config: its value, source and synonyms.
#[derive(Debug, PartialEq, Eq)]
pub struct TopicConfigView {
    pub value: String,
    pub source: i8,
    /// Kafka's order: the topic's own value, the broker config phxq runs with, then the
    /// broker config's default (under the broker config's name).
    pub synonyms: Vec<(String, String, i8)>,
}

/// The view of `def` for a topic that sets it to `own` (or not): the topic's value
/// (DYNAMIC_TOPIC_CONFIG), else the broker's when phxq has the broker config (the
/// running configuration: STATIC_BROKER_CONFIG), else Kafka's default (DEFAULT_CONFIG).
pub fn topic_config_view(config: &Config, def: &Def, own: Option<&str>) -> TopicConfigView {
    let mut synonyms = Vec::new();
    if let Some(v) = own {
        synonyms.push((def.name.to_string(), v.to_string(), DYNAMIC_TOPIC_CONFIG));
    }
    if let Some(syn) = def.synonym {
        if let Some(broker) = def.broker {
            synonyms.push((syn.to_string(), broker(config), STATIC_BROKER_CONFIG));
        }
        synonyms.push((syn.to_string(), def.default.to_string(), DEFAULT_CONFIG));
    }
    let (value, source) = match own {
        Some(v) => (v.to_string(), DYNAMIC_TOPIC_CONFIG),
        None => match default_value(config, def) {
            (v, true) => (v, STATIC_BROKER_CONFIG),
            (v, false) => (v, DEFAULT_CONFIG),
        },
    };
    TopicConfigView {
        value,
        source,
        synonyms,
    }
}

/// Every config of a topic (or the `keys` asked for): the ones set on it, and the
/// defaults of the rest; synonyms and documentation only when asked for.
pub fn describe_topic(
    broker: &Broker,
    topic: &Topic,
    keys: Option<&[StrBytes]>,
    include_synonyms: bool,
    include_documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .filter(|d| wanted(keys, d.name))
        .map(|d| {
            let view = topic_config_view(
                &broker.config,
                d,
                topic.configs.get(d.name).map(|v| v.as_str()),
            );
            let synonyms = if include_synonyms {
                view.synonyms
                    .into_iter()
                    .map(|(name, value, source)| {
                        DescribeConfigsSynonym::default()
                            .with_name(str(name))
                            .with_value(Some(str(value)))
                            .with_source(source)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let e = entry(d.name, view.value, view.source, d.check.kind())
                .with_is_sensitive(false)
                .with_synonyms(synonyms);
            e.with_documentation(include_documentation.then(|| str(d.doc)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic_configs::def;

    fn syn(name: &str, value: &str, source: i8) -> (String, String, i8) {
        (name.to_string(), value.to_string(), source)
    }

    #[test]
    fn a_set_config_is_the_topics_then_the_brokers_then_the_default() {
        let mut config = Config::default();
        config.log.segment_bytes = 4096;
        let d = def("segment.bytes").unwrap();
        let v = topic_config_view(&config, d, Some("100"));
        assert_eq!((v.value.as_str(), v.source), ("100", DYNAMIC_TOPIC_CONFIG));
        assert_eq!(
            v.synonyms,
            vec![
                syn("segment.bytes", "100", DYNAMIC_TOPIC_CONFIG),
                syn("log.segment.bytes", "4096", STATIC_BROKER_CONFIG),
                syn("log.segment.bytes", "1073741824", DEFAULT_CONFIG),
            ]
        );
        let v = topic_config_view(&config, d, None);
        assert_eq!((v.value.as_str(), v.source), ("4096", STATIC_BROKER_CONFIG));
        assert_eq!(v.synonyms.len(), 2);
    }

    #[test]
    fn a_config_without_a_broker_value_in_phxq_is_kafkas_default() {
        let config = Config::default();
        let v = topic_config_view(&config, def("index.interval.bytes").unwrap(), None);
        assert_eq!((v.value.as_str(), v.source), ("4096", DEFAULT_CONFIG));
        assert_eq!(
            v.synonyms,
            vec![syn("log.index.interval.bytes", "4096", DEFAULT_CONFIG)]
        );
        let d = def("leader.replication.throttled.replicas").unwrap();
        let v = topic_config_view(&config, d, None);
        assert_eq!((v.value.as_str(), v.source), ("", DEFAULT_CONFIG));
        assert!(v.synonyms.is_empty());
        let v = topic_config_view(&config, d, Some("*"));
        assert_eq!(v.synonyms, vec![syn(d.name, "*", DYNAMIC_TOPIC_CONFIG)]);
    }
}
