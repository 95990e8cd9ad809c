//! The share-partitions this broker leads, and its share sessions (Kafka's
//! `SharePartitionManager`): the I/O around the pure [`SharePartition`] and
//! [`SessionCache`].
//!
//! What it owns:
//! - **Loading.** A share-partition is loaded on first use on the leader of the store group
//!   that holds its partition: from the persisted state in that group's key-value space
//!   (`share/<group>\0<topic>\0<partition>`), else at `share.auto.offset.reset`. It is
//!   loaded again when the leader's term changed since (the state of an old term may be
//!   behind what a newer leader persisted).
//! - **Acquiring.** A log read from `next_fetch_offset`, whole batches; control batches are
//!   left out so their offsets are archived as gaps. Only the batches holding acquired
//!   records are returned.
//! - **Persisting.** Every change (acquisition, acknowledgement, release, lock expiry) is
//!   written through the Raft log of the partition's store group before the answer that
//!   depends on it goes out, so delivery counts and acknowledgements survive kill -9 and
//!   failover. One write per share-partition per request carries the whole window (a few
//!   tens of bytes for a window of few ranges); the store group's group commit batches
//!   concurrent writes into one fsync. Writes of one share-partition are serialized and
//!   always carry its newest state, so an older state never overwrites a newer one.
//! - **Timers.** Every [`TICK_MS`], expired acquisition locks are released (and persisted)
//!   and idle share sessions end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use phxq_replication::{Command, PartitionId, ReadLimit, ReplicationError, StoreGroup};
use tracing::{debug, warn};

use super::config::ShareSettings;
use super::dlq::DeadLetters;
use super::partition::{
    initial_start_offset, AckBatch, AcquireMode, AcquiredRange, FetchedBatch, Limits,
    SharePartition, Stats,
};
use super::sessions::{Release, SessionCache};
use super::state;

/// How often lock expiry and idle sessions are looked at.
pub const TICK_MS: u64 = 250;
/// A share session unused for this long ends (its member's records are released).
pub const SESSION_IDLE_MS: u64 = 120_000;

/// Log bytes read per record an acquisition may take, and the bounds of one read.
const READ_BYTES_PER_RECORD: usize = 1024;
const MIN_READ_BYTES: usize = 64 << 10;
const MAX_READ_BYTES: usize = 8 << 20;

/// (share group, topic, partition).
pub type ShareKey = (String, String, i32);

/// The key of a share-partition's persisted state in its store group.
pub fn state_key(key: &ShareKey) -> Vec<u8> {
    let mut k = b"share/".to_vec();
    k.extend_from_slice(key.0.as_bytes());
    k.push(0);
    k.extend_from_slice(key.1.as_bytes());
    k.push(0);
    k.extend_from_slice(key.2.to_string().as_bytes());
    k
}

/// The share-partitions of `group` with persisted state in `store`, as (topic, partition).
pub fn persisted_partitions(
    store: &StoreGroup,
    group: &str,
) -> Result<Vec<(String, i32)>, ReplicationError> {
    let mut prefix = b"share/".to_vec();
    prefix.extend_from_slice(group.as_bytes());
    prefix.push(0);
    Ok(store
        .kv_scan(&prefix)?
        .into_iter()
        .filter_map(|(k, _)| {
            let rest = std::str::from_utf8(&k[prefix.len()..]).ok()?;
            let (topic, partition) = rest.split_once('\0')?;
            Some((topic.to_string(), partition.parse().ok()?))
        })
        .collect())
}

/// Where a share-partition's records live.
#[derive(Clone)]
pub struct Location {
    pub store: StoreGroup,
    pub pid: PartitionId,
}

struct Loaded {
    partition: SharePartition,
    /// The leader term it was loaded in.
    term: u64,
    /// Bumped on every change.
    version: u64,
}

/// One share-partition on this broker.
pub struct Entry {
    key: ShareKey,
    state: Mutex<Option<Loaded>>,
    /// Serializes the writes; holds the version last persisted.
    io: tokio::sync::Mutex<u64>,
    location: Mutex<Option<Location>>,
}

/// What one acquisition gives a member.
#[derive(Debug, Default)]
pub struct Acquired {
    pub records: Bytes,
    pub ranges: Vec<AcquiredRange>,
}

/// A failed share-partition operation: a Kafka error code and a message.
pub type Failure = (i16, String);

fn storage(e: &ReplicationError) -> Failure {
    (crate::errors::replication_error_code(e), e.to_string())
}

