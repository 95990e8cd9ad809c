//! The DescribeConfigs view of topic and group configs (which topic configs phxq accepts
//! and their defaults are in `topic_configs`, group configs in `groups::configs`, broker
//! configs in `handlers::broker_config`). A topic config's source is Kafka's:
//! DYNAMIC_TOPIC_CONFIG when the topic sets it, else its broker config's in effect
//! (`broker_configs::resolve`: DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG,
//! STATIC_BROKER_CONFIG for the ones phxq's configuration has, `log.*`,
//! `message.max.bytes`), else DEFAULT_CONFIG.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsSynonym,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::broker_configs::resolve::{
    resolve_topic, Layers, Resolved, DEFAULT_CONFIG, STATIC_BROKER_CONFIG,
};
use crate::groups::configs::{self, GROUP_CONFIGS};
use crate::handlers::str;
pub use crate::topic_configs::max_message_bytes;
use crate::topic_configs::{Def, TOPIC_CONFIGS};
use crate::topics::Topic;

/// DescribeConfigs config source of group configs.
const GROUP_CONFIG: i8 = 8;

pub fn entry(name: &str, value: String, source: i8, kind: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str(name))
        .with_value(Some(str(value)))
        .with_config_source(source)
        .with_config_type(kind)
        .with_read_only(false)
}

pub fn wanted(keys: Option<&[StrBytes]>, name: &str) -> bool {
    keys.map(|k| k.iter().any(|k| k.as_str() == name))
        .unwrap_or(true)
}

/// The wire form of a synonym chain (empty unless asked for).
pub fn synonyms(r: &Resolved, include: bool) -> Vec<DescribeConfigsSynonym> {
    if !include {
        return Vec::new();
    }
    r.synonyms
        .iter()
        .map(|(name, value, source)| {
            DescribeConfigsSynonym::default()
                .with_name(str(name.clone()))
                .with_value(Some(str(value.clone())))
                .with_source(*source)
        })
        .collect()
}

/// The view of `def` for a topic that sets it to `own` (or not): the topic's value
/// (DYNAMIC_TOPIC_CONFIG), else its broker config's in effect on this broker (dynamic per
/// broker, dynamic cluster default, static), else Kafka's default (DEFAULT_CONFIG).
pub fn topic_config_view(layers: &Layers, def: &Def, own: Option<&str>) -> Resolved {
    resolve_topic(layers, def.name, def.default, own)
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
    broker.broker_configs.with_layers(|layers| {
        TOPIC_CONFIGS
            .iter()
            .filter(|d| wanted(keys, d.name))
            .map(|d| {
                let view =
                    topic_config_view(layers, d, topic.configs.get(d.name).map(|v| v.as_str()));
                let e = entry(
                    d.name,
                    view.value.clone().unwrap_or_default(),
                    view.source,
                    d.check.kind(),
                )
                .with_is_sensitive(false)
                .with_synonyms(synonyms(&view, include_synonyms));
                e.with_documentation(include_documentation.then(|| str(d.doc)))
            })
            .collect()
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker_configs::resolve::TOPIC_CONFIG as DYNAMIC_TOPIC_CONFIG;
    use crate::broker_configs::Values;
    use crate::config::Config;
    use crate::topic_configs::def;

    fn syn(name: &str, value: &str, source: i8) -> (String, String, i8) {
        (name.to_string(), value.to_string(), source)
    }

    fn view(config: &Config, d: &Def, own: Option<&str>) -> Resolved {
        let none = Values::new();
        let layers = Layers {
            config,
            broker: &none,
            default: &none,
        };
        topic_config_view(&layers, d, own)
    }

    #[test]
    fn a_set_config_is_the_topics_then_the_brokers_then_the_default() {
        let mut config = Config::default();
        config.log.segment_bytes = 4096;
        let d = def("segment.bytes").unwrap();
        let v = view(&config, d, Some("100"));
        assert_eq!(
            (v.value.as_deref(), v.source),
            (Some("100"), DYNAMIC_TOPIC_CONFIG)
        );
        assert_eq!(
            v.synonyms,
            vec![
                syn("segment.bytes", "100", DYNAMIC_TOPIC_CONFIG),
                syn("log.segment.bytes", "4096", STATIC_BROKER_CONFIG),
                syn("log.segment.bytes", "1073741824", DEFAULT_CONFIG),
            ]
        );
        let v = view(&config, d, None);
        assert_eq!(
            (v.value.as_deref(), v.source),
            (Some("4096"), STATIC_BROKER_CONFIG)
        );
        assert_eq!(v.synonyms.len(), 2);
    }

    #[test]
    fn a_config_without_a_broker_value_in_phxq_is_kafkas_default() {
        let config = Config::default();
        let v = view(&config, def("index.interval.bytes").unwrap(), None);
        assert_eq!(
            (v.value.as_deref(), v.source),
            (Some("4096"), DEFAULT_CONFIG)
        );
        assert_eq!(
            v.synonyms,
            vec![syn("log.index.interval.bytes", "4096", DEFAULT_CONFIG)]
        );
        let d = def("leader.replication.throttled.replicas").unwrap();
        let v = view(&config, d, None);
        assert_eq!((v.value.as_deref(), v.source), (Some(""), DEFAULT_CONFIG));
        assert!(v.synonyms.is_empty());
        let v = view(&config, d, Some("*"));
        assert_eq!(v.synonyms, vec![syn(d.name, "*", DYNAMIC_TOPIC_CONFIG)]);
    }
}
