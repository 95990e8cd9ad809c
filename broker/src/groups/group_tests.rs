//! Unit tests of the group state machine: membership, generations, rebalances, timeouts,
//! static membership, and the partition lock as seen through OffsetCommit checks. No
//! network, no storage, no real time.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::consumer_protocol::{encode_assignment, encode_subscription, TopicPartition};
use super::errors::*;
use super::group::{Effects, Group, GroupState, JoinResult, Reply, SyncResult};
use super::member::Token;
use super::rebalance::{JoinRequest, SyncRequest};
use super::GroupConfig;

const SESSION: i32 = 3000;
const REBALANCE: i32 = 10_000;
const DELAY: u64 = 100;

struct H {
    g: Group,
    now: u64,
    next: Token,
    replies: BTreeMap<Token, Reply>,
    persists: usize,
}

fn tps(v: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
    v.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

impl H {
    fn new() -> H {
        let config = GroupConfig {
            initial_rebalance_delay_ms: DELAY,
            ..GroupConfig::default()
        };
        H {
            g: Group::new("g", config),
            now: 1000,
            next: 1,
            replies: BTreeMap::new(),
            persists: 0,
        }
    }

    fn apply(&mut self, fx: Effects) {
        if fx.persist {
            self.persists += 1;
        }
        for (t, r) in fx.replies {
            assert!(
                self.replies.insert(t, r).is_none(),
                "token {t} answered twice"
            );
        }
    }

    fn req(&self, member: &str, protocol: &str, owned: &[(&str, i32)]) -> JoinRequest {
        JoinRequest {
            member_id: member.to_string(),
            instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: vec![(
                protocol.to_string(),
                encode_subscription(&["t"], &tps(owned), 1),
            )],
            require_known_member_id: false,
        }
    }

    fn join_req(&mut self, req: JoinRequest) -> Token {
        let t = self.next;
        self.next += 1;
        let mut fx = Effects::default();
        self.g.join(req, t, self.now, &mut fx);
        self.apply(fx);
        t
    }

    fn join(&mut self, member: &str) -> Token {
        let r = self.req(member, "range", &[]);
        self.join_req(r)
    }

    fn sync(
        &mut self,
        member: &str,
        generation: i32,
        assignments: &[(&str, &[(&str, i32)])],
    ) -> Token {
        let t = self.next;
        self.next += 1;
        let req = SyncRequest {
            member_id: member.to_string(),
            instance_id: None,
            generation,
            protocol_type: None,
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, p)| (m.to_string(), encode_assignment(&tps(p), 0)))
                .collect(),
        };
        let mut fx = Effects::default();
        self.g.sync(req, t, self.now, &mut fx);
        self.apply(fx);
        t
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 50).min(end);
            let mut fx = Effects::default();
            self.g.tick(self.now, &mut fx);
            self.apply(fx);
        }
    }

    fn joined(&mut self, t: Token) -> JoinResult {
        match self.replies.remove(&t) {
            Some(Reply::Join(r)) => r,
            other => panic!("join {t} not answered: {other:?}"),
        }
    }

    fn synced(&mut self, t: Token) -> SyncResult {
        match self.replies.remove(&t) {
            Some(Reply::Sync(r)) => r,
            other => panic!("sync {t} not answered: {other:?}"),
        }
    }

    fn pending(&self, t: Token) -> bool {
        !self.replies.contains_key(&t)
    }

    fn commit(&mut self, member: &str, generation: i32, parts: &[(&str, i32)]) -> Vec<i16> {
        let parts: Vec<TopicPartition> = tps(parts).into_iter().collect();
        self.g
            .check_commit(member, None, generation, &parts, self.now)
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> i16 {
        self.g.heartbeat(member, None, generation, self.now)
    }

    /// Joins `members` (by v4 protocol, taking the ids the coordinator gives) into one
    /// generation and syncs with `assignment`; returns the member ids in join order.
    fn form(
        &mut self,
        n: usize,
        assignment: impl Fn(&[String]) -> Vec<Vec<(&'static str, i32)>>,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        for _ in 0..n {
            let mut r = self.req("", "range", &[]);
            r.require_known_member_id = true;
            let t = self.join_req(r.clone());
            let first = self.joined(t);
            assert_eq!(first.error, MEMBER_ID_REQUIRED);
            r.member_id = first.member_id.clone();
            ids.push(first.member_id);
            tokens.push(self.join_req(r));
        }
        // Each new member extends the initial delay by DELAY (Kafka's InitialDelayedJoin).
        while tokens.iter().any(|t| self.pending(*t)) {
            assert!(self.now < 100_000, "group never formed");
            self.advance(50);
        }
        let results: Vec<JoinResult> = tokens.into_iter().map(|t| self.joined(t)).collect();
        let generation = results[0].generation;
        let leader = results[0].leader.clone();
        for r in &results {
            assert_eq!(r.error, NONE);
            assert_eq!(r.generation, generation);
            assert_eq!(r.members.len(), if r.member_id == leader { n } else { 0 });
        }
        let parts = assignment(&ids);
        let given: Vec<(&str, &[(&str, i32)])> = ids
            .iter()
            .zip(&parts)
            .map(|(m, p)| (m.as_str(), p.as_slice()))
            .collect();
        let mut syncs = Vec::new();
        for id in &ids {
            if *id != leader {
                syncs.push(self.sync(id, generation, &[]));
            }
        }
        syncs.push(self.sync(&leader, generation, &given));
        for t in syncs {
            assert_eq!(self.synced(t).error, NONE);
        }
        assert_eq!(self.g.state, GroupState::Stable);
        ids
    }
}

