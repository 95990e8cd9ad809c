//! Group configs: settings of one consumer group, set with IncrementalAlterConfigs or
//! AlterConfigs on the GROUP resource and shown by DescribeConfigs, as in Kafka 4.0.
//!
//! Rules:
//! - Only the configs in [`GROUP_CONFIGS`] exist; any other name is INVALID_CONFIG.
//! - A group config may be set before the group exists and outlives it (as in Kafka);
//!   only the values set are stored, unset ones take the broker's `[groups]` setting.
//! - Values are checked against the broker's bounds when set: the session timeout within
//!   `[groups] min_session_timeout_ms..=max_session_timeout_ms`, the heartbeat interval
//!   below the group's session timeout.
//! - `phxq.consumer.records.per.sec` and `phxq.consumer.bytes.per.sec` are PhxQueue's
//!   dequeue speed limits, `phxq.consumer.topic.records.per.sec` and
//!   `phxq.consumer.topic.bytes.per.sec` the same per topic within the group
//!   (`topic:rate,...`); `quotas/groups.rs` enforces them.
//! - They live in the metadata Raft group (`group-config/<group>` -> JSON map), so every
//!   broker sees a change once the metadata group applies it; the coordinator reads them at
//!   each heartbeat, so a change takes effect at the group's next heartbeat.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use bytes::Bytes;
use phxq_replication::{Command, CommandResponse, ReplicationError, StoreGroup};

use super::GroupConfig;
use crate::audit::reconcile::Mode;
use crate::config_ops;
pub use crate::config_ops::Op;
use crate::share::config as share;
use crate::share::dlq;
use crate::topic_configs::{BOOLEAN, INT, LIST, LONG, STRING};

const PREFIX: &str = "group-config/";

/// Kafka's name for the KIP-848 session timeout of one group.
pub const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
/// Kafka's name for the KIP-848 heartbeat interval of one group.
pub const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";
/// phxq: how many records per second the group may fetch, all members and brokers together.
pub const RECORDS_PER_SEC: &str = "phxq.consumer.records.per.sec";
/// phxq: how many bytes of record batches per second the group may fetch.
pub const BYTES_PER_SEC: &str = "phxq.consumer.bytes.per.sec";
/// phxq: per-topic dequeue speed limits within the group: `topic:records-per-sec,...`.
pub const TOPIC_RECORDS_PER_SEC: &str = "phxq.consumer.topic.records.per.sec";
/// phxq: per-topic dequeue speed limits within the group: `topic:bytes-per-sec,...`.
pub const TOPIC_BYTES_PER_SEC: &str = "phxq.consumer.topic.bytes.per.sec";
/// phxq: fetches by a member of the group of a partition whose lock another member holds
/// get no records (PhxQueue's lock on dequeue, not only on commit).
pub const FETCH_LOCK: &str = "phxq.consumer.fetch.lock.enable";
/// phxq: the standard AlterConsumerGroupOffsets (an OffsetCommit without member) on a
/// group with members performs a live replay instead of failing with UNKNOWN_MEMBER_ID.
pub const LIVE_RESET: &str = "phxq.offsets.live.reset.enable";
/// phxq: the group's real-time reconciliation: `record`, `strict` or `off` (`audit/`).
pub const AUDIT: &str = "phxq.consumer.audit";

/// A group config, its DescribeConfigs type, and where its default comes from.
pub struct Def {
    pub name: &'static str,
    pub kind: i8,
    /// The `[groups]` key whose value is the default (`None`: the default is `default`).
    pub broker_key: Option<&'static str>,
    pub doc: &'static str,
}

