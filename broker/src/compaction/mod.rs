//! Log compaction (`cleanup.policy=compact` and `compact,delete`): the background cleaner
//! of this broker. Like Kafka's `LogCleaner`, every replica cleans its own copy of each
//! compacted partition it hosts, leader or follower, independently:
//!
//! - every `log.cleaner.backoff.ms`, for each compacted partition whose store group this
//!   node hosts, it reads the batch index (`StoreGroup::compaction_index`) and asks the
//!   pure rules (`phxq_replication::compaction`) whether a pass is due and over which
//!   range: never the active segment, never records younger than `min.compaction.lag.ms`,
//!   only below what this replica applied (so committed);
//! - it builds the key -> latest offset map over the dirty range, with keys as 128-bit
//!   SipHash-1-3 digests, bounded by `[log] cleaner_dedupe_buffer_bytes`: when the dirty
//!   range has more distinct keys, the pass stops at the batch where the map filled;
//! - it rewrites the batches from the log start to there, keeping the latest record of
//!   each key (`protocol::records::rebuild`: same base offset and last offset delta, so
//!   offsets do not move; tombstones go after `delete.retention.ms`), and swaps each step
//!   of at most [`SWAP_BYTES`] in with one durable writer transaction
//!   (`StoreGroup::replace_batches`), which does nothing when retention, DeleteRecords or
//!   a topic deletion changed those rows first (the pass then ends and starts over later);
//! - reads plus writes are held to `[log] cleaner_io_max_bytes_per_second` by sleeping
//!   between steps, and all of it runs on a blocking thread, so produce and fetch keep
//!   their latency while a large partition is rewritten.
//!
//! Why not decided on the leader and replicated through Raft: the cleaner's output is a
//! pure function of the records, which every replica holds, and it does not change an
//! offset, the log start or the high watermark; replicating rewritten batches would send
//! a partition's whole cleaned log through Raft again. Replicas may be at different points
//! of cleaning, as Kafka's are; a follower that becomes leader serves its own cleaned or
//! not yet cleaned copy, with the same offsets either way. `compact,delete` also applies
//! retention, which stays decided by the leader (`retention`).
//!
//! What a pass reached is kept in memory: after a restart the first pass treats the whole
//! log as dirty (it only costs a read of it).

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use phxq_protocol::batch::BatchHeader;
use phxq_protocol::decompress::DecompressError;
use phxq_protocol::records::{self, RecordRef, RecordsError};
use phxq_replication::compaction::{
    cleanable, survives, BatchSummary, CleanRange, CompactionPolicy, OffsetMap, RecordFacts,
};
use phxq_replication::{BatchReplacement, IndexedBatch, PartitionId, ReplicationError, StoreGroup};
use siphasher::sip128::{Hasher128, SipHasher13};
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::topic_configs::compaction_policy;

/// Batch bytes one read takes: small, so that a read interleaves with the fsyncs of the
/// produce path instead of holding the disk for long (measured: 1 MiB reads at 64 MiB/s
/// doubled the produce p99, see docs/compaction-latency.md).
pub const STEP_BYTES: u64 = 256 << 10;
/// Batches one read takes at most.
const STEP_BATCHES: usize = 256;
/// Batch bytes (before rewriting) one swap replaces at most: one durable writer
/// transaction per this much, so that swaps rarely cost the produce path an fsync of
/// their own.
pub const SWAP_BYTES: u64 = 8 << 20;
/// Records of one batch are decompressed up to this size; a larger batch is kept as is.
const MAX_DECOMPRESSED: usize = 64 << 20;

/// The cleaner's state across passes.
struct Cleaner {
    /// Per partition, the offset the last pass cleaned up to.
    cleaned: HashMap<PartitionId, i64>,
    /// Per partition, when the first tombstone the last pass kept is past
    /// `delete.retention.ms` (a pass is due then, dirty or not).
    tombstones: HashMap<PartitionId, i64>,
    map: OffsetMap,
    throttle: Throttle,
}

