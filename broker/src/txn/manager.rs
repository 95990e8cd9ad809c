//! The transaction coordinator wired to the world (Kafka's `TransactionCoordinator`,
//! `TransactionStateManager` and marker channel): this broker's share of the
//! transactional ids, kept in the store groups it leads, driven by the pure core
//! ([`TxnCoordinator`]) and made durable through the store groups' Raft logs.
//!
//! - A transactional id lives in the store group chosen from it (the same hash as consumer
//!   groups, so FindCoordinator answers both the same way); its coordinator is that store
//!   group's leader. Each change of an id is one `Put` of `txn/<id>` (see `log.rs`),
//!   committed before the client hears of it.
//! - On becoming leader of a store group (after a quorum round trip, so every earlier
//!   write is visible) the ids are read back; until then requests get
//!   COORDINATOR_LOAD_IN_PROGRESS. Every transaction found decided but not completed
//!   (Prepare*) gets its markers written again: markers are idempotent.
//! - A decided transaction's markers are written by a background task per id: control
//!   batches into every partition of the transaction (one Raft entry per store group, on
//!   its leader, wherever that is), then the groups' pending offsets applied or dropped
//!   ([`MarkerWriter`]); failures are retried with backoff while this broker still
//!   coordinates the id. Only then is the transaction recorded complete.
//! - A timer aborts transactions past their timeout, expires idle ids, and drives markers
//!   whose completion could not be recorded.
//! - Producer ids come from the metadata group in leased blocks, so the pure core can
//!   allocate synchronously.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use phxq_replication::{
    Command, CommandResponse, GroupId, ReplicaNode, ReplicationError, StoreGroup,
};
use tracing::{info, warn};

use super::config::TransactionsConfig;
use super::coordinator::{
    Effect, ListFilter, Listing, Markers, ProducerIdAndEpoch, Step, TxnCoordinator, TxnDescription,
    TxnResult,
};
use super::errors::*;
use super::log;
use super::state::TxnState;
use super::TxnPartition;

/// Key prefix of transactional ids in a store group's key-value space.
pub const KEY_PREFIX: &str = "txn/";

/// How many producer ids are leased from the metadata group at once.
const ID_BLOCK: u32 = 64;

/// Timer period: leadership changes are noticed within it.
const TICK: Duration = Duration::from_millis(200);

/// Writes a decided transaction's markers (see `markers.rs`).
pub trait MarkerWriter: Send + Sync {
    /// Writes `markers` into every partition and group they list, with the coordinator's
    /// epoch; Ok once all are durable.
    fn write_markers<'a>(
        &'a self,
        markers: &'a Markers,
        coordinator_epoch: i32,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// The transactional ids of one store group this broker leads, at one leader term.
struct Table {
    term: u64,
    core: TxnCoordinator,
    ready: bool,
    /// Ids whose markers a task is writing now.
    completing: BTreeSet<String>,
}

pub struct TxnManager {
    config: TransactionsConfig,
    node: Arc<ReplicaNode>,
    metadata: StoreGroup,
    store_groups: Vec<GroupId>,
    tables: Mutex<HashMap<GroupId, Table>>,
    /// Leased producer ids: the next one and the end of the block.
    ids: Mutex<(i64, i64)>,
    writer: OnceLock<Weak<dyn MarkerWriter>>,
    commits: AtomicU64,
    aborts: AtomicU64,
    timed_out: AtomicU64,
    /// Bumped whenever a transaction's markers are done (or given up): requests that
    /// found their id busy wait on it instead of bouncing back to the client.
    completions: tokio::sync::watch::Sender<u64>,
}

/// How long a request on an id whose markers are being written waits for them before it
/// answers CONCURRENT_TRANSACTIONS (the client retries after 20-100 ms; waiting here
/// instead lets the next transaction start as soon as the last one completes).
const BUSY_WAIT: Duration = Duration::from_millis(1000);

/// Transactions completed and timed out since the broker started (the metrics).
#[derive(Clone, Copy, Debug, Default)]
pub struct TxnCounts {
    pub commits: u64,
    pub aborts: u64,
    pub timed_out: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn key(transactional_id: &str) -> Bytes {
    Bytes::from(format!("{KEY_PREFIX}{transactional_id}"))
}

fn write_error(e: &ReplicationError) -> i16 {
    match e {
        ReplicationError::NotLeader { .. } => NOT_COORDINATOR,
        _ => COORDINATOR_NOT_AVAILABLE,
    }
}

impl TxnManager {
    pub fn start(
        config: TransactionsConfig,
        node: Arc<ReplicaNode>,
        metadata: StoreGroup,
        store_groups: Vec<GroupId>,
    ) -> Arc<TxnManager> {
        let me = Arc::new(TxnManager {
            config,
            node,
            metadata,
            store_groups,
            tables: Mutex::new(HashMap::new()),
            ids: Mutex::new((0, 0)),
            writer: OnceLock::new(),
            commits: AtomicU64::new(0),
            aborts: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            completions: tokio::sync::watch::channel(0).0,
        });
        tokio::spawn(run_timers(Arc::downgrade(&me)));
        me
    }

