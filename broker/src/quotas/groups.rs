//! PhxQueue's dequeue speed limits: how fast a whole consumer group may fetch
//! (`phxq.consumer.records.per.sec`, `phxq.consumer.bytes.per.sec`, group configs), and
//! its consumer-group lock applied to fetches (`phxq.consumer.fetch.lock.enable`).
//!
//! Rules:
//! - **Attribution.** A Fetch carries no group id. The coordinator of a limited group
//!   publishes, through the metadata Raft group (`group-holders/<group>`), who holds each
//!   of its partitions: the lock holder's client id and host. A Fetch of partition P is
//!   the group's when it comes from that client id and host. This is exact when the
//!   group's consumers use client ids that no other consumer of the same partitions on the
//!   same host uses; when several limited groups match, each of them is charged (a
//!   limit is never silently skipped, it may bind early). A consumer outside any group
//!   (assign()) is not a group's and is governed only by client quotas.
//! - **Cluster-wide budget.** Each broker enforces the share of the limit that matches the
//!   share of the group's held partitions it leads (`limit × led / held`), recomputed
//!   every second. That is exact when the group's partitions carry even load; a broker
//!   whose partitions are busier than the others' caps the group below its limit.
//! - **Shaping.** A Fetch attributed to a group asks for at most what the group may
//!   still take: its `max_bytes` and `partition_max_bytes` are cut to the bytes left in
//!   the group's budget (for a records limit: the records left times the group's mean
//!   record size), whole batches only, at least one batch (KIP-74). So the group's rate
//!   follows the limit closely whatever the clients' fetch sizes; a batch counts whole, so
//!   the precision is one batch.
//! - **Fetch lock** (`phxq.consumer.fetch.lock.enable`): the coordinator also publishes
//!   every member's client id and host; a fetch with a member's identity of a partition
//!   held by another member (or by nobody) gets no records. A fetch that cannot be told
//!   apart from the holder's is served.
//! - **Per topic** (`phxq.consumer.topic.records.per.sec` / `.bytes.per.sec`,
//!   `topic:rate,...`): a limit on one topic within the group, with its own budget (shared
//!   between brokers by the share of that topic's held partitions each leads). A fetch's
//!   partitions of that topic are cut to what is left of it; once it is used up they get no
//!   records until it refills, while the fetch's other partitions are served: no
//!   `throttle_time_ms`, which would hold the whole connection back.
//! - **Enforcement** is that of client quotas (`bucket.rs`, KIP-219): the response that
//!   takes the group over its share carries `throttle_time_ms` and mutes the connection;
//!   a Fetch attributed to a group that still owes time gets no records. Records are
//!   counted from the batch headers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, RwLock};

use bytes::Bytes;
use phxq_replication::{Command, StoreGroup};

use super::bucket::Bucket;
use crate::groups::configs::{GroupConfigRegistry, GroupSettings};
use crate::groups::consumer_protocol::TopicPartition;
use crate::groups::views::Holders;
use crate::groups::GroupConfig;

const PREFIX: &str = "group-holders/";

/// Bytes per record assumed under a records limit before a group's mean record size is
/// measured: about the smallest a record can take in a batch, so the first fetches cannot
/// overshoot the limit (a fetch still gets at least one batch).
const MIN_RECORD_BYTES: f64 = 16.0;

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Records,
    Bytes,
}

/// A limited group's member holding a partition: (group, client id, client host).
type Holder = (String, String, String);

/// What one limit applies to: a whole group (`None`) or one topic within it.
type Scope = (String, Option<String>);

#[derive(Clone, Debug)]
struct Limited {
    records_per_sec: Option<i64>,
    bytes_per_sec: Option<i64>,
    /// Limits of single topics within the group.
    topic_records_per_sec: BTreeMap<String, i64>,
    topic_bytes_per_sec: BTreeMap<String, i64>,
    held: Vec<TopicPartition>,
    /// Set when the group enforces its lock on fetches: its members' (client id, host).
    fetch_lock: Option<BTreeSet<(String, String)>>,
}

