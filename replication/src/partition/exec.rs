//! What a partition's log means, as the state machine applies it (Kafka log semantics, like
//! Redpanda's `rm_stm`): batches appended at dense offsets, idempotent producer id / epoch /
//! sequence checks, the time index, DeleteRecords moving the log start, partition creation
//! and deletion, and the group's key-value space and producer id allocation. Runs inside
//! the writer's redb write transaction and is deterministic: every replica computes the
//! same offsets and answers from the same entries.
//!
//! Nothing here touches memory shared with readers: the effects on the in-memory caches
//! (partition offsets, applied counter) are returned as an [`ApplyEffect`] and published
//! only after the transaction commits. A stored row that does not decode is a storage
//! error, never a default.

use std::collections::HashMap;

use phxq_protocol::batch::BatchHeader;
use phxq_protocol::control::ControlType;
use redb::{ReadableTable, Table, WriteTransaction};

use crate::store::schema::*;
use crate::store::segments::{SegmentPos, Segments};
use crate::types::{
    AppendBatch, AppendError, Appended, ApplyResult, Command, CommandResponse, LogId, PartitionId,
    PartitionOffsets,
};

/// What applying a run of entries changed, to publish once the transaction is committed.
#[derive(Default)]
pub struct ApplyEffect {
    /// One answer per entry that has a responder, in entry order.
    pub responses: Vec<ApplyResult>,
    /// New offsets of changed partitions (None: deleted).
    pub offsets: Vec<(PartitionId, Option<PartitionOffsets>)>,
    pub last_applied: Option<LogId>,
    /// Payload bytes written to the batches table.
    pub batch_bytes: u64,
    /// Each batch appended: its partition, the term of its entry and its base offset.
    pub appends: Vec<(PartitionId, u64, i64)>,
}

struct Tables<'t> {
    parts: Table<'t, (u32, u128, i32), &'static [u8]>,
    batches: Table<'t, (u128, i32, i64), &'static [u8]>,
    time: Table<'t, (u128, i32, i64), i64>,
    producers: Table<'t, (u128, i32, i64), &'static [u8]>,
    txns: Table<'t, (u128, i32, i64), &'static [u8]>,
    epochs: Table<'t, (u128, i32, i32), i64>,
    kv: Table<'t, (u32, &'static [u8]), &'static [u8]>,
    meta: Table<'t, (u32, u8), &'static [u8]>,
}

/// The partition tables of one group during one run of applies, with the partitions read
/// or changed so far.
pub struct Applier<'t> {
    group: u32,
    t: Tables<'t>,
    segments: &'t Segments,
    /// Partitions read or changed in this run: None = does not exist.
    parts: HashMap<PartitionId, Option<PartMeta>>,
    dirty: Vec<PartitionId>,
    batch_bytes: u64,
    /// The leader epoch (Raft term) of the entry being applied.
    epoch: i32,
    /// Each partition's newest leader epoch row read or written in this run.
    epochs: HashMap<PartitionId, Option<i32>>,
}

impl<'t> Applier<'t> {
    /// Opens the partition tables of `group` in `txn` for a run of applies.
    pub fn new(
        txn: &'t WriteTransaction,
        segments: &'t Segments,
        group: u32,
    ) -> Result<Applier<'t>, redb::Error> {
        let t = Tables {
            parts: txn.open_table(PARTITIONS)?,
            batches: txn.open_table(BATCHES)?,
            time: txn.open_table(TIME_INDEX)?,
            producers: txn.open_table(PRODUCERS)?,
            txns: txn.open_table(TXNS)?,
            epochs: txn.open_table(EPOCHS)?,
            kv: txn.open_table(KV)?,
            meta: txn.open_table(GROUP_META)?,
        };
        Ok(Applier {
            group,
            t,
            segments,
            parts: HashMap::new(),
            dirty: Vec::new(),
            batch_bytes: 0,
            epoch: -1,
            epochs: HashMap::new(),
        })
    }

    /// The group's meta table, open in this transaction (the raft layer records the
    /// applied log id and membership in it).
    pub fn meta(&mut self) -> &mut Table<'t, (u32, u8), &'static [u8]> {
        &mut self.t.meta
    }

    /// Writes the partitions this run changed and reports their new offsets in `effect`.
    pub fn finish(mut self, effect: &mut ApplyEffect) -> Result<(), redb::Error> {
        let group = self.group;
        for p in std::mem::take(&mut self.dirty) {
            let key = (group, p.topic_id, p.index);
            match self.parts.get(&p).copied().flatten() {
                Some(m) => {
                    self.t.parts.insert(key, m.encode().as_slice())?;
                    effect.offsets.push((p, Some(offsets_of(&m))));
                }
                None => {
                    self.t.parts.remove(key)?;
                    effect.offsets.push((p, None));
                }
            }
        }
        effect.batch_bytes = self.batch_bytes;
        Ok(())
    }
}

