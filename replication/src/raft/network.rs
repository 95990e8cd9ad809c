//! The openraft network of each group: the node's [`Router`] bound to (target node, group)
//! through `openraft_multi`, with timeouts fitted to phxq's RPCs and full snapshots streamed
//! by `snapshot::transfer`.

use std::future::Future;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use openraft_multi::{GroupNetworkAdapter, GroupRouter};

use crate::raft::rpc::{RaftRpc, RaftRpcReply, Router};
use crate::raft::snapshot::transfer;
use crate::raft::state_machine::GroupSnapshotOf;
use crate::types::{GroupId, GroupSnapshot, NodeId, TypeConfig, Vote};

/// Least time an AppendEntries may take before it counts as failed.
const APPEND_TTL_FLOOR: std::time::Duration = std::time::Duration::from_secs(5);

fn unreachable(msg: String) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(msg))
}

impl GroupRouter<TypeConfig, GroupId> for Router {
    type SnapshotData = GroupSnapshot;

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
        transfer::send(self, target, group, vote, snapshot.meta, cancel, option).await
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
