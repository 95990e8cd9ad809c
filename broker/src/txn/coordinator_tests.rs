//! The coordinator's rules (see `coordinator.rs`), one test per rule.

use super::coordinator::*;
use super::errors::*;
use super::metadata::TxnMetadata;
use super::state::TxnState;
use super::{TxnConfig, TxnPartition};

const ID: &str = "app-1";

struct Harness {
    c: TxnCoordinator,
    next_pid: i64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            c: TxnCoordinator::new(TxnConfig::default()),
            next_pid: 1000,
        }
    }

    fn alloc(&mut self) -> impl FnMut() -> Result<i64, i16> + '_ {
        move || {
            self.next_pid += 1;
            Ok(self.next_pid)
        }
    }

    /// Persists a step and carries out its markers (and their completion).
    fn run<R>(&mut self, step: Step<R>) -> R {
        let id = step.metadata.transactional_id.clone();
        let before = self.c.get(&id).map_or(TxnState::Empty, |m| m.state);
        assert!(
            step.metadata.state.may_follow(before),
            "{before} -> {}",
            step.metadata.state
        );
        let mut markers = None;
        for e in &step.effects {
            match e {
                Effect::Persist => {
                    self.c.persisted(&id).expect("pending");
                }
                Effect::WriteMarkers(m) => markers = Some(m.clone()),
            }
        }
        if markers.is_some() {
            let done = self.c.markers_written(&id, 0).unwrap();
            self.c.persisted(&id).unwrap();
            assert!(
                done.metadata.state == TxnState::CompleteCommit
                    || done.metadata.state == TxnState::CompleteAbort
            );
        }
        step.reply
    }

    fn init(&mut self, expected: Option<ProducerIdAndEpoch>) -> Result<ProducerIdAndEpoch, i16> {
        let mut next = self.next_pid;
        let mut alloc = || {
            next += 1;
            Ok(next)
        };
        let step = self.c.init_producer_id(ID, 60_000, expected, 0, &mut alloc);
        self.next_pid = next;
        let step = step?;
        self.run(step)
    }

    fn add(&mut self, pe: ProducerIdAndEpoch, parts: &[(&str, i32)], now: i64) -> Result<(), i16> {
        let parts: Vec<TxnPartition> = parts
            .iter()
            .map(|(t, p)| TxnPartition::new(t, *p))
            .collect();
        let step = self
            .c
            .add_partitions(ID, pe.producer_id, pe.epoch, &parts, now)?;
        self.run(step);
        Ok(())
    }

    /// EndTxn, persisted; markers not yet written.
    fn end(
        &mut self,
        pe: ProducerIdAndEpoch,
        result: TxnResult,
        bump: bool,
    ) -> Result<Step<ProducerIdAndEpoch>, i16> {
        let mut next = self.next_pid;
        let mut alloc = || {
            next += 1;
            Ok(next)
        };
        let step = self.c.end_txn(ID, pe, result, bump, 10, &mut alloc);
        self.next_pid = next;
        let step = step?;
        let before = self.c.get(ID).unwrap().state;
        assert!(step.effects.is_empty() || step.metadata.state.may_follow(before));
        if step.effects.contains(&Effect::Persist) {
            self.c.persisted(ID).unwrap();
        }
        Ok(step)
    }

    fn complete(&mut self) {
        self.c.markers_written(ID, 20).unwrap();
        self.c.persisted(ID).unwrap();
    }

    fn state(&self) -> TxnState {
        self.c.get(ID).unwrap().state
    }
}

fn markers<R>(step: &Step<R>) -> Markers {
    step.effects
        .iter()
        .find_map(|e| match e {
            Effect::WriteMarkers(m) => Some(m.clone()),
            Effect::Persist => None,
        })
        .expect("markers")
}

fn pe(producer_id: i64, epoch: i16) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch { producer_id, epoch }
}

#[test]
fn new_transactional_id_gets_a_new_producer_id_and_epoch_0() {
    let mut h = Harness::new();
    assert_eq!(h.init(None), Ok(pe(1001, 0)));
    assert_eq!(h.state(), TxnState::Empty);
}

