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
//! handlers, share sessions and persistence through Raft are wired onto it in a later step.

pub mod assignor;
pub mod config;
pub mod partition;
pub mod state;

#[cfg(test)]
mod partition_tests;
