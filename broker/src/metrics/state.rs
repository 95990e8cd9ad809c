//! What is read at each scrape rather than counted as it happens: every store group's Raft
//! state on this node, partition leadership and under-replication, the storage writer's
//! counters, segment and disk space, the consumer lag of the groups coordinated here, and
//! whether the broker is ready (`health`).

use std::fmt;
use std::sync::Weak;

use phxq_replication::SYNC_BOUNDS_US;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{health, Labels, MAX_LAG_SERIES};
use crate::broker::Broker;

/// The scrape-time collector; holds the broker weakly (the registry lives inside it).
pub struct NodeState {
    broker: Weak<Broker>,
}

impl NodeState {
    pub fn new(broker: Weak<Broker>) -> NodeState {
        NodeState { broker }
    }
}

impl fmt::Debug for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeState")
    }
}

/// Series of one gauge or counter family.
struct Series {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: MetricType,
    points: Vec<(Labels, f64)>,
}

impl Series {
    fn gauge(name: &'static str, help: &'static str) -> Series {
        Series {
            name,
            help,
            unit: None,
            kind: MetricType::Gauge,
            points: vec![],
        }
    }

    fn counter(name: &'static str, help: &'static str) -> Series {
        Series {
            kind: MetricType::Counter,
            ..Series::gauge(name, help)
        }
    }

    fn bytes(mut self) -> Series {
        self.unit = Some(Unit::Bytes);
        self
    }

    fn seconds(mut self) -> Series {
        self.unit = Some(Unit::Seconds);
        self
    }

    fn one(mut self, v: f64) -> Series {
        self.points.push((vec![], v));
        self
    }

    fn add(&mut self, labels: Labels, v: f64) {
        self.points.push((labels, v));
    }