#[test]
fn re_init_bumps_the_epoch_and_fences_the_old_producer() {
    let mut h = Harness::new();
    let old = h.init(None).unwrap();
    let new = h.init(None).unwrap();
    assert_eq!(new, pe(old.producer_id, 1));
    assert_eq!(h.add(old, &[("t", 0)], 1), Err(PRODUCER_FENCED));
    assert_eq!(
        h.end(old, TxnResult::Commit, false).err(),
        Some(PRODUCER_FENCED)
    );
    h.add(new, &[("t", 0)], 1).unwrap();
}

#[test]
fn timeout_above_the_max_or_not_positive_is_refused() {
    let mut h = Harness::new();
    let mut alloc = h.alloc();
    let mut c = TxnCoordinator::new(TxnConfig::default());
    assert_eq!(
        c.init_producer_id(ID, 900_001, None, 0, &mut alloc).err(),
        Some(INVALID_TRANSACTION_TIMEOUT)
    );
    assert_eq!(
        c.init_producer_id(ID, 0, None, 0, &mut alloc).err(),
        Some(INVALID_TRANSACTION_TIMEOUT)
    );
    assert!(c.init_producer_id(ID, 900_000, None, 0, &mut alloc).is_ok());
}

#[test]
fn empty_transactional_id_is_invalid_request() {
    let mut h = Harness::new();
    let mut alloc = || Ok(1);
    assert_eq!(
        h.c.init_producer_id("", 1000, None, 0, &mut alloc).err(),
        Some(INVALID_REQUEST)
    );
}

#[test]
fn happy_commit() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0), ("b", 1)], 5).unwrap();
    assert_eq!(h.state(), TxnState::Ongoing);
    assert_eq!(h.c.get(ID).unwrap().txn_start_ms, 5);
    let step = h.end(p, TxnResult::Commit, false).unwrap();
    assert_eq!(step.reply, p);
    let m = markers(&step);
    assert_eq!(m.result, TxnResult::Commit);
    assert_eq!(
        m.partitions,
        vec![TxnPartition::new("a", 0), TxnPartition::new("b", 1)]
    );
    assert_eq!((m.producer_id, m.producer_epoch), (p.producer_id, p.epoch));
    assert_eq!(h.state(), TxnState::PrepareCommit);
    h.complete();
    assert_eq!(h.state(), TxnState::CompleteCommit);
    assert!(h.c.get(ID).unwrap().partitions.is_empty());
}

#[test]
fn happy_abort() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 5).unwrap();
    let step = h.end(p, TxnResult::Abort, false).unwrap();
    assert_eq!(markers(&step).result, TxnResult::Abort);
    h.complete();
    assert_eq!(h.state(), TxnState::CompleteAbort);
}

#[test]
fn a_new_transaction_after_a_complete_one_starts_fresh() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 5).unwrap();
    h.end(p, TxnResult::Commit, false).unwrap();
    h.complete();
    h.add(p, &[("b", 0)], 50).unwrap();
    let m = h.c.get(ID).unwrap();
    assert_eq!(m.txn_start_ms, 50);
    assert_eq!(m.partitions.len(), 1);
}

#[test]
fn adding_what_is_already_in_the_transaction_writes_nothing() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 5).unwrap();
    let step =
        h.c.add_partitions(ID, p.producer_id, p.epoch, &[TxnPartition::new("a", 0)], 9)
            .unwrap();
    assert!(step.effects.is_empty());
    assert!(!h.c.is_pending(ID));
}

#[test]
fn add_offsets_puts_the_group_in_the_markers() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    let step =
        h.c.add_offsets(ID, p.producer_id, p.epoch, "etl", 3)
            .unwrap();
    h.run(step);
    assert_eq!(h.state(), TxnState::Ongoing);
    h.add(p, &[("out", 2)], 4).unwrap();
    let step = h.end(p, TxnResult::Commit, false).unwrap();
    assert_eq!(markers(&step).groups, vec!["etl".to_string()]);
}

