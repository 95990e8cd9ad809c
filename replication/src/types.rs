//! The vocabulary of the crate, bottom layer: identifiers (nodes, groups, partitions), the
//! commands a group's Raft log carries and their answers, read limits and results, the
//! crate's error, and the openraft type configuration with the aliases the layers above
//! use. Imports nothing of the crate.

use std::fmt;

use bytes::Bytes;
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
    /// A transactional batch with a newer epoch while its producer's transaction is
    /// still open here (its marker is not written yet), or a marker that is no marker.
    #[error("invalid transaction state")]
    InvalidTxnState,
}

/// Offsets of a partition as seen by readers of this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    /// Next offset to be assigned (Kafka's high watermark / log end offset on a single node).
    pub high_watermark: i64,
    /// Kafka's last stable offset: the first offset of the oldest open transaction, or the
    /// high watermark when none is open. `read_committed` consumers read below it.
    pub last_stable_offset: i64,
    /// Offset of the newest abort marker, -1 when the partition has none: a
    /// `read_committed` fetch from above it has no aborted transaction to list.
    pub last_abort: i64,
}

/// How much one `StoreGroup::read` may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimit {
    /// Batch bytes the read may append; only whole batches are appended.
    pub max_bytes: usize,
    /// Append the first batch whole even when it alone is larger than `max_bytes` (KIP-74:
    /// a Fetch's first non-empty partition always makes progress).
    pub first_batch_whole: bool,
    /// Only batches starting below this offset (a `read_committed` fetch stops at the
    /// last stable offset); `i64::MAX` for no bound.
    pub below: i64,
}

impl ReadLimit {
    /// At most `max_bytes`, but at least the first batch.
    pub fn at_least_one_batch(max_bytes: usize) -> Self {
        ReadLimit {
            max_bytes,
            first_batch_whole: true,
            below: i64::MAX,
        }
    }

    /// At most `max_bytes`, possibly nothing.
    pub fn at_most(max_bytes: usize) -> Self {
        ReadLimit {
            max_bytes,
            first_batch_whole: false,
            below: i64::MAX,
        }
    }

    /// The same limit, reading only batches that start below `offset`.
    pub fn below(self, offset: i64) -> Self {
        ReadLimit {
            below: offset,
            ..self
        }
    }
}

/// How long and how much of a partition's log to keep (Kafka's `retention.ms`,
/// `retention.bytes`, `segment.bytes`, `segment.ms`); see `partition::retention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Drop segments whose every record is older than this many ms; None: no time limit.
    pub retention_ms: Option<i64>,
    /// Drop the oldest segments while the rest still hold at least this many bytes; None:
    /// no size limit.
    pub retention_bytes: Option<u64>,
    /// A partition's segment (what retention drops as a whole) holds at most this many
    /// bytes, or one batch when a batch is larger.
    pub segment_bytes: u64,
    /// A batch whose max timestamp is this many ms after its segment's first starts a new
    /// segment; None: segments roll by size only.
    pub segment_ms: Option<i64>,
}

impl RetentionPolicy {
    /// True when the policy can drop anything.
    pub fn limits(&self) -> bool {
        self.retention_ms.is_some() || self.retention_bytes.is_some()
    }
}

/// What retention drops from the head of a partition (see `StoreGroup::retention_cut`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionCut {
    /// The new log start offset: the first offset of the first segment kept.
    pub log_start: i64,
    /// Log start offsets to move through on the way, each at most a bounded number of
    /// batches after the one before, ending with `log_start`: one Raft entry each, so
    /// that no single apply deletes an unbounded number of rows while the group's writes
    /// wait for it.
    pub steps: Vec<i64>,
    pub segments: usize,
    pub batches: u64,
    pub bytes: u64,
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

/// One row of a partition's batch index, as log compaction reads it
/// (`StoreGroup::compaction_index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedBatch {
    pub base_offset: i64,
    /// Offset after the batch's last offset (its last offset delta is kept by compaction).
    pub next_offset: i64,
    pub bytes: u64,
    pub max_timestamp: i64,
    /// The row as read: a swap (`StoreGroup::replace_batches`) checks it is unchanged.
    pub(crate) row: [u8; 28],
}

/// A batch compaction rewrites: `old` as it was read, and what takes its place (same base
/// offset and last offset delta, fewer records), or None when no record of it survives.
#[derive(Clone, Debug)]
pub struct BatchReplacement {
    pub old: IndexedBatch,
    pub new: Option<Bytes>,
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

impl ReplicationError {
    /// A storage failure (read or write), with its cause.
    pub fn storage(e: impl fmt::Display) -> ReplicationError {
        ReplicationError::Storage(e.to_string())
    }
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
    /// Durable commits by how long their syncs took (segment fdatasync and the database's
    /// fsync): `sync_buckets[i]` counts those up to `SYNC_BOUNDS_US[i]` and above the
    /// previous bound; the last one, those above every bound.
    pub sync_buckets: [u64; SYNC_BUCKETS],
    /// Total time of those syncs, in microseconds.
    pub sync_micros: u64,
}

/// Upper bounds of the sync latency buckets, in microseconds.
pub const SYNC_BOUNDS_US: [u64; SYNC_BUCKETS - 1] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];
/// Buckets of the sync latency histogram (the bounds and +Inf).
pub const SYNC_BUCKETS: usize = 13;

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

/// Elections of a group as one replica saw them since it started hosting the group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Elections {
    /// Terms begun: the current term minus the one stored when the replica started. Every
    /// Raft term opens with an election (won or not), so this counts the elections held in
    /// the group, by any candidate, as far as this replica's term has followed.
    pub terms_begun: u64,
    /// New leaderships this replica learned of: a leader (node, term) different from the
    /// last one it knew. The first leader it learns of after starting is not counted, and
    /// leaderships that come and go between two looks at the Raft state may count as one.
    pub leader_changes: u64,
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

/// What the state machine hands back to a proposer: the command's answer, or why the
/// storage refused to apply it (then the group stops and the proposal fails).
pub type ApplyResult = Result<CommandResponse, String>;

openraft::declare_raft_types!(
    /// Type configuration shared by every group of a node.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type LeaderId = openraft::impls::leader_id_adv::LeaderId<u64, u64>;
pub type LogId = openraft::LogId<LeaderId>;
pub type Vote = openraft::impls::Vote<LeaderId>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type Membership = openraft::Membership<u64, openraft::BasicNode>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type ApplyResponder = openraft::storage::ApplyResponder<TypeConfig>;
pub type IOFlushed = openraft::storage::IOFlushed<TypeConfig>;

/// What a snapshot of a group carries. The group's state lives durably in the node's redb
/// tables, so building a snapshot only records the durable applied position; sending one
/// dumps the tables at that moment and the receiver installs them before handing this
/// descriptor to openraft (see `raft::snapshot::transfer`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct GroupSnapshot {
    pub group: GroupId,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::CreatePartitions(v) => write!(f, "create_partitions({})", v.len()),
            Command::DeletePartitions(v) => write!(f, "delete_partitions({})", v.len()),
            Command::Append(v) => {
                let bytes: usize = v.iter().map(|b| b.batch.len()).sum();
                write!(f, "append({} batches, {} bytes)", v.len(), bytes)
            }
            Command::DeleteRecords(v) => write!(f, "delete_records({})", v.len()),
            Command::Put(v) => write!(f, "put({})", v.len()),
            Command::AllocateProducerIds(n) => write!(f, "allocate_producer_ids({n})"),
            Command::CompareAndPut { .. } => write!(f, "compare_and_put"),
        }
    }
}
