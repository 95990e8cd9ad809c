//! What is persisted of one share-partition (Kafka's share coordinator state, here a
//! value written through the Raft log of the store group that holds the partition, by
//! the wiring step): the state epoch, the SPSO, and the in-flight records that are not
//! fresh, as ranges of equal state and delivery count.
//!
//! Rules:
//! - [`SharePartition::to_persisted`] writes every entry of the window: Acknowledged,
//!   Archived (including gaps, delivery count 0), and Available or Acquired records with
//!   their delivery counts. Acquired records are written as **Available**: locks are not
//!   persisted, so after a failover they can be acquired again at once, with their delivery
//!   count kept (as in Kafka). Offsets of the window with no entry were never delivered.
//! - For the delivery counts to survive a failover exactly, the wiring persists after an
//!   acquisition as well as after acknowledgements, releases and lock expiries (Kafka only
//!   persists the latter, so its counts can be one low after a failover); group commit
//!   batches these writes.
//! - [`SharePartition::from_persisted`] restores exactly those states and counts; the end
//!   offset becomes one past the last persisted range (offsets after it are fresh).
//! - [`decode`] checks everything, because the value comes from disk: the version,
//!   ordered non-overlapping ranges at or above the SPSO, known states, and a window of at
//!   most [`MAX_RECORD_LOCKS_UPPER`] offsets (so a corrupt value cannot make the restore
//!   allocate without bound). Errors, never panics.
//! - Encoding: one version byte, then postcard (varints): a window with a few ranges is a
//!   few tens of bytes; the worst case (alternating states) is about 8 bytes per record of
//!   the window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::partition::{InFlight, Limits, RecordState, SharePartition, MAX_RECORD_LOCKS_UPPER};

/// The encoding's version byte.
pub const VERSION: u8 = 1;

/// Kafka's persisted record states (`RecordState` ids); acquired is never persisted.
pub const AVAILABLE: u8 = 0;
pub const ACKNOWLEDGED: u8 = 2;
pub const ARCHIVED: u8 = 4;

/// Offsets `first_offset..=last_offset` in one state with one delivery count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub state: u8,
    pub delivery_count: u16,
}

/// The persisted state of one share-partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    pub state_epoch: i32,
    pub start_offset: i64,
    pub batches: Vec<StateBatch>,
}

/// A persisted value that cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "share-partition state: {}", self.0)
    }
}

impl std::error::Error for StateError {}

impl PersistedState {
    /// Checks the value (see the module doc).
    pub fn validate(&self) -> Result<(), StateError> {
        if self.start_offset < 0 {
            return Err(StateError(format!(
                "negative start offset {}",
                self.start_offset
            )));
        }
        let mut next = self.start_offset;
        for b in &self.batches {
            if b.last_offset < b.first_offset || b.last_offset == i64::MAX {
                return Err(StateError(format!(
                    "range {}..={} is empty",
                    b.first_offset, b.last_offset
                )));
            }
            if b.first_offset < next {
                return Err(StateError(format!(
                    "range {}..={} below the start offset or out of order",
                    b.first_offset, b.last_offset
                )));
            }
            if !matches!(b.state, AVAILABLE | ACKNOWLEDGED | ARCHIVED) {
                return Err(StateError(format!("unknown record state {}", b.state)));
            }
            let window = (b.last_offset as i128) - (self.start_offset as i128) + 1;
            if window > i128::from(MAX_RECORD_LOCKS_UPPER) {
                return Err(StateError(format!(
                    "window of {window} offsets over {MAX_RECORD_LOCKS_UPPER}"
                )));
            }
            next = b.last_offset + 1;
        }
        Ok(())
    }
}

/// The bytes written through Raft.
pub fn encode(state: &PersistedState) -> Vec<u8> {
    let mut out = vec![VERSION];
    // Serializing plain integers and vectors into a Vec cannot fail.
    if let Ok(body) = postcard::to_stdvec(state) {
        out.extend_from_slice(&body);
    }
    out
}

/// Reads and checks the bytes [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<PersistedState, StateError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| StateError("empty value".into()))?;
    if version != VERSION {
        return Err(StateError(format!("unknown version {version}")));
    }
    let (state, rest): (PersistedState, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| StateError(format!("undecodable: {e}")))?;
    if !rest.is_empty() {
        return Err(StateError(format!("{} trailing bytes", rest.len())));
    }
    state.validate()?;
    Ok(state)
}