#[test]
fn unknown_id_or_other_producer_id_is_invalid_producer_id_mapping() {
    let mut h = Harness::new();
    let parts = [TxnPartition::new("a", 0)];
    assert_eq!(
        h.c.add_partitions(ID, 1, 0, &parts, 0).err(),
        Some(INVALID_PRODUCER_ID_MAPPING)
    );
    let p = h.init(None).unwrap();
    assert_eq!(
        h.c.add_partitions(ID, p.producer_id + 1, p.epoch, &parts, 0)
            .err(),
        Some(INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(
        h.end(pe(p.producer_id + 1, 0), TxnResult::Commit, false)
            .err(),
        Some(INVALID_PRODUCER_ID_MAPPING)
    );
}

#[test]
fn pending_write_makes_everything_concurrent() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    let parts = [TxnPartition::new("a", 0)];
    let step =
        h.c.add_partitions(ID, p.producer_id, p.epoch, &parts, 1)
            .unwrap();
    assert!(h.c.is_pending(ID));
    assert_eq!(
        h.c.add_partitions(ID, p.producer_id, p.epoch, &parts, 1)
            .err(),
        Some(CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        h.end(p, TxnResult::Commit, false).err(),
        Some(CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(h.init(None), Err(CONCURRENT_TRANSACTIONS));
    h.run(step);
    assert!(!h.c.is_pending(ID));
}

#[test]
fn failed_persist_changes_nothing() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    let parts = [TxnPartition::new("a", 0)];
    let step =
        h.c.add_partitions(ID, p.producer_id, p.epoch, &parts, 1)
            .unwrap();
    assert_eq!(step.metadata.state, TxnState::Ongoing);
    h.c.persist_failed(ID);
    assert_eq!(h.state(), TxnState::Empty);
    h.add(p, &[("a", 0)], 2).unwrap();
}

#[test]
fn add_during_prepare_is_concurrent() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 1).unwrap();
    h.end(p, TxnResult::Commit, false).unwrap();
    assert_eq!(h.add(p, &[("b", 0)], 2), Err(CONCURRENT_TRANSACTIONS));
}

#[test]
fn end_retries_and_wrong_outcomes() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    assert_eq!(
        h.end(p, TxnResult::Commit, false).err(),
        Some(INVALID_TXN_STATE),
        "Empty"
    );
    h.add(p, &[("a", 0)], 1).unwrap();
    h.end(p, TxnResult::Commit, false).unwrap();
    assert_eq!(
        h.end(p, TxnResult::Commit, false).err(),
        Some(CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        h.end(p, TxnResult::Abort, false).err(),
        Some(INVALID_TXN_STATE)
    );
    h.complete();
    let retry = h.end(p, TxnResult::Commit, false).unwrap();
    assert!(retry.effects.is_empty());
    assert_eq!(retry.reply, p);
    assert_eq!(
        h.end(p, TxnResult::Abort, false).err(),
        Some(INVALID_TXN_STATE)
    );
}

#[test]
fn re_init_during_an_ongoing_transaction_aborts_it_first() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0), ("a", 1)], 1).unwrap();
    let mut c = h.c.clone();
    let mut alloc = h.alloc();
    let step = c.init_producer_id(ID, 60_000, None, 2, &mut alloc).unwrap();
    assert_eq!(step.reply, Err(CONCURRENT_TRANSACTIONS));
    assert_eq!(step.metadata.state, TxnState::PrepareAbort);
    assert_eq!(step.metadata.producer_epoch, p.epoch + 1);
    let m = markers(&step);
    assert_eq!(
        (m.result, m.producer_epoch),
        (TxnResult::Abort, p.epoch + 1)
    );
    assert_eq!(m.partitions.len(), 2);
    // While the abort's markers are written, the retry is still CONCURRENT_TRANSACTIONS.
    c.persisted(ID).unwrap();
    assert_eq!(
        c.init_producer_id(ID, 60_000, None, 3, &mut alloc).err(),
        Some(CONCURRENT_TRANSACTIONS)
    );
    // The zombie is fenced.
    assert_eq!(
        c.end_txn(ID, p, TxnResult::Commit, false, 3, &mut alloc)
            .err(),
        Some(PRODUCER_FENCED)
    );
    c.markers_written(ID, 4).unwrap();
    c.persisted(ID).unwrap();
    let again = c.init_producer_id(ID, 60_000, None, 5, &mut alloc).unwrap();
    assert_eq!(again.reply, Ok(pe(p.producer_id, p.epoch + 2)));
}

