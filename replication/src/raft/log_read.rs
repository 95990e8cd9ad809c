//! Reading a group's raft log rows back from redb, with their batches from the segment
//! files, and the segment files the raft log refers to (for garbage collection).

use std::collections::BTreeSet;
use std::io;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use crate::raft::log_codec::{decode_stored_entry, stored_positions};
use crate::store::log_id::DecodeError;
use crate::store::schema::LOG;
use crate::store::segments::{SegmentPos, SegmentRefs, Segments};
use crate::types::Entry;

/// Reads the group's stored log entries in `[start, end)` with a byte cap (at least one),
/// each with the segment positions of its batches (empty for entries other than Appends).
pub fn read_log(
    db: &Database,
    segments: &Segments,
    group: u32,
    start: u64,
    end: u64,
    max_bytes: Option<usize>,
) -> io::Result<Vec<(Entry, Vec<SegmentPos>)>> {
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
        let at = stored_positions(value).map_err(io::Error::other)?;
        let len = value.len() + at.iter().map(|(_, n)| *n as usize).sum::<usize>();
        if let Some(cap) = max_bytes {
            if !out.is_empty() && bytes + len > cap {
                break;
            }
        }
        bytes += len;
        let read = |at: SegmentPos, len: usize| read_batch(segments, at, len);
        let e = decode_stored_entry(k.value().1, bytes::Bytes::copy_from_slice(value), &read)
            .map_err(io::Error::other)?;
        out.push((e, at.into_iter().map(|(at, _)| at).collect()));
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

/// The segment files the raft log rows refer to (entries logged but maybe not yet applied).
pub struct LogRefs;

impl SegmentRefs for LogRefs {
    fn add_live(&self, txn: &ReadTransaction, live: &mut BTreeSet<u32>) -> io::Result<()> {
        let log = txn.open_table(LOG).map_err(io::Error::other)?;
        for item in log.iter().map_err(io::Error::other)? {
            let (_, v) = item.map_err(io::Error::other)?;
            for (at, _) in stored_positions(v.value()).map_err(io::Error::other)? {
                live.insert(at.segment);
            }
        }
        Ok(())
    }
}
