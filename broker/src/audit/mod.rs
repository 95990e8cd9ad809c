//! PhxQueue's real-time reconciliation: the broker proves that a consumer group skipped
//! nothing it did not say it skipped, and that what it was given is exactly the log.
//!
//! - `deliveries.rs`, on every partition leader: what each client was given, recorded
//!   before the Fetch answer leaves, and the answer to a coordinator's check of a commit.
//! - `reconcile.rs`, on the group coordinator: the group's audit of each partition (skipped
//!   ranges with who and when, rewinds, the chained checksum) and what a commit does to it,
//!   including refusing it in `strict` mode. Stored with the committed offsets in the
//!   group's store group, so it survives coordinator failover.
//! - `chain.rs`: the chained checksum and how an auditor recomputes it from the log;
//!   `ranges.rs`: offset range sets.
//! - `service.rs`: the I/O: recording Fetch answers, and asking a partition's leader (this
//!   broker, or another over the inter-broker transport) to check commits.
//!
//! `phxq group audit` (in `groups/audit_admin.rs`) shows it and verifies the chain.

pub mod chain;
pub mod deliveries;
pub mod ranges;
pub mod reconcile;
pub mod service;

#[cfg(test)]
mod tests;

/// (topic, partition), as everywhere in phxq.
pub type TopicPartition = (String, i32);
