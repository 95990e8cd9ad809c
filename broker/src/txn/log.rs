//! What of a transactional id is persisted (Kafka's `__transaction_state` value; here a
//! value written through the Raft log of the coordinator's store group, by the wiring
//! step), its encoding and its checks.
//!
//! Rules:
//! - One record per change of a transactional id, holding its whole metadata; a later
//!   record replaces the earlier; a Dead record is the tombstone that removes the id.
//! - PrepareEpochFence is never persisted (it is transient, see `state.rs`).
//! - [`decode`] checks everything, because the value comes from disk: the version, a
//!   known state, a non-empty transactional id, producer id and epoch at or above 0, a
//!   positive timeout, partitions and groups only in Ongoing and Prepare*, non-negative
//!   partition indexes and no duplicates, a next producer id only in Prepare*, a start
//!   time for an Ongoing transaction. Errors, never panics.
//! - Encoding: one version byte, then postcard (varints).

use serde::{Deserialize, Serialize};

use super::metadata::{TxnMetadata, NO_PRODUCER_ID};
use super::state::TxnState;
use super::TxnPartition;

/// The encoding's version byte.
pub const VERSION: u8 = 1;

/// The persisted form of [`TxnMetadata`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TxnRecord {
    transactional_id: String,
    producer_id: i64,
    previous_producer_id: i64,
    next_producer_id: i64,
    producer_epoch: i16,
    last_producer_epoch: i16,
    timeout_ms: i32,
    state: u8,
    partitions: Vec<TxnPartition>,
    groups: Vec<String>,
    txn_start_ms: i64,
    last_update_ms: i64,
    epoch_bump_on_end: bool,
}

/// A persisted value that cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogError(pub String);

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transaction state: {}", self.0)
    }
}

impl std::error::Error for LogError {}

fn err<T>(what: String) -> Result<T, LogError> {
    Err(LogError(what))
}

/// The bytes written through Raft.
pub fn encode(m: &TxnMetadata) -> Vec<u8> {
    let record = TxnRecord {
        transactional_id: m.transactional_id.clone(),
        producer_id: m.producer_id,
        previous_producer_id: m.previous_producer_id,
        next_producer_id: m.next_producer_id,
        producer_epoch: m.producer_epoch,
        last_producer_epoch: m.last_producer_epoch,
        timeout_ms: m.timeout_ms,
        state: m.state.id(),
        partitions: m.partitions.iter().cloned().collect(),
        groups: m.groups.iter().cloned().collect(),
        txn_start_ms: m.txn_start_ms,
        last_update_ms: m.last_update_ms,
        epoch_bump_on_end: m.epoch_bump_on_end,
    };
    let mut out = vec![VERSION];
    // Serializing strings, integers and vectors into a Vec cannot fail.
    if let Ok(body) = postcard::to_stdvec(&record) {
        out.extend_from_slice(&body);
    }
    out
}