#[test]
fn exhausted_epoch_gets_a_new_producer_id() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    let mut m = h.c.get(ID).unwrap().clone();
    m.producer_epoch = i16::MAX - 1;
    h.c.restore(m);
    let next = h.init(None).unwrap();
    assert_ne!(next.producer_id, p.producer_id);
    assert_eq!(next.epoch, 0);
    assert_eq!(h.c.get(ID).unwrap().previous_producer_id, p.producer_id);
}

#[test]
fn kip360_matching_epoch_bumps() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    assert_eq!(h.init(Some(p)), Ok(pe(p.producer_id, 1)));
    assert_eq!(h.c.get(ID).unwrap().last_producer_epoch, 0);
}

#[test]
fn kip360_retry_of_a_lost_bump_returns_the_current_epoch() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    let bumped = h.init(Some(p)).unwrap();
    // The answer was lost; the client retries with its old epoch.
    assert_eq!(h.init(Some(p)), Ok(bumped));
}

#[test]
fn kip360_stale_epoch_or_other_producer_id_is_fenced() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.init(None).unwrap();
    h.init(None).unwrap(); // epoch 2, last epoch -1
    assert_eq!(h.init(Some(p)), Err(PRODUCER_FENCED));
    assert_eq!(h.init(Some(pe(p.producer_id + 7, 2))), Err(PRODUCER_FENCED));
}

#[test]
fn kip360_after_rotation_the_old_id_with_exhausted_epoch_is_accepted() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    let mut m = h.c.get(ID).unwrap().clone();
    m.producer_epoch = i16::MAX - 1;
    h.c.restore(m);
    let old = pe(p.producer_id, i16::MAX - 1);
    let rotated = h.init(Some(old)).unwrap();
    assert_eq!(rotated.epoch, 0);
    // A retry of the rotation (answer lost) gets the same id and epoch.
    assert_eq!(h.init(Some(old)), Ok(rotated));
}

#[test]
fn kip890_verify_only() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 1).unwrap();
    let parts = [TxnPartition::new("a", 0), TxnPartition::new("a", 1)];
    let got =
        h.c.verify_partitions(ID, p.producer_id, p.epoch, &parts)
            .unwrap();
    assert_eq!(
        got,
        vec![
            (parts[0].clone(), NONE),
            (parts[1].clone(), INVALID_TXN_STATE)
        ]
    );
    assert!(!h.c.is_pending(ID), "verify writes nothing");
    assert_eq!(
        h.c.verify_partitions(ID, p.producer_id, p.epoch + 1, &parts)
            .err(),
        Some(PRODUCER_FENCED)
    );
    assert_eq!(
        h.c.verify_partitions("other", p.producer_id, p.epoch, &parts)
            .err(),
        Some(INVALID_PRODUCER_ID_MAPPING)
    );
    h.end(p, TxnResult::Commit, false).unwrap();
    assert_eq!(
        h.c.verify_partitions(ID, p.producer_id, p.epoch, &parts)
            .err(),
        Some(CONCURRENT_TRANSACTIONS)
    );
}

#[test]
fn kip890_end_bumps_the_epoch_and_markers_carry_it() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 1).unwrap();
    let step = h.end(p, TxnResult::Commit, true).unwrap();
    assert_eq!(step.reply, pe(p.producer_id, p.epoch + 1));
    assert_eq!(markers(&step).producer_epoch, p.epoch + 1);
    h.complete();
    // The old epoch is a zombie now...
    assert_eq!(h.add(p, &[("a", 0)], 30), Err(PRODUCER_FENCED));
    // ...but a retry of the EndTxn with it is recognised.
    let retry = h.end(p, TxnResult::Commit, true).unwrap();
    assert!(retry.effects.is_empty());
    assert_eq!(retry.reply, pe(p.producer_id, p.epoch + 1));
    assert_eq!(
        h.end(p, TxnResult::Abort, true).err(),
        Some(INVALID_TXN_STATE)
    );
}

