//! Topic configs: every standard topic config of Kafka 4.x, what phxq does with each, and
//! what they mean for a topic (validation at CreateTopics and AlterConfigs, defaults from
//! the broker's configuration, the record size limit and the retention policy).
//!
//! Rules:
//! - Every name in [`TOPIC_CONFIGS`] is accepted with Kafka's type and range checks; any
//!   other name is INVALID_CONFIG (as in Kafka).
//! - A config phxq honours changes what the topic does; values of it phxq cannot honour
//!   (`compression.type` other than `producer`,
//!   `message.timestamp.type=LogAppendTime`, `remote.storage.enable=true`) are
//!   INVALID_CONFIG with the reason.
//! - A config with no meaning in phxq's storage is checked, stored and described back;
//!   its doc begins "Stored only" and says what phxq does instead.
//! - Only explicitly set configs are stored with the topic; the rest take the broker's
//!   value when phxq has the broker config, else Kafka's default.
//!
//! Their DescribeConfigs view is in `handlers::topic_config`.

use std::collections::BTreeMap;

use phxq_replication::compaction::CompactionPolicy;
use phxq_replication::RetentionPolicy;

use crate::broker::Broker;
use crate::config::Config;
use crate::config_ops::list_items;
use crate::topics::Topic;

/// DescribeConfigs config types.
pub const BOOLEAN: i8 = 1;
pub const STRING: i8 = 2;
pub const INT: i8 = 3;
pub const LONG: i8 = 5;
pub const DOUBLE: i8 = 6;
pub const LIST: i8 = 7;

/// The values a config takes: Kafka's type and validator.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// An INT (32 bits) in `min..=max`, or exactly `or` when given.
    Int { min: i64, max: i64, or: Option<i64> },
    /// A LONG (64 bits) of at least `min`.
    Long { min: i64 },
    /// A DOUBLE in `0..=1`.
    Ratio,
    /// `true` or `false` (any case).
    Bool,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A list of these strings.
    ListOf(&'static [&'static str]),
    /// Kafka's throttled replica list: `*`, or `partition:broker` items.
    Replicas,
}

impl Check {
    /// The DescribeConfigs type of values this check accepts.
    pub const fn kind(self) -> i8 {
        match self {
            Check::Int { .. } => INT,
            Check::Long { .. } => LONG,
            Check::Ratio => DOUBLE,
            Check::Bool => BOOLEAN,
            Check::OneOf(_) => STRING,
            Check::ListOf(_) | Check::Replicas => LIST,
        }
    }
}

/// A topic config.
#[derive(Clone, Copy)]
pub struct Def {
    pub name: &'static str,
    pub check: Check,
    /// Kafka's default value.
    pub default: &'static str,
    /// The broker config that gives topics their default in Kafka (`log.segment.bytes`).
    pub synonym: Option<&'static str>,
    /// The value of that broker config in phxq's configuration, when phxq has it: the
    /// default of topics that do not set the config.
    pub broker: Option<fn(&Config) -> String>,
    /// Values (or list items) that pass the check but phxq cannot honour, and why.
    pub refused: &'static [&'static str],
    pub why: &'static str,
    /// What the config does here (DescribeConfigs documentation).
    pub doc: &'static str,
}

const STORED: Def = Def {
    name: "",
    check: Check::Long { min: 0 },
    default: "",
    synonym: None,
    broker: None,
    refused: &[],
    why: "",
    doc: "",
};

const LONG_MAX: &str = "9223372036854775807";
const I32_MAX: i64 = i32::MAX as i64;

