//! The public interface of the replication crate: what the broker calls.
//!
//! CONTRACT between `broker/` and `replication/`. Changing a signature here means changing
//! both sides.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Raft node id (= Kafka broker id).
pub type NodeId = u64;

/// A Raft group on this node. Group 0 is the metadata group; store groups are 1..
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub u32);

impl GroupId {
    pub const METADATA: GroupId = GroupId(0);
}

/// A topic-partition, named by topic id (Kafka's topic UUID as u128) so that a deleted and
/// re-created topic never sees the old data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionId {
    pub topic_id: u128,
    pub index: i32,
}

/// Node settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub node_id: NodeId,
    /// Directory holding the node's redb database (created if missing).
    pub data_dir: PathBuf,
    /// Raft heartbeat interval; hundreds of ms keeps idle groups cheap.
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Cap on bytes of entries in one AppendEntries / one log read.
    pub max_append_bytes: usize,
    /// Memory redb may use to cache database pages (its default is 1 GiB).
    pub cache_bytes: usize,
    /// Size at which a segment file of batch bytes rolls over to the next.
    pub segment_bytes: u64,
}

impl NodeConfig {
    pub fn single(node_id: NodeId, data_dir: PathBuf) -> Self {
        NodeConfig {
            node_id,
            data_dir,
            heartbeat_interval_ms: 500,
            election_timeout_min_ms: 1500,
            election_timeout_max_ms: 3000,
            max_append_bytes: 8 << 20,
            cache_bytes: 256 << 20,
            segment_bytes: crate::segments::SEGMENT_BYTES,
        }
    }
}

/// One record batch for one partition, exactly as the producer sent it (already split and
/// CRC-checked by the broker). Its base offset field is ignored; the state machine assigns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppendBatch {
    pub partition: PartitionId,
    pub batch: Bytes,
}

/// A change to a group's state, proposed through its Raft log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Command {
    /// Create empty partitions (no-op for ones that exist).
    CreatePartitions(Vec<PartitionId>),
    /// Drop partitions and all their data.
    DeletePartitions(Vec<PartitionId>),
    /// Append batches, possibly for many partitions: one Raft entry, one fsync.
    Append(Vec<AppendBatch>),
    /// Move each partition's log start offset up to the given offset (Kafka DeleteRecords;
    /// -1 means the high watermark) and drop whole batches below it.
    DeleteRecords(Vec<(PartitionId, i64)>),
    /// Set (Some) or remove (None) keys in the group's key-value space.
    Put(Vec<(Bytes, Option<Bytes>)>),
    /// Reserve `count` producer ids; answers with the first one.
    AllocateProducerIds(u32),
    /// Set (Some) or remove (None) `key` only if its current value is `expected` (None:
    /// absent); answers [`CommandResponse::Compared`] with whether it did. Serializes
    /// changes made through different brokers (e.g. two creating the same topic).
    CompareAndPut {
        key: Bytes,
        expected: Option<Bytes>,
        value: Option<Bytes>,
    },
}

/// The state machine's answer to a [`Command`], in the same order as its items.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CommandResponse {
    Done,
    Appended(Vec<Result<Appended, AppendError>>),
    RecordsDeleted(Vec<Result<i64, AppendError>>),
    ProducerIds(i64),
    /// Whether a [`Command::CompareAndPut`] found the expected value and wrote.
    Compared(bool),
}

/// Where an appended batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    pub base_offset: i64,
    pub log_start_offset: i64,
    /// True when this was a retry of a batch already appended (idempotent producer): the
    /// offsets are the original ones and nothing was written.
    pub duplicate: bool,
}

/// Why one item of a command was refused. Maps one-to-one onto Kafka error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppendError {
    #[error("unknown partition")]
    UnknownPartition,
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    #[error("stale producer epoch")]
    InvalidProducerEpoch,
    #[error("unknown producer id")]
    UnknownProducerId,
    #[error("offset out of range")]
    OffsetOutOfRange,
    #[error("record batch unreadable")]
    CorruptBatch,
}

/// Offsets of a partition as seen by readers of this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    /// Next offset to be assigned (Kafka's high watermark / log end offset on a single node).
    pub high_watermark: i64,
}