pub fn offsets_of(m: &PartMeta) -> PartitionOffsets {
    PartitionOffsets {
        log_start_offset: m.log_start,
        high_watermark: m.next_offset,
        last_stable_offset: m.last_stable_offset(),
        last_abort: m.last_abort,
    }
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> redb::Error {
    redb::Error::Io(std::io::Error::other(e.to_string()))
}

/// The sequence number following `seq`, wrapping at i32::MAX as Kafka does.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl Applier<'_> {
    /// Sets the Raft term of the entry applied next: the leader epoch of what it appends.
    pub fn set_term(&mut self, term: u64) {
        self.epoch = i32::try_from(term).unwrap_or(i32::MAX);
    }

    /// Records that `p` got a batch at `base` in the current epoch: the epoch's first
    /// offset when it is the partition's first batch of this epoch.
    fn note_epoch(&mut self, p: &PartitionId, base: i64) -> Result<(), redb::Error> {
        if self.epoch < 0 {
            return Ok(());
        }
        let newest = match self.epochs.get(p) {
            Some(e) => *e,
            None => {
                let range = (p.topic_id, p.index, i32::MIN)..=(p.topic_id, p.index, i32::MAX);
                match self.t.epochs.range(range)?.next_back() {
                    Some(item) => Some(item?.0.value().2),
                    None => None,
                }
            }
        };
        if newest.is_none_or(|e| e < self.epoch) {
            self.t
                .epochs
                .insert((p.topic_id, p.index, self.epoch), base)?;
            self.epochs.insert(*p, Some(self.epoch));
        } else {
            self.epochs.insert(*p, newest);
        }
        Ok(())
    }

    /// Applies a command. `at` holds where the batches of an Append were written to the
    /// segment files when it was logged, one per batch in order (empty for other commands).
    pub fn command(
        &mut self,
        cmd: &Command,
        at: &[SegmentPos],
    ) -> Result<CommandResponse, redb::Error> {
        Ok(match cmd {
            Command::CreatePartitions(ps) => {
                for p in ps {
                    if self.part(p)?.is_none() {
                        self.set_part(*p, Some(PartMeta::EMPTY));
                    }
                }
                CommandResponse::Done
            }
            Command::DeletePartitions(ps) => {
                for p in ps {
                    self.delete_partition(p)?;
                }
                CommandResponse::Done
            }
            Command::Append(batches) => self.append_all(batches, at)?,
            Command::DeleteRecords(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (p, offset) in items {
                    out.push(self.delete_records(p, *offset)?);
                }
                CommandResponse::RecordsDeleted(out)
            }
            Command::Put(items) => {
                for (k, v) in items {
                    match v {
                        Some(v) => self.t.kv.insert((self.group, k.as_ref()), v.as_ref())?,
                        None => self.t.kv.remove((self.group, k.as_ref()))?,
                    };
                }
                CommandResponse::Done
            }
            Command::CompareAndPut {
                key,
                expected,
                value,
            } => {
                let current = self
                    .t
                    .kv
                    .get((self.group, key.as_ref()))?
                    .map(|v| v.value().to_vec());
                if current.as_deref() != expected.as_deref() {
                    CommandResponse::Compared(false)
                } else {
                    match value {
                        Some(v) => self.t.kv.insert((self.group, key.as_ref()), v.as_ref())?,
                        None => self.t.kv.remove((self.group, key.as_ref()))?,
                    };
                    CommandResponse::Compared(true)
                }
            }
            Command::AllocateProducerIds(count) => {
                let key = (self.group, META_NEXT_PID);
                let next = match self.t.meta.get(key)? {
                    Some(v) => i64::from_be_bytes(v.value().try_into().map_err(io_err)?),
                    None => FIRST_PRODUCER_ID,
                };
                let after = next.saturating_add(*count as i64);
                self.t.meta.insert(key, after.to_be_bytes().as_slice())?;
                CommandResponse::ProducerIds(next)
            }
        })
    }

    /// Appends `batches`, whose bytes are at `at` in the segment files, at dense offsets.
    fn append_all(
        &mut self,
        batches: &[AppendBatch],
        at: &[SegmentPos],
    ) -> Result<CommandResponse, redb::Error> {
        let mut out = Vec::with_capacity(batches.len());
        for (b, at) in batches.iter().zip(at) {
            out.push(self.append(b, *at)?);
        }
        Ok(CommandResponse::Appended(out))
    }

    fn part(&mut self, p: &PartitionId) -> Result<Option<PartMeta>, redb::Error> {
        if let Some(m) = self.parts.get(p) {
            return Ok(*m);
        }
        let m = match self.t.parts.get((self.group, p.topic_id, p.index))? {
            Some(v) => Some(PartMeta::decode(v.value()).ok_or_else(|| io_err("partition meta"))?),
            None => None,
        };
        self.parts.insert(*p, m);
        Ok(m)
    }

    fn set_part(&mut self, p: PartitionId, m: Option<PartMeta>) {
        if self.parts.insert(p, m) != Some(m) && !self.dirty.contains(&p) {
            self.dirty.push(p);
        }
    }

    fn append(
        &mut self,
        b: &AppendBatch,
        at: SegmentPos,
    ) -> Result<Result<Appended, AppendError>, redb::Error> {
        let p = b.partition;
        let Some(mut meta) = self.part(&p)? else {
            return Ok(Err(AppendError::UnknownPartition));
        };
        let h = match BatchHeader::parse(&b.batch) {
            Ok(h) if h.total_len() == b.batch.len() && h.last_offset_delta >= 0 => h,
            _ => return Ok(Err(AppendError::CorruptBatch)),
        };
        if h.is_control() {
            return self.append_marker(b, &h, at, meta);
        }
        let idempotent = h.producer_id >= 0 && h.base_sequence >= 0;
        let last_seq = h.last_sequence();
        let pkey = (p.topic_id, p.index, h.producer_id);
        let mut state = None;
        if h.is_transactional() {
            if !idempotent {
                return Ok(Err(AppendError::InvalidTxnState));
            }
            if let Some(open) = self.open_txn(&p, h.producer_id)? {
                // The coordinator bumps the epoch only once the transaction's marker is
                // here: a newer epoch with the transaction still open is out of turn.
                if h.producer_epoch > open.1 {
                    return Ok(Err(AppendError::InvalidTxnState));
                }
            }
        }
        if idempotent {
            let known = match self.t.producers.get(pkey)? {
                Some(v) => {
                    Some(ProducerState::decode(v.value()).ok_or_else(|| io_err("producer"))?)
                }
                None => None,
            };
            match known {
                None => {}
                Some(s) if h.producer_epoch < s.epoch => {
                    return Ok(Err(AppendError::InvalidProducerEpoch));
                }
                // A newer epoch starts over at sequence 0.
                Some(s) if h.producer_epoch > s.epoch && h.base_sequence != 0 => {
                    return Ok(Err(AppendError::OutOfOrderSequence));
                }
                Some(s) if h.producer_epoch > s.epoch => {}
                Some(s) => {
                    if let Some(d) = s
                        .batches
                        .iter()
                        .find(|x| x.first_seq == h.base_sequence && x.last_seq == last_seq)
                    {
                        return Ok(Ok(Appended {
                            base_offset: d.base_offset,
                            log_start_offset: meta.log_start,
                            duplicate: true,
                        }));
                    }
                    let expected = s.batches.last().map(|x| next_seq(x.last_seq));
                    if expected.is_some_and(|e| e != h.base_sequence) {
                        return Ok(Err(AppendError::OutOfOrderSequence));
                    }
                    state = Some(s);
                }
            }
        }
        let base = meta.next_offset;
        let last_offset = base + h.last_offset_delta as i64;
        meta.next_offset = last_offset + 1;
        let loc = BatchLoc {
            at,
            len: b.batch.len() as u32,
            last_offset_delta: h.last_offset_delta,
            max_timestamp: h.max_timestamp,
        };
        self.t
            .batches
            .insert((p.topic_id, p.index, base), loc.encode().as_slice())?;
        self.batch_bytes += b.batch.len() as u64;
        self.note_epoch(&p, base)?;
        if h.max_timestamp > meta.max_ts {
            self.t
                .time
                .insert((p.topic_id, p.index, h.max_timestamp), base)?;
            meta.max_ts = h.max_timestamp;
        }
        if h.is_transactional() && self.open_txn(&p, h.producer_id)?.is_none() {
            self.t.txns.insert(
                (p.topic_id, p.index, base),
                TxnRow {
                    aborted: false,
                    producer_id: h.producer_id,
                    first_offset: base,
                }
                .encode()
                .as_slice(),
            )?;
            if meta.first_unstable == NO_OFFSET {
                meta.first_unstable = base;
            }
        }
        if idempotent {
            let mut s = state.unwrap_or(ProducerState {
                epoch: h.producer_epoch,
                batches: Vec::new(),
            });
            s.epoch = h.producer_epoch;
            if s.batches.len() >= PRODUCER_WINDOW {
                s.batches.remove(0);
            }
            s.batches.push(SeqBatch {
                first_seq: h.base_sequence,
                last_seq,
                base_offset: base,
                last_offset,
            });
            self.t.producers.insert(pkey, s.encode().as_slice())?;
        }
        self.set_part(p, Some(meta));
        Ok(Ok(Appended {
            base_offset: base,
            log_start_offset: meta.log_start,
            duplicate: false,
        }))
    }

    fn delete_records(
        &mut self,
        p: &PartitionId,
        offset: i64,
    ) -> Result<Result<i64, AppendError>, redb::Error> {
        let Some(mut meta) = self.part(p)? else {
            return Ok(Err(AppendError::UnknownPartition));
        };
        let hw = meta.next_offset;
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Ok(Err(AppendError::OffsetOutOfRange));
        }
        if target <= meta.log_start {
            return Ok(Ok(meta.log_start));
        }
        meta.log_start = target;
        self.drop_aborted_below(p, target, &mut meta)?;
        // Drop whole batches that end below the new log start: every batch before the one
        // containing `target` (when `target` is the high watermark, every batch).
        let (t, i) = (p.topic_id, p.index);
        let containing = match self
            .t
            .batches
            .range((t, i, i64::MIN)..=(t, i, target))?
            .next_back()
        {
            Some(item) => {
                let (k, v) = item?;
                let last = BatchLoc::decode(v.value())
                    .ok_or_else(|| io_err("batch location"))?
                    .last_offset(k.value().2);
                if last >= target {
                    k.value().2
                } else {
                    target
                }
            }
            None => target,
        };
        let dropped = self
            .t
            .batches
            .range((t, i, i64::MIN)..(t, i, containing))?
            .next()
            .is_some();
        if dropped {
            self.t
                .batches
                .retain_in((t, i, i64::MIN)..(t, i, containing), |_, _| false)?;
            self.segments.note_garbage();
            self.reindex_head(p, &mut meta)?;
        }
        self.set_part(*p, Some(meta));
        Ok(Ok(target))
    }

    /// After dropping batches from the head: drop time-index entries of removed batches and
    /// re-add the surviving head batches that those entries shadowed, keeping the index
    /// increasing in both timestamp and offset.
    fn reindex_head(&mut self, p: &PartitionId, meta: &mut PartMeta) -> Result<(), redb::Error> {
        let first_base = match self
            .t
            .batches
            .range((p.topic_id, p.index, i64::MIN)..=(p.topic_id, p.index, i64::MAX))?
            .next()
        {
            Some(item) => item?.0.value().2,
            None => i64::MAX,
        };
        // Index entries of removed batches are a prefix (the index is increasing in offset):
        // find where it ends, then drop the prefix.
        let (t, i) = (p.topic_id, p.index);
        let mut cut = None;
        for item in self.t.time.range((t, i, i64::MIN)..=(t, i, i64::MAX))? {
            let (k, v) = item?;
            if v.value() >= first_base {
                cut = Some((k.value().2, v.value()));
                break;
            }
        }
        let next_indexed = cut.map(|(_, base)| base);
        match cut {
            Some((ts, _)) => self
                .t
                .time
                .retain_in((t, i, i64::MIN)..(t, i, ts), |_, _| false)?,
            None => self
                .t
                .time
                .retain_in((t, i, i64::MIN)..=(t, i, i64::MAX), |_, _| false)?,
        }
        // Walk the surviving batches before the next indexed one, re-adding running maxima.
        let end = next_indexed.unwrap_or(i64::MAX);
        let mut running = i64::MIN;
        let mut adds = Vec::new();
        for item in self
            .t
            .batches
            .range((p.topic_id, p.index, first_base.min(end))..(p.topic_id, p.index, end))?
        {
            let (k, v) = item?;
            let l = BatchLoc::decode(v.value()).ok_or_else(|| io_err("batch location"))?;
            if l.max_timestamp > running {
                running = l.max_timestamp;
                adds.push((l.max_timestamp, k.value().2));
            }
        }
        for (ts, base) in adds {
            self.t.time.insert((p.topic_id, p.index, ts), base)?;
        }
        if next_indexed.is_none() {
            meta.max_ts = running;
        }
        Ok(())
    }

    fn delete_partition(&mut self, p: &PartitionId) -> Result<(), redb::Error> {
        if self.part(p)?.is_none() {
            return Ok(());
        }
        let lo = (p.topic_id, p.index, i64::MIN);
        let hi = (p.topic_id, p.index, i64::MAX);
        self.t.batches.retain_in(lo..=hi, |_, _| false)?;
        self.segments.note_garbage();
        self.t.time.retain_in(lo..=hi, |_, _| false)?;
        self.t.producers.retain_in(lo..=hi, |_, _| false)?;
        self.t.txns.retain_in(lo..=hi, |_, _| false)?;
        self.t.epochs.retain_in(
            (p.topic_id, p.index, i32::MIN)..=(p.topic_id, p.index, i32::MAX),
            |_, _| false,
        )?;
        self.epochs.remove(p);
        self.set_part(*p, None);
        Ok(())
    }
}