/// Every standard topic config of Kafka 4.x (and `message.timestamp.difference.max.ms`,
/// removed in 4.0, which older tools still send), by name.
pub const TOPIC_CONFIGS: &[Def] = &[
    Def {
        name: "cleanup.policy",
        check: Check::ListOf(&["compact", "delete"]),
        default: "delete",
        synonym: Some("log.cleanup.policy"),
        broker: Some(|c| c.log.cleanup_policy.clone()),
        doc: "delete: old segments are deleted by retention.ms and retention.bytes. compact: \
              the log cleaner of every replica keeps the latest record of each key (records \
              without a key are refused at produce). compact,delete: both.",
        ..STORED
    },
    Def {
        name: "compression.gzip.level",
        check: Check::Int {
            min: 1,
            max: 9,
            or: Some(-1),
        },
        default: "-1",
        synonym: Some("compression.gzip.level"),
        doc: "Stored only: phxq does not recompress (compression.type is producer).",
        ..STORED
    },
    Def {
        name: "compression.lz4.level",
        check: Check::Int {
            min: 1,
            max: 17,
            or: None,
        },
        default: "9",
        synonym: Some("compression.lz4.level"),
        doc: "Stored only: phxq does not recompress (compression.type is producer).",
        ..STORED
    },
    Def {
        name: "compression.type",
        check: Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        default: "producer",
        synonym: Some("compression.type"),
        refused: &["uncompressed", "zstd", "lz4", "snappy", "gzip"],
        why: "broker-side recompression is not implemented in phxq (only producer)",
        doc: "producer: batches are stored as the producer compressed them. Other values are \
              refused: phxq does not recompress.",
        ..STORED
    },
    Def {
        name: "compression.zstd.level",
        check: Check::Int {
            min: -131072,
            max: 22,
            or: None,
        },
        default: "3",
        synonym: Some("compression.zstd.level"),
        doc: "Stored only: phxq does not recompress (compression.type is producer).",
        ..STORED
    },
    Def {
        name: "delete.retention.ms",
        check: Check::Long { min: 0 },
        default: "86400000",
        synonym: Some("log.cleaner.delete.retention.ms"),
        broker: Some(|c| c.log.cleaner_delete_retention_ms.to_string()),
        doc: "On a compacted topic, a tombstone (null value) that is the latest of its key is \
              removed once its timestamp is this old.",
        ..STORED
    },
    Def {
        name: "file.delete.delay.ms",
        check: Check::Long { min: 0 },
        default: "60000",
        synonym: Some("log.segment.delete.delay.ms"),
        doc: "Stored only: a node's segment file is removed as soon as no partition \
              references it.",
        ..STORED
    },
    Def {
        name: "flush.messages",
        check: Check::Long { min: 1 },
        default: LONG_MAX,
        synonym: Some("log.flush.interval.messages"),
        doc: "Stored only: every acknowledged batch is already fsync'd (group commit).",
        ..STORED
    },
    Def {
        name: "flush.ms",
        check: Check::Long { min: 0 },
        default: LONG_MAX,
        synonym: Some("log.flush.interval.ms"),
        doc: "Stored only: every acknowledged batch is already fsync'd (group commit).",
        ..STORED
    },
    Def {
        name: "follower.replication.throttled.replicas",
        check: Check::Replicas,
        default: "",
        doc: "Stored only: Raft replication in phxq is not throttled.",
        ..STORED
    },
    Def {
        name: "index.interval.bytes",
        check: Check::Int {
            min: 0,
            max: I32_MAX,
            or: None,
        },
        default: "4096",
        synonym: Some("log.index.interval.bytes"),
        doc: "Stored only: phxq indexes every batch (in redb), not every so many bytes.",
        ..STORED
    },
    Def {
        name: "leader.replication.throttled.replicas",
        check: Check::Replicas,
        default: "",
        doc: "Stored only: Raft replication in phxq is not throttled.",
        ..STORED
    },
    Def {
        name: "local.retention.bytes",
        check: Check::Long { min: -2 },
        default: "-2",
        synonym: Some("log.local.retention.bytes"),
        doc: "Stored only: phxq has no tiered storage; retention.bytes applies.",
        ..STORED
    },
    Def {
        name: "local.retention.ms",
        check: Check::Long { min: -2 },
        default: "-2",
        synonym: Some("log.local.retention.ms"),
        doc: "Stored only: phxq has no tiered storage; retention.ms applies.",
        ..STORED
    },
    Def {
        name: "max.compaction.lag.ms",
        check: Check::Long { min: 1 },
        default: LONG_MAX,
        synonym: Some("log.cleaner.max.compaction.lag.ms"),
        broker: Some(|c| c.log.cleaner_max_compaction_lag_ms.to_string()),
        doc: "A dirty (not yet compacted) segment older than this is compacted whatever the \
              dirty ratio.",
        ..STORED
    },
    Def {
        name: "max.message.bytes",
        check: Check::Int {
            min: 0,
            max: I32_MAX,
            or: None,
        },
        default: "1048588",
        synonym: Some("message.max.bytes"),
        broker: Some(|c| c.message_max_bytes.to_string()),
        doc: "The largest record batch the topic accepts.",
        ..STORED
    },
    Def {
        name: "message.downconversion.enable",
        check: Check::Bool,
        default: "true",
        synonym: Some("log.message.downconversion.enable"),
        doc: "Stored only: phxq never down-converts (a no-op in Kafka 4 too).",
        ..STORED
    },
    Def {
        name: "message.timestamp.after.max.ms",
        check: Check::Long { min: 0 },
        default: "3600000",
        synonym: Some("log.message.timestamp.after.max.ms"),
        doc: "Stored only: phxq does not check record timestamps against its clock.",
        ..STORED
    },
    Def {
        name: "message.timestamp.before.max.ms",
        check: Check::Long { min: 0 },
        default: LONG_MAX,
        synonym: Some("log.message.timestamp.before.max.ms"),
        doc: "Stored only: phxq does not check record timestamps against its clock.",
        ..STORED
    },
    Def {
        name: "message.timestamp.difference.max.ms",
        check: Check::Long { min: 0 },
        default: LONG_MAX,
        synonym: Some("log.message.timestamp.difference.max.ms"),
        doc: "Stored only (removed in Kafka 4.0, accepted for older tools): phxq does not \
              check record timestamps against its clock.",
        ..STORED
    },
    Def {
        name: "message.timestamp.type",
        check: Check::OneOf(&["CreateTime", "LogAppendTime"]),
        default: "CreateTime",
        synonym: Some("log.message.timestamp.type"),
        refused: &["LogAppendTime"],
        why: "LogAppendTime is not implemented in phxq (only CreateTime)",
        doc: "CreateTime: records keep the timestamp the producer gave them. LogAppendTime is \
              refused.",
        ..STORED
    },
    Def {
        name: "min.cleanable.dirty.ratio",
        check: Check::Ratio,
        default: "0.5",
        synonym: Some("log.cleaner.min.cleanable.ratio"),
        broker: Some(|c| c.log.cleaner_min_cleanable_ratio.to_string()),
        doc: "A partition is compacted once its dirty bytes are this share of its cleanable \
              bytes.",
        ..STORED
    },
    Def {
        name: "min.compaction.lag.ms",
        check: Check::Long { min: 0 },
        default: "0",
        synonym: Some("log.cleaner.min.compaction.lag.ms"),
        broker: Some(|c| c.log.cleaner_min_compaction_lag_ms.to_string()),
        doc: "Segments whose newest record is younger than this are not compacted.",
        ..STORED
    },
    Def {
        name: "min.insync.replicas",
        check: Check::Int {
            min: 1,
            max: I32_MAX,
            or: None,
        },
        default: "1",
        synonym: Some("min.insync.replicas"),
        doc: "Stored only: acks=all waits for a majority of the partition's Raft group, \
              whatever this says.",
        ..STORED
    },
    Def {
        name: "preallocate",
        check: Check::Bool,
        default: "false",
        synonym: Some("log.preallocate"),
        doc: "Stored only: segment files are shared by a node's partitions and grow as \
              written.",
        ..STORED
    },
    Def {
        name: "remote.log.copy.disable",
        check: Check::Bool,
        default: "false",
        doc: "Stored only: phxq has no tiered storage.",
        ..STORED
    },
    Def {
        name: "remote.log.delete.on.disable",
        check: Check::Bool,
        default: "false",
        doc: "Stored only: phxq has no tiered storage.",
        ..STORED
    },
    Def {
        name: "remote.storage.enable",
        check: Check::Bool,
        default: "false",
        refused: &["true"],
        why: "tiered storage is not implemented in phxq (only false)",
        doc: "false only: phxq has no tiered storage (as a Kafka broker without \
              remote.log.storage.system.enable).",
        ..STORED
    },
    Def {
        name: "retention.bytes",
        check: Check::Long { min: -1 },
        default: "-1",
        synonym: Some("log.retention.bytes"),
        broker: Some(|c| c.log.retention_bytes.to_string()),
        doc: "Oldest segments of a partition are deleted while the rest still hold at least \
              this many bytes. -1: no size limit.",
        ..STORED
    },
    Def {
        name: "retention.ms",
        check: Check::Long { min: -1 },
        default: "604800000",
        synonym: Some("log.retention.ms"),
        broker: Some(|c| c.log.retention_ms().to_string()),
        doc: "A segment is deleted once its newest record is older than this. -1: no time limit.",
        ..STORED
    },
    Def {
        name: "segment.bytes",
        // Kafka 4 asks for at least 1 MiB; phxq takes smaller segments (tests use them).
        check: Check::Int {
            min: 14,
            max: I32_MAX,
            or: None,
        },
        default: "1073741824",
        synonym: Some("log.segment.bytes"),
        broker: Some(|c| c.log.segment_bytes.to_string()),
        doc: "Size of a partition's segments, the unit retention deletes. Disk space comes back \
              when whole segment files of the node (log.segment.bytes) are unreferenced.",
        ..STORED
    },
    Def {
        name: "segment.index.bytes",
        check: Check::Int {
            min: 4,
            max: I32_MAX,
            or: None,
        },
        default: "10485760",
        synonym: Some("log.index.size.max.bytes"),
        doc: "Stored only: phxq's index is in redb and has no per-segment size.",
        ..STORED
    },
    Def {
        name: "segment.jitter.ms",
        check: Check::Long { min: 0 },
        default: "0",
        synonym: Some("log.roll.jitter.ms"),
        doc: "Stored only: segments roll at segment.ms exactly.",
        ..STORED
    },
    Def {
        name: "segment.ms",
        check: Check::Long { min: 1 },
        default: "604800000",
        synonym: Some("log.roll.ms"),
        broker: Some(|c| c.log.segment_ms().to_string()),
        doc: "A partition's segment rolls once its records span this long.",
        ..STORED
    },
    Def {
        name: "unclean.leader.election.enable",
        check: Check::Bool,
        default: "false",
        synonym: Some("unclean.leader.election.enable"),
        doc: "Stored only: leaders are elected by Raft, never uncleanly.",
        ..STORED
    },
];

