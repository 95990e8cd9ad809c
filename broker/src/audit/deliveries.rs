//! The partition leader's side of the audit: what it gave each client of each partition,
//! and the answer to a coordinator checking a commit against that.
//!
//! Rules:
//! - **Recorded per (partition, client id, client host).** A Fetch carries no group id;
//!   the coordinator checks a commit against what was delivered to the committing client
//!   (the same client id and host, as Kafka clients fetch and commit under one client id).
//!   A Fetch from offset `f` whose answer ends with a batch whose last offset is `l`
//!   delivered `[f, l + 1)` and each batch of it (a [`Link`]). Consumers sharing one client
//!   id on one host pool their deliveries: the audit is exact when client ids differ.
//! - **Recorded before the answer leaves**, so a commit that follows it always finds it.
//! - **Known from.** Deliveries live in this broker's memory, and only a partition's leader
//!   serves fetches. Offsets appended in the current leader term were served, if at all, by
//!   this broker; older ones may have been served by an earlier leader (or by this broker
//!   before a restart). So an offset below the first one appended in the current term (the
//!   high watermark, when nothing was appended in it yet) that this broker has no record
//!   of is *unverified* (neither delivered nor skipped), and so is one whose record was
//!   dropped to bound memory ([`MAX_LINKS`], [`IDLE_MS`]).
//! - **A check** of a commit that moves the group from `from` to `to` answers: the parts of
//!   `[from, to)` never delivered to the client (*undelivered*: skipped) and the unverified
//!   parts; and the chain extended over the batches whose last offset is in
//!   `[chained_to, to)`: the delivered batches, the log's own for the unverified parts, none
//!   entirely inside an undelivered part (see `chain.rs`). Records below `from` are then
//!   forgotten: the group has committed past them.
//! - **Expired.** Parts of `[from, to)` below the log start that the client was not given
//!   were deleted (retention, DeleteRecords) before the group read them: reported apart.
//! - **No baseline.** A group's first commit on a partition (no committed offset before)
//!   is checked from the first offset delivered to the client: a consumer that starts at
//!   the log end (`auto.offset.reset=latest`) skipped nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::chain::{self, Link};
use super::ranges::RangeSet;
use super::TopicPartition;

/// Batches remembered per client and partition (~40 bytes each); older ones are forgotten.
pub const MAX_LINKS: usize = 200_000;
/// A client that fetched nothing of a partition for this long is forgotten.
pub const IDLE_MS: i64 = 30 * 60 * 1000;

/// A coordinator's question about one commit (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub tp: TopicPartition,
    pub client_id: String,
    pub host: String,
    /// The group's committed offset before this commit; `None`: it has none.
    pub from: Option<i64>,
    pub to: i64,
    pub chain: u32,
    /// Where the chain stops; `None`: the chain starts at this check's baseline.
    pub chained_to: Option<i64>,
}

/// The leader's answer to a [`Check`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Where the check started (`from`, or the first delivered offset without one).
    pub from: i64,
    pub undelivered: Vec<(i64, i64)>,
    pub unverified: Vec<(i64, i64)>,
    /// Parts never delivered to the client that are below the log start: deleted
    /// (retention, DeleteRecords) before the group read them.
    #[serde(default)]
    pub expired: Vec<(i64, i64)>,
    pub chain: u32,
    pub chained_to: i64,
    /// One past the highest offset delivered to the client.
    pub delivered_to: i64,
}

/// What the leader knows of a partition at the time of a call.
#[derive(Clone, Copy, Debug)]
pub struct LeaderView {
    /// Offsets from here on were appended in the current leader term (see the module doc).
    pub known_from: i64,
    /// The log start offset: records below it were deleted (retention, DeleteRecords).
    pub log_start: i64,
}

#[derive(Default)]
struct Delivered {
    ranges: RangeSet,
    links: BTreeMap<i64, Link>,
    /// Offsets below this were delivered or not: their records were dropped.
    forgotten_below: i64,
    touched_ms: i64,
}

impl Delivered {
    /// Drops what lies below `below` (a batch straddling it stays: its last offset is
    /// still to be chained).
    fn prune(&mut self, below: i64) {
        self.ranges.forget_below(below);
        let straddling = self
            .links
            .range(..below)
            .next_back()
            .filter(|(_, l)| l.last >= below)
            .map(|(b, l)| (*b, *l));
        self.links = self.links.split_off(&below);
        if let Some((b, l)) = straddling {
            self.links.insert(b, l);
        }
    }

    /// Drops what lies below `below` to bound memory: those offsets become unverified.
    fn forget(&mut self, below: i64) {
        self.forgotten_below = self.forgotten_below.max(below);
        self.prune(below);
    }
}

type Track = HashMap<(String, String), Delivered>;

