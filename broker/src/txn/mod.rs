//! Kafka transactions (KIP-98, with KIP-360, KIP-588, KIP-664, KIP-890, KIP-994): the pure
//! core of the transaction coordinator and of the partition side, apart from any I/O.
//!
//! - `state.rs`: the states of a transactional id and Kafka's names for them.
//! - `metadata.rs`: what the coordinator knows of one transactional id.
//! - `coordinator.rs`: the coordinator's table of transactional ids and its operations
//!   (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, timeouts, marker
//!   completion, recovery, DescribeTransactions, ListTransactions).
//! - `log.rs`: what of a transactional id is persisted, its encoding and its checks.
//! - `config.rs`: `[transactions]`.
//! - `admin.rs`: `phxq txn list|describe`.
//! - `manager.rs`: the wiring: tables per store group led here, persistence through Raft,
//!   loading after an election, timers, producer id leases.
//! - `markers.rs`: writing a decided transaction's markers into its partitions and groups.
//!
//! The pure files read no clock, socket or disk: time is passed in, producer ids are
//! allocated by a callback, and what must be written (metadata, markers) goes out as
//! effects. The partition side (open transactions, last stable offset, aborted
//! transactions) is applied with the log in `phxq_replication` (`partition/exec.rs`), so
//! every replica has it. TxnOffsetCommit belongs to the group coordinator
//! (`groups/txn_offsets.rs`: pending offsets per producer id, made visible by the group's
//! commit marker).

pub mod admin;
pub mod config;
pub mod coordinator;
#[cfg(test)]
mod coordinator_tests;
pub mod log;
pub mod manager;
pub mod markers;
pub mod metadata;
pub mod state;

/// Kafka error codes of the transaction APIs, by their protocol names. The numbers come
/// from kafka-protocol (`ResponseError::code`, a `const fn`).
pub mod errors {
    use kafka_protocol::ResponseError;

    pub use phxq_protocol::errors::*;

    pub const INVALID_TXN_STATE: i16 = ResponseError::InvalidTxnState.code();
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = ResponseError::InvalidProducerIdMapping.code();
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = ResponseError::InvalidTransactionTimeout.code();
    pub const CONCURRENT_TRANSACTIONS: i16 = ResponseError::ConcurrentTransactions.code();
    pub const PRODUCER_FENCED: i16 = ResponseError::ProducerFenced.code();
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = ResponseError::TransactionalIdNotFound.code();

    /// KIP-588: PRODUCER_FENCED exists from InitProducerId v4, AddPartitionsToTxn v2,
    /// AddOffsetsToTxn v2, EndTxn v2 and TxnOffsetCommit v3; older versions of these APIs
    /// get INVALID_PRODUCER_EPOCH instead. `api_key` and `version` are the request's.
    pub fn for_version(code: i16, api_key: i16, version: i16) -> i16 {
        // ApiKey numbers: InitProducerId 22, AddPartitionsToTxn 24, AddOffsetsToTxn 25,
        // EndTxn 26, TxnOffsetCommit 28.
        let first_with_fenced = match api_key {
            22 => 4,
            24..=26 => 2,
            28 => 3,
            _ => 0,
        };
        if code == PRODUCER_FENCED && version < first_with_fenced {
            INVALID_PRODUCER_EPOCH
        } else {
            code
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn codes_are_kafkas() {
            assert_eq!(INVALID_TXN_STATE, 48);
            assert_eq!(INVALID_PRODUCER_ID_MAPPING, 49);
            assert_eq!(INVALID_TRANSACTION_TIMEOUT, 50);
            assert_eq!(CONCURRENT_TRANSACTIONS, 51);
            assert_eq!(PRODUCER_FENCED, 90);
            assert_eq!(TRANSACTIONAL_ID_NOT_FOUND, 105);
        }

        #[test]
        fn old_versions_get_invalid_producer_epoch_for_fenced() {
            assert_eq!(for_version(PRODUCER_FENCED, 22, 3), INVALID_PRODUCER_EPOCH);
            assert_eq!(for_version(PRODUCER_FENCED, 22, 4), PRODUCER_FENCED);
            assert_eq!(for_version(PRODUCER_FENCED, 26, 1), INVALID_PRODUCER_EPOCH);
            assert_eq!(for_version(PRODUCER_FENCED, 28, 3), PRODUCER_FENCED);
            assert_eq!(
                for_version(CONCURRENT_TRANSACTIONS, 22, 0),
                CONCURRENT_TRANSACTIONS
            );
        }
    }
}

/// One partition of a transaction.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TxnPartition {
    pub topic: String,
    pub partition: i32,
}

impl TxnPartition {
    pub fn new(topic: &str, partition: i32) -> TxnPartition {
        TxnPartition {
            topic: topic.to_string(),
            partition,
        }
    }
}

/// Transaction coordinator settings, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask
    /// for (Kafka: 900000).
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: a transactional id with no transaction in progress
    /// and no update for this long is removed (Kafka: 604800000, 7 days).
    pub id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> TxnConfig {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
        }
    }
}