fn three_way(_: &[String]) -> Vec<Vec<(&'static str, i32)>> {
    vec![
        vec![("t", 0), ("t", 1)],
        vec![("t", 2), ("t", 3)],
        vec![("t", 4), ("t", 5)],
    ]
}

#[test]
fn first_join_waits_the_initial_delay_then_forms_generation_one() {
    let mut h = H::new();
    let t = h.join("");
    assert!(h.pending(t));
    assert_eq!(h.g.state, GroupState::PreparingRebalance);
    h.advance(DELAY);
    let r = h.joined(t);
    assert_eq!((r.error, r.generation), (NONE, 1));
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        h.persists, 1,
        "the new generation is stored before anyone hears of it"
    );
    let s = h.sync(&r.member_id, 1, &[(&r.member_id, &[("t", 0)])]);
    let s = h.synced(s);
    assert_eq!(s.error, NONE);
    assert_eq!(
        super::consumer_protocol::parse_assignment(&s.assignment).unwrap(),
        tps(&[("t", 0)])
    );
    assert_eq!(h.heartbeat(&r.member_id, 1), NONE);
}

#[test]
fn three_members_started_together_share_one_generation_and_locks_follow_assignment() {
    let mut h = H::new();
    let ids = h.form(3, three_way);
    assert_eq!(h.g.generation, 1);
    assert_eq!(
        h.commit(&ids[0], 1, &[("t", 0), ("t", 1)]),
        vec![NONE, NONE]
    );
    assert_eq!(
        h.commit(&ids[0], 1, &[("t", 2)]),
        vec![ILLEGAL_GENERATION],
        "not its partition"
    );
    assert_eq!(
        h.commit(&ids[1], 0, &[("t", 2)]),
        vec![ILLEGAL_GENERATION],
        "stale generation"
    );
    assert_eq!(h.commit("zombie", 1, &[("t", 2)]), vec![UNKNOWN_MEMBER_ID]);
    assert_eq!(
        h.commit("", -1, &[("t", 2)]),
        vec![UNKNOWN_MEMBER_ID],
        "simple commit while members exist"
    );
}

#[test]
fn v4_join_requires_a_member_id_and_unused_ids_expire() {
    let mut h = H::new();
    let mut r = h.req("", "range", &[]);
    r.require_known_member_id = true;
    let t = h.join_req(r.clone());
    let first = h.joined(t);
    assert_eq!(first.error, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty());
    assert!(h.g.pending_members.contains_key(&first.member_id));
    h.advance(SESSION as u64 + 100);
    assert!(h.g.pending_members.is_empty());
    r.member_id = first.member_id;
    let t = h.join_req(r);
    assert_eq!(h.joined(t).error, UNKNOWN_MEMBER_ID, "expired pending id");
}

