//! Applying committed raft log entries of one group inside the writer's transaction: skips
//! entries a snapshot install already covers, records memberships and the applied log id
//! (in the same transaction as the data, so they always agree), and hands commands to the
//! partition layer with the segment positions their batches were logged at (noted in the
//! log's memory by the append, not read back from the log row).

use openraft::EntryPayload;
use redb::{ReadableTable, WriteTransaction};

use crate::partition::exec::{Applier, ApplyEffect};
use crate::raft::log_mem::LogShared;
use crate::store::log_id::{decode_log_id, encode_log_id};
use crate::store::schema::{GROUP_META, META_APPLIED, META_MEMBERSHIP};
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
    log: &LogShared,
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
            // Its noted positions are of no use any more.
            log.take_positions(&entry.log_id);
            // Still reported, for the log's memory and the (monotonic) applied watch.
            effect.last_applied = Some(entry.log_id);
            continue;
        }
        applied_any = true;
        let response = match &entry.payload {
            EntryPayload::Blank => CommandResponse::Done,
            EntryPayload::Normal(cmd) => {
                let at = match cmd {
                    Command::Append(batches) => positions(log, &entry.log_id, batches)?,
                    _ => Vec::new(),
                };
                a.set_term(entry.log_id.leader_id.term);
                let response = a.command(cmd, &at)?;
                if let (Command::Append(batches), CommandResponse::Appended(results)) =
                    (cmd, &response)
                {
                    let term = entry.log_id.leader_id.term;
                    for (b, r) in batches.iter().zip(results) {
                        if let Ok(r) = r.as_ref() {
                            if !r.duplicate {
                                effect.appends.push((b.partition, term, r.base_offset));
                            }
                        }
                    }
                }
                response
            }
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

/// Where the batches of the Append `log_id` were written when it was logged, as the log
/// noted in memory. Missing or not matching the batches is a storage error: an entry is
/// applied only after its append executed, and its positions are dropped only by its apply,
/// a truncation or a purge of it.
fn positions(
    log: &LogShared,
    log_id: &LogId,
    batches: &[AppendBatch],
) -> Result<Vec<SegmentPos>, redb::Error> {
    match log.take_positions(log_id) {
        Some(at) if at.len() == batches.len() => Ok(at),
        found => Err(io_err(format!(
            "the segment positions of entry {log_id} are {found:?}, for {} batches",
            batches.len()
        ))),
    }
}
