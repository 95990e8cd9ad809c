//! Group commit: the one writer thread of a node's database.
//!
//! Every write of every group is a unit of [`Work`] (the raft layer's log appends, votes,
//! truncations, purges and state-machine applies) or an [`Writer::exec`] job, queued on
//! one channel. The writer takes whatever is queued, executes it in ONE redb write
//! transaction and commits once, then completes every waiter. redb allows one write
//! transaction at a time and an fsync costs about the same for 1 KiB as for 1 MiB, so this
//! packing is where produce throughput comes from. This layer knows nothing of what the
//! work means: the [`Work`] trait tells it whether a unit must be durable, whether it may
//! go ahead in an early non-durable commit, and how to execute, complete or fail it.
//!
//! Durability: a transaction is committed with `Durability::Immediate` (fsync) when it holds
//! anything that must be durable before it is acknowledged (log appends, votes, explicit
//! syncs), and with `Durability::None` otherwise (applies, commit index, purges). redb
//! persists every earlier non-durable commit with the next durable one, so after a crash
//! the database is exactly the state after some commit at least as new as the last durable
//! one: applied data and its `META_APPLIED` always agree, and nothing acknowledged is lost.
//! Segment files are fdatasync'd before every commit, since rows may point into them.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use crate::store::segments::Segments;
use crate::types::{SYNC_BOUNDS_US, SYNC_BUCKETS};

/// Stop packing more requests into one transaction past this many payload bytes.
const MAX_TXN_BYTES: usize = 64 << 20;
const MAX_TXN_REQUESTS: usize = 16384;

/// After a durable commit that flushed log entries, wait at most this long for the work
/// those entries make due (applies: their hop through openraft takes tens of microseconds),
/// so that it is answered right away instead of behind the next fsync.
const APPLY_LINGER: Duration = Duration::from_micros(500);

pub type Job = Box<dyn FnOnce(&WriteTransaction) -> Result<(), redb::Error> + Send>;

/// A unit of work the writer executes in a transaction, defined by the layer above.
pub trait Work: Send + Sized + 'static {
    /// What executing the work produced, handed to [`Work::complete`] after the commit.
    type Done;
    /// Must be durable (fsync'd commit) before it completes.
    fn durable(&self) -> bool;
    /// Payload bytes, for the cap on one transaction.
    fn bytes(&self) -> usize;
    /// A short tag for traces.
    fn describe(&self) -> String;
    /// May be committed ahead of the rest of the batch, without fsync, so that its answers
    /// go out before the next fsync starts.
    fn early(&self) -> bool;
    /// The group whose log entries this work makes durable: work of that group that
    /// [`Work::serves`] becomes due and is waited for a little (see `APPLY_LINGER`).
    fn flushes(&self) -> Option<u32>;
    /// The group whose due work this is.
    fn serves(&self) -> Option<u32>;
    /// Merges early work (e.g. the applies of one group into one pass), keeping order.
    fn coalesce(work: Vec<Self>) -> Vec<Self>;
    /// Writes the work in `txn`; `segments` takes batch bytes the rows will point at.
    fn execute(
        &mut self,
        txn: &WriteTransaction,
        segments: &Segments,
    ) -> Result<Self::Done, redb::Error>;
    /// The transaction committed: publish and answer.
    fn complete(self, done: Self::Done, stats: &WriterStats);
    /// The writer stopped or the transaction failed: answer with the error.
    fn fail(self, msg: &str);
}

/// One request to the writer.
enum Request<W> {
    Work(W),
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

impl<W: Work> Request<W> {
    fn durable(&self) -> bool {
        match self {
            Request::Work(w) => w.durable(),
            Request::Exec { durable, .. } => *durable,
            Request::Shutdown { .. } => true,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Request::Work(w) => w.bytes(),
            _ => 64,
        }
    }

    fn describe(&self) -> String {
        match self {
            Request::Work(w) => w.describe(),
            _ => "o".into(),
        }
    }

    fn serves(&self) -> Option<u32> {
        match self {
            Request::Work(w) => w.serves(),
            _ => None,
        }
    }

