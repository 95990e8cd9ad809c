//! The KIP-848 group state machine on its own: joins, revoke-first reconciliation under
//! the lock, fencing, commits, timers, static members, regex subscriptions.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::scheduler::PartitionLoad;

struct Topics(BTreeMap<String, i32>);

impl TopicMetadata for Topics {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.0.get(topic).copied()
    }
    fn topic_names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

fn topics(v: &[(&str, i32)]) -> Topics {
    Topics(v.iter().map(|(t, n)| (t.to_string(), *n)).collect())
}

fn no_load(_: &ConsumerGroup) -> LoadFigures {
    LoadFigures::default()
}

fn group() -> ConsumerGroup {
    ConsumerGroup::new(
        "g",
        ConsumerSettings {
            default_assignor: "uniform".into(),
            session_timeout_ms: 10_000,
            ..Default::default()
        },
        0,
    )
}

fn join(id: &str, subs: &[&str]) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 5000,
        subscribed_topic_names: Some(subs.iter().map(|s| s.to_string()).collect()),
        owned: Some(BTreeSet::new()),
        ..Default::default()
    }
}

fn beat(id: &str, epoch: i32, owned: Option<&BTreeSet<TopicPartition>>) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: owned.cloned(),
        ..Default::default()
    }
}

fn set(v: &[i32]) -> BTreeSet<TopicPartition> {
    v.iter().map(|p| ("t".to_string(), *p)).collect()
}

#[test]
fn first_member_gets_everything_at_a_new_epoch() {
    let (mut g, t) = (group(), topics(&[("t", 4)]));
    let r = g.heartbeat(join("a", &["t"]), 0, &t, &no_load).unwrap();
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.assignment, Some(set(&[0, 1, 2, 3])));
    assert_eq!(g.state_name(), "Stable");
    assert!(g.epoch_dirty);
    // The same state is not sent again.
    let r = g.heartbeat(beat("a", 1, None), 10, &t, &no_load).unwrap();
    assert_eq!((r.member_epoch, r.assignment), (1, None));
}

/// A second member gets the first member's partitions only after the first reported that
/// it revoked them: never two owners at once.
#[test]
fn partitions_move_only_after_revocation() {
    let (mut g, t) = (group(), topics(&[("t", 4)]));
    g.heartbeat(join("a", &["t"]), 0, &t, &no_load).unwrap();
    let r = g.heartbeat(join("b", &["t"]), 1, &t, &no_load).unwrap();
    assert_eq!(r.member_epoch, 2);
    // b is at the new epoch but everything it targets is still held by a.
    assert_eq!(r.assignment, Some(BTreeSet::new()));
    assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
    assert_eq!(g.state_name(), "Reconciling");
    // a is told to revoke two, at its old epoch.
    let r = g.heartbeat(beat("a", 1, None), 2, &t, &no_load).unwrap();
    assert_eq!(r.member_epoch, 1);
    let kept = r.assignment.clone().unwrap();
    assert_eq!(kept.len(), 2);
    let revoked: BTreeSet<_> = set(&[0, 1, 2, 3]).difference(&kept).cloned().collect();
    // A commit by a for a partition it is revoking is still fine; b cannot commit it.
    let tp = revoked.iter().next().unwrap().clone();
    assert_eq!(
        g.check_commit("a", 1, std::slice::from_ref(&tp)),
        vec![NONE]
    );
    assert_eq!(
        g.check_commit("b", 2, std::slice::from_ref(&tp)),
        vec![STALE_MEMBER_EPOCH]
    );
    // Still owned by a: nothing for b.
    assert_eq!(
        g.heartbeat(beat("b", 2, None), 3, &t, &no_load)
            .unwrap()
            .assignment,
        None
    );
    // a reports it let go: it moves to epoch 2; then b gets them.
    let r = g
        .heartbeat(beat("a", 1, Some(&kept)), 4, &t, &no_load)
        .unwrap();
    assert_eq!((r.member_epoch, r.assignment), (2, Some(kept.clone())));
    let r = g.heartbeat(beat("b", 2, None), 5, &t, &no_load).unwrap();
    assert_eq!(r.assignment, Some(revoked.clone()));
    assert_eq!(g.state_name(), "Stable");
    assert_eq!(
        g.check_commit("b", 2, std::slice::from_ref(&tp)),
        vec![NONE]
    );
    assert_eq!(
        g.check_commit("a", 2, std::slice::from_ref(&tp)),
        vec![STALE_MEMBER_EPOCH]
    );
}

