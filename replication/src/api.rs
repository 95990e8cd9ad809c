//! The public interface of the replication crate, top layer: what the broker calls.
//! [`ReplicaNode`] and [`StoreGroup`] are thin handles; every method delegates to the node
//! layer (`node`), and the data types they take and give are in `types`.
//!
//! CONTRACT between `broker/` and `replication/`. Changing a signature here means changing
//! both sides.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::node::config::NodeConfig;
use crate::node::group::GroupInner;
use crate::node::NodeInner;
use crate::raft::rpc::{PeerService, RaftRpc, RaftRpcReply, RpcService, Transport};
use crate::store::fault::DiskFault;
use crate::types::{
    BatchReplacement, Command, CommandResponse, Elections, GroupId, GroupStatus, IndexedBatch,
    NodeId, PartitionId, PartitionOffsets, ReadLimit, ReadResult, ReplicationError, RetentionCut,
    RetentionPolicy, StoredBatch, WriterCounters,
};

/// One broker's replication: its redb database, its group-commit writer and its groups.
pub struct ReplicaNode {
    inner: Arc<NodeInner>,
}

impl ReplicaNode {
    /// Opens (or creates) `<data_dir>/phxq.redb`, starts the group-commit writer and reopens
    /// every group that existed before.
    pub async fn open(config: NodeConfig) -> Result<Arc<ReplicaNode>, ReplicationError> {
        Self::open_with_transport(config, None).await
    }

    /// Like [`ReplicaNode::open`], with the transport that carries Raft RPCs to other nodes
    /// (None: single node, every remote peer is unreachable).
    pub async fn open_with_transport(
        config: NodeConfig,
        transport: Option<Arc<dyn Transport>>,
    ) -> Result<Arc<ReplicaNode>, ReplicationError> {
        let inner = NodeInner::open(config, transport, None).await?;
        Ok(Arc::new(ReplicaNode { inner }))
    }

    /// Opens a node whose database and segment files fail while `fault` is on (tests only).
    #[doc(hidden)]
    pub async fn open_with_fault(
        config: NodeConfig,
        fault: DiskFault,
    ) -> Result<Arc<ReplicaNode>, ReplicationError> {
        let inner = NodeInner::open(config, None, Some(fault)).await?;
        Ok(Arc::new(ReplicaNode { inner }))
    }

    /// Returns the group, creating it and initializing it as a single voter on this node if
    /// it does not exist yet. Waits until this node is the group's leader or the group has a
    /// known leader.
    pub async fn open_group(&self, id: GroupId) -> Result<StoreGroup, ReplicationError> {
        let inner = self.inner.open_group(id).await?;
        Ok(StoreGroup { inner })
    }

    /// Returns the group, creating it with `voters` (this node among them) if it does not
    /// exist yet. Does not wait for a leader: with peers, the group elects one when a
    /// majority of its voters is up. An existing group keeps the membership it has.
    pub async fn open_group_with(
        &self,
        id: GroupId,
        voters: BTreeSet<NodeId>,
    ) -> Result<StoreGroup, ReplicationError> {
        let inner = self.inner.open_group_with(id, voters).await?;
        Ok(StoreGroup { inner })
    }

    pub fn group(&self, id: GroupId) -> Option<StoreGroup> {
        self.inner.group(id).map(|inner| StoreGroup { inner })
    }

    /// The Raft state of every group hosted here.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.inner.status()
    }

    /// Groups hosted on this node (persisted across restarts).
    pub fn group_ids(&self) -> Vec<GroupId> {
        self.inner.group_ids()
    }

    /// Stops every group and the writer after flushing what is in flight.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await
    }

    /// Delivers a Raft RPC from another node to one of this node's groups.
    #[doc(hidden)]
    pub async fn handle_rpc(&self, group: GroupId, rpc: RaftRpc) -> Result<RaftRpcReply, String> {
        self.inner.handle_rpc(group, rpc).await
    }

    /// Sets what this node answers other nodes' peer requests ([`RaftRpc::Peer`]) with;
    /// only the first call counts.
    pub fn set_peer_service(&self, service: PeerService) {
        let _ = self.inner.peer_service.set(service);
    }

    /// Sends a peer request to the broker on node `target` over the Raft transport and
    /// waits at most `ttl` for its answer. `group` only labels the call in errors.
    pub async fn peer_call(
        &self,
        target: NodeId,
        group: GroupId,
        service: &str,
        body: Bytes,
        ttl: std::time::Duration,
    ) -> Result<Bytes, String> {
        let rpc = RaftRpc::Peer {
            service: service.to_string(),
            body,
        };
        match self.inner.router.call(target, group, rpc, ttl).await? {
            RaftRpcReply::Peer(b) => Ok(b),
            other => Err(format!(
                "node {target} answered a peer request with {other:?}"
            )),
        }
    }

    /// True once a write to the database failed (e.g. disk full). Every proposal then fails
    /// with [`ReplicationError::Storage`]; nothing acknowledged is lost. Recover by
    /// [`ReplicaNode::shutdown`] and [`ReplicaNode::open`] once the disk is usable again.
    pub fn storage_failed(&self) -> bool {
        self.inner.writer.broken()
    }

    /// Ids of the segment files holding batch bytes (tests).
    #[doc(hidden)]
    pub fn segment_files(&self) -> Vec<u32> {
        self.inner.writer.segments.ids()
    }

    /// Bytes in the segment files: every batch this node stored, written once (tests).
    #[doc(hidden)]
    pub fn segment_bytes(&self) -> u64 {
        self.inner.writer.segments.bytes()
    }

    /// Deletes the segment files no row refers to any more and returns their ids. The node
    /// also does this on its own, a few seconds after topics or records are deleted.
    #[doc(hidden)]
    pub async fn collect_segment_files(&self) -> Result<Vec<u32>, ReplicationError> {
        self.inner.collect_segments().await
    }

    /// The group-commit writer's counters (tests, benchmarks).
    #[doc(hidden)]
    pub fn counters(&self) -> WriterCounters {
        self.inner.counters()
    }
}