/// The topic config called `name`.
pub fn def(name: &str) -> Option<&'static Def> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one value of `def` against Kafka's type and range, then against what phxq
/// honours.
pub fn check_value(def: &Def, value: &str) -> Result<(), String> {
    let name = def.name;
    let v = value.trim();
    let valid = match def.check {
        Check::Int { min, max, or } => v
            .parse::<i32>()
            .is_ok_and(|n| (min..=max).contains(&i64::from(n)) || Some(i64::from(n)) == or),
        Check::Long { min } => v.parse::<i64>().is_ok_and(|n| n >= min),
        Check::Ratio => v.parse::<f64>().is_ok_and(|n| (0.0..=1.0).contains(&n)),
        Check::Bool => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        Check::OneOf(values) => values.contains(&v),
        Check::ListOf(values) => list_items(v).iter().all(|i| values.contains(i)),
        Check::Replicas => {
            let items = list_items(v);
            items == ["*"]
                || items.iter().all(|i| {
                    i.split_once(':').is_some_and(|(p, b)| {
                        let digits = |s: &str| {
                            let s = s.trim();
                            !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
                        };
                        digits(p) && digits(b)
                    })
                })
        }
    };
    if !valid {
        return Err(format!(
            "{name}: invalid value {value:?}, {}",
            expected(def)
        ));
    }
    let items = match def.check {
        Check::ListOf(_) => list_items(v),
        Check::Bool => vec![if v.eq_ignore_ascii_case("true") {
            "true"
        } else {
            "false"
        }],
        _ => vec![v],
    };
    if let Some(bad) = items.iter().find(|i| def.refused.contains(i)) {
        return Err(format!("{name}={bad} is not supported: {}", def.why));
    }
    if matches!(def.check, Check::ListOf(_)) && items.is_empty() {
        return Err(format!("{name} must not be empty: {}", def.why));
    }
    Ok(())
}

