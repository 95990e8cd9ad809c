//! Committed offsets that go away by themselves, as in Kafka:
//!
//! - **Offsets retention** (Kafka's `offsets.retention.minutes`, KIP-211): once a group has
//!   had no members for `[groups] offsets_retention_ms`, its offsets committed longer ago
//!   than that expire; a group left with no offsets and no members is deleted (it leaves
//!   ListGroups). A group with members keeps its offsets however old they are. When the
//!   group became empty is known to this coordinator only since it loaded the group: after
//!   a restart or failover the clock starts again (offsets never expire early).
//! - **Deleted topics**: offsets (and audit records) of topics that no longer exist are
//!   removed from every group, whatever its state.
//!
//! The coordinator looks every `[groups] offsets_retention_check_interval_ms`; removals go
//! through the group's store group like every other change of its offsets.

use std::sync::Arc;

use phxq_replication::Command;
use tracing::{info, warn};

use super::consumer_protocol::{self, TopicPartition};
use super::coordinator::{commit_error, GroupCoordinator, Slot};
use super::group::{Group, GroupState};
use super::offsets;

impl Group {
    /// Notes whether the group has members at wall-clock time `now_ms`.
    pub fn note_emptiness(&mut self, now_ms: i64) {
        if self.has_members() || !self.pending_members.is_empty() {
            self.empty_since_ms = None;
        } else if self.empty_since_ms.is_none() {
            self.empty_since_ms = Some(now_ms);
        }
    }

    /// The partitions whose committed offsets expire now (see the module doc).
    pub fn expired_offsets(
        &self,
        now_ms: i64,
        retention_ms: i64,
        topic_exists: &dyn Fn(&str) -> bool,
    ) -> Vec<TopicPartition> {
        let idle = self
            .empty_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) >= retention_ms);
        self.offsets
            .iter()
            .filter(|(tp, c)| {
                !topic_exists(&tp.0)
                    || (idle && now_ms.saturating_sub(c.commit_timestamp) >= retention_ms)
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Whether the group has no members, none joining, and is Empty.
    pub fn is_idle(&self) -> bool {
        !self.has_members() && self.pending_members.is_empty() && self.state == GroupState::Empty
    }

    /// Whether the group is nothing but a record: idle, and no offsets.
    pub fn is_abandoned(&self) -> bool {
        self.is_idle() && self.offsets.is_empty()
    }
}

impl GroupCoordinator {
    /// Removes expired offsets of every group this coordinator holds (called from the
    /// timer task every `offsets_retention_check_interval_ms`).
    pub(super) fn expire_offsets(self: &Arc<Self>, slots: &[Arc<Slot>]) {
        let Some(catalog) = self.catalog() else {
            return;
        };
        let now = offsets::now_ms();
        let retention = self.config.offsets_retention_ms.min(i64::MAX as u64) as i64;
        for slot in slots {
            let expired = {
                let mut g = slot.core();
                g.note_emptiness(now);
                g.expired_offsets(now, retention, &|t| catalog.partition_count(t).is_some())
            };
            if expired.is_empty() {
                continue;
            }
            let me = self.clone();
            let slot = slot.clone();
            tokio::spawn(async move { me.remove_offsets(&slot, expired).await });
        }
    }

    /// Deletes `tps`' offsets and audit records of the group (and the group itself when
    /// nothing is left of it), in one proposal.
    async fn remove_offsets(&self, slot: &Arc<Slot>, tps: Vec<TopicPartition>) {
        let _io = slot.io.lock().await;
        let (keys, abandoned) = {
            let g = slot.core();
            let present: Vec<&TopicPartition> = tps
                .iter()
                .filter(|tp| g.offsets.contains_key(*tp))
                .collect();
            let mut keys = offsets::partition_deletes(&slot.id, present.iter().copied());
            let abandoned = g.offsets.len() == present.len() && g.is_idle();
            if abandoned {
                keys.push((offsets::group_key(&slot.id), None));
            }
            (keys, abandoned)
        };
        if keys.is_empty() {
            return;
        }
        let store = match self.store(slot.store) {
            Ok(s) => s,
            Err(_) => return,
        };
        if let Err(e) = store.propose(Command::Put(keys)).await {
            warn!(group = %slot.id, code = commit_error(&e), error = %e, "expired offsets not removed; will retry");
            return;
        }
        let mut g = slot.core();
        for tp in &tps {
            g.offsets.remove(tp);
            g.audit.remove(tp);
        }
        let set: std::collections::BTreeSet<TopicPartition> = tps.iter().cloned().collect();
        info!(group = %slot.id, partitions = %consumer_protocol::describe(&set), "committed offsets expired");
        if abandoned && g.is_abandoned() {
            g.state = GroupState::Dead;
            drop(g);
            self.forget(slot);
            info!(group = %slot.id, "group deleted: no members and no offsets left");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::offsets::CommittedOffset;
    use crate::groups::GroupConfig;

    fn commit(g: &mut Group, topic: &str, at_ms: i64) {
        g.offsets.insert(
            (topic.to_string(), 0),
            CommittedOffset {
                offset: 5,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: at_ms,
            },
        );
    }

    #[test]
    fn offsets_expire_only_after_the_group_was_empty_for_the_retention() {
        let mut g = Group::new("g", GroupConfig::default());
        commit(&mut g, "old", 0);
        commit(&mut g, "new", 9_000);
        let exists = |_: &str| true;
        // Empty since 1000: nothing expires before 1000 + retention.
        g.note_emptiness(1_000);
        assert!(g.expired_offsets(5_000, 5_000, &exists).is_empty());
        // Then only what was committed longer ago than the retention.
        assert_eq!(
            g.expired_offsets(6_000, 5_000, &exists),
            vec![("old".to_string(), 0)]
        );
        assert_eq!(g.expired_offsets(14_000, 5_000, &exists).len(), 2);
        // A later check keeps the first time it saw the group empty.
        g.note_emptiness(13_000);
        assert_eq!(g.empty_since_ms, Some(1_000));
    }

    #[test]
    fn offsets_of_deleted_topics_go_whatever_the_group_does() {
        let mut g = Group::new("g", GroupConfig::default());
        commit(&mut g, "gone", 0);
        commit(&mut g, "kept", 0);
        let exists = |t: &str| t == "kept";
        assert_eq!(
            g.expired_offsets(1, 1_000_000, &exists),
            vec![("gone".to_string(), 0)]
        );
        assert!(!g.is_abandoned());
        g.offsets.clear();
        assert!(g.is_abandoned());
    }
}
