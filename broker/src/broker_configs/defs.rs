//! The broker configs phxq has, as DescribeConfigs shows them and AlterConfigs changes
//! them: Kafka's name, type and default, the value phxq's running configuration gives
//! it (the STATIC_BROKER_CONFIG layer), and whether it can be changed at run time.
//!
//! Rules:
//! - Dynamic (changeable without a restart, cluster-wide or per broker) are the broker
//!   configs that Kafka makes dynamic and that give topics their defaults: the broker
//!   synonym of every topic config (`log.retention.ms`, `log.segment.bytes`,
//!   `message.max.bytes`, `log.cleanup.policy`, `compression.type`, ...) plus
//!   `log.retention.minutes`, `log.retention.hours` and `log.roll.hours`. Their values are
//!   checked like the topic config's (same type, range and what phxq honours).
//! - Everything else phxq has (`broker.id`, `log.dirs`, `num.partitions`,
//!   `log.retention.check.interval.ms`, ...) is read-only, as in Kafka.

use std::sync::OnceLock;

use crate::config::Config;
use crate::topic_configs::{Check, Def, BOOLEAN, INT, LONG, STRING, TOPIC_CONFIGS};

/// A broker config.
#[derive(Clone, Copy)]
pub struct BrokerDef {
    pub name: &'static str,
    /// DescribeConfigs type.
    pub kind: i8,
    /// Kafka's default value (None: Kafka has none, e.g. `log.retention.minutes`).
    pub default: Option<&'static str>,
    /// The value phxq's running configuration (file, environment, flags) gives it.
    pub value: Static,
    /// How a dynamic value is checked (None: read-only). Its `name` is the broker
    /// config's, so messages name what the operator typed.
    pub check: Option<Def>,
    /// The topic config it is the default of, when there is one.
    pub topic: Option<&'static str>,
    pub doc: &'static str,
}

/// Where a broker config's static value comes from.
#[derive(Clone, Copy)]
pub enum Static {
    /// phxq's own key: None when the configuration leaves it unset.
    Own(fn(&Config) -> Option<String>),
    /// A topic config's broker default, when phxq's configuration has it
    /// (`topic_configs::Def::broker`).
    Topic(Option<fn(&Config) -> String>),
}

impl BrokerDef {
    pub fn dynamic(&self) -> bool {
        self.check.is_some()
    }

    /// The value phxq's running configuration gives this config (STATIC_BROKER_CONFIG).
    pub fn static_value(&self, config: &Config) -> Option<String> {
        match self.value {
            Static::Own(f) => f(config),
            Static::Topic(f) => f.map(|f| f(config)),
        }
    }
}

const fn read_only(
    name: &'static str,
    kind: i8,
    default: Option<&'static str>,
    value: fn(&Config) -> Option<String>,
    doc: &'static str,
) -> BrokerDef {
    BrokerDef {
        name,
        kind,
        default,
        value: Static::Own(value),
        check: None,
        topic: None,
        doc,
    }
}

/// A dynamic config of its own (not a topic config's synonym): the hours and minutes
/// forms of `log.retention.ms` and `log.roll.ms`.
const fn unit(
    name: &'static str,
    min: i64,
    default: Option<&'static str>,
    value: fn(&Config) -> Option<String>,
    doc: &'static str,
) -> BrokerDef {
    BrokerDef {
        name,
        kind: INT,
        default,
        value: Static::Own(value),
        check: Some(Def {
            name,
            check: Check::Int {
                min,
                max: i32::MAX as i64,
                or: None,
            },
            default: "",
            synonym: None,
            broker: None,
            refused: &[],
            why: "",
            doc,
        }),
        topic: None,
        doc,
    }
}

