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
pub mod commits;
pub mod consumer_protocol;
pub mod coordinator;
pub mod group;
#[cfg(test)]
mod group_tests;
pub mod locks;
pub mod member;
pub mod offsets;
pub mod rebalance;

pub use coordinator::GroupCoordinator;

use std::sync::OnceLock;

/// Kafka error codes used by the group APIs (not all are in `phxq_protocol::errors`).
pub mod errors {
    pub use phxq_protocol::errors::*;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
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
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 300,
            min_session_timeout_ms: 1000,
            max_session_timeout_ms: 1_800_000,
            new_member_join_timeout_ms: 300_000,
            max_metadata_bytes: 4096,
        }
    }
}

static CONFIG: OnceLock<GroupConfig> = OnceLock::new();

impl GroupConfig {
    /// Sets the process-wide group settings (from the command line), once, before the
    /// broker opens.
    pub fn install(config: GroupConfig) {
        let _ = CONFIG.set(config);
    }

    /// The installed settings, or the defaults.
    pub fn current() -> GroupConfig {
        CONFIG.get().cloned().unwrap_or_default()
    }

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
        Ok(())
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
