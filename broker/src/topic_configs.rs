//! Topic configs phxq accepts (only the ones it honours, with the values it honours) and
//! what they mean for a topic: validation at CreateTopics and the record size limit.
//! Their DescribeConfigs view is in `handlers::topic_config`.

use std::collections::BTreeMap;

use crate::broker::Broker;
use crate::topics::Topic;

/// DescribeConfigs config types.
pub const BOOLEAN: i8 = 1;
pub const STRING: i8 = 2;
pub const INT: i8 = 3;
pub const LONG: i8 = 5;

/// A topic config phxq honours, with the only values it accepts.
pub struct Def {
    pub name: &'static str,
    pub kind: i8,
    /// `None`: any integer >= 0 is honoured. `Some(v)`: only `v` is (the behaviour phxq has).
    pub fixed: Option<&'static str>,
}

pub const TOPIC_CONFIGS: &[Def] = &[
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
