//! The audit end to end without I/O: deliveries recorded on a leader, commits checked
//! against them, and the chain compared with the one an auditor computes from the log.

use super::chain::{self, Link, SEED};
use super::deliveries::{Check, Deliveries, LeaderView, Verdict};
use super::reconcile::{check_for, decide, Decision, Kind, Mode, PartitionAudit, Who};

/// A log of a hundred batches of ten records: [0..9], [10..19], ...
fn log() -> Vec<Link> {
    (0..100)
        .map(|i| Link {
            base: i * 10,
            last: i * 10 + 9,
            crc: 1000 + i as u32,
        })
        .collect()
}

fn tp() -> (String, i32) {
    ("t".to_string(), 0)
}

const AT: LeaderView = LeaderView {
    known_from: 0,
    log_start: 0,
};

/// What a Fetch from `offset` returns with room for `n` batches.
fn fetch(d: &Deliveries, client: &str, offset: i64, n: usize) {
    let links: Vec<Link> = log()
        .into_iter()
        .filter(|l| l.last >= offset)
        .take(n)
        .collect();
    d.record(&tp(), (client, "/h"), offset, &links, 0);
}

fn read_log(a: i64, b: i64) -> Result<Vec<Link>, String> {
    Ok(log()
        .into_iter()
        .filter(|l| l.last >= a && l.base < b)
        .collect())
}

fn who(client: &str) -> Who {
    Who {
        client_id: client.into(),
        host: "/h".into(),
        member_id: format!("{client}-member"),
        admin: false,
    }
}

/// Commits `to` for `client`, as the coordinator does.
fn commit(
    d: &Deliveries,
    at: LeaderView,
    audit: &mut PartitionAudit,
    committed: &mut Option<i64>,
    client: &str,
    to: i64,
    mode: Mode,
) -> Decision {
    let w = who(client);
    let verdict = check_for(&tp(), audit, *committed, to, &w).map(|c| d.check(&c, at, &read_log));
    let decision = decide(audit, *committed, to, verdict, &w, mode, 7);
    match &decision {
        Decision::Accept => *committed = Some(to),
        Decision::Record(a) => {
            *audit = a.clone();
            *committed = Some(to);
        }
        Decision::Refuse { audit: a, .. } => *audit = a.clone(),
    }
    decision
}

/// The chain an auditor computes over the log for `audit`.
fn auditor(audit: &PartitionAudit) -> u32 {
    chain::over_log(
        SEED,
        log(),
        audit.chain_from.unwrap(),
        audit.chained_to.unwrap(),
        &audit.skipped,
    )
}

#[test]
fn a_consumer_that_reads_everything_is_clean_and_its_chain_matches_the_log() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), None);
    fetch(&d, "c", 0, 3);
    commit(&d, AT, &mut audit, &mut committed, "c", 25, Mode::Record);
    fetch(&d, "c", 30, 2);
    commit(&d, AT, &mut audit, &mut committed, "c", 50, Mode::Record);
    fetch(&d, "c", 50, 10);
    commit(&d, AT, &mut audit, &mut committed, "c", 100, Mode::Record);
    assert_eq!(audit.skipped_records, 0);
    assert!(audit.events.is_empty(), "{:?}", audit.events);
    assert_eq!(audit.chain_from, Some(0));
    assert_eq!(audit.chained_to, Some(100));
    assert_eq!(audit.chain, auditor(&audit));
    assert_eq!(audit.chain, chain::over_log(SEED, log(), 0, 100, &[]));
}

#[test]
fn seeking_forward_and_committing_records_exactly_the_skipped_range() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), Some(0));
    fetch(&d, "c", 0, 2); // [0, 20)
    commit(&d, AT, &mut audit, &mut committed, "c", 20, Mode::Record);
    fetch(&d, "c", 45, 2); // seeked to 45: batches [40..49], [50..59]
    let decision = commit(&d, AT, &mut audit, &mut committed, "c", 60, Mode::Record);
    assert!(matches!(decision, Decision::Record(_)));
    assert_eq!(audit.skipped, vec![(20, 45)]);
    assert_eq!(audit.skipped_records, 25);
    let e = &audit.events[0];
    assert_eq!((e.kind, e.from, e.to), (Kind::Skipped, 20, 45));
    assert_eq!(
        (e.client_id.as_str(), e.member_id.as_str(), e.at_ms),
        ("c", "c-member", 7)
    );
    assert_eq!(committed, Some(60));
    // The chain leaves out [20..29] and [30..39], keeps [40..49] (partly delivered).
    assert_eq!(audit.chain, auditor(&audit));
    assert_ne!(audit.chain, chain::over_log(SEED, log(), 0, 60, &[]));
}

