//! Share-group configs (KIP-932) with Kafka's names, defaults and bounds: the broker-level
//! `group.share.*` settings and the per-group `share.*` overrides set on the GROUP resource.
//!
//! Rules (as in Kafka 4.2's `ShareGroupConfig`, `GroupCoordinatorConfig` and `GroupConfig`):
//! - Broker settings have fixed ranges of their own (e.g. `group.share.delivery.count.limit`
//!   2..=10) and must be consistent: `min <= default <= max` for the record lock duration,
//!   the delivery count limit, the session timeout and the heartbeat interval, and the
//!   session timeout above the heartbeat interval. [`BrokerShareConfig::validate`] reports
//!   the first violation.
//! - A group override must be a known name ([`GROUP_CONFIG_NAMES`]), parse as its type,
//!   and lie within the broker's `group.share.min.*`/`group.share.max.*` bounds; anything
//!   else is INVALID_CONFIG ([`ConfigError`]), never a panic.
//! - Unset group configs take the broker's value; [`GroupShareOverrides::resolve`] gives the
//!   effective [`ShareSettings`] a share partition and the membership code run with.
//! - `share.auto.offset.reset` is `latest` (default), `earliest` or
//!   `by_duration:<ISO-8601 duration>` (`PnDTnHnMn.nS`, not negative); the by-duration
//!   offset lookup (ListOffsets by timestamp) belongs to the wiring step.
//! - `share.isolation.level` is parsed and carried, but the partition core does not yet
//!   filter aborted transactional records (that needs the log's aborted-transaction index,
//!   wiring step).
//! - `group.share.partition.max.record.locks` (default 2000, 100..=10000) bounds the
//!   in-flight window of every share partition (`partition.rs`), and therefore its memory.

use std::collections::BTreeMap;

/// Kafka's group config names for share groups.
pub const AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
pub const RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";
pub const DELIVERY_COUNT_LIMIT: &str = "share.delivery.count.limit";
pub const ISOLATION_LEVEL: &str = "share.isolation.level";
pub const SESSION_TIMEOUT_MS: &str = "share.session.timeout.ms";
pub const HEARTBEAT_INTERVAL_MS: &str = "share.heartbeat.interval.ms";
pub const RENEW_ACKNOWLEDGE_ENABLE: &str = "share.renew.acknowledge.enable";

/// Every share group config a GROUP resource accepts.
pub const GROUP_CONFIG_NAMES: &[&str] = &[
    AUTO_OFFSET_RESET,
    RECORD_LOCK_DURATION_MS,
    DELIVERY_COUNT_LIMIT,
    ISOLATION_LEVEL,
    SESSION_TIMEOUT_MS,
    HEARTBEAT_INTERVAL_MS,
    RENEW_ACKNOWLEDGE_ENABLE,
];

/// A config that was refused; the message names the config and the rule, as Kafka's
/// `InvalidConfigurationException` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where a share partition without persisted state starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoOffsetReset {
    Latest,
    Earliest,
    /// The first offset whose timestamp is at or after now minus this many milliseconds.
    ByDuration(u64),
}

