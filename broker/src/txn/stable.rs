//! One partition's transactions, as its leader sees them in the log: the open transaction
//! of each producer, the *last stable offset* (LSO) and the aborted transactions Fetch
//! returns to `read_committed` consumers (Kafka's `ProducerStateManager` transaction
//! tracking and `AbortedTxn` index), as a pure structure fed with what is appended.
//!
//! Rules:
//! - A transactional batch of a producer with no open transaction opens one at the
//!   batch's first offset; later batches of the same producer join it.
//! - A batch or a marker with an epoch below the producer's known epoch is refused with
//!   INVALID_PRODUCER_EPOCH (a zombie; KIP-890 markers carry the bumped epoch, so a zombie
//!   of an ended transaction is fenced here). A batch with a higher epoch while the
//!   producer's transaction is open is INVALID_TXN_STATE: the coordinator bumps the epoch
//!   only after that transaction's marker is written.
//! - A marker (commit or abort) ends the producer's open transaction; an abort is recorded
//!   as an aborted transaction `(producer id, first offset, marker offset)`. A marker for a
//!   producer with no open transaction (nothing written here, or a marker written again by
//!   recovery) changes nothing but the epoch.
//! - The first unstable offset is the smallest first offset of a transaction that is open,
//!   or ended by a marker not yet below the high watermark (Kafka's unreplicated completed
//!   transactions). LSO = min(first unstable offset, high watermark).
//! - Aborted transactions for a fetch of `[fetch_offset, upper_bound)`: those whose range
//!   `[first offset, marker offset]` meets it (`last >= fetch_offset && first <
//!   upper_bound`), in first-offset order, as Kafka's `collectAbortedTransactions`.
//! - Retention: aborted transactions ending before the log start offset are dropped.

use std::collections::BTreeMap;

use super::coordinator::TxnResult;
use super::errors::{INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE};

/// An aborted transaction of a partition: its data is `first_offset..last_offset`, its
/// abort marker at `last_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Open {
    epoch: i16,
    first_offset: i64,
}

/// A transaction ended by a marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    pub producer_id: i64,
    pub first_offset: i64,
    pub marker_offset: i64,
    pub result: TxnResult,
}

#[derive(Clone, Debug, Default)]
pub struct PartitionTxns {
    /// Known epoch of every transactional producer seen.
    epochs: BTreeMap<i64, i16>,
    open: BTreeMap<i64, Open>,
    /// Ended transactions whose marker is at or above the high watermark, by marker offset.
    completing: BTreeMap<i64, Ended>,
    /// In marker-offset order (markers are appended in offset order).
    aborted: Vec<AbortedTxn>,
    high_watermark: i64,
}

impl PartitionTxns {
    pub fn new() -> PartitionTxns {
        PartitionTxns::default()
    }

    fn check_epoch(&self, producer_id: i64, epoch: i16) -> Result<(), i16> {
        match self.epochs.get(&producer_id) {
            Some(&known) if epoch < known => Err(INVALID_PRODUCER_EPOCH),
            _ => Ok(()),
        }
    }

    /// A transactional batch `first_offset..=` of `producer_id` was appended (or is about
    /// to be: the wiring calls this before appending, to refuse zombies).
    pub fn append(&mut self, producer_id: i64, epoch: i16, first_offset: i64) -> Result<(), i16> {
        self.check_epoch(producer_id, epoch)?;
        match self.open.get(&producer_id) {
            Some(open) if open.epoch != epoch => Err(INVALID_TXN_STATE),
            Some(_) => Ok(()),
            None => {
                self.epochs.insert(producer_id, epoch);
                self.open.insert(
                    producer_id,
                    Open {
                        epoch,
                        first_offset,
                    },
                );
                Ok(())
            }
        }
    }

