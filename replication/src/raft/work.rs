//! The raft layer's writes, as units of work for the store's group-commit writer: log
//! appends (batch bytes to the segment files, positions into the log row), votes, commit
//! indexes, truncations, purges and state-machine applies.
//!
//! What may go early: commit indexes, and applies of entries already durable here, are
//! committed ahead of the rest of a writer batch without fsync. An apply of entries whose
//! log append is in the same batch (a follower may apply an entry the leader committed
//! before its own copy is flushed) stays behind that append: it takes the batch positions
//! the append notes in the log's memory (`LogShared::note_positions`).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redb::WriteTransaction;
use tokio::sync::oneshot;

use crate::partition::exec::ApplyEffect;
use crate::partition::view::GroupShared;
use crate::raft::apply::apply_entries;
use crate::raft::log_codec::{encode_stored_entry, entry_len, stored_len};
use crate::raft::log_mem::LogShared;
use crate::store::log_id::encode_log_id;
use crate::store::schema::*;
use crate::store::segments::{SegmentPos, Segments};
use crate::store::writer::{Work, Writer, WriterStats};
use crate::types::{ApplyResponder, Command, Entry, IOFlushed, LogId};

/// The node's writer, carrying raft work.
pub type RaftWriter = Writer<RaftWork>;

/// One unit of raft work for the writer.
pub enum RaftWork {
    /// Append entries to a group's raft log; durable before `callback` fires.
    Append {
        log: Arc<LogShared>,
        gen: u64,
        entries: Vec<Entry>,
        bytes: usize,
        callback: Option<IOFlushed>,
    },
    SaveVote {
        group: u32,
        vote: Vec<u8>,
        done: Option<oneshot::Sender<io::Result<()>>>,
    },
    SaveCommitted {
        group: u32,
        log_id: Option<LogId>,
    },
    /// Delete log entries with index > `after` (all when None).
    Truncate {
        group: u32,
        after: Option<u64>,
    },
    /// Delete log entries up to and including `upto`.
    Purge {
        group: u32,
        upto: LogId,
    },
    /// Apply committed entries to a group's state machine. Fire and forget: the responders
    /// are answered after the commit; a failure breaks the writer (see [`Writer::broken`]).
    Apply {
        group: Arc<GroupShared>,
        log: Arc<LogShared>,
        entries: Vec<(Entry, Option<ApplyResponder>)>,
    },
}

/// What executed raft work will publish after the commit.
pub enum Effect {
    None,
    Flushed { count: u64, last: Option<u64> },
    Applied(ApplyEffect),
}

fn send(done: Option<oneshot::Sender<io::Result<()>>>, r: io::Result<()>) {
    if let Some(d) = done {
        // The waiter may have gone: nothing to tell it then.
        let _ = d.send(r);
    }
}

impl Work for RaftWork {
    type Done = Effect;

    fn durable(&self) -> bool {
        matches!(self, RaftWork::Append { .. } | RaftWork::SaveVote { .. })
    }

    fn bytes(&self) -> usize {
        match self {
            RaftWork::Append { bytes, .. } => *bytes,
            RaftWork::Apply { entries, .. } => entries.iter().map(|(e, _)| entry_len(e)).sum(),
            _ => 64,
        }
    }

    /// A<n> append, P<n> apply, C commit index, o other.
    fn describe(&self) -> String {
        match self {
            RaftWork::Append { entries, .. } => format!("A{}", entries.len()),
            RaftWork::Apply { entries, .. } => format!("P{}", entries.len()),
            RaftWork::SaveCommitted { .. } => "C".into(),
            _ => "o".into(),
        }
    }

    fn early(&self) -> bool {
        match self {
            RaftWork::SaveCommitted { .. } => true,
            RaftWork::Apply { log, entries, .. } => {
                let flushed = log.flushed_index();
                entries
                    .iter()
                    .all(|(e, _)| flushed.is_some_and(|f| e.log_id.index <= f))
            }
            _ => false,
        }
    }

    fn flushes(&self) -> Option<u32> {
        match self {
            RaftWork::Append { log, .. } => Some(log.group),
            _ => None,
        }
    }

    fn serves(&self) -> Option<u32> {
        match self {
            RaftWork::Apply { group, .. } => Some(group.id.0),
            _ => None,
        }
    }

    /// Merges the applies of each group into one (keeping their order) and keeps only the
    /// last commit index of each group: one pass over the tables per group, not per entry.
    fn coalesce(work: Vec<RaftWork>) -> Vec<RaftWork> {
        let mut out: Vec<RaftWork> = Vec::with_capacity(work.len());
        for r in work {
            let slot = out.iter().position(|o| match (o, &r) {
                (RaftWork::Apply { group: a, .. }, RaftWork::Apply { group: b, .. }) => {
                    a.id == b.id
                }
                (
                    RaftWork::SaveCommitted { group: a, .. },
                    RaftWork::SaveCommitted { group: b, .. },
                ) => a == b,
                _ => false,
            });
            match (slot, r) {
                (Some(i), RaftWork::Apply { entries, .. }) => {
                    if let RaftWork::Apply { entries: first, .. } = &mut out[i] {
                        first.extend(entries);
                    }
                }
                (Some(i), r @ RaftWork::SaveCommitted { .. }) => out[i] = r,
                (_, r) => out.push(r),
            }
        }
        out
    }