pub struct ShareManager {
    sessions: Mutex<SessionCache>,
    partitions: Mutex<HashMap<ShareKey, Arc<Entry>>>,
    next_connection: AtomicU64,
    /// Where archived records go once durable (`dlq.rs`).
    dead_letters: std::sync::OnceLock<tokio::sync::mpsc::Sender<DeadLetters>>,
    /// Dead letters not written (queue full or the write failed).
    pub dead_letters_failed: AtomicU64,
}

impl Entry {
    /// (group, topic, partition).
    pub fn key(&self) -> &ShareKey {
        &self.key
    }
}

impl ShareManager {
    pub fn new(max_sessions: usize) -> ShareManager {
        ShareManager {
            sessions: Mutex::new(SessionCache::new(max_sessions)),
            partitions: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            dead_letters: std::sync::OnceLock::new(),
            dead_letters_failed: AtomicU64::new(0),
        }
    }

    /// Archived records are handed to `tx` (the dead-letter writer) once durable.
    pub fn send_dead_letters_to(&self, tx: tokio::sync::mpsc::Sender<DeadLetters>) {
        let _ = self.dead_letters.set(tx);
    }

    /// A new connection's id (share sessions end with their connection).
    pub fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub fn sessions(&self) -> std::sync::MutexGuard<'_, SessionCache> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, key: &ShareKey) -> Arc<Entry> {
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Entry {
                    key: key.clone(),
                    state: Mutex::new(None),
                    io: tokio::sync::Mutex::new(0),
                    location: Mutex::new(None),
                })
            })
            .clone()
    }

    fn loaded(&self, key: &ShareKey) -> Option<Arc<Entry>> {
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// The share-partition `key`, loaded for the current leader term of `at`, with the
    /// group's current settings.
    pub fn open(
        &self,
        key: &ShareKey,
        at: &Location,
        settings: &ShareSettings,
    ) -> Result<Arc<Entry>, Failure> {
        let entry = self.entry(key);
        let term = at.store.leader_term().ok_or((
            phxq_protocol::errors::NOT_LEADER_OR_FOLLOWER,
            "not the leader".to_string(),
        ))?;
        let limits = Limits::from_settings(settings);
        let offsets = at.store.offsets(at.pid).ok_or((
            phxq_protocol::errors::UNKNOWN_TOPIC_OR_PARTITION,
            "no such partition".to_string(),
        ))?;
        let mut st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.as_ref().is_none_or(|l| l.term != term) {
            let partition = match at.store.kv_get(&state_key(key)).map_err(|e| storage(&e))? {
                Some(bytes) => state::decode(&bytes)
                    .and_then(|s| SharePartition::from_persisted(&s, limits))
                    .map_err(|e| {
                        warn!(group = %key.0, topic = %key.1, partition = key.2, "{e}");
                        (phxq_protocol::errors::KAFKA_STORAGE_ERROR, e.to_string())
                    })?,
                None => {
                    let by_time = match settings.auto_offset_reset {
                        super::config::AutoOffsetReset::ByDuration(ms) => {
                            let since = crate::groups::offsets::now_ms()
                                .saturating_sub(ms.min(i64::MAX as u64) as i64);
                            at.store
                                .batch_by_timestamp(at.pid, since)
                                .map_err(|e| storage(&e))?
                                .map(|b| b.base_offset)
                        }
                        _ => None,
                    };
                    SharePartition::new(
                        initial_start_offset(
                            settings.auto_offset_reset,
                            offsets.log_start_offset,
                            offsets.high_watermark,
                            by_time,
                        ),
                        limits,
                    )
                }
            };
            debug!(group = %key.0, topic = %key.1, partition = key.2, term, start = partition.start_offset(), "share-partition loaded");
            *st = Some(Loaded {
                partition,
                term,
                version: 1,
            });
        }
        let l = st.as_mut().expect("loaded above");
        if l.partition.limits() != limits {
            l.partition.set_limits(limits);
        }
        if offsets.log_start_offset > l.partition.start_offset() {
            l.partition.on_log_start_moved(offsets.log_start_offset);
            l.version += 1;
        }
        drop(st);
        *entry.location.lock().unwrap_or_else(|e| e.into_inner()) = Some(at.clone());
        Ok(entry)
    }

    /// Acquires records of `entry` for `member`: at most `max_records` (whole batches, or
    /// exactly with [`AcquireMode::RecordLimit`]) and about `max_bytes` of batches.
    pub fn acquire(
        &self,
        entry: &Entry,
        at: &Location,
        member: &str,
        (max_records, mode): (u32, AcquireMode),
        max_bytes: usize,
        now: i64,
    ) -> Result<Acquired, Failure> {
        let mut st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(l) = st.as_mut() else {
            return Ok(Acquired::default());
        };
        if l.partition.expire_locks(now) > 0 {
            l.version += 1;
        }
        if !l.partition.can_acquire() || max_records == 0 {
            return Ok(Acquired::default());
        }
        let from = l.partition.next_fetch_offset();
        let Some(offsets) = at.store.offsets(at.pid) else {
            return Ok(Acquired::default());
        };
        if from >= offsets.high_watermark {
            return Ok(Acquired::default());
        }
        // Read about what can be acquired, not the client's whole byte budget (50 MiB by
        // default): whole batches are acquired until `max_records`, so a read sized for
        // that many records of a KiB each is enough for one fetch.
        let want = (max_records as usize)
            .saturating_mul(READ_BYTES_PER_RECORD)
            .clamp(MIN_READ_BYTES, MAX_READ_BYTES);
        let mut buf = BytesMut::new();
        at.store
            .read(
                at.pid,
                from,
                ReadLimit::at_least_one_batch(want.min(max_bytes)),
                &mut buf,
            )
            .map_err(|e| storage(&e))?;
        let buf = buf.freeze();
        let batches = phxq_protocol::batch::split(&buf).map_err(|e| {
            (
                phxq_protocol::errors::CORRUPT_MESSAGE,
                format!("stored batch unreadable: {e}"),
            )
        })?;
        let fetched: Vec<FetchedBatch> = batches
            .iter()
            .filter(|(_, h)| !h.is_control())
            .map(|(_, h)| FetchedBatch {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
            })
            .collect();
        let ranges = l
            .partition
            .acquire(member, from, &fetched, max_records, mode, now)
            .map_err(|e| (e.code(), e.to_string()))?;
        l.version += 1;
        let mut out = BytesMut::new();
        for (range, h) in &batches {
            let overlaps = ranges
                .iter()
                .any(|r| r.first_offset <= h.last_offset() && r.last_offset >= h.base_offset);
            if overlaps && !h.is_control() {
                out.extend_from_slice(&buf[range.clone()]);
            }
        }
        Ok(Acquired {
            records: out.freeze(),
            ranges,
        })
    }

    /// Applies `member`'s acknowledgements to `entry`.
    pub fn acknowledge(
        &self,
        entry: &Entry,
        member: &str,
        batches: &[AckBatch],
        now: i64,
    ) -> Result<(), Failure> {
        let mut st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(l) = st.as_mut() else {
            return Err((
                super::partition::INVALID_RECORD_STATE,
                "nothing was acquired on this partition".into(),
            ));
        };
        l.partition
            .acknowledge(member, batches, now)
            .map_err(|e| (e.code(), e.to_string()))?;
        l.version += 1;
        Ok(())
    }

    /// Writes the newest state of `entry` through its store group's Raft log, unless a
    /// write since already carried it.
    pub async fn persist(&self, entry: &Entry) -> Result<(), Failure> {
        let mut persisted = entry.io.lock().await;
        let (bytes, version) = {
            let st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
            let Some(l) = st.as_ref() else {
                return Ok(());
            };
            if l.version <= *persisted {
                return Ok(());
            }
            (state::encode(&l.partition.to_persisted()), l.version)
        };
        let location = entry
            .location
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(at) = location else {
            return Ok(());
        };
        at.store
            .propose(Command::Put(vec![(
                state_key(&entry.key).into(),
                Some(bytes.into()),
            )]))
            .await
            .map_err(|e| storage(&e))?;
        *persisted = version;
        // What was archived is durable now: on to the dead-letter writer.
        let (archived, dropped) = {
            let mut st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
            match st.as_mut() {
                Some(l) => l.partition.take_archived(),
                None => (Vec::new(), 0),
            }
        };
        if dropped > 0 {
            self.dead_letters_failed
                .fetch_add(dropped, Ordering::Relaxed);
        }
        if let (false, Some(tx)) = (archived.is_empty(), self.dead_letters.get()) {
            let n = archived.len() as u64;
            let letters = DeadLetters {
                key: entry.key.clone(),
                records: archived,
            };
            if tx.try_send(letters).is_err() {
                self.dead_letters_failed.fetch_add(n, Ordering::Relaxed);
                warn!(group = %entry.key.0, topic = %entry.key.1, partition = entry.key.2, "dead-letter queue full: {n} dead letters dropped");
            }
        }
        Ok(())
    }

    /// Releases what `r` names (its member's acquired records on its partitions) and
    /// persists the partitions that changed.
    pub async fn release(&self, r: Release) {
        for (topic, partition) in r.partitions {
            let key = (r.group.clone(), topic, partition);
            let Some(entry) = self.loaded(&key) else {
                continue;
            };
            let changed = {
                let mut st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
                match st.as_mut() {
                    Some(l) => {
                        let released = l.partition.release_member(&r.member) > 0;
                        l.version += u64::from(released);
                        released
                    }
                    None => false,
                }
            };
            if changed {
                if let Err((code, msg)) = self.persist(&entry).await {
                    warn!(group = %key.0, topic = %key.1, partition = key.2, code, "cannot persist released records: {msg}");
                }
            }
        }
    }

    /// The connection `id` closed: its share sessions end and their records come back.
    pub async fn connection_closed(&self, id: u64) {
        let releases = self.sessions().connection_closed(id);
        for r in releases {
            debug!(group = %r.group, member = %r.member, "share session ended with its connection");
            self.release(r).await;
        }
    }

    /// One timer tick: expired locks are released and persisted, idle sessions end.
    pub async fn tick(&self, now: i64) {
        let entries: Vec<Arc<Entry>> = self
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for entry in entries {
            let expired = {
                let mut st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
                match st.as_mut() {
                    Some(l) => {
                        let expired = l.partition.expire_locks(now) > 0;
                        l.version += u64::from(expired);
                        expired
                    }
                    None => false,
                }
            };
            if expired {
                if let Err((code, msg)) = self.persist(&entry).await {
                    debug!(group = %entry.key.0, topic = %entry.key.1, partition = entry.key.2, code, "cannot persist expired locks: {msg}");
                }
            }
        }
        let idle = self.sessions().expire(now.max(0) as u64, SESSION_IDLE_MS);
        for r in idle {
            self.release(r).await;
        }
    }

    /// The start offset of `key` (admin describe): in memory when loaded in the current
    /// term, else as persisted; -1 when there is no state.
    pub fn start_offset(&self, key: &ShareKey, at: &Location) -> Result<i64, Failure> {
        let term = at.store.leader_term();
        if let Some(entry) = self.loaded(key) {
            let st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = st.as_ref().filter(|l| Some(l.term) == term) {
                return Ok(l.partition.start_offset());
            }
        }
        match at.store.kv_get(&state_key(key)).map_err(|e| storage(&e))? {
            Some(bytes) => state::decode(&bytes)
                .map(|s| s.start_offset)
                .map_err(|e| (phxq_protocol::errors::KAFKA_STORAGE_ERROR, e.to_string())),
            None => Ok(-1),
        }
    }

    /// The counts of `key` when it is loaded in the leader's current term.
    pub fn stats_of(&self, key: &ShareKey, at: &Location) -> Option<Stats> {
        let term = at.store.leader_term();
        let entry = self.loaded(key)?;
        let st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
        st.as_ref()
            .filter(|l| Some(l.term) == term)
            .map(|l| l.partition.stats())
    }

    /// Starts `key` over at `start_offset` (clamped into the log), persisted before it
    /// returns the offset it starts at.
    pub async fn alter(
        &self,
        key: &ShareKey,
        at: &Location,
        settings: &ShareSettings,
        start_offset: i64,
    ) -> Result<i64, Failure> {
        let entry = self.open(key, at, settings)?;
        let offsets = at.store.offsets(at.pid).ok_or((
            phxq_protocol::errors::UNKNOWN_TOPIC_OR_PARTITION,
            "no such partition".to_string(),
        ))?;
        let start = start_offset.clamp(offsets.log_start_offset, offsets.high_watermark);
        {
            let mut st = entry.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = st.as_mut() {
                l.partition.reset(start);
                l.version += 1;
            }
        }
        self.persist(&entry).await?;
        Ok(start)
    }

    /// Removes the state of `key` from memory and from its store group.
    pub async fn delete(&self, key: &ShareKey, at: &Location) -> Result<(), Failure> {
        let entry = self.entry(key);
        let _io = entry.io.lock().await;
        // A write waiting behind this one finds nothing to write.
        *entry.state.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        at.store
            .propose(Command::Put(vec![(state_key(key).into(), None)]))
            .await
            .map_err(|e| storage(&e))?;
        Ok(())
    }

    /// Counts of every share-partition loaded here (metrics, describe), in key order.
    pub fn stats(&self) -> Vec<(ShareKey, Stats)> {
        let map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(ShareKey, Stats)> = map
            .iter()
            .filter_map(|(k, e)| {
                let st = e.state.lock().unwrap_or_else(|e| e.into_inner());
                st.as_ref().map(|l| (k.clone(), l.partition.stats()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Runs the timers until the broker is gone.
pub async fn run(manager: std::sync::Weak<ShareManager>) {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(TICK_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(m) = manager.upgrade() else {
            return;
        };
        m.tick(crate::groups::offsets::now_ms()).await;
    }
}
