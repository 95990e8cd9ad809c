//! Retention by time and size: which head of a partition's log goes (Kafka's
//! `retention.ms` / `retention.bytes` over log segments). Pure: it is fed the partition's
//! batches in offset order (`read::retention_cut` scans them from redb) and answers with
//! the new log start offset; the caller moves the log start through the group's Raft log
//! (`Command::DeleteRecords`), so every replica applies the same cut.
//!
//! # Segments
//!
//! A Kafka log is a sequence of segments and retention drops whole segments. phxq writes
//! the batches of all partitions of a node into shared segment files, so a partition's
//! segments are logical: consecutive batches, from the log start on, grouped the way
//! Kafka rolls its segment files. A batch starts a new segment when adding it would take
//! the current one past `segment_bytes`, or when its max timestamp is `segment_ms` or more
//! after the current segment's first batch's (Kafka's `segment.bytes` and `segment.ms`).
//! The grouping depends only on the stored batches and the log start, so it is the same
//! on every replica and stable while retention cuts at segment boundaries.
//!
//! # What goes
//!
//! Segments are dropped oldest first, and only a prefix of them (Kafka's rules):
//! - time: a segment whose largest timestamp is more than `retention_ms` before now, i.e.
//!   every record in it is past the limit; the first one that is not (or has no
//!   timestamps) stops the time cut;
//! - size: while the partition's bytes minus the oldest remaining segment stay at or above
//!   `retention_bytes`.
//!
//! The last (active) segment is dropped like the others once it qualifies, as Kafka rolls
//! an expired active segment and deletes it: the log start then reaches the log end.

use crate::types::RetentionPolicy;

/// What retention needs of one stored batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSummary {
    pub base_offset: i64,
    /// Offset after the batch's last record.
    pub next_offset: i64,
    pub bytes: u64,
    pub max_timestamp: i64,
}

/// A run of consecutive batches retention drops or keeps as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub base_offset: i64,
    /// Offset after the segment's last record: the log start once it is dropped.
    pub next_offset: i64,
    pub bytes: u64,
    pub batches: u64,
    /// Max timestamp of its first batch (where `segment_ms` counts from).
    pub first_timestamp: i64,
    /// Largest timestamp of its records.
    pub max_timestamp: i64,
}

/// Groups batches, fed in offset order, into segments.
pub struct Segmenter {
    segment_bytes: u64,
    segment_ms: Option<i64>,
    current: Option<Segment>,
}

impl Segmenter {
    pub fn new(policy: &RetentionPolicy) -> Segmenter {
        Segmenter {
            segment_bytes: policy.segment_bytes.max(1),
            segment_ms: policy.segment_ms,
            current: None,
        }
    }

    /// Adds the next batch; returns the segment it closed, if it starts a new one.
    pub fn push(&mut self, b: BatchSummary) -> Option<Segment> {
        let starts_new = match &self.current {
            None => true,
            Some(s) => {
                s.bytes.saturating_add(b.bytes) > self.segment_bytes
                    || self
                        .segment_ms
                        .is_some_and(|ms| b.max_timestamp.saturating_sub(s.first_timestamp) >= ms)
            }
        };
        if starts_new {
            let closed = self.current.take();
            self.current = Some(Segment {
                base_offset: b.base_offset,
                next_offset: b.next_offset,
                bytes: b.bytes,
                batches: 1,
                first_timestamp: b.max_timestamp,
                max_timestamp: b.max_timestamp,
            });
            closed
        } else {
            let s = self.current.as_mut()?;
            s.next_offset = b.next_offset;
            s.bytes = s.bytes.saturating_add(b.bytes);
            s.batches += 1;
            s.max_timestamp = s.max_timestamp.max(b.max_timestamp);
            None
        }
    }

    /// The last, still open segment.
    pub fn finish(self) -> Option<Segment> {
        self.current
    }
}

/// Whether the time limit alone drops `s` at `now_ms`. A segment whose records carry no
/// timestamp (-1: the producer sent none) has no age phxq could know (Kafka falls back to
/// the file's modification time, which a shared segment file does not have per
/// partition): only the size limit drops it.
pub fn expired(s: &Segment, policy: &RetentionPolicy, now_ms: i64) -> bool {
    s.max_timestamp >= 0
        && policy
            .retention_ms
            .is_some_and(|ms| now_ms.saturating_sub(s.max_timestamp) > ms)
}

/// What retention drops from the head of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The new log start offset: the first offset of the first segment kept (the log end
    /// when every segment goes).
    pub log_start: i64,
    pub segments: usize,
    pub batches: u64,
    pub bytes: u64,
}