/// What `def`'s check accepts, for messages.
fn expected(def: &Def) -> String {
    match def.check {
        Check::Int { min, max, or } => {
            let range = if max == I32_MAX {
                format!("an int of at least {min}")
            } else {
                format!("an int in [{min}, {max}]")
            };
            match or {
                Some(o) => format!("expected {range} or {o}"),
                None => format!("expected {range}"),
            }
        }
        Check::Long { min } => format!("expected a long of at least {min}"),
        Check::Ratio => "expected a double in [0, 1]".into(),
        Check::Bool => "expected true or false".into(),
        Check::OneOf(v) => format!("expected one of {}", v.join(", ")),
        Check::ListOf(v) => format!("expected a list of {}", v.join(", ")),
        Check::Replicas => "expected * or a list of partition:broker".into(),
    }
}

/// Checks configs given to CreateTopics or left by AlterConfigs: known names, values of
/// the right type that phxq honours, and Kafka's cross-config rule
/// (`min.compaction.lag.ms` not above `max.compaction.lag.ms`).
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        let def = def(name).ok_or_else(|| format!("unknown topic config name: {name}"))?;
        check_value(def, value)?;
    }
    let lag = |name: &str| {
        configs
            .get(name)
            .map(String::as_str)
            .or(def(name).map(|d| d.default))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    let (min, max) = (lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms"));
    if min > max {
        return Err(format!(
            "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
        ));
    }
    Ok(())
}

/// For IncrementalAlterConfigs APPEND and SUBTRACT: the value a LIST config has when the
/// topic does not set it (Kafka's default), or why the operation does not apply.
pub fn list_default(name: &str) -> Result<String, String> {
    match def(name) {
        Some(d) if d.check.kind() == LIST => Ok(d.default.to_string()),
        Some(_) => Err(format!(
            "{name} is not a list config: APPEND and SUBTRACT do not apply"
        )),
        None => Err(format!("unknown topic config name: {name}")),
    }
}

/// A topic config's value when the topic does not set it: `(value, comes from the
/// broker's configuration)`.
pub fn default_value(config: &Config, def: &Def) -> (String, bool) {
    match def.broker {
        Some(broker) => (broker(config), true),
        None => (def.default.to_string(), false),
    }
}

/// The value of an integer config of the topic: its own, else its default.
fn long(config: &Config, topic: &Topic, name: &str) -> i64 {
    let own = topic.configs.get(name).and_then(|v| v.trim().parse().ok());
    own.unwrap_or_else(|| {
        def(name)
            .and_then(|d| default_value(config, d).0.parse().ok())
            .unwrap_or(-1)
    })
}

/// The largest record batch the topic accepts.
pub fn max_message_bytes(broker: &Broker, topic: &Topic) -> i32 {
    topic
        .configs
        .get("max.message.bytes")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| broker.broker_configs.effective().message_max_bytes)
}
/// The items of the topic's `cleanup.policy` (its own, else `log.cleanup.policy`).
fn cleanup_policy(config: &Config, topic: &Topic) -> (bool, bool) {
    let value = topic
        .configs
        .get("cleanup.policy")
        .cloned()
        .unwrap_or_else(|| config.log.cleanup_policy.clone());
    let items = list_items(&value);
    (items.contains(&"delete"), items.contains(&"compact"))
}

