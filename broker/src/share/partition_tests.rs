//! Tests of `partition.rs`: each rule of its doc comment, and random operations against an
//! independent model of who holds what.

use std::collections::{BTreeMap, BTreeSet};

use super::config::AutoOffsetReset;
use super::partition::*;

fn lim(cap: u32, limit: u16, lock_ms: u32) -> Limits {
    Limits {
        max_record_locks: cap,
        delivery_count_limit: limit,
        lock_duration_ms: lock_ms,
        renew_enabled: true,
    }
}

fn b(base: i64, last: i64) -> FetchedBatch {
    FetchedBatch {
        base_offset: base,
        last_offset: last,
    }
}

fn ack(first: i64, last: i64, t: AckType) -> AckBatch {
    AckBatch {
        first_offset: first,
        last_offset: last,
        types: vec![t],
    }
}

/// Acquires from the partition's next fetch offset; returns (first, last, delivery count).
fn acq(
    p: &mut SharePartition,
    member: &str,
    batches: &[FetchedBatch],
    max: u32,
    now: i64,
) -> Vec<(i64, i64, u16)> {
    let fetch = p.next_fetch_offset();
    let r = p
        .acquire(
            member,
            fetch,
            batches,
            max,
            AcquireMode::BatchOptimized,
            now,
        )
        .unwrap();
    p.check_invariants();
    r.iter()
        .map(|r| (r.first_offset, r.last_offset, r.delivery_count))
        .collect()
}

fn state(p: &SharePartition, o: i64) -> Option<RecordState> {
    p.record(o).map(|r| r.state.clone())
}

fn is_acquired_by(p: &SharePartition, o: i64, m: &str) -> bool {
    matches!(state(p, o), Some(RecordState::Acquired { member, .. }) if &*member == m)
}

#[test]
fn acquire_fresh_records_whole_batches() {
    let mut p = SharePartition::new(0, Limits::default());
    assert_eq!(p.next_fetch_offset(), 0);
    let got = acq(&mut p, "m1", &[b(0, 4), b(5, 9)], 500, 0);
    assert_eq!(got, vec![(0, 9, 1)]);
    assert_eq!(p.end_offset(), 10);
    assert_eq!(p.start_offset(), 0);
    assert_eq!(p.next_fetch_offset(), 10);
    assert!(is_acquired_by(&p, 7, "m1"));
    assert_eq!(p.stats().acquired, 10);
    assert_eq!(p.next_lock_deadline(), Some(30_000));
}

#[test]
fn accept_advances_start_past_contiguous_prefix_only() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 9)], 500, 0);
    p.acknowledge(
        "m",
        &[ack(0, 2, AckType::Accept), ack(5, 6, AckType::Accept)],
        1,
    )
    .unwrap();
    p.check_invariants();
    assert_eq!(p.start_offset(), 3, "3 and 4 are still acquired");
    assert_eq!(state(&p, 5), Some(RecordState::Acknowledged));
    p.acknowledge("m", &[ack(3, 4, AckType::Reject)], 2)
        .unwrap();
    assert_eq!(p.start_offset(), 7);
    p.acknowledge("m", &[ack(7, 9, AckType::Accept)], 3)
        .unwrap();
    assert_eq!(p.start_offset(), 10);
    assert_eq!(p.records().count(), 0, "finished entries are dropped");
    assert_eq!(p.next_lock_deadline(), None);
}

#[test]
fn per_offset_acknowledge_types() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 3)], 500, 0);
    p.acknowledge(
        "m",
        &[AckBatch {
            first_offset: 0,
            last_offset: 3,
            types: vec![
                AckType::Accept,
                AckType::Release,
                AckType::Reject,
                AckType::Gap,
            ],
        }],
        1,
    )
    .unwrap();
    assert_eq!(p.start_offset(), 1);
    assert_eq!(state(&p, 1), Some(RecordState::Available));
    assert_eq!(state(&p, 2), Some(RecordState::Archived));
    assert_eq!(state(&p, 3), Some(RecordState::Archived));
    let (archived, dropped) = p.take_archived();
    assert_eq!(
        archived,
        vec![ArchivedRecord {
            offset: 2,
            delivery_count: 1,
            cause: ArchiveCause::Rejected
        }],
        "gaps are not dead letters"
    );
    assert_eq!(dropped, 0);
    assert!(p.take_archived().0.is_empty());
}

