//! One consumer group as a pure state machine: its state, generation, members, lock table
//! and committed offsets, and every operation except the join/sync protocol (which is in
//! `rebalance.rs`), live replays (`replay.rs`) and what others see of it (`views.rs`):
//! heartbeats, leaving, timers, offset commit checks.
//!
//! Time is passed in as milliseconds on a monotonic clock; nothing here does I/O. Parked
//! JoinGroup/SyncGroup requests are identified by [`Token`]s and answered through
//! [`Effects`]; every parked token is answered exactly once (on completion, on error, when
//! its member is removed or fenced, or when a newer request of the same member replaces it).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tracing::{info, warn};

use crate::audit::reconcile::PartitionAudit;
use crate::share::group::ShareGroup;

use super::consumer::ConsumerGroup;
use super::consumer_protocol::{self, TopicPartition, CONSUMER};
use super::errors::*;
use super::locks::LockTable;
use super::member::{Member, Token};
use super::meter::ConsumeMeter;
use super::offsets::{CommittedOffset, GroupRecord};
use super::replay::Replay;
use super::GroupConfig;

/// The group type of KIP-848 groups (ListGroups, the stored group record).
pub const GROUP_TYPE_CONSUMER: &str = "consumer";
/// A KIP-932 share group's type (and protocol type), as ListGroups shows it.
pub const GROUP_TYPE_SHARE: &str = "share";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    /// Deleted (DeleteGroups): every operation is refused until the group is gone.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member in a JoinGroup response to the leader.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(member_id: &str, error: i16) -> JoinResult {
        JoinResult {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> SyncResult {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Join(JoinResult),
    Sync(SyncResult),
}

/// What an operation asks of the world: answer parked requests and, when `persist` is set,
/// first make the group record ([`Group::record`]) durable (a new generation was created).
#[derive(Debug, Default)]
pub struct Effects {
    pub replies: Vec<(Token, Reply)>,
    pub persist: bool,
    /// Generations started (rebalances), for the metrics.
    pub rebalances: u32,
}

impl Effects {
    pub fn join(&mut self, token: Token, r: JoinResult) {
        self.replies.push((token, Reply::Join(r)));
    }
    pub fn sync(&mut self, token: Token, r: SyncResult) {
        self.replies.push((token, Reply::Sync(r)));
    }
}

/// The initial-rebalance delay of a group that was Empty (Kafka's InitialDelayedJoin).
#[derive(Clone, Copy, Debug)]
pub struct InitialDelay {
    pub next_check: u64,
    pub remaining: u64,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub config: GroupConfig,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id of static members.
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they expire.
    pub pending_members: BTreeMap<String, u64>,
    /// Members of the current generation that have not sent SyncGroup yet, and when they
    /// are dropped for it.
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline: Option<u64>,
    /// When a rebalance in progress completes even if members are missing.
    pub join_deadline: u64,
    pub initial_delay: Option<InitialDelay>,
    pub new_member_added: bool,
    pub locks: LockTable,
    /// Whether the lock table is enforced in this generation: the group uses the standard
    /// consumer protocol and every assignment parsed. Otherwise commits are checked by
    /// generation only, as Kafka does.
    pub lock_mode: bool,
    pub offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// The reconciliation of each partition the group committed while audited (`audit/`).
    pub audit: BTreeMap<TopicPartition, PartitionAudit>,
    /// Partition counts of the subscribed topics when the generation was assigned.
    pub partition_baseline: Option<BTreeMap<String, Option<i32>>>,
    /// Set while the group uses the KIP-848 consumer protocol: then the classic fields
    /// above are unused (an empty group converts back on a JoinGroup) and only the
    /// committed offsets are shared.
    pub consumer: Option<ConsumerGroup>,
    /// Set while the group is a share group (KIP-932, `share/group.rs`): then it has no
    /// classic members and no committed offsets; its share-partitions live with their
    /// partitions (`share/manager.rs`). A share group never converts to another type.
    pub share: Option<ShareGroup>,
    /// A live replay under way (`replay.rs`).
    pub replay: Replay,
    /// Classic members' consume rates, from their commits (KIP-848 groups keep theirs).
    pub meter: ConsumeMeter,
    /// Wall-clock time since which the group has had no members, as far as this
    /// coordinator knows (`expiry.rs`).
    pub empty_since_ms: Option<i64>,
    /// Offsets committed in transactions not decided yet, per producer id
    /// (`txn_offsets.rs`).
    pub txn_offsets: BTreeMap<i64, BTreeMap<TopicPartition, CommittedOffset>>,
}

impl Group {
    pub fn new(id: &str, config: GroupConfig) -> Group {
        Group {
            id: id.to_string(),
            config,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            join_deadline: 0,
            initial_delay: None,
            new_member_added: false,
            locks: LockTable::default(),
            lock_mode: false,
            offsets: BTreeMap::new(),
            audit: BTreeMap::new(),
            partition_baseline: None,
            consumer: None,
            share: None,
            replay: Replay::default(),
            meter: ConsumeMeter::default(),
            empty_since_ms: None,
            txn_offsets: BTreeMap::new(),
        }
    }

    /// A group rebuilt after a restart: Empty, at its last generation. Members rejoin.
    pub fn from_record(id: &str, config: GroupConfig, record: &GroupRecord) -> Group {
        let mut g = Group::new(id, config);
        g.generation = record.generation;
        g.protocol_type = record.protocol_type.clone();
        g.replay = Replay::from_record(&record.replay);
        if record.group_type.as_deref() == Some(GROUP_TYPE_CONSUMER) {
            g.consumer = Some(ConsumerGroup::new(
                id,
                g.config.consumer_settings(),
                record.generation,
            ));
        }
        if record.group_type.as_deref() == Some(GROUP_TYPE_SHARE) {
            g.share = Some(ShareGroup::new(id, record.generation));
        }
        g
    }

    pub fn record(&self) -> GroupRecord {
        if let Some(s) = &self.share {
            return GroupRecord {
                generation: s.group_epoch,
                protocol_type: Some(GROUP_TYPE_SHARE.to_string()),
                protocol_name: None,
                group_type: Some(GROUP_TYPE_SHARE.to_string()),
                replay: self.replay.to_record(),
            };
        }
        match &self.consumer {
            Some(c) => GroupRecord {
                generation: c.group_epoch,
                protocol_type: Some(CONSUMER.to_string()),
                protocol_name: None,
                group_type: Some(GROUP_TYPE_CONSUMER.to_string()),
                replay: self.replay.to_record(),
            },
            None => GroupRecord {
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                group_type: None,
                replay: self.replay.to_record(),
            },
        }
    }

    /// Makes an empty classic group a KIP-848 consumer group (Kafka 4.0's online
    /// upgrade of an empty group); committed offsets stay. Err(GROUP_ID_NOT_FOUND) when
    /// the group is a classic group with members.
    pub fn use_consumer_protocol(&mut self) -> Result<&mut ConsumerGroup, i16> {
        if self.share.is_some() {
            return Err(GROUP_ID_NOT_FOUND);
        }
        if self.consumer.is_none() {
            if self.state == GroupState::Dead {
                return Err(COORDINATOR_NOT_AVAILABLE);
            }
            if !self.members.is_empty() || self.state != GroupState::Empty {
                return Err(GROUP_ID_NOT_FOUND);
            }
            if self.generation > 0 {
                info!(group = %self.id, "empty classic group converted to the consumer protocol");
            }
            self.consumer = Some(ConsumerGroup::new(
                &self.id,
                self.config.consumer_settings(),
                self.generation,
            ));
        }
        Ok(self.consumer.as_mut().expect("set above"))
    }

    /// The group's record at `epoch` was made durable: a KIP-848 or share group whose epoch
    /// has not moved since is no longer dirty.
    pub fn epoch_stored(&mut self, epoch: i32) {
        if let Some(c) = self.consumer.as_mut().filter(|c| c.group_epoch == epoch) {
            c.epoch_dirty = false;
        }
        if let Some(s) = self.share.as_mut().filter(|s| s.group_epoch == epoch) {
            s.epoch_dirty = false;
        }
    }

    /// Makes a vacant group a share group. Err(GROUP_ID_NOT_FOUND) when the group is of
    /// another type (Kafka: "Group g is not a share group").
    pub fn use_share_protocol(&mut self) -> Result<&mut ShareGroup, i16> {
        if self.share.is_none() {
            if self.state == GroupState::Dead {
                return Err(COORDINATOR_NOT_AVAILABLE);
            }
            if !self.is_vacant() {
                return Err(GROUP_ID_NOT_FOUND);
            }
            self.share = Some(ShareGroup::new(&self.id, self.generation));
        }
        Ok(self.share.as_mut().expect("set above"))
    }

    /// The group type Kafka shows (ListGroups v5+, ConsumerGroupDescribe).
    pub fn group_type(&self) -> &'static str {
        if self.share.is_some() {
            GROUP_TYPE_SHARE
        } else if self.consumer.is_some() {
            GROUP_TYPE_CONSUMER
        } else {
            "classic"
        }
    }

    /// The state name Kafka shows for the group's type.
    pub fn state_name(&self) -> &'static str {
        if let (Some(s), false) = (&self.share, self.state == GroupState::Dead) {
            return s.state_name();
        }
        match &self.consumer {
            Some(c) if self.state != GroupState::Dead => c.state_name(),
            _ => self.state.name(),
        }
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Nothing worth keeping: never had a generation, no members, no offsets.
    pub fn is_vacant(&self) -> bool {
        self.consumer.is_none()
            && self.share.is_none()
            && self.state == GroupState::Empty
            && self.generation == 0
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
    }

    /// Kafka's validateCurrentMember: a static member whose instance id now maps to
    /// another member id is fenced; an id that is not a member is unknown.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(inst) = instance_id {
            if let Some(current) = self.static_members.get(inst) {
                if current != member_id {
                    return Err(FENCED_INSTANCE_ID);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }

    pub fn touch(&mut self, member_id: &str, now: u64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
    }

    pub(super) fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(inst) = &member.instance_id {
            self.static_members.insert(inst.clone(), member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member: answers its parked requests with `error`, releases its locks and
    /// elects another leader if it led. Does not start a rebalance.
    pub(super) fn remove_member(&mut self, id: &str, error: i16, fx: &mut Effects) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        self.meter.forget(id);
        if let Some(t) = m.join_waiter.take() {
            fx.join(t, JoinResult::error(id, error));
        }
        if let Some(t) = m.sync_waiter.take() {
            fx.sync(t, SyncResult::error(error));
        }
        if let Some(inst) = &m.instance_id {
            if self.static_members.get(inst).map(String::as_str) == Some(id) {
                self.static_members.remove(inst);
            }
        }
        let released = self.locks.release_member(id);
        if !released.is_empty() {
            info!(group = %self.id, member = id, partitions = %consumer_protocol::describe(&released), "locks released: member left");
        }
        self.pending_sync.remove(id);
        if self.is_leader(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Removes a member and moves the group on: a rebalance if it was running normally,
    /// a check for completion if a rebalance is in progress.
    pub(super) fn remove_member_and_rebalance(
        &mut self,
        id: &str,
        error: i16,
        now: u64,
        fx: &mut Effects,
    ) {
        self.remove_member(id, error, fx);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now, fx),
            GroupState::PreparingRebalance => self.try_complete_join(now, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Gives a static member's place (generation, assignment, locks, leadership) to a new
    /// member id; the old id is fenced and its parked requests get FENCED_INSTANCE_ID.
    pub(super) fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_id: &str,
        new_id: &str,
        fx: &mut Effects,
    ) {
        let Some(mut m) = self.members.remove(old_id) else {
            return;
        };
        if let Some(t) = m.join_waiter.take() {
            fx.join(t, JoinResult::error(old_id, FENCED_INSTANCE_ID));
        }
        if let Some(t) = m.sync_waiter.take() {
            fx.sync(t, SyncResult::error(FENCED_INSTANCE_ID));
        }
        m.id = new_id.to_string();
        self.members.insert(new_id.to_string(), m);
        self.static_members
            .insert(instance_id.to_string(), new_id.to_string());
        self.locks.rename(old_id, new_id);
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_string());
        }
    }

    /// Heartbeat: keeps a member alive and tells it whether to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: u64,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(e) = self.validate_member(member_id, instance_id) {
            return e;
        }
        if generation != self.generation {
            return ILLEGAL_GENERATION;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => UNKNOWN_MEMBER_ID,
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.touch(member_id, now);
                NONE
            }
            GroupState::PreparingRebalance => {
                self.touch(member_id, now);
                REBALANCE_IN_PROGRESS
            }
        }
    }

    /// LeaveGroup for one member (v3+ names several; by instance id when the member id is
    /// empty).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: u64,
        fx: &mut Effects,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return COORDINATOR_NOT_AVAILABLE;
        }
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(inst)) => match self.static_members.get(inst) {
                Some(id) => id.clone(),
                None => return UNKNOWN_MEMBER_ID,
            },
            _ => member_id.to_string(),
        };
        if let Some(inst) = instance_id {
            if self.static_members.get(inst).is_some_and(|m| *m != id) {
                return FENCED_INSTANCE_ID;
            }
        }
        if self.pending_members.remove(&id).is_some() {
            if self.state == GroupState::PreparingRebalance {
                self.try_complete_join(now, fx);
            }
            return NONE;
        }
        if !self.members.contains_key(&id) {
            return UNKNOWN_MEMBER_ID;
        }
        info!(group = %self.id, member = %id, "member left the group");
        self.remove_member_and_rebalance(&id, UNKNOWN_MEMBER_ID, now, fx);
        NONE
    }

    /// Timers: expired pending member ids, dead members (session timeout), members that
    /// did not sync in time (rebalance timeout), and rebalances to complete.
    pub fn tick(&mut self, now: u64, fx: &mut Effects) {
        if self.state == GroupState::Dead {
            return;
        }
        self.pending_members.retain(|_, deadline| now < *deadline);
        self.meter.update(self.members.keys(), now);
        let timeout = self.config.new_member_join_timeout_ms;
        let dead: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.alive(now, timeout))
            .map(|m| m.id.clone())
            .collect();
        for id in dead {
            info!(group = %self.id, member = %id, "member removed: session timeout expired");
            self.remove_member_and_rebalance(&id, UNKNOWN_MEMBER_ID, now, fx);
        }
        if self.sync_deadline.is_some_and(|d| now >= d) {
            self.sync_deadline = None;
            let late = std::mem::take(&mut self.pending_sync);
            if matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) {
                for id in late {
                    info!(group = %self.id, member = %id, "member removed: no SyncGroup within the rebalance timeout");
                    self.remove_member_and_rebalance(&id, UNKNOWN_MEMBER_ID, now, fx);
                }
            }
        }
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(now, fx);
        }
    }

    /// Checks an OffsetCommit and returns one error code per partition (NONE = may be
    /// written). Kafka's rules, then the lock: in lock mode a member may only commit the
    /// partitions it owns.
    ///
    /// A partition the member does not own gets ILLEGAL_GENERATION. Every client in
    /// CLIENTS.md reacts to it by failing the commit and rejoining the group with its
    /// member id kept (Java: CommitFailedException then rejoin; librdkafka, kafka-python,
    /// aiokafka and kafkajs: rejoin), which is exactly what a member with a stale view of
    /// its assignment must do. UNKNOWN_MEMBER_ID would make them drop their member id (a
    /// static member would fence itself) and REBALANCE_IN_PROGRESS is retried by some
    /// clients without rejoining.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        partitions: &[TopicPartition],
        now: u64,
    ) -> Vec<i16> {
        let all = |code: i16| vec![code; partitions.len()];
        if self.state == GroupState::Dead {
            return all(COORDINATOR_NOT_AVAILABLE);
        }
        if self.share.is_some() {
            // Share groups keep no committed offsets (Kafka: "not a consumer group").
            return all(GROUP_ID_NOT_FOUND);
        }
        let mut codes =
            self.check_member_commit(member_id, instance_id, generation, partitions, now);
        if !member_id.is_empty() && !self.replay.fence.is_empty() {
            let refused = if self.consumer.is_some() {
                STALE_MEMBER_EPOCH
            } else {
                ILLEGAL_GENERATION
            };
            for (code, tp) in codes.iter_mut().zip(partitions) {
                if *code == NONE && self.replay_refuses(tp, generation) {
                    warn!(group = %self.id, member = member_id, topic = %tp.0, partition = tp.1,
                        "commit refused: the partition's offset was reset after the member got it");
                    *code = refused;
                }
            }
            self.prune_fences();
        }
        codes
    }

    /// `check_commit` without the replay fence.
    fn check_member_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        partitions: &[TopicPartition],
        now: u64,
    ) -> Vec<i16> {
        let all = |code: i16| vec![code; partitions.len()];
        if let Some(c) = &self.consumer {
            return c.check_commit(member_id, generation, partitions);
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if let Err(e) = self.validate_member(member_id, instance_id) {
                return all(e);
            }
            if generation != self.generation {
                return all(ILLEGAL_GENERATION);
            }
            if self.state == GroupState::CompletingRebalance {
                return all(REBALANCE_IN_PROGRESS);
            }
            self.touch(member_id, now);
            if !self.lock_mode {
                return all(NONE);
            }
            return partitions
                .iter()
                .map(|tp| {
                    if self.locks.is_owner(tp, member_id) {
                        NONE
                    } else {
                        warn!(group = %self.id, member = member_id, topic = %tp.0, partition = tp.1,
                            holder = ?self.locks.owner(tp).map(|l| &l.member),
                            "commit refused: member does not own the partition");
                        ILLEGAL_GENERATION
                    }
                })
                .collect();
        }
        // generation -1 and no member id: a simple consumer (assign() + commit) storing
        // offsets in the group, allowed only while the group has no members.
        if self.state != GroupState::Empty {
            return all(UNKNOWN_MEMBER_ID);
        }
        all(NONE)
    }

    /// Stores accepted commits of `member_id` and counts them towards the consume rate of
    /// each partition's lock holder (or of the committer, where there are no locks).
    pub fn apply_commits(
        &mut self,
        member_id: &str,
        commits: Vec<(TopicPartition, CommittedOffset)>,
        now: u64,
    ) {
        let progress: Vec<_> = commits
            .iter()
            .map(|(tp, o)| (tp.clone(), o.offset, self.offsets.get(tp).map(|b| b.offset)))
            .collect();
        match &mut self.consumer {
            Some(c) => c.record_commits(&progress, now),
            None => {
                for (tp, offset, before) in progress {
                    let owner = match self.locks.owner(&tp) {
                        Some(l) => l.member.as_str(),
                        None if !self.lock_mode && !member_id.is_empty() => member_id,
                        None => continue,
                    };
                    self.meter.record(owner, offset, before, now);
                }
            }
        }
        self.offsets.extend(commits);
    }

    /// Topics the members subscribed to, if the group uses the consumer protocol and every
    /// subscription parses.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            let sub = consumer_protocol::parse_subscription(m.metadata(protocol)?).ok()?;
            topics.extend(sub.topics);
        }
        Some(topics)
    }

    /// Records the partition counts the current generation was assigned with.
    pub fn set_partition_baseline(&mut self, counts: &dyn Fn(&str) -> Option<i32>) {
        if self.state != GroupState::Stable || self.partition_baseline.is_some() {
            return;
        }
        if let Some(topics) = self.subscribed_topics() {
            self.partition_baseline = Some(
                topics
                    .into_iter()
                    .map(|t| (t.clone(), counts(&t)))
                    .collect(),
            );
        }
    }

    /// Starts a rebalance if a subscribed topic's partition count changed since the
    /// generation was assigned. Returns whether it did.
    pub fn check_partition_counts(
        &mut self,
        counts: &dyn Fn(&str) -> Option<i32>,
        now: u64,
        fx: &mut Effects,
    ) -> bool {
        if self.state != GroupState::Stable {
            return false;
        }
        let Some(base) = &self.partition_baseline else {
            return false;
        };
        let changed: Vec<String> = base
            .iter()
            .filter(|(t, c)| counts(t) != **c)
            .map(|(t, _)| t.clone())
            .collect();
        if changed.is_empty() {
            return false;
        }
        info!(group = %self.id, topics = ?changed, "partition count changed: rebalancing");
        self.prepare_rebalance(now, fx);
        true
    }

    /// Topics OffsetDelete must refuse: subscribed to by a live consumer group. When the
    /// subscriptions cannot be read, every topic counts as subscribed.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        if let Some(c) = &self.consumer {
            return !c.members.is_empty() && c.subscribed_topics().contains(topic);
        }
        if self.state == GroupState::Empty || self.members.is_empty() {
            return false;
        }
        match self.subscribed_topics() {
            Some(t) => t.contains(topic),
            None => true,
        }
    }
}