/// Runs the cleaner every `log.cleaner.backoff.ms` until the broker is gone (unless
/// `log.cleaner_enable` is false).
pub async fn run(broker: Weak<Broker>) {
    let (every, memory, rate) = match broker.upgrade() {
        Some(b) if b.config.log.cleaner_enable => (
            Duration::from_millis(b.config.log.cleaner_backoff_ms),
            b.config.log.cleaner_dedupe_buffer_bytes,
            b.config.log.cleaner_io_max_bytes_per_second,
        ),
        _ => return,
    };
    let mut cleaner = Some(Cleaner {
        cleaned: HashMap::new(),
        tombstones: HashMap::new(),
        map: OffsetMap::with_memory(usize::try_from(memory).unwrap_or(usize::MAX)),
        throttle: Throttle::new(rate),
    });
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else {
            return;
        };
        let Some(c) = cleaner.take() else {
            return;
        };
        cleaner = Some(round(&b, c).await);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One look at every compacted partition hosted here.
async fn round(broker: &Arc<Broker>, mut cleaner: Cleaner) -> Cleaner {
    let mut seen = Vec::new();
    for topic in broker.topics.all() {
        // With the dynamic broker configs in effect (`log.cleanup.policy`, `log.cleaner.*`).
        let Some(policy) = compaction_policy(&broker.broker_configs.effective(), &topic) else {
            continue;
        };
        for index in 0..topic.partition_count() {
            let Some((pid, g)) = topic.partition(index) else {
                continue;
            };
            let Some(group) = broker.store_group(g) else {
                continue;
            };
            seen.push(pid);
            let name = topic.name.clone();
            let mut c = cleaner;
            let (c, outcome) = match tokio::task::spawn_blocking(move || {
                let r = c.clean(&group, pid, &policy, now_ms());
                (c, r)
            })
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    warn!(topic = %name, partition = index, "the log cleaner's task failed: {e}");
                    return Cleaner {
                        cleaned: HashMap::new(),
                        tombstones: HashMap::new(),
                        map: OffsetMap::with_memory(
                            broker.config.log.cleaner_dedupe_buffer_bytes as usize,
                        ),
                        throttle: Throttle::new(broker.config.log.cleaner_io_max_bytes_per_second),
                    };
                }
            };
            cleaner = c;
            match outcome {
                Ok(Some(s)) => info!(
                    topic = %name,
                    partition = index,
                    cleaned_to = s.end,
                    dirty_from = s.dirty_from,
                    keys = s.keys,
                    batches_rewritten = s.rewritten,
                    batches_removed = s.removed,
                    records_removed = s.records_removed,
                    bytes_before = s.bytes_before,
                    bytes_after = s.bytes_after,
                    complete = s.complete,
                    elapsed_ms = s.elapsed.as_millis() as u64,
                    "log cleaner compacted a partition"
                ),
                Ok(None) => {}
                Err(e) => {
                    warn!(topic = %name, partition = index, "log cleaner stopped; will retry: {e}")
                }
            }
        }
    }
    cleaner.cleaned.retain(|p, _| seen.contains(p));
    cleaner.tombstones.retain(|p, _| seen.contains(p));
    cleaner
}

/// What one pass over a partition did.
#[derive(Debug, Default)]
struct PassStats {
    dirty_from: i64,
    end: i64,
    keys: usize,
    rewritten: usize,
    removed: usize,
    records_removed: usize,
    bytes_before: u64,
    bytes_after: u64,
    /// False when a swap found its rows changed (the pass ended early).
    complete: bool,
    elapsed: Duration,
}

/// A 128-bit digest of a record key.
pub fn digest(key: &[u8]) -> u128 {
    let mut h = SipHasher13::new_with_keys(0x7068_7871_636c_6561, 0x6e65_725f_6b65_7973);
    h.write(key);
    h.finish128().as_u128()
}

