//! Log compaction: which part of a partition a cleaning pass covers and which records
//! survive it (Kafka's log cleaner, `cleanup.policy=compact`). Pure: fed the partition's
//! batch index and the records' key digests, offsets, timestamps and tombstone flags; the
//! caller (the broker's `compaction` task) reads and parses the batches and swaps the
//! rewritten ones in (`StoreGroup::replace_batches`).
//!
//! # The cleanable range
//!
//! The partition's batches are grouped into logical segments exactly as retention groups
//! them (`partition::retention::Segmenter`: `segment.bytes`, `segment.ms`). A pass never
//! touches the last (active) segment, nor any segment from the first one whose largest
//! timestamp is less than `min.compaction.lag.ms` old: the cleanable range ends at the
//! first such segment (`end`). Everything below it is applied, so committed on a majority.
//!
//! The part of the log a previous pass has not seen is dirty: from `cleaned_to` (what the
//! last pass reached; the log start when unknown, e.g. after a restart) to `end`. A pass
//! runs when dirty bytes / (clean + dirty bytes) reaches `min.cleanable.dirty.ratio`, or
//! when the first dirty batch is older than `max.compaction.lag.ms` (Kafka's rules), or
//! when a tombstone kept by an earlier pass is now past `delete.retention.ms` (KIP-534:
//! then the pass may have an empty dirty range and only removes such tombstones).
//!
//! # What survives
//!
//! The pass builds an [`OffsetMap`] (key digest -> latest offset) over the dirty range,
//! then rewrites the log start..end: a record survives when it is the latest of its key
//! (its offset >= the map's, or its key is not in the map) and
//! - it has a key (the cleaner drops keyless records, as Kafka's does);
//! - it is not a tombstone (null value) older than `delete.retention.ms`: phxq counts that
//!   time from the record's timestamp (Kafka counts from the pass that first saw it); a
//!   tombstone without a timestamp is kept.
//!
//! The map holds at most a fixed number of entries (its memory is the broker's
//! `[log] cleaner_dedupe_buffer_bytes`). When the dirty range has more distinct keys than
//! that, the pass stops its map at the batch where it filled and cleans only up to there
//! ([`OffsetMap::put`] answers false); the next pass goes on from there, as Kafka's does.

use std::collections::HashMap;

use crate::partition::retention::{BatchSummary, Segmenter};
use crate::types::RetentionPolicy;

/// A partition's compaction settings (its topic configs over the broker's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompactionPolicy {
    /// Tombstones older than this (ms, from their timestamp) are removed.
    pub delete_retention_ms: i64,
    /// Records younger than this (ms) are not compacted (whole segments).
    pub min_lag_ms: i64,
    /// A dirty segment older than this (ms) is compacted whatever the dirty ratio.
    pub max_lag_ms: i64,
    /// Dirty share of the cleanable bytes from which a pass runs.
    pub min_dirty_ratio: f64,
    /// Logical segments, as retention groups them.
    pub segment_bytes: u64,
    pub segment_ms: Option<i64>,
}

/// Where a pass works: it rewrites `[log start, end)` with a map built over
/// `[dirty_from, end)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CleanRange {
    pub dirty_from: i64,
    pub end: i64,
    /// Bytes of `[log start, dirty_from)` and of `[dirty_from, end)`.
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// Chosen because the max lag ran out or tombstones are due, not by the dirty ratio.
    pub forced: bool,
}

/// The range a pass over `batches` (the partition's batch index from the log start, in
/// offset order) cleans at `now_ms`, or None when nothing is due; `tombstones_due`: a
/// tombstone an earlier pass kept is now past `delete.retention.ms`. See the module doc.
pub fn cleanable(
    batches: &[BatchSummary],
    cleaned_to: i64,
    policy: &CompactionPolicy,
    now_ms: i64,
    tombstones_due: bool,
) -> Option<CleanRange> {
    let mut segmenter = Segmenter::new(&RetentionPolicy {
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: policy.segment_bytes,
        segment_ms: policy.segment_ms,
    });
    let young = |max_ts: i64| max_ts >= 0 && now_ms.saturating_sub(max_ts) < policy.min_lag_ms;
    // The first segment a pass must not touch: the active one at the latest.
    let mut end = None;
    for b in batches {
        if let Some(closed) = segmenter.push(*b) {
            if young(closed.max_timestamp) {
                end = Some(closed.base_offset);
                break;
            }
        }
    }
    let end = match end {
        Some(e) => e,
        None => segmenter.finish()?.base_offset,
    };
    let dirty_from = batches.first()?.base_offset.max(cleaned_to).min(end);
    if dirty_from >= end && !tombstones_due {
        return None;
    }
    let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
    let mut first_dirty_ts = None;
    for b in batches.iter().take_while(|b| b.base_offset < end) {
        if b.base_offset < dirty_from {
            clean_bytes += b.bytes;
        } else {
            dirty_bytes += b.bytes;
            first_dirty_ts.get_or_insert(b.max_timestamp);
        }
    }
    if dirty_bytes == 0 && !tombstones_due {
        return None;
    }
    let ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes).max(1) as f64;
    let forced = tombstones_due
        || first_dirty_ts
            .is_some_and(|ts| ts >= 0 && now_ms.saturating_sub(ts) > policy.max_lag_ms);
    (ratio >= policy.min_dirty_ratio || forced).then_some(CleanRange {
        dirty_from,
        end,
        clean_bytes,
        dirty_bytes,
        forced,
    })
}