impl AutoOffsetReset {
    pub fn parse(value: &str) -> Result<AutoOffsetReset, ConfigError> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("latest") {
            return Ok(AutoOffsetReset::Latest);
        }
        if v.eq_ignore_ascii_case("earliest") {
            return Ok(AutoOffsetReset::Earliest);
        }
        if let Some(d) = strip_prefix_ignore_case(v, "by_duration:") {
            return match parse_iso8601_duration_ms(d) {
                Some(ms) => Ok(AutoOffsetReset::ByDuration(ms)),
                None => Err(ConfigError(format!(
                    "{AUTO_OFFSET_RESET}: invalid duration '{d}' (ISO-8601 PnDTnHnMn.nS, not negative)"
                ))),
            };
        }
        Err(ConfigError(format!(
            "{AUTO_OFFSET_RESET}: invalid value '{value}' (latest, earliest or by_duration:<ISO-8601 duration>)"
        )))
    }

    pub fn as_config_value(&self) -> String {
        match self {
            AutoOffsetReset::Latest => "latest".into(),
            AutoOffsetReset::Earliest => "earliest".into(),
            AutoOffsetReset::ByDuration(ms) => {
                format!("by_duration:PT{}.{:03}S", ms / 1000, ms % 1000)
            }
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Parses the ISO-8601 durations Java's `Duration.parse` takes (`PnDTnHnMn.nS`, days at
/// most, each part optional but at least one present) into milliseconds. Negative parts,
/// overflow and anything else give `None`.
fn parse_iso8601_duration_ms(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut total: u64 = 0;
    let mut any = false;
    if !date.is_empty() {
        let n = date.strip_suffix(['D', 'd'])?;
        total = total.checked_add(parse_whole(n)?.checked_mul(86_400_000)?)?;
        any = true;
    }
    if let Some(mut t) = time {
        if t.is_empty() {
            return None;
        }
        for (unit, ms) in [('H', 3_600_000u64), ('M', 60_000)] {
            if let Some(i) = t.find([unit, unit.to_ascii_lowercase()]) {
                total = total.checked_add(parse_whole(&t[..i])?.checked_mul(ms)?)?;
                t = &t[i + 1..];
                any = true;
            }
        }
        if !t.is_empty() {
            let secs = t.strip_suffix(['S', 's'])?;
            let (whole, frac) = match secs.split_once('.') {
                Some((w, f)) => (w, f),
                None => (secs, ""),
            };
            if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut frac_ms = 0u64;
            for (i, b) in frac.bytes().take(3).enumerate() {
                frac_ms += u64::from(b - b'0') * [100, 10, 1][i];
            }
            total = total
                .checked_add(parse_whole(whole)?.checked_mul(1000)?)?
                .checked_add(frac_ms)?;
            any = true;
        }
    }
    any.then_some(total)
}

fn parse_whole(s: &str) -> Option<u64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `share.isolation.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

impl IsolationLevel {
    pub fn parse(value: &str) -> Result<IsolationLevel, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "read_uncommitted" => Ok(IsolationLevel::ReadUncommitted),
            "read_committed" => Ok(IsolationLevel::ReadCommitted),
            _ => Err(ConfigError(format!(
                "{ISOLATION_LEVEL}: invalid value '{value}' (read_committed or read_uncommitted)"
            ))),
        }
    }
}

/// The broker's share-group settings (`group.share.*`), Kafka's defaults; the `[groups.share]`
/// table of the config file, each key Kafka's name without `group.share.` and with `_`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerShareConfig {
    /// `group.share.partition.max.record.locks`: 2000, 100..=10000.
    pub partition_max_record_locks: u32,
    /// `group.share.delivery.count.limit`: 5, 2..=10.
    pub delivery_count_limit: u16,
    /// `group.share.min.delivery.count.limit`: 2, 2..=5.
    pub min_delivery_count_limit: u16,
    /// `group.share.max.delivery.count.limit`: 10, 5..=25.
    pub max_delivery_count_limit: u16,
    /// `group.share.record.lock.duration.ms`: 30000, 1000..=3600000.
    pub record_lock_duration_ms: u32,
    /// `group.share.min.record.lock.duration.ms`: 15000, 1000..=30000.
    pub min_record_lock_duration_ms: u32,
    /// `group.share.max.record.lock.duration.ms`: 60000, 30000..=3600000.
    pub max_record_lock_duration_ms: u32,
    /// `group.share.session.timeout.ms` and its bounds: 45000 (45000..=60000).
    pub session_timeout_ms: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// `group.share.heartbeat.interval.ms` and its bounds: 5000 (5000..=15000).
    pub heartbeat_interval_ms: u32,
    pub min_heartbeat_interval_ms: u32,
    pub max_heartbeat_interval_ms: u32,
    /// `group.share.max.size`: members per share group, 200, 1..=1000.
    pub max_size: u32,
    /// `group.share.max.share.sessions`: share sessions one broker keeps, 2000, 1..=30000.
    pub max_share_sessions: u32,
    /// `errors.deadletterqueue.topic.name.prefix` (KIP-1191): a group's dead-letter topic
    /// must start with this ("dlq.").
    pub dlq_topic_prefix: String,
}

impl Default for BrokerShareConfig {
    fn default() -> Self {
        BrokerShareConfig {
            partition_max_record_locks: 2000,
            delivery_count_limit: 5,
            min_delivery_count_limit: 2,
            max_delivery_count_limit: 10,
            record_lock_duration_ms: 30_000,
            min_record_lock_duration_ms: 15_000,
            max_record_lock_duration_ms: 60_000,
            session_timeout_ms: 45_000,
            min_session_timeout_ms: 45_000,
            max_session_timeout_ms: 60_000,
            heartbeat_interval_ms: 5_000,
            min_heartbeat_interval_ms: 5_000,
            max_heartbeat_interval_ms: 15_000,
            max_size: 200,
            max_share_sessions: 2000,
            dlq_topic_prefix: "dlq.".into(),
        }
    }
}

fn check_range(name: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError(format!(
            "{name} must be in the range {lo} to {hi} inclusive."
        )));
    }
    Ok(())
}

fn check_le(lo_name: &str, lo: u64, hi_name: &str, hi: u64) -> Result<(), ConfigError> {
    if lo > hi {
        return Err(ConfigError(format!(
            "{hi_name} must be greater than or equal to {lo_name}"
        )));
    }
    Ok(())
}

impl BrokerShareConfig {
    /// Checks the fixed ranges and the consistency of defaults and bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        check_range(
            "group.share.partition.max.record.locks",
            c.partition_max_record_locks.into(),
            100,
            10_000,
        )?;
        check_range(
            "group.share.delivery.count.limit",
            c.delivery_count_limit.into(),
            2,
            10,
        )?;
        check_range(
            "group.share.min.delivery.count.limit",
            c.min_delivery_count_limit.into(),
            2,
            5,
        )?;
        check_range(
            "group.share.max.delivery.count.limit",
            c.max_delivery_count_limit.into(),
            5,
            25,
        )?;
        check_range(
            "group.share.record.lock.duration.ms",
            c.record_lock_duration_ms.into(),
            1000,
            3_600_000,
        )?;
        check_range(
            "group.share.min.record.lock.duration.ms",
            c.min_record_lock_duration_ms.into(),
            1000,
            30_000,
        )?;
        check_range(
            "group.share.max.record.lock.duration.ms",
            c.max_record_lock_duration_ms.into(),
            30_000,
            3_600_000,
        )?;
        check_range("group.share.max.size", c.max_size.into(), 1, 1000)?;
        check_range(
            "group.share.max.share.sessions",
            c.max_share_sessions.into(),
            1,
            30_000,
        )?;
        for (name, v) in [
            ("group.share.session.timeout.ms", c.session_timeout_ms),
            (
                "group.share.min.session.timeout.ms",
                c.min_session_timeout_ms,
            ),
            (
                "group.share.max.session.timeout.ms",
                c.max_session_timeout_ms,
            ),
            ("group.share.heartbeat.interval.ms", c.heartbeat_interval_ms),
            (
                "group.share.min.heartbeat.interval.ms",
                c.min_heartbeat_interval_ms,
            ),
            (
                "group.share.max.heartbeat.interval.ms",
                c.max_heartbeat_interval_ms,
            ),
        ] {
            check_range(name, v.into(), 1, i32::MAX as u64)?;
        }
        let pairs: [(&str, u64, &str, u64); 8] = [
            (
                "group.share.min.delivery.count.limit",
                c.min_delivery_count_limit.into(),
                "group.share.delivery.count.limit",
                c.delivery_count_limit.into(),
            ),
            (
                "group.share.delivery.count.limit",
                c.delivery_count_limit.into(),
                "group.share.max.delivery.count.limit",
                c.max_delivery_count_limit.into(),
            ),
            (
                "group.share.min.record.lock.duration.ms",
                c.min_record_lock_duration_ms.into(),
                "group.share.record.lock.duration.ms",
                c.record_lock_duration_ms.into(),
            ),
            (
                "group.share.record.lock.duration.ms",
                c.record_lock_duration_ms.into(),
                "group.share.max.record.lock.duration.ms",
                c.max_record_lock_duration_ms.into(),
            ),
            (
                "group.share.min.session.timeout.ms",
                c.min_session_timeout_ms.into(),
                "group.share.session.timeout.ms",
                c.session_timeout_ms.into(),
            ),
            (
                "group.share.session.timeout.ms",
                c.session_timeout_ms.into(),
                "group.share.max.session.timeout.ms",
                c.max_session_timeout_ms.into(),
            ),
            (
                "group.share.min.heartbeat.interval.ms",
                c.min_heartbeat_interval_ms.into(),
                "group.share.heartbeat.interval.ms",
                c.heartbeat_interval_ms.into(),
            ),
            (
                "group.share.heartbeat.interval.ms",
                c.heartbeat_interval_ms.into(),
                "group.share.max.heartbeat.interval.ms",
                c.max_heartbeat_interval_ms.into(),
            ),
        ];
        for (lo_name, lo, hi_name, hi) in pairs {
            check_le(lo_name, lo, hi_name, hi)?;
        }
        if c.session_timeout_ms <= c.heartbeat_interval_ms {
            return Err(ConfigError(
                "group.share.session.timeout.ms must be greater than group.share.heartbeat.interval.ms"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The `share.*` configs set on one group; `None` takes the broker's value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupShareOverrides {
    pub auto_offset_reset: Option<AutoOffsetReset>,
    pub record_lock_duration_ms: Option<u32>,
    pub delivery_count_limit: Option<u16>,
    pub isolation_level: Option<IsolationLevel>,
    pub session_timeout_ms: Option<u32>,
    pub heartbeat_interval_ms: Option<u32>,
    pub renew_acknowledge_enable: Option<bool>,
}

/// The effective settings of one share group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareSettings {
    pub auto_offset_reset: AutoOffsetReset,
    pub record_lock_duration_ms: u32,
    pub delivery_count_limit: u16,
    pub isolation_level: IsolationLevel,
    pub session_timeout_ms: u32,
    pub heartbeat_interval_ms: u32,
    pub renew_acknowledge_enable: bool,
    /// Broker-level only: `group.share.partition.max.record.locks`.
    pub partition_max_record_locks: u32,
}

fn parse_int(name: &str, value: &str) -> Result<i64, ConfigError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ConfigError(format!("{name}: '{value}' is not an integer")))
}

fn parse_in_range(name: &str, value: &str, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    let v = parse_int(name, value)?;
    let v = u64::try_from(v).map_err(|_| {
        ConfigError(format!(
            "{name} must be in the range {lo} to {hi} inclusive."
        ))
    })?;
    check_range(name, v, lo, hi)?;
    Ok(v)
}

impl GroupShareOverrides {
    /// Parses the share configs of a group (name -> value as sent in AlterConfigs), checking
    /// each against the broker's bounds and the session timeout against the heartbeat
    /// interval (either side taking the broker default when not set). Names that are not
    /// share configs are refused; the wiring step filters the other group configs first.
    pub fn parse(
        values: &BTreeMap<String, String>,
        broker: &BrokerShareConfig,
    ) -> Result<GroupShareOverrides, ConfigError> {
        let mut o = GroupShareOverrides::default();
        for (name, value) in values {
            match name.as_str() {
                AUTO_OFFSET_RESET => o.auto_offset_reset = Some(AutoOffsetReset::parse(value)?),
                ISOLATION_LEVEL => o.isolation_level = Some(IsolationLevel::parse(value)?),
                RECORD_LOCK_DURATION_MS => {
                    let v = parse_in_range(
                        name,
                        value,
                        broker.min_record_lock_duration_ms.into(),
                        broker.max_record_lock_duration_ms.into(),
                    )?;
                    o.record_lock_duration_ms = u32::try_from(v).ok();
                }
                DELIVERY_COUNT_LIMIT => {
                    let v = parse_in_range(
                        name,
                        value,
                        broker.min_delivery_count_limit.into(),
                        broker.max_delivery_count_limit.into(),
                    )?;
                    o.delivery_count_limit = u16::try_from(v).ok();
                }
                SESSION_TIMEOUT_MS => {
                    let v = parse_in_range(
                        name,
                        value,
                        broker.min_session_timeout_ms.into(),
                        broker.max_session_timeout_ms.into(),
                    )?;
                    o.session_timeout_ms = u32::try_from(v).ok();
                }
                HEARTBEAT_INTERVAL_MS => {
                    let v = parse_in_range(
                        name,
                        value,
                        broker.min_heartbeat_interval_ms.into(),
                        broker.max_heartbeat_interval_ms.into(),
                    )?;
                    o.heartbeat_interval_ms = u32::try_from(v).ok();
                }
                RENEW_ACKNOWLEDGE_ENABLE => {
                    o.renew_acknowledge_enable =
                        Some(match value.trim().to_ascii_lowercase().as_str() {
                            "true" => true,
                            "false" => false,
                            _ => {
                                return Err(ConfigError(format!(
                                    "{name}: '{value}' is not a boolean"
                                )))
                            }
                        })
                }
                _ => return Err(ConfigError(format!("Unknown group config name: {name}"))),
            }
        }
        let session = o.session_timeout_ms.unwrap_or(broker.session_timeout_ms);
        let heartbeat = o
            .heartbeat_interval_ms
            .unwrap_or(broker.heartbeat_interval_ms);
        if session <= heartbeat {
            return Err(ConfigError(format!(
                "{SESSION_TIMEOUT_MS} must be greater than {HEARTBEAT_INTERVAL_MS}"
            )));
        }
        Ok(o)
    }

    /// The group's effective settings over the broker's.
    pub fn resolve(&self, broker: &BrokerShareConfig) -> ShareSettings {
        ShareSettings {
            auto_offset_reset: self.auto_offset_reset.unwrap_or(AutoOffsetReset::Latest),
            record_lock_duration_ms: self
                .record_lock_duration_ms
                .unwrap_or(broker.record_lock_duration_ms),
            delivery_count_limit: self
                .delivery_count_limit
                .unwrap_or(broker.delivery_count_limit),
            isolation_level: self
                .isolation_level
                .unwrap_or(IsolationLevel::ReadUncommitted),
            session_timeout_ms: self.session_timeout_ms.unwrap_or(broker.session_timeout_ms),
            heartbeat_interval_ms: self
                .heartbeat_interval_ms
                .unwrap_or(broker.heartbeat_interval_ms),
            renew_acknowledge_enable: self.renew_acknowledge_enable.unwrap_or(true),
            partition_max_record_locks: broker.partition_max_record_locks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kafka_defaults() {
        let b = BrokerShareConfig::default();
        assert_eq!(b.validate(), Ok(()));
        let s = GroupShareOverrides::default().resolve(&b);
        assert_eq!(s.auto_offset_reset, AutoOffsetReset::Latest);
        assert_eq!(s.record_lock_duration_ms, 30_000);
        assert_eq!(s.delivery_count_limit, 5);
        assert_eq!(s.isolation_level, IsolationLevel::ReadUncommitted);
        assert_eq!(s.session_timeout_ms, 45_000);
        assert_eq!(s.heartbeat_interval_ms, 5_000);
        assert_eq!(s.partition_max_record_locks, 2000);
        assert!(s.renew_acknowledge_enable);
    }

    #[test]
    fn broker_bounds() {
        let ok = BrokerShareConfig::default();
        for bad in [
            BrokerShareConfig {
                partition_max_record_locks: 99,
                ..ok.clone()
            },
            BrokerShareConfig {
                partition_max_record_locks: 10_001,
                ..ok.clone()
            },
            BrokerShareConfig {
                delivery_count_limit: 1,
                ..ok.clone()
            },
            BrokerShareConfig {
                delivery_count_limit: 11,
                ..ok.clone()
            },
            BrokerShareConfig {
                record_lock_duration_ms: 999,
                ..ok.clone()
            },
            // default below its minimum
            BrokerShareConfig {
                record_lock_duration_ms: 10_000,
                ..ok.clone()
            },
            // default above its maximum
            BrokerShareConfig {
                record_lock_duration_ms: 61_000,
                ..ok.clone()
            },
            BrokerShareConfig {
                min_delivery_count_limit: 5,
                delivery_count_limit: 4,
                ..ok.clone()
            },
            BrokerShareConfig {
                max_size: 0,
                ..ok.clone()
            },
            BrokerShareConfig {
                session_timeout_ms: 5_000,
                min_session_timeout_ms: 5_000,
                ..ok.clone()
            },
        ] {
            let e = bad.validate().unwrap_err();
            assert!(!e.0.is_empty(), "{bad:?}");
        }
        // The widest legal settings are accepted.
        let wide = BrokerShareConfig {
            partition_max_record_locks: 10_000,
            max_delivery_count_limit: 25,
            max_record_lock_duration_ms: 3_600_000,
            min_record_lock_duration_ms: 1000,
            ..ok
        };
        assert_eq!(wide.validate(), Ok(()));
    }

    #[test]
    fn group_overrides_within_broker_bounds() {
        let b = BrokerShareConfig::default();
        let o = GroupShareOverrides::parse(
            &vals(&[
                (AUTO_OFFSET_RESET, "earliest"),
                (RECORD_LOCK_DURATION_MS, "15000"),
                (DELIVERY_COUNT_LIMIT, "10"),
                (ISOLATION_LEVEL, "read_committed"),
                (SESSION_TIMEOUT_MS, "60000"),
                (HEARTBEAT_INTERVAL_MS, "15000"),
                (RENEW_ACKNOWLEDGE_ENABLE, "false"),
            ]),
            &b,
        )
        .unwrap();
        let s = o.resolve(&b);
        assert_eq!(s.auto_offset_reset, AutoOffsetReset::Earliest);
        assert_eq!(s.record_lock_duration_ms, 15_000);
        assert_eq!(s.delivery_count_limit, 10);
        assert_eq!(s.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(s.session_timeout_ms, 60_000);
        assert_eq!(s.heartbeat_interval_ms, 15_000);
        assert!(!s.renew_acknowledge_enable);
    }

    #[test]
    fn group_overrides_refused() {
        let b = BrokerShareConfig::default();
        for (name, value) in [
            (RECORD_LOCK_DURATION_MS, "14999"),
            (RECORD_LOCK_DURATION_MS, "60001"),
            (RECORD_LOCK_DURATION_MS, "-1"),
            (RECORD_LOCK_DURATION_MS, "abc"),
            (RECORD_LOCK_DURATION_MS, "99999999999999999999999"),
            (DELIVERY_COUNT_LIMIT, "1"),
            (DELIVERY_COUNT_LIMIT, "11"),
            (SESSION_TIMEOUT_MS, "44999"),
            (HEARTBEAT_INTERVAL_MS, "4999"),
            (HEARTBEAT_INTERVAL_MS, "15001"),
            (ISOLATION_LEVEL, "serializable"),
            (AUTO_OFFSET_RESET, "none"),
            (AUTO_OFFSET_RESET, "by_duration:-PT1S"),
            (AUTO_OFFSET_RESET, "by_duration:P"),
            (RENEW_ACKNOWLEDGE_ENABLE, "yes"),
            ("share.unknown", "1"),
            ("consumer.session.timeout.ms", "45000"),
        ] {
            let e = GroupShareOverrides::parse(&vals(&[(name, value)]), &b).unwrap_err();
            assert!(!e.0.is_empty(), "{name}={value}");
            assert!(!e.0.is_empty());
        }
        // Wider broker bounds let the same values through.
        let wide = BrokerShareConfig {
            max_delivery_count_limit: 25,
            ..b
        };
        assert!(GroupShareOverrides::parse(&vals(&[(DELIVERY_COUNT_LIMIT, "20")]), &wide).is_ok());
    }

    #[test]
    fn session_must_exceed_heartbeat() {
        let b = BrokerShareConfig {
            max_heartbeat_interval_ms: 50_000,
            ..BrokerShareConfig::default()
        };
        let e =
            GroupShareOverrides::parse(&vals(&[(HEARTBEAT_INTERVAL_MS, "45000")]), &b).unwrap_err();
        assert!(e.0.contains(SESSION_TIMEOUT_MS), "{e}");
        assert!(GroupShareOverrides::parse(&vals(&[(HEARTBEAT_INTERVAL_MS, "44999")]), &b).is_ok());
    }

    #[test]
    fn auto_offset_reset_values() {
        assert_eq!(
            AutoOffsetReset::parse("LATEST"),
            Ok(AutoOffsetReset::Latest)
        );
        assert_eq!(
            AutoOffsetReset::parse("by_duration:PT1H"),
            Ok(AutoOffsetReset::ByDuration(3_600_000))
        );
        assert_eq!(
            AutoOffsetReset::parse("by_duration:P1DT2H3M4.5S"),
            Ok(AutoOffsetReset::ByDuration(
                86_400_000 + 2 * 3_600_000 + 3 * 60_000 + 4_500
            ))
        );
        assert_eq!(
            AutoOffsetReset::parse("by_duration:P2D"),
            Ok(AutoOffsetReset::ByDuration(2 * 86_400_000))
        );
        for bad in [
            "by_duration:",
            "by_duration:PT",
            "by_duration:1H",
            "by_duration:PT1X",
            "by_duration:PT-1S",
            "by_duration:P99999999999999999999D",
            "by_duration:PT1.1234567890S",
        ] {
            assert!(AutoOffsetReset::parse(bad).is_err(), "{bad}");
        }
        let d = AutoOffsetReset::ByDuration(4_500);
        assert_eq!(AutoOffsetReset::parse(&d.as_config_value()), Ok(d));
    }
}
