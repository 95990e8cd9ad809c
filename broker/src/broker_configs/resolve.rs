//! Which value of a broker config is in effect on one broker, and why (pure).
//!
//! Precedence, as in Kafka: a topic's own config, then the dynamic per-broker config
//! (DYNAMIC_BROKER_CONFIG), then the dynamic cluster-wide default
//! (DYNAMIC_DEFAULT_BROKER_CONFIG), then phxq's running configuration: file, environment,
//! flags (STATIC_BROKER_CONFIG), then Kafka's default (DEFAULT_CONFIG).
//!
//! `log.retention.ms`, `log.retention.minutes` and `log.retention.hours` are one setting
//! in three units, and so are `log.roll.ms` and `log.roll.hours`: the highest layer that
//! sets any of them decides (a dynamic `log.retention.hours` wins over a static
//! `log.retention.ms`, as Kafka's overrideProps does), and within one layer the
//! millisecond form wins, then minutes, then hours. `log.retention.ms` and `log.roll.ms`
//! describe the value in effect, whichever form set it; the synonym chain lists every
//! form that is set, layer by layer, in Kafka's order.

use std::collections::BTreeMap;

use super::defs::{self, BrokerDef};
use crate::config::Config;
use crate::config_ops;
use crate::topic_configs::{check_value, LIST};

/// Explicitly set dynamic configs of one level (name -> value).
pub type Values = BTreeMap<String, String>;

/// DescribeConfigs config sources (Kafka's `ConfigSource` ids).
pub const TOPIC_CONFIG: i8 = 1;
pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
pub const STATIC_BROKER_CONFIG: i8 = 4;
pub const DEFAULT_CONFIG: i8 = 5;

/// The layers below a topic's own configs, as one broker sees them.
#[derive(Clone, Copy)]
pub struct Layers<'a> {
    pub config: &'a Config,
    /// Dynamic configs of this broker.
    pub broker: &'a Values,
    /// Dynamic cluster-wide defaults.
    pub default: &'a Values,
}

/// A config's value in effect, where it comes from, and the synonyms (name, value,
/// source) in Kafka's order, the one in effect first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub value: Option<String>,
    pub source: i8,
    pub synonyms: Vec<(String, String, i8)>,
}

/// The forms of one setting, the winning one first; `[name]` for most configs.
fn forms(name: &str) -> &[&'static str] {
    const RETENTION: &[&str] = &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ];
    const ROLL: &[&str] = &["log.roll.ms", "log.roll.hours"];
    match name {
        "log.retention.ms" => RETENTION,
        "log.roll.ms" => ROLL,
        _ => &[],
    }
}

/// `value` of form `form` in the unit of `name` (minutes and hours to milliseconds; a
/// negative value is -1, no limit, as Kafka reads it).
fn in_unit_of(name: &str, form: &str, value: &str) -> String {
    let per = match form {
        f if f == name => return value.to_string(),
        "log.retention.minutes" => 60_000i64,
        _ => 3_600_000,
    };
    match value.trim().parse::<i64>() {
        Ok(v) if v < 0 => "-1".into(),
        Ok(v) => v.checked_mul(per).map_or("-1".into(), |ms| ms.to_string()),
        Err(_) => value.to_string(),
    }
}

/// The value of `def` in effect under `layers`.
pub fn resolve(layers: &Layers, def: &BrokerDef) -> Resolved {
    let name = def.name;
    let own = [name];
    let group = match forms(name) {
        [] => &own[..],
        g => g,
    };
    let mut synonyms = Vec::new();
    for (values, source) in [
        (layers.broker, DYNAMIC_BROKER_CONFIG),
        (layers.default, DYNAMIC_DEFAULT_BROKER_CONFIG),
    ] {
        for form in group {
            if let Some(v) = values.get(*form) {
                synonyms.push((form.to_string(), v.clone(), source));
            }
        }
    }
    if let Some(v) = def.static_value(layers.config) {
        synonyms.push((name.to_string(), v, STATIC_BROKER_CONFIG));
    }
    if let Some(d) = def.default {
        synonyms.push((name.to_string(), d.to_string(), DEFAULT_CONFIG));
    }
    let (value, source) = match synonyms.first() {
        Some((form, v, source)) => (Some(in_unit_of(name, form, v)), *source),
        None => (None, DEFAULT_CONFIG),
    };
    Resolved {
        value,
        source,
        synonyms,
    }
}

