//! Installing a validated snapshot dump (see `dump` for the format): replaces a
//! group's state machine rows in the writer's transaction and writes the dump's batch bytes
//! to this node's segment files.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use phxq_protocol::batch::BatchHeader;
use redb::{ReadableTable, Table, WriteTransaction};

use crate::raft::snapshot::dump::{open_dump, other, DumpInfo, Row, DUMPED_META};
use crate::raft::state_machine::record_snapshot;
use crate::store::log_id::decode_log_id;
use crate::store::schema::*;
use crate::store::segments::Segments;

fn io_err(e: io::Error) -> redb::Error {
    redb::Error::Io(e)
}

/// A partition's row tables: batches, time index, producer state, transactions.
struct PartTables<'t> {
    batches: Table<'t, (u128, i32, i64), &'static [u8]>,
    time: Table<'t, (u128, i32, i64), i64>,
    producers: Table<'t, (u128, i32, i64), &'static [u8]>,
    txns: Table<'t, (u128, i32, i64), &'static [u8]>,
    epochs: Table<'t, (u128, i32, i32), i64>,
}

impl PartTables<'_> {
    /// Deletes a partition's rows.
    fn clear(&mut self, topic: u128, index: i32) -> Result<(), redb::Error> {
        let range = (topic, index, i64::MIN)..=(topic, index, i64::MAX);
        self.batches.retain_in(range.clone(), |_, _| false)?;
        self.time.retain_in(range.clone(), |_, _| false)?;
        self.producers.retain_in(range.clone(), |_, _| false)?;
        self.txns.retain_in(range, |_, _| false)?;
        self.epochs.retain_in(
            (topic, index, i32::MIN)..=(topic, index, i32::MAX),
            |_, _| false,
        )?;
        Ok(())
    }
}

/// Replaces `group`'s state by the (validated) dump at `path`, in `txn`. Does nothing and
/// returns false when the group's applied state is already at or past the dump's: applied
/// state never goes backwards. Also records the installed state as the group's current
/// snapshot (see `state_machine::record_snapshot`).
pub fn install(
    txn: &WriteTransaction,
    segments: &Segments,
    group: u32,
    path: &Path,
    info: DumpInfo,
) -> Result<bool, redb::Error> {
    let mut meta = txn.open_table(GROUP_META)?;
    let stored = match meta.get((group, META_APPLIED))? {
        Some(v) => Some(decode_log_id(v.value()).map_err(|e| io_err(other(e)))?),
        None => None,
    };
    if stored.map(|l| l.index) >= info.applied.map(|l| l.index) {
        return Ok(false);
    }
    let mut parts = txn.open_table(PARTITIONS)?;
    let mut t = PartTables {
        batches: txn.open_table(BATCHES)?,
        time: txn.open_table(TIME_INDEX)?,
        producers: txn.open_table(PRODUCERS)?,
        txns: txn.open_table(TXNS)?,
        epochs: txn.open_table(EPOCHS)?,
    };
    let mut kv = txn.open_table(KV)?;
    let all = (group, 0u128, i32::MIN)..=(group, u128::MAX, i32::MAX);
    let mut old = HashSet::new();
    for item in parts.range(all.clone())? {
        let (_, t, i) = item?.0.value();
        old.insert((t, i));
    }
    parts.retain_in(all, |_, _| false)?;
    segments.note_garbage();
    for (topic, i) in &old {
        t.clear(*topic, *i)?;
    }
    if group < u32::MAX {
        kv.retain_in((group, &[][..])..(group + 1, &[][..]), |_, _| false)?;
    } else {
        kv.retain_in((group, &[][..]).., |_, _| false)?;
    }
    for key in DUMPED_META {
        meta.remove((group, key))?;
    }
    let mut r = open_dump(path).map_err(io_err)?;
    r.header().map_err(io_err)?;
    loop {
        match r.row().map_err(io_err)? {
            Row::Partition {
                topic,
                index,
                value,
            } => {
                if !old.contains(&(topic, index)) {
                    // Stray rows of a partition this replica did not list: start clean.
                    t.clear(topic, index)?;
                }
                parts.insert((group, topic, index), value.as_slice())?;
            }
            Row::Batch {
                topic,
                index,
                base,
                value,
            } => {
                // Validated: the header parses and covers the whole value.
                let h = BatchHeader::parse(&value).map_err(|e| io_err(other(e)))?;
                let loc = BatchLoc {
                    at: segments.append(&value).map_err(io_err)?,
                    len: value.len() as u32,
                    last_offset_delta: h.last_offset_delta,
                    max_timestamp: h.max_timestamp,
                };
                t.batches
                    .insert((topic, index, base), loc.encode().as_slice())?;
            }
            Row::Time {
                topic,
                index,
                ts,
                base,
            } => {
                t.time.insert((topic, index, ts), base)?;
            }
            Row::Producer {
                topic,
                index,
                pid,
                value,
            } => {
                t.producers.insert((topic, index, pid), value.as_slice())?;
            }
            Row::Txn {
                topic,
                index,
                offset,
                value,
            } => {
                t.txns.insert((topic, index, offset), value.as_slice())?;
            }
            Row::Epoch {
                topic,
                index,
                epoch,
                start,
            } => {
                t.epochs.insert((topic, index, epoch), start)?;
            }
            Row::Kv { key, value } => {
                kv.insert((group, key.as_slice()), value.as_slice())?;
            }
            Row::Meta { key, value } => {
                meta.insert((group, key), value.as_slice())?;
            }
            Row::End { .. } => break,
        }
    }
    record_snapshot(&mut meta, group)?;
    Ok(true)
}