#[test]
fn a_new_member_triggers_a_rebalance_that_completes_when_everyone_rejoined() {
    let mut h = H::new();
    let ids = h.form(1, |_| vec![vec![("t", 0), ("t", 1)]]);
    let a = ids[0].clone();
    let tb = h.join("");
    assert_eq!(h.g.state, GroupState::PreparingRebalance);
    assert!(h.pending(tb));
    assert_eq!(h.heartbeat(&a, 1), REBALANCE_IN_PROGRESS);
    // a may still commit what it owns in the old generation before rejoining (eager revoke).
    assert_eq!(h.commit(&a, 1, &[("t", 0)]), vec![NONE]);
    let ta = h.join(&a);
    let ra = h.joined(ta);
    let rb = h.joined(tb);
    assert_eq!((ra.generation, rb.generation), (2, 2));
    assert_eq!(ra.leader, a, "the leader stays the leader");
    // Eager: a's rejoin released its partitions. In CompletingRebalance commits wait.
    assert_eq!(h.commit(&a, 2, &[("t", 0)]), vec![REBALANCE_IN_PROGRESS]);
    assert!(h.g.locks.is_empty());
    let sb = h.sync(&rb.member_id, 2, &[]);
    assert!(h.pending(sb));
    let sa = h.sync(&a, 2, &[(&a, &[("t", 0)]), (&rb.member_id, &[("t", 1)])]);
    assert_eq!(h.synced(sa).error, NONE);
    assert_eq!(h.synced(sb).error, NONE);
    assert_eq!(h.commit(&rb.member_id, 2, &[("t", 1)]), vec![NONE]);
    assert_eq!(h.commit(&a, 2, &[("t", 1)]), vec![ILLEGAL_GENERATION]);
    assert_eq!(h.persists, 2);
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let mut h = H::new();
    let ids = h.form(2, |_| vec![vec![("t", 0)], vec![("t", 1)]]);
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let ta = h.join(&a); // a rejoins (as leader): rebalance
    assert!(h.pending(ta));
    // b keeps heartbeating but never rejoins.
    for _ in 0..(REBALANCE / 1000) {
        h.advance(1000);
        if !h.pending(ta) {
            break;
        }
        assert_eq!(h.heartbeat(&b, 1), REBALANCE_IN_PROGRESS);
    }
    let r = h.joined(ta);
    assert_eq!((r.error, r.generation, r.members.len()), (NONE, 2, 1));
    assert!(!h.g.members.contains_key(&b));
    assert_eq!(h.heartbeat(&b, 1), UNKNOWN_MEMBER_ID);
    assert_eq!(h.commit(&b, 1, &[("t", 1)]), vec![UNKNOWN_MEMBER_ID]);
}

#[test]
fn session_timeout_removes_a_silent_member_and_frees_its_partitions() {
    let mut h = H::new();
    let ids = h.form(3, three_way);
    // 0 and 1 heartbeat; 2 is killed.
    for _ in 0..4 {
        h.advance(1000);
        for id in &ids[..2] {
            assert!([NONE, REBALANCE_IN_PROGRESS].contains(&h.heartbeat(id, 1)));
        }
    }
    assert!(
        !h.g.members.contains_key(&ids[2]),
        "expired after {SESSION} ms"
    );
    assert!(
        h.g.locks.owner(&("t".into(), 4)).is_none(),
        "its locks are released"
    );
    assert_eq!(h.g.state, GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&ids[0], 1), REBALANCE_IN_PROGRESS);
    let t0 = h.join(&ids[0]);
    let t1 = h.join(&ids[1]);
    let (r0, r1) = (h.joined(t0), h.joined(t1));
    assert_eq!((r0.generation, r1.generation), (2, 2));
    let leader = r0.leader.clone();
    let follower = if leader == ids[0] { &ids[1] } else { &ids[0] };
    let s = h.sync(
        &leader,
        2,
        &[
            (&leader, &[("t", 0), ("t", 1), ("t", 2)]),
            (follower, &[("t", 3), ("t", 4), ("t", 5)]),
        ],
    );
    assert_eq!(h.synced(s).error, NONE);
    assert_eq!(h.commit(follower, 2, &[("t", 4)]), vec![NONE]);
}

