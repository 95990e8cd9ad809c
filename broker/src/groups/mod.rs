//! Kafka consumer groups with PhxQueue's consumer-group lock.
//!
//! The core is a pure state machine per group ([`group::Group`]; membership in
//! `member.rs`, join/sync/rebalance in `rebalance.rs`, the partition lock table in
//! `locks.rs`, parsing of the standard consumer protocol bytes in `consumer_protocol.rs`):
//! it takes requests and the current time in milliseconds and answers with error codes
//! and [`group::Effects`] (replies to parked JoinGroup/SyncGroup requests, "persist me").
//! It needs neither the network nor storage and is unit-tested on its own.
//!
//! [`coordinator::GroupCoordinator`] wires it to the world: it owns the groups of this
//! broker, parks requests until the core answers them, drives timers, and keeps committed
//! offsets and the generation record durable in the store group chosen from the group id
//! (`offsets.rs` has the key-value layout).

pub mod admin;
pub mod audit;
pub mod audit_admin;
pub mod commits;
pub mod configs;
pub mod configs_admin;
pub mod consumer;
pub mod consumer_coordinator;
pub mod consumer_protocol;
pub mod coordinator;
pub mod expiry;
pub mod group;
#[cfg(test)]
mod group_tests;
pub mod lag;
pub mod locks;
pub mod member;
pub mod meter;
pub mod offsets;
pub mod publish;
pub mod rebalance;
pub mod replay;
pub mod reset;
pub mod share_admin;
pub mod share_coordinator;
pub mod txn_offsets;
pub mod views;

pub use coordinator::GroupCoordinator;

/// Kafka error codes used by the group APIs: those of `phxq_protocol::errors` and the
/// group-only ones. The numbers come from kafka-protocol (`ResponseError::code`, a
/// `const fn`); the names stay Kafka's.
pub mod errors {
    use kafka_protocol::ResponseError;

    pub use phxq_protocol::errors::*;

    pub const OFFSET_METADATA_TOO_LARGE: i16 = ResponseError::OffsetMetadataTooLarge.code();
    pub const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = ResponseError::InconsistentGroupProtocol.code();
    pub const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();
    pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
    pub const INVALID_SESSION_TIMEOUT: i16 = ResponseError::InvalidSessionTimeout.code();
    pub const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
    pub const NON_EMPTY_GROUP: i16 = ResponseError::NonEmptyGroup.code();
    pub const GROUP_ID_NOT_FOUND: i16 = ResponseError::GroupIdNotFound.code();
    pub const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
    pub const FENCED_INSTANCE_ID: i16 = ResponseError::FencedInstanceId.code();
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = ResponseError::GroupSubscribedToTopic.code();
    pub const FENCED_MEMBER_EPOCH: i16 = ResponseError::FencedMemberEpoch.code();
    pub const UNRELEASED_INSTANCE_ID: i16 = ResponseError::UnreleasedInstanceId.code();
    pub const UNSUPPORTED_ASSIGNOR: i16 = ResponseError::UnsupportedAssignor.code();
    pub const STALE_MEMBER_EPOCH: i16 = ResponseError::StaleMemberEpoch.code();
    pub const INVALID_REGULAR_EXPRESSION: i16 = ResponseError::InvalidRegularExpression.code();
    pub const UNSTABLE_OFFSET_COMMIT: i16 = ResponseError::UnstableOffsetCommit.code();
}