    /// A commit or abort marker of `producer_id` was appended at `offset`.
    pub fn marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        result: TxnResult,
        offset: i64,
    ) -> Result<Option<Ended>, i16> {
        self.check_epoch(producer_id, epoch)?;
        self.epochs.insert(producer_id, epoch);
        let Some(open) = self.open.remove(&producer_id) else {
            return Ok(None);
        };
        let ended = Ended {
            producer_id,
            first_offset: open.first_offset,
            marker_offset: offset,
            result,
        };
        if result == TxnResult::Abort {
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset: open.first_offset,
                last_offset: offset,
            });
        }
        if offset >= self.high_watermark {
            self.completing.insert(offset, ended);
        }
        Ok(Some(ended))
    }

    /// The high watermark moved (never backwards).
    pub fn advance_high_watermark(&mut self, high_watermark: i64) {
        if high_watermark <= self.high_watermark {
            return;
        }
        self.high_watermark = high_watermark;
        self.completing = self.completing.split_off(&high_watermark);
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The smallest offset of a transaction not yet decided and replicated.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let open = self.open.values().map(|o| o.first_offset);
        let completing = self.completing.values().map(|e| e.first_offset);
        open.chain(completing).min()
    }

    /// What `read_committed` consumers may read up to (exclusive), and ListOffsets latest
    /// answers under `read_committed`.
    pub fn last_stable_offset(&self) -> i64 {
        self.first_unstable_offset()
            .map_or(self.high_watermark, |f| f.min(self.high_watermark))
    }

    /// The first offset of `producer_id`'s open transaction.
    pub fn open_first_offset(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).map(|o| o.first_offset)
    }

    /// Fetch's aborted transactions for `[fetch_offset, upper_bound)`: (producer id,
    /// first offset), in first-offset order.
    pub fn aborted_transactions(&self, fetch_offset: i64, upper_bound: i64) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = self
            .aborted
            .iter()
            .filter(|a| a.last_offset >= fetch_offset && a.first_offset < upper_bound)
            .map(|a| (a.producer_id, a.first_offset))
            .collect();
        out.sort_by_key(|&(pid, first)| (first, pid));
        out
    }

    /// Retention moved the log start offset: aborted transactions wholly before it go.
    pub fn truncate_before(&mut self, log_start_offset: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_transactions_lso_is_the_high_watermark() {
        let mut p = PartitionTxns::new();
        p.advance_high_watermark(10);
        assert_eq!(p.last_stable_offset(), 10);
        assert_eq!(p.first_unstable_offset(), None);
    }

    #[test]
    fn open_transaction_holds_the_lso_until_its_marker_is_replicated() {
        let mut p = PartitionTxns::new();
        p.append(1, 0, 5).unwrap();
        p.append(1, 0, 8).unwrap(); // joins, first offset stays 5
        p.advance_high_watermark(10);
        assert_eq!(p.last_stable_offset(), 5);
        let ended = p.marker(1, 0, TxnResult::Commit, 10).unwrap().unwrap();
        assert_eq!(ended.first_offset, 5);
        // The marker is not below the high watermark yet.
        assert_eq!(p.last_stable_offset(), 5);
        p.advance_high_watermark(11);
        assert_eq!(p.last_stable_offset(), 11);
        assert!(p.aborted_transactions(0, 11).is_empty());
    }

    #[test]
    fn interleaved_transactions_and_aborted_list() {
        let mut p = PartitionTxns::new();
        // offsets: 0 A, 1 B, 2 A, 3 C(non-txn), 4 abort(A), 5 B, 6 commit(B), 7 D, 8 abort(D)
        p.append(100, 0, 0).unwrap();
        p.append(200, 0, 1).unwrap();
        p.append(100, 0, 2).unwrap();
        p.advance_high_watermark(4);
        assert_eq!(p.last_stable_offset(), 0);
        p.marker(100, 0, TxnResult::Abort, 4).unwrap();
        p.advance_high_watermark(5);
        assert_eq!(p.last_stable_offset(), 1, "B is still open");
        p.append(200, 0, 5).unwrap();
        p.marker(200, 0, TxnResult::Commit, 6).unwrap();
        p.append(300, 0, 7).unwrap();
        p.advance_high_watermark(8);
        assert_eq!(p.last_stable_offset(), 7);
        p.marker(300, 0, TxnResult::Abort, 8).unwrap();
        p.advance_high_watermark(9);
        assert_eq!(p.last_stable_offset(), 9);
        assert_eq!(p.aborted_transactions(0, 9), vec![(100, 0), (300, 7)]);
        // A fetch from 5 does not see A (ended at 4); a fetch up to 7 does not see D.
        assert_eq!(p.aborted_transactions(5, 9), vec![(300, 7)]);
        assert_eq!(p.aborted_transactions(0, 7), vec![(100, 0)]);
        assert_eq!(p.aborted_transactions(4, 5), vec![(100, 0)]);
    }

    #[test]
    fn zombie_batches_and_markers_are_fenced() {
        let mut p = PartitionTxns::new();
        p.append(1, 3, 0).unwrap();
        // KIP-890: the marker carries the bumped epoch.
        p.marker(1, 4, TxnResult::Commit, 1).unwrap();
        assert_eq!(p.append(1, 3, 2), Err(INVALID_PRODUCER_EPOCH));
        assert_eq!(
            p.marker(1, 3, TxnResult::Abort, 2),
            Err(INVALID_PRODUCER_EPOCH)
        );
        p.append(1, 4, 2).unwrap();
        assert_eq!(p.append(1, 5, 3), Err(INVALID_TXN_STATE));
    }

    #[test]
    fn repeated_marker_changes_nothing() {
        let mut p = PartitionTxns::new();
        p.append(1, 0, 0).unwrap();
        p.marker(1, 0, TxnResult::Abort, 1).unwrap();
        // Recovery writes the marker again.
        assert_eq!(p.marker(1, 0, TxnResult::Abort, 2), Ok(None));
        p.advance_high_watermark(3);
        assert_eq!(p.aborted_transactions(0, 3), vec![(1, 0)]);
        assert_eq!(p.last_stable_offset(), 3);
    }

    #[test]
    fn retention_drops_old_aborted_transactions() {
        let mut p = PartitionTxns::new();
        p.append(1, 0, 0).unwrap();
        p.marker(1, 0, TxnResult::Abort, 1).unwrap();
        p.append(2, 0, 2).unwrap();
        p.marker(2, 0, TxnResult::Abort, 5).unwrap();
        p.advance_high_watermark(6);
        p.truncate_before(3);
        assert_eq!(p.aborted_transactions(0, 6), vec![(2, 2)]);
    }

    #[test]
    fn high_watermark_never_moves_back() {
        let mut p = PartitionTxns::new();
        p.advance_high_watermark(5);
        p.advance_high_watermark(3);
        assert_eq!(p.high_watermark(), 5);
    }
}
