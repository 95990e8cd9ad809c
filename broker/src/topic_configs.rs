//! Topic configs phxq accepts (only the ones it honours, with the values it honours) and
//! what they mean for a topic: validation at CreateTopics and AlterConfigs, their defaults
//! from the broker's configuration, the record size limit and the retention policy.
//! Their DescribeConfigs view is in `handlers::topic_config`.

use std::collections::BTreeMap;

use phxq_replication::RetentionPolicy;

use crate::broker::Broker;
use crate::config::Config;
use crate::topics::Topic;

/// DescribeConfigs config types.
pub const BOOLEAN: i8 = 1;
pub const STRING: i8 = 2;
pub const INT: i8 = 3;
pub const LONG: i8 = 5;

/// The values a topic config takes.
#[derive(Clone, Copy, Debug)]
pub enum Accepts {
    /// Only this value (the behaviour phxq has); it is also the default.
    Only(&'static str),
    /// An integer of the def's kind (INT: 32 bits, LONG: 64) of at least `min`; its
    /// default is the broker's (`default` reads it from the configuration).
    AtLeast {
        min: i64,
        default: fn(&Config) -> i64,
    },
}

/// A topic config phxq honours.
pub struct Def {
    pub name: &'static str,
    pub kind: i8,
    pub accepts: Accepts,
    pub doc: &'static str,
}

pub const TOPIC_CONFIGS: &[Def] = &[
    Def {
        name: "cleanup.policy",
        kind: STRING,
        accepts: Accepts::Only("delete"),
        doc: "Old segments are deleted by retention (compaction is not supported).",
    },
    Def {
        name: "compression.type",
        kind: STRING,
        accepts: Accepts::Only("producer"),
        doc: "Batches are stored as the producer compressed them.",
    },
    Def {
        name: "max.message.bytes",
        kind: INT,
        accepts: Accepts::AtLeast {
            min: 0,
            default: |c| c.message_max_bytes.into(),
        },
        doc: "The largest record batch the topic accepts.",
    },
    Def {
        name: "message.timestamp.type",
        kind: STRING,
        accepts: Accepts::Only("CreateTime"),
        doc: "Records keep the timestamp the producer gave them.",
    },
    Def {
        name: "retention.bytes",
        kind: LONG,
        accepts: Accepts::AtLeast {
            min: -1,
            default: |c| c.log.retention_bytes,
        },
        doc: "Oldest segments of a partition are deleted while the rest still hold at least \
              this many bytes. -1: no size limit.",
    },
    Def {
        name: "retention.ms",
        kind: LONG,
        accepts: Accepts::AtLeast {
            min: -1,
            default: |c| c.log.retention_ms(),
        },
        doc: "A segment is deleted once its newest record is older than this. -1: no time limit.",
    },
    Def {
        name: "segment.bytes",
        kind: INT,
        accepts: Accepts::AtLeast {
            min: 14,
            default: |c| c.log.segment_bytes as i64,
        },
        doc: "Size of a partition's segments, the unit retention deletes. Disk space comes back \
              when whole segment files of the node (log.segment.bytes) are unreferenced.",
    },
    Def {
        name: "segment.ms",
        kind: LONG,
        accepts: Accepts::AtLeast {
            min: 1,
            default: |c| c.log.segment_ms(),
        },
        doc: "A partition's segment rolls once its records span this long.",
    },
];

/// Checks configs given to CreateTopics or left by AlterConfigs: only configs phxq
/// honours, with values it honours.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        let def = TOPIC_CONFIGS
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| format!("topic config {name} is not supported by phxq"))?;
        match def.accepts {
            Accepts::Only(v) if v != value => {
                return Err(format!(
                    "{name}={value} is not supported by phxq (only {v})"
                ));
            }
            Accepts::Only(_) => {}
            Accepts::AtLeast { min, .. } => {
                let parsed = if def.kind == INT {
                    value.trim().parse::<i32>().map(i64::from).ok()
                } else {
                    value.trim().parse::<i64>().ok()
                };
                match parsed {
                    Some(v) if v >= min => {}
                    _ => {
                        let kind = if def.kind == INT { "int" } else { "long" };
                        return Err(format!(
                            "{name} must be an {kind} of at least {min}, got {value:?}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// A topic config's default: `(value, comes from the broker's configuration)`.
pub fn default_value(config: &Config, def: &Def) -> (String, bool) {
    match def.accepts {
        Accepts::Only(v) => (v.to_string(), false),
        Accepts::AtLeast { default, .. } => (default(config).to_string(), true),
    }
}

/// The value of an integer config of the topic: its own, else the broker's default (-1 for
/// a name that is not an integer config).
fn long(config: &Config, topic: &Topic, name: &str) -> i64 {
    let own = topic.configs.get(name).and_then(|v| v.trim().parse().ok());
    own.unwrap_or_else(|| match TOPIC_CONFIGS.iter().find(|d| d.name == name) {
        Some(Def {
            accepts: Accepts::AtLeast { default, .. },
            ..
        }) => default(config),
        _ => -1,
    })
}

/// The largest record batch the topic accepts.
pub fn max_message_bytes(broker: &Broker, topic: &Topic) -> i32 {
    topic
        .configs
        .get("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(broker.config.message_max_bytes)
}

/// How long and how much of each partition of `topic` to keep: its retention and segment
/// configs over the broker's `[log]` defaults. A negative limit is no limit.
pub fn retention_policy(config: &Config, topic: &Topic) -> RetentionPolicy {
    let limit = |v: i64| (v >= 0).then_some(v);
    RetentionPolicy {
        retention_ms: limit(long(config, topic, "retention.ms")),
        retention_bytes: limit(long(config, topic, "retention.bytes")).map(|v| v as u64),
        segment_bytes: long(config, topic, "segment.bytes").max(1) as u64,
        segment_ms: limit(long(config, topic, "segment.ms")).filter(|v| *v > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_honoured_configs() {
        let ok: BTreeMap<_, _> = [
            ("max.message.bytes".to_string(), "2048".to_string()),
            ("cleanup.policy".into(), "delete".into()),
            ("retention.ms".into(), "1000".into()),
            ("retention.ms".into(), "-1".into()),
            ("retention.bytes".into(), "10737418240".into()),
            ("segment.bytes".into(), "1048576".into()),
            ("segment.ms".into(), "604800000".into()),
        ]
        .into();
        assert!(validate(&ok).is_ok());
        for (k, v) in [
            ("cleanup.policy", "compact"),
            ("max.message.bytes", "-5"),
            ("segment.bytes", "1"),
            ("segment.bytes", "10737418240"),
            ("segment.ms", "0"),
            ("retention.ms", "-2"),
            ("retention.bytes", "lots"),
            ("index.interval.bytes", "4096"),
        ] {
            let c: BTreeMap<_, _> = [(k.to_string(), v.to_string())].into();
            assert!(validate(&c).is_err(), "{k}={v} should be refused");
        }
    }

    fn topic(configs: &[(&str, &str)]) -> Topic {
        Topic {
            name: "t".into(),
            id: 1,
            placement: vec![],
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn retention_policy_is_the_topics_over_the_brokers() {
        let mut config = Config::default();
        let p = retention_policy(&config, &topic(&[]));
        assert_eq!(p.retention_ms, Some(7 * 24 * 3_600_000));
        assert_eq!(p.retention_bytes, None);
        assert_eq!(p.segment_bytes, 1 << 30);
        assert_eq!(p.segment_ms, Some(7 * 24 * 3_600_000));
        config.log.retention_bytes = 5000;
        config.log.segment_bytes = 4096;
        let p = retention_policy(
            &config,
            &topic(&[("retention.ms", "-1"), ("segment.ms", "1000")]),
        );
        assert_eq!(p.retention_ms, None);
        assert_eq!(p.retention_bytes, Some(5000));
        assert_eq!(p.segment_bytes, 4096);
        assert_eq!(p.segment_ms, Some(1000));
        let p = retention_policy(
            &config,
            &topic(&[("retention.bytes", "-1"), ("segment.bytes", "100")]),
        );
        assert!(!p.limits() || p.retention_ms.is_some());
        assert_eq!(p.retention_bytes, None);
        assert_eq!(p.segment_bytes, 100);
    }
}
