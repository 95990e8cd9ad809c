//! Group commit: the one writer thread of a node's database.
//!
//! Every write of every group (raft log appends, votes, truncations, purges and
//! state-machine applies) is a [`Request`] on one channel. The writer takes whatever is
//! queued, executes it in ONE redb write transaction and commits once, then completes every
//! waiter. redb allows one write transaction at a time and an fsync costs about the same for
//! 1 KiB as for 1 MiB, so this packing is where produce throughput comes from.
//!
//! Durability: a transaction is committed with `Durability::Immediate` (fsync) when it holds
//! anything that must be durable before it is acknowledged (log appends, votes, explicit
//! syncs), and with `Durability::None` otherwise (applies, commit index, purges). redb
//! persists every earlier non-durable commit with the next durable one, so after a crash
//! the database is exactly the state after some commit at least as new as the last durable
//! one: applied data and its `META_APPLIED` always agree, and nothing acknowledged is lost.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, WriteTransaction};
use tokio::sync::oneshot;

use crate::apply::{apply_entries, ApplyEffect};
use crate::codec::{
    decode_stored_entry, encode_log_id, encode_stored_entry, entry_len, stored_len, DecodeError,
};
use crate::group::GroupShared;
use crate::log_store::LogShared;
use crate::schema::*;
use crate::segments::{SegmentPos, Segments};
use crate::types::{ApplyResponder, Entry, IOFlushed, LogId};

/// Stop packing more requests into one transaction past this many payload bytes.
const MAX_TXN_BYTES: usize = 64 << 20;
const MAX_TXN_REQUESTS: usize = 16384;

pub type Job = Box<dyn FnOnce(&WriteTransaction) -> Result<(), redb::Error> + Send>;

/// One unit of work for the writer.
pub enum Request {
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
    /// Run a closure in the transaction; `durable` forces an fsync'd commit.
    Exec {
        durable: bool,
        job: Option<Job>,
        done: Option<oneshot::Sender<io::Result<()>>>,
    },
    /// Commit durably, then stop the writer.
    Shutdown {
        done: Option<oneshot::Sender<io::Result<()>>>,
    },
}

impl Request {
    fn durable(&self) -> bool {
        matches!(
            self,
            Request::Append { .. }
                | Request::SaveVote { .. }
                | Request::Shutdown { .. }
                | Request::Exec { durable: true, .. }
        )
    }

    fn bytes(&self) -> usize {
        match self {
            Request::Append { bytes, .. } => *bytes,
            Request::Apply { entries, .. } => entries.iter().map(|(e, _)| entry_len(e)).sum(),
            _ => 64,
        }
    }

    /// A short tag for traces: A<n> append, P<n> apply, C commit index, o other.
    fn describe(&self) -> String {
        match self {
            Request::Append { entries, .. } => format!("A{}", entries.len()),
            Request::Apply { entries, .. } => format!("P{}", entries.len()),
            Request::SaveCommitted { .. } => "C".into(),
            _ => "o".into(),
        }
    }

    /// Completes the request with an error (writer stopped or transaction failed).
    fn fail(self, msg: &str) {
        let err = || io::Error::other(msg.to_string());
        match self {
            Request::Append { callback, .. } => {
                if let Some(cb) = callback {
                    cb.io_completed(Err(err()));
                }
            }
            Request::Apply { entries, .. } => {
                for (_, r) in entries {
                    if let Some(r) = r {
                        r.send(Err(msg.to_string()));
                    }
                }
            }
            Request::SaveVote { done, .. }
            | Request::Exec { done, .. }
            | Request::Shutdown { done } => send(done, Err(err())),
            Request::SaveCommitted { .. } | Request::Truncate { .. } | Request::Purge { .. } => {}
        }
    }
}

fn send(done: Option<oneshot::Sender<io::Result<()>>>, r: io::Result<()>) {
    if let Some(d) = done {
        let _ = d.send(r);
    }
}

