//! The classic group protocol's rebalance, on [`Group`]: JoinGroup (new, pending, known and
//! static members), waiting for members to rejoin (initial delay for new groups, rebalance
//! timeout), choosing the protocol, starting a generation, SyncGroup, and what each step
//! does to the lock table. Follows Kafka's GroupCoordinator state by state and error by
//! error, so clients see the codes they expect.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tracing::{info, warn};

use super::consumer_protocol::{self, CONSUMER};
use super::errors::*;
use super::group::{
    Effects, Group, GroupState, InitialDelay, JoinResult, JoinedMember, SyncResult,
};
use super::member::{Member, Token};

/// A JoinGroup request, decoded.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

/// A SyncGroup request, decoded.
#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, by member id (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// A cooperative protocol lets members keep partitions across a rebalance; every eager
/// member revokes everything before it rejoins. Cooperative assignors are named so
/// ("cooperative-sticky" in librdkafka and the Java client).
pub fn is_cooperative(protocol: &str) -> bool {
    protocol.contains("cooperative")
}

impl Group {
    pub fn join(&mut self, req: JoinRequest, token: Token, now: u64, fx: &mut Effects) {
        let reply =
            |fx: &mut Effects, code| fx.join(token, JoinResult::error(&req.member_id, code));
        if self.state == GroupState::Dead {
            return reply(fx, COORDINATOR_NOT_AVAILABLE);
        }
        if self.share.is_some() {
            return reply(fx, INCONSISTENT_GROUP_PROTOCOL);
        }
        if let Some(c) = &self.consumer {
            if !c.members.is_empty() {
                return reply(fx, INCONSISTENT_GROUP_PROTOCOL);
            }
            // An empty consumer-protocol group goes back to the classic protocol; its
            // generations continue after its epochs.
            info!(group = %self.id, "empty consumer group converted to the classic protocol");
            self.generation = self.generation.max(c.group_epoch);
            self.consumer = None;
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return reply(fx, INVALID_SESSION_TIMEOUT);
        }
        if !self.supports_protocols(&req.member_id, &req.protocol_type, &req.protocols) {
            return reply(fx, INCONSISTENT_GROUP_PROTOCOL);
        }
        if req.member_id.is_empty() {
            let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
            let id = new_member_id(prefix);
            if let Some(inst) = req.instance_id.clone() {
                return self.static_join(&inst, id, req, token, now, fx);
            }
            if req.require_known_member_id {
                let deadline = now + req.session_timeout_ms as u64;
                self.pending_members.insert(id.clone(), deadline);
                return fx.join(token, JoinResult::error(&id, MEMBER_ID_REQUIRED));
            }
            return self.add_member_and_rebalance(id, req, token, now, fx);
        }
        if self.pending_members.remove(&req.member_id).is_some() {
            if req.instance_id.is_some() {
                return reply(fx, UNKNOWN_MEMBER_ID);
            }
            let id = req.member_id.clone();
            return self.add_member_and_rebalance(id, req, token, now, fx);
        }
        if let Err(e) = self.validate_member(&req.member_id, req.instance_id.as_deref()) {
            return reply(fx, e);
        }
        let id = req.member_id.clone();
        let member = &self.members[&id];
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, token, now, fx),
            GroupState::CompletingRebalance if member.matches(&req.protocols) => {
                // Lost its JoinGroup response: answer again for the current generation.
                self.touch(&id, now);
                let leader = self.is_leader(&id);
                fx.join(token, self.generation_result(&id, leader));
            }
            GroupState::Stable if !self.is_leader(&id) && member.matches(&req.protocols) => {
                // A follower with nothing new: it may SyncGroup in the current generation.
                self.touch(&id, now);
                fx.join(token, self.generation_result(&id, false));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                info!(group = %self.id, member = %id, "member rejoined with new metadata or as leader: rebalancing");
                self.update_member_and_rebalance(req, token, now, fx)
            }
            GroupState::Empty | GroupState::Dead => reply(fx, UNKNOWN_MEMBER_ID),
        }
    }

    fn static_join(
        &mut self,
        instance_id: &str,
        new_id: String,
        req: JoinRequest,
        token: Token,
        now: u64,
        fx: &mut Effects,
    ) {
        let Some(old_id) = self.static_members.get(instance_id).cloned() else {
            return self.add_member_and_rebalance(new_id, req, token, now, fx);
        };
        info!(group = %self.id, instance = instance_id, old = %old_id, new = %new_id, "static member rejoined: fencing its old member id");
        match self.state {
            GroupState::Stable => {
                let old_leader = self.leader.clone().unwrap_or_default();
                self.replace_static_member(instance_id, &old_id, &new_id, fx);
                let selected_before = self.protocol_name.clone();
                let m = self.members.get_mut(&new_id).expect("just replaced");
                update_member(m, &req, None, now);
                if self.select_protocol() != selected_before {
                    let mut req = req;
                    req.member_id = new_id;
                    return self.update_member_and_rebalance(req, token, now, fx);
                }
                // Same generation, same assignment. The old leader id is returned so that a
                // static leader does not run a useless assignment a Stable group ignores.
                let mut r = self.generation_result(&new_id, false);
                r.leader = old_leader;
                fx.join(token, r);
            }
            GroupState::PreparingRebalance | GroupState::CompletingRebalance => {
                self.replace_static_member(instance_id, &old_id, &new_id, fx);
                let mut req = req;
                req.member_id = new_id;
                self.update_member_and_rebalance(req, token, now, fx)
            }
            GroupState::Empty | GroupState::Dead => {
                fx.join(token, JoinResult::error(&req.member_id, UNKNOWN_MEMBER_ID))
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        req: JoinRequest,
        token: Token,
        now: u64,
        fx: &mut Effects,
    ) {
        let mut m = Member {
            id: id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: 0,
            protocol_type: req.protocol_type.clone(),
            protocols: Vec::new(),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            last_heartbeat: now,
            is_new: true,
        };
        update_member(&mut m, &req, Some(token), now);
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        info!(group = %self.id, member = %id, client = %req.client_id, "member joined");
        self.add_member(m);
        self.maybe_prepare_rebalance(now, fx);
        self.try_complete_join(now, fx);
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        token: Token,
        now: u64,
        fx: &mut Effects,
    ) {
        let m = self.members.get_mut(&req.member_id).expect("known member");
        if let Some(old) = m.join_waiter.take() {
            fx.join(
                old,
                JoinResult::error(&req.member_id, REBALANCE_IN_PROGRESS),
            );
        }
        update_member(m, &req, Some(token), now);
        self.maybe_prepare_rebalance(now, fx);
        self.try_complete_join(now, fx);
    }

    fn maybe_prepare_rebalance(&mut self, now: u64, fx: &mut Effects) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, fx);
        }
    }

    /// Enters PreparingRebalance: members awaiting their assignment are told to rejoin, and
    /// the rebalance waits for every member up to the largest rebalance timeout (plus, for
    /// a group that was Empty, the initial delay).
    pub(super) fn prepare_rebalance(&mut self, now: u64, fx: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_waiter.take() {
                    fx.sync(t, SyncResult::error(REBALANCE_IN_PROGRESS));
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let timeout = self.max_rebalance_timeout();
        self.initial_delay = if self.state == GroupState::Empty {
            let delay = self.config.initial_rebalance_delay_ms;
            self.new_member_added = false;
            Some(InitialDelay {
                next_check: now + delay,
                remaining: timeout.saturating_sub(delay),
            })
        } else {
            None
        };
        self.join_deadline = now + timeout;
        self.state = GroupState::PreparingRebalance;
        self.try_complete_join(now, fx);
    }

    /// The new generation could not be stored: start over, so that the members rejoin into
    /// a generation that is.
    pub fn persist_failed(&mut self, now: u64, fx: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            self.prepare_rebalance(now, fx);
        }
    }

    fn max_rebalance_timeout(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(Member::awaiting_join)
    }

    /// Completes the rebalance in progress if every member rejoined or time is up.
    pub(super) fn try_complete_join(&mut self, now: u64, fx: &mut Effects) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(d) = &mut self.initial_delay {
            if now < d.next_check {
                return;
            }
            if self.new_member_added && d.remaining > 0 {
                self.new_member_added = false;
                let delay = self.config.initial_rebalance_delay_ms.min(d.remaining);
                d.next_check = now + delay;
                d.remaining -= delay;
                return;
            }
        } else if !self.all_members_joined() && now < self.join_deadline {
            return;
        }
        self.complete_join(now, fx);
    }

    fn complete_join(&mut self, now: u64, fx: &mut Effects) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join() && !m.is_static())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            info!(group = %self.id, member = %id, "member removed: did not rejoin within the rebalance timeout");
            self.remove_member(&id, UNKNOWN_MEMBER_ID, fx);
        }
        if !self.members.is_empty() && !self.elect_joined_leader() {
            // Only static members that did not rejoin: wait for them again.
            self.initial_delay = None;
            self.join_deadline = now + self.max_rebalance_timeout();
            return;
        }
        self.init_next_generation(now, fx);
    }

    fn elect_joined_leader(&mut self) -> bool {
        if let Some(l) = &self.leader {
            if self.members.get(l).is_some_and(Member::awaiting_join) {
                return true;
            }
        }
        match self.members.values().find(|m| m.awaiting_join()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, now: u64, fx: &mut Effects) {
        self.generation += 1;
        fx.rebalances += 1;
        self.initial_delay = None;
        self.partition_baseline = None;
        fx.persist = true;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.state = GroupState::Empty;
            self.locks.clear();
            // Nobody holds a position any more: the next members fetch committed offsets.
            self.replay.withhold.clear();
            info!(group = %self.id, generation = self.generation, "group is now empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.lock_mode = self.protocol_type.as_deref() == Some(CONSUMER);
        if !self.lock_mode {
            self.locks.clear();
        }
        let cooperative = is_cooperative(&protocol);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            let m = &self.members[id];
            if self.lock_mode && m.awaiting_join() {
                // The rejoin tells what the member still owns.
                let owned = match m
                    .metadata(&protocol)
                    .map(consumer_protocol::parse_subscription)
                {
                    Some(Ok(s)) if cooperative => s.owned,
                    _ => BTreeSet::new(),
                };
                let released = self.locks.retain(id, &owned);
                if !released.is_empty() {
                    info!(group = %self.id, member = %id, partitions = %consumer_protocol::describe(&released), "locks released: revoked by rejoin");
                }
            }
        }
        let leader = self.leader.clone().unwrap_or_default();
        for id in &ids {
            let result = self.generation_result(id, *id == leader);
            let m = self.members.get_mut(id).expect("member");
            if let Some(t) = m.join_waiter.take() {
                fx.join(t, result);
            }
            m.last_heartbeat = now;
            m.is_new = false;
            self.pending_sync.insert(id.clone());
        }
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        info!(group = %self.id, generation = self.generation, protocol = %protocol,
            members = self.members.len(), leader = %leader, "generation started");
    }

    /// The JoinGroup answer for the current generation; the leader gets every member.
    fn generation_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if with_members {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol).cloned().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Protocols every member supports, in the order of the first member's preference.
    fn candidate_protocols(&self, except: &str) -> Option<Vec<String>> {
        let mut others = self.members.values().filter(|m| m.id != except);
        let first = others.next()?;
        let rest: Vec<&Member> = others.collect();
        Some(
            first
                .protocols
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| rest.iter().all(|m| m.supports(n)))
                .collect(),
        )
    }

    /// Kafka's rule: a member may join if the group is empty, or if it has the group's
    /// protocol type and one protocol every other member supports.
    fn supports_protocols(
        &self,
        member_id: &str,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        match self.candidate_protocols(member_id) {
            None => true,
            Some(candidates) => {
                self.protocol_type.as_deref() == Some(protocol_type)
                    && protocols.iter().any(|(n, _)| candidates.contains(n))
            }
        }
    }

    /// Each member votes for its most preferred protocol among those all support; the most
    /// votes win (ties: the earliest in the first member's preference).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols("")?;
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        candidates
            .into_iter()
            .find(|c| votes.get(c.as_str()) == Some(&best))
    }

    pub fn sync(&mut self, req: SyncRequest, token: Token, now: u64, fx: &mut Effects) {
        let reply = |fx: &mut Effects, code| fx.sync(token, SyncResult::error(code));
        if self.state == GroupState::Dead {
            return reply(fx, COORDINATOR_NOT_AVAILABLE);
        }
        if let Err(e) = self.validate_member(&req.member_id, req.instance_id.as_deref()) {
            return reply(fx, e);
        }
        if req.generation != self.generation {
            return reply(fx, ILLEGAL_GENERATION);
        }
        if req.protocol_type.is_some() && req.protocol_type != self.protocol_type
            || req.protocol_name.is_some() && req.protocol_name != self.protocol_name
        {
            return reply(fx, INCONSISTENT_GROUP_PROTOCOL);
        }
        let id = req.member_id.clone();
        match self.state {
            GroupState::Empty | GroupState::Dead => reply(fx, UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => reply(fx, REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                self.synced(&id, now);
                let assignment = self.members[&id].assignment.clone();
                fx.sync(token, self.sync_result(assignment));
                self.replay_follow_up(now, fx);
            }
            GroupState::CompletingRebalance => {
                let m = self.members.get_mut(&id).expect("validated");
                if let Some(old) = m.sync_waiter.replace(token) {
                    fx.sync(old, SyncResult::error(REBALANCE_IN_PROGRESS));
                }
                self.synced(&id, now);
                if self.is_leader(&id) {
                    self.complete_sync(req.assignments, fx);
                }
                self.replay_follow_up(now, fx);
            }
        }
    }

    fn synced(&mut self, id: &str, now: u64) {
        self.touch(id, now);
        self.pending_sync.remove(id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// The leader's assignment ends the rebalance: members get their partitions and the
    /// lock table grants the partitions nobody holds.
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, fx: &mut Effects) {
        let mut given: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = given.remove(&m.id).unwrap_or_default();
        }
        self.withhold_replayed();
        if self.lock_mode {
            let parsed: Result<BTreeMap<_, _>, _> = self
                .members
                .values()
                .map(|m| {
                    consumer_protocol::parse_assignment(&m.assignment).map(|a| (m.id.clone(), a))
                })
                .collect();
            match parsed {
                Ok(map) => {
                    for c in self.locks.grant(self.generation, &map) {
                        warn!(group = %self.id, topic = %c.partition.0, partition = c.partition.1,
                            assignee = %c.assignee, holder = %c.holder,
                            "partition assigned while another member still owns it: kept by its owner until revoked");
                    }
                }
                Err(e) => {
                    warn!(group = %self.id, error = %e, "unreadable assignment: partition locks off for this generation (generation check only)");
                    self.lock_mode = false;
                    self.locks.clear();
                }
            }
        }
        self.state = GroupState::Stable;
        info!(group = %self.id, generation = self.generation, "group is stable");
        for id in self.members.keys().cloned().collect::<Vec<_>>() {
            let assignment = self.members[&id].assignment.clone();
            let result = self.sync_result(assignment);
            if let Some(t) = self.members.get_mut(&id).and_then(|m| m.sync_waiter.take()) {
                fx.sync(t, result);
            }
        }
    }
}

/// Takes what a JoinGroup says about the member.
fn update_member(m: &mut Member, req: &JoinRequest, token: Option<Token>, now: u64) {
    m.client_id = req.client_id.clone();
    m.client_host = req.client_host.clone();
    m.session_timeout_ms = req.session_timeout_ms.max(0) as u64;
    m.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0) as u64;
    m.protocol_type = req.protocol_type.clone();
    m.protocols = req.protocols.clone();
    m.join_waiter = token;
    m.last_heartbeat = now;
}
