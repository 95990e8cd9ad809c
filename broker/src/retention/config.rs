//! The broker's log defaults (`[log]` in the config file): Kafka's `log.retention.*`,
//! `log.segment.bytes`, `log.roll.*`, `log.retention.check.interval.ms`,
//! `log.cleanup.policy` and the log cleaner's `log.cleaner.*`. Topics override the
//! retention, segment and compaction ones with their own configs (`topic_configs`).

use serde::Deserialize;

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// `[log]`: how long and how much of each partition's log a broker keeps by default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Kafka's log.retention.ms; wins over the minutes and hours when set. -1: no limit.
    pub retention_ms: Option<i64>,
    /// Kafka's log.retention.minutes; wins over the hours when set. -1: no limit.
    pub retention_minutes: Option<i64>,
    /// Kafka's log.retention.hours (168: seven days). -1: no limit.
    pub retention_hours: i64,
    /// Kafka's log.retention.bytes: bytes each partition keeps at least. -1: no limit.
    pub retention_bytes: i64,
    /// Kafka's log.segment.bytes: the size at which this node's segment files roll, and the
    /// default size of a partition's segments (what retention drops as a whole).
    pub segment_bytes: u64,
    /// Kafka's log.roll.ms: a partition's segment rolls once its records span this long;
    /// wins over the hours when set.
    pub roll_ms: Option<i64>,
    /// Kafka's log.roll.hours (168).
    pub roll_hours: i64,
    /// Kafka's log.retention.check.interval.ms: how often the leader of each store group
    /// looks for segments to drop.
    pub retention_check_interval_ms: u64,
    /// Kafka's log.cleanup.policy: the default cleanup.policy of topics (`delete`,
    /// `compact` or `compact,delete`).
    pub cleanup_policy: String,
    /// Kafka's log.cleaner.enable: whether this broker compacts topics whose policy says so.
    pub cleaner_enable: bool,
    /// Kafka's log.cleaner.backoff.ms: how often the cleaner looks for dirty partitions.
    pub cleaner_backoff_ms: u64,
    /// Kafka's log.cleaner.dedupe.buffer.size: memory of the cleaner's key -> offset map
    /// (25 bytes an entry, see `compaction`). A pass with more distinct keys in its dirty
    /// range cleans up to where the map filled, the next pass goes on from there.
    pub cleaner_dedupe_buffer_bytes: u64,
    /// Kafka's log.cleaner.io.max.bytes.per.second: bytes the cleaner reads plus writes per
    /// second, at most (averaged over its steps).
    pub cleaner_io_max_bytes_per_second: u64,
    /// Kafka's log.cleaner.delete.retention.ms: default delete.retention.ms of topics.
    pub cleaner_delete_retention_ms: i64,
    /// Kafka's log.cleaner.min.compaction.lag.ms.
    pub cleaner_min_compaction_lag_ms: i64,
    /// Kafka's log.cleaner.max.compaction.lag.ms.
    pub cleaner_max_compaction_lag_ms: i64,
    /// Kafka's log.cleaner.min.cleanable.ratio.
    pub cleaner_min_cleanable_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            retention_ms: None,
            retention_minutes: None,
            retention_hours: 168,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            roll_ms: None,
            roll_hours: 168,
            retention_check_interval_ms: 300_000,
            cleanup_policy: "delete".into(),
            cleaner_enable: true,
            cleaner_backoff_ms: 15_000,
            cleaner_dedupe_buffer_bytes: 128 << 20,
            cleaner_io_max_bytes_per_second: 64 << 20,
            cleaner_delete_retention_ms: 86_400_000,
            cleaner_min_compaction_lag_ms: 0,
            cleaner_max_compaction_lag_ms: i64::MAX,
            cleaner_min_cleanable_ratio: 0.5,
        }
    }
}

/// Any negative value means "no limit" (Kafka's -1); a product that overflows is no limit
/// either.
fn hours_or_minutes(v: i64, unit: i64) -> i64 {
    if v < 0 {
        -1
    } else {
        v.checked_mul(unit).unwrap_or(-1)
    }
}