/// Counters of the writer, for tests, benchmarks and metrics.
#[derive(Default, Debug)]
pub struct WriterStats {
    /// Write transactions committed.
    pub commits: AtomicU64,
    /// Of which durable (fsync'd).
    pub durable_commits: AtomicU64,
    /// Raft log entries made durable.
    pub appends_flushed: AtomicU64,
    /// Bytes of encoded raft log entries written.
    pub log_bytes: AtomicU64,
    /// Bytes of record batches indexed by applies (their bytes were written with the log).
    pub batch_bytes: AtomicU64,
    /// Requests completed.
    pub requests: AtomicU64,
    /// Set once a transaction failed: every later write fails until the node is reopened.
    pub broken: AtomicBool,
    /// Set when the writer thread has exited.
    pub stopped: AtomicBool,
}

/// A handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
    pub stats: Arc<WriterStats>,
    /// The node's segment files; only the writer thread appends to them.
    pub segments: Arc<Segments>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Writer {
    pub fn start(db: Arc<Database>, segments: Arc<Segments>) -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(WriterStats::default());
        let st = stats.clone();
        let segs = segments.clone();
        let thread = std::thread::Builder::new()
            .name("phxq-redb-writer".into())
            .spawn(move || run(db, segs, rx, st))?;
        Ok(Writer {
            tx,
            stats,
            segments,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Queues a request; if the writer is gone, fails it at once.
    pub fn submit(&self, r: Request) {
        if let Err(mpsc::SendError(r)) = self.tx.send(r) {
            r.fail("storage writer stopped");
        }
    }

    /// True once a write transaction failed (the writer then refuses everything).
    pub fn broken(&self) -> bool {
        self.stats.broken.load(Ordering::SeqCst)
    }

    /// True once the writer can no longer make anything durable (failed or stopped).
    pub fn unusable(&self) -> bool {
        self.broken() || self.stats.stopped.load(Ordering::SeqCst)
    }

    /// Runs `job` in the next transaction and waits for its commit.
    pub async fn exec(&self, durable: bool, job: Job) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.submit(Request::Exec {
            durable,
            job: Some(job),
            done: Some(done),
        });
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("storage writer stopped")))
    }

    /// Flushes durably and stops the thread (waits for it).
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        self.submit(Request::Shutdown { done: Some(done) });
        let _ = rx.await;
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

/// After a durable commit that flushed log entries, wait at most this long for the applies
/// those entries trigger (their hop through openraft takes tens of microseconds), so that
/// they are answered right away instead of behind the next fsync.
const APPLY_LINGER: Duration = Duration::from_micros(500);