/// Group coordinator settings. Defaults differ from Kafka's where noted, to make groups
/// form fast; each can be set in the `[groups]` table of the config file, with a
/// `phxq serve` flag or a `PHXQ_GROUP_*` variable.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    /// How long a rebalance of an Empty group waits for more members before completing,
    /// extended by this much (up to the rebalance timeout) each time a member arrives.
    /// Kafka's `group.initial.rebalance.delay.ms` is 3000; phxq uses 300 so a consumer
    /// starts in well under a second while several consumers started together still land
    /// in one generation. 0 disables the wait.
    pub initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a member may ask for (Kafka: 6000; phxq: 1000, so tests
    /// and latency-sensitive users can detect dead consumers in a second or two).
    pub min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for (Kafka: 1800000).
    pub max_session_timeout_ms: i32,
    /// A new member whose JoinGroup is parked longer than this is dropped (Kafka: 300000).
    pub new_member_join_timeout_ms: u64,
    /// Largest commit metadata string accepted (Kafka's offset.metadata.max.bytes).
    pub max_metadata_bytes: usize,
    /// KIP-848 groups: a member with no heartbeat for this long is removed (Kafka's
    /// `group.consumer.session.timeout.ms`, 45000).
    pub consumer_session_timeout_ms: u64,
    /// KIP-848 groups: how often members heartbeat (Kafka's
    /// `group.consumer.heartbeat.interval.ms`, 5000).
    pub consumer_heartbeat_interval_ms: i32,
    /// KIP-848 groups: the server-side assignor of members that ask for none: `load`
    /// (phxq's scheduler), `uniform` or `range` (Kafka's default is `uniform`).
    pub consumer_assignor: String,
    /// Scheduler: how often the `load` assignor looks at the measured load again; also the
    /// shortest time between two moves of a partition.
    pub scheduler_interval_ms: u64,
    /// Scheduler: a member that commits nothing for this long on partitions with backlog
    /// is stalled and loses them to the others (before its session times out).
    pub scheduler_stall_ms: u64,
    /// Scheduler: a partition it moved is not moved again for this long.
    pub scheduler_cooldown_ms: u64,
    /// Scheduler: partitions move only if that shortens the longest time any member needs
    /// to drain its backlog and inflow by at least this many percent.
    pub scheduler_min_gain_percent: u32,
    /// Scheduler: seconds of inflow counted as work, next to the backlog.
    pub scheduler_horizon_secs: u32,
    /// Scheduler: most partitions moved in one decision.
    pub scheduler_max_moves: usize,
    /// Real-time reconciliation (`audit/`) of groups that set no `phxq.consumer.audit`:
    /// `record` (check every commit against what the committer was delivered and record
    /// skips), `strict` (also refuse a member's commit that would skip) or `off`.
    pub audit: String,
    /// Offsets of a group that has had no members for this long, committed longer ago
    /// than this, expire (Kafka's `offsets.retention.minutes`: 7 days). See `expiry.rs`.
    pub offsets_retention_ms: u64,
    /// How often expired offsets and offsets of deleted topics are looked for (Kafka's
    /// `offsets.retention.check.interval.ms`: 600000).
    pub offsets_retention_check_interval_ms: u64,
    /// Share groups (KIP-932): the broker's `group.share.*` settings, in `[groups.share]`.
    pub share: crate::share::config::BrokerShareConfig,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 300,
            min_session_timeout_ms: 1000,
            max_session_timeout_ms: 1_800_000,
            new_member_join_timeout_ms: 300_000,
            max_metadata_bytes: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_assignor: "load".into(),
            scheduler_interval_ms: 10_000,
            scheduler_stall_ms: 30_000,
            scheduler_cooldown_ms: 60_000,
            scheduler_min_gain_percent: 10,
            scheduler_horizon_secs: 10,
            scheduler_max_moves: 8,
            audit: "record".into(),
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            share: Default::default(),
        }
    }
}

impl GroupConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.min_session_timeout_ms >= 1
                && self.min_session_timeout_ms <= self.max_session_timeout_ms,
            "group min session timeout must be >= 1 ms and <= the max session timeout"
        );
        anyhow::ensure!(
            self.initial_rebalance_delay_ms <= 60_000,
            "group initial rebalance delay must be at most 60000 ms"
        );
        anyhow::ensure!(
            crate::scheduler::ASSIGNORS.contains(&self.consumer_assignor.as_str()),
            "groups.consumer_assignor must be one of {}",
            crate::scheduler::ASSIGNORS.join(", ")
        );
        anyhow::ensure!(
            self.consumer_heartbeat_interval_ms >= 1
                && (self.consumer_heartbeat_interval_ms as u64) < self.consumer_session_timeout_ms,
            "groups.consumer_heartbeat_interval_ms must be >= 1 and below consumer_session_timeout_ms"
        );
        anyhow::ensure!(
            self.offsets_retention_ms >= 1 && self.offsets_retention_check_interval_ms >= 100,
            "groups.offsets_retention_ms must be >= 1 and offsets_retention_check_interval_ms >= 100"
        );
        anyhow::ensure!(
            crate::audit::reconcile::Mode::parse(&self.audit).is_some(),
            "groups.audit must be one of {}",
            crate::audit::reconcile::Mode::NAMES.join(", ")
        );
        anyhow::ensure!(
            self.scheduler_interval_ms >= 100 && self.scheduler_min_gain_percent < 100,
            "groups.scheduler_interval_ms must be >= 100 and scheduler_min_gain_percent < 100"
        );
        self.share
            .validate()
            .map_err(|e| anyhow::anyhow!("[groups.share]: {e}"))?;
        Ok(())
    }

    /// The settings of KIP-848 groups and their scheduler.
    pub fn consumer_settings(&self) -> consumer::ConsumerSettings {
        consumer::ConsumerSettings {
            session_timeout_ms: self.consumer_session_timeout_ms,
            heartbeat_interval_ms: self.consumer_heartbeat_interval_ms,
            default_assignor: self.consumer_assignor.clone(),
            scheduler_interval_ms: self.scheduler_interval_ms,
            scheduler_stall_ms: self.scheduler_stall_ms,
            scheduler_cooldown_ms: self.scheduler_cooldown_ms,
            tuning: crate::scheduler::load::Tuning {
                horizon_secs: f64::from(self.scheduler_horizon_secs),
                min_gain: f64::from(self.scheduler_min_gain_percent) / 100.0,
                max_moves: self.scheduler_max_moves,
            },
        }
    }
}

/// The store group (1-based index into `store_groups`) that coordinates `group_id`: a
/// stable FNV-1a hash of the id, so every broker and every restart agrees. Changing the
/// number of store groups moves coordinators (and hides committed offsets): it must stay
/// fixed for a data directory.
pub fn home_index(group_id: &str, store_groups: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % store_groups.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_stable_and_spreads() {
        assert_eq!(home_index("g", 1), 0);
        assert_eq!(home_index("orders", 4), home_index("orders", 4));
        let used: std::collections::BTreeSet<_> = (0..64)
            .map(|i| home_index(&format!("group-{i}"), 4))
            .collect();
        assert_eq!(used.len(), 4);
    }
}