#[test]
fn release_redelivers_with_delivery_count() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m1", &[b(0, 4)], 500, 0);
    p.acknowledge("m1", &[ack(1, 2, AckType::Release)], 1)
        .unwrap();
    assert_eq!(p.next_fetch_offset(), 1);
    assert_eq!(p.stats().redeliverable, 2);
    // The log read from 1 returns the whole batch 0..=4; only 1 and 2 are available.
    let got = acq(&mut p, "m2", &[b(0, 4)], 500, 2);
    assert_eq!(got, vec![(1, 2, 2)]);
    assert!(is_acquired_by(&p, 1, "m2"));
    assert!(is_acquired_by(&p, 0, "m1"));
    assert_eq!(p.next_fetch_offset(), 5);
}

#[test]
fn lock_expiry_makes_records_available_with_count_kept() {
    let mut p = SharePartition::new(0, lim(2000, 5, 1000));
    acq(&mut p, "m1", &[b(0, 1)], 500, 0);
    // Just before the deadline the lock holds.
    assert_eq!(p.expire_locks(999), 0);
    p.acknowledge("m1", &[ack(0, 0, AckType::Accept)], 999)
        .unwrap();
    // At the deadline it is gone: the holder can no longer acknowledge.
    let e = p
        .acknowledge("m1", &[ack(1, 1, AckType::Accept)], 1999)
        .unwrap_err();
    assert_eq!(e.code(), INVALID_RECORD_STATE);
    assert_eq!(state(&p, 1), Some(RecordState::Available));
    assert_eq!(p.record(1).unwrap().delivery_count, 1);
    let got = acq(&mut p, "m2", &[b(0, 1)], 500, 2000);
    assert_eq!(got, vec![(1, 1, 2)]);
    assert_eq!(p.next_lock_deadline(), Some(3000));
}

#[test]
fn expiry_without_acquired_records_is_free() {
    let mut p = SharePartition::new(5, Limits::default());
    assert_eq!(p.expire_locks(i64::MAX), 0);
    assert_eq!(p.start_offset(), 5);
}

#[test]
fn delivery_count_limit_archives() {
    let mut p = SharePartition::new(0, lim(2000, 3, 1000));
    for attempt in 1..=3u16 {
        let got = acq(&mut p, "m", &[b(0, 0)], 500, 0);
        assert_eq!(got, vec![(0, 0, attempt)]);
        p.acknowledge("m", &[ack(0, 0, AckType::Release)], 0)
            .unwrap();
    }
    p.check_invariants();
    assert_eq!(
        p.start_offset(),
        1,
        "archived at the limit, start moved past it"
    );
    assert!(acq(&mut p, "m", &[b(0, 0)], 500, 0).is_empty());
    let (archived, _) = p.take_archived();
    assert_eq!(
        archived,
        vec![ArchivedRecord {
            offset: 0,
            delivery_count: 3,
            cause: ArchiveCause::DeliveryCountLimit
        }]
    );
}

#[test]
fn delivery_count_limit_archives_on_lock_expiry_and_leave() {
    let mut p = SharePartition::new(0, lim(2000, 2, 1000));
    acq(&mut p, "m", &[b(0, 1)], 500, 0);
    p.expire_locks(1000);
    assert_eq!(acq(&mut p, "m", &[b(0, 1)], 500, 1000), vec![(0, 1, 2)]);
    assert_eq!(p.release_member("m"), 2);
    p.check_invariants();
    assert_eq!(p.start_offset(), 2);
    assert_eq!(p.take_archived().0.len(), 2);
}

#[test]
fn last_delivery_attempt_is_delivered_alone() {
    let mut p = SharePartition::new(0, lim(2000, 4, 1000));
    for _ in 0..3 {
        acq(&mut p, "m", &[b(0, 4)], 500, 0);
        p.acknowledge("m", &[ack(0, 4, AckType::Release)], 0)
            .unwrap();
    }
    // Every record is on its last attempt: one at a time.
    assert_eq!(acq(&mut p, "m", &[b(0, 4)], 500, 0), vec![(0, 0, 4)]);
    assert_eq!(acq(&mut p, "m", &[b(0, 4)], 500, 0), vec![(1, 1, 4)]);
    // A fresh batch after it is not taken together with a last attempt either.
    p.acknowledge("m", &[ack(0, 1, AckType::Accept)], 0)
        .unwrap();
    assert_eq!(acq(&mut p, "m", &[b(0, 4)], 500, 0), vec![(2, 2, 4)]);
}