fn persisted_state(r: &InFlight) -> u8 {
    match r.state {
        RecordState::Available | RecordState::Acquired { .. } => AVAILABLE,
        RecordState::Acknowledged => ACKNOWLEDGED,
        RecordState::Archived => ARCHIVED,
    }
}

impl SharePartition {
    /// The value to persist (see the module doc).
    pub fn to_persisted(&self) -> PersistedState {
        let mut batches: Vec<StateBatch> = Vec::new();
        for (o, r) in self.records() {
            let state = persisted_state(r);
            match batches.last_mut() {
                Some(b)
                    if b.last_offset + 1 == o
                        && b.state == state
                        && b.delivery_count == r.delivery_count =>
                {
                    b.last_offset = o;
                }
                _ => batches.push(StateBatch {
                    first_offset: o,
                    last_offset: o,
                    state,
                    delivery_count: r.delivery_count,
                }),
            }
        }
        PersistedState {
            state_epoch: self.state_epoch(),
            start_offset: self.start_offset(),
            batches,
        }
    }

    /// Restores a share-partition from its persisted state, with nothing acquired.
    pub fn from_persisted(
        state: &PersistedState,
        limits: Limits,
    ) -> Result<SharePartition, StateError> {
        state.validate()?;
        let mut records = BTreeMap::new();
        let mut end = state.start_offset;
        for b in &state.batches {
            let s = match b.state {
                AVAILABLE => RecordState::Available,
                ACKNOWLEDGED => RecordState::Acknowledged,
                _ => RecordState::Archived,
            };
            for o in b.first_offset..=b.last_offset {
                records.insert(
                    o,
                    InFlight {
                        state: s.clone(),
                        delivery_count: b.delivery_count,
                    },
                );
            }
            end = b.last_offset + 1;
        }
        Ok(SharePartition::from_parts(
            state.start_offset,
            end,
            state.state_epoch,
            records,
            limits,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::partition::{AckBatch, AckType, AcquireMode, FetchedBatch};
    use super::*;

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

    fn round_trip(p: &SharePartition) -> SharePartition {
        let bytes = encode(&p.to_persisted());
        let s = decode(&bytes).unwrap();
        assert_eq!(s, p.to_persisted());
        let q = SharePartition::from_persisted(&s, p.limits()).unwrap();
        q.check_invariants();
        q
    }

    /// A partition with every kind of entry: acknowledged, rejected, a gap, released
    /// twice, and acquired.
    fn busy() -> SharePartition {
        let mut p = SharePartition::new(100, Limits::default());
        let m = AcquireMode::BatchOptimized;
        p.acquire("m1", 100, &[b(100, 104), b(107, 109)], 500, m, 0)
            .unwrap();
        p.acknowledge(
            "m1",
            &[
                ack(101, 101, AckType::Accept),
                ack(102, 102, AckType::Reject),
                ack(103, 104, AckType::Release),
            ],
            1,
        )
        .unwrap();
        p.acquire("m2", 103, &[b(100, 104)], 500, m, 2).unwrap();
        p.acknowledge("m2", &[ack(103, 103, AckType::Release)], 3)
            .unwrap();
        p
    }

    #[test]
    fn round_trip_restores_states_and_counts_but_not_locks() {
        let p = busy();
        let s = p.to_persisted();
        assert_eq!(s.start_offset, 100);
        let sb = |first: i64, last: i64, state: u8, delivery_count: u16| StateBatch {
            first_offset: first,
            last_offset: last,
            state,
            delivery_count,
        };
        assert_eq!(
            s.batches,
            vec![
                // 100 is acquired by m1: persisted as available.
                sb(100, 100, AVAILABLE, 1),
                sb(101, 101, ACKNOWLEDGED, 1),
                sb(102, 102, ARCHIVED, 1),
                // 103 released twice, 104 acquired by m2 on its second delivery.
                sb(103, 104, AVAILABLE, 2),
                // The gap the log read skipped.
                sb(105, 106, ARCHIVED, 0),
                sb(107, 109, AVAILABLE, 1),
            ]
        );
        let mut q = round_trip(&p);
        assert_eq!(q.start_offset(), 100);
        assert_eq!(q.end_offset(), 110);
        assert_eq!(q.stats().acquired, 0, "locks are not persisted");
        assert_eq!(q.record(101).unwrap().state, RecordState::Acknowledged);
        assert_eq!(q.record(102).unwrap().state, RecordState::Archived);
        // Everything unfinished is redelivered with its count kept.
        let got = q
            .acquire(
                "m3",
                q.next_fetch_offset(),
                &[b(100, 104), b(107, 109)],
                500,
                AcquireMode::BatchOptimized,
                10,
            )
            .unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|r| (r.first_offset, r.last_offset, r.delivery_count))
            .collect();
        assert_eq!(got, vec![(100, 100, 2), (103, 104, 3), (107, 109, 2)]);
    }

    #[test]
    fn restored_window_has_fresh_offsets_after_the_last_range() {
        let mut p = SharePartition::new(0, Limits::default());
        let m = AcquireMode::BatchOptimized;
        p.acquire("m", 0, &[b(0, 9)], 500, m, 0).unwrap();
        p.acknowledge("m", &[ack(5, 9, AckType::Accept)], 1)
            .unwrap();
        let mut q = round_trip(&p);
        assert_eq!((q.start_offset(), q.end_offset()), (0, 10));
        assert_eq!(q.next_fetch_offset(), 0);
        let got = q.acquire("m", 0, &[b(0, 12)], 500, m, 2).unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|r| (r.first_offset, r.last_offset, r.delivery_count))
            .collect();
        assert_eq!(got, vec![(0, 4, 2), (10, 12, 1)]);
    }

    #[test]
    fn empty_and_reset_states_round_trip() {
        let p = SharePartition::new(42, Limits::default());
        let q = round_trip(&p);
        assert_eq!(
            (q.start_offset(), q.end_offset(), q.state_epoch()),
            (42, 42, 0)
        );
        let mut p = busy();
        p.reset(7);
        let q = round_trip(&p);
        assert_eq!((q.start_offset(), q.state_epoch()), (7, 1));
        assert_eq!(
            encode(&SharePartition::new(0, Limits::default()).to_persisted()).len(),
            4
        );
    }

    #[test]
    fn a_terminal_head_is_passed_on_restore() {
        let s = PersistedState {
            state_epoch: 3,
            start_offset: 10,
            batches: vec![
                StateBatch {
                    first_offset: 10,
                    last_offset: 12,
                    state: ACKNOWLEDGED,
                    delivery_count: 1,
                },
                StateBatch {
                    first_offset: 14,
                    last_offset: 14,
                    state: ARCHIVED,
                    delivery_count: 5,
                },
            ],
        };
        let q = SharePartition::from_persisted(&s, Limits::default()).unwrap();
        q.check_invariants();
        assert_eq!((q.start_offset(), q.end_offset()), (13, 15));
        assert_eq!(q.next_fetch_offset(), 13);
    }

    #[test]
    fn corrupt_values_are_errors() {
        let good = busy().to_persisted();
        let bytes = encode(&good);
        assert!(decode(&[]).is_err());
        assert!(decode(&[2]).is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        let bad = |f: &dyn Fn(&mut PersistedState)| {
            let mut s = good.clone();
            f(&mut s);
            assert!(decode(&encode(&s)).is_err(), "{s:?}");
            assert!(SharePartition::from_persisted(&s, Limits::default()).is_err());
        };
        bad(&|s| s.start_offset = -1);
        bad(&|s| s.batches[0].first_offset = 99);
        bad(&|s| s.batches[1].first_offset = s.batches[0].first_offset);
        bad(&|s| s.batches[0].last_offset = s.batches[0].first_offset - 1);
        bad(&|s| s.batches[0].state = 1);
        bad(&|s| s.batches[0].state = 3);
        bad(&|s| {
            let last = s.batches.last_mut().unwrap();
            last.last_offset = i64::MAX;
        });
        bad(&|s| {
            let last = s.batches.last_mut().unwrap();
            last.last_offset = 100 + i64::from(MAX_RECORD_LOCKS_UPPER);
        });
        // Random bytes never panic.
        let mut rng = super::super::partition_tests::Rng::new(7);
        for _ in 0..2000 {
            let n = rng.below(40) as usize;
            let mut v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if rng.below(2) == 0 && !v.is_empty() {
                v[0] = VERSION;
            }
            let _ = decode(&v);
        }
    }

    #[test]
    fn random_operations_with_failovers_keep_invariants() {
        let mut restores = 0;
        for seed in 1..=40 {
            restores += super::super::partition_tests::random_run(seed, 1500, true).restores;
        }
        assert!(restores > 1000, "{restores}");
    }
}
