//! The transaction coordinator's table of transactional ids (Kafka's
//! `TransactionCoordinator` and `TransactionStateManager`), as a pure state machine.
//!
//! Every operation checks, then either refuses with a Kafka error code (nothing changes)
//! or returns a [`Step`]: the new metadata, the effects to carry out, and the reply. A
//! step with [`Effect::Persist`] leaves the transactional id *pending*: the wiring writes
//! the metadata through the coordinator's Raft log, then calls [`TxnCoordinator::persisted`]
//! (installs it) or [`TxnCoordinator::persist_failed`] (drops it), and only then replies.
//! Meanwhile every operation on that id gets CONCURRENT_TRANSACTIONS (Kafka's
//! `pendingState`). [`Effect::WriteMarkers`] comes after the persist: write the markers
//! into every listed partition and group, then call [`TxnCoordinator::markers_written`].
//!
//! Rules (Kafka's):
//! - Every operation answers COORDINATOR_LOAD_IN_PROGRESS while the table is loading, and
//!   INVALID_REQUEST for an empty transactional id.
//! - **InitProducerId**: INVALID_TRANSACTION_TIMEOUT unless `0 < timeout <=
//!   transaction.max.timeout.ms`. A new transactional id gets a new producer id (from the
//!   allocator) with epoch 0. An existing one in Empty/Complete* gets its epoch bumped (the
//!   old producer is fenced); if the epoch is exhausted, a new producer id with epoch 0.
//!   In Prepare* the answer is CONCURRENT_TRANSACTIONS (retry after the markers). In
//!   Ongoing, the running transaction is fenced and aborted first: the epoch is bumped,
//!   the state goes to PrepareAbort (Kafka passes through PrepareEpochFence), markers are
//!   written and the client gets CONCURRENT_TRANSACTIONS; its retry then bumps again.
//!   KIP-360: a client passing its producer id and epoch is PRODUCER_FENCED unless the id
//!   is current (or the previous one with an exhausted epoch, or the id is brand new); the
//!   epoch is bumped only if it is the current one; if it is the one before the last bump,
//!   this is a retry and the current id and epoch are returned; otherwise PRODUCER_FENCED.
//! - **AddPartitionsToTxn / AddOffsetsToTxn**: unknown transactional id or other producer
//!   id: INVALID_PRODUCER_ID_MAPPING; other epoch: PRODUCER_FENCED; pending or Prepare*:
//!   CONCURRENT_TRANSACTIONS; all already in an Ongoing transaction: success with no write;
//!   otherwise the state becomes Ongoing (a transaction starts at `now` if none was
//!   running) with the partitions (or the group) added. Kafka maps a group to its
//!   `__consumer_offsets` partition; phxq keeps the group id and marks the group's store
//!   group.
//! - **Verify only** (AddPartitionsToTxn v4+, KIP-890 part 1, sent by partition leaders):
//!   the same producer checks and nothing written; per partition NONE if it is in the
//!   transaction, INVALID_TXN_STATE if not.
//! - **EndTxn** (v4-): other producer id: INVALID_PRODUCER_ID_MAPPING; other epoch:
//!   PRODUCER_FENCED; Ongoing goes to PrepareCommit/PrepareAbort with markers to write; a
//!   retry of an end already decided gets CONCURRENT_TRANSACTIONS (Prepare*) or success
//!   (Complete*); the opposite outcome, or an end in Empty, is INVALID_TXN_STATE.
//! - **EndTxn with epoch bump** (v5+, KIP-890 part 2): the prepare bumps the epoch (a new
//!   producer id, handed over when the markers complete, if the epoch is exhausted) and
//!   the markers carry the new epoch, so a zombie of the ended transaction is fenced by the
//!   partitions themselves. The reply carries the new id and epoch. A retry with the
//!   pre-bump epoch (or pre-rotation id) is recognised. An abort with nothing begun (Empty,
//!   Complete*) is allowed and bumps the epoch.
//! - **Markers written**: Prepare* goes to Complete*; partitions and groups are cleared.
//! - **Timeouts** ([`TxnCoordinator::expire`]): an Ongoing transaction older than its
//!   timeout is aborted with an epoch bump (the producer is fenced), as Kafka's
//!   `abortTimedOutTransactions`.
//! - **Expiration** ([`TxnCoordinator::expire_ids`]): an id in Empty/Complete* not updated
//!   for `transactional.id.expiration.ms` goes to Dead and is removed once persisted.
//! - **Recovery**: after loading, every id in Prepare* must get its markers written again
//!   ([`TxnCoordinator::loaded`] lists them); markers are idempotent.
//! - **DescribeTransactions**: TRANSACTIONAL_ID_NOT_FOUND for an unknown or Dead id.
//!   **ListTransactions** (KIP-664, KIP-994): filters by states (unknown names reported
//!   back), producer ids and a minimum running duration; Dead ids are never listed.
//!
//! TxnOffsetCommit is not here: the group coordinator keeps a transaction's offsets
//! pending per producer id and applies or drops them on the group's marker.

