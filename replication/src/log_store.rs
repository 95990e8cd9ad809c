//! A group's raft log: openraft's `RaftLogStorage` and `RaftLogReader` over the node's redb
//! database, written through the group-commit writer.
//!
//! Appended entries stay in memory ([`LogMem`]) from `append` until they are durable AND
//! applied: readers must see them as soon as `append` returns (openraft's rule) while the
//! writer has not committed them yet, and the state machine then applies them without
//! reading them back from disk. Memory stays bounded: past [`MEM_CAP`] bytes, durable
//! entries are dropped even if not yet applied and are read from redb instead.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use redb::{Database, ReadableDatabase};
use tokio::sync::oneshot;

use crate::codec::{decode_log_id, entry_len};
use crate::schema::*;
use crate::types::{Entry, IOFlushed, LogId, TypeConfig, Vote};
use crate::writer::{read_log, Request, Writer};

/// Bytes of durable-but-unapplied entries kept in memory at most.
const MEM_CAP: usize = 256 << 20;

#[derive(Default)]
pub struct LogMem {
    /// Contiguous entries not yet released, with their encoded sizes.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
    /// Bumped by every truncation: flush notices of older appends are then ignored.
    gen: u64,
    flushed: Option<u64>,
    applied: Option<u64>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
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
    writer: Writer,
    max_append_bytes: usize,
    mem: Mutex<LogMem>,
    /// Signalled when entries leave memory (see [`LogShared::wait_for_room`]).
    room: tokio::sync::Notify,
}

impl LogShared {
    /// Loads the group's log state from redb.
    pub fn open(
        group: u32,
        db: Arc<Database>,
        writer: Writer,
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
                Some(
                    crate::codec::stored_log_id(k.value().1, v.value())
                        .map_err(io::Error::other)?,
                )
            }
            None => mem.last_purged,
        };
        let flushed = mem.last_log_id.map(|l| l.index);
        mem.flushed = flushed;
        Ok(Arc::new(LogShared {
            group,
            db,
            writer,
            max_append_bytes,
            mem: Mutex::new(mem),
            room: tokio::sync::Notify::new(),
        }))
    }

    fn mem(&self) -> MutexGuard<'_, LogMem> {
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
            if self.mem().bytes <= MEM_CAP || self.writer.unusable() {
                return;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), notified).await;
        }
    }

    /// Entries in `[start, end)`, from memory where held and from redb below that.
    fn entries(&self, start: u64, end: u64, cap: Option<usize>) -> io::Result<Vec<Entry>> {
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
        let mut out = read_log(
            &self.db,
            &self.writer.segments,
            self.group,
            start,
            disk_end,
            cap,
        )?;
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

/// The log store of one group (also its own log reader).
#[derive(Clone)]
pub struct LogStore {
    pub shared: Arc<LogShared>,
}

fn range_to(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to(&range);
        self.shared.entries(start, end, None)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.mem().vote)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        self.shared
            .entries(start, end, Some(self.shared.max_append_bytes))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let m = self.shared.mem();
        Ok(LogState {
            last_purged_log_id: m.last_purged,
            last_log_id: m.last_log_id.or(m.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let json = serde_json::to_vec(vote).map_err(io::Error::other)?;
        let (done, rx) = oneshot::channel();
        self.shared.writer.submit(Request::SaveVote {
            group: self.shared.group,
            vote: json,
            done: Some(done),
        });
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("storage writer stopped")))?;
        self.shared.mem().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.shared.mem().committed = committed;
        self.shared.writer.submit(Request::SaveCommitted {
            group: self.shared.group,
            log_id: committed,
        });
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.shared.mem().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id) else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let mut bytes = 0;
        let gen = {
            let mut m = self.shared.mem();
            for e in &entries {
                let len = entry_len(e);
                bytes += len;
                m.bytes += len;
                m.entries.push_back((e.clone(), len));
            }
            m.last_log_id = Some(last);
            m.gen
        };
        self.shared.writer.submit(Request::Append {
            log: self.shared.clone(),
            gen,
            entries,
            bytes,
            callback: Some(callback),
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let after = last_log_id.map(|l| l.index);
        {
            let mut m = self.shared.mem();
            while let Some((e, len)) = m.entries.back() {
                if after.is_some_and(|a| e.log_id.index <= a) {
                    break;
                }
                m.bytes -= *len;
                m.entries.pop_back();
            }
            m.gen += 1;
            if m.flushed.is_some_and(|f| after.is_none_or(|a| f > a)) {
                m.flushed = after;
            }
            m.last_log_id = last_log_id.or(m.last_purged);
        }
        self.shared.room.notify_waiters();
        self.shared.writer.submit(Request::Truncate {
            group: self.shared.group,
            after,
        });
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut m = self.shared.mem();
            while let Some((e, len)) = m.entries.front() {
                if e.log_id.index > log_id.index {
                    break;
                }
                m.bytes -= *len;
                m.entries.pop_front();
            }
            m.last_purged = Some(log_id);
            if m.last_log_id.is_none_or(|l| l.index < log_id.index) {
                m.last_log_id = Some(log_id);
            }
        }
        self.shared.room.notify_waiters();
        self.shared.writer.submit(Request::Purge {
            group: self.shared.group,
            upto: log_id,
        });
        Ok(())
    }
}