/// The segments of a log, oldest first, that `policy` drops at `now_ms`, as the new log
/// start; None when nothing goes.
pub fn cut(segments: &[Segment], policy: &RetentionPolicy, now_ms: i64) -> Option<Cut> {
    let by_time = segments
        .iter()
        .take_while(|s| expired(s, policy, now_ms))
        .count();
    let by_size = match policy.retention_bytes {
        None => 0,
        Some(limit) => {
            let total: u64 = segments.iter().map(|s| s.bytes).sum();
            let mut over = total as i128 - limit as i128;
            segments
                .iter()
                .take_while(|s| {
                    let fits = over - s.bytes as i128 >= 0;
                    if fits {
                        over -= s.bytes as i128;
                    }
                    fits
                })
                .count()
        }
    };
    let n = by_time.max(by_size);
    if n == 0 {
        return None;
    }
    let gone = &segments[..n];
    Some(Cut {
        log_start: gone[n - 1].next_offset,
        segments: n,
        batches: gone.iter().map(|s| s.batches).sum(),
        bytes: gone.iter().map(|s| s.bytes).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy(ms: Option<i64>, bytes: Option<u64>, segment_bytes: u64) -> RetentionPolicy {
        RetentionPolicy {
            retention_ms: ms,
            retention_bytes: bytes,
            segment_bytes,
            segment_ms: None,
        }
    }

    /// Batches of 10 records and 100 bytes each, at the given max timestamps.
    fn batches(ts: &[i64]) -> Vec<BatchSummary> {
        ts.iter()
            .enumerate()
            .map(|(i, t)| BatchSummary {
                base_offset: 10 * i as i64,
                next_offset: 10 * (i as i64 + 1),
                bytes: 100,
                max_timestamp: *t,
            })
            .collect()
    }

    fn segments(b: &[BatchSummary], p: &RetentionPolicy) -> Vec<Segment> {
        let mut s = Segmenter::new(p);
        let mut out: Vec<Segment> = b.iter().filter_map(|b| s.push(*b)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn segments_roll_at_segment_bytes_and_segment_ms() {
        let b = batches(&[0, 1, 2, 3, 4, 5, 6]);
        let s = segments(&b, &policy(None, None, 300));
        let bounds: Vec<(i64, i64, u64)> = s
            .iter()
            .map(|s| (s.base_offset, s.next_offset, s.batches))
            .collect();
        assert_eq!(bounds, vec![(0, 30, 3), (30, 60, 3), (60, 70, 1)]);
        // A batch as large as the segment size gets a segment of its own.
        let mut big = b.clone();
        big[1].bytes = 1000;
        let s = segments(&big, &policy(None, None, 300));
        assert_eq!(s[0].batches, 1);
        assert_eq!(s[1].bytes, 1000);
        // segment.ms: a new segment once a batch is that much younger than the first.
        let mut p = policy(None, None, 1 << 30);
        p.segment_ms = Some(10 * MIN);
        let b = batches(&[0, 5 * MIN, 10 * MIN, 11 * MIN, 25 * MIN]);
        let s = segments(&b, &p);
        let firsts: Vec<i64> = s.iter().map(|s| s.base_offset).collect();
        assert_eq!(firsts, vec![0, 20, 40]);
        assert_eq!(s[1].max_timestamp, 11 * MIN);
    }

    #[test]
    fn time_drops_segments_whose_every_record_is_too_old() {
        let now = 100 * MIN;
        // Segments of 3 batches: max timestamps 30, 60 (one late record) and 95 minutes.
        let b = batches(&[
            10 * MIN,
            20 * MIN,
            30 * MIN,
            40 * MIN,
            95 * MIN,
            50 * MIN,
            95 * MIN,
        ]);
        let p = policy(Some(50 * MIN), None, 300);
        let s = segments(&b, &p);
        let c = cut(&s, &p, now).unwrap();
        // Only the first: the second holds a record 5 minutes old.
        assert_eq!(
            (c.log_start, c.segments, c.batches, c.bytes),
            (30, 1, 3, 300)
        );
        // Exactly at the limit is kept (Kafka: older than retention.ms).
        assert_eq!(cut(&s, &policy(Some(70 * MIN), None, 300), now), None);
        // Everything past the limit: the active segment goes too, the log start reaches
        // the log end.
        let c = cut(&s, &policy(Some(MIN), None, 300), 200 * MIN).unwrap();
        assert_eq!((c.log_start, c.segments), (70, 3));
        // A younger segment stops the cut even if older ones follow it.
        let b = batches(&[10 * MIN, 99 * MIN, 10 * MIN, 10 * MIN]);
        let p = policy(Some(50 * MIN), None, 100);
        let c = cut(&segments(&b, &p), &p, now).unwrap();
        assert_eq!(c.log_start, 10);
        // No limit, nothing goes.
        assert_eq!(cut(&s, &policy(None, None, 300), now), None);
        // Timestamps in the future are never expired, nor records without one.
        let p = policy(Some(0), None, 100);
        assert_eq!(cut(&segments(&batches(&[200 * MIN]), &p), &p, now), None);
        assert_eq!(cut(&segments(&batches(&[-1, 0]), &p), &p, now), None);
    }

    #[test]
    fn size_keeps_at_least_retention_bytes() {
        let b = batches(&[0; 10]); // 1000 bytes in segments of 300, 300, 300, 100
        let p = |bytes| policy(None, Some(bytes), 300);
        let s = segments(&b, &p(0));
        assert_eq!(s.len(), 4);
        // 1000 - 300 = 700 >= 650: drop one; 700 - 300 = 400 < 650: stop.
        let c = cut(&s, &p(650), 0).unwrap();
        assert_eq!((c.log_start, c.segments, c.bytes), (30, 1, 300));
        // 1000 - 300 - 300 = 400 >= 400: two go.
        assert_eq!(cut(&s, &p(400), 0).unwrap().segments, 2);
        assert_eq!(cut(&s, &p(1000), 0).map(|c| c.segments), None);
        assert_eq!(cut(&s, &p(701), 0), None);
        // 0: everything, the active segment included.
        let c = cut(&s, &p(0), 0).unwrap();
        assert_eq!((c.log_start, c.segments, c.bytes), (100, 4, 1000));
    }

    #[test]
    fn the_larger_cut_of_time_and_size_wins() {
        let now = 100 * MIN;
        let b = batches(&[10 * MIN, 10 * MIN, 90 * MIN, 90 * MIN, 90 * MIN, 90 * MIN]);
        let mut p = policy(Some(30 * MIN), Some(150), 200);
        let s = segments(&b, &p);
        // Time drops the first segment, size the first two.
        assert_eq!(cut(&s, &p, now).unwrap().log_start, 40);
        p.retention_bytes = Some(10_000);
        assert_eq!(cut(&s, &p, now).unwrap().log_start, 20);
        assert_eq!(cut(&[], &p, now), None);
    }
}