#[test]
fn leaving_rebalances_and_the_leader_moves() {
    let mut h = H::new();
    let ids = h.form(2, |_| vec![vec![("t", 0)], vec![("t", 1)]]);
    let leader = h.g.leader.clone().unwrap();
    let other = ids.iter().find(|i| **i != leader).unwrap().clone();
    let mut fx = Effects::default();
    assert_eq!(h.g.leave(&leader, None, h.now, &mut fx), NONE);
    h.apply(fx);
    assert_eq!(h.g.leader.as_deref(), Some(other.as_str()));
    assert_eq!(h.g.state, GroupState::PreparingRebalance);
    let t = h.join(&other);
    let r = h.joined(t);
    assert_eq!((r.generation, r.leader.as_str()), (2, other.as_str()));
    let mut fx = Effects::default();
    assert_eq!(h.g.leave("nobody", None, h.now, &mut fx), UNKNOWN_MEMBER_ID);
    // The last member leaves: a new, empty generation.
    assert_eq!(h.g.leave(&other, None, h.now, &mut fx), NONE);
    h.apply(fx);
    assert_eq!((h.g.state, h.g.generation), (GroupState::Empty, 3));
    assert_eq!(h.persists, 3);
    assert_eq!(
        h.commit("", -1, &[("t", 0)]),
        vec![NONE],
        "simple commits allowed when empty"
    );
}

#[test]
fn static_member_restart_keeps_its_place_and_fences_the_old_id() {
    let mut h = H::new();
    let mut r = h.req("", "range", &[]);
    r.instance_id = Some("host-1".into());
    r.require_known_member_id = true;
    let t = h.join_req(r.clone());
    h.advance(DELAY);
    let first = h.joined(t);
    assert_eq!(first.error, NONE, "static members skip MEMBER_ID_REQUIRED");
    let old = first.member_id.clone();
    let s = h.sync(&old, 1, &[(&old, &[("t", 0), ("t", 1)])]);
    h.synced(s);
    // The process restarts: same instance id, no member id.
    let t = h.join_req(r.clone());
    let second = h.joined(t);
    assert_eq!((second.error, second.generation), (NONE, 1), "no rebalance");
    assert_ne!(second.member_id, old);
    assert_eq!(
        second.leader, old,
        "returned the old leader id: no reassignment in Stable"
    );
    assert_eq!(h.g.state, GroupState::Stable);
    let s = h.sync(&second.member_id, 1, &[]);
    assert_eq!(
        super::consumer_protocol::parse_assignment(&h.synced(s).assignment).unwrap(),
        tps(&[("t", 0), ("t", 1)])
    );
    assert_eq!(
        h.g.heartbeat(&old, Some("host-1"), 1, h.now),
        FENCED_INSTANCE_ID
    );
    let parts = vec![("t".to_string(), 0)];
    assert_eq!(
        h.g.check_commit(&old, Some("host-1"), 1, &parts, h.now),
        vec![FENCED_INSTANCE_ID]
    );
    assert_eq!(
        h.g.check_commit(&second.member_id, Some("host-1"), 1, &parts, h.now),
        vec![NONE],
        "the lock moved to the new member id"
    );
    // A static member is kept through a rebalance it misses (until its session expires).
    assert_eq!(h.persists, 1);
}

