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
//!
//! # Write path and durability
//!
//! One writer thread per node (`store::writer`) owns every redb write transaction. It takes all
//! queued work of all groups — raft log appends, votes, purges, state-machine applies —
//! and commits it at once: log appends and votes with `Durability::Immediate` (fsync)
//! before their openraft `IOFlushed` callbacks fire, applies with `Durability::None`
//! ahead of the fsync so their answers go out without waiting for it. An apply writes its
//! data and the group's applied log id in the same transaction; redb makes every earlier
//! non-durable commit durable with the next durable one, so after a crash the database is
//! a consistent prefix of the commit sequence, the applied id it reports matches the data,
//! and openraft re-applies the rest from the durable raft log.
//!
//! Record batch bytes are written once, to segment files (`store::segments`), when their log
//! entry is appended; the raft log row and, after apply, the partition's batch index hold
//! only their location. The segment file is fdatasync'd before the transaction that refers
//! to it commits. Fetches read the bytes back with positional reads and patch in the base
//! offset the state machine assigned.
//!
//! Reads (`StoreGroup::read`, offsets, timestamps, kv) use redb read transactions and
//! never go through openraft. A failed write (e.g. disk full) fails every later proposal
//! with `ReplicationError::Storage` until the node is reopened; nothing acknowledged is
//! lost. A failed read is `ReplicationError::Storage` too, never "no data".
//!
//! # Layers
//!
//! Imports run one way, bottom to top (`tests/layering.rs` checks it):
//! `types` (vocabulary) <- `store` (redb, segment files, group-commit writer) <-
//! `partition` (Kafka log semantics and reads) <- `raft` (log store, state machine,
//! network, snapshots) <- `node` (a node and its groups) <- `api` (the public handles).
//! See `docs/architecture.md` in the repository.

mod api;
mod node;
mod partition;
mod raft;
mod store;
mod types;

pub use api::{ReplicaNode, StoreGroup};
pub use node::config::NodeConfig;

/// Log compaction's pure rules (which range a pass cleans, which records survive).
pub mod compaction {
    pub use crate::partition::compaction::*;
    pub use crate::partition::retention::BatchSummary;
}
pub use types::{
    AppendBatch, AppendError, Appended, BatchReplacement, Command, CommandResponse, Elections,
    GroupId, GroupStatus, IndexedBatch, NodeId, PartitionId, PartitionOffsets, ReadLimit,
    ReadResult, ReplicaProgress, ReplicationError, RetentionCut, RetentionPolicy, StoredBatch,
    WriterCounters, SYNC_BOUNDS_US,
};

/// Fault injection for tests: a disk that fails on demand.
#[doc(hidden)]
pub mod fault {
    pub use crate::store::fault::DiskFault;
}

/// The messages between nodes and the transport trait a cluster plugs in.
pub mod network {
    pub use crate::raft::rpc::{
        BoxFuture, PeerService, RaftRpc, RaftRpcReply, RpcService, SnapshotChunk, Transport,
    };
}

/// The inter-broker TCP transport, and the [`tcp::PeerSecurity`] that upgrades its
/// connections.
pub mod tcp {
    pub use crate::raft::tcp::{
        decode_request_frame, encode_request_frame, fetch_status, plaintext, serve, BoxedStream,
        PeerSecurity, PeerStream, Plaintext, TcpTransport, UPGRADE_TIMEOUT,
    };
}
