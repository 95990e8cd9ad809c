//! Live replays (PhxQueue's dequeue replay): moving a group's committed positions back
//! (or forward) while its members keep running, which Kafka only allows on an empty group.
//!
//! Rules:
//! - The coordinator writes the new offsets and the group record (which carries the state
//!   below, so it survives a coordinator failover) in one Raft proposal, under the group's
//!   `io` lock: no commit can interleave with a reset.
//! - **Fence.** Each reset partition is fenced at the generation (classic) or group epoch
//!   (KIP-848) current at the reset. A member's commit for it is refused until ownership
//!   of the partition began after the reset: where phxq holds partition locks (classic
//!   groups in lock mode, KIP-848 groups), until its lock is granted at a later generation
//!   or epoch; otherwise until a later generation. So an old member's commit, an auto-commit
//!   in flight or a commit-on-revoke of the pre-reset position can never overwrite the
//!   reset. Classic members get ILLEGAL_GENERATION (clients rejoin), KIP-848 members
//!   STALE_MEMBER_EPOCH.
//! - **Classic groups.** The reset partitions' locks are released and a rebalance starts.
//!   In lock mode every generation *withholds* the reset partitions (removes them from the
//!   SyncGroup assignments) until one generation has been synced by every member: a
//!   cooperative member that kept such a partition sees it revoked and drops its in-memory
//!   position. Then another rebalance hands them out again, and their owners start from the
//!   committed (reset) offsets. Eager members revoke everything at the first rebalance.
//!   Without lock mode (assignments phxq cannot read) nothing can be withheld: the fence
//!   still holds, and members resume from the reset only if they re-fetch committed offsets
//!   on every rebalance (eager protocols do).
//! - **KIP-848 groups.** The reset partitions are revoked from their owners (revoke first,
//!   like any reconciliation) and the group epoch goes up; once revoked they are assigned
//!   again at the new epoch, and the owner starts from the committed offsets.
//! - A group without members is only written to, as in Kafka.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use super::consumer_protocol::{self, TopicPartition};
use super::group::{Effects, Group, GroupState};
use super::offsets::ReplayRecord;

/// The replay state of a group (empty when no replay is under way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Reset partition -> the generation (or group epoch) it was reset at.
    pub fence: BTreeMap<TopicPartition, i32>,
    /// Partitions removed from every classic assignment until a generation is fully synced.
    pub withhold: BTreeSet<TopicPartition>,
}

impl Replay {
    /// As stored in the group record.
    pub fn to_record(&self) -> ReplayRecord {
        ReplayRecord {
            fence: self
                .fence
                .iter()
                .map(|((t, p), g)| (t.clone(), *p, *g))
                .collect(),
            withhold: self.withhold.iter().cloned().collect(),
        }
    }

    pub fn from_record(r: &ReplayRecord) -> Replay {
        Replay {
            fence: r
                .fence
                .iter()
                .map(|(t, p, g)| ((t.clone(), *p), *g))
                .collect(),
            withhold: r.withhold.iter().cloned().collect(),
        }
    }
}

impl Group {
    /// Whether a reset now would be live: the group has members.
    pub fn has_members(&self) -> bool {
        match &self.consumer {
            Some(c) => !c.members.is_empty(),
            None => !self.members.is_empty(),
        }
    }

    /// Starts a live replay of `tps` (their new offsets are written by the coordinator in
    /// the same step): fences them and makes their owners give them up.
    pub fn begin_replay(&mut self, tps: &BTreeSet<TopicPartition>, now: u64, fx: &mut Effects) {
        self.prune_fences();
        if let Some(c) = &mut self.consumer {
            for tp in tps {
                self.replay.fence.insert(tp.clone(), c.group_epoch);
            }
            c.begin_replay(tps, now);
            return;
        }
        for tp in tps {
            self.replay.fence.insert(tp.clone(), self.generation);
        }
        let released = self.locks.release_partitions(tps);
        if !released.is_empty() {
            info!(group = %self.id, partitions = %consumer_protocol::describe(&released), "locks released: offsets reset");
        }
        self.replay.withhold.extend(tps.iter().cloned());
        info!(group = %self.id, generation = self.generation, partitions = %consumer_protocol::describe(tps), "live replay: rebalancing");
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now, fx),
            // The generation being formed withholds them.
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Whether a member's commit of `tp` at `generation` would overwrite a reset.
    pub(super) fn replay_refuses(&self, tp: &TopicPartition, generation: i32) -> bool {
        let Some(&fence) = self.replay.fence.get(tp) else {
            return false;
        };
        let lock = match &self.consumer {
            Some(c) => c.locks.owner(tp),
            None if self.lock_mode => self.locks.owner(tp),
            None => return generation <= fence,
        };
        lock.is_none_or(|l| l.generation <= fence)
    }

    /// Forgets fences that no commit can hit any more (ownership began after the reset).
    pub(super) fn prune_fences(&mut self) {
        let generation = self.generation;
        let lock_mode = self.lock_mode;
        let (consumer, locks) = (&self.consumer, &self.locks);
        self.replay.fence.retain(|tp, fence| {
            let lock = match consumer {
                Some(c) => c.locks.owner(tp),
                None if lock_mode => locks.owner(tp),
                None => return generation <= *fence,
            };
            lock.is_none_or(|l| l.generation <= *fence)
        });
    }

    /// Removes the withheld partitions from the assignments of the generation being
    /// completed (lock mode only: the assignments are readable).
    pub(super) fn withhold_replayed(&mut self) {
        if self.replay.withhold.is_empty() || !self.lock_mode {
            return;
        }
        let withheld = &self.replay.withhold;
        for m in self.members.values_mut() {
            match consumer_protocol::withhold_from_assignment(&m.assignment, withheld) {
                Ok(a) => m.assignment = a,
                // Lock mode goes off for this generation when the assignment is parsed.
                Err(e) => {
                    warn!(group = %self.id, member = %m.id, error = %e, "cannot withhold reset partitions from an unreadable assignment")
                }
            }
        }
        info!(group = %self.id, generation = self.generation, partitions = %consumer_protocol::describe(withheld), "reset partitions withheld for this generation");
    }

    /// Once every member has synced a generation that withheld the reset partitions, hands
    /// them out again with another rebalance.
    pub(super) fn replay_follow_up(&mut self, now: u64, fx: &mut Effects) {
        if self.replay.withhold.is_empty()
            || self.state != GroupState::Stable
            || !self.pending_sync.is_empty()
        {
            return;
        }
        if self.lock_mode {
            info!(group = %self.id, generation = self.generation, "every member gave up the reset partitions: rebalancing to hand them out");
            self.replay.withhold.clear();
            self.prepare_rebalance(now, fx);
        } else {
            self.replay.withhold.clear();
        }
    }
}