use std::collections::{BTreeMap, BTreeSet};

use super::errors::*;
use super::metadata::{is_epoch_exhausted, TxnMetadata, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
use super::state::TxnState;
use super::{TxnConfig, TxnPartition};

/// A producer id and its epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

/// Commit or abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnResult {
    Commit,
    Abort,
}

impl TxnResult {
    fn prepare_state(self) -> TxnState {
        match self {
            TxnResult::Commit => TxnState::PrepareCommit,
            TxnResult::Abort => TxnState::PrepareAbort,
        }
    }

    fn complete_state(self) -> TxnState {
        match self {
            TxnResult::Commit => TxnState::CompleteCommit,
            TxnResult::Abort => TxnState::CompleteAbort,
        }
    }
}

/// The markers one decided transaction needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Markers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TxnResult,
    pub partitions: Vec<TxnPartition>,
    /// Groups whose pending transactional offsets the marker applies or drops.
    pub groups: Vec<String>,
}

/// What the wiring must do for a step, in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Write the step's metadata through the Raft log, then `persisted`/`persist_failed`.
    Persist,
    /// After the persist: write these markers, then `markers_written`.
    WriteMarkers(Markers),
}

/// The outcome of an accepted operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step<R> {
    pub metadata: TxnMetadata,
    pub effects: Vec<Effect>,
    /// What to answer the client once the effects before it are done (after `Persist`).
    pub reply: R,
}

/// DescribeTransactions' view of one transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub timeout_ms: i32,
    pub txn_start_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<TxnPartition>,
    pub groups: Vec<String>,
}

/// ListTransactions' filters; empty sets and a negative duration filter nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListFilter {
    pub states: Vec<String>,
    pub producer_ids: Vec<i64>,
    /// KIP-994: only transactions running longer than this (ms); -1 for all.
    pub min_duration_ms: i64,
}

impl Default for ListFilter {
    fn default() -> ListFilter {
        ListFilter {
            states: Vec::new(),
            producer_ids: Vec::new(),
            min_duration_ms: -1,
        }
    }
}

/// One listed transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub transactions: Vec<ListedTxn>,
    pub unknown_state_filters: Vec<String>,
}

/// The table of one coordinator (one store group's share of the transactional ids).
#[derive(Clone, Debug)]
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TxnMetadata>,
    pending: BTreeMap<String, TxnMetadata>,
    loading: bool,
}

