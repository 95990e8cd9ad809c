//! A group's raft log in memory and its state shared by the log store, its readers and
//! the writer: the entries not yet released, flushed/applied marks, vote, commit index.
//!
//! Appended entries stay in memory ([`LogMem`]) from `append` until they are durable AND
//! applied: readers must see them as soon as `append` returns (openraft's rule) while the
//! writer has not committed them yet, and the state machine then applies them without
//! reading them back from disk. Memory stays bounded: past [`MEM_CAP`] bytes, durable
//! entries are dropped even if not yet applied and are read from redb instead.
//!
//! Where each Append's batches were written in the segment files is kept here too, from
//! the writer's append (or a read of the log row) until the entry is applied: the apply
//! takes the positions from memory instead of reading the log row back.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, ReadableDatabase};

use crate::raft::log_codec::{entry_len, stored_log_id};
use crate::raft::log_read::read_log;
use crate::store::log_id::decode_log_id;
use crate::store::schema::*;
use crate::store::segments::{SegmentPos, Segments};
use crate::store::writer::WriterStats;
use crate::types::{Entry, LogId, Vote};

/// Bytes of durable-but-unapplied entries kept in memory at most.
pub const MEM_CAP: usize = 256 << 20;

#[derive(Default)]
pub struct LogMem {
    /// Contiguous entries not yet released, with their encoded sizes.
    pub(crate) entries: VecDeque<(Entry, usize)>,
    pub(crate) bytes: usize,
    /// Bumped by every truncation: flush notices of older appends are then ignored.
    pub(crate) gen: u64,
    pub(crate) flushed: Option<u64>,
    applied: Option<u64>,
    pub(crate) last_log_id: Option<LogId>,
    pub(crate) last_purged: Option<LogId>,
    pub(crate) vote: Option<Vote>,
    /// Segment positions of the batches of logged, not yet applied Append entries, by
    /// index, with the entry's log id (an index may be truncated and logged again).
    pub(crate) positions: BTreeMap<u64, (LogId, Vec<SegmentPos>)>,
    pub(crate) committed: Option<LogId>,
}