    fn encode(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        if self.points.is_empty() {
            return Ok(());
        }
        let mut m = enc.encode_descriptor(self.name, self.help, self.unit.as_ref(), self.kind)?;
        if let [(labels, v)] = self.points.as_slice() {
            if labels.is_empty() {
                return self.value(*v, m);
            }
        }
        for (labels, v) in &self.points {
            self.value(*v, m.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn value(&self, v: f64, e: MetricEncoder<'_>) -> fmt::Result {
        match self.kind {
            MetricType::Counter => ConstCounter::new(v as u64).encode(e),
            _ => ConstGauge::new(v).encode(e),
        }
    }
}

impl Collector for NodeState {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let Some(b) = self.broker.upgrade() else {
            return Ok(());
        };
        for s in collect(&b) {
            s.encode(&mut enc)?;
        }
        sync_histogram(&b, &mut enc)
    }
}

/// How long the durable commits' syncs took (segment fdatasync and the database's fsync):
/// the group commit's cost, a histogram in seconds.
fn sync_histogram(b: &Broker, enc: &mut DescriptorEncoder) -> fmt::Result {
    let w = b.node.counters();
    // Per bucket (the encoder accumulates them); prometheus-client writes f64::MAX as +Inf.
    let buckets: Vec<(f64, u64)> = w
        .sync_buckets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let upper = SYNC_BOUNDS_US
                .get(i)
                .map_or(f64::MAX, |us| *us as f64 / 1e6);
            (upper, *n)
        })
        .collect();
    let count = w.sync_buckets.iter().sum();
    let mut m = enc.encode_descriptor(
        "storage_sync_duration",
        "Time the syncs of a durable group commit took (segment fdatasync and database fsync)",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    m.encode_histogram::<NoLabelSet>(w.sync_micros as f64 / 1e6, count, &buckets, None)
}

fn group_label(g: u32) -> Labels {
    vec![("store_group", g.to_string())]
}

fn collect(b: &Broker) -> Vec<Series> {
    let mut out = Vec::new();
    let me = b.config.node_id;

    // Raft, per store group hosted here (0 is the metadata group).
    let mut term = Series::gauge("raft_term", "Current Raft term, per store group");
    let mut leader = Series::gauge(
        "raft_leader",
        "Node id of the store group's leader as this node knows it (-1: none)",
    );
    let mut is_leader = Series::gauge("raft_is_leader", "1 where this node leads the store group");
    let mut last_log = Series::gauge("raft_last_log_index", "Last Raft log index on this node");
    let mut committed = Series::gauge("raft_commit_index", "Raft commit index known to this node");
    let mut applied = Series::gauge("raft_applied_index", "Raft log index applied on this node");
    let mut lag = Series::gauge(
        "raft_follower_lag",
        "Log entries a follower is behind its leader (reported by the leader)",
    );
    let mut ack = Series::gauge(
        "raft_follower_last_ack",
        "Time since a follower last acknowledged its leader (reported by the leader)",
    )
    .seconds();
    let mut elections = Series::counter(
        "raft_elections",
        "Elections held in the store group since this node started hosting it: Raft terms begun, by any candidate, won or not",
    );
    let mut leader_changes = Series::counter(
        "raft_leader_changes",
        "New leaders (node and term) this node learned of for the store group since it started, the first one not counted",
    );
    for st in b.node.status() {
        let g = st.group.0;
        if let Some(group) = b.node.group(st.group) {
            let e = group.elections();
            elections.add(group_label(g), e.terms_begun as f64);
            leader_changes.add(group_label(g), e.leader_changes as f64);
        }
        term.add(group_label(g), st.term as f64);
        leader.add(group_label(g), st.leader.map_or(-1.0, |l| l as f64));
        is_leader.add(group_label(g), f64::from(u8::from(st.leader == Some(me))));
        last_log.add(group_label(g), st.last_log.unwrap_or(0) as f64);
        committed.add(group_label(g), st.committed.unwrap_or(0) as f64);
        applied.add(group_label(g), st.applied.unwrap_or(0) as f64);
        let last = st.last_log.unwrap_or(0);
        for r in &st.replication {
            let mut l = group_label(g);
            l.push(("follower", r.node.to_string()));
            lag.add(
                l.clone(),
                last.saturating_sub(r.matched.unwrap_or(0)) as f64,
            );
            if let Some(ms) = r.last_ack_ms {
                ack.add(l, ms as f64 / 1000.0);
            }
        }
    }
    out.extend([
        term,
        leader,
        is_leader,
        last_log,
        committed,
        applied,
        lag,
        ack,
        elections,
        leader_changes,
    ]);

    // Partitions this broker leads, and those of them short of in-sync replicas.
    let (mut led, mut under) = (0u64, 0u64);
    for t in b.topics.all() {
        for g in &t.placement {
            let r = b.replicas(*g);
            if r.leader == Some(me as i32) {
                led += 1;
                if r.isr.len() < r.replicas.len() {
                    under += 1;
                }
            }
        }
    }
    out.push(Series::gauge("leader_partitions", "Partitions this broker leads").one(led as f64));
    out.push(
        Series::gauge(
            "under_replicated_partitions",
            "Partitions led here with fewer in-sync replicas than replicas (Kafka's UnderReplicatedPartitions)",
        )
        .one(under as f64),
    );

    // Storage: the group-commit writer, segment files, the disk.
    let w = b.node.counters();
    out.push(
        Series::counter(
            "storage_commits",
            "Storage write transactions (group commits, all store groups)",
        )
        .one(w.commits as f64),
    );
    out.push(
        Series::counter(
            "storage_syncs",
            "Storage write transactions made durable with an fsync",
        )
        .one(w.durable_commits as f64),
    );
    out.push(
        Series::counter(
            "storage_log_entries",
            "Raft log entries made durable (their ratio to syncs is the group-commit size)",
        )
        .one(w.appends_flushed as f64),
    );
    out.push(
        Series::counter("storage_log", "Bytes of Raft log entries written")
            .bytes()
            .one(w.log_bytes as f64),
    );
    out.push(
        Series::gauge("storage_segment", "Bytes in this node's segment files")
            .bytes()
            .one(b.node.segment_bytes() as f64),
    );
    out.push(
        Series::gauge(
            "storage_failed",
            "1 once a storage write failed (the broker restarts itself when space is back)",
        )
        .one(f64::from(u8::from(b.node.storage_failed()))),
    );
    if let Some(space) = b.disk.space() {
        out.push(
            Series::gauge("disk_free", "Free bytes on the data directory's filesystem")
                .bytes()
                .one(space.free as f64),
        );
        out.push(
            Series::gauge("disk_total", "Size of the data directory's filesystem")
                .bytes()
                .one(space.total as f64),
        );
    }
    out.push(
        Series::gauge(
            "disk_low",
            "1 while free space is below the floor and produce is refused",
        )
        .one(f64::from(u8::from(b.disk.low()))),
    );

    // Consumer lag of the groups coordinated here.
    let mut per_partition = Series::gauge(
        "consumer_group_lag",
        "Records between a group's committed offset and the log end, per partition",
    );
    let mut per_group = Series::gauge(
        "consumer_group_lag_sum",
        "Records between a group's committed offsets and the log ends, summed over its partitions",
    );
    let mut sums: std::collections::BTreeMap<String, i64> = Default::default();
    for (i, p) in b.groups.lag().into_iter().enumerate() {
        *sums.entry(p.group.clone()).or_default() += p.lag;
        if i < MAX_LAG_SERIES {
            per_partition.add(
                vec![
                    ("group", p.group),
                    ("topic", p.topic),
                    ("partition", p.partition.to_string()),
                ],
                p.lag as f64,
            );
        }
    }
    for (g, sum) in sums {
        per_group.add(vec![("group", g)], sum as f64);
    }
    out.extend([per_partition, per_group]);
    // Share-partitions this broker leads (loaded since it became leader).
    let mut share = [
        Series::gauge(
            "share_partition_start_offset",
            "A share group's start offset (SPSO) on a partition: records below it are finished",
        ),
        Series::gauge(
            "share_partition_in_flight",
            "Offsets between a share-partition's start and end offsets (its in-flight window)",
        ),
        Series::gauge(
            "share_partition_acquired",
            "Records acquired by share consumers and not yet acknowledged",
        ),
        Series::gauge(
            "share_partition_redeliverable",
            "Records delivered before and available again (released or lock expired)",
        ),
        Series::gauge(
            "share_partition_archived",
            "Archived records in the window (rejected, or at the delivery-count limit)",
        ),
    ];
    for (i, ((group, topic, partition), s)) in b.share.stats().into_iter().enumerate() {
        if i >= MAX_LAG_SERIES {
            break;
        }
        let labels = vec![
            ("group", group),
            ("topic", topic),
            ("partition", partition.to_string()),
        ];
        let values = [
            s.start_offset as f64,
            (s.end_offset - s.start_offset) as f64,
            s.acquired as f64,
            s.redeliverable as f64,
            s.archived as f64,
        ];
        for (series, v) in share.iter_mut().zip(values) {
            series.add(labels.clone(), v);
        }
    }
    out.extend(share);
    out.push(
        Series::counter(
            "share_dead_letters_failed",
            "Dead letters of share groups not written to their dead-letter topic (queue full or write failed)",
        )
        .one(b.share.dead_letters_failed.load(std::sync::atomic::Ordering::Relaxed) as f64),
    );
    out.push(
        Series::counter(
            "group_rebalances",
            "Rebalances (new generations) of classic groups coordinated here since the broker started",
        )
        .one(b.groups.rebalances() as f64),
    );

    let t = b.txns.counts();
    out.push(
        Series::gauge(
            "transactions_open",
            "Transactions coordinated here that are ongoing or decided but not completed",
        )
        .one(b.txns.open_transactions() as f64),
    );
    let mut ended = Series::counter(
        "transactions_completed",
        "Transactions coordinated here whose markers were all written since the broker started, by result",
    );
    ended.add(vec![("result", "commit".to_string())], t.commits as f64);
    ended.add(vec![("result", "abort".to_string())], t.aborts as f64);
    out.push(ended);
    out.push(
        Series::counter(
            "transactions_timed_out",
            "Transactions aborted by the coordinator because they ran past their timeout",
        )
        .one(t.timed_out as f64),
    );
    out.push(
        Series::gauge(
            "ready",
            "1 when this broker can serve what it leads (/health/ready)",
        )
        .one(f64::from(u8::from(health::ready(b).is_ok()))),
    );
    out
}