#[test]
fn cooperative_locks_move_only_after_the_owner_revokes() {
    let mut h = H::new();
    let coop = "cooperative-sticky";
    let mut ra = h.req("", coop, &[]);
    let ta = h.join_req(ra.clone());
    h.advance(DELAY);
    let a = h.joined(ta).member_id;
    ra.member_id = a.clone();
    let all = [("t", 0), ("t", 1), ("t", 2), ("t", 3)];
    let s = h.sync(&a, 1, &[(&a, &all)]);
    h.synced(s);
    // b joins; a rejoins still owning everything (cooperative: no revocation yet).
    let tb = h.join_req(h.req("", coop, &[]));
    let ta = h.join_req(h.req(&a, coop, &all));
    let (ja, jb) = (h.joined(ta), h.joined(tb));
    let b = jb.member_id.clone();
    assert_eq!(ja.generation, 2);
    assert_eq!(
        h.g.locks.held_by(&a).len(),
        4,
        "a kept its partitions through the rejoin"
    );
    // A wrong leader hands t-2 and t-3 to b right away: the lock keeps them with a.
    let sb = h.sync(&b, 2, &[]);
    let sa = h.sync(&a, 2, &[(&a, &all[..2]), (&b, &all[2..])]);
    h.synced(sa);
    h.synced(sb);
    assert_eq!(h.commit(&b, 2, &[("t", 2)]), vec![ILLEGAL_GENERATION]);
    assert_eq!(
        h.commit(&a, 2, &[("t", 2), ("t", 3)]),
        vec![NONE, NONE],
        "a commits while revoking"
    );
    // a revokes t-2 and t-3 and rejoins owning t-0 and t-1; b rejoins.
    let ta = h.join_req(h.req(&a, coop, &all[..2]));
    let tb = h.join_req(h.req(&b, coop, &[]));
    let (ja, _) = (h.joined(ta), h.joined(tb));
    assert_eq!(ja.generation, 3);
    assert_eq!(h.g.locks.held_by(&a), tps(&all[..2]));
    let sb = h.sync(&b, 3, &[]);
    let sa = h.sync(&a, 3, &[(&a, &all[..2]), (&b, &all[2..])]);
    h.synced(sa);
    h.synced(sb);
    assert_eq!(h.commit(&b, 3, &[("t", 2), ("t", 3)]), vec![NONE, NONE]);
    assert_eq!(h.commit(&a, 3, &[("t", 2)]), vec![ILLEGAL_GENERATION]);
    assert_eq!(h.commit(&a, 3, &[("t", 0)]), vec![NONE]);
}

#[test]
fn eager_rejoin_releases_even_claimed_partitions() {
    let mut h = H::new();
    let ids = h.form(1, |_| vec![vec![("t", 0), ("t", 1)]]);
    let a = ids[0].clone();
    let tb = h.join("");
    // An eager member that (wrongly) still lists owned partitions: eager means revoked.
    let ta = h.join_req(h.req(&a, "range", &[("t", 0), ("t", 1)]));
    h.joined(ta);
    let b = h.joined(tb).member_id;
    assert!(h.g.locks.is_empty());
    let sa = h.sync(&a, 2, &[(&a, &[("t", 0)]), (&b, &[("t", 1)])]);
    h.synced(sa);
    assert!(h.g.locks.is_owner(&("t".into(), 1), &b));
}

#[test]
fn protocol_checks_and_selection() {
    let mut h = H::new();
    let mut r = h.req("", "range", &[]);
    r.protocols.push(("roundrobin".into(), Bytes::new()));
    let t1 = h.join_req(r);
    let mut r = h.req("", "roundrobin", &[]);
    r.protocols.push(("range".into(), Bytes::new()));
    let t2 = h.join_req(r);
    let mut r = h.req("", "roundrobin", &[]);
    r.protocols.push(("range".into(), Bytes::new()));
    let t3 = h.join_req(r);
    let mut bad = h.req("", "sticky", &[]);
    let t4 = h.join_req(bad.clone());
    assert_eq!(h.joined(t4).error, INCONSISTENT_GROUP_PROTOCOL);
    bad.protocol_type = "connect".into();
    bad.protocols = vec![("range".into(), Bytes::new())];
    let t5 = h.join_req(bad);
    assert_eq!(h.joined(t5).error, INCONSISTENT_GROUP_PROTOCOL);
    let mut short = h.req("", "range", &[]);
    short.session_timeout_ms = 10;
    let t6 = h.join_req(short);
    assert_eq!(h.joined(t6).error, INVALID_SESSION_TIMEOUT);
    h.advance(DELAY * 3);
    for t in [t1, t2, t3] {
        assert_eq!(
            h.joined(t).protocol_name.as_deref(),
            Some("roundrobin"),
            "two votes to one"
        );
    }
}

