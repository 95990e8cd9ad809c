//! One share-partition (Kafka's `SharePartition`): which records of a topic-partition a
//! share group has handed out, to whom, how often, and how they were acknowledged.
//!
//! Terms (KIP-932):
//! - The **share-partition start offset (SPSO)** is the first offset not yet finished;
//!   every offset below it is done (acknowledged, archived, or below the log start) and is
//!   never handed out again.
//! - The **end offset** ([`SharePartition::end_offset`], exclusive here: one past the last
//!   offset ever acquired) bounds the **in-flight window** `[SPSO, end)`. Offsets at or past
//!   it have never been delivered.
//! - Every offset in the window has a state: **Available** (may be acquired; an offset with
//!   no entry is Available with delivery count 0), **Acquired** (by one member, under a lock
//!   until a deadline), **Acknowledged** or **Archived** (both terminal).
//!
//! Rules:
//! - **Acquire** ([`SharePartition::acquire`]): the caller read the log from
//!   [`SharePartition::next_fetch_offset`] and passes the fetched batches' offset bounds.
//!   Available offsets in them at or above the SPSO become Acquired by the member with the
//!   lock deadline `now + record.lock.duration.ms`, and their delivery count goes up by one.
//!   Offsets the read skipped (between the fetch offset and the first batch, or between
//!   batches: compacted away, or below a moved log start) do not exist and are archived
//!   (gaps), so the SPSO can pass them. Records acquired by anyone, or finished, are
//!   skipped. `max_records` is a soft limit in `BatchOptimized` mode (whole fetched batches,
//!   Kafka's default) and exact in `RecordLimit` mode. A record about to get its last
//!   delivery (delivery count = limit - 1, limit > 2) is delivered alone, so a poison record
//!   does not take a whole batch's delivery attempts with it (Kafka 4.2 does the same).
//! - **In-flight cap** (`group.share.partition.max.record.locks`): no offset at or beyond
//!   `SPSO + cap` is acquired for the first time, so the window, and the memory of this
//!   structure, stays bounded; records already in the window can always be redelivered.
//! - **Acknowledge** ([`SharePartition::acknowledge`]) is all or nothing per call: every
//!   offset at or above the SPSO must be Acquired by the acknowledging member with its lock
//!   not expired at `now`, else INVALID_RECORD_STATE and nothing changes; malformed batches
//!   (first > last, negative, unordered or overlapping, acknowledge types neither one nor
//!   one per offset, unknown type byte, offset `i64::MAX`) are INVALID_REQUEST. Offsets below the SPSO are
//!   ignored (already done, as in Kafka). ACCEPT -> Acknowledged; RELEASE -> Available;
//!   REJECT and GAP (type 0, an offset the client found missing) -> Archived; RENEW
//!   (KIP-1222, if `share.renew.acknowledge.enable`) restarts the lock from `now`.
//! - **Lock expiry** ([`SharePartition::expire_locks`], also run first by acquire and
//!   acknowledge): an Acquired record whose deadline is at or before `now` is released.
//! - **Release** (RELEASE, lock expiry, member leaving via
//!   [`SharePartition::release_member`]): the record becomes Available with its delivery
//!   count kept, or Archived if the count has reached `delivery.count.limit`. Kafka
//!   decrements the count when a share session closes (it assumes the last batch never
//!   reached the client); phxq keeps it, so a consumer that crashes cleanly on a poison
//!   record cannot make it loop forever, and the delivery count never goes down.
//! - **SPSO advance**: after every change the SPSO moves past the contiguous prefix of
//!   Acknowledged/Archived offsets, and their entries are dropped.
//! - **Log start move** ([`SharePartition::on_log_start_moved`], retention or
//!   DeleteRecords): everything below the new log start is finished: the SPSO jumps to it
//!   and the entries below are dropped (acknowledgements for them are then ignored).
//! - **Reset** ([`SharePartition::reset`], AlterShareGroupOffsets on an empty group):
//!   forgets every record, sets the SPSO, and bumps the state epoch.
//! - Isolation levels are not applied yet: with `read_committed` the wiring step must only
//!   read up to the last stable offset and archive aborted records (Kafka filters them
//!   after acquiring, from the log's aborted-transaction index).
//!
//! Nothing here reads a clock: `now` is milliseconds on any monotonic scale the caller keeps.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::ShareSettings;

