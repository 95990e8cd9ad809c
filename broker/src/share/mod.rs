//! Share groups (KIP-932, "Queues for Kafka"): the pure core, apart from any I/O.
//!
//! - `config.rs`: the `share.*` group configs and `group.share.*` broker bounds.
//!
//! Nothing here reads a clock, a socket or a disk: time is passed in, state goes out as
//! values. The ShareGroupHeartbeat / ShareGroupDescribe / ShareFetch / ShareAcknowledge
//! handlers, share sessions and persistence through Raft are wired onto it in a later step.

pub mod config;