impl LogConfig {
    /// The default `retention.ms` of topics: log.retention.ms, else minutes, else hours.
    pub fn retention_ms(&self) -> i64 {
        match (self.retention_ms, self.retention_minutes) {
            (Some(ms), _) => ms,
            (None, Some(m)) => hours_or_minutes(m, MINUTE_MS),
            (None, None) => hours_or_minutes(self.retention_hours, HOUR_MS),
        }
    }

    /// The default `segment.ms` of topics: log.roll.ms, else log.roll.hours.
    pub fn segment_ms(&self) -> i64 {
        self.roll_ms
            .unwrap_or_else(|| hours_or_minutes(self.roll_hours, HOUR_MS))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, v) in [
            ("log.retention_ms", self.retention_ms),
            ("log.retention_minutes", self.retention_minutes),
            ("log.retention_hours", Some(self.retention_hours)),
            ("log.retention_bytes", Some(self.retention_bytes)),
        ] {
            if let Some(v) = v {
                anyhow::ensure!(
                    v >= -1,
                    "{name} must be -1 (no limit) or at least 0, got {v}"
                );
            }
        }
        anyhow::ensure!(
            (1024..=i32::MAX as u64).contains(&self.segment_bytes),
            "log.segment_bytes must be between 1024 and {}",
            i32::MAX
        );
        anyhow::ensure!(
            self.roll_ms.is_none_or(|v| v >= 1) && self.roll_hours >= 1,
            "log.roll_ms and log.roll_hours must be at least 1"
        );
        anyhow::ensure!(
            self.retention_check_interval_ms >= 10,
            "log.retention_check_interval_ms must be at least 10"
        );
        let policy: Vec<&str> = self.cleanup_policy.split(',').map(str::trim).collect();
        anyhow::ensure!(
            !policy.is_empty() && policy.iter().all(|p| *p == "delete" || *p == "compact"),
            "log.cleanup_policy must be delete, compact or compact,delete"
        );
        anyhow::ensure!(
            self.cleaner_backoff_ms >= 10,
            "log.cleaner_backoff_ms must be at least 10"
        );
        anyhow::ensure!(
            self.cleaner_dedupe_buffer_bytes >= 1024,
            "log.cleaner_dedupe_buffer_bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.cleaner_io_max_bytes_per_second >= 1024,
            "log.cleaner_io_max_bytes_per_second must be at least 1024"
        );
        anyhow::ensure!(
            self.cleaner_delete_retention_ms >= 0
                && self.cleaner_min_compaction_lag_ms >= 0
                && self.cleaner_max_compaction_lag_ms >= 1
                && self.cleaner_min_compaction_lag_ms <= self.cleaner_max_compaction_lag_ms,
            "log.cleaner_*_ms must be at least 0 (max lag: 1) with min lag <= max lag"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.cleaner_min_cleanable_ratio),
            "log.cleaner_min_cleanable_ratio must be in [0, 1]"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_ms_wins_over_minutes_over_hours() {
        let mut c = LogConfig::default();
        assert_eq!(c.retention_ms(), 7 * 24 * HOUR_MS);
        assert_eq!(c.segment_ms(), 7 * 24 * HOUR_MS);
        c.retention_hours = -1;
        assert_eq!(c.retention_ms(), -1);
        c.retention_minutes = Some(30);
        assert_eq!(c.retention_ms(), 30 * MINUTE_MS);
        c.retention_ms = Some(1234);
        assert_eq!(c.retention_ms(), 1234);
        c.retention_ms = Some(-1);
        assert_eq!(c.retention_ms(), -1);
        c.roll_ms = Some(99);
        assert_eq!(c.segment_ms(), 99);
        c.validate().unwrap();
        c.retention_bytes = -2;
        assert!(c.validate().is_err());
        let c = LogConfig {
            segment_bytes: 100,
            ..LogConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