#[test]
fn a_second_sync_cycle_is_reset_when_a_rebalance_starts() {
    let mut h = H::new();
    let ids = h.form(2, |_| vec![vec![("t", 0)], vec![("t", 1)]]);
    // Both rejoin (leader forces a rebalance); the follower syncs first and then a third
    // member arrives before the leader's SyncGroup: the follower is told to rejoin.
    let t0 = h.join(&ids[0]);
    let t1 = h.join(&ids[1]);
    let (r0, r1) = (h.joined(t0), h.joined(t1));
    let leader = r0.leader.clone();
    let follower = if r0.member_id == leader {
        r1.member_id
    } else {
        r0.member_id
    };
    let s = h.sync(&follower, 2, &[]);
    assert!(h.pending(s));
    let t3 = h.join("");
    assert_eq!(h.synced(s).error, REBALANCE_IN_PROGRESS);
    assert!(h.pending(t3));
    assert_eq!(h.heartbeat(&follower, 2), REBALANCE_IN_PROGRESS);
}

#[test]
fn members_that_never_sync_are_removed() {
    let mut h = H::new();
    let t = h.join("");
    h.advance(DELAY);
    let r = h.joined(t);
    assert_eq!(h.g.state, GroupState::CompletingRebalance);
    // It heartbeats but never sends SyncGroup.
    for _ in 0..(REBALANCE / 1000 + 1) {
        h.advance(1000);
        h.heartbeat(&r.member_id, 1);
    }
    assert!(h.g.members.is_empty());
    assert_eq!(h.g.state, GroupState::Empty);
}

#[test]
fn partition_count_change_rebalances() {
    let mut h = H::new();
    h.form(1, |_| vec![vec![("t", 0)]]);
    let one = |t: &str| (t == "t").then_some(1);
    let two = |t: &str| (t == "t").then_some(2);
    h.g.set_partition_baseline(&one);
    let mut fx = Effects::default();
    assert!(!h.g.check_partition_counts(&one, h.now, &mut fx));
    assert!(h.g.check_partition_counts(&two, h.now, &mut fx));
    assert_eq!(h.g.state, GroupState::PreparingRebalance);
    assert_eq!(h.g.subscribed_topics(), Some(["t".to_string()].into()));
    assert!(h.g.is_subscribed("t") && !h.g.is_subscribed("u"));
}

#[test]
fn every_parked_request_is_answered_when_its_member_goes() {
    let mut h = H::new();
    let ids = h.form(3, three_way);
    let t1 = h.join(&ids[0]);
    assert!(h.pending(t1));
    // A duplicate JoinGroup of the same member answers the first one.
    let t2 = h.join(&ids[0]);
    assert_eq!(h.joined(t1).error, REBALANCE_IN_PROGRESS);
    assert!(h.pending(t2));
    let mut fx = Effects::default();
    h.g.leave(&ids[0], None, h.now, &mut fx);
    h.apply(fx);
    assert_eq!(h.joined(t2).error, UNKNOWN_MEMBER_ID);
    assert!(h.g.locks.held_by(&ids[0]).is_empty());
}