pub const GROUP_CONFIGS: &[Def] = &[
    Def {
        name: SESSION_TIMEOUT,
        kind: INT,
        broker_key: Some("consumer_session_timeout_ms"),
        doc: "KIP-848 members without a heartbeat for this long are removed",
    },
    Def {
        name: HEARTBEAT_INTERVAL,
        kind: INT,
        broker_key: Some("consumer_heartbeat_interval_ms"),
        doc: "how often KIP-848 members heartbeat",
    },
    Def {
        name: RECORDS_PER_SEC,
        kind: LONG,
        broker_key: None,
        doc: "dequeue speed limit: records/s the whole group may fetch (unset: unlimited)",
    },
    Def {
        name: BYTES_PER_SEC,
        kind: LONG,
        broker_key: None,
        doc: "dequeue speed limit: bytes/s of record batches the whole group may fetch (unset: unlimited)",
    },
    Def {
        name: TOPIC_RECORDS_PER_SEC,
        kind: LIST,
        broker_key: None,
        doc: "dequeue speed limits per topic within the group: topic:records-per-second, comma separated (unset: none)",
    },
    Def {
        name: TOPIC_BYTES_PER_SEC,
        kind: LIST,
        broker_key: None,
        doc: "dequeue speed limits per topic within the group: topic:bytes-per-second, comma separated (unset: none)",
    },
    Def {
        name: FETCH_LOCK,
        kind: BOOLEAN,
        broker_key: None,
        doc: "a member's fetch of a partition another member holds gets no records",
    },
    Def {
        name: LIVE_RESET,
        kind: BOOLEAN,
        broker_key: None,
        doc: "AlterConsumerGroupOffsets on a group with members replays live",
    },
    Def {
        name: AUDIT,
        kind: STRING,
        broker_key: Some("audit"),
        doc: "real-time reconciliation: record (check commits against deliveries, record skips), strict (also refuse a member's commit that skips), off",
    },
    Def {
        name: share::AUTO_OFFSET_RESET,
        kind: STRING,
        broker_key: None,
        doc: "share groups: where a share-partition without state starts: latest, earliest or by_duration:<ISO-8601 duration>",
    },
    Def {
        name: share::RECORD_LOCK_DURATION_MS,
        kind: INT,
        broker_key: Some("share.record_lock_duration_ms"),
        doc: "share groups: how long a member holds the records it acquired",
    },
    Def {
        name: share::DELIVERY_COUNT_LIMIT,
        kind: INT,
        broker_key: Some("share.delivery_count_limit"),
        doc: "share groups: deliveries of a record before it is archived",
    },
    Def {
        name: share::ISOLATION_LEVEL,
        kind: STRING,
        broker_key: None,
        doc: "share groups: read_uncommitted or read_committed",
    },
    Def {
        name: share::SESSION_TIMEOUT_MS,
        kind: INT,
        broker_key: Some("share.session_timeout_ms"),
        doc: "share groups: members without a heartbeat for this long are removed",
    },
    Def {
        name: share::HEARTBEAT_INTERVAL_MS,
        kind: INT,
        broker_key: Some("share.heartbeat_interval_ms"),
        doc: "share groups: how often members heartbeat",
    },
    Def {
        name: share::RENEW_ACKNOWLEDGE_ENABLE,
        kind: BOOLEAN,
        broker_key: None,
        doc: "share groups: members may renew their acquisition locks (KIP-1222)",
    },
    Def {
        name: dlq::TOPIC_NAME,
        kind: STRING,
        broker_key: None,
        doc: "share groups: the dead-letter topic for rejected records and records at the delivery-count limit (must exist and start with [groups.share] dlq_topic_prefix; unset: none)",
    },
    Def {
        name: dlq::COPY_RECORD,
        kind: BOOLEAN,
        broker_key: None,
        doc: "share groups: dead letters carry the original key, value and headers (else only the context headers)",
    },
];

/// A share group's dead-letter topic, if it has one.
pub fn dead_letter_target(values: &Values) -> Option<dlq::Target> {
    let topic = values.get(dlq::TOPIC_NAME)?.clone();
    Some(dlq::Target {
        topic,
        copy_record: values.get(dlq::COPY_RECORD).is_none_or(|v| v == "true"),
    })
}