/// The view of topic config `topic` for a topic that sets it to `own` (or not): the
/// topic's value, else its broker config's in effect, else Kafka's default of it.
pub fn resolve_topic(
    layers: &Layers,
    topic: &str,
    kafka_default: &str,
    own: Option<&str>,
) -> Resolved {
    let below = match defs::of_topic(topic) {
        Some(d) => resolve(layers, d),
        None => Resolved {
            value: Some(kafka_default.to_string()),
            source: DEFAULT_CONFIG,
            synonyms: Vec::new(),
        },
    };
    match own {
        Some(v) => {
            let mut synonyms = vec![(topic.to_string(), v.to_string(), TOPIC_CONFIG)];
            synonyms.extend(below.synonyms);
            Resolved {
                value: Some(v.to_string()),
                source: TOPIC_CONFIG,
                synonyms,
            }
        }
        None => below,
    }
}

/// The running configuration with the dynamic configs in effect applied to the settings
/// phxq reads at run time (topic defaults of retention, segments and record size).
pub fn effective(layers: &Layers) -> Config {
    let mut c = layers.config.clone();
    let dynamic_text = |name: &str| {
        let r = resolve(layers, defs::def(name)?);
        let dynamic = matches!(
            r.source,
            DYNAMIC_BROKER_CONFIG | DYNAMIC_DEFAULT_BROKER_CONFIG
        );
        r.value.filter(|_| dynamic).map(|v| v.trim().to_string())
    };
    let dynamic = |name: &str| dynamic_text(name)?.parse::<i64>().ok();
    if let Some(v) = dynamic_text("log.cleanup.policy") {
        c.log.cleanup_policy = v;
    }
    if let Some(v) = dynamic("log.cleaner.delete.retention.ms") {
        c.log.cleaner_delete_retention_ms = v;
    }
    if let Some(v) = dynamic("log.cleaner.min.compaction.lag.ms") {
        c.log.cleaner_min_compaction_lag_ms = v;
    }
    if let Some(v) = dynamic("log.cleaner.max.compaction.lag.ms") {
        c.log.cleaner_max_compaction_lag_ms = v;
    }
    if let Some(v) = dynamic_text("log.cleaner.min.cleanable.ratio").and_then(|v| v.parse().ok()) {
        c.log.cleaner_min_cleanable_ratio = v;
    }
    if let Some(v) = dynamic("log.retention.ms") {
        c.log.retention_ms = Some(v);
    }
    if let Some(v) = dynamic("log.retention.bytes") {
        c.log.retention_bytes = v;
    }
    if let Some(v) = dynamic("log.segment.bytes") {
        c.log.segment_bytes = v.max(1) as u64;
    }
    if let Some(v) = dynamic("log.roll.ms") {
        c.log.roll_ms = Some(v);
    }
    if let Some(v) = dynamic("message.max.bytes").and_then(|v| i32::try_from(v).ok()) {
        c.message_max_bytes = v;
    }
    c
}

/// Checks the dynamic configs a level would hold after a change, with Kafka's messages:
/// read-only names are refused ("Cannot update these configs dynamically"), unknown
/// names and invalid values too.
pub fn validate(values: &Values) -> Result<(), String> {
    let read_only: Vec<&str> = values
        .keys()
        .filter(|n| defs::def(n).is_some_and(|d| !d.dynamic()))
        .map(String::as_str)
        .collect();
    if !read_only.is_empty() {
        return Err(format!(
            "Cannot update these configs dynamically: Set({})",
            read_only.join(", ")
        ));
    }
    for (name, value) in values {
        let Some(check) = defs::def(name).and_then(|d| d.check.as_ref()) else {
            return Err(format!(
                "Unknown broker config {name}: phxq has no such config (phxq config describe \
                 --broker lists them)"
            ));
        };
        check_value(check, value)?;
    }
    Ok(())
}