#[test]
fn kip890_end_with_exhausted_epoch_rotates_the_producer_id_on_completion() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    let mut m = h.c.get(ID).unwrap().clone();
    m.producer_epoch = i16::MAX - 1;
    h.c.restore(m);
    let old = pe(p.producer_id, i16::MAX - 1);
    h.add(old, &[("a", 0)], 1).unwrap();
    let step = h.end(old, TxnResult::Abort, true).unwrap();
    assert_ne!(step.reply.producer_id, p.producer_id);
    assert_eq!(step.reply.epoch, 0);
    assert_eq!(markers(&step).producer_id, p.producer_id);
    h.complete();
    let m = h.c.get(ID).unwrap();
    assert_eq!(
        (m.producer_id, m.producer_epoch),
        (step.reply.producer_id, 0)
    );
    assert_eq!(m.previous_producer_id, p.producer_id);
    // The retry with the old id and epoch gets the new ones.
    assert_eq!(
        h.end(old, TxnResult::Abort, true).unwrap().reply,
        step.reply
    );
    h.add(step.reply, &[("a", 0)], 40).unwrap();
}

#[test]
fn kip890_abort_with_nothing_begun_bumps_the_epoch() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    let step = h.end(p, TxnResult::Abort, true).unwrap();
    assert_eq!(step.reply, pe(p.producer_id, p.epoch + 1));
    assert!(markers(&step).partitions.is_empty());
    h.complete();
    assert_eq!(h.state(), TxnState::CompleteAbort);
    assert_eq!(
        h.end(step.reply, TxnResult::Commit, true).err(),
        Some(INVALID_TXN_STATE)
    );
}

#[test]
fn timed_out_transaction_is_fenced_and_aborted() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap(); // timeout 60 s
    h.add(p, &[("a", 0)], 1_000).unwrap();
    assert!(
        h.c.expire(61_000).is_empty(),
        "exactly at the timeout: not yet"
    );
    let steps = h.c.expire(61_001);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].metadata.state, TxnState::PrepareAbort);
    assert_eq!(steps[0].metadata.producer_epoch, p.epoch + 1);
    assert_eq!(markers(&steps[0]).result, TxnResult::Abort);
    // Not expired twice while its write is pending.
    assert!(h.c.expire(70_000).is_empty());
    h.c.persisted(ID).unwrap();
    assert!(h.c.expire(70_000).is_empty(), "PrepareAbort is not Ongoing");
    assert_eq!(
        h.end(p, TxnResult::Commit, false).err(),
        Some(PRODUCER_FENCED)
    );
    h.complete();
    assert_eq!(h.init(Some(p)), Err(PRODUCER_FENCED));
    assert_eq!(h.init(None), Ok(pe(p.producer_id, p.epoch + 2)));
}

#[test]
fn idle_transactional_ids_expire_and_are_removed() {
    let mut h = Harness::new();
    h.init(None).unwrap(); // last update at 0
    let week = TxnConfig::default().id_expiration_ms;
    assert!(h.c.expire_ids(week - 1).is_empty());
    let steps = h.c.expire_ids(week);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].metadata.state, TxnState::Dead);
    h.c.persisted(ID).unwrap();
    assert!(h.c.get(ID).is_none());
    assert_eq!(h.c.describe(ID).err(), Some(TRANSACTIONAL_ID_NOT_FOUND));
}

#[test]
fn ongoing_transactions_do_not_expire_as_ids() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 0).unwrap();
    assert!(h.c.expire_ids(i64::MAX).is_empty());
}

#[test]
fn crash_recovery_lists_every_prepared_transaction() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 1).unwrap();
    h.end(p, TxnResult::Commit, false).unwrap(); // PrepareCommit, markers never written
                                                 // What the log holds, restored into a new coordinator after a crash.
    let log: Vec<Vec<u8>> = [h.c.get(ID).unwrap().clone(), {
        let mut other = TxnMetadata::new("app-2", 5, 1000, 0);
        other.producer_epoch = 0;
        other
    }]
    .iter()
    .map(super::log::encode)
    .collect();
    let mut c = TxnCoordinator::loading(TxnConfig::default());
    let mut alloc = || Ok(1);
    assert_eq!(
        c.init_producer_id("app-2", 1000, None, 0, &mut alloc).err(),
        Some(COORDINATOR_LOAD_IN_PROGRESS)
    );
    assert_eq!(c.describe(ID).err(), Some(COORDINATOR_LOAD_IN_PROGRESS));
    for bytes in &log {
        c.restore(super::log::decode(bytes).unwrap());
    }
    let again = c.loaded();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].transactional_id, ID);
    assert_eq!(again[0].result, TxnResult::Commit);
    assert_eq!(again[0].partitions, vec![TxnPartition::new("a", 0)]);
    c.markers_written(ID, 5).unwrap();
    c.persisted(ID).unwrap();
    assert!(c.pending_markers().is_empty());
}

