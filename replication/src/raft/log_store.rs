//! A group's raft log as openraft sees it: `RaftLogStorage` and `RaftLogReader` over the
//! in-memory log (`log_mem`) and the node's redb database, written through the
//! group-commit writer.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use tokio::sync::oneshot;

use crate::raft::log_codec::entry_len;
use crate::raft::log_mem::LogShared;
use crate::raft::work::{RaftWork, RaftWriter};
use crate::types::{Entry, IOFlushed, LogId, TypeConfig, Vote};

/// The log store of one group (also its own log reader).
#[derive(Clone)]
pub struct LogStore {
    pub shared: Arc<LogShared>,
    pub writer: RaftWriter,
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
        self.writer.submit(RaftWork::SaveVote {
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
        self.writer.submit(RaftWork::SaveCommitted {
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
        self.writer.submit(RaftWork::Append {
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
            let from = after.map_or(0, |a| a + 1);
            drop(m.positions.split_off(&from));
            if m.flushed.is_some_and(|f| after.is_none_or(|a| f > a)) {
                m.flushed = after;
            }
            m.last_log_id = last_log_id.or(m.last_purged);
        }
        self.shared.room.notify_waiters();
        self.writer.submit(RaftWork::Truncate {
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
            m.positions = m.positions.split_off(&(log_id.index + 1));
            if m.last_log_id.is_none_or(|l| l.index < log_id.index) {
                m.last_log_id = Some(log_id);
            }
        }
        self.shared.room.notify_waiters();
        self.writer.submit(RaftWork::Purge {
            group: self.shared.group,
            upto: log_id,
        });
        Ok(())
    }
}