/// How much one [`StoreGroup::read`] may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimit {
    /// Batch bytes the read may append; only whole batches are appended.
    pub max_bytes: usize,
    /// Append the first batch whole even when it alone is larger than `max_bytes` (KIP-74:
    /// a Fetch's first non-empty partition always makes progress).
    pub first_batch_whole: bool,
}

impl ReadLimit {
    /// At most `max_bytes`, but at least the first batch.
    pub fn at_least_one_batch(max_bytes: usize) -> Self {
        ReadLimit {
            max_bytes,
            first_batch_whole: true,
        }
    }

    /// At most `max_bytes`, possibly nothing.
    pub fn at_most(max_bytes: usize) -> Self {
        ReadLimit {
            max_bytes,
            first_batch_whole: false,
        }
    }
}

/// What a fetch read.
#[derive(Debug, Default)]
pub struct ReadResult {
    /// Number of whole batches appended to the output buffer.
    pub batches: usize,
    /// Bytes appended.
    pub bytes: usize,
}

/// A stored batch located by timestamp.
#[derive(Clone, Debug)]
pub struct StoredBatch {
    pub base_offset: i64,
    /// The batch, with its base offset already set.
    pub batch: Bytes,
}

#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum ReplicationError {
    /// This replica is not the group's leader; `leader` is the one it knows, if any.
    #[error("not the leader (leader is {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("unknown partition")]
    UnknownPartition,
    #[error("offset {offset} out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        high_watermark: i64,
    },
    /// The disk refused a write (e.g. full). Nothing acknowledged is lost.
    #[error("storage error: {0}")]
    Storage(String),
    #[error("shutting down")]
    ShuttingDown,
    #[error("raft error: {0}")]
    Raft(String),
}

/// One broker's replication: its redb database, its group-commit writer and its groups.
pub struct ReplicaNode {
    inner: Arc<crate::node::NodeInner>,
}

/// A snapshot of the group-commit writer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterCounters {
    /// redb write transactions committed (all groups).
    pub commits: u64,
    /// Of which fsync'd.
    pub durable_commits: u64,
    /// Raft log entries made durable.
    pub appends_flushed: u64,
    /// Bytes of encoded raft log entries written.
    pub log_bytes: u64,
    /// Bytes of record batches indexed by applies (written once, with the log entry).
    pub batch_bytes: u64,
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
        transport: Option<Arc<dyn crate::network::Transport>>,
    ) -> Result<Arc<ReplicaNode>, ReplicationError> {
        let inner = crate::node::NodeInner::open(config, transport, None).await?;
        Ok(Arc::new(ReplicaNode { inner }))
    }

    /// Opens a node whose database file fails writes while `fault` is on (tests only).
    #[doc(hidden)]
    pub async fn open_with_fault(
        config: NodeConfig,
        fault: crate::fault::DiskFault,
    ) -> Result<Arc<ReplicaNode>, ReplicationError> {
        let inner = crate::node::NodeInner::open(config, None, Some(fault)).await?;
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
        voters: std::collections::BTreeSet<NodeId>,
    ) -> Result<StoreGroup, ReplicationError> {
        let inner = self.inner.open_group_with(id, voters).await?;
        Ok(StoreGroup { inner })
    }

    pub fn group(&self, id: GroupId) -> Option<StoreGroup> {
        self.inner.group(id).map(|inner| StoreGroup { inner })
    }

    /// The Raft state of every group hosted here.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.group_ids()
            .into_iter()
            .filter_map(|id| self.group(id))
            .map(|g| g.status())
            .collect()
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
    pub async fn handle_rpc(
        &self,
        group: GroupId,
        rpc: crate::network::RaftRpc,
    ) -> Result<crate::network::RaftRpcReply, String> {
        self.inner.handle_rpc(group, rpc).await
    }

    /// Voters of a group as this node knows them.
    pub fn voters(&self, id: GroupId) -> std::collections::BTreeSet<NodeId> {
        self.inner.voters(id)
    }

    /// True once a write to the database failed (e.g. disk full). Every proposal then fails
    /// with [`ReplicationError::Storage`]; nothing acknowledged is lost. Recover by
    /// [`ReplicaNode::shutdown`] and [`ReplicaNode::open`] once the disk is usable again.
    pub fn storage_failed(&self) -> bool {
        self.inner.writer.broken()
    }

    /// redb write transactions committed so far (all groups): group commit shows as many
    /// appends per commit.
    pub fn commits(&self) -> u64 {
        self.counters().commits
    }

    /// Raft log entries made durable so far.
    pub fn appends_flushed(&self) -> u64 {
        self.counters().appends_flushed
    }

    /// Ids of the segment files holding batch bytes.
    pub fn segment_files(&self) -> Vec<u32> {
        self.inner.writer.segments.ids()
    }

    /// Bytes in the segment files: every batch this node stored, written once.
    pub fn segment_bytes(&self) -> u64 {
        self.inner.writer.segments.bytes()
    }

    /// Deletes the segment files no row refers to any more and returns their ids. The node
    /// also does this on its own, a few seconds after topics or records are deleted.
    pub async fn collect_segment_files(&self) -> Result<Vec<u32>, ReplicationError> {
        self.inner.collect_segments().await
    }

    pub fn counters(&self) -> WriterCounters {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.inner.writer.stats;
        WriterCounters {
            commits: s.commits.load(Relaxed),
            durable_commits: s.durable_commits.load(Relaxed),
            appends_flushed: s.appends_flushed.load(Relaxed),
            log_bytes: s.log_bytes.load(Relaxed),
            batch_bytes: s.batch_bytes.load(Relaxed),
        }
    }
}