/// A live replay of a cooperative group: the old owner's commits of the reset partition
/// are refused, the next generation withholds it from every assignment, and once every
/// member synced that generation another rebalance hands it out again.
#[test]
fn live_replay_fences_withholds_then_hands_the_partition_out_again() {
    let mut h = H::new();
    let coop = "cooperative-sticky";
    let ta = h.join_req(h.req("", coop, &[]));
    h.advance(DELAY);
    let a = h.joined(ta).member_id;
    let all = [("t", 0), ("t", 1)];
    let s = h.sync(&a, 1, &[(&a, &all)]);
    h.synced(s);
    assert_eq!(h.commit(&a, 1, &[("t", 0)]), vec![NONE]);

    let mut fx = Effects::default();
    h.g.begin_replay(&tps(&[("t", 0)]), h.now, &mut fx);
    h.apply(fx);
    assert_eq!(h.g.state, GroupState::PreparingRebalance);
    // The old owner's in-flight commit of its pre-reset position is refused; t-1 is not.
    assert_eq!(
        h.commit(&a, 1, &[("t", 0), ("t", 1)]),
        vec![ILLEGAL_GENERATION, NONE]
    );
    assert_eq!(h.heartbeat(&a, 1), REBALANCE_IN_PROGRESS);

    // a rejoins still listing t-0 as owned (cooperative) and the leader (a) gives it back
    // to a: the coordinator withholds it.
    let ta = h.join_req(h.req(&a, coop, &all));
    assert_eq!(h.joined(ta).generation, 2);
    let s = h.sync(&a, 2, &[(&a, &all)]);
    let got = h.synced(s);
    assert_eq!(
        super::consumer_protocol::parse_assignment(&got.assignment).unwrap(),
        tps(&[("t", 1)]),
        "the reset partition is withheld for one generation"
    );
    assert_eq!(h.commit(&a, 2, &[("t", 0)]), vec![ILLEGAL_GENERATION]);
    // Everyone synced: another rebalance starts at once.
    assert_eq!(h.g.state, GroupState::PreparingRebalance);
    let ta = h.join_req(h.req(&a, coop, &[("t", 1)]));
    assert_eq!(h.joined(ta).generation, 3);
    let s = h.sync(&a, 3, &[(&a, &all)]);
    assert_eq!(
        super::consumer_protocol::parse_assignment(&h.synced(s).assignment).unwrap(),
        tps(&all)
    );
    assert_eq!(h.g.state, GroupState::Stable);
    // Owned again since generation 3: commits go through and the fence is gone.
    assert_eq!(h.commit(&a, 3, &[("t", 0), ("t", 1)]), vec![NONE, NONE]);
    assert!(h.g.replay.fence.is_empty() && h.g.replay.withhold.is_empty());
}

/// A generation interrupted before every member synced keeps withholding: a member that
/// never saw the withheld assignment cannot carry on from its old position.
#[test]
fn live_replay_keeps_withholding_until_a_generation_is_fully_synced() {
    let mut h = H::new();
    let ids = h.form(3, three_way);
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let leader = h.g.leader.clone().unwrap();
    let mut fx = Effects::default();
    h.g.begin_replay(&tps(&[("t", 2)]), h.now, &mut fx);
    h.apply(fx);
    let tokens: Vec<_> = ids
        .iter()
        .map(|id| h.join_req(h.req(id, "range", &[])))
        .collect();
    for t in tokens {
        assert_eq!(h.joined(t).generation, 2);
    }
    // Only the leader syncs; then a member leaves before the others synced.
    let s = h.sync(
        &leader,
        2,
        &[(&a, &[("t", 0), ("t", 1)]), (&b, &[("t", 2), ("t", 3)])],
    );
    h.synced(s);
    assert_eq!(h.g.replay.withhold, tps(&[("t", 2)]));
    let mut fx = Effects::default();
    let other = ids.iter().find(|id| **id != leader).unwrap().clone();
    h.g.leave(&other, None, h.now, &mut fx);
    h.apply(fx);
    assert_eq!(
        h.g.replay.withhold,
        tps(&[("t", 2)]),
        "still withheld in the next generation"
    );
}

/// Without readable assignments (no lock mode) the fence is by generation.
#[test]
fn live_replay_without_locks_fences_by_generation() {
    let mut h = H::new();
    let ids = h.form(1, |_| vec![vec![("t", 0)]]);
    h.g.lock_mode = false;
    let mut fx = Effects::default();
    h.g.begin_replay(&tps(&[("t", 0)]), h.now, &mut fx);
    h.apply(fx);
    assert_eq!(h.commit(&ids[0], 1, &[("t", 0)]), vec![ILLEGAL_GENERATION]);
}
