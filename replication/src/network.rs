//! The inter-node transport of Raft RPCs, shared by all groups of a node (multi-raft: one
//! router per node carrying `(group id, rpc)`, one connection per peer).
//!
//! Outbound: each group's openraft network is an `openraft_multi::GroupNetworkAdapter` that
//! binds (target node, group) to the node's [`Router`], which hands a [`RaftRpc`] to the
//! node's [`Transport`]. Inbound: a transport delivers `(group, RaftRpc)` to
//! `ReplicaNode::handle_rpc`. A single node uses [`NoPeers`], which refuses every remote
//! peer; the cluster transport plugs in here without a second code path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use openraft_multi::{GroupNetworkAdapter, GroupRouter};
use redb::Database;
use serde::{Deserialize, Serialize};

use crate::api::{Command, CommandResponse, GroupId, NodeId, ReplicationError};
use crate::state_machine::GroupSnapshotOf;
use crate::types::{SnapshotMeta, TypeConfig, Vote};

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
    /// One chunk of a full snapshot (see `snapshot`): answered by [`RaftRpcReply::SnapshotAck`],
    /// the last one (`done`) by [`RaftRpcReply::Snapshot`] once installed.
    SnapshotChunk(SnapshotChunk),
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
}

/// Least time an AppendEntries may take before it counts as failed.
const APPEND_TTL_FLOOR: std::time::Duration = std::time::Duration::from_secs(5);

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
    pub segments: Arc<crate::segments::Segments>,
}

fn unreachable(msg: String) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(msg))
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

impl GroupRouter<TypeConfig, GroupId> for Router {
    type SnapshotData = crate::types::GroupSnapshot;

    async fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // openraft gives appends one heartbeat interval; an append carrying megabytes of
        // records, answered after the follower's fsync, can take longer on a busy machine,
        // and timing it out only sends it again. A dead peer fails at once (connection
        // reset) and heartbeats keep their own short timeout.
        let ttl = if rpc.entries.is_empty() {
            option.hard_ttl()
        } else {
            option.hard_ttl().max(APPEND_TTL_FLOOR)
        };
        match self.call(target, group, RaftRpc::Append(rpc), ttl).await {
            Ok(RaftRpcReply::Append(r)) => Ok(r),
            Ok(other) => Err(unreachable(format!("unexpected reply {other:?}"))),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_rpc(target, group, RaftRpc::Vote(rpc), option)
            .await
    }

    async fn pre_vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_rpc(target, group, RaftRpc::PreVote(rpc), option)
            .await
    }

    async fn transfer_leader(
        &self,
        target: NodeId,
        group: GroupId,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl();
        match self
            .call(target, group, RaftRpc::TransferLeader(req), ttl)
            .await
        {
            Ok(RaftRpcReply::TransferLeader(r)) => Ok(r),
            Ok(other) => Err(unreachable(format!("unexpected reply {other:?}"))),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        vote: Vote,
        snapshot: GroupSnapshotOf,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        crate::snapshot::send(self, target, group, vote, snapshot.meta, cancel, option).await
    }
}

impl Router {
    /// A Vote or PreVote (both answered with a vote response).
    async fn vote_rpc(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: RaftRpc,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(target, group, rpc, option.hard_ttl()).await {
            Ok(RaftRpcReply::Vote(r)) => Ok(r),
            Ok(other) => Err(unreachable(format!("unexpected reply {other:?}"))),
            Err(e) => Err(unreachable(e)),
        }
    }
}

/// The network factory of one group: binds the node's router to the group.
pub struct GroupNetworkFactory {
    pub router: Router,
    pub group: GroupId,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetworkFactory {
    type Network = GroupNetworkAdapter<TypeConfig, GroupId, Router>;

    async fn new_client(&mut self, target: NodeId, _node: &openraft::BasicNode) -> Self::Network {
        GroupNetworkAdapter::new(self.router.clone(), target, self.group)
    }
}