/// Kafka's error code for INVALID_REQUEST.
pub const INVALID_REQUEST: i16 = 42;
/// Kafka's error code for INVALID_RECORD_STATE.
pub const INVALID_RECORD_STATE: i16 = 121;

/// Kafka's upper bound of `group.share.partition.max.record.locks`; larger settings are
/// clamped to it, so no share-partition holds more than this many entries.
pub const MAX_RECORD_LOCKS_UPPER: u32 = 10_000;

/// How many archived records [`SharePartition::take_archived`] holds until drained.
pub const ARCHIVED_OUTBOX_MAX: usize = 10_000;

/// A refused operation; the partition is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareError {
    InvalidRequest(String),
    InvalidRecordState(String),
}

impl ShareError {
    pub fn code(&self) -> i16 {
        match self {
            ShareError::InvalidRequest(_) => INVALID_REQUEST,
            ShareError::InvalidRecordState(_) => INVALID_RECORD_STATE,
        }
    }
}

impl std::fmt::Display for ShareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShareError::InvalidRequest(m) | ShareError::InvalidRecordState(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ShareError {}

/// The settings one share-partition runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `group.share.partition.max.record.locks`: the in-flight window's size.
    pub max_record_locks: u32,
    /// `share.delivery.count.limit`.
    pub delivery_count_limit: u16,
    /// `share.record.lock.duration.ms`.
    pub lock_duration_ms: u32,
    /// `share.renew.acknowledge.enable`.
    pub renew_enabled: bool,
}

impl Limits {
    pub fn from_settings(s: &ShareSettings) -> Limits {
        Limits {
            max_record_locks: s.partition_max_record_locks,
            delivery_count_limit: s.delivery_count_limit,
            lock_duration_ms: s.record_lock_duration_ms,
            renew_enabled: s.renew_acknowledge_enable,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_locks: 2000,
            delivery_count_limit: 5,
            lock_duration_ms: 30_000,
            renew_enabled: true,
        }
    }
}

/// The state of one in-flight record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired {
        member: Arc<str>,
        /// The lock expires at this time (same scale as `now`).
        deadline_ms: i64,
    },
    Acknowledged,
    Archived,
}

impl RecordState {
    pub fn is_terminal(&self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// One in-flight record: its state and how many times it was delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub state: RecordState,
    pub delivery_count: u16,
}

/// The offset bounds of one record batch the log read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// How `max_records` limits an acquisition (ShareFetch's share acquire mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AcquireMode {
    /// Whole fetched batches; `max_records` is checked between batches (Kafka's default).
    #[default]
    BatchOptimized,
    /// Exactly at most `max_records`.
    RecordLimit,
}

/// Offsets handed to a member, as in ShareFetch's `AcquiredRecords`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcquiredRange {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: u16,
}

/// An acknowledgement type, with Kafka's wire values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckType {
    /// 0: the offset has no record (compacted away, a control record).
    Gap,
    Accept,
    Release,
    Reject,
    /// KIP-1222: keep the record and restart its lock.
    Renew,
}

impl AckType {
    pub fn from_wire(v: i8) -> Result<AckType, ShareError> {
        match v {
            0 => Ok(AckType::Gap),
            1 => Ok(AckType::Accept),
            2 => Ok(AckType::Release),
            3 => Ok(AckType::Reject),
            4 => Ok(AckType::Renew),
            _ => Err(ShareError::InvalidRequest(format!(
                "Invalid acknowledge type: {v}"
            ))),
        }
    }
}

/// One acknowledgement batch of ShareFetch / ShareAcknowledge: one type for the whole
/// range, or one per offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub types: Vec<AckType>,
}

/// Why a record was archived (for the dead-letter topic of the wiring step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveCause {
    Rejected,
    DeliveryCountLimit,
}

/// A record archived after delivery: rejected, or its delivery count at the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchivedRecord {
    pub offset: i64,
    pub delivery_count: u16,
    pub cause: ArchiveCause,
}

/// Counts for describe and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub start_offset: i64,
    pub end_offset: i64,
    pub acquired: u64,
    /// Available records delivered before (waiting for redelivery).
    pub redeliverable: u64,
    pub acknowledged: u64,
    pub archived: u64,
}

