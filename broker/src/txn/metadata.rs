//! What the coordinator knows of one transactional id (Kafka's `TransactionMetadata`):
//! its producer id and epoch, the previous ones (KIP-360 retries, KIP-890 rotation), its
//! timeout, its state, the partitions and groups of the transaction in progress and its
//! timestamps.
//!
//! Rules:
//! - A producer epoch is *exhausted* at `i16::MAX - 1` (Kafka's `isEpochExhausted`): the
//!   next bump allocates a new producer id with epoch 0 instead.
//! - `partitions` and `groups` are empty unless the state is Ongoing or Prepare*.
//! - `txn_start_ms` is set when a transaction begins (first partition or group added) and
//!   kept until the next one begins; -1 before the first.
//! - `next_producer_id` is set only between a KIP-890 EndTxn whose epoch bump needed a
//!   new producer id and the completion of its markers.

use std::collections::BTreeSet;

use super::state::TxnState;
use super::TxnPartition;

/// Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Whether a bump of `epoch` must rotate the producer id.
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation, or -1.
    pub previous_producer_id: i64,
    /// The producer id the transaction completing now hands over to (KIP-890), or -1.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump a client asked for (KIP-360 retries; KIP-890 EndTxn
    /// retries), or -1.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// Consumer groups whose offsets are committed in the transaction (AddOffsetsToTxn):
    /// Kafka's `__consumer_offsets` partition of the group, here the group's id; its
    /// coordinator's store group gets the marker.
    pub groups: BTreeSet<String>,
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
    /// Whether the transaction in progress was ended (or will be) with KIP-890's epoch bump
    /// (EndTxn v5+).
    pub epoch_bump_on_end: bool,
}

impl TxnMetadata {
    /// A transactional id seen for the first time: epoch -1, bumped to 0 by its
    /// InitProducerId.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            txn_start_ms: -1,
            last_update_ms: now,
            epoch_bump_on_end: false,
        }
    }

    pub fn has_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    /// The Ongoing transaction passed its timeout at `now`.
    pub fn is_timed_out(&self, now: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.txn_start_ms >= 0
            && self.txn_start_ms.saturating_add(i64::from(self.timeout_ms)) < now
    }

    /// Partitions and groups already in the transaction.
    pub fn contains_all(&self, partitions: &[TxnPartition]) -> bool {
        partitions.iter().all(|p| self.partitions.contains(p))
    }
}