#[test]
fn two_members_never_hold_the_same_record() {
    let mut p = SharePartition::new(0, Limits::default());
    assert_eq!(acq(&mut p, "m1", &[b(0, 9)], 500, 0), vec![(0, 9, 1)]);
    // m2 reads the same batch: nothing is available.
    let got = p
        .acquire("m2", 0, &[b(0, 9)], 500, AcquireMode::BatchOptimized, 1)
        .unwrap();
    assert!(got.is_empty());
    // m2 cannot acknowledge m1's records, in any way.
    for t in [
        AckType::Accept,
        AckType::Release,
        AckType::Reject,
        AckType::Renew,
        AckType::Gap,
    ] {
        let e = p.acknowledge("m2", &[ack(3, 3, t)], 1).unwrap_err();
        assert_eq!(e.code(), INVALID_RECORD_STATE, "{t:?}");
    }
    p.acknowledge("m1", &[ack(3, 3, AckType::Release)], 1)
        .unwrap();
    let got = p
        .acquire("m2", 0, &[b(0, 9)], 500, AcquireMode::BatchOptimized, 1)
        .unwrap();
    assert_eq!(
        got,
        vec![AcquiredRange {
            first_offset: 3,
            last_offset: 3,
            delivery_count: 2
        }]
    );
    assert!(is_acquired_by(&p, 3, "m2"));
    let e = p
        .acknowledge("m1", &[ack(3, 3, AckType::Accept)], 1)
        .unwrap_err();
    assert_eq!(e.code(), INVALID_RECORD_STATE);
}

#[test]
fn acknowledge_is_all_or_nothing() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m1", &[b(0, 4)], 500, 0);
    acq(&mut p, "m2", &[b(5, 9)], 500, 0);
    let before: Vec<_> = p.records().map(|(o, r)| (o, r.clone())).collect();
    let e = p
        .acknowledge(
            "m1",
            &[ack(0, 4, AckType::Accept), ack(5, 5, AckType::Accept)],
            1,
        )
        .unwrap_err();
    assert_eq!(e.code(), INVALID_RECORD_STATE);
    let after: Vec<_> = p.records().map(|(o, r)| (o, r.clone())).collect();
    assert_eq!(before, after);
    assert_eq!(p.start_offset(), 0);
    // Offsets never acquired (past the end) are refused too.
    let e = p
        .acknowledge("m2", &[ack(9, 10, AckType::Accept)], 1)
        .unwrap_err();
    assert_eq!(e.code(), INVALID_RECORD_STATE);
    // An already acknowledged record cannot be acknowledged again.
    p.acknowledge("m2", &[ack(6, 6, AckType::Accept)], 1)
        .unwrap();
    let e = p
        .acknowledge("m2", &[ack(6, 6, AckType::Reject)], 1)
        .unwrap_err();
    assert_eq!(e.code(), INVALID_RECORD_STATE);
}

#[test]
fn malformed_acknowledgements_are_invalid_requests() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 9)], 500, 0);
    let cases: Vec<Vec<AckBatch>> = vec![
        vec![ack(5, 4, AckType::Accept)],
        vec![ack(-1, 4, AckType::Accept)],
        vec![ack(0, 4, AckType::Accept), ack(4, 5, AckType::Accept)],
        vec![ack(5, 6, AckType::Accept), ack(0, 1, AckType::Accept)],
        vec![AckBatch {
            first_offset: 0,
            last_offset: 2,
            types: vec![AckType::Accept, AckType::Accept],
        }],
        vec![AckBatch {
            first_offset: 0,
            last_offset: 0,
            types: vec![],
        }],
        vec![
            ack(0, i64::MAX, AckType::Accept),
            ack(3, 3, AckType::Accept),
        ],
    ];
    for c in cases {
        let e = p.acknowledge("m", &c, 1).unwrap_err();
        assert_eq!(e.code(), INVALID_REQUEST, "{c:?}");
    }
    assert_eq!(AckType::from_wire(5).unwrap_err().code(), INVALID_REQUEST);
    assert_eq!(AckType::from_wire(-1).unwrap_err().code(), INVALID_REQUEST);
    assert_eq!(AckType::from_wire(1), Ok(AckType::Accept));
    // A huge range is refused (it reaches past the end), without walking it.
    let e = p
        .acknowledge("m", &[ack(0, i64::MAX - 1, AckType::Accept)], 1)
        .unwrap_err();
    assert_eq!(e.code(), INVALID_RECORD_STATE);
    let e = p
        .acknowledge("m", &[ack(0, i64::MAX, AckType::Accept)], 1)
        .unwrap_err();
    assert_eq!(e.code(), INVALID_REQUEST);
    assert_eq!(p.stats().acquired, 10);
}

