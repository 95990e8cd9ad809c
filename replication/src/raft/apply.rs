//! Applying committed raft log entries of one group inside the writer's transaction: skips
//! entries a snapshot install already covers, records memberships and the applied log id
//! (in the same transaction as the data, so they always agree), and hands commands to the
//! partition layer with the segment positions their batches were logged at.

use openraft::EntryPayload;
use redb::{ReadableTable, WriteTransaction};

use crate::partition::exec::{Applier, ApplyEffect};
use crate::raft::log_codec::{stored_log_id, stored_positions};
use crate::store::log_id::{decode_log_id, encode_log_id};
use crate::store::schema::{GROUP_META, LOG, META_APPLIED, META_MEMBERSHIP};
use crate::store::segments::{SegmentPos, Segments};
use crate::types::{AppendBatch, Command, CommandResponse, Entry, LogId, StoredMembership};

fn io_err(e: impl std::fmt::Display) -> redb::Error {
    redb::Error::Io(std::io::Error::other(e.to_string()))
}

/// Applies `entries` of `group` in `txn`. `has_responder[i]` says whether entry i wants an
/// answer.
pub fn apply_entries(
    txn: &WriteTransaction,
    segments: &Segments,
    group: u32,
    entries: &[(&Entry, bool)],
) -> Result<ApplyEffect, redb::Error> {
    let mut effect = ApplyEffect::default();
    // Entries at or below the stored applied index are already in the state: a snapshot
    // was installed at a state ahead of the snapshot meta openraft knows (see `snapshot::transfer`),
    // and openraft re-applies the entries in between. Skip them; META_APPLIED never goes back.
    let stored = match txn.open_table(GROUP_META)?.get((group, META_APPLIED))? {
        Some(v) => Some(decode_log_id(v.value()).map_err(io_err)?.index),
        None => None,
    };
    let log = txn.open_table(LOG)?;
    let mut a = Applier::new(txn, segments, group)?;
    let mut applied_any = false;
    for (entry, wants_answer) in entries {
        if stored.is_some_and(|s| entry.log_id.index <= s) {
            if *wants_answer {
                effect.responses.push(Err(format!(
                    "entry {} was applied by a snapshot install; its result is unknown",
                    entry.log_id.index
                )));
            }
            // Still reported, for the log's memory and the (monotonic) applied watch.
            effect.last_applied = Some(entry.log_id);
            continue;
        }
        applied_any = true;
        let response = match &entry.payload {
            EntryPayload::Blank => CommandResponse::Done,
            EntryPayload::Normal(Command::Append(batches)) => {
                let at = positions(&log, segments, group, &entry.log_id, batches)?;
                a.append_all(batches, &at)?
            }
            EntryPayload::Normal(cmd) => a.command(cmd)?,
            EntryPayload::Membership(m) => {
                let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                let json = serde_json::to_vec(&stored).map_err(io_err)?;
                a.meta().insert((group, META_MEMBERSHIP), json.as_slice())?;
                CommandResponse::Done
            }
        };
        if *wants_answer {
            effect.responses.push(Ok(response));
        }
        effect.last_applied = Some(entry.log_id);
    }
    if let Some(last) = effect.last_applied.as_ref().filter(|_| applied_any) {
        a.meta()
            .insert((group, META_APPLIED), encode_log_id(last).as_slice())?;
    }
    a.finish(&mut effect)?;
    Ok(effect)
}

/// Where the batches of the Append at log id `log_id` were written when it was logged.
/// Writes them now if the log row does not say (never expected: an entry is applied
/// only after its row is durable, and purged only after it is applied).
fn positions(
    log: &impl ReadableTable<(u32, u64), &'static [u8]>,
    segments: &Segments,
    group: u32,
    log_id: &LogId,
    batches: &[AppendBatch],
) -> Result<Vec<SegmentPos>, redb::Error> {
    let index = log_id.index;
    if let Some(row) = log.get((group, index))? {
        let at = stored_positions(row.value()).map_err(io_err)?;
        let same = stored_log_id(index, row.value()).ok().as_ref() == Some(log_id)
            && at.len() == batches.len()
            && at
                .iter()
                .zip(batches)
                .all(|((_, len), b)| *len as usize == b.batch.len());
        if same {
            return Ok(at.into_iter().map(|(at, _)| at).collect());
        }
    }
    tracing::warn!(
        group,
        index,
        "applying an Append whose log row has no batch positions; writing its batches again"
    );
    Ok(batches
        .iter()
        .map(|b| segments.append(&b.batch))
        .collect::<Result<Vec<_>, _>>()?)
}