/// Whether `topic` is compacted (`cleanup.policy` holds `compact`): records need keys.
pub fn is_compacted(config: &Config, topic: &Topic) -> bool {
    cleanup_policy(config, topic).1
}

/// How long and how much of each partition of `topic` to keep: its retention and segment
/// configs over the broker's `[log]` defaults. A negative limit is no limit; a topic whose
/// `cleanup.policy` lacks `delete` has none (as in Kafka).
pub fn retention_policy(config: &Config, topic: &Topic) -> RetentionPolicy {
    let deletes = cleanup_policy(config, topic).0;
    let limit = |v: i64| (deletes && v >= 0).then_some(v);
    RetentionPolicy {
        retention_ms: limit(long(config, topic, "retention.ms")),
        retention_bytes: limit(long(config, topic, "retention.bytes")).map(|v| v as u64),
        segment_bytes: long(config, topic, "segment.bytes").max(1) as u64,
        segment_ms: Some(long(config, topic, "segment.ms")).filter(|v| *v > 0),
    }
}

/// How `topic`'s partitions are compacted, None when its `cleanup.policy` lacks `compact`:
/// its compaction configs over the broker's `log.cleaner.*` defaults.
pub fn compaction_policy(config: &Config, topic: &Topic) -> Option<CompactionPolicy> {
    if !is_compacted(config, topic) {
        return None;
    }
    let ratio = topic
        .configs
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(config.log.cleaner_min_cleanable_ratio);
    let segments = retention_policy(config, topic);
    Some(CompactionPolicy {
        delete_retention_ms: long(config, topic, "delete.retention.ms").max(0),
        min_lag_ms: long(config, topic, "min.compaction.lag.ms").max(0),
        max_lag_ms: long(config, topic, "max.compaction.lag.ms").max(1),
        min_dirty_ratio: ratio,
        segment_bytes: segments.segment_bytes,
        segment_ms: segments.segment_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str, v: &str) -> BTreeMap<String, String> {
        [(k.to_string(), v.to_string())].into()
    }

    #[test]
    fn accepts_every_kafka_config_with_valid_values() {
        let ok: BTreeMap<_, _> = [
            ("max.message.bytes".to_string(), "2048".to_string()),
            ("cleanup.policy".into(), "compact,delete".into()),
            ("retention.ms".into(), "-1".into()),
            ("retention.bytes".into(), "10737418240".into()),
            ("segment.bytes".into(), "1048576".into()),
            ("segment.ms".into(), "604800000".into()),
            ("index.interval.bytes".into(), "4096".into()),
            ("segment.index.bytes".into(), "10485760".into()),
            ("segment.jitter.ms".into(), "100".into()),
            ("preallocate".into(), "TRUE".into()),
            ("file.delete.delay.ms".into(), "0".into()),
            ("flush.messages".into(), "9223372036854775807".into()),
            ("flush.ms".into(), "1000".into()),
            ("unclean.leader.election.enable".into(), "false".into()),
            ("message.downconversion.enable".into(), "true".into()),
            ("local.retention.ms".into(), "-2".into()),
            ("local.retention.bytes".into(), "-2".into()),
            ("remote.storage.enable".into(), "false".into()),
            (
                "follower.replication.throttled.replicas".into(),
                "0:1, 1:2".into(),
            ),
            ("leader.replication.throttled.replicas".into(), "*".into()),
            ("min.cleanable.dirty.ratio".into(), "0.75".into()),
            ("min.compaction.lag.ms".into(), "10".into()),
            ("max.compaction.lag.ms".into(), "20".into()),
            ("delete.retention.ms".into(), "86400000".into()),
            ("message.timestamp.difference.max.ms".into(), "1000".into()),
            ("message.timestamp.before.max.ms".into(), "1000".into()),
            ("message.timestamp.after.max.ms".into(), "1000".into()),
            ("min.insync.replicas".into(), "2".into()),
            ("compression.gzip.level".into(), "-1".into()),
            ("compression.zstd.level".into(), "-5".into()),
            ("compression.type".into(), "producer".into()),
            ("message.timestamp.type".into(), "CreateTime".into()),
        ]
        .into();
        assert!(validate(&ok).is_ok(), "{:?}", validate(&ok));
        for d in TOPIC_CONFIGS {
            assert!(check_value(d, d.default).is_ok(), "default of {}", d.name);
            assert!(validate(&one(d.name, d.default)).is_ok(), "{}", d.name);
        }
    }

    #[test]
    fn refuses_bad_types_ranges_unknown_names_and_what_phxq_cannot_honour() {
        for (k, v) in [
            ("max.message.bytes", "-5"),
            ("segment.bytes", "1"),
            ("segment.bytes", "10737418240"),
            ("segment.ms", "0"),
            ("retention.ms", "-2"),
            ("retention.bytes", "lots"),
            ("index.interval.bytes", "-1"),
            ("segment.index.bytes", "3"),
            ("preallocate", "yes"),
            ("flush.messages", "0"),
            ("local.retention.ms", "-3"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.insync.replicas", "0"),
            ("compression.gzip.level", "0"),
            ("compression.lz4.level", "18"),
            ("follower.replication.throttled.replicas", "0-1"),
            ("leader.replication.throttled.replicas", "*,0:1"),
            ("cleanup.policy", "shred"),
            ("cleanup.policy", ""),
            ("message.timestamp.type", "Now"),
            ("index.intervals.bytes", "4096"),
        ] {
            assert!(validate(&one(k, v)).is_err(), "{k}={v} should be refused");
        }
        for (k, v, why) in [
            (
                "compression.type",
                "zstd",
                "recompression is not implemented",
            ),
            (
                "message.timestamp.type",
                "LogAppendTime",
                "LogAppendTime is not implemented",
            ),
            (
                "remote.storage.enable",
                "True",
                "tiered storage is not implemented",
            ),
        ] {
            let e = validate(&one(k, v)).unwrap_err();
            assert!(e.contains(why), "{k}={v}: {e}");
        }
        let lags: BTreeMap<_, _> = [
            ("min.compaction.lag.ms".to_string(), "10".to_string()),
            ("max.compaction.lag.ms".into(), "5".into()),
        ]
        .into();
        assert!(validate(&lags).is_err());
    }

    #[test]
    fn list_operations_apply_to_list_configs_only() {
        assert_eq!(list_default("cleanup.policy").unwrap(), "delete");
        assert_eq!(
            list_default("leader.replication.throttled.replicas").unwrap(),
            ""
        );
        assert!(list_default("retention.ms").is_err());
        assert!(list_default("no.such.config").is_err());
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

    #[test]
    fn cleanup_policy_decides_retention_and_compaction() {
        let mut config = Config::default();
        config.log.retention_bytes = 5000;
        // compact only: no retention (as in Kafka), compaction with the broker defaults.
        let t = topic(&[("cleanup.policy", "compact")]);
        assert!(!retention_policy(&config, &t).limits());
        assert_eq!(retention_policy(&config, &t).segment_bytes, 1 << 30);
        let c = compaction_policy(&config, &t).unwrap();
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!((c.min_lag_ms, c.max_lag_ms), (0, i64::MAX));
        assert_eq!(c.min_dirty_ratio, 0.5);
        assert!(is_compacted(&config, &t));
        // compact,delete: both, with the topic's own values.
        let t = topic(&[
            ("cleanup.policy", "compact, delete"),
            ("delete.retention.ms", "10"),
            ("min.cleanable.dirty.ratio", "0.1"),
            ("min.compaction.lag.ms", "5"),
        ]);
        assert_eq!(retention_policy(&config, &t).retention_bytes, Some(5000));
        let c = compaction_policy(&config, &t).unwrap();
        assert_eq!(
            (c.delete_retention_ms, c.min_lag_ms, c.min_dirty_ratio),
            (10, 5, 0.1)
        );
        // delete (the default): no compaction; log.cleanup.policy changes the default.
        assert!(compaction_policy(&config, &topic(&[])).is_none());
        config.log.cleanup_policy = "compact".into();
        assert!(is_compacted(&config, &topic(&[])));
        assert!(!is_compacted(
            &config,
            &topic(&[("cleanup.policy", "delete")])
        ));
    }
}