/// For IncrementalAlterConfigs APPEND and SUBTRACT: Kafka's default of a LIST broker
/// config, or why they do not apply.
pub fn list_default(name: &str) -> Result<String, String> {
    match defs::def(name) {
        Some(d) if d.kind == LIST => Ok(d.default.unwrap_or("").to_string()),
        Some(_) => Err(format!(
            "{name} is not a list config: APPEND and SUBTRACT do not apply"
        )),
        None => Err(format!("Unknown broker config {name}")),
    }
}

/// `values` after `ops`, checked.
pub fn edit(values: Values, ops: &[config_ops::Op]) -> Result<Values, String> {
    let next = config_ops::apply(values, ops, list_default)?;
    validate(&next)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_ops::Op;

    fn vals(v: &[(&str, &str)]) -> Values {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn syn(n: &str, v: &str, s: i8) -> (String, String, i8) {
        (n.to_string(), v.to_string(), s)
    }

    fn at(config: &Config, broker: &Values, default: &Values, name: &str) -> Resolved {
        let layers = Layers {
            config,
            broker,
            default,
        };
        resolve(&layers, defs::def(name).unwrap())
    }

    #[test]
    fn per_broker_wins_over_cluster_default_over_static_over_kafka_default() {
        let c = Config::default();
        let none = Values::new();
        let r = at(&c, &none, &none, "log.retention.bytes");
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("-1"), STATIC_BROKER_CONFIG)
        );
        let default = vals(&[("log.retention.bytes", "1000")]);
        let r = at(&c, &none, &default, "log.retention.bytes");
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("1000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
        );
        let broker = vals(&[("log.retention.bytes", "7")]);
        let r = at(&c, &broker, &default, "log.retention.bytes");
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("7"), DYNAMIC_BROKER_CONFIG)
        );
        assert_eq!(
            r.synonyms,
            vec![
                syn("log.retention.bytes", "7", DYNAMIC_BROKER_CONFIG),
                syn("log.retention.bytes", "1000", DYNAMIC_DEFAULT_BROKER_CONFIG),
                syn("log.retention.bytes", "-1", STATIC_BROKER_CONFIG),
                syn("log.retention.bytes", "-1", DEFAULT_CONFIG),
            ]
        );
        // A config without a static value in phxq: dynamic, else Kafka's default.
        let r = at(&c, &none, &none, "log.index.interval.bytes");
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("4096"), DEFAULT_CONFIG)
        );
        let r = at(&c, &none, &none, "log.retention.minutes");
        assert_eq!((r.value, r.source), (None, DEFAULT_CONFIG));
    }

    #[test]
    fn retention_units_the_higher_layer_decides_then_ms_minutes_hours() {
        let c = Config::default();
        let none = Values::new();
        let default = vals(&[("log.retention.hours", "2")]);
        let r = at(&c, &none, &default, "log.retention.ms");
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("7200000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
        );
        assert_eq!(
            r.synonyms[0],
            syn("log.retention.hours", "2", DYNAMIC_DEFAULT_BROKER_CONFIG)
        );
        let default = vals(&[("log.retention.hours", "2"), ("log.retention.minutes", "3")]);
        let broker = vals(&[("log.retention.hours", "-1")]);
        let r = at(&c, &none, &default, "log.retention.ms");
        assert_eq!(r.value.as_deref(), Some("180000"));
        let r = at(&c, &broker, &default, "log.retention.ms");
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("-1"), DYNAMIC_BROKER_CONFIG)
        );
        // The hours form itself describes its own layers.
        let r = at(&c, &none, &default, "log.retention.hours");
        assert_eq!(r.value.as_deref(), Some("2"));
        let roll = vals(&[("log.roll.hours", "1")]);
        let r = at(&c, &none, &roll, "log.roll.ms");
        assert_eq!(r.value.as_deref(), Some("3600000"));
    }

    #[test]
    fn a_topic_config_follows_its_broker_config_in_effect() {
        let c = Config::default();
        let none = Values::new();
        let default = vals(&[("log.retention.ms", "5000")]);
        let layers = Layers {
            config: &c,
            broker: &none,
            default: &default,
        };
        let r = resolve_topic(&layers, "retention.ms", "604800000", None);
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("5000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
        );
        assert_eq!(
            r.synonyms,
            vec![
                syn("log.retention.ms", "5000", DYNAMIC_DEFAULT_BROKER_CONFIG),
                syn("log.retention.ms", "604800000", STATIC_BROKER_CONFIG),
                syn("log.retention.ms", "604800000", DEFAULT_CONFIG),
            ]
        );
        let r = resolve_topic(&layers, "retention.ms", "604800000", Some("1"));
        assert_eq!((r.value.as_deref(), r.source), (Some("1"), TOPIC_CONFIG));
        assert_eq!(r.synonyms.len(), 4);
        let e = effective(&layers);
        assert_eq!(e.log.retention_ms(), 5000);
        assert_eq!(e.message_max_bytes, c.message_max_bytes);
        let r = resolve_topic(&layers, "leader.replication.throttled.replicas", "", None);
        assert_eq!((r.value.as_deref(), r.source), (Some(""), DEFAULT_CONFIG));
    }

    #[test]
    fn effective_config_takes_the_dynamic_values_only() {
        let mut c = Config::default();
        c.log.retention_ms = Some(42);
        let none = Values::new();
        let layers = Layers {
            config: &c,
            broker: &none,
            default: &none,
        };
        assert_eq!(effective(&layers).log.retention_ms, Some(42));
        let broker = vals(&[
            ("message.max.bytes", "5000"),
            ("log.segment.bytes", "4096"),
            ("log.roll.hours", "2"),
        ]);
        let layers = Layers {
            config: &c,
            broker: &broker,
            default: &none,
        };
        let e = effective(&layers);
        assert_eq!(e.message_max_bytes, 5000);
        assert_eq!(e.log.segment_bytes, 4096);
        assert_eq!(e.log.segment_ms(), 7_200_000);
        assert_eq!(e.log.retention_ms(), 42);
    }

    #[test]
    fn validation_read_only_unknown_and_invalid_values() {
        assert!(validate(&vals(&[("log.retention.ms", "1000")])).is_ok());
        let e = validate(&vals(&[("log.dirs", "/x"), ("broker.id", "3")])).unwrap_err();
        assert_eq!(
            e,
            "Cannot update these configs dynamically: Set(broker.id, log.dirs)"
        );
        assert!(validate(&vals(&[("log.retention.check.interval.ms", "5")]))
            .unwrap_err()
            .starts_with("Cannot update"));
        assert!(validate(&vals(&[("log.retension.ms", "5")]))
            .unwrap_err()
            .contains("Unknown broker config"));
        for (k, v) in [
            ("log.retention.ms", "-7"),
            ("log.retention.hours", "lots"),
            ("log.roll.hours", "0"),
            ("message.max.bytes", "-1"),
            ("log.cleanup.policy", "shred"),
        ] {
            let e = validate(&vals(&[(k, v)])).unwrap_err();
            assert!(e.starts_with(k), "{e}");
        }
    }

    #[test]
    fn list_operations_start_from_kafkas_default() {
        let next = edit(
            Values::new(),
            &[Op::Subtract("log.cleanup.policy".into(), "compact".into())],
        )
        .unwrap();
        assert_eq!(next, vals(&[("log.cleanup.policy", "delete")]));
        assert!(edit(
            Values::new(),
            &[Op::Append("log.retention.ms".into(), "1".into())]
        )
        .is_err());
        let next = edit(
            vals(&[("log.retention.ms", "1")]),
            &[Op::Delete("log.retention.ms".into())],
        )
        .unwrap();
        assert!(next.is_empty());
    }
}
