//! KIP-848 consumer groups (`group.protocol=consumer`) as a pure state machine: the broker
//! assigns, members reconcile through ConsumerGroupHeartbeat, and PhxQueue's
//! consumer-group lock decides when a partition may change hands.
//!
//! Rules:
//! - **Epochs.** The *group epoch* goes up whenever what the assignment depends on changes:
//!   a member joins, leaves or is fenced, a subscription changes, a subscribed topic's
//!   partition count (or a regex's matches) changes, or the scheduler moves partitions for
//!   load. The *target assignment* is computed by the group's assignor (`scheduler/`) for
//!   the latest group epoch; its epoch is the *assignment epoch*. A member's *epoch* is the
//!   assignment epoch it has reconciled to.
//! - **Reconciliation (revoke first).** A member that owns partitions the target gives to
//!   someone else keeps its epoch and is told to revoke them (`UnrevokedPartitions`); only
//!   when a heartbeat reports that it no longer owns them are their locks released. Then it
//!   moves to the assignment epoch and gets the target partitions nobody else holds;
//!   partitions still held by a revoking member are withheld (`UnreleasedPartitions`)
//!   until released. A partition is therefore owned by one member at a time: the lock.
//! - **Fencing.** A heartbeat with an epoch other than the member's is fenced
//!   (FENCED_MEMBER_EPOCH), except the member's previous epoch when it owns nothing it was
//!   not given (its last response was lost). A member that does not revoke within its
//!   rebalance timeout, or sends no heartbeat within the session timeout, is removed and
//!   its locks released. Epoch 0 joins (a member id already present starts over), -1
//!   leaves, -2 is a static member leaving for a moment: its place and partitions are kept
//!   for the session timeout for a member with the same `group.instance.id`.
//! - **Commits.** OffsetCommit from a member is accepted only at its current epoch
//!   (older: STALE_MEMBER_EPOCH, newer: FENCED_MEMBER_EPOCH) and only for partitions whose
//!   lock it holds (assigned or still revoking); others get STALE_MEMBER_EPOCH. Without a
//!   member id (-1), only while the group has no members.
//! - **Replays.** A live reset revokes the reset partitions from their owners and bumps the
//!   group epoch; they come back at the new epoch (see `groups/replay.rs`).
//! - **Load.** Commits are attributed to the lock holder to measure each member's consume
//!   rate; a member holding partitions with backlog that commits nothing for the stall
//!   timeout counts as stalled and the `load` assignor gives it nothing. A partition the
//!   scheduler moved stays put for the cooldown. (Measurement and load reviews: `load.rs`.)

mod load;
pub mod member;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use tracing::info;

use super::consumer_protocol::{self, TopicPartition};
use super::errors::*;
use super::locks::LockTable;
use super::meter::ConsumeMeter;
use crate::scheduler::{self, AssignmentSpec, LoadFigures, MemberSpec};
pub use member::{ConsumerMember, MemberState};

/// Settings of KIP-848 groups (from the `[groups]` table).
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerSettings {
    /// `group.consumer.session.timeout.ms`
    pub session_timeout_ms: u64,
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// The assignor of members that name none.
    pub default_assignor: String,
    /// How often the `load` assignor looks at the load again (also the shortest time
    /// between two moves of a partition).
    pub scheduler_interval_ms: u64,
    /// No commit for this long on partitions with backlog: the member is stalled.
    pub scheduler_stall_ms: u64,
    /// The scheduler moves a partition at most once per this long.
    pub scheduler_cooldown_ms: u64,
    pub tuning: scheduler::load::Tuning,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            default_assignor: "load".into(),
            scheduler_interval_ms: 10_000,
            scheduler_stall_ms: 30_000,
            scheduler_cooldown_ms: 60_000,
            tuning: Default::default(),
        }
    }
}

/// What the group needs to know of the topics.
pub trait TopicMetadata {
    fn partition_count(&self, topic: &str) -> Option<i32>;
    fn topic_names(&self) -> Vec<String>;
}

/// A ConsumerGroupHeartbeat, decoded.
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member owns now; `None`: unchanged.
    pub owned: Option<BTreeSet<TopicPartition>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed (or the request was a full one).
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

/// An error answer: code and message.
pub type Refusal = (i16, String);