/// Every partition this broker leads, with what it gave whom.
#[derive(Default)]
pub struct Deliveries {
    tracks: Mutex<HashMap<TopicPartition, Track>>,
    /// When idle clients were last dropped.
    swept_ms: AtomicI64,
}

/// How often idle clients are looked for.
const SWEEP_MS: i64 = 60_000;

impl Deliveries {
    /// Records a Fetch answer: `links` given to `client` (client id, host) from
    /// `fetch_offset` on.
    pub fn record(
        &self,
        tp: &TopicPartition,
        (client_id, host): (&str, &str),
        fetch_offset: i64,
        links: &[Link],
        now_ms: i64,
    ) {
        let Some(end) = links.last().map(|l| l.last + 1) else {
            return;
        };
        if now_ms - self.swept_ms.load(Ordering::Relaxed) >= SWEEP_MS {
            self.swept_ms.store(now_ms, Ordering::Relaxed);
            self.sweep(now_ms);
        }
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        let d = tracks
            .entry(tp.clone())
            .or_default()
            .entry((client_id.to_string(), host.to_string()))
            .or_default();
        d.touched_ms = now_ms;
        if let Some(below) = d.ranges.insert(fetch_offset, end) {
            d.forget(below);
        }
        for l in links {
            d.links.insert(l.base, *l);
        }
        if d.links.len() > MAX_LINKS {
            let cut = d
                .links
                .keys()
                .nth(d.links.len() - MAX_LINKS)
                .copied()
                .unwrap_or(i64::MAX);
            d.forget(cut);
        }
    }

    /// Answers a coordinator's [`Check`]. `log` reads the links of the log's batches that
    /// overlap `[from, to)` (for the parts of the chain with no record of delivery); it runs
    /// without the lock that fetches record under.
    pub fn check(
        &self,
        c: &Check,
        at: LeaderView,
        log: &dyn Fn(i64, i64) -> Result<Vec<Link>, String>,
    ) -> Result<Verdict, String> {
        let key = (c.client_id.clone(), c.host.clone());
        // What this broker knows, copied out under the lock.
        let (ranges, forgotten_below, mut batches, from) = {
            let tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
            let empty = Delivered::default();
            let d = tracks
                .get(&c.tp)
                .and_then(|t| t.get(&key))
                .unwrap_or(&empty);
            let from = c
                .from
                .unwrap_or_else(|| d.ranges.first().unwrap_or(c.to).min(c.to));
            let chained_from = c.chained_to.unwrap_or(from);
            let batches: BTreeMap<i64, Link> = d
                .links
                .range(..c.to)
                .filter(|(_, l)| l.last >= chained_from && l.last < c.to)
                .map(|(b, l)| (*b, *l))
                .collect();
            (d.ranges.clone(), d.forgotten_below, batches, from)
        };
        let unknown_below = at.known_from.max(forgotten_below);
        let (mut undelivered, mut unverified, mut expired) = (Vec::new(), Vec::new(), Vec::new());
        for (a, b) in ranges.missing(from, c.to.max(from)) {
            if a < at.log_start {
                expired.push((a, b.min(at.log_start)));
            }
            let a = a.max(at.log_start);
            if a < b && a < unknown_below {
                unverified.push((a, b.min(unknown_below)));
            }
            if b > unknown_below.max(a) {
                undelivered.push((a.max(unknown_below), b));
            }
        }
        let chained_from = c.chained_to.unwrap_or(from);
        let mut chain = c.chain;
        let mut chained_to = chained_from;
        if c.to > chained_from {
            // The batches to chain: the delivered ones, and the log's where nothing is
            // known of what was delivered (unverified, or before `from` when the chain
            // lags behind the committed offset).
            let mut covered = ranges.clone();
            for &(a, b) in undelivered.iter().chain(&expired) {
                covered.insert(a, b);
            }
            for (a, b) in covered.missing(chained_from, c.to) {
                for l in log(a, b)? {
                    if l.last >= chained_from && l.last < c.to {
                        batches.entry(l.base).or_insert(l);
                    }
                }
            }
            for l in batches.values() {
                let gone = |&(a, b): &(i64, i64)| l.inside(a, b);
                if !undelivered.iter().any(gone) && !expired.iter().any(gone) {
                    chain = chain::extend(chain, l);
                }
            }
            chained_to = c.to;
        }
        let delivered_to = ranges.end().unwrap_or(from);
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = tracks.get_mut(&c.tp).and_then(|t| t.get_mut(&key)) {
            d.prune(from);
        }
        Ok(Verdict {
            from,
            undelivered,
            unverified,
            expired,
            chain,
            chained_to,
            delivered_to,
        })
    }

    /// Drops clients idle for [`IDLE_MS`] and partitions left without clients.
    pub fn sweep(&self, now_ms: i64) {
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        for t in tracks.values_mut() {
            t.retain(|_, d| now_ms - d.touched_ms < IDLE_MS);
        }
        tracks.retain(|_, t| !t.is_empty());
    }
}