#[test]
fn strict_refuses_a_skip_and_keeps_the_offset() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), Some(0));
    fetch(&d, "c", 0, 2);
    fetch(&d, "c", 45, 1);
    let decision = commit(&d, AT, &mut audit, &mut committed, "c", 50, Mode::Strict);
    assert!(
        matches!(decision, Decision::Refuse { code, .. } if code == phxq_protocol::errors::POLICY_VIOLATION)
    );
    assert_eq!(committed, Some(0));
    assert_eq!(audit.refused_commits, 1);
    assert_eq!(audit.events[0].kind, Kind::Refused);
    assert_eq!((audit.events[0].from, audit.events[0].to), (20, 45));
    // Reading the missing records makes the same commit pass.
    fetch(&d, "c", 20, 3);
    let decision = commit(&d, AT, &mut audit, &mut committed, "c", 50, Mode::Strict);
    assert!(matches!(decision, Decision::Record(_)));
    assert_eq!(committed, Some(50));
    assert_eq!(audit.skipped_records, 0);
    assert_eq!(audit.chain, chain::over_log(SEED, log(), 0, 50, &[]));
}

#[test]
fn an_admin_reset_forward_is_a_skip_even_when_strict_and_backward_is_a_replay() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), Some(0));
    fetch(&d, "c", 0, 1);
    commit(&d, AT, &mut audit, &mut committed, "c", 10, Mode::Strict);
    let admin = Who {
        client_id: "phxq-admin".into(),
        host: "/h".into(),
        member_id: String::new(),
        admin: true,
    };
    let v = check_for(&tp(), &audit, committed, 70, &admin).map(|c| d.check(&c, AT, &read_log));
    let Decision::Record(a) = decide(&audit, committed, 70, v, &admin, Mode::Strict, 9) else {
        panic!("an admin reset is accepted");
    };
    assert_eq!(a.skipped, vec![(10, 70)]);
    assert_eq!(a.events[0].client_id, "phxq-admin");
    let Decision::Record(b) = decide(&a, Some(70), 30, None, &admin, Mode::Strict, 10) else {
        panic!("a replay is accepted");
    };
    assert_eq!(b.events.last().unwrap().kind, Kind::Replayed);
    assert_eq!(b.chain, a.chain, "a replay does not move the chain");
}

#[test]
fn a_new_leader_calls_older_offsets_unverified_not_skipped() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), Some(0));
    fetch(&d, "c", 0, 2);
    commit(&d, AT, &mut audit, &mut committed, "c", 20, Mode::Strict);
    fetch(&d, "c", 20, 2); // [20, 40) delivered by the old leader, not committed
                           // Another broker takes over at high watermark 60; the consumer goes on from 40.
    let new = LeaderView {
        known_from: 60,
        log_start: 0,
    };
    let fresh = Deliveries::default();
    fetch(&fresh, "c", 40, 3);
    let decision = commit(
        &fresh,
        new,
        &mut audit,
        &mut committed,
        "c",
        70,
        Mode::Strict,
    );
    assert!(matches!(decision, Decision::Record(_)), "{decision:?}");
    assert_eq!(audit.skipped_records, 0);
    assert_eq!(audit.unverified_records, 20);
    assert_eq!(audit.events[0].kind, Kind::Unverified);
    assert_eq!(audit.chain, chain::over_log(SEED, log(), 0, 70, &[]));
    // What a broker recorded stays valid when it leads again in a later term; only what
    // it has no record of below the new term's first offset is unverified.
    fetch(&fresh, "c", 70, 1);
    let newer = LeaderView {
        known_from: 100,
        log_start: 0,
    };
    commit(
        &fresh,
        newer,
        &mut audit,
        &mut committed,
        "c",
        80,
        Mode::Strict,
    );
    assert_eq!(audit.unverified_records, 20);
    assert_eq!(audit.chain, chain::over_log(SEED, log(), 0, 80, &[]));
    commit(
        &fresh,
        newer,
        &mut audit,
        &mut committed,
        "c",
        90,
        Mode::Record,
    );
    assert_eq!(audit.unverified_records, 30);
    assert_eq!(audit.chain, chain::over_log(SEED, log(), 0, 90, &[]));
}