#[test]
fn markers_written_only_after_prepare() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    assert_eq!(h.c.markers_written(ID, 0).err(), Some(INVALID_TXN_STATE));
    h.add(p, &[("a", 0)], 1).unwrap();
    assert_eq!(h.c.markers_written(ID, 0).err(), Some(INVALID_TXN_STATE));
    assert_eq!(
        h.c.markers_written("nope", 0).err(),
        Some(TRANSACTIONAL_ID_NOT_FOUND)
    );
}

#[test]
fn describe_shows_the_open_transaction() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 3)], 7).unwrap();
    let d = h.c.describe(ID).unwrap();
    assert_eq!(d.state, TxnState::Ongoing);
    assert_eq!(d.state.name(), "Ongoing");
    assert_eq!((d.producer_id, d.producer_epoch), (p.producer_id, p.epoch));
    assert_eq!((d.timeout_ms, d.txn_start_ms), (60_000, 7));
    assert_eq!(d.partitions, vec![TxnPartition::new("a", 3)]);
    assert_eq!(
        h.c.describe("unknown").err(),
        Some(TRANSACTIONAL_ID_NOT_FOUND)
    );
}

#[test]
fn list_filters_by_state_producer_and_duration() {
    let mut c = TxnCoordinator::new(TxnConfig::default());
    let mut pid = 0;
    let mut alloc = || {
        pid += 1;
        Ok(pid)
    };
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        c.init_producer_id(id, 60_000, None, 0, &mut alloc).unwrap();
        c.persisted(id).unwrap();
        if i > 0 {
            let parts = [TxnPartition::new("t", 0)];
            c.add_partitions(id, i as i64 + 1, 0, &parts, i as i64 * 100)
                .unwrap();
            c.persisted(id).unwrap();
        }
    }
    let ids = |l: Listing| -> Vec<String> {
        l.transactions
            .into_iter()
            .map(|t| t.transactional_id)
            .collect()
    };
    assert_eq!(
        ids(c.list(&ListFilter::default(), 1000).unwrap()),
        ["a", "b", "c"]
    );
    let ongoing = ListFilter {
        states: vec!["Ongoing".into(), "Bogus".into()],
        ..ListFilter::default()
    };
    let l = c.list(&ongoing, 1000).unwrap();
    assert_eq!(l.unknown_state_filters, vec!["Bogus".to_string()]);
    assert_eq!(ids(l), ["b", "c"]);
    let by_pid = ListFilter {
        producer_ids: vec![3],
        ..ListFilter::default()
    };
    assert_eq!(ids(c.list(&by_pid, 1000).unwrap()), ["c"]);
    // KIP-994: b started at 100, c at 200; running longer than 850 ms at 1000.
    let long = ListFilter {
        min_duration_ms: 850,
        ..ListFilter::default()
    };
    assert_eq!(ids(c.list(&long, 1000).unwrap()), ["b"]);
}

#[test]
fn zombie_add_offsets_is_fenced_and_does_not_join() {
    let mut h = Harness::new();
    let old = h.init(None).unwrap();
    let new = h.init(None).unwrap();
    assert_eq!(
        h.c.add_offsets(ID, old.producer_id, old.epoch, "etl", 1)
            .err(),
        Some(PRODUCER_FENCED)
    );
    let step =
        h.c.add_offsets(ID, new.producer_id, new.epoch, "etl", 1)
            .unwrap();
    h.run(step);
    assert!(h.c.get(ID).unwrap().groups.contains("etl"));
    // The group again: already in the transaction, nothing written.
    let again =
        h.c.add_offsets(ID, new.producer_id, new.epoch, "etl", 2)
            .unwrap();
    assert!(again.effects.is_empty());
}