impl TxnCoordinator {
    /// An empty table, ready.
    pub fn new(config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            config,
            txns: BTreeMap::new(),
            pending: BTreeMap::new(),
            loading: false,
        }
    }

    /// A table being loaded from the log: every operation answers
    /// COORDINATOR_LOAD_IN_PROGRESS until [`TxnCoordinator::loaded`].
    pub fn loading(config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            loading: true,
            ..TxnCoordinator::new(config)
        }
    }

    /// One record read back from the log; a later record of an id replaces the earlier,
    /// a Dead one removes it.
    pub fn restore(&mut self, metadata: TxnMetadata) {
        if metadata.state == TxnState::Dead {
            self.txns.remove(&metadata.transactional_id);
        } else {
            self.txns
                .insert(metadata.transactional_id.clone(), metadata);
        }
    }

    /// Loading is done: returns the markers to write again (every id in Prepare*).
    pub fn loaded(&mut self) -> Vec<Markers> {
        self.loading = false;
        self.pending_markers()
    }

    /// The markers of every transaction decided but not completed.
    pub fn pending_markers(&self) -> Vec<Markers> {
        self.txns
            .values()
            .filter(|m| m.state.is_prepare())
            .map(markers_of)
            .collect()
    }

    #[cfg(test)]
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    pub fn is_pending(&self, transactional_id: &str) -> bool {
        self.pending.contains_key(transactional_id)
    }

    /// The write of `transactional_id`'s pending step succeeded: install it.
    pub fn persisted(&mut self, transactional_id: &str) -> Option<TxnMetadata> {
        let m = self.pending.remove(transactional_id)?;
        if m.state == TxnState::Dead {
            self.txns.remove(transactional_id);
        } else {
            self.txns.insert(transactional_id.to_string(), m.clone());
        }
        Some(m)
    }

    /// The write failed: the step did not happen.
    pub fn persist_failed(&mut self, transactional_id: &str) {
        self.pending.remove(transactional_id);
    }

    fn ready(&self, transactional_id: &str) -> Result<(), i16> {
        if self.loading {
            return Err(COORDINATOR_LOAD_IN_PROGRESS);
        }
        if transactional_id.is_empty() {
            return Err(INVALID_REQUEST);
        }
        Ok(())
    }

    fn step<R>(&mut self, metadata: TxnMetadata, markers: bool, reply: R) -> Step<R> {
        let mut effects = vec![Effect::Persist];
        if markers {
            effects.push(Effect::WriteMarkers(markers_of(&metadata)));
        }
        self.pending
            .insert(metadata.transactional_id.clone(), metadata.clone());
        Step {
            metadata,
            effects,
            reply,
        }
    }

    /// InitProducerId with a transactional id. `expected` is the client's producer id and
    /// epoch (KIP-360, InitProducerId v3+), if it sent them (not -1).
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        now: i64,
        allocate: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Result<Step<Result<ProducerIdAndEpoch, i16>>, i16> {
        self.ready(transactional_id)?;
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(INVALID_TRANSACTION_TIMEOUT);
        }
        if self.is_pending(transactional_id) {
            return Err(CONCURRENT_TRANSACTIONS);
        }
        let current = match self.txns.get(transactional_id) {
            Some(m) => m.clone(),
            None => TxnMetadata::new(transactional_id, allocate()?, timeout_ms, now),
        };
        if let Some(e) = expected {
            let valid = current.producer_epoch == NO_PRODUCER_EPOCH
                || e.producer_id == current.producer_id
                || (e.producer_id == current.previous_producer_id && is_epoch_exhausted(e.epoch));
            if !valid {
                return Err(PRODUCER_FENCED);
            }
        }
        let mut next = current.clone();
        next.last_update_ms = now;
        match current.state {
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::PrepareEpochFence
            | TxnState::Dead => Err(CONCURRENT_TRANSACTIONS),
            TxnState::Ongoing => {
                // Fence the producer of the running transaction and abort it; the client
                // retries and gets a second bump once the abort is complete.
                next.producer_epoch = next.producer_epoch.saturating_add(1);
                next.last_producer_epoch = NO_PRODUCER_EPOCH;
                next.state = TxnState::PrepareAbort;
                next.epoch_bump_on_end = false;
                Ok(self.step(next, true, Err(CONCURRENT_TRANSACTIONS)))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                if current.has_epoch_exhausted()
                    && expected.is_none_or(|e| e.epoch == current.producer_epoch)
                {
                    next.previous_producer_id = current.producer_id;
                    next.producer_id = allocate()?;
                    next.producer_epoch = 0;
                    next.last_producer_epoch = match expected {
                        Some(_) => current.producer_epoch,
                        None => NO_PRODUCER_EPOCH,
                    };
                } else {
                    let (epoch, last) = match expected {
                        None => (current.producer_epoch + 1, NO_PRODUCER_EPOCH),
                        Some(e)
                            if current.producer_epoch == NO_PRODUCER_EPOCH
                                || e.epoch == current.producer_epoch =>
                        {
                            (current.producer_epoch + 1, current.producer_epoch)
                        }
                        // A retry of a bump whose answer the client did not get.
                        Some(e) if e.epoch == current.last_producer_epoch => {
                            (current.producer_epoch, current.last_producer_epoch)
                        }
                        Some(_) => return Err(PRODUCER_FENCED),
                    };
                    next.producer_epoch = epoch;
                    next.last_producer_epoch = last;
                }
                next.timeout_ms = timeout_ms;
                next.state = TxnState::Empty;
                next.next_producer_id = NO_PRODUCER_ID;
                next.partitions.clear();
                next.groups.clear();
                next.epoch_bump_on_end = false;
                let reply = Ok(ProducerIdAndEpoch {
                    producer_id: next.producer_id,
                    epoch: next.producer_epoch,
                });
                Ok(self.step(next, false, reply))
            }
        }
    }

    /// The producer checks shared by AddPartitionsToTxn, AddOffsetsToTxn and verify-only.
    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&TxnMetadata, i16> {
        self.ready(transactional_id)?;
        let current = self
            .txns
            .get(transactional_id)
            .ok_or(INVALID_PRODUCER_ID_MAPPING)?;
        if current.producer_id != producer_id {
            return Err(INVALID_PRODUCER_ID_MAPPING);
        }
        if current.producer_epoch != producer_epoch {
            return Err(PRODUCER_FENCED);
        }
        if self.is_pending(transactional_id) || current.state.is_prepare() {
            return Err(CONCURRENT_TRANSACTIONS);
        }
        Ok(current)
    }

    fn add(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        now: i64,
        partitions: &[TxnPartition],
        group: Option<&str>,
    ) -> Result<Step<()>, i16> {
        let current = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        if !matches!(
            current.state,
            TxnState::Ongoing
                | TxnState::Empty
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
        ) {
            return Err(INVALID_TXN_STATE);
        }
        let included =
            current.contains_all(partitions) && group.is_none_or(|g| current.groups.contains(g));
        if current.state == TxnState::Ongoing && included {
            return Ok(Step {
                metadata: current.clone(),
                effects: Vec::new(),
                reply: (),
            });
        }
        let mut next = current.clone();
        if next.state != TxnState::Ongoing {
            next.txn_start_ms = now;
            next.partitions.clear();
            next.groups.clear();
        }
        next.state = TxnState::Ongoing;
        next.last_update_ms = now;
        next.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            next.groups.insert(g.to_string());
        }
        Ok(self.step(next, false, ()))
    }

    /// AddPartitionsToTxn from a client (v3-, or a v4+ transaction not marked verify-only),
    /// or from a partition leader on a KIP-890 part 2 producer's behalf.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartition],
        now: i64,
    ) -> Result<Step<()>, i16> {
        self.add(
            transactional_id,
            producer_id,
            producer_epoch,
            now,
            partitions,
            None,
        )
    }

    /// AddOffsetsToTxn: the group's offsets join the transaction.
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
        now: i64,
    ) -> Result<Step<()>, i16> {
        self.add(
            transactional_id,
            producer_id,
            producer_epoch,
            now,
            &[],
            Some(group_id),
        )
    }

    /// AddPartitionsToTxn v4+ verify-only (KIP-890 part 1): per partition, whether it is
    /// in the transaction. Writes nothing.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<Vec<(TxnPartition, i16)>, i16> {
        let current = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        Ok(partitions
            .iter()
            .map(|p| {
                let ok = current.state == TxnState::Ongoing && current.partitions.contains(p);
                (p.clone(), if ok { NONE } else { INVALID_TXN_STATE })
            })
            .collect())
    }

    /// EndTxn. `bump_epoch` is KIP-890 part 2 (EndTxn v5+ from a client that sends it).
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        result: TxnResult,
        bump_epoch: bool,
        now: i64,
        allocate: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Result<Step<ProducerIdAndEpoch>, i16> {
        let ProducerIdAndEpoch {
            producer_id,
            epoch: producer_epoch,
        } = producer;
        self.ready(transactional_id)?;
        let current = self
            .txns
            .get(transactional_id)
            .ok_or(INVALID_PRODUCER_ID_MAPPING)?
            .clone();
        // A KIP-890 retry: the end was decided with a bump the client did not hear of.
        let retry = bump_epoch
            && current.epoch_bump_on_end
            && (current.state.is_prepare()
                || matches!(
                    current.state,
                    TxnState::CompleteCommit | TxnState::CompleteAbort
                ))
            && current.last_producer_epoch != NO_PRODUCER_EPOCH
            && producer_epoch == current.last_producer_epoch
            && (producer_id == current.producer_id || producer_id == current.previous_producer_id);
        if producer_id != current.producer_id && !retry {
            return Err(INVALID_PRODUCER_ID_MAPPING);
        }
        if producer_epoch != current.producer_epoch && !retry {
            return Err(PRODUCER_FENCED);
        }
        if self.is_pending(transactional_id) {
            return Err(CONCURRENT_TRANSACTIONS);
        }
        let same = |decided: TxnResult| decided == result;
        let current_ids = ProducerIdAndEpoch {
            producer_id: current.producer_id,
            epoch: current.producer_epoch,
        };
        match current.state {
            TxnState::Ongoing => self.prepare(current, result, bump_epoch, now, allocate),
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                let decided = if current.state == TxnState::PrepareCommit {
                    TxnResult::Commit
                } else {
                    TxnResult::Abort
                };
                Err(if same(decided) {
                    CONCURRENT_TRANSACTIONS
                } else {
                    INVALID_TXN_STATE
                })
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let decided = if current.state == TxnState::CompleteCommit {
                    TxnResult::Commit
                } else {
                    TxnResult::Abort
                };
                if bump_epoch && !retry {
                    // KIP-890: a new end with nothing begun; only an abort (it fences).
                    return match result {
                        TxnResult::Abort => self.prepare(current, result, true, now, allocate),
                        TxnResult::Commit => Err(INVALID_TXN_STATE),
                    };
                }
                if same(decided) {
                    Ok(Step {
                        metadata: current,
                        effects: Vec::new(),
                        reply: current_ids,
                    })
                } else {
                    Err(INVALID_TXN_STATE)
                }
            }
            TxnState::Empty if bump_epoch && result == TxnResult::Abort => {
                self.prepare(current, result, true, now, allocate)
            }
            TxnState::Empty | TxnState::PrepareEpochFence | TxnState::Dead => {
                Err(INVALID_TXN_STATE)
            }
        }
    }

    fn prepare(
        &mut self,
        current: TxnMetadata,
        result: TxnResult,
        bump_epoch: bool,
        now: i64,
        allocate: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Result<Step<ProducerIdAndEpoch>, i16> {
        let mut next = current;
        next.state = result.prepare_state();
        next.last_update_ms = now;
        next.epoch_bump_on_end = bump_epoch;
        let mut reply = ProducerIdAndEpoch {
            producer_id: next.producer_id,
            epoch: next.producer_epoch,
        };
        if bump_epoch {
            next.last_producer_epoch = next.producer_epoch;
            if next.has_epoch_exhausted() {
                next.next_producer_id = allocate()?;
                reply = ProducerIdAndEpoch {
                    producer_id: next.next_producer_id,
                    epoch: 0,
                };
            } else {
                next.producer_epoch += 1;
                reply.epoch = next.producer_epoch;
            }
        }
        Ok(self.step(next, true, reply))
    }

    /// Every marker of the transaction decided for `transactional_id` is written:
    /// Prepare* becomes Complete*.
    pub fn markers_written(&mut self, transactional_id: &str, now: i64) -> Result<Step<()>, i16> {
        if self.is_pending(transactional_id) {
            return Err(CONCURRENT_TRANSACTIONS);
        }
        let current = self
            .txns
            .get(transactional_id)
            .ok_or(TRANSACTIONAL_ID_NOT_FOUND)?;
        let result = match current.state {
            TxnState::PrepareCommit => TxnResult::Commit,
            TxnState::PrepareAbort => TxnResult::Abort,
            _ => return Err(INVALID_TXN_STATE),
        };
        let mut next = current.clone();
        next.state = result.complete_state();
        next.last_update_ms = now;
        next.partitions.clear();
        next.groups.clear();
        if next.next_producer_id != NO_PRODUCER_ID {
            next.previous_producer_id = next.producer_id;
            next.producer_id = next.next_producer_id;
            next.next_producer_id = NO_PRODUCER_ID;
            next.last_producer_epoch = next.producer_epoch;
            next.producer_epoch = 0;
        }
        Ok(self.step(next, false, ()))
    }

    /// Ongoing transactions past their timeout at `now`: each is fenced and aborted.
    pub fn expire(&mut self, now: i64) -> Vec<Step<()>> {
        if self.loading {
            return Vec::new();
        }
        let timed_out: Vec<TxnMetadata> = self
            .txns
            .values()
            .filter(|m| m.is_timed_out(now) && !self.pending.contains_key(&m.transactional_id))
            .cloned()
            .collect();
        timed_out
            .into_iter()
            .map(|mut next| {
                next.producer_epoch = next.producer_epoch.saturating_add(1);
                next.last_producer_epoch = NO_PRODUCER_EPOCH;
                next.state = TxnState::PrepareAbort;
                next.epoch_bump_on_end = false;
                next.last_update_ms = now;
                self.step(next, true, ())
            })
            .collect()
    }

    /// Idle transactional ids not updated for `transactional.id.expiration.ms`: each goes
    /// to Dead (a tombstone to persist) and is removed once persisted.
    pub fn expire_ids(&mut self, now: i64) -> Vec<Step<()>> {
        if self.loading {
            return Vec::new();
        }
        let expiration = self.config.id_expiration_ms;
        let idle: Vec<TxnMetadata> = self
            .txns
            .values()
            .filter(|m| {
                m.state.is_idle()
                    && m.last_update_ms <= now.saturating_sub(expiration)
                    && !self.pending.contains_key(&m.transactional_id)
            })
            .cloned()
            .collect();
        idle.into_iter()
            .map(|mut next| {
                next.state = TxnState::Dead;
                next.last_update_ms = now;
                self.step(next, false, ())
            })
            .collect()
    }

    /// DescribeTransactions for one id.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, i16> {
        if self.loading {
            return Err(COORDINATOR_LOAD_IN_PROGRESS);
        }
        let m = self
            .txns
            .get(transactional_id)
            .filter(|m| m.state != TxnState::Dead)
            .ok_or(TRANSACTIONAL_ID_NOT_FOUND)?;
        Ok(TxnDescription {
            transactional_id: m.transactional_id.clone(),
            state: m.state,
            timeout_ms: m.timeout_ms,
            txn_start_ms: m.txn_start_ms,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            partitions: m.partitions.iter().cloned().collect(),
            groups: m.groups.iter().cloned().collect(),
        })
    }

    /// ListTransactions (KIP-664; KIP-994's duration filter).
    pub fn list(&self, filter: &ListFilter, now: i64) -> Result<Listing, i16> {
        if self.loading {
            return Err(COORDINATOR_LOAD_IN_PROGRESS);
        }
        let mut states = BTreeSet::new();
        let mut unknown = Vec::new();
        for name in &filter.states {
            match TxnState::from_name(name) {
                Some(s) => {
                    states.insert(s);
                }
                None => unknown.push(name.clone()),
            }
        }
        let producer_ids: BTreeSet<i64> = filter.producer_ids.iter().copied().collect();
        let include = |m: &TxnMetadata| {
            m.state != TxnState::Dead
                && (filter.states.is_empty() || states.contains(&m.state))
                && (producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
                && (filter.min_duration_ms < 0
                    || (m.txn_start_ms >= 0
                        && now.saturating_sub(m.txn_start_ms) > filter.min_duration_ms))
        };
        Ok(Listing {
            transactions: self
                .txns
                .values()
                .filter(|m| include(m))
                .map(|m| ListedTxn {
                    transactional_id: m.transactional_id.clone(),
                    producer_id: m.producer_id,
                    state: m.state,
                })
                .collect(),
            unknown_state_filters: unknown,
        })
    }
}

fn markers_of(m: &TxnMetadata) -> Markers {
    Markers {
        transactional_id: m.transactional_id.clone(),
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        result: if m.state == TxnState::PrepareCommit {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        },
        partitions: m.partitions.iter().cloned().collect(),
        groups: m.groups.iter().cloned().collect(),
    }
}
