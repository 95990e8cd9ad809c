//! phxq store groups: partitions replicated by openraft Raft groups, stored in redb.
//!
//! A node (one broker process) opens one redb database and hosts many Raft groups. Each
//! group ([`StoreGroup`]) holds many topic-partitions and a small key-value space; group 0
//! is the metadata group (topics, placement, configs), the others are store groups.
//! Every change is a [`Command`] proposed through the group's Raft log; the group's state
//! machine applies it deterministically (assigning dense offsets, checking idempotent
//! producer sequences) and answers with a [`CommandResponse`].
//!
//! Kafka is seen only as bytes: a record batch plus the few header fields the state machine
//! must read (record count, timestamps, producer id/epoch/sequence), via
//! `phxq_protocol::batch`.

pub mod api;
mod apply;
mod codec;
#[doc(hidden)]
pub mod fault;
mod group;
mod log_store;
pub mod network;
mod node;
mod schema;
mod state_machine;
mod types;
mod writer;

pub use api::*;