#[test]
fn every_marker_completion_is_persisted_and_clears_the_transaction() {
    let mut h = Harness::new();
    let p = h.init(None).unwrap();
    h.add(p, &[("a", 0)], 1).unwrap();
    h.end(p, TxnResult::Abort, false).unwrap();
    let done = h.c.markers_written(ID, 30).unwrap();
    assert_eq!(done.effects, vec![Effect::Persist]);
    assert_eq!(done.metadata.state, TxnState::CompleteAbort);
    assert!(done.metadata.partitions.is_empty() && done.metadata.groups.is_empty());
    // Not installed until persisted: recovery would still write the markers again.
    assert_eq!(h.c.pending_markers().len(), 1);
    h.c.persisted(ID).unwrap();
    assert!(h.c.pending_markers().is_empty());
}

/// Random operations from the current producer and zombies, with writes that fail and
/// markers that come late: every installed step is an allowed move, survives the log's
/// encoding and checks, and the epoch of a producer id never goes back.
#[test]
fn random_runs_keep_the_invariants() {
    let mut reached = std::collections::BTreeSet::new();
    for seed in 1..200u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut c = TxnCoordinator::new(TxnConfig::default());
        let mut pid = 0i64;
        let mut known: Vec<ProducerIdAndEpoch> = vec![pe(1, 0)];
        let mut now = 0i64;
        for _ in 0..300 {
            now += (next() % 5_000) as i64;
            let who = known[(next() as usize) % known.len()];
            let mut alloc = || {
                pid += 1;
                Ok(pid)
            };
            let before = c.get(ID).cloned();
            let steps: Vec<Step<()>> = match next() % 8 {
                0 => match c.init_producer_id(
                    ID,
                    60_000,
                    Some(who).filter(|_| next() % 2 == 0),
                    now,
                    &mut alloc,
                ) {
                    Ok(s) => {
                        if let Ok(p) = s.reply {
                            known.push(p);
                        }
                        vec![Step {
                            metadata: s.metadata,
                            effects: s.effects,
                            reply: (),
                        }]
                    }
                    Err(_) => vec![],
                },
                1 | 2 => {
                    let parts = [TxnPartition::new("t", (next() % 3) as i32)];
                    c.add_partitions(ID, who.producer_id, who.epoch, &parts, now)
                        .into_iter()
                        .collect()
                }
                3 => c
                    .add_offsets(ID, who.producer_id, who.epoch, "g", now)
                    .into_iter()
                    .collect(),
                4 => {
                    let result = if next() % 2 == 0 {
                        TxnResult::Commit
                    } else {
                        TxnResult::Abort
                    };
                    match c.end_txn(ID, who, result, next() % 2 == 0, now, &mut alloc) {
                        Ok(s) => {
                            known.push(s.reply);
                            vec![Step {
                                metadata: s.metadata,
                                effects: s.effects,
                                reply: (),
                            }]
                        }
                        Err(_) => vec![],
                    }
                }
                5 => c.markers_written(ID, now).into_iter().collect(),
                6 => c.expire(now),
                _ => vec![],
            };
            for s in steps {
                if !s.effects.contains(&Effect::Persist) {
                    continue;
                }
                if next() % 10 == 0 {
                    c.persist_failed(ID);
                    continue;
                }
                let installed = c.persisted(ID).unwrap();
                reached.insert(installed.state);
                let prev_state = before.as_ref().map_or(TxnState::Empty, |m| m.state);
                assert!(
                    installed.state.may_follow(prev_state),
                    "seed {seed}: {prev_state} -> {}",
                    installed.state
                );
                assert_eq!(
                    super::log::decode(&super::log::encode(&installed)),
                    Ok(installed.clone())
                );
                if let Some(b) = &before {
                    if b.producer_id == installed.producer_id {
                        assert!(installed.producer_epoch >= b.producer_epoch, "seed {seed}");
                    }
                }
                let has_markers = s
                    .effects
                    .iter()
                    .any(|e| matches!(e, Effect::WriteMarkers(_)));
                assert_eq!(has_markers, installed.state.is_prepare(), "seed {seed}");
            }
        }
    }
    // The runs reach every state the coordinator persists.
    for state in TxnState::ALL {
        if state != TxnState::PrepareEpochFence && state != TxnState::Dead {
            assert!(reached.contains(&state), "{state} never reached");
        }
    }
}