    /// Completes the request with an error (writer stopped or transaction failed).
    fn fail(self, msg: &str) {
        match self {
            Request::Work(w) => w.fail(msg),
            Request::Exec { done, .. } | Request::Shutdown { done } => {
                send(done, Err(io::Error::other(msg.to_string())))
            }
        }
    }
}

fn send(done: Option<oneshot::Sender<io::Result<()>>>, r: io::Result<()>) {
    if let Some(d) = done {
        // The waiter may have gone (e.g. a cancelled request): nothing to tell it then.
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
    /// Durable commits by the time their syncs took (`types::SYNC_BOUNDS_US`).
    pub sync_buckets: [AtomicU64; SYNC_BUCKETS],
    /// Total time of those syncs, in microseconds.
    pub sync_micros: AtomicU64,
    /// Set once a transaction failed: every later write fails until the node is reopened.
    pub broken: AtomicBool,
    /// Set when the writer thread has exited.
    pub stopped: AtomicBool,
}

impl WriterStats {
    /// Counts one durable commit whose syncs took `micros`.
    fn sync_took(&self, micros: u64) {
        let i = SYNC_BOUNDS_US
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(SYNC_BOUNDS_US.len());
        self.sync_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sync_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// True once the writer can no longer make anything durable (failed or stopped).
    pub fn unusable(&self) -> bool {
        self.broken.load(Ordering::SeqCst) || self.stopped.load(Ordering::SeqCst)
    }
}

/// A handle to the writer thread.
pub struct Writer<W> {
    tx: mpsc::Sender<Request<W>>,
    pub stats: Arc<WriterStats>,
    /// The node's segment files; only the writer thread appends to them.
    pub segments: Arc<Segments>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl<W> Clone for Writer<W> {
    fn clone(&self) -> Self {
        Writer {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
            segments: self.segments.clone(),
            thread: self.thread.clone(),
        }
    }
}

impl<W: Work> Writer<W> {
    pub fn start(db: Arc<Database>, segments: Arc<Segments>) -> io::Result<Writer<W>> {
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

    fn send(&self, r: Request<W>) {
        if let Err(mpsc::SendError(r)) = self.tx.send(r) {
            r.fail("storage writer stopped");
        }
    }

    /// Queues work; if the writer is gone, fails it at once.
    pub fn submit(&self, w: W) {
        self.send(Request::Work(w));
    }

    /// True once a write transaction failed (the writer then refuses everything).
    pub fn broken(&self) -> bool {
        self.stats.broken.load(Ordering::SeqCst)
    }

    /// Runs `job` in the next transaction and waits for its commit.
    pub async fn exec(&self, durable: bool, job: Job) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(Request::Exec {
            durable,
            job: Some(job),
            done: Some(done),
        });
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("storage writer stopped")))
    }

    /// Flushes durably and stops the thread (waits for it). Fails when the final commit
    /// failed (or the writer was already broken), or when the thread panicked.
    pub async fn shutdown(&self) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(Request::Shutdown { done: Some(done) });
        let flushed = rx
            .await
            .unwrap_or_else(|_| Err(io::Error::other("storage writer stopped")));
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            match tokio::task::spawn_blocking(move || h.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(io::Error::other("storage writer thread panicked")),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        flushed
    }
}

fn run<W: Work>(
    db: Arc<Database>,
    segments: Arc<Segments>,
    rx: mpsc::Receiver<Request<W>>,
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
            let waiting = due
                .iter()
                .any(|g| !batch.iter().any(|r| r.serves() == Some(*g)));
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
        // Early work (applies of entries already durable here, commit indexes) goes first in
        // its own commit without fsync, so its answers go out before the next fsync starts.
        let mut early = Vec::new();
        let mut rest = Vec::new();
        for r in batch {
            match r {
                Request::Work(w) if w.early() => early.push(w),
                r => rest.push(r),
            }
        }
        due = rest
            .iter()
            .filter_map(|r| match r {
                Request::Work(w) => w.flushes(),
                _ => None,
            })
            .collect();
        due.sort_unstable();
        due.dedup();
        let early: Vec<Request<W>> = W::coalesce(early).into_iter().map(Request::Work).collect();
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

/// Executes a batch of requests in one transaction. On error every request is failed and
/// the error returned.
fn commit_batch<W: Work>(
    db: &Database,
    segments: &Segments,
    mut batch: Vec<Request<W>>,
    stats: &WriterStats,
) -> Result<(), String> {
    let durable = batch.iter().any(Request::durable);
    let trace = tracing::enabled!(tracing::Level::TRACE);
    let t0 = std::time::Instant::now();
    let mut t1 = t0;
    let result = (|| -> Result<Vec<Option<W::Done>>, redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let mut done = Vec::with_capacity(batch.len());
        for r in batch.iter_mut() {
            done.push(match r {
                Request::Work(w) => Some(w.execute(&txn, segments)?),
                Request::Exec { job, .. } => {
                    if let Some(job) = job.take() {
                        job(&txn)?;
                    }
                    None
                }
                Request::Shutdown { .. } => None,
            });
        }
        t1 = std::time::Instant::now();
        // Rows of this transaction may point at bytes just appended: make them durable
        // first, whatever the transaction's own durability.
        segments.sync()?;
        txn.commit()?;
        if durable {
            stats.sync_took(t1.elapsed().as_micros() as u64);
        }
        Ok(done)
    })();
    if trace {
        let desc: Vec<String> = batch.iter().map(Request::describe).collect();
        tracing::trace!(durable, fill = ?(t1 - t0), commit = ?t1.elapsed(), "txn: {}", desc.join(" "));
    }
    let done = match result {
        Ok(d) => d,
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
    for (r, d) in batch.into_iter().zip(done) {
        match (r, d) {
            (Request::Work(w), Some(d)) => w.complete(d, stats),
            (Request::Work(w), None) => w.fail("work executed without a result"),
            (Request::Exec { done, .. } | Request::Shutdown { done }, _) => send(done, Ok(())),
        }
    }
    Ok(())
}