#[test]
fn malformed_fetched_batches_are_invalid_requests() {
    let mut p = SharePartition::new(0, Limits::default());
    for batches in [
        vec![b(4, 3)],
        vec![b(-2, 3)],
        vec![b(0, 3), b(3, 5)],
        vec![b(5, 6), b(0, 1)],
        vec![b(0, i64::MAX)],
    ] {
        let e = p
            .acquire("m", 0, &batches, 10, AcquireMode::BatchOptimized, 0)
            .unwrap_err();
        assert_eq!(e.code(), INVALID_REQUEST);
    }
    assert_eq!(p.end_offset(), 0);
    // Nothing asked, nothing given.
    assert!(p
        .acquire("m", 0, &[b(0, 3)], 0, AcquireMode::BatchOptimized, 0)
        .unwrap()
        .is_empty());
    assert!(p
        .acquire("", 0, &[b(0, 3)], 10, AcquireMode::BatchOptimized, 0)
        .unwrap()
        .is_empty());
    assert_eq!(p.end_offset(), 0);
}

#[test]
fn acknowledgements_below_start_are_ignored() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 4)], 500, 0);
    p.acknowledge("m", &[ack(0, 2, AckType::Accept)], 1)
        .unwrap();
    assert_eq!(p.start_offset(), 3);
    // Re-acknowledging finished offsets together with live ones is fine.
    p.acknowledge("m", &[ack(0, 3, AckType::Accept)], 1)
        .unwrap();
    assert_eq!(p.start_offset(), 4);
}

#[test]
fn in_flight_cap_bounds_the_window() {
    let mut p = SharePartition::new(0, lim(10, 5, 1000));
    assert_eq!(acq(&mut p, "m", &[b(0, 99)], 500, 0), vec![(0, 9, 1)]);
    assert!(!p.can_acquire());
    assert!(acq(&mut p, "m", &[b(10, 99)], 500, 0).is_empty());
    assert_eq!(p.end_offset(), 10);
    // Released records in the window can still be redelivered at the cap.
    p.acknowledge("m", &[ack(9, 9, AckType::Release)], 0)
        .unwrap();
    assert!(p.can_acquire());
    assert_eq!(acq(&mut p, "m2", &[b(0, 99)], 500, 0), vec![(9, 9, 2)]);
    // Finishing the head makes room.
    p.acknowledge("m", &[ack(0, 4, AckType::Accept)], 0)
        .unwrap();
    assert_eq!(acq(&mut p, "m", &[b(10, 99)], 500, 0), vec![(10, 14, 1)]);
    assert_eq!(p.end_offset() - p.start_offset(), 10);
    // An unvalidated huge cap is clamped to Kafka's upper bound.
    let mut q = SharePartition::new(0, lim(u32::MAX, 5, 1000));
    let got = acq(&mut q, "m", &[b(0, i64::MAX - 1)], u32::MAX, 0);
    assert_eq!(got, vec![(0, i64::from(MAX_RECORD_LOCKS_UPPER) - 1, 1)]);
}

#[test]
fn offsets_the_log_skipped_are_archived() {
    let mut p = SharePartition::new(0, Limits::default());
    // A read from 0 returned batches at 3..=4 and 8..=9: 0-2 and 5-7 were compacted away.
    let got = p
        .acquire(
            "m",
            0,
            &[b(3, 4), b(8, 9)],
            500,
            AcquireMode::BatchOptimized,
            0,
        )
        .unwrap();
    p.check_invariants();
    let got: Vec<_> = got
        .iter()
        .map(|r| (r.first_offset, r.last_offset))
        .collect();
    assert_eq!(got, vec![(3, 4), (8, 9)]);
    assert_eq!(p.start_offset(), 3);
    assert_eq!(state(&p, 6), Some(RecordState::Archived));
    p.acknowledge(
        "m",
        &[ack(3, 4, AckType::Accept), ack(8, 9, AckType::Accept)],
        1,
    )
    .unwrap();
    assert_eq!(p.start_offset(), 10);
    assert!(p.take_archived().0.is_empty());
}