    fn execute(
        &mut self,
        txn: &WriteTransaction,
        segments: &Segments,
    ) -> Result<Effect, redb::Error> {
        match self {
            RaftWork::Append {
                log, gen, entries, ..
            } => {
                let mut table = txn.open_table(LOG)?;
                for e in entries.iter() {
                    let mut at: Vec<SegmentPos> = Vec::new();
                    if let openraft::EntryPayload::Normal(Command::Append(v)) = &e.payload {
                        for b in v {
                            at.push(segments.append(&b.batch)?);
                        }
                    }
                    let len = stored_len(e);
                    let mut slot = table.insert_reserve((log.group, e.log_id.index), len)?;
                    encode_stored_entry(e, &at, slot.as_mut());
                    if !at.is_empty() {
                        // For the apply, which may run in this same transaction.
                        log.note_positions(*gen, e.log_id, at);
                    }
                }
                Ok(Effect::Flushed {
                    count: entries.len() as u64,
                    last: entries.last().map(|e| e.log_id.index),
                })
            }
            RaftWork::SaveVote { group, vote, .. } => {
                txn.open_table(GROUP_META)?
                    .insert((*group, META_VOTE), vote.as_slice())?;
                Ok(Effect::None)
            }
            RaftWork::SaveCommitted { group, log_id } => {
                let mut t = txn.open_table(GROUP_META)?;
                match log_id {
                    Some(id) => t.insert((*group, META_COMMITTED), encode_log_id(id).as_slice())?,
                    None => t.remove((*group, META_COMMITTED))?,
                };
                Ok(Effect::None)
            }
            RaftWork::Truncate { group, after } => {
                let mut t = txn.open_table(LOG)?;
                let from = after.map_or(0, |a| a + 1);
                t.retain_in((*group, from)..=(*group, u64::MAX), |_, _| false)?;
                Ok(Effect::None)
            }
            RaftWork::Purge { group, upto } => {
                let mut t = txn.open_table(LOG)?;
                t.retain_in((*group, 0)..=(*group, upto.index), |_, _| false)?;
                txn.open_table(GROUP_META)?
                    .insert((*group, META_PURGED), encode_log_id(upto).as_slice())?;
                Ok(Effect::None)
            }
            RaftWork::Apply {
                group,
                log,
                entries,
            } => {
                let view: Vec<(&Entry, bool)> =
                    entries.iter().map(|(e, r)| (e, r.is_some())).collect();
                Ok(Effect::Applied(apply_entries(
                    txn, segments, log, group.id.0, &view,
                )?))
            }
        }
    }

    fn complete(self, effect: Effect, stats: &WriterStats) {
        match (self, effect) {
            (
                RaftWork::Append {
                    log,
                    gen,
                    callback,
                    bytes,
                    ..
                },
                Effect::Flushed { count, last },
            ) => {
                stats.appends_flushed.fetch_add(count, Ordering::Relaxed);
                stats.log_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                if let Some(last) = last {
                    log.on_flushed(gen, last);
                }
                if let Some(cb) = callback {
                    cb.io_completed(Ok(()));
                }
            }
            (
                RaftWork::Apply {
                    group,
                    log,
                    entries,
                },
                Effect::Applied(effect),
            ) => {
                stats
                    .batch_bytes
                    .fetch_add(effect.batch_bytes, Ordering::Relaxed);
                group.publish(&effect);
                if let Some(last) = effect.last_applied {
                    log.on_applied(last.index);
                }
                let mut answers = effect.responses.into_iter();
                for (_, responder) in entries {
                    if let Some(r) = responder {
                        r.send(
                            answers
                                .next()
                                .unwrap_or_else(|| Err("missing answer".into())),
                        );
                    }
                }
            }
            (RaftWork::SaveVote { done, .. }, _) => send(done, Ok(())),
            _ => {}
        }
    }

    fn fail(self, msg: &str) {
        let err = || io::Error::other(msg.to_string());
        match self {
            RaftWork::Append { callback, .. } => {
                if let Some(cb) = callback {
                    cb.io_completed(Err(err()));
                }
            }
            RaftWork::Apply { entries, .. } => {
                for (_, r) in entries {
                    if let Some(r) = r {
                        r.send(Err(msg.to_string()));
                    }
                }
            }
            RaftWork::SaveVote { done, .. } => send(done, Err(err())),
            RaftWork::SaveCommitted { .. } | RaftWork::Truncate { .. } | RaftWork::Purge { .. } => {
            }
        }
    }
}