impl LogMem {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    /// Releases entries from the front that are durable and applied (or over the cap).
    fn trim(&mut self) {
        while let Some((e, len)) = self.entries.front() {
            let i = e.log_id.index;
            let durable = self.flushed.is_some_and(|f| i <= f);
            let applied = self.applied.is_some_and(|a| i <= a);
            if durable && (applied || self.bytes > MEM_CAP) {
                self.bytes -= *len;
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }
}

/// State of one group's log shared by the store, its readers and the writer.
pub struct LogShared {
    pub group: u32,
    db: Arc<Database>,
    segments: Arc<Segments>,
    /// The writer's counters: whether it can still make anything durable.
    stats: Arc<WriterStats>,
    pub(crate) max_append_bytes: usize,
    mem: Mutex<LogMem>,
    /// Signalled when entries leave memory (see [`LogShared::wait_for_room`]).
    pub(crate) room: tokio::sync::Notify,
}

impl LogShared {
    /// Loads the group's log state from redb.
    pub fn open(
        group: u32,
        db: Arc<Database>,
        segments: Arc<Segments>,
        stats: Arc<WriterStats>,
        max_append_bytes: usize,
    ) -> io::Result<Arc<LogShared>> {
        let mut mem = LogMem::default();
        let txn = db.begin_read().map_err(io::Error::other)?;
        let meta = txn.open_table(GROUP_META).map_err(io::Error::other)?;
        let get = |k: u8| -> io::Result<Option<Vec<u8>>> {
            Ok(meta
                .get((group, k))
                .map_err(io::Error::other)?
                .map(|v| v.value().to_vec()))
        };
        if let Some(v) = get(META_VOTE)? {
            mem.vote = Some(serde_json::from_slice(&v).map_err(io::Error::other)?);
        }
        if let Some(v) = get(META_COMMITTED)? {
            mem.committed = Some(decode_log_id(&v).map_err(io::Error::other)?);
        }
        if let Some(v) = get(META_PURGED)? {
            mem.last_purged = Some(decode_log_id(&v).map_err(io::Error::other)?);
        }
        let log = txn.open_table(LOG).map_err(io::Error::other)?;
        let last = log
            .range((group, 0)..=(group, u64::MAX))
            .map_err(io::Error::other)?
            .next_back();
        mem.last_log_id = match last {
            Some(item) => {
                let (k, v) = item.map_err(io::Error::other)?;
                Some(stored_log_id(k.value().1, v.value()).map_err(io::Error::other)?)
            }
            None => mem.last_purged,
        };
        let flushed = mem.last_log_id.map(|l| l.index);
        mem.flushed = flushed;
        Ok(Arc::new(LogShared {
            group,
            db,
            segments,
            stats,
            max_append_bytes,
            mem: Mutex::new(mem),
            room: tokio::sync::Notify::new(),
        }))
    }

    pub(crate) fn mem(&self) -> MutexGuard<'_, LogMem> {
        self.mem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Index of the last entry known durable.
    pub fn flushed_index(&self) -> Option<u64> {
        self.mem().flushed
    }

    /// Called by the writer once entries up to `last` of generation `gen` are durable.
    pub fn on_flushed(&self, gen: u64, last: u64) {
        let mut m = self.mem();
        if m.gen == gen && m.flushed.is_none_or(|f| f < last) {
            m.flushed = Some(last);
            m.trim();
            self.room.notify_waiters();
        }
    }

    /// Notes where the batches of the Append entry `log_id` were written (by the writer,
    /// for generation `gen`: ignored when a truncation came after).
    pub fn note_positions(&self, gen: u64, log_id: LogId, at: Vec<SegmentPos>) {
        let mut m = self.mem();
        if m.gen == gen {
            m.positions.insert(log_id.index, (log_id, at));
        }
    }

    /// Takes the noted segment positions of entry `log_id` (for its apply); None when
    /// there are none for exactly this entry.
    pub fn take_positions(&self, log_id: &LogId) -> Option<Vec<SegmentPos>> {
        let mut m = self.mem();
        match m.positions.remove(&log_id.index) {
            Some((id, at)) if id == *log_id => Some(at),
            _ => None,
        }
    }

    /// Called by the state machine once entries up to `index` are applied.
    pub fn on_applied(&self, index: u64) {
        let mut m = self.mem();
        if m.applied.is_none_or(|a| a < index) {
            m.applied = Some(index);
            m.trim();
            self.room.notify_waiters();
        }
    }

    /// Backpressure for proposers: waits while the group holds more than [`MEM_CAP`] bytes
    /// of entries not yet durable and applied (a disk slower than the producers).
    /// Gives up waiting once the writer cannot make progress, so that the proposal fails
    /// with the writer's error instead of hanging.
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            if self.mem().bytes <= MEM_CAP || self.stats.unusable() {
                return;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), notified).await;
        }
    }

    /// Entries in `[start, end)`, from memory where held and from redb below that.
    pub(crate) fn entries(
        &self,
        start: u64,
        end: u64,
        cap: Option<usize>,
    ) -> io::Result<Vec<Entry>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let (disk_end, from_mem) = {
            let m = self.mem();
            let first = m.first_index().unwrap_or(u64::MAX);
            let mut bytes = 0usize;
            let mut v = Vec::new();
            for (e, len) in m.entries.iter() {
                let i = e.log_id.index;
                if i < start {
                    continue;
                }
                if i >= end || cap.is_some_and(|c| !v.is_empty() && bytes + len > c) {
                    break;
                }
                bytes += len;
                v.push(e.clone());
            }
            (end.min(first), v)
        };
        if start >= disk_end {
            return Ok(from_mem);
        }
        // Entries below the in-memory ones were released only after their commit, so this
        // read transaction (begun later) sees them.
        let read = read_log(&self.db, &self.segments, self.group, start, disk_end, cap)?;
        let mut out = Vec::with_capacity(read.len());
        {
            // Positions of entries that will be applied (e.g. after a restart): never
            // overwrite ones the writer noted, which are at least as new.
            let mut m = self.mem();
            for (e, at) in read {
                let i = e.log_id.index;
                if !at.is_empty() && m.applied.is_none_or(|a| i > a) {
                    m.positions.entry(i).or_insert((e.log_id, at));
                }
                out.push(e);
            }
        }
        let disk_bytes: usize = out.iter().map(entry_len).sum();
        let complete = out.last().map(|e| e.log_id.index + 1) == Some(disk_end);
        if complete {
            let mut bytes = disk_bytes;
            for e in from_mem {
                let len = entry_len(&e);
                if cap.is_some_and(|c| bytes + len > c) {
                    break;
                }
                bytes += len;
                out.push(e);
            }
        }
        Ok(out)
    }
}