#[test]
fn released_record_compacted_away_is_archived_on_next_read() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 9)], 500, 0);
    p.acknowledge("m", &[ack(0, 2, AckType::Release)], 0)
        .unwrap();
    assert_eq!(p.next_fetch_offset(), 0);
    // The read from 0 now starts at 3: 0..=2 are gone from the log.
    let got = p
        .acquire(
            "m",
            0,
            &[b(3, 9), b(10, 12)],
            500,
            AcquireMode::BatchOptimized,
            0,
        )
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].first_offset, got[0].last_offset), (10, 12));
    assert_eq!(p.start_offset(), 3);
}

#[test]
fn max_records_soft_in_batch_mode_exact_in_record_limit_mode() {
    let mut p = SharePartition::new(0, Limits::default());
    let got = p
        .acquire(
            "m",
            0,
            &[b(0, 4), b(5, 9)],
            3,
            AcquireMode::BatchOptimized,
            0,
        )
        .unwrap();
    assert_eq!((got[0].first_offset, got[0].last_offset), (0, 4));
    assert_eq!(got.len(), 1);
    let mut q = SharePartition::new(0, Limits::default());
    let got = q
        .acquire("m", 0, &[b(0, 4), b(5, 9)], 3, AcquireMode::RecordLimit, 0)
        .unwrap();
    assert_eq!((got[0].first_offset, got[0].last_offset), (0, 2));
    assert_eq!(q.end_offset(), 3);
    assert_eq!(q.next_fetch_offset(), 3);
    let got = q
        .acquire("m", 3, &[b(0, 4), b(5, 9)], 3, AcquireMode::RecordLimit, 0)
        .unwrap();
    assert_eq!((got[0].first_offset, got[0].last_offset), (3, 5));
    q.check_invariants();
}

#[test]
fn ranges_split_on_delivery_count() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 3)], 500, 0);
    p.acknowledge("m", &[ack(1, 2, AckType::Release)], 0)
        .unwrap();
    p.acknowledge("m", &[ack(0, 0, AckType::Accept)], 0)
        .unwrap();
    p.acknowledge("m", &[ack(3, 3, AckType::Release)], 0)
        .unwrap();
    acq(&mut p, "m", &[b(0, 3)], 500, 0);
    p.acknowledge("m", &[ack(3, 3, AckType::Release)], 0)
        .unwrap();
    let got = acq(&mut p, "m", &[b(0, 3), b(4, 5)], 500, 0);
    assert_eq!(got, vec![(3, 3, 3), (4, 5, 1)]);
}

#[test]
fn member_leaving_releases_its_records_at_once() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m1", &[b(0, 4)], 500, 0);
    acq(&mut p, "m2", &[b(5, 9)], 500, 0);
    assert_eq!(p.release_member("m1"), 5);
    assert_eq!(p.release_member("nobody"), 0);
    p.check_invariants();
    assert_eq!(p.next_fetch_offset(), 0);
    assert!(is_acquired_by(&p, 5, "m2"));
    assert_eq!(
        acq(&mut p, "m3", &[b(0, 4), b(5, 9)], 500, 1),
        vec![(0, 4, 2)]
    );
}

#[test]
fn log_start_move_finishes_everything_below_it() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 9)], 500, 0);
    p.acknowledge("m", &[ack(0, 1, AckType::Release)], 0)
        .unwrap();
    p.on_log_start_moved(5);
    p.check_invariants();
    assert_eq!(p.start_offset(), 5);
    assert_eq!(p.next_fetch_offset(), 10);
    // The holder's acknowledgements below the new start are ignored.
    p.acknowledge("m", &[ack(2, 6, AckType::Accept)], 1)
        .unwrap();
    assert_eq!(p.start_offset(), 7);
    // Moving back does nothing; moving past the end empties the window.
    p.on_log_start_moved(3);
    assert_eq!(p.start_offset(), 7);
    p.on_log_start_moved(20);
    assert_eq!((p.start_offset(), p.end_offset()), (20, 20));
    assert_eq!(p.records().count(), 0);
    assert!(acq(&mut p, "m", &[b(0, 19)], 500, 2).is_empty());
    assert_eq!(acq(&mut p, "m", &[b(0, 21)], 500, 2), vec![(20, 21, 1)]);
}

