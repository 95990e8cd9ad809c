//! The states of a transactional id (Kafka's `TransactionState`) and the moves between
//! them.
//!
//! Rules:
//! - `Empty`: a producer id and epoch are assigned, no transaction has begun.
//! - `Ongoing`: partitions (or a group's offsets) were added; the transaction runs until
//!   EndTxn or its timeout.
//! - `PrepareCommit` / `PrepareAbort`: the outcome is decided and durable; markers are
//!   being written into every partition of the transaction.
//! - `CompleteCommit` / `CompleteAbort`: all markers are written; a new transaction may
//!   begin.
//! - `PrepareEpochFence`: Kafka's transient state while an InitProducerId (or a timeout)
//!   fences an ongoing transaction's producer before aborting it. It is never persisted;
//!   here the fence and the abort are one step (see `coordinator.rs`), so it appears only
//!   as a name.
//! - `Dead`: the transactional id expired (`transactional.id.expiration.ms`) and is being
//!   removed.
//!
//! Allowed moves (Kafka's `validPreviousStates`): Empty from Empty/Complete*; Ongoing from
//! Empty/Ongoing/Complete*; PrepareCommit from Ongoing; PrepareAbort from Ongoing (and, with
//! KIP-890's epoch bump on abort, from Empty/Complete*); CompleteCommit from PrepareCommit;
//! CompleteAbort from PrepareAbort; Dead from Empty/Complete*.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    PrepareEpochFence,
    Dead,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::PrepareEpochFence,
        TxnState::Dead,
    ];

    /// Kafka's name, as DescribeTransactions and ListTransactions return it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
            TxnState::Dead => "Dead",
        }
    }

    /// The state of a Kafka name (ListTransactions' state filters).
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Kafka's persisted state id (`TransactionState.id`).
    pub fn id(self) -> u8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: u8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Markers are decided but not all written.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// No transaction in progress: a new one may begin.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// Whether `self` may follow `previous` (see the module doc).
    #[cfg(test)]
    pub fn may_follow(self, previous: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty => matches!(previous, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(previous, Empty | Ongoing | CompleteCommit | CompleteAbort),
            PrepareCommit => previous == Ongoing,
            PrepareAbort => matches!(previous, Ongoing | Empty | CompleteCommit | CompleteAbort),
            CompleteCommit => previous == PrepareCommit,
            CompleteAbort => previous == PrepareAbort,
            PrepareEpochFence => previous == Ongoing,
            Dead => matches!(previous, Empty | CompleteCommit | CompleteAbort),
        }
    }
}

impl fmt::Display for TxnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_round_trip() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_name(s.name()), Some(s));
            assert_eq!(TxnState::from_id(s.id()), Some(s));
        }
        assert_eq!(TxnState::from_name("ongoing"), None);
        assert_eq!(TxnState::from_id(8), None);
    }

    #[test]
    fn only_kafkas_moves_are_allowed() {
        use TxnState::*;
        assert!(PrepareCommit.may_follow(Ongoing));
        assert!(!PrepareCommit.may_follow(Empty));
        assert!(!CompleteCommit.may_follow(PrepareAbort));
        assert!(!Ongoing.may_follow(PrepareCommit));
        assert!(Dead.may_follow(CompleteAbort));
        assert!(!Dead.may_follow(Ongoing));
    }
}