/// Transactions (KIP-98) as the log sees them: a transactional batch of a producer with
/// no open transaction here opens one at its first offset; a marker (control batch) from
/// the coordinator ends it, and an abort is remembered as `(producer id, first offset)`
/// keyed by the marker's offset. The oldest open transaction's first offset is kept in the
/// partition's meta so the last stable offset needs no read.
///
/// Rules:
/// - A marker's epoch below the producer's known epoch is a zombie's: refused with
///   INVALID_PRODUCER_EPOCH. A higher one (KIP-890 bumps it with the marker) becomes the
///   producer's epoch, so batches of the ended transaction's epoch are fenced from then on,
///   and sequences start again at 0.
/// - A marker for a producer with no open transaction here (a marker written again after a
///   coordinator failover, or a transaction that wrote nothing here) is appended and
///   changes nothing else: markers are idempotent.
/// - Aborted transactions whose marker falls below the log start are forgotten.
impl Applier<'_> {
    /// The open transaction of `producer_id` on `p`: its first offset and the epoch of its
    /// producer's state.
    fn open_txn(
        &mut self,
        p: &PartitionId,
        producer_id: i64,
    ) -> Result<Option<(i64, i16)>, redb::Error> {
        let (t, i) = (p.topic_id, p.index);
        let mut first = None;
        for item in self.t.txns.range((t, i, i64::MIN)..=(t, i, i64::MAX))? {
            let (k, v) = item?;
            let row = TxnRow::decode(v.value()).ok_or_else(|| io_err("transaction row"))?;
            if !row.aborted && row.producer_id == producer_id {
                first = Some(k.value().2);
                break;
            }
        }
        let Some(first) = first else {
            return Ok(None);
        };
        let epoch = match self.t.producers.get((t, i, producer_id))? {
            Some(v) => {
                ProducerState::decode(v.value())
                    .ok_or_else(|| io_err("producer"))?
                    .epoch
            }
            None => i16::MIN,
        };
        Ok(Some((first, epoch)))
    }

    fn append_marker(
        &mut self,
        b: &AppendBatch,
        h: &BatchHeader,
        at: SegmentPos,
        mut meta: PartMeta,
    ) -> Result<Result<Appended, AppendError>, redb::Error> {
        let p = b.partition;
        let Some(kind) = phxq_protocol::control::control_type(&b.batch) else {
            return Ok(Err(AppendError::InvalidTxnState));
        };
        if !h.is_transactional() || h.producer_id < 0 || h.last_offset_delta != 0 {
            return Ok(Err(AppendError::InvalidTxnState));
        }
        let pkey = (p.topic_id, p.index, h.producer_id);
        let known = match self.t.producers.get(pkey)? {
            Some(v) => Some(ProducerState::decode(v.value()).ok_or_else(|| io_err("producer"))?),
            None => None,
        };
        match &known {
            Some(s) if h.producer_epoch < s.epoch => {
                return Ok(Err(AppendError::InvalidProducerEpoch));
            }
            Some(s) if h.producer_epoch > s.epoch => {
                let bumped = ProducerState {
                    epoch: h.producer_epoch,
                    batches: Vec::new(),
                };
                self.t.producers.insert(pkey, bumped.encode().as_slice())?;
            }
            _ => {}
        }
        let open = self.open_txn(&p, h.producer_id)?;
        let offset = meta.next_offset;
        meta.next_offset = offset + 1;
        let loc = BatchLoc {
            at,
            len: b.batch.len() as u32,
            last_offset_delta: 0,
            max_timestamp: h.max_timestamp,
        };
        self.t
            .batches
            .insert((p.topic_id, p.index, offset), loc.encode().as_slice())?;
        self.note_epoch(&p, offset)?;
        self.batch_bytes += b.batch.len() as u64;
        if h.max_timestamp > meta.max_ts {
            self.t
                .time
                .insert((p.topic_id, p.index, h.max_timestamp), offset)?;
            meta.max_ts = h.max_timestamp;
        }
        if let Some((first, _)) = open {
            let (t, i) = (p.topic_id, p.index);
            self.t.txns.remove((t, i, first))?;
            if kind == ControlType::Abort {
                let row = TxnRow {
                    aborted: true,
                    producer_id: h.producer_id,
                    first_offset: first,
                };
                self.t
                    .txns
                    .insert((t, i, offset), row.encode().as_slice())?;
                meta.last_abort = offset;
            }
            if meta.first_unstable == first {
                meta.first_unstable = self.first_open_from(&p, first)?;
            }
        }
        self.set_part(p, Some(meta));
        Ok(Ok(Appended {
            base_offset: offset,
            log_start_offset: meta.log_start,
            duplicate: false,
        }))
    }

    /// The first offset of the oldest open transaction of `p` at or after `from`.
    fn first_open_from(&mut self, p: &PartitionId, from: i64) -> Result<i64, redb::Error> {
        let (t, i) = (p.topic_id, p.index);
        for item in self.t.txns.range((t, i, from)..=(t, i, i64::MAX))? {
            let (k, v) = item?;
            let row = TxnRow::decode(v.value()).ok_or_else(|| io_err("transaction row"))?;
            if !row.aborted {
                return Ok(k.value().2);
            }
        }
        Ok(NO_OFFSET)
    }

    /// Forgets the aborted transactions of `p` whose marker is below `log_start`.
    fn drop_aborted_below(
        &mut self,
        p: &PartitionId,
        log_start: i64,
        meta: &mut PartMeta,
    ) -> Result<(), redb::Error> {
        let (t, i) = (p.topic_id, p.index);
        let mut gone = Vec::new();
        for item in self.t.txns.range((t, i, i64::MIN)..(t, i, log_start))? {
            let (k, v) = item?;
            let row = TxnRow::decode(v.value()).ok_or_else(|| io_err("transaction row"))?;
            if row.aborted {
                gone.push(k.value().2);
            }
        }
        for offset in gone {
            self.t.txns.remove((t, i, offset))?;
        }
        if meta.last_abort != NO_OFFSET && meta.last_abort < log_start {
            meta.last_abort = NO_OFFSET;
        }
        Ok(())
    }
}