#[test]
fn renew_restarts_the_lock() {
    let mut p = SharePartition::new(0, lim(2000, 5, 1000));
    acq(&mut p, "m", &[b(0, 1)], 500, 0);
    p.acknowledge("m", &[ack(0, 0, AckType::Renew)], 900)
        .unwrap();
    assert_eq!(p.expire_locks(1000), 1, "only offset 1 expired");
    assert!(is_acquired_by(&p, 0, "m"));
    p.acknowledge("m", &[ack(0, 0, AckType::Accept)], 1899)
        .unwrap();
    assert_eq!(p.start_offset(), 1);
    assert_eq!(
        p.record(1).unwrap().delivery_count,
        1,
        "renew is not a delivery"
    );

    let mut q = SharePartition::new(
        0,
        Limits {
            renew_enabled: false,
            ..Limits::default()
        },
    );
    acq(&mut q, "m", &[b(0, 0)], 500, 0);
    let e = q
        .acknowledge("m", &[ack(0, 0, AckType::Renew)], 1)
        .unwrap_err();
    assert_eq!(e.code(), INVALID_REQUEST);
}

#[test]
fn reset_starts_over_with_a_new_epoch() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 9)], 500, 0);
    p.reset(100);
    p.check_invariants();
    assert_eq!((p.start_offset(), p.end_offset()), (100, 100));
    assert_eq!(p.state_epoch(), 1);
    assert_eq!(p.records().count(), 0);
    assert_eq!(p.next_lock_deadline(), None);
}

#[test]
fn initial_start_offset_follows_auto_offset_reset() {
    assert_eq!(
        initial_start_offset(AutoOffsetReset::Earliest, 10, 50, None),
        10
    );
    assert_eq!(
        initial_start_offset(AutoOffsetReset::Latest, 10, 50, None),
        50
    );
    let d = AutoOffsetReset::ByDuration(60_000);
    assert_eq!(initial_start_offset(d, 10, 50, Some(30)), 30);
    assert_eq!(initial_start_offset(d, 10, 50, None), 50);
    assert_eq!(initial_start_offset(d, 10, 50, Some(5)), 10);
    assert_eq!(initial_start_offset(d, 10, 50, Some(99)), 50);
    // A log end below the log start (should not happen) stays within the log.
    assert_eq!(
        initial_start_offset(AutoOffsetReset::Latest, 10, 5, None),
        10
    );
}

#[test]
fn stats_count_states() {
    let mut p = SharePartition::new(0, Limits::default());
    acq(&mut p, "m", &[b(0, 9)], 500, 0);
    p.acknowledge(
        "m",
        &[
            ack(1, 1, AckType::Accept),
            ack(2, 3, AckType::Reject),
            ack(4, 4, AckType::Release),
        ],
        0,
    )
    .unwrap();
    let s = p.stats();
    assert_eq!(
        (s.acquired, s.acknowledged, s.archived, s.redeliverable),
        (6, 1, 2, 1)
    );
    assert_eq!((s.start_offset, s.end_offset), (0, 10));
}