/// Reads and checks the bytes [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<TxnMetadata, LogError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| LogError("empty value".into()))?;
    if version != VERSION {
        return err(format!("unknown version {version}"));
    }
    let (r, rest): (TxnRecord, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| LogError(format!("undecodable: {e}")))?;
    if !rest.is_empty() {
        return err(format!("{} trailing bytes", rest.len()));
    }
    let Some(state) = TxnState::from_id(r.state) else {
        return err(format!("unknown state {}", r.state));
    };
    if state == TxnState::PrepareEpochFence {
        return err("PrepareEpochFence is never persisted".into());
    }
    if r.transactional_id.is_empty() {
        return err("empty transactional id".into());
    }
    if r.producer_id < 0 || r.producer_epoch < 0 {
        return err(format!(
            "producer id {} epoch {}",
            r.producer_id, r.producer_epoch
        ));
    }
    if r.previous_producer_id < NO_PRODUCER_ID
        || r.next_producer_id < NO_PRODUCER_ID
        || r.last_producer_epoch < -1
    {
        return err("negative previous or next producer id or epoch".into());
    }
    if r.timeout_ms <= 0 {
        return err(format!("timeout {} ms", r.timeout_ms));
    }
    let in_txn = matches!(
        state,
        TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
    );
    if !in_txn && (!r.partitions.is_empty() || !r.groups.is_empty()) {
        return err(format!("partitions or groups in state {state}"));
    }
    if r.next_producer_id != NO_PRODUCER_ID && !state.is_prepare() {
        return err(format!("next producer id in state {state}"));
    }
    if state == TxnState::Ongoing && r.txn_start_ms < 0 {
        return err("Ongoing transaction without a start time".into());
    }
    if r.txn_start_ms < -1 {
        return err(format!("start time {}", r.txn_start_ms));
    }
    if let Some(p) = r
        .partitions
        .iter()
        .find(|p| p.partition < 0 || p.topic.is_empty())
    {
        return err(format!("partition {}-{}", p.topic, p.partition));
    }
    let partitions: std::collections::BTreeSet<TxnPartition> =
        r.partitions.iter().cloned().collect();
    let groups: std::collections::BTreeSet<String> = r.groups.iter().cloned().collect();
    if partitions.len() != r.partitions.len() || groups.len() != r.groups.len() {
        return err("duplicate partitions or groups".into());
    }
    Ok(TxnMetadata {
        transactional_id: r.transactional_id,
        producer_id: r.producer_id,
        previous_producer_id: r.previous_producer_id,
        next_producer_id: r.next_producer_id,
        producer_epoch: r.producer_epoch,
        last_producer_epoch: r.last_producer_epoch,
        timeout_ms: r.timeout_ms,
        state,
        partitions,
        groups,
        txn_start_ms: r.txn_start_ms,
        last_update_ms: r.last_update_ms,
        epoch_bump_on_end: r.epoch_bump_on_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        let mut m = TxnMetadata::new("app-1", 7, 60_000, 1_000);
        m.producer_epoch = 3;
        m.last_producer_epoch = 2;
        m.state = TxnState::Ongoing;
        m.txn_start_ms = 1_000;
        m.partitions.insert(TxnPartition::new("out", 0));
        m.partitions.insert(TxnPartition::new("out", 5));
        m.groups.insert("etl".into());
        m
    }

    fn with_record(f: impl FnOnce(&mut TxnRecord)) -> Vec<u8> {
        let bytes = encode(&ongoing());
        let (mut r, _): (TxnRecord, &[u8]) = postcard::take_from_bytes(&bytes[1..]).unwrap();
        f(&mut r);
        let mut out = vec![VERSION];
        out.extend(postcard::to_stdvec(&r).unwrap());
        out
    }

    #[test]
    fn round_trips_every_persisted_state() {
        for state in TxnState::ALL {
            if state == TxnState::PrepareEpochFence {
                continue;
            }
            let mut m = ongoing();
            m.state = state;
            if !matches!(
                state,
                TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
            ) {
                m.partitions.clear();
                m.groups.clear();
            }
            if state.is_prepare() {
                m.next_producer_id = 99;
            }
            assert_eq!(decode(&encode(&m)), Ok(m));
        }
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let good = encode(&ongoing());
        assert!(decode(&[]).is_err());
        assert!(decode(&[2]).is_err());
        assert!(decode(&[VERSION]).is_err());
        let mut long = good.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        // Every truncation and every single-byte corruption decodes or errs, never panics.
        for n in 0..good.len() {
            let _ = decode(&good[..n]);
            for b in [0u8, 0x7f, 0x80, 0xff] {
                let mut c = good.clone();
                c[n] = b;
                let _ = decode(&c);
            }
        }
    }

    #[test]
    fn invalid_fields_are_refused() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("state", with_record(|r| r.state = 9)),
            ("fence", with_record(|r| r.state = 7)),
            ("id", with_record(|r| r.transactional_id.clear())),
            ("pid", with_record(|r| r.producer_id = -1)),
            ("epoch", with_record(|r| r.producer_epoch = -1)),
            ("timeout", with_record(|r| r.timeout_ms = 0)),
            ("partitions when Empty", with_record(|r| r.state = 0)),
            (
                "negative partition",
                with_record(|r| r.partitions[0].partition = -1),
            ),
            (
                "duplicate",
                with_record(|r| r.partitions[1] = r.partitions[0].clone()),
            ),
            (
                "next pid when Ongoing",
                with_record(|r| r.next_producer_id = 5),
            ),
            ("no start", with_record(|r| r.txn_start_ms = -1)),
        ];
        for (what, bytes) in cases {
            assert!(decode(&bytes).is_err(), "{what} accepted");
        }
    }
}