/// The `share.*` values among a group's configs.
fn share_values(values: &Values) -> Values {
    values
        .iter()
        .filter(|(k, _)| share::GROUP_CONFIG_NAMES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A share group's settings: its `share.*` configs over the broker's `[groups.share]`.
/// Values were checked when set; one that no longer passes (the broker's bounds changed)
/// is left out, so the broker's value applies.
pub fn share_settings(defaults: &GroupConfig, values: &Values) -> share::ShareSettings {
    let broker = &defaults.share;
    let mut overrides = share::GroupShareOverrides::default();
    for (k, v) in share_values(values) {
        let one: Values = [(k, v)].into();
        if let Ok(o) = share::GroupShareOverrides::parse(&one, broker) {
            overrides = share::GroupShareOverrides {
                auto_offset_reset: o.auto_offset_reset.or(overrides.auto_offset_reset),
                record_lock_duration_ms: o
                    .record_lock_duration_ms
                    .or(overrides.record_lock_duration_ms),
                delivery_count_limit: o.delivery_count_limit.or(overrides.delivery_count_limit),
                isolation_level: o.isolation_level.or(overrides.isolation_level),
                session_timeout_ms: o.session_timeout_ms.or(overrides.session_timeout_ms),
                heartbeat_interval_ms: o.heartbeat_interval_ms.or(overrides.heartbeat_interval_ms),
                renew_acknowledge_enable: o
                    .renew_acknowledge_enable
                    .or(overrides.renew_acknowledge_enable),
            };
        }
    }
    overrides.resolve(broker)
}

/// The configs set on one group (names as in [`GROUP_CONFIGS`]).
pub type Values = BTreeMap<String, String>;

/// One group's settings: the configs set on it over the broker's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSettings {
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: i32,
    pub live_reset: bool,
    /// Dequeue speed limits of the whole group (`quotas/groups.rs`).
    pub records_per_sec: Option<i64>,
    pub bytes_per_sec: Option<i64>,
    /// Dequeue speed limits of single topics within the group.
    pub topic_records_per_sec: BTreeMap<String, i64>,
    pub topic_bytes_per_sec: BTreeMap<String, i64>,
    /// The consumer-group lock is enforced on fetches (`quotas/groups.rs`).
    pub fetch_lock: bool,
    /// Real-time reconciliation (`audit/`).
    pub audit: Mode,
}

impl GroupSettings {
    pub fn is_limited(&self) -> bool {
        self.records_per_sec.is_some()
            || self.bytes_per_sec.is_some()
            || !self.topic_records_per_sec.is_empty()
            || !self.topic_bytes_per_sec.is_empty()
    }

    /// Whether the group's lock holders must be known to every broker.
    pub fn needs_holders(&self) -> bool {
        self.is_limited() || self.fetch_lock
    }
}

impl GroupSettings {
    /// Settings from stored values (already validated when set; an unreadable value falls
    /// back to the default).
    pub fn resolve(defaults: &GroupConfig, values: &Values) -> GroupSettings {
        let get = |k: &str| values.get(k).and_then(|v| v.parse::<i64>().ok());
        GroupSettings {
            session_timeout_ms: get(SESSION_TIMEOUT)
                .map_or(defaults.consumer_session_timeout_ms, |v| v.max(1) as u64),
            heartbeat_interval_ms: get(HEARTBEAT_INTERVAL)
                .map_or(defaults.consumer_heartbeat_interval_ms, |v| v.max(1) as i32),
            live_reset: values.get(LIVE_RESET).is_some_and(|v| v == "true"),
            records_per_sec: get(RECORDS_PER_SEC).filter(|v| *v > 0),
            bytes_per_sec: get(BYTES_PER_SEC).filter(|v| *v > 0),
            topic_records_per_sec: values
                .get(TOPIC_RECORDS_PER_SEC)
                .and_then(|v| parse_topic_limits(v).ok())
                .unwrap_or_default(),
            topic_bytes_per_sec: values
                .get(TOPIC_BYTES_PER_SEC)
                .and_then(|v| parse_topic_limits(v).ok())
                .unwrap_or_default(),
            fetch_lock: values.get(FETCH_LOCK).is_some_and(|v| v == "true"),
            audit: values
                .get(AUDIT)
                .and_then(|v| Mode::parse(v))
                .or_else(|| Mode::parse(&defaults.audit))
                .unwrap_or(Mode::Record),
        }
    }
}

/// The value a config has on a group (None: unset and without a default, i.e. no
/// limit) and whether it is set on the group.
pub fn value_of(defaults: &GroupConfig, values: &Values, def: &Def) -> (Option<String>, bool) {
    if let Some(v) = values.get(def.name) {
        return (Some(v.clone()), true);
    }
    let v = match def.name {
        SESSION_TIMEOUT => Some(defaults.consumer_session_timeout_ms.to_string()),
        HEARTBEAT_INTERVAL => Some(defaults.consumer_heartbeat_interval_ms.to_string()),
        LIVE_RESET | FETCH_LOCK => Some("false".to_string()),
        dlq::COPY_RECORD => Some("true".to_string()),
        AUDIT => Some(defaults.audit.clone()),
        name if share::GROUP_CONFIG_NAMES.contains(&name) => {
            let s = share_settings(defaults, &Values::new());
            Some(match name {
                share::AUTO_OFFSET_RESET => s.auto_offset_reset.as_config_value(),
                share::RECORD_LOCK_DURATION_MS => s.record_lock_duration_ms.to_string(),
                share::DELIVERY_COUNT_LIMIT => s.delivery_count_limit.to_string(),
                share::ISOLATION_LEVEL => match s.isolation_level {
                    share::IsolationLevel::ReadCommitted => "read_committed".into(),
                    share::IsolationLevel::ReadUncommitted => "read_uncommitted".into(),
                },
                share::SESSION_TIMEOUT_MS => s.session_timeout_ms.to_string(),
                share::HEARTBEAT_INTERVAL_MS => s.heartbeat_interval_ms.to_string(),
                _ => s.renew_acknowledge_enable.to_string(),
            })
        }
        _ => None,
    };
    (v, false)
}

/// Checks the configs a group would have after a change: known names, values of the
/// right type within the broker's bounds.
pub fn validate(defaults: &GroupConfig, values: &Values) -> Result<(), String> {
    share::GroupShareOverrides::parse(&share_values(values), &defaults.share).map_err(|e| e.0)?;
    for (name, value) in values {
        if share::GROUP_CONFIG_NAMES.contains(&name.as_str()) {
            continue;
        }
        let def = GROUP_CONFIGS
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| format!("{name} is not a group config (known: {})", names()))?;
        match def.kind {
            BOOLEAN if value != "true" && value != "false" => {
                return Err(format!("{name} must be true or false, got {value:?}"));
            }
            INT if value.parse::<i32>().map_or(true, |v| v < 1) => {
                return Err(format!("{name} must be a positive integer, got {value:?}"));
            }
            LONG if value.parse::<i64>().map_or(true, |v| v < 1) => {
                return Err(format!("{name} must be a positive integer, got {value:?}"));
            }
            LIST => {
                parse_topic_limits(value).map_err(|e| format!("{name}: {e}"))?;
            }
            STRING
                if name == dlq::TOPIC_NAME
                    && (!value.starts_with(&defaults.share.dlq_topic_prefix)
                        || value.len() <= defaults.share.dlq_topic_prefix.len()) =>
            {
                return Err(format!(
                    "{name} must start with {:?} (the broker's [groups.share] dlq_topic_prefix), got {value:?}",
                    defaults.share.dlq_topic_prefix
                ));
            }
            STRING if name == AUDIT && Mode::parse(value).is_none() => {
                return Err(format!(
                    "{name} must be one of {}, got {value:?}",
                    Mode::NAMES.join(", ")
                ));
            }
            _ => {}
        }
    }
    let s = GroupSettings::resolve(defaults, values);
    let (min, max) = (
        defaults.min_session_timeout_ms as u64,
        defaults.max_session_timeout_ms as u64,
    );
    if !(min..=max).contains(&s.session_timeout_ms) {
        return Err(format!(
            "{SESSION_TIMEOUT} must be between {min} and {max} (the broker's min and max session timeout), got {}",
            s.session_timeout_ms
        ));
    }
    if s.heartbeat_interval_ms as u64 >= s.session_timeout_ms {
        return Err(format!(
            "{HEARTBEAT_INTERVAL} ({}) must be below {SESSION_TIMEOUT} ({})",
            s.heartbeat_interval_ms, s.session_timeout_ms
        ));
    }
    Ok(())
}