impl RpcService for ReplicaNode {
    fn handle_rpc(
        &self,
        group: GroupId,
        rpc: RaftRpc,
    ) -> impl Future<Output = Result<RaftRpcReply, String>> + Send {
        self.inner.handle_rpc(group, rpc)
    }

    fn status(&self) -> Vec<GroupStatus> {
        self.inner.status()
    }
}

/// A handle to one Raft group on this node. Cheap to clone.
#[derive(Clone)]
pub struct StoreGroup {
    inner: Arc<GroupInner>,
}

impl StoreGroup {
    /// Proposes a command and waits until it is committed (durable on a majority: fsync'd)
    /// and applied. Concurrent proposals, from any group on this node, share fsyncs.
    /// Fails with [`ReplicationError::NotLeader`] on a follower.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResponse, ReplicationError> {
        self.inner.propose_local(cmd).await
    }

    /// Like [`StoreGroup::propose`], but from any replica: a follower forwards the command
    /// to the leader over the node's transport. Waits through an election (a few seconds
    /// at most). For administrative writes (topics, configs), not for the data path, where
    /// clients must find the leader themselves.
    pub async fn propose_on_leader(
        &self,
        cmd: Command,
    ) -> Result<CommandResponse, ReplicationError> {
        self.inner.propose_on_leader(cmd).await
    }

    /// Confirms that this replica is the leader with a quorum round trip and waits until
    /// everything committed before is applied and visible to reads: after it, reads here see
    /// every write acknowledged by any earlier leader.
    pub async fn ensure_linearizable(&self) -> Result<(), ReplicationError> {
        self.inner.ensure_linearizable().await
    }

    /// Asks the leader to hand leadership to `to` (ignored on a follower).
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), ReplicationError> {
        self.inner.transfer_leader(to).await
    }

    /// Voters of the group as this replica knows them, in the order of the membership.
    pub fn voters(&self) -> Vec<NodeId> {
        self.inner.voters()
    }

    /// Queues a command in the group's Raft log behind every earlier submission and returns
    /// without waiting for it to commit; the returned future resolves as [`propose`] would.
    /// Submissions made one after another enter the log in that order, so a connection can
    /// keep several produce requests in flight without reordering a producer's batches.
    ///
    /// [`propose`]: StoreGroup::propose
    pub async fn submit(
        &self,
        cmd: Command,
    ) -> Result<
        impl Future<Output = Result<CommandResponse, ReplicationError>> + Send + 'static,
        ReplicationError,
    > {
        self.inner.submit(cmd).await
    }

    /// The current term if this replica is the group's leader.
    pub fn leader_term(&self) -> Option<u64> {
        self.inner.leader_term()
    }

    /// True when this replica leads the group and reads here see every entry committed by
    /// earlier leaders (the entry opening its term is applied). A new leader is not ready
    /// for a moment after its election: serving reads then could show an old high
    /// watermark.
    pub fn leader_ready(&self) -> bool {
        self.inner.leader_ready()
    }

    pub fn is_leader(&self) -> bool {
        self.inner.is_leader()
    }

    /// The leader epoch of the group's partitions (KIP-320): the Raft term of the leader
    /// this replica knows; `None` while it knows none. It grows with every election, and
    /// each batch read carries the epoch it was appended in.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.inner.leader_epoch()
    }

    /// OffsetForLeaderEpoch's answer for `epoch` of `p`: the newest epoch at or below it
    /// that appended, and where it ends; `(-1, -1)` for an unknown epoch. Call it on the
    /// leader, with `current` its leader epoch.
    pub fn end_offset_for_epoch(
        &self,
        p: PartitionId,
        epoch: i32,
        current: i32,
    ) -> Result<(i32, i64), ReplicationError> {
        self.inner.shared.end_offset_for_epoch(p, epoch, current)
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.inner.leader()
    }

    /// The group's Raft state as this node sees it.
    pub fn status(&self) -> GroupStatus {
        self.inner.status()
    }

    /// The group's elections as this replica saw them since it started (`Elections`).
    pub fn elections(&self) -> Elections {
        self.inner.elections()
    }

    /// A one-line summary of the group's Raft state (term, leader, log, commit, applied).
    pub fn raft_status(&self) -> String {
        self.inner.raft_status()
    }

    /// Current offsets of a partition in the applied state.
    pub fn offsets(&self, p: PartitionId) -> Option<PartitionOffsets> {
        self.inner.shared.offsets(p)
    }

    /// Appends to `out` whole batches of `p` starting with the one that contains `offset`,
    /// as many as fit in `limit.max_bytes` (and the first one regardless when
    /// `limit.first_batch_whole`). Batches carry their assigned base offsets.
    /// The first offset of `p` appended in leader term `term`, if this node applied one
    /// since it started: every offset from it on was appended (and so could only be read
    /// from a leader) in that term. `None`: nothing appended in `term` yet, or not known.
    pub fn term_start_offset(&self, p: PartitionId, term: u64) -> Option<i64> {
        self.inner.shared.term_start(p, term)
    }

    pub fn read(
        &self,
        p: PartitionId,
        offset: i64,
        limit: ReadLimit,
        out: &mut BytesMut,
    ) -> Result<ReadResult, ReplicationError> {
        self.inner.shared.read(p, offset, limit, out)
    }

    /// The aborted transactions a `read_committed` fetch of `[from, upto)` of `p` must
    /// list: `(producer id, first offset)`, in first-offset order. Reads redb: call it only
    /// when [`PartitionOffsets::last_abort`] is at or above `from`.
    pub fn aborted_transactions(
        &self,
        p: PartitionId,
        from: i64,
        upto: i64,
    ) -> Result<Vec<(i64, i64)>, ReplicationError> {
        self.inner.shared.aborted_transactions(p, from, upto)
    }

    /// The first batch of `p` whose max timestamp is >= `timestamp`; None when there is none.
    pub fn batch_by_timestamp(
        &self,
        p: PartitionId,
        timestamp: i64,
    ) -> Result<Option<StoredBatch>, ReplicationError> {
        self.inner.shared.batch_by_timestamp(p, timestamp)
    }

    /// The batch containing the largest timestamp of `p` and that timestamp (ListOffsets
    /// -3); None when `p` has no batch.
    pub fn max_timestamp(
        &self,
        p: PartitionId,
    ) -> Result<Option<(i64, StoredBatch)>, ReplicationError> {
        self.inner.shared.max_timestamp(p)
    }

    /// What `policy` would drop from the head of `p` at `now_ms` (epoch ms): the new log
    /// start, reached in bounded steps; None when nothing goes. Reads the partition's
    /// batch index (blocking I/O: call it off the async workers). Only decides: the caller
    /// moves the log start with [`Command::DeleteRecords`] on the leader, so every replica
    /// drops the same records.
    pub fn retention_cut(
        &self,
        p: PartitionId,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<Option<RetentionCut>, ReplicationError> {
        self.inner.shared.retention_cut(p, policy, now_ms)
    }

    /// The batch index of `p` from its log start on (blocking I/O: call it off the async
    /// workers), for log compaction on this replica.
    pub fn compaction_index(&self, p: PartitionId) -> Result<Vec<IndexedBatch>, ReplicationError> {
        self.inner.shared.compaction_index(p)
    }

    /// The bytes of `batches` (rows of [`compaction_index`](Self::compaction_index)), base
    /// offsets patched in (blocking I/O).
    pub fn read_indexed(&self, batches: &[IndexedBatch]) -> Result<Vec<Bytes>, ReplicationError> {
        self.inner.shared.read_indexed(batches)
    }

    /// Swaps compacted batches of `p` into this replica's batch index, in one durable
    /// writer transaction, if every row they replace is still as read; `Ok(false)` (nothing
    /// changed) when one is not (retention, DeleteRecords or a topic deletion came first).
    /// Local to this replica: offsets do not change, so replicas need not agree on it.
    pub async fn replace_batches(
        &self,
        p: PartitionId,
        reps: Vec<BatchReplacement>,
    ) -> Result<bool, ReplicationError> {
        self.inner.replace_batches(p, reps).await
    }

    /// A counter bumped after every applied entry; long-polling fetches wait on it.
    pub fn applied_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.shared.applied_watch()
    }

    /// The value of `key` in the group's key-value space; `Ok(None)` when it is absent, an
    /// error when it cannot be read.
    pub fn kv_get(&self, key: &[u8]) -> Result<Option<Bytes>, ReplicationError> {
        self.inner.shared.kv_get(key)
    }

    /// All keys starting with `prefix`, in key order; an error when they cannot all be read.
    pub fn kv_scan(&self, prefix: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ReplicationError> {
        self.inner.shared.kv_scan(prefix)
    }
}