/// Bytes one map entry is counted for: a 16-byte digest, an 8-byte offset and the hash
/// table's control byte.
pub const MAP_ENTRY_BYTES: usize = 25;

/// Key digest -> latest offset, with at most a fixed number of entries.
pub struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
}

impl OffsetMap {
    /// A map that fits in `bytes`: the hash table's buckets are a power of two of
    /// [`MAP_ENTRY_BYTES`] each, filled to 7/8 at most, so the entries are 7/8 of the
    /// largest power of two whose buckets fit (at least 8). Memory is allocated as keys
    /// come, up to that.
    pub fn with_memory(bytes: usize) -> OffsetMap {
        let mut buckets = 8usize;
        while buckets.saturating_mul(2).saturating_mul(MAP_ENTRY_BYTES) <= bytes {
            buckets *= 2;
        }
        OffsetMap {
            map: HashMap::new(),
            capacity: buckets / 8 * 7,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets every key, keeping the memory.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Notes `offset` as the latest of `digest` (offsets come in increasing order); false,
    /// changing nothing, when the key is new and the map is full.
    pub fn put(&mut self, digest: u128, offset: i64) -> bool {
        if let Some(o) = self.map.get_mut(&digest) {
            *o = (*o).max(offset);
            return true;
        }
        if self.map.len() >= self.capacity {
            return false;
        }
        self.map.insert(digest, offset);
        true
    }

    /// Whether the map has room for every one of `digests` (new ones counted once).
    pub fn fits(&self, digests: &[u128]) -> bool {
        let mut new: Vec<u128> = digests
            .iter()
            .copied()
            .filter(|d| !self.map.contains_key(d))
            .collect();
        new.sort_unstable();
        new.dedup();
        self.map.len() + new.len() <= self.capacity
    }

    pub fn latest(&self, digest: u128) -> Option<i64> {
        self.map.get(&digest).copied()
    }
}

/// What the cleaner knows of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFacts {
    pub offset: i64,
    /// Digest of the key; None when the record has no key.
    pub digest: Option<u128>,
    pub tombstone: bool,
    /// The record's timestamp (a LogAppendTime batch's for every record); -1: none.
    pub timestamp: i64,
}

/// Whether a record of the cleaned range survives a pass whose map is `map` (see the
/// module doc).
pub fn survives(map: &OffsetMap, r: &RecordFacts, policy: &CompactionPolicy, now_ms: i64) -> bool {
    let Some(digest) = r.digest else {
        return false;
    };
    if map.latest(digest).is_some_and(|latest| r.offset < latest) {
        return false;
    }
    !(r.tombstone
        && r.timestamp >= 0
        && now_ms.saturating_sub(r.timestamp) > policy.delete_retention_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CompactionPolicy {
        CompactionPolicy {
            delete_retention_ms: 1000,
            min_lag_ms: 0,
            max_lag_ms: i64::MAX,
            min_dirty_ratio: 0.5,
            segment_bytes: 300,
            segment_ms: None,
        }
    }

    /// Batches of 100 bytes, 10 offsets each, timestamps `ts`.
    fn batches(ts: &[i64]) -> Vec<BatchSummary> {
        ts.iter()
            .enumerate()
            .map(|(i, t)| BatchSummary {
                base_offset: i as i64 * 10,
                next_offset: i as i64 * 10 + 10,
                bytes: 100,
                max_timestamp: *t,
            })
            .collect()
    }

    #[test]
    fn the_active_segment_and_young_segments_are_never_cleaned() {
        // Segments of 3 batches: [0,30) [30,60) [60,70) (active).
        let b = batches(&[1, 2, 3, 4, 5, 6, 7]);
        let r = cleanable(&b, 0, &policy(), 10_000, false).unwrap();
        assert_eq!((r.dirty_from, r.end), (0, 60));
        assert_eq!((r.clean_bytes, r.dirty_bytes), (0, 600));
        // A single (active) segment: nothing.
        assert_eq!(cleanable(&b[..3], 0, &policy(), 10_000, false), None);
        // min lag: the second segment is too young.
        let p = CompactionPolicy {
            min_lag_ms: 9_996,
            ..policy()
        };
        let r = cleanable(&b, 0, &p, 10_000, false).unwrap();
        assert_eq!(r.end, 30);
        // All young: nothing.
        let p = CompactionPolicy {
            min_lag_ms: 1_000_000,
            ..policy()
        };
        assert_eq!(cleanable(&b, 0, &p, 10_000, false), None);
    }

    #[test]
    fn the_dirty_ratio_and_max_lag_decide_whether_a_pass_runs() {
        let b = batches(&[1, 2, 3, 4, 5, 6, 7]);
        // Cleaned to 30: 300 clean, 300 dirty: ratio 0.5 runs.
        let r = cleanable(&b, 30, &policy(), 10_000, false).unwrap();
        assert_eq!((r.clean_bytes, r.dirty_bytes, r.forced), (300, 300, false));
        let p = CompactionPolicy {
            min_dirty_ratio: 0.9,
            ..policy()
        };
        assert_eq!(cleanable(&b, 30, &p, 10_000, false), None);
        // ... unless the first dirty batch is older than the max lag.
        let p = CompactionPolicy {
            min_dirty_ratio: 0.9,
            max_lag_ms: 5_000,
            ..policy()
        };
        assert!(cleanable(&b, 30, &p, 10_000, false).unwrap().forced);
        // Everything below the active segment is clean: nothing to do, unless tombstones
        // are due: then a pass with an empty dirty range.
        assert_eq!(cleanable(&b, 60, &policy(), 10_000, false), None);
        let r = cleanable(&b, 60, &policy(), 10_000, true).unwrap();
        assert_eq!(
            (r.dirty_from, r.end, r.dirty_bytes, r.forced),
            (60, 60, 0, true)
        );
    }

    #[test]
    fn latest_per_key_survives_and_old_tombstones_go() {
        let mut map = OffsetMap::with_memory(1 << 10);
        for (d, o) in [(1u128, 0i64), (2, 1), (1, 2), (3, 3)] {
            assert!(map.put(d, o));
        }
        let rec = |offset, digest, tombstone, timestamp| RecordFacts {
            offset,
            digest,
            tombstone,
            timestamp,
        };
        let p = policy();
        assert!(!survives(&map, &rec(0, Some(1), false, 5), &p, 10));
        assert!(survives(&map, &rec(2, Some(1), false, 5), &p, 10));
        assert!(survives(&map, &rec(1, Some(2), false, 5), &p, 10));
        // Not in the map (its latest is below the dirty range): kept.
        assert!(survives(&map, &rec(1, Some(9), false, 5), &p, 10));
        // Keyless records go.
        assert!(!survives(&map, &rec(4, None, false, 5), &p, 10));
        // A tombstone: kept while young, removed once older than delete.retention.ms,
        // kept when it has no timestamp.
        assert!(survives(&map, &rec(3, Some(3), true, 5), &p, 1005));
        assert!(!survives(&map, &rec(3, Some(3), true, 5), &p, 1006));
        assert!(survives(&map, &rec(3, Some(3), true, -1), &p, 1_000_000));
    }

    #[test]
    fn the_map_is_bounded_by_its_memory() {
        let map = OffsetMap::with_memory(25 * 64);
        assert_eq!(map.capacity(), 56);
        let mut map = OffsetMap::with_memory(0);
        assert_eq!(map.capacity(), 7);
        for d in 0..7u128 {
            assert!(map.put(d, d as i64));
        }
        assert!(map.put(3, 10), "a known key always fits");
        assert!(!map.put(100, 11));
        assert_eq!(map.latest(100), None);
        assert!(map.fits(&[1, 2]));
        assert!(!map.fits(&[1, 200]));
        map.clear();
        assert!(map.is_empty());
        assert!(map.fits(&[1, 2, 3, 4, 5, 6, 7, 7]));
        assert!(!map.fits(&[1, 2, 3, 4, 5, 6, 7, 8]));
    }
}