/// A per-topic limit list, `topic:rate,topic:rate` (rates positive integers; empty: none).
pub fn parse_topic_limits(value: &str) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (topic, rate) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("{item:?} is not topic:rate"))?;
        let rate = rate
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|r| *r >= 1)
            .ok_or_else(|| format!("the rate of {item:?} must be a positive integer"))?;
        let topic = topic.trim();
        if topic.is_empty() || out.insert(topic.to_string(), rate).is_some() {
            return Err(format!("{item:?}: empty or repeated topic"));
        }
    }
    Ok(out)
}

fn names() -> String {
    GROUP_CONFIGS
        .iter()
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies IncrementalAlterConfigs operations to a group's configs. APPEND and SUBTRACT
/// are refused: the group's LIST configs are `topic:rate` maps, where appending a second
/// rate for a topic would make no sense; SET the whole list instead.
pub fn apply(values: Values, ops: &[Op]) -> Result<Values, String> {
    config_ops::apply(values, ops, |name| {
        Err(format!(
            "APPEND and SUBTRACT do not apply to group configs ({name}): SET the whole value"
        ))
    })
}

fn any_audited(by_group: &HashMap<String, Values>) -> bool {
    by_group
        .values()
        .any(|v| v.get(AUDIT).is_some_and(|m| m != Mode::Off.name()))
}

fn key(group: &str) -> Bytes {
    Bytes::from(format!("{PREFIX}{group}"))
}

/// Why a group config change failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("the group's configs were changed at the same time through another broker; retry")]
    Conflict,
    #[error("{0}")]
    Replication(#[from] ReplicationError),
}

/// The group configs of the cluster, as the metadata group holds them; refreshed whenever
/// the metadata group applies something (see `cluster::balance::follow_metadata`).
#[derive(Default)]
pub struct GroupConfigRegistry {
    by_group: RwLock<HashMap<String, Values>>,
    /// Whether some group sets `phxq.consumer.audit` to other than `off`.
    audited: AtomicBool,
}

impl GroupConfigRegistry {
    pub fn load(metadata: &StoreGroup) -> anyhow::Result<GroupConfigRegistry> {
        let r = GroupConfigRegistry::default();
        r.reload(metadata)?;
        Ok(r)
    }

    /// Re-reads every group's configs from the metadata group's applied state.
    pub fn reload(&self, metadata: &StoreGroup) -> anyhow::Result<()> {
        let rows = metadata
            .kv_scan(PREFIX.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot read the group configs: {e}"))?;
        let mut all = HashMap::new();
        for (k, v) in rows {
            let group = String::from_utf8_lossy(&k[PREFIX.len()..]).to_string();
            let values: Values = serde_json::from_slice(&v).map_err(|e| {
                anyhow::anyhow!("corrupt group config record of group {group:?}: {e}")
            })?;
            all.insert(group, values);
        }
        let mut by_group = self.by_group.write().unwrap();
        *by_group = all;
        self.audited
            .store(any_audited(&by_group), Ordering::Relaxed);
        Ok(())
    }

    /// Whether some group turns its audit on itself (whatever the broker's default).
    pub fn any_audited(&self) -> bool {
        self.audited.load(Ordering::Relaxed)
    }

    /// The configs set on `group` (empty: all defaults).
    pub fn get(&self, group: &str) -> Values {
        self.by_group
            .read()
            .unwrap()
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Changes `group`'s configs with `ops` (validated against `defaults`); with
    /// `validate_only` nothing is written. The write is a compare-and-put on the metadata
    /// group, so concurrent changes through different brokers cannot lose each other.
    pub async fn alter(
        &self,
        metadata: &StoreGroup,
        defaults: &GroupConfig,
        group: &str,
        ops: &[Op],
        validate_only: bool,
    ) -> Result<Values, ConfigError> {
        let k = key(group);
        let stored = metadata.kv_get(&k)?;
        let current: Values = match &stored {
            Some(b) => serde_json::from_slice(b).map_err(|e| {
                ConfigError::Invalid(format!("stored group configs unreadable: {e}"))
            })?,
            None => Values::new(),
        };
        let next = apply(current, ops).map_err(ConfigError::Invalid)?;
        validate(defaults, &next).map_err(ConfigError::Invalid)?;
        if validate_only {
            return Ok(next);
        }
        let value = if next.is_empty() {
            None
        } else {
            Some(Bytes::from(
                serde_json::to_vec(&next).expect("map serializes"),
            ))
        };
        let cas = Command::CompareAndPut {
            key: k,
            expected: stored,
            value,
        };
        match metadata.propose_on_leader(cas).await? {
            CommandResponse::Compared(true) => {}
            _ => return Err(ConfigError::Conflict),
        }
        let mut by_group = self.by_group.write().unwrap();
        by_group.insert(group.to_string(), next.clone());
        self.audited
            .store(any_audited(&by_group), Ordering::Relaxed);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(v: &[(&str, &str)]) -> Values {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_come_from_the_broker_and_set_values_override_them() {
        let d = GroupConfig::default();
        let s = GroupSettings::resolve(&d, &Values::new());
        assert_eq!(s.session_timeout_ms, d.consumer_session_timeout_ms);
        assert_eq!(s.heartbeat_interval_ms, d.consumer_heartbeat_interval_ms);
        assert!(!s.live_reset);
        let s = GroupSettings::resolve(
            &d,
            &vals(&[(SESSION_TIMEOUT, "20000"), (LIVE_RESET, "true")]),
        );
        assert_eq!(s.session_timeout_ms, 20_000);
        assert!(s.live_reset);
        assert_eq!(
            value_of(&d, &Values::new(), &GROUP_CONFIGS[0]),
            (Some("45000".to_string()), false)
        );
    }

    #[test]
    fn validation_checks_names_types_and_bounds() {
        let d = GroupConfig::default();
        assert!(validate(&d, &vals(&[(SESSION_TIMEOUT, "30000")])).is_ok());
        for bad in [
            vals(&[("consumer.assignor", "x")]),
            vals(&[(SESSION_TIMEOUT, "abc")]),
            vals(&[(SESSION_TIMEOUT, "0")]),
            vals(&[(SESSION_TIMEOUT, "999")]),
            vals(&[(SESSION_TIMEOUT, "1800001")]),
            vals(&[(LIVE_RESET, "yes")]),
            vals(&[(RECORDS_PER_SEC, "0")]),
            vals(&[(BYTES_PER_SEC, "1.5")]),
            // The heartbeat must come more often than the session expires.
            vals(&[(SESSION_TIMEOUT, "4000")]),
            vals(&[(SESSION_TIMEOUT, "10000"), (HEARTBEAT_INTERVAL, "10000")]),
            vals(&[(AUDIT, "loud")]),
            vals(&[(TOPIC_RECORDS_PER_SEC, "orders")]),
            vals(&[(TOPIC_RECORDS_PER_SEC, "orders:0")]),
            vals(&[(TOPIC_BYTES_PER_SEC, "orders:5,orders:6")]),
            vals(&[(TOPIC_BYTES_PER_SEC, ":5")]),
        ] {
            assert!(validate(&d, &bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn topic_limits_and_audit_modes_parse() {
        let d = GroupConfig::default();
        let v = vals(&[
            (TOPIC_RECORDS_PER_SEC, "orders:1000, payments.v2:50"),
            (AUDIT, "strict"),
        ]);
        assert!(validate(&d, &v).is_ok());
        let s = GroupSettings::resolve(&d, &v);
        assert_eq!(
            s.topic_records_per_sec,
            [
                ("orders".to_string(), 1000),
                ("payments.v2".to_string(), 50)
            ]
            .into_iter()
            .collect()
        );
        assert!(s.is_limited() && s.topic_bytes_per_sec.is_empty());
        assert_eq!(s.audit, Mode::Strict);
        assert_eq!(
            GroupSettings::resolve(&d, &Values::new()).audit,
            Mode::Record
        );
    }

    #[test]
    fn operations_set_and_delete() {
        let v = apply(
            vals(&[(SESSION_TIMEOUT, "30000")]),
            &[
                Op::Set(LIVE_RESET.into(), "true".into()),
                Op::Delete(SESSION_TIMEOUT.into()),
            ],
        )
        .unwrap();
        assert_eq!(v, vals(&[(LIVE_RESET, "true")]));
        assert!(apply(
            Values::new(),
            &[Op::Append(TOPIC_RECORDS_PER_SEC.into(), "orders:5".into())]
        )
        .is_err());
    }
}