/// A small deterministic generator (xorshift64*), so failures reproduce by seed.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Random operations against a model of who holds what. Checked after every step:
/// nothing below the highest SPSO seen is handed out again, no record is held by two
/// members at once (by the model's own clock), every delivery raises the delivery count
/// by exactly one, accepted records never come back, and acknowledgements succeed exactly
/// when the model says the member holds every offset.
pub(super) fn random_run(seed: u64, steps: usize, with_restore: bool) -> RunCounts {
    let mut counts = RunCounts::default();
    const LOCK: i64 = 1000;
    const LIMIT: u16 = 4;
    let limits = lim(40, LIMIT, LOCK as u32);
    let members = ["a", "b", "c"];
    let mut rng = Rng::new(seed);
    let mut p = SharePartition::new(0, limits);
    // The log: batches of 4 offsets, some compacted away entirely.
    let mut log: Vec<(FetchedBatch, bool)> = Vec::new();
    let mut now: i64 = 0;
    let mut max_start = 0i64;
    let mut held: BTreeMap<i64, (usize, i64)> = BTreeMap::new();
    let mut last_dc: BTreeMap<i64, u16> = BTreeMap::new();
    let mut accepted: BTreeSet<i64> = BTreeSet::new();
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match rng.below(12) {
            0 | 1 => {
                for _ in 0..=rng.below(3) {
                    let base = log.len() as i64 * 4;
                    log.push((b(base, base + 3), rng.below(5) != 0));
                }
            }
            2..=4 => {
                let m = rng.below(3) as usize;
                let fetch = p.next_fetch_offset();
                let batches: Vec<FetchedBatch> = log
                    .iter()
                    .filter(|(bt, present)| *present && bt.last_offset >= fetch)
                    .take(1 + rng.below(3) as usize)
                    .map(|(bt, _)| *bt)
                    .collect();
                let mode = if rng.below(2) == 0 {
                    AcquireMode::BatchOptimized
                } else {
                    AcquireMode::RecordLimit
                };
                let max = 1 + rng.below(12) as u32;
                let got = p
                    .acquire(members[m], fetch, &batches, max, mode, now)
                    .unwrap();
                let mut n = 0u32;
                counts.acquires += 1;
                for r in got {
                    for o in r.first_offset..=r.last_offset {
                        n += 1;
                        assert!(o >= max_start, "{ctx}: {o} below a past SPSO {max_start}");
                        assert!(!accepted.contains(&o), "{ctx}: accepted {o} redelivered");
                        if let Some((h, deadline)) = held.get(&o) {
                            assert!(
                                *deadline <= now,
                                "{ctx}: {o} given to {m} while {h} holds it until {deadline}"
                            );
                        }
                        let prev = last_dc.get(&o).copied().unwrap_or(0);
                        assert_eq!(r.delivery_count, prev + 1, "{ctx}: delivery count of {o}");
                        assert!(r.delivery_count <= LIMIT, "{ctx}");
                        if r.delivery_count > 1 {
                            counts.redeliveries += 1;
                        }
                        last_dc.insert(o, r.delivery_count);
                        held.insert(o, (m, now + LOCK));
                    }
                }
                if mode == AcquireMode::RecordLimit {
                    assert!(n <= max, "{ctx}: {n} records for max {max}");
                }
            }
            5..=7 => {
                let m = rng.below(3) as usize;
                // Expiry at `now` is not the acknowledgement's doing (and may move the SPSO).
                p.expire_locks(now);
                let start = p.start_offset();
                let mine: Vec<i64> = held
                    .iter()
                    .filter(|(o, (h, d))| **o >= start && *h == m && *d > now)
                    .map(|(o, _)| *o)
                    .collect();
                let mut offsets: Vec<i64> =
                    mine.iter().copied().filter(|_| rng.below(3) != 0).collect();
                if rng.below(5) == 0 {
                    // Sometimes an offset the member may not hold.
                    offsets.push(start + rng.below(30) as i64);
                    offsets.sort_unstable();
                    offsets.dedup();
                }
                let expect_ok = offsets
                    .iter()
                    .all(|o| *o < start || held.get(o).is_some_and(|(h, d)| *h == m && *d > now));
                let kinds = [
                    AckType::Accept,
                    AckType::Release,
                    AckType::Reject,
                    AckType::Renew,
                    AckType::Gap,
                ];
                let mut batches: Vec<AckBatch> = Vec::new();
                let mut applied: Vec<(i64, AckType)> = Vec::new();
                for o in offsets {
                    let t = kinds[rng.below(5) as usize];
                    applied.push((o, t));
                    match batches.last_mut() {
                        Some(last) if last.last_offset + 1 == o => {
                            last.last_offset = o;
                            last.types.push(t);
                        }
                        _ => batches.push(AckBatch {
                            first_offset: o,
                            last_offset: o,
                            types: vec![t],
                        }),
                    }
                }
                let before: Vec<_> = p.records().map(|(o, r)| (o, r.clone())).collect();
                let res = p.acknowledge(members[m], &batches, now);
                assert_eq!(res.is_ok(), expect_ok, "{ctx}: {res:?} for {batches:?}");
                if let Err(e) = &res {
                    counts.acks_refused += 1;
                    assert_eq!(e.code(), INVALID_RECORD_STATE, "{ctx}");
                    let after: Vec<_> = p.records().map(|(o, r)| (o, r.clone())).collect();
                    assert_eq!(
                        before, after,
                        "{ctx}: refused acknowledgement changed state"
                    );
                } else {
                    counts.acks_ok += 1;
                    for (o, t) in applied {
                        if o < start {
                            continue;
                        }
                        match t {
                            AckType::Accept => {
                                accepted.insert(o);
                                held.remove(&o);
                            }
                            AckType::Renew => {
                                held.insert(o, (m, now + LOCK));
                            }
                            _ => {
                                held.remove(&o);
                            }
                        }
                    }
                }
            }
            8 | 9 => {
                now += rng.below(700) as i64;
                if rng.below(2) == 0 {
                    p.expire_locks(now);
                }
            }
            10 => {
                let m = rng.below(3) as usize;
                p.release_member(members[m]);
                held.retain(|_, (h, _)| *h != m);
            }
            _ => {
                if with_restore && rng.below(2) == 0 {
                    // Failover: only what is persisted survives; locks are lost.
                    let bytes = super::state::encode(&p.to_persisted());
                    let restored = super::state::decode(&bytes).unwrap();
                    p = SharePartition::from_persisted(&restored, limits).unwrap();
                    held.clear();
                    counts.restores += 1;
                } else if rng.below(4) == 0 {
                    let lso = p.start_offset() + rng.below(6) as i64;
                    p.on_log_start_moved(lso);
                }
            }
        }
        p.check_invariants();
        assert!(p.start_offset() >= max_start, "{ctx}: SPSO went back");
        max_start = p.start_offset();
        assert!(
            p.end_offset() - p.start_offset() <= 40,
            "{ctx}: window over the cap"
        );
        if p.end_offset() - p.start_offset() == 40 {
            counts.window_full += 1;
        }
    }
    counts.archived_at_limit = p
        .take_archived()
        .0
        .iter()
        .filter(|a| a.cause == ArchiveCause::DeliveryCountLimit)
        .count();
    counts.final_start = p.start_offset();
    counts
}

