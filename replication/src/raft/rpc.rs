//! The messages between nodes and what carries them: the Raft RPCs of every group of a node
//! (multi-raft: one router per node carrying `(group id, rpc)`, one connection per peer),
//! the [`Transport`] that sends them, and the [`RpcService`] that receives them.
//!
//! Outbound: each group's openraft network (`network`) binds (target node, group) to the
//! node's [`Router`], which hands a [`RaftRpc`] to the node's [`Transport`]. Inbound: a
//! transport (e.g. `tcp`) delivers `(group, RaftRpc)` to the node's [`RpcService`]. A single
//! node uses [`NoPeers`], which refuses every remote peer; the cluster transport plugs in
//! here without a second code path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use redb::Database;
use serde::{Deserialize, Serialize};

use crate::store::segments::Segments;
use crate::types::{
    Command, CommandResponse, GroupId, GroupStatus, NodeId, ReplicationError, SnapshotMeta,
    TypeConfig, Vote,
};

/// A Raft RPC addressed to one group of another node.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum RaftRpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// The leader hands leadership to the receiver (openraft's TransferLeader).
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// A command proposed on a follower, forwarded to the group's leader.
    Forward(Command),
    /// One chunk of a full snapshot (see `snapshot::transfer`): answered by [`RaftRpcReply::SnapshotAck`],
    /// the last one (`done`) by [`RaftRpcReply::Snapshot`] once installed.
    SnapshotChunk(SnapshotChunk),
    /// A request of the broker on one node to the broker on another (not Raft): `service`
    /// names the broker subsystem it is for, `body` is that subsystem's encoding. Answered
    /// by [`RaftRpcReply::Peer`] with what the node's [`PeerService`] returned.
    Peer {
        service: String,
        body: Bytes,
    },
}

/// A piece of a group's state dump, sent in order; `offset` 0 starts a new transfer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SnapshotChunk {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    /// Names one transfer; every chunk of it carries the same id.
    pub snapshot_id: String,
    /// Position of `data` in the dump.
    pub offset: u64,
    pub data: Bytes,
    /// The last chunk: install the dump.
    pub done: bool,
}

/// The answer to a [`RaftRpc`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum RaftRpcReply {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    Forwarded(Result<CommandResponse, ReplicationError>),
    /// A snapshot chunk was stored; the dump has `received` bytes so far.
    SnapshotAck {
        received: u64,
    },
    Peer(Bytes),
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Carries RPCs to other nodes. Errors mean "unreachable": openraft backs off and retries.
pub trait Transport: Send + Sync + 'static {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: RaftRpc,
    ) -> BoxFuture<Result<RaftRpcReply, String>>;
}

/// What a node offers the transports that deliver RPCs to it.
pub trait RpcService: Send + Sync + 'static {
    /// Delivers a Raft RPC from another node to one of this node's groups.
    fn handle_rpc(
        &self,
        group: GroupId,
        rpc: RaftRpc,
    ) -> impl Future<Output = Result<RaftRpcReply, String>> + Send;
    /// The Raft state of every group hosted here (`phxq cluster status`).
    fn status(&self) -> Vec<GroupStatus>;
}

/// What the broker of a node answers [`RaftRpc::Peer`] requests with (set once, with
/// `ReplicaNode::set_peer_service`): `(service, body)` to the answer's body, or why not.
pub type PeerService =
    Arc<dyn Fn(String, Bytes) -> BoxFuture<Result<Bytes, String>> + Send + Sync + 'static>;

/// The transport of a single node: there is nobody to talk to.
pub struct NoPeers;

impl Transport for NoPeers {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        _rpc: RaftRpc,
    ) -> BoxFuture<Result<RaftRpcReply, String>> {
        Box::pin(async move {
            Err(format!(
                "no transport to node {target} (group {}): single-node mode",
                group.0
            ))
        })
    }
}

/// The node's router: one per node, shared by every group.
#[derive(Clone)]
pub struct Router {
    pub transport: Arc<dyn Transport>,
    /// The node's database and segment files, which full snapshots are dumped from.
    pub db: Arc<Database>,
    pub segments: Arc<Segments>,
}

impl Router {
    /// Sends one RPC and waits at most `ttl` for its answer (a peer that stopped answering
    /// without closing its connection must not stall replication or elections).
    pub async fn call(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: RaftRpc,
        ttl: std::time::Duration,
    ) -> Result<RaftRpcReply, String> {
        match tokio::time::timeout(ttl, self.transport.call(target, group, rpc)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "node {target} (group {}) did not answer within {ttl:?}",
                group.0
            )),
        }
    }
}