#[test]
fn the_first_commit_starts_at_the_first_delivery_and_rewinds_are_recorded() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), None);
    fetch(&d, "c", 60, 2); // auto.offset.reset=latest, say
    commit(&d, AT, &mut audit, &mut committed, "c", 80, Mode::Strict);
    assert_eq!(audit.skipped_records, 0);
    assert_eq!(audit.chain_from, Some(60));
    assert_eq!(audit.chain, auditor(&audit));
    commit(&d, AT, &mut audit, &mut committed, "c", 65, Mode::Strict);
    assert_eq!(audit.events.last().unwrap().kind, Kind::Rewound);
    assert_eq!(committed, Some(65));
    // Delivered again from 65 after the rewind, then on: clean, chained once.
    fetch(&d, "c", 65, 3);
    commit(&d, AT, &mut audit, &mut committed, "c", 90, Mode::Strict);
    assert_eq!(audit.skipped_records, 0);
    assert_eq!(audit.chain, auditor(&audit));
}

#[test]
fn another_clients_deliveries_do_not_count() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), Some(0));
    fetch(&d, "a", 0, 3);
    commit(&d, AT, &mut audit, &mut committed, "a", 10, Mode::Strict);
    let decision = commit(&d, AT, &mut audit, &mut committed, "b", 30, Mode::Strict);
    assert!(matches!(decision, Decision::Refuse { .. }));
}

#[test]
fn an_unreachable_leader_is_unchecked_in_record_mode_and_retried_in_strict() {
    let audit = PartitionAudit::default();
    let w = who("c");
    let Decision::Record(a) = decide(
        &audit,
        Some(0),
        10,
        Some(Err("down".into())),
        &w,
        Mode::Record,
        1,
    ) else {
        panic!()
    };
    assert_eq!(
        (a.unchecked_records, a.events[0].kind),
        (10, Kind::Unchecked)
    );
    assert!(matches!(
        decide(&audit, Some(0), 10, Some(Err("down".into())), &w, Mode::Strict, 1),
        Decision::Refuse { code, .. } if code == phxq_protocol::errors::REQUEST_TIMED_OUT
    ));
}

#[test]
fn checks_round_trip_as_peer_requests() {
    let c = Check {
        tp: tp(),
        client_id: "c".into(),
        host: "/h".into(),
        from: Some(3),
        to: 9,
        chain: 5,
        chained_to: None,
    };
    let back: Check = serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    let v: Result<Verdict, String> = Ok(Verdict::default());
    let s = serde_json::to_vec(&v).unwrap();
    assert_eq!(
        serde_json::from_slice::<Result<Verdict, String>>(&s).unwrap(),
        v
    );
}

#[test]
fn records_deleted_before_the_group_read_them_are_expired_not_skipped() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), Some(0));
    fetch(&d, "c", 0, 2);
    commit(&d, AT, &mut audit, &mut committed, "c", 20, Mode::Strict);
    // Retention moved the log start to 50; the consumer resets there.
    let after = LeaderView {
        known_from: 0,
        log_start: 50,
    };
    fetch(&d, "c", 50, 2);
    let decision = commit(&d, after, &mut audit, &mut committed, "c", 70, Mode::Strict);
    assert!(matches!(decision, Decision::Record(_)), "{decision:?}");
    assert_eq!((audit.skipped_records, audit.expired_records), (0, 30));
    assert_eq!(audit.events[0].kind, Kind::Expired);
    assert_eq!((audit.events[0].from, audit.events[0].to), (20, 50));
    fetch(&d, "c", 70, 3);
    commit(
        &d,
        after,
        &mut audit,
        &mut committed,
        "c",
        100,
        Mode::Strict,
    );
    // The chain's start is gone from the log: an auditor starts at a checkpoint.
    let (from, seed) = audit.verifiable_from(50).expect("a checkpoint in the log");
    assert!(from >= 50);
    assert_eq!(
        chain::over_log(seed, log(), from, 100, &audit.skipped),
        audit.chain
    );
}

#[test]
fn checkpoints_stay_few_and_each_one_verifies_the_rest_of_the_chain() {
    let d = Deliveries::default();
    let (mut audit, mut committed) = (PartitionAudit::default(), None);
    for i in 0..100 {
        fetch(&d, "c", i * 10, 1);
        commit(
            &d,
            AT,
            &mut audit,
            &mut committed,
            "c",
            i * 10 + 10,
            Mode::Record,
        );
    }
    assert_eq!(audit.chained_to, Some(1000));
    assert!(
        (2..=super::reconcile::MAX_CHECKPOINTS).contains(&audit.checkpoints.len()),
        "{}",
        audit.checkpoints.len()
    );
    for &(at, value) in &audit.checkpoints {
        assert_eq!(
            chain::over_log(value, log(), at, 1000, &[]),
            audit.chain,
            "from {at}"
        );
        assert_eq!(audit.verifiable_from(at), Some((at, value)));
    }
    assert_eq!(audit.verifiable_from(0), Some((0, SEED)));
    assert_eq!(audit.verifiable_from(1001), None);
}