/// phxq's own broker configs, read-only, and the dynamic hours/minutes forms.
const OWN: &[BrokerDef] = &[
    read_only(
        "broker.id",
        INT,
        Some("-1"),
        |c| Some(c.node_id.to_string()),
        "This broker's id (node_id).",
    ),
    read_only(
        "num.partitions",
        INT,
        Some("1"),
        |c| Some(c.num_partitions.to_string()),
        "Partitions of auto-created topics.",
    ),
    read_only(
        "auto.create.topics.enable",
        BOOLEAN,
        Some("true"),
        |c| Some(c.auto_create_topics.to_string()),
        "Whether Metadata requests create unknown topics.",
    ),
    read_only(
        "socket.request.max.bytes",
        INT,
        Some("104857600"),
        |c| Some(c.socket_request_max_bytes.to_string()),
        "The largest request frame accepted.",
    ),
    read_only(
        "log.dirs",
        STRING,
        None,
        |c| Some(c.data_dir.display().to_string()),
        "The data directory (redb database and segment files).",
    ),
    read_only(
        "advertised.listeners",
        STRING,
        None,
        |c| {
            let (host, port) = c.advertised();
            Some(format!("PLAINTEXT://{host}:{port}"))
        },
        "The address given to clients in Metadata.",
    ),
    read_only(
        "default.replication.factor",
        INT,
        Some("1"),
        |_| Some("1".into()),
        "Partitions are replicated by their store group's Raft voters, whatever this says.",
    ),
    read_only(
        "log.retention.check.interval.ms",
        LONG,
        Some("300000"),
        |c| Some(c.log.retention_check_interval_ms.to_string()),
        "How often each store group's leader looks for segments retention drops \
         (read-only, as in Kafka).",
    ),
    unit(
        "log.retention.minutes",
        -1,
        None,
        |c| c.log.retention_minutes.map(|v| v.to_string()),
        "Default retention.ms of topics in minutes; log.retention.ms wins over it. -1: no \
         time limit.",
    ),
    unit(
        "log.retention.hours",
        -1,
        Some("168"),
        |c| Some(c.log.retention_hours.to_string()),
        "Default retention.ms of topics in hours; log.retention.ms and \
         log.retention.minutes win over it. -1: no time limit.",
    ),
    unit(
        "log.roll.hours",
        1,
        Some("168"),
        |c| Some(c.log.roll_hours.to_string()),
        "Default segment.ms of topics in hours; log.roll.ms wins over it.",
    ),
];

/// Every broker config phxq has: its own, then the broker synonym of every topic config.
pub fn all() -> &'static [BrokerDef] {
    static ALL: OnceLock<Vec<BrokerDef>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = OWN.to_vec();
        for t in TOPIC_CONFIGS {
            let Some(name) = t.synonym else { continue };
            all.push(BrokerDef {
                name,
                kind: t.check.kind(),
                default: Some(t.default),
                value: Static::Topic(t.broker),
                check: Some(Def { name, ..*t }),
                topic: Some(t.name),
                doc: t.doc,
            });
        }
        all
    })
}

/// The broker config called `name`.
pub fn def(name: &str) -> Option<&'static BrokerDef> {
    all().iter().find(|d| d.name == name)
}

/// The broker config that gives topics their default of topic config `topic`.
pub fn of_topic(topic: &str) -> Option<&'static BrokerDef> {
    all().iter().find(|d| d.topic == Some(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_synonyms_are_dynamic_and_phxqs_own_keys_read_only() {
        for name in [
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
            "log.retention.bytes",
            "log.segment.bytes",
            "log.roll.ms",
            "log.roll.hours",
            "log.cleanup.policy",
            "message.max.bytes",
            "compression.type",
            "log.message.timestamp.type",
            "log.message.timestamp.before.max.ms",
            "log.message.timestamp.after.max.ms",
            "min.insync.replicas",
        ] {
            assert!(def(name).unwrap().dynamic(), "{name}");
        }
        for name in [
            "broker.id",
            "log.dirs",
            "num.partitions",
            "log.retention.check.interval.ms",
        ] {
            assert!(!def(name).unwrap().dynamic(), "{name}");
        }
        assert_eq!(def("log.retention.ms").unwrap().kind, LONG);
        assert_eq!(of_topic("retention.ms").unwrap().name, "log.retention.ms");
        let names: std::collections::HashSet<_> = all().iter().map(|d| d.name).collect();
        assert_eq!(names.len(), all().len(), "no name twice");
    }

    #[test]
    fn static_values_come_from_the_running_configuration() {
        let mut c = Config::default();
        c.log.retention_bytes = 5000;
        c.message_max_bytes = 2048;
        let v = |n: &str| def(n).unwrap().static_value(&c);
        assert_eq!(v("log.retention.bytes").as_deref(), Some("5000"));
        assert_eq!(v("message.max.bytes").as_deref(), Some("2048"));
        assert_eq!(v("log.retention.ms").as_deref(), Some("604800000"));
        assert_eq!(v("log.retention.minutes"), None);
        assert_eq!(v("log.index.interval.bytes"), None);
        assert_eq!(v("broker.id").as_deref(), Some("1"));
    }
}
