//! The redb tables of a node's database (`<data_dir>/phxq.redb`) and their value layouts.
//!
//! Raft log and raft metadata are per group; the state-machine tables are keyed by topic id
//! (globally unique) or by group where the data belongs to the group (kv, partitions).

use redb::TableDefinition;

use crate::store::segments::SegmentPos;

/// Raft log: (group, index) -> encoded entry (see `raft::log_codec`).
pub const LOG: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("raft_log");
/// Per-group raft and state-machine metadata: (group, META_*) -> value.
pub const GROUP_META: TableDefinition<(u32, u8), &[u8]> = TableDefinition::new("group_meta");
/// The groups hosted by this node.
pub const GROUPS: TableDefinition<u32, ()> = TableDefinition::new("groups");
/// Partition metadata: (group, topic id, partition) -> [`PartMeta`] (24 bytes).
pub const PARTITIONS: TableDefinition<(u32, u128, i32), &[u8]> = TableDefinition::new("partitions");
/// Record batches: (topic id, partition, base offset) -> [`BatchLoc`]: where the batch's
/// bytes are in the segment files, and the header fields reads need. The stored bytes carry
/// the producer's base offset; readers patch in the key's.
pub const BATCHES: TableDefinition<(u128, i32, i64), &[u8]> = TableDefinition::new("batches");
/// Time index: (topic id, partition, max timestamp) -> base offset of the batch. Holds only
/// batches whose max timestamp exceeds every earlier batch's, so it is increasing in both
/// timestamp and offset and "first batch with max timestamp >= t" is one range lookup.
pub const TIME_INDEX: TableDefinition<(u128, i32, i64), i64> = TableDefinition::new("time_index");
/// Idempotent producer state: (topic id, partition, producer id) -> [`ProducerState`].
pub const PRODUCERS: TableDefinition<(u128, i32, i64), &[u8]> = TableDefinition::new("producers");
/// Transactions of each partition: (topic id, partition, offset) -> [`TxnRow`]: an open
/// transaction keyed by its first offset, or an aborted one keyed by its abort marker's
/// offset (what Fetch lists for `read_committed` consumers).
pub const TXNS: TableDefinition<(u128, i32, i64), &[u8]> = TableDefinition::new("txns");
/// Leader epochs of each partition (KIP-101/KIP-320): (topic id, partition, epoch) -> the
/// first offset appended in that epoch. An epoch is the Raft term of the entry that
/// appended; a row is written when a partition gets its first batch of a newer term, so
/// the rows are increasing in both epoch and offset. Fetch stamps each batch with its
/// epoch; OffsetForLeaderEpoch answers from them.
pub const EPOCHS: TableDefinition<(u128, i32, i32), i64> = TableDefinition::new("leader_epochs");
/// Key-value space of each group: (group, key) -> value.
pub const KV: TableDefinition<(u32, &[u8]), &[u8]> = TableDefinition::new("kv");
/// Node-wide settings: name -> value. `format` holds [`FORMAT`].
pub const NODE: TableDefinition<&str, u32> = TableDefinition::new("node");

/// The storage layout version. 2: batch bytes in segment files, redb holds their locations.
/// A database without it that holds a raft log is from the layout before (bytes in redb).
pub const FORMAT: u32 = 2;

/// Last vote (JSON), durable.
pub const META_VOTE: u8 = 1;
/// Last committed log id (24 bytes).
pub const META_COMMITTED: u8 = 2;
/// Last purged log id (24 bytes).
pub const META_PURGED: u8 = 3;
/// Last applied log id (24 bytes), written in the same transaction as the applied data.
pub const META_APPLIED: u8 = 4;
/// Last applied membership (JSON of `StoredMembership`).
pub const META_MEMBERSHIP: u8 = 5;
/// Meta of the last built snapshot (JSON of `SnapshotMeta`).
pub const META_SNAPSHOT: u8 = 6;
/// Next producer id to hand out (i64).
pub const META_NEXT_PID: u8 = 7;

/// First producer id a group hands out.
pub const FIRST_PRODUCER_ID: i64 = 1000;

/// Per-partition state: log start offset, next offset, largest max timestamp seen, and
/// the transaction fields Fetch needs without a read (40 bytes; rows written before
/// transactions are 24 bytes and read as "no transaction").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartMeta {
    pub log_start: i64,
    pub next_offset: i64,
    pub max_ts: i64,
    /// First offset of the oldest open transaction ([`NO_OFFSET`]: none open): the last
    /// stable offset is the smaller of it and `next_offset`.
    pub first_unstable: i64,
    /// Offset of the newest abort marker ([`NO_OFFSET`]: none): a fetch from above it
    /// needs no aborted-transaction lookup.
    pub last_abort: i64,
}

/// "None" in the offset fields of [`PartMeta`].
pub const NO_OFFSET: i64 = -1;