/// The state of one share-partition. See the module doc for the rules.
#[derive(Clone, Debug)]
pub struct SharePartition {
    start: i64,
    end: i64,
    state_epoch: i32,
    records: BTreeMap<i64, InFlight>,
    limits: Limits,
    /// No lock expires before this (a lower bound; `None`: nothing acquired).
    earliest_deadline: Option<i64>,
    archived: Vec<ArchivedRecord>,
    archived_dropped: u64,
}

/// Where a share-partition with no state starts (`share.auto.offset.reset`): `earliest`
/// at the log start, `latest` at the log end, `by_duration` at `offset_for_time` (the
/// first offset with a timestamp at or after now minus the duration, looked up by the
/// caller; `None` when there is none: the log end). Always within the log.
pub fn initial_start_offset(
    reset: super::config::AutoOffsetReset,
    log_start: i64,
    log_end: i64,
    offset_for_time: Option<i64>,
) -> i64 {
    use super::config::AutoOffsetReset::*;
    let log_end = log_end.max(log_start);
    let o = match reset {
        Earliest => log_start,
        Latest => log_end,
        ByDuration(_) => offset_for_time.unwrap_or(log_end),
    };
    o.clamp(log_start, log_end)
}

fn push_range(out: &mut Vec<AcquiredRange>, offset: i64, delivery_count: u16) {
    if let Some(r) = out.last_mut() {
        if r.last_offset.checked_add(1) == Some(offset) && r.delivery_count == delivery_count {
            r.last_offset = offset;
            return;
        }
    }
    out.push(AcquiredRange {
        first_offset: offset,
        last_offset: offset,
        delivery_count,
    });
}

impl SharePartition {
    /// A share-partition with nothing in flight, starting at `start_offset`.
    pub fn new(start_offset: i64, limits: Limits) -> SharePartition {
        let start = start_offset.max(0);
        SharePartition {
            start,
            end: start,
            state_epoch: 0,
            records: BTreeMap::new(),
            limits,
            earliest_deadline: None,
            archived: Vec::new(),
            archived_dropped: 0,
        }
    }

    /// Rebuilds a share-partition from checked parts (`state.rs`); acquired records
    /// must not be among them.
    pub(super) fn from_parts(
        start: i64,
        end: i64,
        state_epoch: i32,
        records: BTreeMap<i64, InFlight>,
        limits: Limits,
    ) -> SharePartition {
        let mut p = SharePartition {
            start,
            end: end.max(start),
            state_epoch,
            records,
            limits,
            earliest_deadline: None,
            archived: Vec::new(),
            archived_dropped: 0,
        };
        p.advance_start();
        p
    }

    pub fn start_offset(&self) -> i64 {
        self.start
    }

    /// One past the last offset ever acquired (at least the SPSO).
    #[cfg(test)]
    pub fn end_offset(&self) -> i64 {
        self.end
    }

    pub fn state_epoch(&self) -> i32 {
        self.state_epoch
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// New settings (a group config change): they apply to the next acquisitions,
    /// releases and lock renewals; locks already granted keep their deadlines.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The in-flight entries (offsets with no entry in the window are Available, never
    /// delivered).
    pub fn records(&self) -> impl Iterator<Item = (i64, &InFlight)> {
        self.records.iter().map(|(o, r)| (*o, r))
    }

    #[cfg(test)]
    pub fn record(&self, offset: i64) -> Option<&InFlight> {
        self.records.get(&offset)
    }

    /// Records archived after a delivery since the last call (rejected or at the delivery
    /// count limit), oldest first, and how many did not fit in the outbox.
    pub fn take_archived(&mut self) -> (Vec<ArchivedRecord>, u64) {
        let dropped = std::mem::take(&mut self.archived_dropped);
        (std::mem::take(&mut self.archived), dropped)
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            start_offset: self.start,
            end_offset: self.end,
            ..Stats::default()
        };
        for r in self.records.values() {
            match r.state {
                RecordState::Available => s.redeliverable += 1,
                RecordState::Acquired { .. } => s.acquired += 1,
                RecordState::Acknowledged => s.acknowledged += 1,
                RecordState::Archived => s.archived += 1,
            }
        }
        s
    }

    /// The offset the next log read for this share-partition should start at: the first
    /// Available offset of the window, else the end offset.
    pub fn next_fetch_offset(&self) -> i64 {
        let mut expected = self.start;
        for (&o, r) in self.records.range(self.start..self.end) {
            if o > expected {
                // `expected` has no entry: never delivered, Available.
                return expected;
            }
            if r.state == RecordState::Available {
                return o;
            }
            expected = o + 1;
        }
        expected.min(self.end)
    }