/// One group's Raft state as one node sees it (`phxq cluster status`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: GroupId,
    /// The node reporting.
    pub node: NodeId,
    /// Leader, Follower, Candidate or Learner.
    pub state: String,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub voters: Vec<NodeId>,
    pub last_log: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    /// On the leader: every other voter's progress. Empty elsewhere.
    pub replication: Vec<ReplicaProgress>,
}

/// How far a follower is, as its leader sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub node: NodeId,
    /// Last log index known to be on the follower.
    pub matched: Option<u64>,
    /// Milliseconds since the follower last acknowledged the leader, if it ever did.
    pub last_ack_ms: Option<u64>,
}

/// A handle to one Raft group on this node. Cheap to clone.
#[derive(Clone)]
pub struct StoreGroup {
    inner: Arc<crate::node::GroupInner>,
}

impl StoreGroup {
    pub fn id(&self) -> GroupId {
        self.inner.id
    }

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
        use openraft::raft::ReadPolicy;
        // A new leader serves reads once it has committed an entry of its own term; until
        // then openraft answers ForwardToLeader even on the leader, so retry a little.
        let deadline = tokio::time::Instant::now() + self.inner.forward_timeout;
        let read = loop {
            match self
                .inner
                .raft
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
            {
                Ok(read) => break read,
                Err(openraft::error::RaftError::APIError(
                    openraft::error::LinearizableReadError::ForwardToLeader(f),
                )) => {
                    if !self.is_leader() || tokio::time::Instant::now() >= deadline {
                        return Err(ReplicationError::NotLeader {
                            leader: f.leader_id,
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(other) => return Err(ReplicationError::Raft(other.to_string())),
            }
        };
        let target = read.log_id().index;
        let mut w = self.inner.shared.applied_watch();
        w.wait_for(|n| *n >= target)
            .await
            .map_err(|_| ReplicationError::ShuttingDown)?;
        Ok(())
    }

    /// Asks the leader to hand leadership to `to` (ignored on a follower).
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), ReplicationError> {
        self.inner
            .raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(crate::node::fatal_error)
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
        impl std::future::Future<Output = Result<CommandResponse, ReplicationError>> + Send + 'static,
        ReplicationError,
    > {
        self.inner.log.wait_for_room().await;
        let (responder, rx) = openraft::impls::ProgressResponder::complete_only();
        self.inner
            .raft
            .client_write_ff(cmd, Some(responder))
            .await
            .map_err(crate::node::fatal_error)?;
        Ok(async move {
            match rx.await {
                Ok(Ok(r)) => r.data.map_err(ReplicationError::Storage),
                Ok(Err(e)) => Err(crate::node::write_error(
                    openraft::error::RaftError::APIError(e),
                )),
                Err(_) => Err(ReplicationError::ShuttingDown),
            }
        })
    }

    /// The current term if this replica is the group's leader.
    pub fn leader_term(&self) -> Option<u64> {
        use openraft::async_runtime::WatchReceiver;
        let m = self.inner.raft.metrics();
        let m = m.borrow_watched();
        (m.current_leader == Some(self.inner.node_id) && m.state.is_leader())
            .then_some(m.current_term)
    }

    /// True when this replica leads the group and reads here see every entry committed by
    /// earlier leaders (the entry opening its term is applied). A new leader is not ready
    /// for a moment after its election: serving reads then could show an old high
    /// watermark.
    pub fn leader_ready(&self) -> bool {
        self.leader_term()
            .is_some_and(|t| self.inner.shared.applied_term() >= t)
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.inner.node_id)
    }

    pub fn leader(&self) -> Option<NodeId> {
        use openraft::async_runtime::WatchReceiver;
        self.inner.raft.metrics().borrow_watched().current_leader
    }

    /// The group's Raft state as this node sees it.
    pub fn status(&self) -> GroupStatus {
        use openraft::async_runtime::WatchReceiver;
        use openraft::Instant;
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let me = self.inner.node_id;
        let replication = match (&m.replication, &m.heartbeat) {
            (Some(r), hb) => r
                .iter()
                .filter(|(n, _)| **n != me)
                .map(|(n, matched)| ReplicaProgress {
                    node: *n,
                    matched: matched.as_ref().map(|l| l.index),
                    last_ack_ms: hb
                        .as_ref()
                        .and_then(|h| h.get(n).cloned().flatten())
                        .map(|t| t.elapsed().as_millis() as u64),
                })
                .collect(),
            (None, _) => Vec::new(),
        };
        GroupStatus {
            group: self.inner.id,
            node: me,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            voters: m.membership_config.membership().voter_ids().collect(),
            last_log: m.last_log_index,
            committed: m.local_committed.map(|l| l.index),
            applied: m.last_applied.map(|l| l.index),
            replication,
        }
    }

    /// A one-line summary of the group's Raft state (term, leader, log, commit, applied).
    pub fn raft_status(&self) -> String {
        use openraft::async_runtime::WatchReceiver;
        let m = self.inner.raft.metrics().borrow_watched().clone();
        format!(
            "group={} state={:?} term={} leader={:?} last_log={:?} committed={:?} applied={:?} purged={:?}",
            self.inner.id.0,
            m.state,
            m.current_term,
            m.current_leader,
            m.last_log_index,
            m.local_committed.map(|x| x.index),
            m.last_applied.map(|x| x.index),
            m.purged.map(|x| x.index),
        )
    }

    /// Current offsets of a partition in the applied state.
    pub fn offsets(&self, p: PartitionId) -> Option<PartitionOffsets> {
        self.inner.shared.offsets(p)
    }

    /// Appends to `out` whole batches of `p` starting with the one that contains `offset`,
    /// as many as fit in `limit.max_bytes` (and the first one regardless when
    /// `limit.first_batch_whole`). Batches carry their assigned base offsets.
    pub fn read(
        &self,
        p: PartitionId,
        offset: i64,
        limit: ReadLimit,
        out: &mut BytesMut,
    ) -> Result<ReadResult, ReplicationError> {
        self.inner.shared.read(p, offset, limit, out)
    }

    /// The first batch of `p` whose max timestamp is >= `timestamp`, if any.
    pub fn batch_by_timestamp(&self, p: PartitionId, timestamp: i64) -> Option<StoredBatch> {
        self.inner.shared.batch_by_timestamp(p, timestamp)
    }

    /// The batch containing the largest timestamp of `p` and that timestamp (ListOffsets -3).
    pub fn max_timestamp(&self, p: PartitionId) -> Option<(i64, StoredBatch)> {
        self.inner.shared.max_timestamp(p)
    }

    /// A counter bumped after every applied entry; long-polling fetches wait on it.
    pub fn applied_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.shared.applied_watch()
    }

    pub fn kv_get(&self, key: &[u8]) -> Option<Bytes> {
        self.inner.shared.kv_get(key)
    }

    /// All keys starting with `prefix`, in key order.
    pub fn kv_scan(&self, prefix: &[u8]) -> Vec<(Bytes, Bytes)> {
        self.inner.shared.kv_scan(prefix)
    }
}
