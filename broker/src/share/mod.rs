//! Share groups (KIP-932, "Queues for Kafka"): the pure core, apart from any I/O.
//!
//! - `assignor.rs`: which members fetch from which partitions (shared when there are
//!   more members than partitions).
//! - `config.rs`: the `share.*` group configs and `group.share.*` broker bounds.
//! - `partition.rs`: one share-partition: acquire, acknowledge, lock expiry, delivery
//!   counts, the start offset (SPSO) and the in-flight cap.
//! - `state.rs`: what of a share-partition is persisted (through Raft, by the wiring
//!   step), its encoding and its restore.
//!
//! Nothing here reads a clock, a socket or a disk: time is passed in, state goes out as
//! values. The ShareGroupHeartbeat / ShareGroupDescribe / ShareFetch / ShareAcknowledge
//! handlers, share sessions and persistence through Raft are wired onto it in a later step,
//! which also owns: serializing the operations on one share-partition, reading the log from
//! `next_fetch_offset` (leaving control batches out of the fetched batches, so they are
//! archived as gaps), a timer on `next_lock_deadline`, persisting `to_persisted` after
//! acquisitions and acknowledgements (group commit), member epochs and session timeouts,
//! `read_committed` (read up to the last stable offset, archive aborted records),
//! `by_duration` offset lookups, and the dead-letter topic fed by `take_archived`.

pub mod admin;
pub mod assignor;
pub mod config;
pub mod dlq;
pub mod group;
pub mod manager;
pub mod partition;
pub mod sessions;
pub mod state;

#[cfg(test)]
mod partition_tests;