    /// Whether anything could be acquired right now without reading past the cap: an
    /// Available offset in the window, or room for new offsets.
    pub fn can_acquire(&self) -> bool {
        self.next_fetch_offset() < self.end
            || self.window_len()
                < u64::from(self.limits.max_record_locks.min(MAX_RECORD_LOCKS_UPPER))
    }

    fn window_len(&self) -> u64 {
        self.end.saturating_sub(self.start).max(0) as u64
    }

    fn note_archived(&mut self, offset: i64, delivery_count: u16, cause: ArchiveCause) {
        if self.archived.len() < ARCHIVED_OUTBOX_MAX {
            self.archived.push(ArchivedRecord {
                offset,
                delivery_count,
                cause,
            });
        } else {
            self.archived_dropped += 1;
        }
    }

    /// Releases one record (RELEASE, lock expiry, member leaving): Available with its
    /// delivery count, or Archived at the delivery count limit.
    fn release_record(&mut self, offset: i64) {
        let limit = self.limits.delivery_count_limit;
        let Some(r) = self.records.get_mut(&offset) else {
            return;
        };
        if r.delivery_count >= limit {
            r.state = RecordState::Archived;
            let dc = r.delivery_count;
            self.note_archived(offset, dc, ArchiveCause::DeliveryCountLimit);
        } else {
            r.state = RecordState::Available;
        }
    }

    /// Moves the SPSO past finished offsets and drops their entries.
    fn advance_start(&mut self) {
        while self.start < self.end {
            match self.records.get(&self.start) {
                Some(r) if r.state.is_terminal() => {
                    self.records.remove(&self.start);
                    self.start += 1;
                }
                _ => break,
            }
        }
        if self.records.is_empty() {
            self.earliest_deadline = None;
        }
    }

    /// Releases every record whose lock has expired at `now`; returns how many.
    pub fn expire_locks(&mut self, now: i64) -> usize {
        match self.earliest_deadline {
            Some(d) if d <= now => {}
            _ => return 0,
        }
        let mut expired = Vec::new();
        let mut earliest: Option<i64> = None;
        for (&o, r) in &self.records {
            if let RecordState::Acquired { deadline_ms, .. } = r.state {
                if deadline_ms <= now {
                    expired.push(o);
                } else {
                    earliest = Some(earliest.map_or(deadline_ms, |e| e.min(deadline_ms)));
                }
            }
        }
        self.earliest_deadline = earliest;
        for &o in &expired {
            self.release_record(o);
        }
        self.advance_start();
        expired.len()
    }