/// A batch's records, parsed; None for a batch the cleaner keeps as it is (control or
/// transactional batches, or one that decompresses past [`MAX_DECOMPRESSED`]).
fn parse(batch: &Bytes) -> Result<Option<(BatchHeader, Bytes, Vec<RecordRef>)>, RecordsError> {
    let h = BatchHeader::parse(batch)?;
    if h.is_control() || h.is_transactional() {
        return Ok(None);
    }
    let (h, plain) = match records::plain_records(batch, MAX_DECOMPRESSED) {
        Ok(r) => r,
        Err(RecordsError::Decompress(DecompressError::TooLarge(_))) => return Ok(None),
        Err(e) => return Err(e),
    };
    let recs = records::parse_records(&plain, h.records_count)?;
    Ok(Some((h, plain, recs)))
}

fn facts(h: &BatchHeader, plain: &[u8], r: &RecordRef) -> RecordFacts {
    let timestamp = if h.is_log_append_time() {
        h.max_timestamp
    } else if h.base_timestamp < 0 {
        -1
    } else {
        h.base_timestamp.saturating_add(r.timestamp_delta)
    };
    RecordFacts {
        offset: h.base_offset + r.offset_delta as i64,
        digest: r.key.clone().map(|k| digest(&plain[k])),
        tombstone: r.null_value,
        timestamp,
    }
}