impl PartMeta {
    pub const EMPTY: PartMeta = PartMeta {
        log_start: 0,
        next_offset: 0,
        max_ts: i64::MIN,
        first_unstable: NO_OFFSET,
        last_abort: NO_OFFSET,
    };

    pub fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[0..8].copy_from_slice(&self.log_start.to_be_bytes());
        out[8..16].copy_from_slice(&self.next_offset.to_be_bytes());
        out[16..24].copy_from_slice(&self.max_ts.to_be_bytes());
        out[24..32].copy_from_slice(&self.first_unstable.to_be_bytes());
        out[32..40].copy_from_slice(&self.last_abort.to_be_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<PartMeta> {
        if b.len() != 24 && b.len() != 40 {
            return None;
        }
        let i = |o: usize| i64::from_be_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let txn = b.len() == 40;
        Some(PartMeta {
            log_start: i(0),
            next_offset: i(8),
            max_ts: i(16),
            first_unstable: if txn { i(24) } else { NO_OFFSET },
            last_abort: if txn { i(32) } else { NO_OFFSET },
        })
    }

    /// Kafka's last stable offset: below it, every transaction is decided.
    pub fn last_stable_offset(&self) -> i64 {
        if self.first_unstable == NO_OFFSET {
            self.next_offset
        } else {
            self.first_unstable.min(self.next_offset)
        }
    }
}

/// A [`TXNS`] row (17 bytes): a transaction of `producer_id` whose data starts at
/// `first_offset`, open (keyed by that offset) or aborted (keyed by its marker's offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnRow {
    pub aborted: bool,
    pub producer_id: i64,
    pub first_offset: i64,
}

impl TxnRow {
    pub fn encode(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[0] = self.aborted as u8;
        out[1..9].copy_from_slice(&self.producer_id.to_be_bytes());
        out[9..17].copy_from_slice(&self.first_offset.to_be_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<TxnRow> {
        let b: &[u8; 17] = b.try_into().ok()?;
        let aborted = match b[0] {
            0 => false,
            1 => true,
            _ => return None,
        };
        Some(TxnRow {
            aborted,
            producer_id: i64::from_be_bytes(b[1..9].try_into().ok()?),
            first_offset: i64::from_be_bytes(b[9..17].try_into().ok()?),
        })
    }
}

/// A stored batch ([`BATCHES`] value, 28 bytes): its place in the segment files and the
/// header fields that reads, record deletion and the time index need without its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLoc {
    pub at: SegmentPos,
    pub len: u32,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
}

impl BatchLoc {
    pub fn encode(&self) -> [u8; 28] {
        let mut out = [0u8; 28];
        out[0..4].copy_from_slice(&self.at.segment.to_be_bytes());
        out[4..12].copy_from_slice(&self.at.pos.to_be_bytes());
        out[12..16].copy_from_slice(&self.len.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        out[20..28].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<BatchLoc> {
        let b: &[u8; 28] = b.try_into().ok()?;
        let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap_or_default());
        Some(BatchLoc {
            at: SegmentPos {
                segment: u32_at(0),
                pos: u64_at(4),
            },
            len: u32_at(12),
            last_offset_delta: u32_at(16) as i32,
            max_timestamp: u64_at(20) as i64,
        })
    }

    /// Offset of the batch's last record, given its base offset (the key).
    pub fn last_offset(&self, base: i64) -> i64 {
        base + self.last_offset_delta as i64
    }
}

/// How many recent batches per producer are remembered for duplicate detection (Kafka's 5).
pub const PRODUCER_WINDOW: usize = 5;

/// One remembered batch of an idempotent producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// An idempotent producer's state on one partition: its epoch and its last batches, oldest
/// first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerState {
    pub epoch: i16,
    pub batches: Vec<SeqBatch>,
}

impl ProducerState {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(3 + 24 * self.batches.len());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.push(self.batches.len() as u8);
        for b in &self.batches {
            v.extend_from_slice(&b.first_seq.to_be_bytes());
            v.extend_from_slice(&b.last_seq.to_be_bytes());
            v.extend_from_slice(&b.base_offset.to_be_bytes());
            v.extend_from_slice(&b.last_offset.to_be_bytes());
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<ProducerState> {
        if b.len() < 3 {
            return None;
        }
        let n = b[2] as usize;
        if b.len() != 3 + 24 * n {
            return None;
        }
        let epoch = i16::from_be_bytes([b[0], b[1]]);
        let batches = (0..n)
            .map(|i| {
                let s = &b[3 + 24 * i..3 + 24 * (i + 1)];
                let i32_at =
                    |o: usize| i32::from_be_bytes(s[o..o + 4].try_into().unwrap_or_default());
                let i64_at =
                    |o: usize| i64::from_be_bytes(s[o..o + 8].try_into().unwrap_or_default());
                SeqBatch {
                    first_seq: i32_at(0),
                    last_seq: i32_at(4),
                    base_offset: i64_at(8),
                    last_offset: i64_at(16),
                }
            })
            .collect();
        Some(ProducerState { epoch, batches })
    }
}
