//! One group on this node: the state shared by its state machine, the writer and readers
//! (partition offset cache, applied counter), and the read paths that go straight to redb
//! read transactions (MVCC: concurrent with the writer, no locking through openraft).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use phxq_protocol::batch::set_base_offset;
use redb::{Database, ReadableDatabase};
use tokio::sync::watch;

use crate::api::{
    GroupId, PartitionId, PartitionOffsets, ReadLimit, ReadResult, ReplicationError, StoredBatch,
};
use crate::apply::{offsets_of, ApplyEffect};
use crate::schema::*;
use crate::segments::Segments;

pub struct GroupShared {
    pub id: GroupId,
    pub db: Arc<Database>,
    /// Where the batch bytes are.
    pub segments: Arc<Segments>,
    /// Offsets of every partition of the group as last committed by the writer: O(partitions).
    offsets: RwLock<HashMap<PartitionId, PartitionOffsets>>,
    /// Index of the last applied log entry whose effects are committed and visible to reads
    /// (it grows with every applied entry).
    applied_tx: watch::Sender<u64>,
    /// Term of the last applied entry visible to reads. Once it reaches a leader's term,
    /// every entry of earlier terms is visible too (a leader opens its term with an entry).
    applied_term: std::sync::atomic::AtomicU64,
}

fn load_offsets(db: &Database, id: GroupId) -> io::Result<HashMap<PartitionId, PartitionOffsets>> {
    let mut offsets = HashMap::new();
    let txn = db.begin_read().map_err(io::Error::other)?;
    let parts = txn.open_table(PARTITIONS).map_err(io::Error::other)?;
    let range = (id.0, 0u128, i32::MIN)..=(id.0, u128::MAX, i32::MAX);
    for item in parts.range(range).map_err(io::Error::other)? {
        let (k, v) = item.map_err(io::Error::other)?;
        let (_, topic_id, index) = k.value();
        let m = PartMeta::decode(v.value()).ok_or_else(|| io::Error::other("partition meta"))?;
        offsets.insert(PartitionId { topic_id, index }, offsets_of(&m));
    }
    Ok(offsets)
}

fn storage(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::Storage(e.to_string())
}

impl GroupShared {
    /// Loads the group's partition offsets from redb.
    pub fn load(
        id: GroupId,
        db: Arc<Database>,
        segments: Arc<Segments>,
    ) -> io::Result<Arc<GroupShared>> {
        let offsets = load_offsets(&db, id)?;
        let (applied, _) = crate::state_machine::read_applied(&db, id.0)?;
        let (applied_tx, _) = watch::channel(applied.map_or(0, |l| l.index));
        Ok(Arc::new(GroupShared {
            id,
            db,
            segments,
            offsets: RwLock::new(offsets),
            applied_tx,
            applied_term: applied.map_or(0, |l| l.leader_id.term).into(),
        }))
    }

    /// Re-reads offsets and the applied index from redb after the group's state was
    /// replaced wholesale (snapshot install). The offsets lock is held across the read
    /// transaction, so a publish of a later commit lands after it and is not lost.
    pub fn reload(&self) -> io::Result<()> {
        {
            let mut map = self.offsets.write().unwrap_or_else(|p| p.into_inner());
            *map = load_offsets(&self.db, self.id)?;
        }
        let (applied, _) = crate::state_machine::read_applied(&self.db, self.id.0)?;
        let applied = applied.map_or(0, |l| l.index);
        self.applied_tx.send_if_modified(|n| {
            let grew = applied > *n;
            *n = (*n).max(applied);
            grew
        });
        Ok(())
    }

    /// Publishes what a committed apply changed.
    pub fn publish(&self, effect: &ApplyEffect) {
        if !effect.offsets.is_empty() {
            let mut map = self.offsets.write().unwrap_or_else(|p| p.into_inner());
            for (p, o) in &effect.offsets {
                match o {
                    Some(o) => map.insert(*p, *o),
                    None => map.remove(p),
                };
            }
        }
        if let Some(last) = effect.last_applied {
            self.applied_term
                .fetch_max(last.leader_id.term, std::sync::atomic::Ordering::Release);
            self.applied_tx.send_if_modified(|n| {
                let grew = last.index > *n;
                *n = (*n).max(last.index);
                grew
            });
        }
    }

    /// Term of the last applied entry visible to reads.
    pub fn applied_term(&self) -> u64 {
        self.applied_term.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    pub fn offsets(&self, p: PartitionId) -> Option<PartitionOffsets> {
        self.offsets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&p)
            .copied()
    }

    pub fn read(
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
            let whole_first = res.batches == 0 && limit.first_batch_whole;
            if !whole_first && res.bytes + loc.len as usize > limit.max_bytes {
                break;
            }
            picked.push((base, loc));
            res.batches += 1;
            res.bytes += loc.len as usize;
        }
        drop(table);
        drop(txn);
        read_batches(&self.segments, &picked, out).map_err(storage)?;
        Ok(res)
    }

    fn stored_batch(&self, p: PartitionId, base: i64) -> Option<StoredBatch> {
        let loc = {
            let txn = self.db.begin_read().ok()?;
            let table = txn.open_table(BATCHES).ok()?;
            let v = table.get((p.topic_id, p.index, base)).ok()??;
            BatchLoc::decode(v.value())?
        };
        let mut out = BytesMut::new();
        read_batches(&self.segments, &[(base, loc)], &mut out)
            .map_err(|e| tracing::warn!(error = %e, "cannot read a stored batch"))
            .ok()?;
        Some(StoredBatch {
            base_offset: base,
            batch: out.freeze(),
        })
    }

    pub fn batch_by_timestamp(&self, p: PartitionId, timestamp: i64) -> Option<StoredBatch> {
        let base = {
            let txn = self.db.begin_read().ok()?;
            let time = txn.open_table(TIME_INDEX).ok()?;
            let mut range = time
                .range((p.topic_id, p.index, timestamp)..=(p.topic_id, p.index, i64::MAX))
                .ok()?;
            range.next()?.ok()?.1.value()
        };
        self.stored_batch(p, base)
    }

    pub fn max_timestamp(&self, p: PartitionId) -> Option<(i64, StoredBatch)> {
        let (ts, base) = {
            let txn = self.db.begin_read().ok()?;
            let time = txn.open_table(TIME_INDEX).ok()?;
            let mut range = time
                .range((p.topic_id, p.index, i64::MIN)..=(p.topic_id, p.index, i64::MAX))
                .ok()?;
            let (k, v) = range.next_back()?.ok()?;
            (k.value().2, v.value())
        };
        Some((ts, self.stored_batch(p, base)?))
    }

    pub fn kv_get(&self, key: &[u8]) -> Option<Bytes> {
        let txn = self.db.begin_read().ok()?;
        let kv = txn.open_table(KV).ok()?;
        let v = kv.get((self.id.0, key)).ok()??;
        Some(Bytes::copy_from_slice(v.value()))
    }

    pub fn kv_scan(&self, prefix: &[u8]) -> Vec<(Bytes, Bytes)> {
        let mut out = Vec::new();
        let Ok(txn) = self.db.begin_read() else {
            return out;
        };
        let Ok(kv) = txn.open_table(KV) else {
            return out;
        };
        let Ok(range) = kv.range((self.id.0, prefix)..) else {
            return out;
        };
        for item in range {
            let Ok((k, v)) = item else { break };
            let (g, key) = k.value();
            if g != self.id.0 || !key.starts_with(prefix) {
                break;
            }
            out.push((
                Bytes::copy_from_slice(key),
                Bytes::copy_from_slice(v.value()),
            ));
        }
        out
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