/// Consecutive steps over `batches`: at most [`STEP_BYTES`] and [`STEP_BATCHES`] each.
fn steps(batches: &[IndexedBatch]) -> Vec<&[IndexedBatch]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, b) in batches.iter().enumerate() {
        if i > start && (bytes + b.bytes > STEP_BYTES || i - start >= STEP_BATCHES) {
            out.push(&batches[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += b.bytes;
    }
    if start < batches.len() {
        out.push(&batches[start..]);
    }
    out
}

fn storage(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::storage(e)
}

impl Cleaner {
    /// One pass over `pid` if one is due (blocking: run it on a blocking thread).
    fn clean(
        &mut self,
        group: &StoreGroup,
        pid: PartitionId,
        policy: &CompactionPolicy,
        now: i64,
    ) -> Result<Option<PassStats>, ReplicationError> {
        let started = Instant::now();
        let index = match group.compaction_index(pid) {
            Ok(i) => i,
            Err(ReplicationError::UnknownPartition) => return Ok(None),
            Err(e) => return Err(e),
        };
        let summaries: Vec<BatchSummary> = index.iter().map(IndexedBatch::summary).collect();
        let cleaned_to = self.cleaned.get(&pid).copied().unwrap_or(i64::MIN);
        let due = self.tombstones.get(&pid).is_some_and(|t| now > *t);
        let Some(CleanRange {
            dirty_from, end, ..
        }) = cleanable(&summaries, cleaned_to, policy, now, due)
        else {
            return Ok(None);
        };
        self.throttle.restart();
        // The map over the dirty range, up to where it fills.
        self.map.clear();
        let dirty: Vec<IndexedBatch> = index
            .iter()
            .filter(|b| b.base_offset >= dirty_from && b.base_offset < end)
            .copied()
            .collect();
        let mut map_end = end;
        'fill: for step in steps(&dirty) {
            let bytes = group.read_indexed(step)?;
            self.throttle.spend(step.iter().map(|b| b.bytes).sum());
            for (b, data) in step.iter().zip(&bytes) {
                let Some((h, plain, recs)) = parse(data).map_err(storage)? else {
                    continue;
                };
                let digests: Vec<u128> = recs
                    .iter()
                    .filter_map(|r| r.key.clone().map(|k| digest(&plain[k])))
                    .collect();
                if !self.map.fits(&digests) {
                    map_end = b.base_offset;
                    break 'fill;
                }
                for (r, d) in recs.iter().filter(|r| r.key.is_some()).zip(digests.iter()) {
                    self.map.put(*d, h.base_offset + r.offset_delta as i64);
                }
            }
        }
        if map_end <= dirty_from && dirty_from < end {
            warn!(
                ?pid,
                capacity = self.map.capacity(),
                "log cleaner: one batch has more distinct keys than log.cleaner_dedupe_buffer_bytes holds; raise it"
            );
            return Ok(None);
        }
        let mut tombstone_due = i64::MAX;
        let mut stats = PassStats {
            dirty_from,
            end: map_end,
            keys: self.map.len(),
            complete: true,
            ..PassStats::default()
        };
        // Rewrite [log start, map_end).
        let cleaning: Vec<IndexedBatch> = index
            .iter()
            .filter(|b| b.base_offset < map_end)
            .copied()
            .collect();
        let mut reps = Vec::new();
        let mut pending = 0u64;
        let all = steps(&cleaning);
        let last = all.len().saturating_sub(1);
        for (n, step) in all.into_iter().enumerate() {
            let bytes = group.read_indexed(step)?;
            let mut written = 0u64;
            for (b, data) in step.iter().zip(&bytes) {
                stats.bytes_before += b.bytes;
                let Some((h, plain, recs)) = parse(data).map_err(storage)? else {
                    stats.bytes_after += b.bytes;
                    continue;
                };
                let mut kept: Vec<&RecordRef> = Vec::with_capacity(recs.len());
                for r in &recs {
                    let f = facts(&h, &plain, r);
                    if survives(&self.map, &f, policy, now) {
                        if f.tombstone && f.timestamp >= 0 {
                            tombstone_due = tombstone_due
                                .min(f.timestamp.saturating_add(policy.delete_retention_ms));
                        }
                        kept.push(r);
                    }
                }
                if kept.len() == recs.len() {
                    stats.bytes_after += b.bytes;
                    continue;
                }
                stats.records_removed += recs.len() - kept.len();
                let new = if kept.is_empty() {
                    stats.removed += 1;
                    None
                } else {
                    let out = records::rebuild(data, &plain, &kept).map_err(storage)?;
                    stats.rewritten += 1;
                    stats.bytes_after += out.len() as u64;
                    written += out.len() as u64;
                    Some(Bytes::from(out))
                };
                pending += b.bytes;
                reps.push(BatchReplacement { old: *b, new });
            }
            self.throttle
                .spend(step.iter().map(|b| b.bytes).sum::<u64>() + written);
            if reps.is_empty() || (pending < SWAP_BYTES && n < last) {
                continue;
            }
            pending = 0;
            let swapped = tokio::runtime::Handle::current()
                .block_on(group.replace_batches(pid, std::mem::take(&mut reps)))?;
            if !swapped {
                debug!(
                    ?pid,
                    "log cleaner: rows changed under the pass; it ends here"
                );
                stats.complete = false;
                break;
            }
        }
        if stats.complete {
            self.cleaned.insert(pid, map_end);
            if tombstone_due == i64::MAX {
                self.tombstones.remove(&pid);
            } else {
                self.tombstones.insert(pid, tombstone_due);
            }
        }
        stats.elapsed = started.elapsed();
        Ok(Some(stats))
    }
}

/// Holds the cleaner's I/O to a rate: after each step it sleeps until the bytes so far fit
/// `rate` bytes per second since the pass started.
struct Throttle {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    fn new(rate: u64) -> Throttle {
        Throttle {
            rate: rate.max(1),
            start: Instant::now(),
            bytes: 0,
        }
    }

    fn restart(&mut self) {
        self.start = Instant::now();
        self.bytes = 0;
    }

    fn spend(&mut self, bytes: u64) {
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_128_bits_and_stable() {
        assert_eq!(digest(b"key-1"), digest(b"key-1"));
        assert_ne!(digest(b"key-1"), digest(b"key-2"));
        assert_ne!(digest(b"key-1") >> 64, 0);
    }

    #[test]
    fn the_throttle_holds_the_rate() {
        let mut t = Throttle::new(1 << 20);
        let start = Instant::now();
        t.spend(100 << 10);
        assert!(start.elapsed() >= Duration::from_millis(90));
    }
}