/// What a random run did, to check it did something.
#[derive(Debug, Default)]
pub(super) struct RunCounts {
    pub acquires: usize,
    pub redeliveries: usize,
    pub acks_ok: usize,
    pub acks_refused: usize,
    pub restores: usize,
    pub window_full: usize,
    pub archived_at_limit: usize,
    pub final_start: i64,
}

impl RunCounts {
    pub(super) fn add(&mut self, o: &RunCounts) {
        self.acquires += o.acquires;
        self.redeliveries += o.redeliveries;
        self.acks_ok += o.acks_ok;
        self.acks_refused += o.acks_refused;
        self.restores += o.restores;
        self.window_full += o.window_full;
        self.archived_at_limit += o.archived_at_limit;
        self.final_start += o.final_start;
    }
}

#[test]
fn random_operations_keep_invariants() {
    let mut total = RunCounts::default();
    for seed in 1..=60 {
        total.add(&random_run(seed, 1500, false));
    }
    // The runs exercise every path, not just the easy ones.
    assert!(total.acquires > 10_000, "{total:?}");
    assert!(total.redeliveries > 1000, "{total:?}");
    assert!(
        total.acks_ok > 5000 && total.acks_refused > 500,
        "{total:?}"
    );
    assert!(total.window_full > 100, "{total:?}");
    assert!(total.archived_at_limit > 10, "{total:?}");
    assert!(total.final_start > 60 * 100, "{total:?}");
}

#[test]
fn offsets_near_the_top_never_panic() {
    let top = i64::MAX - 1;
    let mut p = SharePartition::new(top - 5, lim(100, 3, 1000));
    let got = acq(&mut p, "m", &[b(top - 5, top - 3), b(top - 1, top)], 500, 0);
    assert_eq!(got, vec![(top - 5, top - 3, 1), (top - 1, top, 1)]);
    p.acknowledge("m", &[ack(top - 5, top, AckType::Accept)], 1)
        .unwrap_err();
    p.acknowledge(
        "m",
        &[
            ack(top - 5, top - 3, AckType::Accept),
            ack(top - 1, top, AckType::Release),
        ],
        1,
    )
    .unwrap();
    assert_eq!(
        acq(&mut p, "m", &[b(top - 1, top)], 500, 2),
        vec![(top - 1, top, 2)]
    );
    p.check_invariants();
    let q = SharePartition::from_persisted(&p.to_persisted(), p.limits()).unwrap();
    q.check_invariants();
    assert_eq!(q.end_offset(), i64::MAX);
    let mut r = SharePartition::new(i64::MAX, Limits::default());
    assert!(acq(&mut r, "m", &[b(0, top)], 500, 0).is_empty());
    r.on_log_start_moved(i64::MAX);
    r.reset(i64::MAX);
    r.check_invariants();
}