#[test]
fn wrong_epochs_are_fenced_and_commits_checked() {
    let (mut g, t) = (group(), topics(&[("t", 2)]));
    g.heartbeat(join("a", &["t"]), 0, &t, &no_load).unwrap();
    let e = g
        .heartbeat(beat("a", 7, None), 1, &t, &no_load)
        .unwrap_err();
    assert_eq!(e.0, FENCED_MEMBER_EPOCH);
    let e = g
        .heartbeat(beat("zz", 1, None), 1, &t, &no_load)
        .unwrap_err();
    assert_eq!(e.0, UNKNOWN_MEMBER_ID);
    assert_eq!(
        g.check_commit("a", 2, &set(&[0]).into_iter().collect::<Vec<_>>()),
        vec![FENCED_MEMBER_EPOCH]
    );
    assert_eq!(
        g.check_commit("a", 0, &[("t".into(), 0)]),
        vec![STALE_MEMBER_EPOCH]
    );
    assert_eq!(
        g.check_commit("x", 1, &[("t".into(), 0)]),
        vec![UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        g.check_commit("", -1, &[("t".into(), 0)]),
        vec![UNKNOWN_MEMBER_ID]
    );
    assert_eq!(g.check_fetch("a", 1), NONE);
    assert_eq!(g.check_fetch("a", 0), STALE_MEMBER_EPOCH);
    // Previous epoch with nothing new owned: its last answer was lost, accepted.
    g.heartbeat(join("b", &["t"]), 2, &t, &no_load).unwrap();
    let owned = g.members["a"].held();
    let r = g.heartbeat(beat("a", 1, Some(&owned)), 3, &t, &no_load);
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn leaving_and_timeouts_release_locks_and_bump_the_epoch() {
    let (mut g, t) = (group(), topics(&[("t", 2)]));
    g.heartbeat(join("a", &["t"]), 0, &t, &no_load).unwrap();
    g.heartbeat(join("b", &["t"]), 0, &t, &no_load).unwrap();
    let e0 = g.group_epoch;
    let r = g.heartbeat(beat("a", -1, None), 1, &t, &no_load).unwrap();
    assert_eq!(r.member_epoch, -1);
    assert!(g.group_epoch > e0);
    assert!(g.locks.held_by("a").is_empty());
    // b gets everything once it beats; then it goes silent past the session timeout.
    let r = g
        .heartbeat(
            beat("b", g.members["b"].epoch, Some(&BTreeSet::new())),
            2,
            &t,
            &no_load,
        )
        .unwrap();
    assert_eq!(r.assignment, Some(set(&[0, 1])));
    assert!(!g.tick(5_000));
    assert!(g.tick(20_000));
    assert!(g.members.is_empty() && g.locks.held_by("b").is_empty());
    assert_eq!(g.state_name(), "Empty");
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_fenced() {
    let (mut g, t) = (group(), topics(&[("t", 2)]));
    g.heartbeat(join("a", &["t"]), 0, &t, &no_load).unwrap();
    g.heartbeat(join("b", &["t"]), 0, &t, &no_load).unwrap();
    g.heartbeat(beat("a", 1, None), 100, &t, &no_load).unwrap();
    assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
    g.heartbeat(beat("a", 1, None), 4000, &t, &no_load).unwrap();
    assert!(g.tick(5200), "rebalance timeout is 5000 ms");
    assert!(!g.members.contains_key("a"));
    let b = g.members["b"].epoch;
    let r = g.heartbeat(beat("b", b, None), 5300, &t, &no_load).unwrap();
    assert_eq!(r.assignment, Some(set(&[0, 1])));
}

#[test]
fn static_member_away_keeps_its_place_for_the_same_instance() {
    let (mut g, t) = (group(), topics(&[("t", 3)]));
    let mut hb = join("a", &["t"]);
    hb.instance_id = Some("i1".into());
    g.heartbeat(hb, 0, &t, &no_load).unwrap();
    let mut away = beat("a", -2, None);
    away.instance_id = Some("i1".into());
    assert_eq!(g.heartbeat(away, 1, &t, &no_load).unwrap().member_epoch, -2);
    let epoch = g.group_epoch;
    // Another member id for the same instance takes over, same partitions, no new epoch.
    let mut back = join("a2", &["t"]);
    back.instance_id = Some("i1".into());
    let r = g.heartbeat(back, 2, &t, &no_load).unwrap();
    assert_eq!(r.assignment, Some(set(&[0, 1, 2])));
    assert_eq!(g.group_epoch, epoch);
    assert_eq!(g.locks.held_by("a2"), set(&[0, 1, 2]));
    // While a2 is there, a third id for the instance is refused.
    let mut other = join("a3", &["t"]);
    other.instance_id = Some("i1".into());
    assert_eq!(
        g.heartbeat(other, 3, &t, &no_load).unwrap_err().0,
        UNRELEASED_INSTANCE_ID
    );
}

#[test]
fn regex_and_new_partitions_are_picked_up() {
    let (mut g, mut t) = (group(), topics(&[("orders-eu", 1), ("users", 1)]));
    let mut hb = join("a", &[]);
    hb.subscribed_topic_names = None;
    hb.subscribed_topic_regex = Some("orders-.*".into());
    let r = g.heartbeat(hb, 0, &t, &no_load).unwrap();
    assert_eq!(r.assignment, Some([("orders-eu".to_string(), 0)].into()));
    t.0.insert("orders-us".into(), 2);
    let r = g
        .heartbeat(beat("a", r.member_epoch, None), 1, &t, &no_load)
        .unwrap();
    assert_eq!(r.assignment.unwrap().len(), 3);
    t.0.insert("orders-us".into(), 3);
    let r = g
        .heartbeat(beat("a", r.member_epoch, None), 2, &t, &no_load)
        .unwrap();
    assert_eq!(r.assignment.unwrap().len(), 4);
    let mut bad = join("b", &[]);
    bad.subscribed_topic_regex = Some("(".into());
    assert_eq!(
        g.heartbeat(bad, 3, &t, &no_load).unwrap_err().0,
        INVALID_REGULAR_EXPRESSION
    );
    let mut bad = join("b", &["users"]);
    bad.server_assignor = Some("sticky-magic".into());
    assert_eq!(
        g.heartbeat(bad, 3, &t, &no_load).unwrap_err().0,
        UNSUPPORTED_ASSIGNOR
    );
}

/// The scheduler takes partitions from a member that stopped committing while they have
/// backlog, without waiting for its session to time out.
#[test]
fn load_review_moves_partitions_away_from_a_stalled_member() {
    let mut g = ConsumerGroup::new(
        "g",
        ConsumerSettings {
            scheduler_stall_ms: 1000,
            scheduler_interval_ms: 500,
            ..Default::default()
        },
        0,
    );
    let t = topics(&[("t", 4)]);
    g.heartbeat(join("a", &["t"]), 0, &t, &no_load).unwrap();
    g.heartbeat(join("b", &["t"]), 0, &t, &no_load).unwrap();
    // Reconcile both fully.
    for now in 1..6 {
        for id in ["a", "b"] {
            let m = &g.members[id];
            let (e, held) = (m.epoch, m.assigned.clone());
            g.heartbeat(beat(id, e, Some(&held)), now, &t, &no_load)
                .unwrap();
        }
    }
    assert_eq!(g.state_name(), "Stable");
    let a_parts = g.members["a"].assigned.clone();
    // b commits, a does not; every partition has backlog.
    let backlog: BTreeMap<TopicPartition, PartitionLoad> = set(&[0, 1, 2, 3])
        .into_iter()
        .map(|tp| {
            (
                tp,
                PartitionLoad {
                    inflow_rps: 10.0,
                    backlog: 100.0,
                },
            )
        })
        .collect();
    for now in [1000, 2000, 3000] {
        let commits: Vec<_> = g.members["b"]
            .assigned
            .iter()
            .map(|tp| (tp.clone(), now as i64, Some(now as i64 - 50)))
            .collect();
        g.record_commits(&commits, now);
        g.tick(now);
    }
    assert!(g.load_review_due(3000));
    let figures = g.figures(backlog, 3000);
    assert!(
        figures.stalled.contains("a") && !figures.stalled.contains("b"),
        "{figures:?}"
    );
    assert!(g.review_load(3000, &t, figures));
    assert!(g.target["a"].is_empty());
    assert_eq!(g.target["b"].len(), 4);
    // a must revoke before b gets them.
    let e = g.members["a"].epoch;
    let r = g.heartbeat(beat("a", e, None), 3001, &t, &no_load).unwrap();
    assert_eq!(r.assignment, Some(BTreeSet::new()));
    assert_eq!(g.members["a"].revoking, a_parts);
}

/// A member whose backlog grows between two load reviews is behind: its measured rate is
/// taken as its capacity and it sheds partitions, though its rate alone (keeping up with a
/// low inflow) would not show it.
#[test]
fn a_member_falling_behind_sheds_partitions() {
    let mut g = ConsumerGroup::new(
        "g",
        ConsumerSettings {
            scheduler_interval_ms: 500,
            scheduler_cooldown_ms: 0,
            ..Default::default()
        },
        0,
    );
    let t = topics(&[("t", 6)]);
    g.heartbeat(join("a", &["t"]), 0, &t, &no_load).unwrap();
    g.heartbeat(join("b", &["t"]), 0, &t, &no_load).unwrap();
    for now in 1..6 {
        for id in ["a", "b"] {
            let m = &g.members[id];
            let (e, held) = (m.epoch, m.assigned.clone());
            g.heartbeat(beat(id, e, Some(&held)), now, &t, &no_load)
                .unwrap();
        }
    }
    let a_parts = g.members["a"].assigned.clone();
    assert_eq!(a_parts.len(), 3);
    // a commits 10 records/s per partition, b 20, against an inflow of 20 each: a's
    // partitions pile up, b's do not.
    let load = |a_backlog: f64| -> BTreeMap<TopicPartition, PartitionLoad> {
        (0..6)
            .map(|p| {
                let tp = ("t".to_string(), p);
                let backlog = if a_parts.contains(&tp) {
                    a_backlog
                } else {
                    2.0
                };
                (
                    tp,
                    PartitionLoad {
                        inflow_rps: 20.0,
                        backlog,
                    },
                )
            })
            .collect()
    };
    for (i, now) in [1000u64, 2000, 3000].into_iter().enumerate() {
        let i = i as i64;
        let commits: Vec<_> = g
            .locks
            .held_by("a")
            .into_iter()
            .map(|tp| (tp, 10 * (i + 1), Some(10 * i)))
            .chain(
                g.locks
                    .held_by("b")
                    .into_iter()
                    .map(|tp| (tp, 20 * (i + 1), Some(20 * i))),
            )
            .collect();
        g.record_commits(&commits, now);
        g.tick(now);
    }
    let f = g.figures(load(40.0), 3000);
    assert!(!f.saturated.contains("a"), "one sample shows no trend");
    assert!(
        !g.review_load(3000, &t, f),
        "even rates, no trend: nothing moves"
    );
    let f = g.figures(load(90.0), 3600);
    assert!(
        g.review_load(3600, &t, f),
        "a fell behind: the scheduler moves"
    );
    assert!(g.target["a"].len() < 3, "{:?}", g.target);
}

/// A live replay of a KIP-848 group: the owner is told to revoke the reset partition, its
/// commits of it are refused from then on, and it gets the partition back at a new epoch
/// once revoked (and then commits normally).
#[test]
fn live_replay_revokes_and_reassigns_at_a_new_epoch() {
    use crate::groups::group::{Effects, Group};
    let t = topics(&[("t", 2)]);
    let mut g = Group::new("g", crate::groups::GroupConfig::default());
    g.consumer = Some(group());
    let c = g.consumer.as_mut().unwrap();
    let r = c.heartbeat(join("a", &["t"]), 0, &t, &no_load).unwrap();
    assert_eq!((r.member_epoch, r.assignment), (1, Some(set(&[0, 1]))));
    let parts: Vec<TopicPartition> = set(&[0, 1]).into_iter().collect();
    assert_eq!(g.check_commit("a", None, 1, &parts, 1), vec![NONE, NONE]);

    g.begin_replay(&set(&[0]), 2, &mut Effects::default());
    // An auto-commit of the old position, in flight during the reset: refused.
    assert_eq!(
        g.check_commit("a", None, 1, &parts, 3),
        vec![STALE_MEMBER_EPOCH, NONE]
    );
    let c = g.consumer.as_mut().unwrap();
    // a is told to give up t-0.
    let r = c.heartbeat(beat("a", 1, None), 4, &t, &no_load).unwrap();
    assert_eq!(r.assignment, Some(set(&[1])));
    // It reports having revoked it and gets it back at a new epoch.
    let r = c
        .heartbeat(beat("a", 1, Some(&set(&[1]))), 5, &t, &no_load)
        .unwrap();
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(set(&[0, 1])));
    assert_eq!(g.check_commit("a", None, 2, &parts, 6), vec![NONE, NONE]);
    assert!(g.replay.fence.is_empty());
}