#[derive(Debug)]
pub struct ConsumerGroup {
    pub id: String,
    pub settings: ConsumerSettings,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub target: scheduler::Assignment,
    pub members: BTreeMap<String, ConsumerMember>,
    /// group.instance.id -> member id.
    pub static_members: BTreeMap<String, String>,
    pub locks: LockTable,
    /// Resolved subscriptions (topic -> partitions) the target was computed for.
    subscribed: BTreeMap<String, i32>,
    pub assignor: String,
    /// The last scheduler decision and when it was taken.
    pub last_decision: Option<(u64, scheduler::Decision)>,
    /// Each member's consume rate, from its commits.
    meter: ConsumeMeter,
    /// When the scheduler last moved each partition (for the cooldown).
    moved_at: BTreeMap<TopicPartition, u64>,
    /// Each member's partitions and their backlog at the last load review.
    backlog_seen: BTreeMap<String, (BTreeSet<TopicPartition>, f64)>,
    /// The group epoch changed and is not yet durable.
    pub epoch_dirty: bool,
}

impl ConsumerGroup {
    /// A new group; `epoch` is the last stored epoch of the group id (epochs never go back).
    pub fn new(id: &str, settings: ConsumerSettings, epoch: i32) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            assignor: settings.default_assignor.clone(),
            settings,
            group_epoch: epoch,
            assignment_epoch: epoch,
            target: BTreeMap::new(),
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            locks: LockTable::default(),
            subscribed: BTreeMap::new(),
            last_decision: None,
            meter: ConsumeMeter::default(),
            moved_at: BTreeMap::new(),
            backlog_seen: BTreeMap::new(),
            epoch_dirty: false,
        }
    }

    /// Kafka's state names (ConsumerGroupDescribe, ListGroups).
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn bump(&mut self, why: &str) {
        self.group_epoch += 1;
        self.epoch_dirty = true;
        info!(group = %self.id, epoch = self.group_epoch, "group epoch bumped: {why}");
    }

    /// Handles one heartbeat at `now`.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        now: u64,
        topics: &dyn TopicMetadata,
        load: &dyn Fn(&ConsumerGroup) -> LoadFigures,
    ) -> Result<HeartbeatReply, Refusal> {
        if hb.member_id.is_empty() {
            return Err((INVALID_REQUEST, "MemberId can't be empty.".into()));
        }
        if let Some(a) = &hb.server_assignor {
            if !scheduler::ASSIGNORS.contains(&a.as_str()) {
                return Err((
                    UNSUPPORTED_ASSIGNOR,
                    format!(
                        "assignor {a} is not supported; phxq has {}",
                        scheduler::ASSIGNORS.join(", ")
                    ),
                ));
            }
        }
        if let Some(re) = &hb.subscribed_topic_regex {
            compile(re).map_err(|e| (INVALID_REGULAR_EXPRESSION, e))?;
        }
        let epoch_before = self.group_epoch;
        match hb.member_epoch {
            -1 => return self.leave(&hb.member_id, hb.instance_id.as_deref()),
            -2 => return self.leave_static(&hb.member_id, hb.instance_id.as_deref(), now),
            0 => self.join(&hb, now)?,
            epoch => self.check_epoch(&hb.member_id, epoch, hb.owned.as_ref())?,
        }
        let full = hb.member_epoch == 0 || hb.owned.is_some();
        let m = self
            .members
            .get_mut(&hb.member_id)
            .expect("member joined or checked");
        m.last_heartbeat = now;
        m.client_id = hb.client_id;
        m.client_host = hb.client_host;
        m.rack_id = hb.rack_id;
        let mut changed = false;
        if let Some(names) = hb.subscribed_topic_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            changed |= names != m.subscribed_topics;
            m.subscribed_topics = names;
        }
        if hb.subscribed_topic_regex.is_some() || hb.member_epoch == 0 {
            changed |= hb.subscribed_topic_regex != m.subscribed_regex;
            m.subscribed_regex = hb.subscribed_topic_regex;
        }
        if hb.server_assignor.is_some() || hb.member_epoch == 0 {
            changed |= hb.server_assignor != m.server_assignor;
            m.server_assignor = hb.server_assignor;
        }
        if hb.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms as u64;
        }
        // One bump per heartbeat, whatever changed (a join has bumped already).
        let resolved = self.resolve(topics);
        if self.group_epoch == epoch_before {
            if changed {
                self.bump(&format!("member {} changed its subscription", hb.member_id));
            } else if resolved != self.subscribed {
                self.bump("subscribed topics or partition counts changed");
            }
        }
        self.subscribed = resolved;
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(now, topics, load);
        }
        self.reconcile(&hb.member_id, hb.owned.as_ref(), now);
        let m = self.members.get_mut(&hb.member_id).expect("member");
        let now_state = (m.epoch, m.assigned.clone());
        let send = full || m.last_sent.as_ref() != Some(&now_state);
        m.last_sent = Some(now_state);
        Ok(HeartbeatReply {
            member_id: m.id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: self.settings.heartbeat_interval_ms,
            assignment: send.then(|| m.assigned.clone()),
        })
    }

    fn join(&mut self, hb: &Heartbeat, now: u64) -> Result<(), Refusal> {
        if hb.subscribed_topic_names.is_none() && hb.subscribed_topic_regex.is_none() {
            return Err((
                INVALID_REQUEST,
                "SubscribedTopicNames or SubscribedTopicRegex must be set when joining.".into(),
            ));
        }
        if let Some(inst) = &hb.instance_id {
            if let Some(holder) = self.static_members.get(inst).cloned() {
                if holder != hb.member_id {
                    let away = self.members.get(&holder).is_some_and(|m| m.away);
                    if !away {
                        return Err((
                            UNRELEASED_INSTANCE_ID,
                            format!("instance id {inst} is still used by member {holder}"),
                        ));
                    }
                    // The static member comes back under a new member id: same place,
                    // same partitions and locks.
                    let mut m = self.members.remove(&holder).expect("static member");
                    m.id = hb.member_id.clone();
                    m.away = false;
                    m.last_sent = None;
                    self.locks.rename(&holder, &hb.member_id);
                    self.members.insert(hb.member_id.clone(), m);
                    self.static_members
                        .insert(inst.clone(), hb.member_id.clone());
                    info!(group = %self.id, member = %hb.member_id, instance = %inst, "static member rejoined");
                    return Ok(());
                }
            }
        }
        if let Some(m) = self.members.get_mut(&hb.member_id) {
            if m.away {
                m.away = false;
                return Ok(());
            }
            // Rejoining with epoch 0: the member gave up what it had.
            info!(group = %self.id, member = %hb.member_id, "member rejoined with epoch 0");
            self.remove(&hb.member_id);
        }
        let mut m = ConsumerMember::new(&hb.member_id, now);
        m.instance_id = hb.instance_id.clone();
        if let Some(inst) = &hb.instance_id {
            self.static_members
                .insert(inst.clone(), hb.member_id.clone());
        }
        self.members.insert(hb.member_id.clone(), m);
        self.bump(&format!("member {} joined", hb.member_id));
        Ok(())
    }

    fn check_epoch(
        &self,
        member_id: &str,
        epoch: i32,
        owned: Option<&BTreeSet<TopicPartition>>,
    ) -> Result<(), Refusal> {
        let m = self.members.get(member_id).ok_or_else(|| {
            (
                UNKNOWN_MEMBER_ID,
                format!("member {member_id} is not in the group"),
            )
        })?;
        if epoch == m.epoch {
            return Ok(());
        }
        let lost_answer =
            epoch == m.previous_epoch && owned.is_some_and(|o| o.is_subset(&m.held()));
        if lost_answer {
            return Ok(());
        }
        Err((
            FENCED_MEMBER_EPOCH,
            format!(
                "member epoch {epoch} is fenced: the member's epoch is {}",
                m.epoch
            ),
        ))
    }

    fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<HeartbeatReply, Refusal> {
        let id = match instance_id.and_then(|i| self.static_members.get(i)) {
            Some(id) if member_id.is_empty() => id.clone(),
            _ => member_id.to_string(),
        };
        if !self.members.contains_key(&id) {
            return Err((
                UNKNOWN_MEMBER_ID,
                format!("member {id} is not in the group"),
            ));
        }
        info!(group = %self.id, member = %id, "member left the group");
        self.remove(&id);
        self.bump(&format!("member {id} left"));
        Ok(HeartbeatReply {
            member_id: id,
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    fn leave_static(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: u64,
    ) -> Result<HeartbeatReply, Refusal> {
        let Some(inst) = instance_id else {
            return Err((
                INVALID_REQUEST,
                "member epoch -2 needs a group.instance.id".into(),
            ));
        };
        match self.members.get_mut(member_id) {
            Some(m) if m.instance_id.as_deref() == Some(inst) => {
                m.away = true;
                m.last_heartbeat = now;
                info!(group = %self.id, member = member_id, instance = inst, "static member away; its place is kept for the session timeout");
                Ok(HeartbeatReply {
                    member_id: member_id.to_string(),
                    member_epoch: -2,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                })
            }
            Some(_) => Err((
                FENCED_INSTANCE_ID,
                format!("member {member_id} does not own instance id {inst}"),
            )),
            None => Err((
                UNKNOWN_MEMBER_ID,
                format!("member {member_id} is not in the group"),
            )),
        }
    }

    /// Drops a member and releases its locks (no epoch bump: callers do).
    fn remove(&mut self, id: &str) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        if let Some(inst) = &m.instance_id {
            if self.static_members.get(inst).map(String::as_str) == Some(id) {
                self.static_members.remove(inst);
            }
        }
        let released = self.locks.release_member(id);
        if !released.is_empty() {
            info!(group = %self.id, member = id, partitions = %consumer_protocol::describe(&released), "locks released: member gone");
        }
        self.target.remove(id);
        self.meter.forget(id);
    }

    /// Topics each member resolves to, merged: topic -> partition count.
    fn resolve(&self, topics: &dyn TopicMetadata) -> BTreeMap<String, i32> {
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            for t in self.member_topics(m, topics) {
                if let Some(n) = topics.partition_count(&t) {
                    out.insert(t, n);
                }
            }
        }
        out
    }

    fn member_topics(&self, m: &ConsumerMember, topics: &dyn TopicMetadata) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = m
            .subscribed_topics
            .iter()
            .filter(|t| topics.partition_count(t).is_some())
            .cloned()
            .collect();
        if let Some(re) = m.subscribed_regex.as_deref().and_then(|r| compile(r).ok()) {
            out.extend(topics.topic_names().into_iter().filter(|t| re.is_match(t)));
        }
        out
    }

    /// The assignor the group uses: the one most members ask for, else the default.
    fn pick_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| self.settings.default_assignor.clone())
    }

    fn spec(&self, topics: &dyn TopicMetadata) -> AssignmentSpec {
        AssignmentSpec {
            members: self
                .members
                .iter()
                .map(|(id, m)| {
                    (
                        id.clone(),
                        MemberSpec {
                            topics: self.member_topics(m, topics),
                            current: self.target.get(id).cloned().unwrap_or_default(),
                        },
                    )
                })
                .collect(),
            partitions: self.resolve(topics),
            load: LoadFigures::default(),
        }
    }

    /// Runs the assignor for the current group epoch.
    fn compute_target(
        &mut self,
        now: u64,
        topics: &dyn TopicMetadata,
        load: &dyn Fn(&ConsumerGroup) -> LoadFigures,
    ) {
        self.assignor = self.pick_assignor();
        let mut spec = self.spec(topics);
        if self.assignor == "load" {
            spec.load = load(self);
        }
        let decision = scheduler::assign(&self.assignor, &spec, &self.settings.tuning)
            .expect("assignor names are checked on heartbeat");
        self.target = decision.assignment.clone();
        self.assignment_epoch = self.group_epoch;
        info!(group = %self.id, epoch = self.assignment_epoch, assignor = %self.assignor, moved = decision.moved, "target assignment: {}", decision.reason);
        self.last_decision = Some((now, decision));
    }

    /// Moves member `id` one step towards its target (see the module rules).
    fn reconcile(&mut self, id: &str, owned: Option<&BTreeSet<TopicPartition>>, now: u64) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let epoch = self.assignment_epoch;
        let m = self.members.get_mut(id).expect("member");
        if m.state == MemberState::UnrevokedPartitions {
            match owned {
                Some(o) if o.is_disjoint(&m.revoking) => {
                    let released = std::mem::take(&mut m.revoking);
                    m.revoking_since = None;
                    self.locks.retain(id, &m.assigned);
                    info!(group = %self.id, member = id, partitions = %consumer_protocol::describe(&released), "locks released: revoked");
                }
                _ => return,
            }
        }
        if m.epoch == epoch && m.state == MemberState::Stable {
            return;
        }
        let revoke: BTreeSet<TopicPartition> = m.assigned.difference(&target).cloned().collect();
        if !revoke.is_empty() {
            m.assigned.retain(|tp| !revoke.contains(tp));
            m.revoking = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revoking_since = Some(now);
            return;
        }
        let wanted: BTreeSet<TopicPartition> = target.difference(&m.assigned).cloned().collect();
        let conflicts = self
            .locks
            .grant(epoch, &BTreeMap::from([(id.to_string(), wanted.clone())]));
        let withheld: BTreeSet<TopicPartition> =
            conflicts.into_iter().map(|c| c.partition).collect();
        m.assigned
            .extend(wanted.into_iter().filter(|tp| !withheld.contains(tp)));
        m.set_epoch(epoch);
        m.state = if withheld.is_empty() {
            MemberState::Stable
        } else {
            MemberState::UnreleasedPartitions
        };
    }

    /// Timers: session timeouts (away static members too) and revocations that took longer
    /// than the member's rebalance timeout. Returns whether the group epoch changed.
    pub fn tick(&mut self, now: u64) -> bool {
        let session = self.settings.session_timeout_ms;
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if now.saturating_sub(m.last_heartbeat) > session {
                    Some((m.id.clone(), "session timeout expired"))
                } else if m
                    .revoking_since
                    .is_some_and(|t| now.saturating_sub(t) > m.rebalance_timeout_ms)
                {
                    Some((m.id.clone(), "did not revoke within its rebalance timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in &expired {
            info!(group = %self.id, member = %id, "member fenced: {why}");
            self.remove(id);
        }
        if !expired.is_empty() {
            self.bump("members removed by timers");
        }
        self.meter.update(self.members.keys(), now);
        !expired.is_empty()
    }

    /// A live replay of `tps` (`groups/replay.rs`): their owners must revoke them, and the
    /// group epoch goes up so that they are assigned again at a new epoch once revoked.
    pub fn begin_replay(&mut self, tps: &BTreeSet<TopicPartition>, now: u64) {
        for m in self.members.values_mut() {
            let taken: BTreeSet<TopicPartition> = m.assigned.intersection(tps).cloned().collect();
            if taken.is_empty() {
                continue;
            }
            info!(group = %self.id, member = %m.id, partitions = %consumer_protocol::describe(&taken), "revoking: offsets reset");
            m.assigned.retain(|tp| !taken.contains(tp));
            m.revoking.extend(taken);
            m.state = MemberState::UnrevokedPartitions;
            m.revoking_since.get_or_insert(now);
        }
        self.bump("offsets reset (live replay)");
    }

    /// OffsetCommit checks (see the module rules): one code per partition.
    pub fn check_commit(&self, member_id: &str, epoch: i32, tps: &[TopicPartition]) -> Vec<i16> {
        let all = |c| vec![c; tps.len()];
        if epoch < 0 && member_id.is_empty() {
            return all(if self.members.is_empty() {
                NONE
            } else {
                UNKNOWN_MEMBER_ID
            });
        }
        let Some(m) = self.members.get(member_id) else {
            return all(UNKNOWN_MEMBER_ID);
        };
        if epoch > m.epoch {
            return all(FENCED_MEMBER_EPOCH);
        }
        if epoch < m.epoch {
            return all(STALE_MEMBER_EPOCH);
        }
        tps.iter()
            .map(|tp| {
                if self.locks.is_owner(tp, member_id) {
                    NONE
                } else {
                    STALE_MEMBER_EPOCH
                }
            })
            .collect()
    }

    /// OffsetFetch with a member id and epoch.
    pub fn check_fetch(&self, member_id: &str, epoch: i32) -> i16 {
        match self.members.get(member_id) {
            None => UNKNOWN_MEMBER_ID,
            Some(m) if m.epoch != epoch => STALE_MEMBER_EPOCH,
            Some(_) => NONE,
        }
    }

    /// The topics subscribed by any member (OffsetDelete refuses them).
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.subscribed.keys().cloned().collect()
    }
}

/// Compiles a subscription regex (RE2/J syntax, which Rust's `regex` accepts for all but
/// rarely used constructs); it must match the whole topic name, as in Kafka.
pub fn compile(re: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{re})$"))
        .map_err(|e| format!("invalid subscription regex {re:?}: {e}"))
}
