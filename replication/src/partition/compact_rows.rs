//! The storage side of log compaction on one replica: reading a partition's batch index
//! and batches for a cleaning pass, and swapping rewritten batches in.
//!
//! Each replica compacts its own copy (as every Kafka broker cleans its own log): the
//! rewritten batches keep their base offsets and last offset deltas, so offsets, the log
//! start and the high watermark are the same on every replica whatever each has cleaned.
//! A swap ([`replace_batches`]) runs in one writer transaction and first checks that every
//! row it replaces is still exactly what the pass read: a retention cut, DeleteRecords or
//! topic deletion that came in between wins and the swap does nothing. The commit is
//! durable (fsync'd) before segment garbage collection may see the old bytes unreferenced,
//! so a crash never brings back rows whose file is gone. The old bytes become garbage the
//! segment collector frees once no row (nor the raft log) refers to their file.

use bytes::{Bytes, BytesMut};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use crate::partition::exec::io_err;
use crate::partition::read::{first_batch_base, read_batches};
use crate::partition::retention::BatchSummary;
use crate::partition::view::GroupShared;
use crate::store::schema::{BatchLoc, BATCHES};
use crate::store::segments::Segments;
use crate::types::{BatchReplacement, IndexedBatch, PartitionId, ReplicationError};

fn storage(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::storage(e)
}

impl IndexedBatch {
    /// What retention and the compaction planner need of the batch.
    pub fn summary(&self) -> BatchSummary {
        BatchSummary {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            bytes: self.bytes,
            max_timestamp: self.max_timestamp,
        }
    }

    fn loc(&self) -> Result<BatchLoc, ReplicationError> {
        BatchLoc::decode(&self.row).ok_or_else(|| storage("batch location"))
    }
}

impl GroupShared {
    /// The batch index of `p` from its log start on, in offset order, read in one read
    /// transaction.
    pub fn compaction_index(&self, p: PartitionId) -> Result<Vec<IndexedBatch>, ReplicationError> {
        let o = self.offsets(p).ok_or(ReplicationError::UnknownPartition)?;
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(BATCHES).map_err(storage)?;
        let (t, i) = (p.topic_id, p.index);
        let first = first_batch_base(&table, p, o.log_start_offset)?;
        let mut out = Vec::new();
        for item in table
            .range((t, i, first)..=(t, i, i64::MAX))
            .map_err(storage)?
        {
            let (k, v) = item.map_err(storage)?;
            let base = k.value().2;
            let row: [u8; 28] = v
                .value()
                .try_into()
                .map_err(|_| storage("batch location"))?;
            let loc = BatchLoc::decode(&row).ok_or_else(|| storage("batch location"))?;
            out.push(IndexedBatch {
                base_offset: base,
                next_offset: loc.last_offset(base) + 1,
                bytes: loc.len as u64,
                max_timestamp: loc.max_timestamp,
                row,
            });
        }
        Ok(out)
    }

    /// The bytes of `batches` (rows from [`compaction_index`](Self::compaction_index)),
    /// each with its base offset patched in. An error when a file cannot be read (e.g. the
    /// rows were replaced or deleted since and their file collected: the pass starts over).
    pub fn read_indexed(&self, batches: &[IndexedBatch]) -> Result<Vec<Bytes>, ReplicationError> {
        let locs = batches
            .iter()
            .map(|b| Ok((b.base_offset, b.loc()?)))
            .collect::<Result<Vec<_>, ReplicationError>>()?;
        let mut buf = BytesMut::new();
        read_batches(&self.segments, &locs, &mut buf).map_err(storage)?;
        let mut all = buf.freeze();
        Ok(locs
            .iter()
            .map(|(_, l)| all.split_to((l.len as usize).min(all.len())))
            .collect())
    }
}

/// Checks a replacement before it goes to the writer: the new batch is a v2 batch with
/// the old one's base offset and last offset delta.
pub fn check_replacement(r: &BatchReplacement) -> Result<(), ReplicationError> {
    let Some(new) = &r.new else {
        return Ok(());
    };
    let h = phxq_protocol::batch::BatchHeader::parse(new).map_err(storage)?;
    let old = r.old.loc()?;
    if h.total_len() != new.len()
        || h.base_offset != r.old.base_offset
        || h.last_offset_delta != old.last_offset_delta
        || new.len() > u32::MAX as usize
    {
        return Err(storage(
            "a compacted batch must keep its base offset and last offset delta",
        ));
    }
    Ok(())
}

/// Swaps the rows of `reps` in `txn` if every old row is unchanged; false (nothing
/// written) otherwise. New bytes are appended to the node's segment files.
pub fn replace_batches(
    txn: &WriteTransaction,
    segments: &Segments,
    p: PartitionId,
    reps: &[BatchReplacement],
) -> Result<bool, redb::Error> {
    let mut batches = txn.open_table(BATCHES)?;
    let (t, i) = (p.topic_id, p.index);
    for r in reps {
        let same = batches
            .get((t, i, r.old.base_offset))?
            .is_some_and(|v| v.value() == r.old.row);
        if !same {
            return Ok(false);
        }
    }
    for r in reps {
        let key = (t, i, r.old.base_offset);
        match &r.new {
            None => {
                batches.remove(key)?;
            }
            Some(bytes) => {
                let old = BatchLoc::decode(&r.old.row).ok_or_else(|| io_err("batch location"))?;
                let loc = BatchLoc {
                    at: segments.append(bytes).map_err(redb::Error::Io)?,
                    len: bytes.len() as u32,
                    ..old
                };
                batches.insert(key, loc.encode().as_slice())?;
            }
        }
    }
    segments.note_garbage();
    Ok(true)
}