/// The speed-limited groups as every broker sees them.
#[derive(Default)]
pub struct GroupLimits {
    groups: RwLock<BTreeMap<String, Limited>>,
    /// (partition) -> its holders in limited groups.
    by_partition: RwLock<HashMap<TopicPartition, Vec<Holder>>>,
    buckets: Mutex<HashMap<(Scope, Unit), Bucket>>,
    /// Per scope: this broker's share of its limit, and when it was computed.
    shares: Mutex<HashMap<Scope, (f64, u64)>>,
    /// Per group: bytes per record in what it fetched, smoothed (to shape fetches under a
    /// records limit).
    record_size: Mutex<HashMap<String, f64>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredHolders {
    /// (topic, partition, client id, client host) of each held partition.
    partitions: Vec<(String, i32, String, String)>,
    /// (client id, client host) of every member.
    members: Vec<(String, String)>,
}

/// The stored form of a group's holders (None: nothing to keep).
pub fn encode_holders(holders: &Holders) -> Option<Bytes> {
    if holders.is_empty() {
        return None;
    }
    let stored = StoredHolders {
        partitions: holders
            .partitions
            .iter()
            .map(|((t, p), (c, h))| (t.clone(), *p, c.clone(), h.clone()))
            .collect(),
        members: holders.members.iter().cloned().collect(),
    };
    Some(Bytes::from(
        serde_json::to_vec(&stored).expect("holders serialize"),
    ))
}

fn decode_holders(v: &[u8]) -> Result<Holders, serde_json::Error> {
    let s: StoredHolders = serde_json::from_slice(v)?;
    Ok(Holders {
        partitions: s
            .partitions
            .into_iter()
            .map(|(t, p, c, h)| ((t, p), (c, h)))
            .collect(),
        members: s.members.into_iter().collect(),
    })
}

/// Writes `group`'s holders into the metadata group (deletes them when empty).
pub fn holders_command(group: &str, holders: &Holders) -> Command {
    Command::Put(vec![(
        Bytes::from(format!("{PREFIX}{group}")),
        encode_holders(holders),
    )])
}

impl Limited {
    /// The limit of `unit` on `topic` (None: the group-wide one), if set.
    fn limit(&self, topic: Option<&str>, unit: Unit) -> Option<i64> {
        match (topic, unit) {
            (None, Unit::Records) => self.records_per_sec,
            (None, Unit::Bytes) => self.bytes_per_sec,
            (Some(t), Unit::Records) => self.topic_records_per_sec.get(t).copied(),
            (Some(t), Unit::Bytes) => self.topic_bytes_per_sec.get(t).copied(),
        }
    }

    fn limits_topic(&self, topic: &str) -> bool {
        self.topic_records_per_sec.contains_key(topic)
            || self.topic_bytes_per_sec.contains_key(topic)
    }

