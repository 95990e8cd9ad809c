//! The coordinator's side of the audit: a group's per-partition audit record, and what a
//! commit does to it, given the partition leader's [`Verdict`] on what the committing
//! client was delivered (`deliveries.rs`).
//!
//! Rules, for a commit of partition P moving the group from committed offset C to X (the
//! first checked commit of a partition starts at the first offset the committer was
//! delivered instead of C: the audit begins there):
//! - **X > C (or no C):** the leader is asked. Undelivered parts of `[C, X)` are *skipped*:
//!   recorded (range, client id, host, member, time) and counted. With mode `strict` the
//!   commit is refused instead (POLICY_VIOLATION, the offset stays at C, the refusal is
//!   recorded), unless it comes from an admin client (an operator skipping records on
//!   purpose, e.g. `phxq group reset --to-latest` or AlterConsumerGroupOffsets): that is
//!   recorded as skipped. Unverified parts (delivered, if at all, by an earlier leader) are
//!   counted apart; they are not skips. The chain moves to the leader's value.
//! - **Expired:** parts of `[C, X)` deleted before the committer read them (retention,
//!   DeleteRecords) are recorded and counted apart, never refused: they cannot be read.
//! - **The leader cannot be asked** (unreachable, not led anywhere): mode `record` accepts
//!   and records the range as unchecked; `strict` refuses with REQUEST_TIMED_OUT, which
//!   clients retry.
//! - **X < C:** recorded as *rewound* (by a member) or *replayed* (by an admin: a reset by
//!   hand). The chain is untouched: it covers each log batch once; replays re-deliver.
//! - **The chain** covers the log batches whose last offset lies in
//!   `[chain_from, chained_to)`, except those entirely inside one of `skipped` (kept whole
//!   so an auditor can recompute it). Past [`MAX_SKIPPED`] ranges the chain starts afresh
//!   at `chained_to`.

use phxq_protocol::errors;
use serde::{Deserialize, Serialize};

use super::chain::SEED;
use super::deliveries::{Check, Verdict};
use super::TopicPartition;

/// Skipped ranges kept for the chain; past this the chain starts afresh.
pub const MAX_SKIPPED: usize = 256;
/// Events kept per partition (the latest).
pub const MAX_EVENTS: usize = 32;
/// Chain checkpoints kept per partition.
pub const MAX_CHECKPOINTS: usize = 32;

/// What a group's audit does with commits (group config `phxq.consumer.audit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Off,
    /// Check every commit and record what it skipped.
    Record,
    /// Check every commit; refuse those of members that would skip undelivered records.
    Strict,
}

impl Mode {
    pub const NAMES: [&'static str; 3] = ["off", "record", "strict"];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Record => "record",
            Mode::Strict => "strict",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "off" => Some(Mode::Off),
            "record" => Some(Mode::Record),
            "strict" => Some(Mode::Strict),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Committed past records never delivered to the committer.
    Skipped,
    /// A strict group refused a commit that would have skipped `[from, to)`.
    Refused,
    /// Delivered, if at all, by an earlier partition leader: nobody can tell.
    Unverified,
    /// Deleted (retention, DeleteRecords) before the group read them.
    Expired,
    /// The partition leader could not be asked; `[from, to)` was not checked.
    Unchecked,
    /// A member committed an offset below the group's committed one.
    Rewound,
    /// An admin moved the committed offset back (a replay).
    Replayed,
}

/// One thing the audit recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: Kind,
    pub from: i64,
    pub to: i64,
    pub client_id: String,
    pub host: String,
    /// Empty for admin clients.
    pub member_id: String,
    pub at_ms: i64,
}

/// A group's audit of one partition, stored with its committed offset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAudit {
    pub chain: u32,
    /// Where the chain starts; `None` until the first checked commit.
    pub chain_from: Option<i64>,
    pub chained_to: Option<i64>,
    /// One past the highest offset delivered to the last committer, at its commit.
    pub delivered_to: i64,
    pub skipped_records: i64,
    pub unverified_records: i64,
    #[serde(default)]
    pub expired_records: i64,
    pub unchecked_records: i64,
    pub refused_commits: i64,
    /// Every skipped range since `chain_from` (the chain leaves them out).
    pub skipped: Vec<(i64, i64)>,
    /// (offset, chain over the batches whose last offset is below it), spaced out over
    /// `chain_from..chained_to`: once retention deletes the log's start, an auditor
    /// recomputes the chain from the first checkpoint still in the log.
    #[serde(default)]
    pub checkpoints: Vec<(i64, u32)>,
    pub events: Vec<Event>,
}

/// Who commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub client_id: String,
    pub host: String,
    pub member_id: String,
    /// An admin client (no member, no generation): offsets set by hand.
    pub admin: bool,
}

/// What a commit does to a partition's audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Accept the commit; the audit does not change.
    Accept,
    /// Accept the commit and store the new audit with it.
    Record(PartitionAudit),
    /// Refuse the commit with `code`; store the audit (it records the refusal).
    Refuse { code: i16, audit: PartitionAudit },
}