fn run(
    db: Arc<Database>,
    segments: Arc<Segments>,
    rx: mpsc::Receiver<Request>,
    stats: Arc<WriterStats>,
) {
    let mut broken: Option<String> = None;
    // Groups whose entries the last durable commit flushed: their applies are due.
    let mut due: Vec<u32> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let mut bytes = batch[0].bytes();
        let deadline = Instant::now() + APPLY_LINGER;
        loop {
            while bytes < MAX_TXN_BYTES && batch.len() < MAX_TXN_REQUESTS {
                match rx.try_recv() {
                    Ok(r) => {
                        bytes += r.bytes();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            let waiting = due.iter().any(|g| {
                !batch
                    .iter()
                    .any(|r| matches!(r, Request::Apply { group, .. } if group.id.0 == *g))
            });
            let now = Instant::now();
            if !waiting
                || now >= deadline
                || bytes >= MAX_TXN_BYTES
                || batch.len() >= MAX_TXN_REQUESTS
            {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(r) => {
                    bytes += r.bytes();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let stop = batch.iter().any(|r| matches!(r, Request::Shutdown { .. }));
        // Applies of entries already durable here, and commit indexes, go first in their own
        // commit without fsync, so their answers go out before the next fsync starts. An
        // apply of entries whose log append is in this same batch (a follower may apply an
        // entry the leader committed before its own copy is flushed) stays behind that
        // append: it reads the batch positions from the log row the append writes.
        let (early, rest): (Vec<Request>, Vec<Request>) =
            batch.into_iter().partition(|r| match r {
                Request::SaveCommitted { .. } => true,
                Request::Apply { log, entries, .. } => {
                    let flushed = log.flushed_index();
                    entries
                        .iter()
                        .all(|(e, _)| flushed.is_some_and(|f| e.log_id.index <= f))
                }
                _ => false,
            });
        due = rest
            .iter()
            .filter_map(|r| match r {
                Request::Append { log, .. } => Some(log.group),
                _ => None,
            })
            .collect();
        due.sort_unstable();
        due.dedup();
        let early = coalesce(early);
        for part in [early, rest] {
            if part.is_empty() {
                continue;
            }
            if let Some(msg) = &broken {
                part.into_iter().for_each(|r| r.fail(msg));
            } else if let Err(e) = commit_batch(&db, &segments, part, &stats) {
                tracing::error!(error = %e, "storage write failed; failing every later write until restart");
                broken = Some(format!("storage write failed: {e}"));
                stats.broken.store(true, Ordering::SeqCst);
            }
        }
        if stop {
            break;
        }
    }
    stats.stopped.store(true, Ordering::SeqCst);
    // Whatever is still queued fails.
    while let Ok(r) = rx.try_recv() {
        r.fail("storage writer stopped");
    }
}

/// Merges the applies of each group into one request (keeping their order) and keeps only
/// the last commit index of each group: one pass over the tables per group, not per entry.
fn coalesce(reqs: Vec<Request>) -> Vec<Request> {
    let mut out: Vec<Request> = Vec::with_capacity(reqs.len());
    for r in reqs {
        let slot = out.iter().position(|o| match (o, &r) {
            (Request::Apply { group: a, .. }, Request::Apply { group: b, .. }) => a.id == b.id,
            (Request::SaveCommitted { group: a, .. }, Request::SaveCommitted { group: b, .. }) => {
                a == b
            }
            _ => false,
        });
        match (slot, r) {
            (Some(i), Request::Apply { entries, .. }) => {
                if let Request::Apply { entries: first, .. } = &mut out[i] {
                    first.extend(entries);
                }
            }
            (Some(i), r @ Request::SaveCommitted { .. }) => out[i] = r,
            (_, r) => out.push(r),
        }
    }
    out
}

/// What a processed request will publish after the commit.
enum Effect {
    None,
    Flushed { count: u64, last: Option<u64> },
    Applied(ApplyEffect),
}

/// Executes a batch of requests in one transaction. On error every request is failed and
/// the error returned.
fn commit_batch(
    db: &Database,
    segments: &Segments,
    mut batch: Vec<Request>,
    stats: &WriterStats,
) -> Result<(), String> {
    let durable = batch.iter().any(Request::durable);
    let trace = tracing::enabled!(tracing::Level::TRACE);
    let t0 = std::time::Instant::now();
    let mut t1 = t0;
    let result = (|| -> Result<Vec<Effect>, redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let mut effects = Vec::with_capacity(batch.len());
        for r in batch.iter_mut() {
            effects.push(process(&txn, segments, r)?);
        }
        t1 = std::time::Instant::now();
        // Rows of this transaction may point at bytes just appended: make them durable
        // first, whatever the transaction's own durability.
        segments.sync()?;
        txn.commit()?;
        Ok(effects)
    })();
    if trace {
        let desc: Vec<String> = batch.iter().map(Request::describe).collect();
        tracing::trace!(durable, fill = ?(t1 - t0), commit = ?t1.elapsed(), "txn: {}", desc.join(" "));
    }
    let effects = match result {
        Ok(e) => e,
        Err(e) => {
            let msg = format!("storage write failed: {e}");
            batch.into_iter().for_each(|r| r.fail(&msg));
            return Err(e.to_string());
        }
    };
    stats.commits.fetch_add(1, Ordering::Relaxed);
    if durable {
        stats.durable_commits.fetch_add(1, Ordering::Relaxed);
    }
    stats
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    for (r, effect) in batch.into_iter().zip(effects) {
        complete(r, effect, stats);
    }
    Ok(())
}

fn process(
    txn: &WriteTransaction,
    segments: &Segments,
    r: &mut Request,
) -> Result<Effect, redb::Error> {
    match r {
        Request::Append { log, entries, .. } => {
            let mut table = txn.open_table(LOG)?;
            let mut at: Vec<SegmentPos> = Vec::new();
            for e in entries.iter() {
                at.clear();
                if let openraft::EntryPayload::Normal(crate::api::Command::Append(v)) = &e.payload {
                    for b in v {
                        at.push(segments.append(&b.batch)?);
                    }
                }
                let len = stored_len(e);
                let mut slot = table.insert_reserve((log.group, e.log_id.index), len)?;
                encode_stored_entry(e, &at, slot.as_mut());
            }
            Ok(Effect::Flushed {
                count: entries.len() as u64,
                last: entries.last().map(|e| e.log_id.index),
            })
        }
        Request::SaveVote { group, vote, .. } => {
            txn.open_table(GROUP_META)?
                .insert((*group, META_VOTE), vote.as_slice())?;
            Ok(Effect::None)
        }
        Request::SaveCommitted { group, log_id } => {
            let mut t = txn.open_table(GROUP_META)?;
            match log_id {
                Some(id) => t.insert((*group, META_COMMITTED), encode_log_id(id).as_slice())?,
                None => t.remove((*group, META_COMMITTED))?,
            };
            Ok(Effect::None)
        }
        Request::Truncate { group, after } => {
            let mut t = txn.open_table(LOG)?;
            let from = after.map_or(0, |a| a + 1);
            t.retain_in((*group, from)..=(*group, u64::MAX), |_, _| false)?;
            Ok(Effect::None)
        }
        Request::Purge { group, upto } => {
            let mut t = txn.open_table(LOG)?;
            t.retain_in((*group, 0)..=(*group, upto.index), |_, _| false)?;
            txn.open_table(GROUP_META)?
                .insert((*group, META_PURGED), encode_log_id(upto).as_slice())?;
            Ok(Effect::None)
        }
        Request::Apply { group, entries, .. } => {
            let view: Vec<(&Entry, bool)> = entries.iter().map(|(e, r)| (e, r.is_some())).collect();
            Ok(Effect::Applied(apply_entries(
                txn, segments, group.id.0, &view,
            )?))
        }
        Request::Exec { job, .. } => {
            if let Some(job) = job.take() {
                job(txn)?;
            }
            Ok(Effect::None)
        }
        Request::Shutdown { .. } => Ok(Effect::None),
    }
}

fn complete(r: Request, effect: Effect, stats: &WriterStats) {
    match (r, effect) {
        (
            Request::Append {
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
            Request::Apply {
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
        (
            Request::SaveVote { done, .. }
            | Request::Exec { done, .. }
            | Request::Shutdown { done },
            _,
        ) => send(done, Ok(())),
        _ => {}
    }
}

/// Reads the group's stored log entries in `[start, end)` with a byte cap (at least one).
pub fn read_log(
    db: &Database,
    segments: &Segments,
    group: u32,
    start: u64,
    end: u64,
    max_bytes: Option<usize>,
) -> io::Result<Vec<Entry>> {
    let txn = db.begin_read().map_err(io::Error::other)?;
    let table = txn.open_table(LOG).map_err(io::Error::other)?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in table
        .range((group, start)..(group, end))
        .map_err(io::Error::other)?
    {
        let (k, v) = item.map_err(io::Error::other)?;
        let value = v.value();
        // Size with the batches, before reading them.
        let len = value.len()
            + crate::codec::stored_positions(value)
                .map_err(io::Error::other)?
                .iter()
                .map(|(_, n)| *n as usize)
                .sum::<usize>();
        if let Some(cap) = max_bytes {
            if !out.is_empty() && bytes + len > cap {
                break;
            }
        }
        bytes += len;
        let read = |at: SegmentPos, len: usize| read_batch(segments, at, len);
        let e = decode_stored_entry(k.value().1, bytes::Bytes::copy_from_slice(value), &read)
            .map_err(io::Error::other)?;
        out.push(e);
    }
    Ok(out)
}

/// Reads a batch's bytes back for a decoded log entry.
fn read_batch(
    segments: &Segments,
    at: SegmentPos,
    len: usize,
) -> Result<bytes::Bytes, DecodeError> {
    let mut buf = vec![0u8; len];
    segments.read(at, &mut buf).map_err(|e| {
        tracing::error!(error = %e, ?at, len, "cannot read a logged batch back");
        DecodeError("batch bytes unreadable")
    })?;
    Ok(buf.into())
}