    fn new(s: &GroupSettings, holders: &Holders) -> Limited {
        Limited {
            records_per_sec: s.records_per_sec,
            bytes_per_sec: s.bytes_per_sec,
            topic_records_per_sec: s.topic_records_per_sec.clone(),
            topic_bytes_per_sec: s.topic_bytes_per_sec.clone(),
            held: holders.partitions.keys().cloned().collect(),
            fetch_lock: s.fetch_lock.then(|| holders.members.clone()),
        }
    }
}

/// Adds `group`'s holders to the per-partition index.
fn index(by_partition: &mut HashMap<TopicPartition, Vec<Holder>>, group: &str, holders: &Holders) {
    for (tp, (c, h)) in &holders.partitions {
        by_partition
            .entry(tp.clone())
            .or_default()
            .push((group.to_string(), c.clone(), h.clone()));
    }
}

impl GroupLimits {
    /// Re-reads the published holders and the limits of their groups.
    pub fn reload(
        &self,
        metadata: &StoreGroup,
        configs: &GroupConfigRegistry,
        defaults: &GroupConfig,
    ) -> anyhow::Result<()> {
        let rows = metadata
            .kv_scan(PREFIX.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot read the holders of speed-limited groups: {e}"))?;
        let mut groups = BTreeMap::new();
        let mut by_partition: HashMap<TopicPartition, Vec<Holder>> = HashMap::new();
        for (k, v) in rows {
            let group = String::from_utf8_lossy(&k[PREFIX.len()..]).to_string();
            let holders = decode_holders(&v)
                .map_err(|e| anyhow::anyhow!("corrupt holders of group {group:?}: {e}"))?;
            let s = GroupSettings::resolve(defaults, &configs.get(&group));
            if !s.needs_holders() {
                continue;
            }
            index(&mut by_partition, &group, &holders);
            groups.insert(group, Limited::new(&s, &holders));
        }
        // Buckets of groups no longer limited go; the others keep their debt or credit.
        self.buckets
            .lock()
            .unwrap()
            .retain(|((g, _), _), _| groups.contains_key(g));
        *self.groups.write().unwrap() = groups;
        *self.by_partition.write().unwrap() = by_partition;
        Ok(())
    }

    /// Replaces one group's holders (the coordinator's own view, before the metadata group
    /// has applied it).
    pub fn set_holders(&self, group: &str, settings: &GroupSettings, holders: &Holders) {
        let mut groups = self.groups.write().unwrap();
        let mut by_partition = self.by_partition.write().unwrap();
        for v in by_partition.values_mut() {
            v.retain(|(g, _, _)| g != group);
        }
        by_partition.retain(|_, v| !v.is_empty());
        groups.remove(group);
        if !settings.needs_holders() || holders.is_empty() {
            return;
        }
        index(&mut by_partition, group, holders);
        groups.insert(group.to_string(), Limited::new(settings, holders));
    }

    /// Whether a fetch of `tp` by (`client_id`, `host`) must get no records: it comes from
    /// a member of a group that enforces its lock on fetches and another member (another
    /// client id or host) holds `tp`, or nobody does. A fetch that cannot be told apart
    /// from the holder's (same client id and host) is served.
    pub fn fetch_refused(&self, tp: &TopicPartition, client_id: &str, host: &str) -> bool {
        let groups = self.groups.read().unwrap();
        let by_partition = self.by_partition.read().unwrap();
        let me = (client_id.to_string(), host.to_string());
        groups.iter().any(|(g, l)| {
            let Some(members) = &l.fetch_lock else {
                return false;
            };
            if !members.contains(&me) {
                return false;
            }
            let holder = by_partition
                .get(tp)
                .and_then(|v| v.iter().find(|(hg, _, _)| hg == g));
            match holder {
                Some((_, c, h)) => c != client_id || h != host,
                // Not a partition of this group's subscription: not its business.
                None => l.held.iter().any(|held| held.0 == tp.0),
            }
        })
    }

    /// The limited groups a fetch of `tp` by (`client_id`, `host`) belongs to.
    fn attributed(&self, tp: &TopicPartition, client_id: &str, host: &str) -> Vec<String> {
        self.by_partition
            .read()
            .unwrap()
            .get(tp)
            .map(|v| {
                v.iter()
                    .filter(|(_, c, h)| c == client_id && h == host)
                    .map(|(g, _, _)| g.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The limited groups a fetch of any of `tps` by (`client_id`, `host`) belongs to,
    /// each once.
    fn attributed_all(&self, tps: &[TopicPartition], client_id: &str, host: &str) -> Vec<String> {
        let mut groups: Vec<String> = tps
            .iter()
            .flat_map(|tp| self.attributed(tp, client_id, host))
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Whether any group is limited or fetch-locked (the fetch path skips everything
    /// otherwise).
    pub fn any(&self) -> bool {
        !self.groups.read().unwrap().is_empty()
    }

    /// This broker's share of a scope's limit (`leads` tells whether this broker leads a
    /// partition): the share of the scope's held partitions it leads, recomputed at most
    /// once a second.
    fn share(&self, scope: &Scope, now: u64, leads: &dyn Fn(&TopicPartition) -> bool) -> f64 {
        let mut shares = self.shares.lock().unwrap();
        if let Some((s, at)) = shares.get(scope) {
            if now.saturating_sub(*at) < 1000 {
                return *s;
            }
        }
        let groups = self.groups.read().unwrap();
        let s = groups.get(&scope.0).map_or(1.0, |g| {
            let held: Vec<&TopicPartition> = g
                .held
                .iter()
                .filter(|tp| scope.1.as_ref().is_none_or(|t| *t == tp.0))
                .collect();
            let led = held.iter().filter(|tp| leads(tp)).count();
            if held.is_empty() || led == 0 {
                1.0
            } else {
                led as f64 / held.len() as f64
            }
        });
        shares.insert(scope.clone(), (s, now));
        s
    }

    fn bucket_op(
        &self,
        scope: &Scope,
        unit: Unit,
        share: f64,
        now: u64,
        f: impl FnOnce(&mut Bucket) -> u64,
    ) -> u64 {
        let limit = {
            let groups = self.groups.read().unwrap();
            let Some(g) = groups.get(&scope.0) else {
                return 0;
            };
            g.limit(scope.1.as_deref(), unit)
        };
        let Some(limit) = limit else {
            return 0;
        };
        let rate = (limit as f64 * share).max(1.0);
        let mut buckets = self.buckets.lock().unwrap();
        let b = buckets
            .entry((scope.clone(), unit))
            .or_insert_with(|| Bucket::new(rate, now));
        b.set_rate(rate);
        f(b)
    }

    /// The topic scopes (group, topic) of `groups` that limit a topic among `tps`.
    fn topic_scopes(&self, groups: &[String], tps: &[TopicPartition]) -> Vec<Scope> {
        let limited = self.groups.read().unwrap();
        let topics: BTreeSet<&str> = tps.iter().map(|tp| tp.0.as_str()).collect();
        groups
            .iter()
            .filter_map(|g| limited.get(g).map(|l| (g, l)))
            .flat_map(|(g, l)| {
                topics
                    .iter()
                    .filter(|t| l.limits_topic(t))
                    .map(|t| (g.clone(), Some(t.to_string())))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// How long a fetch of `tps` by (`client_id`, `host`) must still wait for the groups
    /// it belongs to (0: serve it). Only group-wide limits hold a whole fetch back; see
    /// [`GroupLimits::held_back_topics`] for the limits of single topics.
    pub fn owed_ms(
        &self,
        tps: &[TopicPartition],
        client_id: &str,
        host: &str,
        now: u64,
        leads: &dyn Fn(&TopicPartition) -> bool,
    ) -> u64 {
        let groups = self.attributed_all(tps, client_id, host);
        groups
            .iter()
            .flat_map(|g| {
                let scope = (g.clone(), None);
                let share = self.share(&scope, now, leads);
                [Unit::Records, Unit::Bytes]
                    .map(|u| self.bucket_op(&scope, u, share, now, |b| b.throttle_ms(now)))
            })
            .max()
            .unwrap_or(0)
    }

    /// The topics of `tps` whose limit within a group the fetch belongs to is used up:
    /// their partitions get no records in this fetch (the others are served).
    pub fn held_back_topics(
        &self,
        tps: &[TopicPartition],
        client_id: &str,
        host: &str,
        now: u64,
        leads: &dyn Fn(&TopicPartition) -> bool,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for tp in tps {
            let groups = self.attributed(tp, client_id, host);
            for scope in self.topic_scopes(&groups, std::slice::from_ref(tp)) {
                let share = self.share(&scope, now, leads);
                let owed = [Unit::Records, Unit::Bytes]
                    .map(|u| self.bucket_op(&scope, u, share, now, |b| b.throttle_ms(now)));
                if owed.iter().any(|o| *o > 0) {
                    out.insert(tp.0.clone());
                }
            }
        }
        out
    }

    /// What is left of one scope's budget, in bytes (records at the group's mean size).
    fn scope_allowance(
        &self,
        scope: &Scope,
        now: u64,
        leads: &dyn Fn(&TopicPartition) -> bool,
    ) -> Option<f64> {
        let share = self.share(scope, now, leads);
        let size = self
            .record_size
            .lock()
            .unwrap()
            .get(&scope.0)
            .copied()
            .unwrap_or(MIN_RECORD_BYTES);
        let mut allowance: Option<f64> = None;
        for (unit, per) in [(Unit::Records, size), (Unit::Bytes, 1.0)] {
            let mut avail = None;
            self.bucket_op(scope, unit, share, now, |b| {
                avail = Some(b.available(now) * per);
                0
            });
            if let Some(a) = avail {
                allowance = Some(allowance.map_or(a, |x: f64| x.min(a)));
            }
        }
        allowance
    }

    /// The most bytes a fetch of `tps` by (`client_id`, `host`) should ask for: in all
    /// (the groups' own limits; None: no limit applies) and per topic (the limits of
    /// single topics within the groups).
    pub fn allowance_bytes(
        &self,
        tps: &[TopicPartition],
        client_id: &str,
        host: &str,
        now: u64,
        leads: &dyn Fn(&TopicPartition) -> bool,
    ) -> (Option<u64>, BTreeMap<String, u64>) {
        let groups = self.attributed_all(tps, client_id, host);
        let mut total: Option<f64> = None;
        for g in &groups {
            if let Some(a) = self.scope_allowance(&(g.clone(), None), now, leads) {
                total = Some(total.map_or(a, |x: f64| x.min(a)));
            }
        }
        let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
        for tp in tps {
            let groups = self.attributed(tp, client_id, host);
            for scope in self.topic_scopes(&groups, std::slice::from_ref(tp)) {
                if let Some(a) = self.scope_allowance(&scope, now, leads) {
                    let e = per_topic.entry(tp.0.clone()).or_insert(u64::MAX);
                    *e = (*e).min(a as u64);
                }
            }
        }
        (total.map(|a| a as u64), per_topic)
    }

    /// Share groups name themselves in ShareFetch, so their limits apply by group id, not
    /// by attribution. How long a share fetch of `group` must still wait (0: serve it),
    /// and what it may take now: (records, bytes), `None` where nothing limits.
    pub fn share_allowance(&self, group: &str, now: u64) -> (u64, Option<u64>, Option<u64>) {
        let scope = (group.to_string(), None);
        let share = self.share(&scope, now, &|_| true);
        let mut owed = 0;
        let mut allowed = [None, None];
        for (i, unit) in [Unit::Records, Unit::Bytes].into_iter().enumerate() {
            let mut avail = None;
            owed = owed.max(self.bucket_op(&scope, unit, share, now, |b| {
                avail = Some(b.available(now) as u64);
                b.throttle_ms(now)
            }));
            allowed[i] = avail;
        }
        (owed, allowed[0], allowed[1])
    }

    /// Charges what a share fetch of `group` acquired; returns the throttle that results.
    pub fn charge_share(&self, group: &str, records: u64, bytes: u64, now: u64) -> u64 {
        let scope = (group.to_string(), None);
        let share = self.share(&scope, now, &|_| true);
        [(Unit::Records, records), (Unit::Bytes, bytes)]
            .map(|(u, n)| self.bucket_op(&scope, u, share, now, |b| b.take(n as f64, now)))
            .into_iter()
            .max()
            .unwrap_or(0)
    }

    /// Charges what a fetch response carries (per partition: records, bytes) to the groups
    /// it belongs to and to their limited topics; returns the longest throttle that the
    /// groups' own limits result in (a topic's limit holds back that topic only).
    pub fn charge(
        &self,
        served: &[(TopicPartition, u64, u64)],
        client_id: &str,
        host: &str,
        now: u64,
        leads: &dyn Fn(&TopicPartition) -> bool,
    ) -> u64 {
        let mut per_scope: BTreeMap<Scope, (u64, u64)> = BTreeMap::new();
        for (tp, records, bytes) in served {
            let groups = self.attributed(tp, client_id, host);
            let topic_scopes = self.topic_scopes(&groups, std::slice::from_ref(tp));
            for scope in groups.into_iter().map(|g| (g, None)).chain(topic_scopes) {
                let e = per_scope.entry(scope).or_default();
                e.0 += records;
                e.1 += bytes;
            }
        }
        {
            let mut sizes = self.record_size.lock().unwrap();
            for ((g, topic), (records, bytes)) in &per_scope {
                if topic.is_none() && *records > 0 {
                    let sample = *bytes as f64 / *records as f64;
                    let s = sizes.entry(g.clone()).or_insert(sample);
                    *s = 0.8 * *s + 0.2 * sample;
                }
            }
        }
        per_scope
            .iter()
            .flat_map(|(scope, (records, bytes))| {
                let share = self.share(scope, now, leads);
                let throttle = [(Unit::Records, *records), (Unit::Bytes, *bytes)]
                    .map(|(u, n)| self.bucket_op(scope, u, share, now, |b| b.take(n as f64, now)));
                // A topic's own limit is enforced by holding that topic back, not by
                // throttling the whole connection.
                throttle.map(|t| if scope.1.is_none() { t } else { 0 })
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(records: i64, held: &[(&str, i32, &str, &str)]) -> GroupLimits {
        let l = GroupLimits::default();
        l.groups.write().unwrap().insert(
            "g".into(),
            Limited {
                records_per_sec: Some(records),
                bytes_per_sec: None,
                topic_records_per_sec: BTreeMap::new(),
                topic_bytes_per_sec: BTreeMap::new(),
                held: held
                    .iter()
                    .map(|(t, p, _, _)| (t.to_string(), *p))
                    .collect(),
                fetch_lock: None,
            },
        );
        let mut by = l.by_partition.write().unwrap();
        for (t, p, c, h) in held {
            by.entry((t.to_string(), *p)).or_default().push((
                "g".into(),
                c.to_string(),
                h.to_string(),
            ));
        }
        drop(by);
        l
    }

    fn tp(p: i32) -> TopicPartition {
        ("t".to_string(), p)
    }

    #[test]
    fn fetches_by_the_holder_are_charged_others_are_not() {
        let l = limits(
            1000,
            &[("t", 0, "c1", "/10.0.0.1"), ("t", 1, "c2", "/10.0.0.2")],
        );
        let all = |_: &TopicPartition| true;
        // 1500 records from the holder of t-0: half a second over.
        assert_eq!(
            l.charge(&[(tp(0), 1500, 0)], "c1", "/10.0.0.1", 0, &all),
            500
        );
        assert_eq!(l.owed_ms(&[tp(0)], "c1", "/10.0.0.1", 100, &all), 400);
        // The group owes, whichever of its members fetches.
        assert_eq!(l.owed_ms(&[tp(1)], "c2", "/10.0.0.2", 100, &all), 400);
        // Not the holder (other client id, or other host): not the group's.
        assert_eq!(
            l.charge(&[(tp(0), 1500, 0)], "other", "/10.0.0.1", 0, &all),
            0
        );
        assert_eq!(l.owed_ms(&[tp(0)], "c1", "/10.0.0.9", 100, &all), 0);
    }

    #[test]
    fn a_broker_enforces_its_share_of_the_limit() {
        let l = limits(1000, &[("t", 0, "c", "/h"), ("t", 1, "c", "/h")]);
        // This broker leads one of the group's two partitions: 500 records/s here.
        let leads = |tp: &TopicPartition| tp.1 == 0;
        assert_eq!(l.charge(&[(tp(0), 1000, 0)], "c", "/h", 0, &leads), 1000);
    }

    #[test]
    fn the_fetch_lock_refuses_members_that_do_not_hold_the_partition() {
        let l = GroupLimits::default();
        let holders = Holders {
            partitions: [
                (tp(0), ("a".to_string(), "/h1".to_string())),
                (tp(1), ("b".to_string(), "/h2".to_string())),
            ]
            .into(),
            members: [
                ("a".to_string(), "/h1".to_string()),
                ("b".to_string(), "/h2".to_string()),
            ]
            .into(),
        };
        let settings = GroupSettings {
            fetch_lock: true,
            ..GroupSettings::resolve(&GroupConfig::default(), &Default::default())
        };
        l.set_holders("g", &settings, &holders);
        assert!(!l.fetch_refused(&tp(0), "a", "/h1"), "the holder is served");
        assert!(
            l.fetch_refused(&tp(0), "b", "/h2"),
            "another member gets nothing"
        );
        assert!(
            !l.fetch_refused(&tp(0), "c", "/h1"),
            "not a member: not this group's"
        );
        assert!(l.fetch_refused(&tp(2), "a", "/h1"), "nobody holds it");
        assert!(
            !l.fetch_refused(&("u".to_string(), 0), "a", "/h1"),
            "another topic"
        );
        // Without the setting nothing is refused.
        l.set_holders(
            "g",
            &GroupSettings {
                fetch_lock: false,
                ..settings
            },
            &holders,
        );
        assert!(!l.fetch_refused(&tp(0), "b", "/h2"));
    }

    #[test]
    fn a_topic_limit_holds_back_that_topic_only() {
        let l = GroupLimits::default();
        let holders = Holders {
            partitions: [
                (("a".to_string(), 0), ("c".to_string(), "/h".to_string())),
                (("b".to_string(), 0), ("c".to_string(), "/h".to_string())),
            ]
            .into_iter()
            .collect(),
            members: BTreeSet::new(),
        };
        let settings = GroupSettings {
            topic_records_per_sec: [("a".to_string(), 1000)].into_iter().collect(),
            ..GroupSettings::resolve(&GroupConfig::default(), &Default::default())
        };
        assert!(settings.is_limited());
        l.set_holders("g", &settings, &holders);
        let all = |_: &TopicPartition| true;
        let (a, b) = (("a".to_string(), 0), ("b".to_string(), 0));
        // Topic a's budget is cut per topic; the fetch as a whole is not limited.
        let (total, per_topic) = l.allowance_bytes(&[a.clone(), b.clone()], "c", "/h", 0, &all);
        assert_eq!(total, None);
        assert_eq!(per_topic.keys().collect::<Vec<_>>(), vec!["a"]);
        // 1500 records of a: no throttle of the connection, but a is held back...
        assert_eq!(
            l.charge(
                &[(a.clone(), 1500, 150_000), (b.clone(), 5000, 500_000)],
                "c",
                "/h",
                0,
                &all
            ),
            0
        );
        let held = l.held_back_topics(&[a.clone(), b.clone()], "c", "/h", 100, &all);
        assert_eq!(held.into_iter().collect::<Vec<_>>(), vec!["a".to_string()]);
        assert_eq!(l.owed_ms(&[a.clone(), b.clone()], "c", "/h", 100, &all), 0);
        // ...until its budget refills (half a second of debt).
        assert!(l
            .held_back_topics(std::slice::from_ref(&a), "c", "/h", 499, &all)
            .contains("a"));
        assert!(l.held_back_topics(&[a], "c", "/h", 501, &all).is_empty());
        // Another client is not the group's.
        assert!(l.held_back_topics(&[b], "x", "/h", 100, &all).is_empty());
    }
}