    /// The earliest time a lock may expire (for the wiring step's timer).
    #[cfg(test)]
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.earliest_deadline
    }

    fn note_deadline(&mut self, deadline: i64) {
        self.earliest_deadline = Some(self.earliest_deadline.map_or(deadline, |e| e.min(deadline)));
    }

    /// Archives an offset the log read skipped (it has no record), unless it is in use.
    fn archive_gap(&mut self, offset: i64) {
        if offset < self.start {
            return;
        }
        match self.records.get_mut(&offset) {
            None => {
                self.records.insert(
                    offset,
                    InFlight {
                        state: RecordState::Archived,
                        delivery_count: 0,
                    },
                );
            }
            Some(r) if r.state == RecordState::Available => r.state = RecordState::Archived,
            Some(_) => {}
        }
        if offset >= self.end {
            self.end = offset + 1;
        }
    }

    /// Acquires for `member` the Available records among `batches` (the log read from
    /// `fetch_offset`, in offset order) at `now`. Returns the acquired ranges with their
    /// delivery counts, in offset order.
    pub fn acquire(
        &mut self,
        member: &str,
        fetch_offset: i64,
        batches: &[FetchedBatch],
        max_records: u32,
        mode: AcquireMode,
        now: i64,
    ) -> Result<Vec<AcquiredRange>, ShareError> {
        let mut prev_last: Option<i64> = None;
        for b in batches {
            if b.base_offset < 0 || b.last_offset < b.base_offset || b.last_offset == i64::MAX {
                return Err(ShareError::InvalidRequest(format!(
                    "invalid fetched batch {}..={}",
                    b.base_offset, b.last_offset
                )));
            }
            if prev_last.is_some_and(|p| b.base_offset <= p) {
                return Err(ShareError::InvalidRequest(
                    "fetched batches out of order or overlapping".into(),
                ));
            }
            prev_last = Some(b.last_offset);
        }
        self.expire_locks(now);
        let mut out = Vec::new();
        if max_records == 0 || batches.is_empty() || member.is_empty() {
            return Ok(out);
        }
        let member: Arc<str> = Arc::from(member);
        let deadline = now.saturating_add(i64::from(self.limits.lock_duration_ms));
        let limit = self.limits.delivery_count_limit;
        let cap_end = self.start.saturating_add(i64::from(
            self.limits.max_record_locks.min(MAX_RECORD_LOCKS_UPPER),
        ));
        let max_records = u64::from(max_records);
        let mut count: u64 = 0;
        let mut cursor = fetch_offset.max(self.start);
        let mut acquired_any = false;
        'batches: for b in batches {
            if b.last_offset < self.start || b.last_offset < cursor {
                continue;
            }
            if count >= max_records {
                break;
            }
            let lo = b.base_offset.max(self.start);
            // Offsets the read skipped before this batch do not exist.
            let gap_end = lo.min(cap_end);
            let mut o = cursor;
            while o < gap_end {
                self.archive_gap(o);
                o += 1;
            }
            let mut o = lo;
            loop {
                if mode == AcquireMode::RecordLimit && count >= max_records {
                    break 'batches;
                }
                if o >= self.end && o >= cap_end {
                    // The in-flight window is full.
                    break 'batches;
                }
                let current = self
                    .records
                    .get(&o)
                    .map(|r| (r.state.clone(), r.delivery_count));
                let delivery_count = match current {
                    None => 0,
                    Some((RecordState::Available, dc)) if dc >= limit => {
                        // The limit was lowered after its release.
                        self.release_record(o);
                        if o == b.last_offset {
                            break;
                        }
                        o += 1;
                        continue;
                    }
                    Some((RecordState::Available, dc)) => dc,
                    Some(_) => {
                        if o == b.last_offset {
                            break;
                        }
                        o += 1;
                        continue;
                    }
                };
                let last_attempt = limit > 2 && delivery_count.saturating_add(1) >= limit;
                if last_attempt && count > 0 {
                    // Delivered alone in a later fetch.
                    break 'batches;
                }
                let dc = delivery_count.saturating_add(1);
                self.records.insert(
                    o,
                    InFlight {
                        state: RecordState::Acquired {
                            member: member.clone(),
                            deadline_ms: deadline,
                        },
                        delivery_count: dc,
                    },
                );
                acquired_any = true;
                if o >= self.end {
                    self.end = o + 1;
                }
                push_range(&mut out, o, dc);
                count += 1;
                if last_attempt || o == b.last_offset {
                    if last_attempt {
                        break 'batches;
                    }
                    break;
                }
                o += 1;
            }
            cursor = b.last_offset.saturating_add(1);
        }
        if acquired_any {
            self.note_deadline(deadline);
        }
        self.advance_start();
        Ok(out)
    }

    /// Applies `member`'s acknowledgements at `now`, all or nothing.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        now: i64,
    ) -> Result<(), ShareError> {
        let mut prev_last: Option<i64> = None;
        for b in batches {
            if b.first_offset < 0 || b.last_offset < b.first_offset || b.last_offset == i64::MAX {
                return Err(ShareError::InvalidRequest(format!(
                    "invalid acknowledgement batch {}..={}",
                    b.first_offset, b.last_offset
                )));
            }
            if prev_last.is_some_and(|p| b.first_offset <= p) {
                return Err(ShareError::InvalidRequest(
                    "acknowledgement batches out of order or overlapping".into(),
                ));
            }
            prev_last = Some(b.last_offset);
            let n = (b.last_offset - b.first_offset) as u64 + 1;
            if b.types.len() != 1 && b.types.len() as u64 != n {
                return Err(ShareError::InvalidRequest(format!(
                    "{} acknowledge types for {n} offsets",
                    b.types.len()
                )));
            }
            if !self.limits.renew_enabled && b.types.contains(&AckType::Renew) {
                return Err(ShareError::InvalidRequest(
                    "RENEW acknowledgements are disabled for this group".into(),
                ));
            }
        }
        self.expire_locks(now);
        // Check everything before changing anything.
        for b in batches {
            let mut o = b.first_offset.max(self.start);
            while o <= b.last_offset {
                if o >= self.end {
                    return Err(ShareError::InvalidRecordState(format!(
                        "offset {o} was not acquired"
                    )));
                }
                match self.records.get(&o).map(|r| &r.state) {
                    Some(RecordState::Acquired { member: m, .. }) if &**m == member => {}
                    Some(RecordState::Acquired { .. }) => {
                        return Err(ShareError::InvalidRecordState(format!(
                            "offset {o} is acquired by another member"
                        )))
                    }
                    _ => {
                        return Err(ShareError::InvalidRecordState(format!(
                            "offset {o} is not acquired (its lock may have expired)"
                        )))
                    }
                }
                o += 1;
            }
        }
        let renew_deadline = now.saturating_add(i64::from(self.limits.lock_duration_ms));
        let mut renewed = false;
        for b in batches {
            let mut o = b.first_offset.max(self.start);
            while o <= b.last_offset {
                let i = if b.types.len() == 1 {
                    0
                } else {
                    (o - b.first_offset) as usize
                };
                let Some(&t) = b.types.get(i) else {
                    break;
                };
                match t {
                    AckType::Accept => self.set_state(o, RecordState::Acknowledged),
                    AckType::Gap => self.set_state(o, RecordState::Archived),
                    AckType::Reject => {
                        self.set_state(o, RecordState::Archived);
                        let dc = self.records.get(&o).map_or(0, |r| r.delivery_count);
                        self.note_archived(o, dc, ArchiveCause::Rejected);
                    }
                    AckType::Release => self.release_record(o),
                    AckType::Renew => {
                        if let Some(InFlight {
                            state: RecordState::Acquired { deadline_ms, .. },
                            ..
                        }) = self.records.get_mut(&o)
                        {
                            *deadline_ms = renew_deadline;
                            renewed = true;
                        }
                    }
                }
                o += 1;
            }
        }
        if renewed {
            self.note_deadline(renew_deadline);
        }
        self.advance_start();
        Ok(())
    }

    fn set_state(&mut self, offset: i64, state: RecordState) {
        if let Some(r) = self.records.get_mut(&offset) {
            r.state = state;
        }
    }

    /// A member left (or its session ended): its acquired records are released at once.
    /// Returns how many.
    pub fn release_member(&mut self, member: &str) -> usize {
        let held: Vec<i64> = self
            .records
            .iter()
            .filter(|(_, r)| matches!(&r.state, RecordState::Acquired { member: m, .. } if &**m == member))
            .map(|(o, _)| *o)
            .collect();
        for &o in &held {
            self.release_record(o);
        }
        self.advance_start();
        held.len()
    }

    /// The log start moved to `log_start` (retention, DeleteRecords): everything below it
    /// is finished.
    pub fn on_log_start_moved(&mut self, log_start: i64) {
        if log_start <= self.start {
            return;
        }
        self.records = self.records.split_off(&log_start);
        self.start = log_start;
        self.end = self.end.max(log_start);
        self.advance_start();
    }

    /// AlterShareGroupOffsets: start over at `start_offset` with nothing in flight and a
    /// new state epoch. The caller checks that the group has no members.
    pub fn reset(&mut self, start_offset: i64) {
        self.start = start_offset.max(0);
        self.end = self.start;
        self.records.clear();
        self.earliest_deadline = None;
        self.state_epoch = self.state_epoch.wrapping_add(1).max(0);
    }

    /// Checks the structure's invariants (tests).
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        assert!(
            self.start <= self.end,
            "start {} end {}",
            self.start,
            self.end
        );
        if let Some((&first, _)) = self.records.first_key_value() {
            assert!(
                first >= self.start,
                "entry {first} below start {}",
                self.start
            );
        }
        if let Some((&last, _)) = self.records.last_key_value() {
            assert!(last < self.end, "entry {last} at/after end {}", self.end);
        }
        if let Some(r) = self.records.get(&self.start) {
            assert!(
                !r.state.is_terminal(),
                "terminal record at start {}",
                self.start
            );
        }
        for (o, r) in &self.records {
            if let RecordState::Acquired { deadline_ms, .. } = r.state {
                let e = self
                    .earliest_deadline
                    .expect("acquired without a deadline bound");
                assert!(
                    e <= deadline_ms,
                    "bound {e} after deadline {deadline_ms} of {o}"
                );
            }
        }
    }
}
