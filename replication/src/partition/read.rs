//! Reading a group's partitions and key-value space straight from redb read transactions
//! (MVCC: concurrent with the writer, no locking through openraft) and the segment files.
//!
//! A read that fails (redb or the file system) is an error the caller sees as
//! [`ReplicationError::Storage`]; only a row that does not exist is "nothing there".

use std::collections::BTreeSet;
use std::io;

use bytes::{Bytes, BytesMut};
use phxq_protocol::batch::{set_base_offset, set_partition_leader_epoch};
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use crate::partition::retention::{self, BatchSummary, Segmenter};
use crate::partition::view::GroupShared;
use crate::store::schema::*;
use crate::store::segments::{SegmentRefs, Segments};
use crate::types::{
    PartitionId, ReadLimit, ReadResult, ReplicationError, RetentionCut, RetentionPolicy,
    StoredBatch,
};

/// A retention cut moves the log start in steps of at most this many batches (one Raft
/// entry each): deleting a step's rows takes the writer a few milliseconds at most.
const RETENTION_STEP_BATCHES: u64 = 4096;

/// A read whose batch bytes are gone (compaction swapped them and their file was
/// collected in between) reads the index again, this many times at most.
const READ_RETRIES: usize = 2;

fn storage(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::storage(e)
}

impl GroupShared {
    pub fn read(
        &self,
        p: PartitionId,
        offset: i64,
        limit: ReadLimit,
        out: &mut BytesMut,
    ) -> Result<ReadResult, ReplicationError> {
        // Log compaction may swap the batches read and their file may be collected
        // between the index read and the file read: the index is then read again.
        let mut attempt = 0;
        loop {
            let mark = out.len();
            match self.read_once(p, offset, limit, out) {
                Err(ReplicationError::Storage(e)) if attempt < READ_RETRIES => {
                    tracing::debug!(?p, offset, error = %e, "read again after a failed batch read");
                    out.truncate(mark);
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    fn read_once(
        &self,
        p: PartitionId,
        offset: i64,
        limit: ReadLimit,
        out: &mut BytesMut,
    ) -> Result<ReadResult, ReplicationError> {
        let o = self.offsets(p).ok_or(ReplicationError::UnknownPartition)?;
        if offset < o.log_start_offset || offset > o.high_watermark {
            return Err(ReplicationError::OffsetOutOfRange {
                offset,
                log_start: o.log_start_offset,
                high_watermark: o.high_watermark,
            });
        }
        let mut res = ReadResult::default();
        if offset == o.high_watermark {
            return Ok(res);
        }
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(BATCHES).map_err(storage)?;
        let (t, i) = (p.topic_id, p.index);
        // The batch containing `offset` is the last one starting at or before it.
        let start = match table
            .range((t, i, i64::MIN)..=(t, i, offset))
            .map_err(storage)?
            .next_back()
        {
            Some(item) => item.map_err(storage)?.0.value().2,
            None => offset,
        };
        let mut picked: Vec<(i64, BatchLoc)> = Vec::new();
        for item in table
            .range((t, i, start)..=(t, i, i64::MAX))
            .map_err(storage)?
        {
            let (k, v) = item.map_err(storage)?;
            let base = k.value().2;
            let loc = BatchLoc::decode(v.value()).ok_or_else(|| storage("batch location"))?;
            if loc.last_offset(base) < offset {
                continue;
            }
            if base >= limit.below {
                break;
            }
            let whole_first = res.batches == 0 && limit.first_batch_whole;
            if !whole_first && res.bytes + loc.len as usize > limit.max_bytes {
                break;
            }
            picked.push((base, loc));
            res.batches += 1;
            res.bytes += loc.len as usize;
        }
        drop(table);
        let epochs = match picked.last() {
            Some((last, _)) => epochs_up_to(&txn, p, *last)?,
            None => Vec::new(),
        };
        drop(txn);
        let mark = out.len();
        if let Err(e) = read_batches(&self.segments, &picked, out) {
            // Retention or DeleteRecords may have dropped these batches and their file
            // since the rows were read: then the offset is below the log start now.
            if let Some(o) = self.offsets(p).filter(|o| offset < o.log_start_offset) {
                return Err(ReplicationError::OffsetOutOfRange {
                    offset,
                    log_start: o.log_start_offset,
                    high_watermark: o.high_watermark,
                });
            }
            return Err(storage(e));
        }
        stamp_epochs(&picked, &epochs, &mut out[mark..]);
        Ok(res)
    }

    /// The leader epoch and its end offset that OffsetForLeaderEpoch answers for `epoch`
    /// (Kafka's `LeaderEpochFileCache.endOffsetFor`), with `current` the partition's
    /// leader epoch now: `current` ends at the high watermark (phxq serves only what is
    /// committed, which Raft never truncates); an older epoch ends where the next one
    /// with batches starts (the floor epoch is the newest at or below the one asked
    /// for); an epoch above `current`, or -1, is unknown: `(-1, -1)`.
    pub fn end_offset_for_epoch(
        &self,
        p: PartitionId,
        epoch: i32,
        current: i32,
    ) -> Result<(i32, i64), ReplicationError> {
        let o = self.offsets(p).ok_or(ReplicationError::UnknownPartition)?;
        if epoch < 0 || epoch > current {
            return Ok((-1, -1));
        }
        if epoch == current {
            return Ok((epoch, o.high_watermark));
        }
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(EPOCHS).map_err(storage)?;
        let (t, i) = (p.topic_id, p.index);
        let floor = match table
            .range((t, i, i32::MIN)..=(t, i, epoch))
            .map_err(storage)?
            .next_back()
        {
            Some(item) => Some(item.map_err(storage)?.0.value().2),
            None => None,
        };
        let next = match table
            .range((t, i, epoch + 1)..=(t, i, i32::MAX))
            .map_err(storage)?
            .next()
        {
            Some(item) => {
                let (k, v) = item.map_err(storage)?;
                Some((k.value().2, v.value()))
            }
            None => None,
        };
        Ok(match (floor, next) {
            // No newer epoch appended anything: the asked-for one runs to the end.
            (f, None) => (f.unwrap_or(epoch), o.high_watermark),
            (f, Some((_, start))) => (f.unwrap_or(epoch), start),
        })
    }

    /// What `policy` drops from the head of `p` at `now_ms` (see `partition::retention`),
    /// from the batches this replica has applied; None when nothing goes. Reads the batch
    /// index from the log start on, up to the first segment the time limit keeps when
    /// there is no size limit, and all of it when there is.
    pub fn retention_cut(
        &self,
        p: PartitionId,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<Option<RetentionCut>, ReplicationError> {
        if !policy.limits() {
            return Ok(None);
        }
        let o = self.offsets(p).ok_or(ReplicationError::UnknownPartition)?;
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(BATCHES).map_err(storage)?;
        let (t, i) = (p.topic_id, p.index);
        let first = first_batch_base(&table, p, o.log_start_offset)?;
        let mut segmenter = Segmenter::new(policy);
        let mut segments = Vec::new();
        let mut step_points = Vec::new();
        for (seen, item) in (0u64..).zip(
            table
                .range((t, i, first)..=(t, i, i64::MAX))
                .map_err(storage)?,
        ) {
            let (k, v) = item.map_err(storage)?;
            let base = k.value().2;
            let loc = BatchLoc::decode(v.value()).ok_or_else(|| storage("batch location"))?;
            if seen > 0 && seen.is_multiple_of(RETENTION_STEP_BATCHES) {
                step_points.push(base);
            }
            let b = BatchSummary {
                base_offset: base,
                next_offset: loc.last_offset(base) + 1,
                bytes: loc.len as u64,
                max_timestamp: loc.max_timestamp,
            };
            if let Some(closed) = segmenter.push(b) {
                let keep = !retention::expired(&closed, policy, now_ms);
                segments.push(closed);
                // Without a size limit, the first segment kept ends the cut.
                if keep && policy.retention_bytes.is_none() {
                    break;
                }
            }
        }
        if policy.retention_bytes.is_some()
            || segments
                .last()
                .is_none_or(|s| retention::expired(s, policy, now_ms))
        {
            segments.extend(segmenter.finish());
        }
        let Some(c) = retention::cut(&segments, policy, now_ms) else {
            return Ok(None);
        };
        let mut steps: Vec<i64> = step_points
            .into_iter()
            .filter(|s| *s > o.log_start_offset && *s < c.log_start)
            .collect();
        steps.push(c.log_start);
        Ok(Some(RetentionCut {
            log_start: c.log_start,
            steps,
            segments: c.segments,
            batches: c.batches,
            bytes: c.bytes,
        }))
    }

    /// The batch of `p` at base offset `base`, as the time index `txn` holds names it.
    fn stored_batch(
        &self,
        txn: &ReadTransaction,
        p: PartitionId,
        mut base: i64,
    ) -> Result<StoredBatch, ReplicationError> {
        let loc = {
            let table = txn.open_table(BATCHES).map_err(storage)?;
            // Log compaction removes batches none of whose records survive, leaving time
            // index rows that name them: the next batch holds what comes after.
            let mut range = table
                .range((p.topic_id, p.index, base)..=(p.topic_id, p.index, i64::MAX))
                .map_err(storage)?;
            let (k, v) = range
                .next()
                .ok_or_else(|| storage(format!("time index names a missing batch at {base}")))?
                .map_err(storage)?;
            base = k.value().2;
            BatchLoc::decode(v.value()).ok_or_else(|| storage("batch location"))?
        };
        let mut out = BytesMut::new();
        read_batches(&self.segments, &[(base, loc)], &mut out).map_err(storage)?;
        Ok(StoredBatch {
            base_offset: base,
            batch: out.freeze(),
        })
    }

    /// The first batch of `p` whose max timestamp is >= `timestamp`; None when there is none.
    pub fn batch_by_timestamp(
        &self,
        p: PartitionId,
        timestamp: i64,
    ) -> Result<Option<StoredBatch>, ReplicationError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let base = {
            let time = txn.open_table(TIME_INDEX).map_err(storage)?;
            let mut range = time
                .range((p.topic_id, p.index, timestamp)..=(p.topic_id, p.index, i64::MAX))
                .map_err(storage)?;
            match range.next() {
                Some(item) => item.map_err(storage)?.1.value(),
                None => return Ok(None),
            }
        };
        self.stored_batch(&txn, p, base).map(Some)
    }

    /// The largest timestamp of `p` and the batch holding it; None when `p` has no batch.
    pub fn max_timestamp(
        &self,
        p: PartitionId,
    ) -> Result<Option<(i64, StoredBatch)>, ReplicationError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let (ts, base) = {
            let time = txn.open_table(TIME_INDEX).map_err(storage)?;
            let mut range = time
                .range((p.topic_id, p.index, i64::MIN)..=(p.topic_id, p.index, i64::MAX))
                .map_err(storage)?;
            match range.next_back() {
                Some(item) => {
                    let (k, v) = item.map_err(storage)?;
                    (k.value().2, v.value())
                }
                None => return Ok(None),
            }
        };
        Ok(Some((ts, self.stored_batch(&txn, p, base)?)))
    }

    /// The aborted transactions of `p` that a `read_committed` fetch of `[from, upto)`
    /// must be told about: `(producer id, first offset)` of each one whose records
    /// `[first offset, abort marker]` meet that range, in first-offset order (Kafka's
    /// `collectAbortedTransactions`).
    pub fn aborted_transactions(
        &self,
        p: PartitionId,
        from: i64,
        upto: i64,
    ) -> Result<Vec<(i64, i64)>, ReplicationError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let txns = txn.open_table(TXNS).map_err(storage)?;
        let mut out = Vec::new();
        for item in txns
            .range((p.topic_id, p.index, from)..=(p.topic_id, p.index, i64::MAX))
            .map_err(storage)?
        {
            let (_, v) = item.map_err(storage)?;
            let row = TxnRow::decode(v.value()).ok_or_else(|| storage("transaction row"))?;
            if row.aborted && row.first_offset < upto {
                out.push((row.producer_id, row.first_offset));
            }
        }
        out.sort_by_key(|&(_, first)| first);
        Ok(out)
    }

    /// The value of `key` in the group's key-value space; None when the key is absent.
    pub fn kv_get(&self, key: &[u8]) -> Result<Option<Bytes>, ReplicationError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let kv = txn.open_table(KV).map_err(storage)?;
        let v = kv.get((self.id.0, key)).map_err(storage)?;
        Ok(v.map(|v| Bytes::copy_from_slice(v.value())))
    }

    /// Every key starting with `prefix` and its value, in key order; all or an error.
    pub fn kv_scan(&self, prefix: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ReplicationError> {
        let mut out = Vec::new();
        let txn = self.db.begin_read().map_err(storage)?;
        let kv = txn.open_table(KV).map_err(storage)?;
        for item in kv.range((self.id.0, prefix)..).map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            let (g, key) = k.value();
            if g != self.id.0 || !key.starts_with(prefix) {
                break;
            }
            out.push((
                Bytes::copy_from_slice(key),
                Bytes::copy_from_slice(v.value()),
            ));
        }
        Ok(out)
    }
}

/// The segment files the partition batch index refers to (for segment garbage collection).
pub struct BatchRefs;

impl SegmentRefs for BatchRefs {
    fn add_live(&self, txn: &ReadTransaction, live: &mut BTreeSet<u32>) -> io::Result<()> {
        let batches = txn.open_table(BATCHES).map_err(io::Error::other)?;
        for item in batches.iter().map_err(io::Error::other)? {
            let (_, v) = item.map_err(io::Error::other)?;
            let loc =
                BatchLoc::decode(v.value()).ok_or_else(|| io::Error::other("batch location"))?;
            live.insert(loc.at.segment);
        }
        Ok(())
    }
}

/// `p`'s leader epochs (first offset, epoch) whose first offset is at or below `last`,
/// oldest first: the epochs of batches up to `last`.
fn epochs_up_to(
    txn: &redb::ReadTransaction,
    p: PartitionId,
    last: i64,
) -> Result<Vec<(i64, i32)>, ReplicationError> {
    let table = txn.open_table(EPOCHS).map_err(storage)?;
    let mut out = Vec::new();
    let range = (p.topic_id, p.index, i32::MIN)..=(p.topic_id, p.index, i32::MAX);
    for item in table.range(range).map_err(storage)? {
        let (k, v) = item.map_err(storage)?;
        if v.value() > last {
            break;
        }
        out.push((v.value(), k.value().2));
    }
    Ok(out)
}

/// Writes each batch's leader epoch into its header (the field is outside the CRC): the
/// epoch whose first offset is the newest at or below the batch's base. Batches older
/// than every epoch row (written before epochs were kept) keep what they carry.
fn stamp_epochs(picked: &[(i64, BatchLoc)], epochs: &[(i64, i32)], out: &mut [u8]) {
    if epochs.is_empty() {
        return;
    }
    let mut o = 0usize;
    for (base, loc) in picked {
        let len = loc.len as usize;
        let at = epochs.partition_point(|(start, _)| *start <= *base);
        if at > 0 && out.len() >= o + len && len >= 16 {
            set_partition_leader_epoch(&mut out[o..o + len], epochs[at - 1].1);
        }
        o += len;
    }
}

/// Appends the bytes of `batches` (base offset, location) to `out`, each with its base
/// offset patched in. Batches that follow each other in a segment file are read with one
/// positional read.
pub fn read_batches(
    segments: &Segments,
    batches: &[(i64, BatchLoc)],
    out: &mut BytesMut,
) -> io::Result<()> {
    let total: usize = batches.iter().map(|(_, l)| l.len as usize).sum();
    out.reserve(total);
    let mut i = 0;
    while i < batches.len() {
        // A run of contiguous batches: [i, j).
        let first = batches[i].1;
        let mut end = first.at.pos + first.len as u64;
        let mut j = i + 1;
        while j < batches.len()
            && batches[j].1.at.segment == first.at.segment
            && batches[j].1.at.pos == end
        {
            end += batches[j].1.len as u64;
            j += 1;
        }
        let start = out.len();
        out.resize(start + (end - first.at.pos) as usize, 0);
        segments.read(first.at, &mut out[start..])?;
        let mut o = start;
        for (base, loc) in &batches[i..j] {
            if loc.len < 8 {
                return Err(io::Error::other("stored batch shorter than its header"));
            }
            set_base_offset(&mut out[o..o + loc.len as usize], *base);
            o += loc.len as usize;
        }
        i = j;
    }
    Ok(())
}

/// Base offset of the batch holding `log_start` (it may begin before it), or `log_start`
/// when no batch starts at or before it: where a scan of `p`'s kept batches begins.
pub(crate) fn first_batch_base(
    table: &impl ReadableTable<(u128, i32, i64), &'static [u8]>,
    p: PartitionId,
    log_start: i64,
) -> Result<i64, ReplicationError> {
    let (t, i) = (p.topic_id, p.index);
    Ok(
        match table
            .range((t, i, i64::MIN)..=(t, i, log_start))
            .map_err(storage)?
            .next_back()
        {
            Some(item) => item.map_err(storage)?.0.value().2,
            None => log_start,
        },
    )
}