/// The question for the partition leader, when the commit moves the group forward.
pub fn check_for(
    tp: &TopicPartition,
    audit: &PartitionAudit,
    committed: Option<i64>,
    to: i64,
    who: &Who,
) -> Option<Check> {
    if committed.is_some_and(|c| to <= c) {
        return None;
    }
    Some(Check {
        tp: tp.clone(),
        client_id: who.client_id.clone(),
        host: who.host.clone(),
        // Until a first checked commit, deliveries may not have been recorded (the audit
        // was just switched on, or the group predates it): start at the first one seen.
        from: committed.filter(|_| audit.chain_from.is_some()),
        to,
        chain: audit.chain,
        chained_to: audit.chained_to,
    })
}

impl PartitionAudit {
    /// Notes the chain's value at `chained_to` when the last checkpoint is far enough
    /// behind (a sixteenth of the chain's range), keeping at most [`MAX_CHECKPOINTS`]
    /// (every other one goes when there are more).
    fn checkpoint(&mut self) {
        let (Some(from), Some(to)) = (self.chain_from, self.chained_to) else {
            return;
        };
        let spacing = ((to - from) / 16).max(1);
        let last = self.checkpoints.last().map_or(from, |c| c.0);
        if to - last < spacing {
            return;
        }
        self.checkpoints.push((to, self.chain));
        if self.checkpoints.len() > MAX_CHECKPOINTS {
            let keep: Vec<(i64, u32)> = self
                .checkpoints
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 1 || *i == self.checkpoints.len() - 1)
                .map(|(_, c)| *c)
                .collect();
            self.checkpoints = keep;
        }
    }

    /// Where an auditor can start recomputing the chain when the log starts at
    /// `log_start`: (offset, chain value there), or None if no checkpoint is in the log.
    pub fn verifiable_from(&self, log_start: i64) -> Option<(i64, u32)> {
        let from = self.chain_from?;
        if log_start <= from {
            return Some((from, SEED));
        }
        self.checkpoints.iter().find(|c| c.0 >= log_start).copied()
    }

    fn event(&mut self, kind: Kind, from: i64, to: i64, who: &Who, now_ms: i64) {
        self.events.push(Event {
            kind,
            from,
            to,
            client_id: who.client_id.clone(),
            host: who.host.clone(),
            member_id: who.member_id.clone(),
            at_ms: now_ms,
        });
        if self.events.len() > MAX_EVENTS {
            let extra = self.events.len() - MAX_EVENTS;
            self.events.drain(..extra);
        }
    }
}

fn len(r: &[(i64, i64)]) -> i64 {
    r.iter().map(|(a, b)| b - a).sum()
}

/// What a commit from `committed` to `to` does to `audit`. `verdict` is the leader's
/// answer to [`check_for`]'s question (`None` when there was none to ask).
pub fn decide(
    audit: &PartitionAudit,
    committed: Option<i64>,
    to: i64,
    verdict: Option<Result<Verdict, String>>,
    who: &Who,
    mode: Mode,
    now_ms: i64,
) -> Decision {
    let mut a = audit.clone();
    match (committed, verdict) {
        (Some(c), _) if to == c => Decision::Accept,
        (Some(c), _) if to < c => {
            let kind = if who.admin {
                Kind::Replayed
            } else {
                Kind::Rewound
            };
            a.event(kind, c, to, who, now_ms);
            Decision::Record(a)
        }
        (_, None) => Decision::Accept,
        (c, Some(Err(_))) => {
            let from = c.unwrap_or(to);
            if mode == Mode::Strict && !who.admin {
                return Decision::Refuse {
                    code: errors::REQUEST_TIMED_OUT,
                    audit: a,
                };
            }
            if to > from {
                a.unchecked_records += to - from;
                a.event(Kind::Unchecked, from, to, who, now_ms);
            }
            Decision::Record(a)
        }
        (_, Some(Ok(v))) => {
            if !v.undelivered.is_empty() && mode == Mode::Strict && !who.admin {
                let (from, to) = (v.undelivered[0].0, v.undelivered[v.undelivered.len() - 1].1);
                a.refused_commits += 1;
                a.event(Kind::Refused, from, to, who, now_ms);
                return Decision::Refuse {
                    code: errors::POLICY_VIOLATION,
                    audit: a,
                };
            }
            for &(from, to) in &v.undelivered {
                a.event(Kind::Skipped, from, to, who, now_ms);
                a.skipped.push((from, to));
            }
            for &(from, to) in &v.unverified {
                a.event(Kind::Unverified, from, to, who, now_ms);
            }
            for &(from, to) in &v.expired {
                a.event(Kind::Expired, from, to, who, now_ms);
            }
            a.skipped_records += len(&v.undelivered);
            a.unverified_records += len(&v.unverified);
            a.expired_records += len(&v.expired);
            a.chain_from = a.chain_from.or(Some(v.from));
            a.chain = v.chain;
            a.chained_to = Some(v.chained_to);
            a.delivered_to = v.delivered_to;
            if a.skipped.len() > MAX_SKIPPED {
                a.chain = SEED;
                a.chain_from = Some(v.chained_to);
                a.skipped.clear();
                a.checkpoints.clear();
            }
            a.checkpoint();
            Decision::Record(a)
        }
    }
}