    /// Gives the manager what writes markers (the broker).
    pub fn set_writer(&self, writer: Weak<dyn MarkerWriter>) {
        if self.writer.set(writer).is_err() {
            warn!("transaction marker writer set twice; keeping the first");
        }
    }

    /// The store group holding `transactional_id`.
    pub fn home(&self, transactional_id: &str) -> GroupId {
        self.store_groups[crate::groups::home_index(transactional_id, self.store_groups.len())]
    }

    /// InitProducerId with a transactional id.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch, i16> {
        self.run(transactional_id, |core, now, allocate| {
            core.init_producer_id(transactional_id, timeout_ms, expected, now, allocate)
        })
        .await?
    }

    /// AddPartitionsToTxn (one transaction).
    pub async fn add_partitions(
        self: &Arc<Self>,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TxnPartition],
    ) -> Result<(), i16> {
        self.run(transactional_id, |core, now, _| {
            core.add_partitions(
                transactional_id,
                producer.producer_id,
                producer.epoch,
                partitions,
                now,
            )
        })
        .await
    }

    /// AddPartitionsToTxn v4+ with `verify_only` (KIP-890): per partition, whether it is
    /// in the producer's ongoing transaction. Writes nothing.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TxnPartition],
    ) -> Result<Vec<(TxnPartition, i16)>, i16> {
        let gid = self.home(transactional_id);
        let tables = self.tables.lock().unwrap();
        let table = tables.get(&gid).ok_or(NOT_COORDINATOR)?;
        if !table.ready {
            return Err(COORDINATOR_LOAD_IN_PROGRESS);
        }
        table.core.verify_partitions(
            transactional_id,
            producer.producer_id,
            producer.epoch,
            partitions,
        )
    }

    /// AddOffsetsToTxn.
    pub async fn add_offsets(
        self: &Arc<Self>,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group_id: &str,
    ) -> Result<(), i16> {
        self.run(transactional_id, |core, now, _| {
            core.add_offsets(
                transactional_id,
                producer.producer_id,
                producer.epoch,
                group_id,
                now,
            )
        })
        .await
    }

    /// EndTxn; `bump_epoch` for v5+ (KIP-890). Answers once the decision is durable; the
    /// markers follow in the background.
    pub async fn end_txn(
        self: &Arc<Self>,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        result: TxnResult,
        bump_epoch: bool,
    ) -> Result<ProducerIdAndEpoch, i16> {
        self.run(transactional_id, |core, now, allocate| {
            core.end_txn(
                transactional_id,
                producer,
                result,
                bump_epoch,
                now,
                allocate,
            )
        })
        .await
    }

    /// DescribeTransactions for one id (this broker must coordinate it).
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, i16> {
        let gid = self.home(transactional_id);
        let tables = self.tables.lock().unwrap();
        let table = tables.get(&gid).ok_or(NOT_COORDINATOR)?;
        if !table.ready {
            return Err(COORDINATOR_LOAD_IN_PROGRESS);
        }
        table.core.describe(transactional_id)
    }

    /// ListTransactions: the ids this broker coordinates. COORDINATOR_LOAD_IN_PROGRESS
    /// while any of its store groups is loading.
    pub fn list(&self, filter: &ListFilter) -> Result<Listing, i16> {
        let now = now_ms();
        let tables = self.tables.lock().unwrap();
        let mut out = Listing::default();
        for table in tables.values() {
            if !table.ready {
                return Err(COORDINATOR_LOAD_IN_PROGRESS);
            }
            let l = table.core.list(filter, now)?;
            out.transactions.extend(l.transactions);
            out.unknown_state_filters = l.unknown_state_filters;
        }
        if tables.is_empty() {
            out.unknown_state_filters = filter
                .states
                .iter()
                .filter(|s| TxnState::from_name(s).is_none())
                .cloned()
                .collect();
        }
        out.transactions
            .sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Open transactions (Ongoing or Prepare*) on this broker, for the metrics.
    pub fn open_transactions(&self) -> usize {
        let tables = self.tables.lock().unwrap();
        tables
            .values()
            .filter(|t| t.ready)
            .map(|t| {
                let f = ListFilter {
                    states: vec![
                        TxnState::Ongoing.name().to_string(),
                        TxnState::PrepareCommit.name().to_string(),
                        TxnState::PrepareAbort.name().to_string(),
                    ],
                    ..ListFilter::default()
                };
                t.core.list(&f, 0).map_or(0, |l| l.transactions.len())
            })
            .sum()
    }

    pub fn counts(&self) -> TxnCounts {
        TxnCounts {
            commits: self.commits.load(Ordering::Relaxed),
            aborts: self.aborts.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
        }
    }

    /// Makes sure a few producer ids are leased, so the core can allocate without I/O.
    async fn reserve_ids(&self) -> Result<(), i16> {
        {
            let ids = self.ids.lock().unwrap();
            if ids.1 - ids.0 >= 2 {
                return Ok(());
            }
        }
        match self
            .metadata
            .propose_on_leader(Command::AllocateProducerIds(ID_BLOCK))
            .await
        {
            Ok(CommandResponse::ProducerIds(first)) => {
                let mut ids = self.ids.lock().unwrap();
                if ids.1 - ids.0 < 2 {
                    *ids = (first, first + i64::from(ID_BLOCK));
                }
                Ok(())
            }
            Ok(other) => {
                warn!("unexpected answer to AllocateProducerIds: {other:?}");
                Err(COORDINATOR_NOT_AVAILABLE)
            }
            Err(e) => {
                warn!(error = %e, "cannot lease producer ids");
                Err(COORDINATOR_NOT_AVAILABLE)
            }
        }
    }

    /// Runs one core operation on `transactional_id`'s table and carries out its step.
    /// While the id's last transaction is completing (markers being written), the
    /// operation waits for that, up to [`BUSY_WAIT`], rather than answering
    /// CONCURRENT_TRANSACTIONS at once.
    async fn run<R>(
        self: &Arc<Self>,
        transactional_id: &str,
        op: impl Fn(
            &mut TxnCoordinator,
            i64,
            &mut dyn FnMut() -> Result<i64, i16>,
        ) -> Result<Step<R>, i16>,
    ) -> Result<R, i16> {
        let gid = self.home(transactional_id);
        {
            let tables = self.tables.lock().unwrap();
            match tables.get(&gid) {
                None => return Err(NOT_COORDINATOR),
                Some(t) if !t.ready => return Err(COORDINATOR_LOAD_IN_PROGRESS),
                Some(_) => {}
            }
        }
        self.reserve_ids().await?;
        let deadline = tokio::time::Instant::now() + BUSY_WAIT;
        let mut completions = self.completions.subscribe();
        loop {
            completions.borrow_and_update();
            let attempt = {
                let mut tables = self.tables.lock().unwrap();
                let table = tables.get_mut(&gid).ok_or(NOT_COORDINATOR)?;
                let mut ids = self.ids.lock().unwrap();
                let mut allocate = || {
                    if ids.0 < ids.1 {
                        ids.0 += 1;
                        Ok(ids.0 - 1)
                    } else {
                        Err(COORDINATOR_NOT_AVAILABLE)
                    }
                };
                match op(&mut table.core, now_ms(), &mut allocate) {
                    Ok(step) => Ok((step, table.term)),
                    Err(CONCURRENT_TRANSACTIONS) if table.completing.contains(transactional_id) => {
                        Err(None)
                    }
                    Err(code) => Err(Some(code)),
                }
            };
            match attempt {
                Ok((step, term)) => return self.carry_out(gid, term, step).await,
                Err(Some(code)) => return Err(code),
                Err(None) => {
                    if tokio::time::timeout_at(deadline, completions.changed())
                        .await
                        .is_err()
                    {
                        return Err(CONCURRENT_TRANSACTIONS);
                    }
                }
            }
        }
    }

    /// Persists a step (if it must be), installs it, starts its markers; the reply.
    async fn carry_out<R>(
        self: &Arc<Self>,
        gid: GroupId,
        term: u64,
        step: Step<R>,
    ) -> Result<R, i16> {
        let id = step.metadata.transactional_id.clone();
        let mut persist = false;
        let mut markers = None;
        for e in &step.effects {
            match e {
                Effect::Persist => persist = true,
                Effect::WriteMarkers(m) => markers = Some(m.clone()),
            }
        }
        if persist {
            let written = self.persist(gid, &step.metadata).await;
            let mut tables = self.tables.lock().unwrap();
            let Some(table) = tables.get_mut(&gid).filter(|t| t.term == term) else {
                return Err(NOT_COORDINATOR);
            };
            match written {
                Ok(()) => {
                    table.core.persisted(&id);
                }
                Err(code) => {
                    table.core.persist_failed(&id);
                    return Err(code);
                }
            }
        }
        if let Some(m) = markers {
            self.complete(gid, term, m);
        }
        Ok(step.reply)
    }

    /// Writes an id's metadata through its store group's Raft log (a Dead id is deleted).
    async fn persist(&self, gid: GroupId, m: &super::metadata::TxnMetadata) -> Result<(), i16> {
        let store = self.node.group(gid).ok_or(NOT_COORDINATOR)?;
        let value = (m.state != TxnState::Dead).then(|| Bytes::from(log::encode(m)));
        store
            .propose(Command::Put(vec![(key(&m.transactional_id), value)]))
            .await
            .map(|_| ())
            .map_err(|e| {
                warn!(transactional_id = %m.transactional_id, error = %e, "transaction state not stored");
                write_error(&e)
            })
    }

    /// Starts writing a decided transaction's markers, unless a task already is; once
    /// written, the transaction is recorded complete.
    fn complete(self: &Arc<Self>, gid: GroupId, term: u64, markers: Markers) {
        {
            let mut tables = self.tables.lock().unwrap();
            let Some(table) = tables.get_mut(&gid).filter(|t| t.term == term) else {
                return;
            };
            if !table.completing.insert(markers.transactional_id.clone()) {
                return;
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            let id = markers.transactional_id.clone();
            me.write_and_complete(gid, term, &markers).await;
            {
                let mut tables = me.tables.lock().unwrap();
                if let Some(table) = tables.get_mut(&gid).filter(|t| t.term == term) {
                    table.completing.remove(&id);
                }
            }
            me.completions.send_modify(|n| *n += 1);
        });
    }

    fn coordinates(&self, gid: GroupId, term: u64) -> bool {
        self.tables
            .lock()
            .unwrap()
            .get(&gid)
            .is_some_and(|t| t.term == term)
    }

    async fn write_and_complete(self: &Arc<Self>, gid: GroupId, term: u64, markers: &Markers) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if !self.coordinates(gid, term) {
                return;
            }
            let Some(writer) = self.writer.get().and_then(Weak::upgrade) else {
                return;
            };
            match writer.write_markers(markers, term as i32).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(transactional_id = %markers.transactional_id, error = %e,
                        "transaction markers not written yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        let step = {
            let mut tables = self.tables.lock().unwrap();
            let Some(table) = tables.get_mut(&gid).filter(|t| t.term == term) else {
                return;
            };
            table
                .core
                .markers_written(&markers.transactional_id, now_ms())
        };
        match step {
            Ok(step) => {
                let counter = match markers.result {
                    TxnResult::Commit => &self.commits,
                    TxnResult::Abort => &self.aborts,
                };
                match self.carry_out(gid, term, step).await {
                    Ok(()) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    // The markers are written; the timer records completion again.
                    Err(code) => warn!(transactional_id = %markers.transactional_id, code,
                        "transaction completion not stored; will retry"),
                }
            }
            Err(code) => {
                warn!(transactional_id = %markers.transactional_id, code,
                    "transaction markers written but not completed")
            }
        }
    }

    /// Follows leadership of the store groups: loads the ids of a group this broker has
    /// just become leader of, forgets those of one it no longer leads.
    fn follow_leadership(self: &Arc<Self>) {
        for gid in self.store_groups.clone() {
            let Some(store) = self.node.group(gid) else {
                continue;
            };
            let term = store.leader_term();
            let mut tables = self.tables.lock().unwrap();
            match (term, tables.get(&gid).map(|t| t.term)) {
                (Some(t), Some(known)) if t == known => {}
                (Some(t), _) => {
                    tables.insert(
                        gid,
                        Table {
                            term: t,
                            core: TxnCoordinator::loading(self.config.core()),
                            ready: false,
                            completing: BTreeSet::new(),
                        },
                    );
                    let me = self.clone();
                    tokio::spawn(async move { me.load(gid, store, t).await });
                }
                (None, Some(_)) => {
                    tables.remove(&gid);
                    info!(
                        store_group = gid.0,
                        "no longer the leader: transactions handed over"
                    );
                }
                (None, None) => {}
            }
        }
    }

    async fn load(self: &Arc<Self>, gid: GroupId, store: StoreGroup, term: u64) {
        let found = match store.ensure_linearizable().await {
            Ok(()) => store.kv_scan(KEY_PREFIX.as_bytes()),
            Err(e) => Err(e),
        };
        let mut tables = self.tables.lock().unwrap();
        let Some(table) = tables.get_mut(&gid).filter(|t| t.term == term) else {
            return;
        };
        let rows = match found {
            Ok(rows) => rows,
            Err(e) => {
                // Leave it unloaded: the next tick starts over.
                warn!(store_group = gid.0, error = %e, "cannot load transactions; will retry");
                tables.remove(&gid);
                return;
            }
        };
        let count = rows.len();
        for (k, v) in rows {
            match log::decode(&v) {
                Ok(m) => table.core.restore(m),
                Err(e) => {
                    warn!(key = %String::from_utf8_lossy(&k), error = %e, "skipping unreadable transaction state")
                }
            }
        }
        let pending = table.core.loaded();
        table.ready = true;
        drop(tables);
        if count > 0 {
            info!(
                store_group = gid.0,
                transactional_ids = count,
                decided = pending.len(),
                "transactions loaded"
            );
        }
        for m in pending {
            self.complete(gid, term, m);
        }
    }

    /// One timer tick: leadership, timeouts, expirations, markers to drive again.
    fn tick(self: &Arc<Self>, expire: bool) {
        self.follow_leadership();
        let now = now_ms();
        let mut work: Vec<(GroupId, u64, Step<()>)> = Vec::new();
        let mut drive: Vec<(GroupId, u64, Markers)> = Vec::new();
        {
            let mut tables = self.tables.lock().unwrap();
            for (gid, table) in tables.iter_mut() {
                if !table.ready {
                    continue;
                }
                if expire {
                    for step in table.core.expire(now) {
                        info!(transactional_id = %step.metadata.transactional_id,
                            producer_id = step.metadata.producer_id,
                            "transaction timed out: aborting it");
                        self.timed_out.fetch_add(1, Ordering::Relaxed);
                        work.push((*gid, table.term, step));
                    }
                    for step in table.core.expire_ids(now) {
                        work.push((*gid, table.term, step));
                    }
                }
                for m in table.core.pending_markers() {
                    if !table.completing.contains(&m.transactional_id)
                        && !table.core.is_pending(&m.transactional_id)
                    {
                        drive.push((*gid, table.term, m));
                    }
                }
            }
        }
        for (gid, term, step) in work {
            let me = self.clone();
            tokio::spawn(async move {
                let id = step.metadata.transactional_id.clone();
                if let Err(code) = me.carry_out(gid, term, step).await {
                    warn!(transactional_id = %id, code, "transaction timer step not stored");
                }
            });
        }
        for (gid, term, m) in drive {
            self.complete(gid, term, m);
        }
    }
}

async fn run_timers(me: Weak<TxnManager>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_expiry = tokio::time::Instant::now();
    loop {
        interval.tick().await;
        let Some(me) = me.upgrade() else {
            return;
        };
        let every = Duration::from_millis(me.config.abort_check_interval_ms);
        let expire = last_expiry.elapsed() >= every;
        if expire {
            last_expiry = tokio::time::Instant::now();
        }
        me.tick(expire);
    }
}
