//! `phxq group audit GROUP`: a group's real-time reconciliation (`audit/`) per partition:
//! the log (start..end), what was delivered, what the group committed, its lag, the
//! records it skipped (with who and when) and whether its chained checksum matches the
//! same chain computed here, independently, over the log's batches read with Fetch.
//!
//! Like every admin command it talks the Kafka protocol: OffsetFetch v7 with the audit
//! tag (answered by the coordinator), ListOffsets and Fetch (answered by the leaders).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, GroupId, OffsetFetchRequest, TopicName};

use super::admin::{
    check, coordinator, list_offsets, partition_leaders, s, table, EARLIEST, LATEST,
};
use super::consumer_protocol::TopicPartition;
use crate::audit::chain::{self, Link};
use crate::audit::reconcile::PartitionAudit;
use crate::handlers::offset_fetch::AUDIT_TAG;
use crate::kafka_client::KafkaClient;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// The group id.
    pub group: String,
    /// Print JSON (one object: the group's mode and its partitions) for scripts.
    #[arg(long)]
    pub json: bool,
    /// Do not read the log to verify the chained checksums.
    #[arg(long)]
    pub no_verify: bool,
}

/// One partition's report.
#[derive(serde::Serialize)]
struct Row {
    topic: String,
    partition: i32,
    log_start: Option<i64>,
    log_end: Option<i64>,
    delivered: Option<i64>,
    committed: i64,
    lag: Option<i64>,
    skipped_records: i64,
    unverified_records: i64,
    expired_records: i64,
    unchecked_records: i64,
    refused_commits: i64,
    /// "match" ("match from N": from a checkpoint, the log's start having been deleted),
    /// "MISMATCH ...", "not verified", "unverifiable: ..." or "none" (nothing chained).
    checksum: String,
    chain: Option<u32>,
    chain_from: Option<i64>,
    chained_to: Option<i64>,
    events: Vec<crate::audit::reconcile::Event>,
}

pub fn run(bootstrap: &str, args: &AuditArgs) -> anyhow::Result<String> {
    let group = &args.group;
    let mut c = coordinator(bootstrap, group)?;
    let mut req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(None);
    req.unknown_tagged_fields.insert(AUDIT_TAG, Bytes::new());
    let r = c.send(&req, 7)?;
    check(r.error_code, "OffsetFetch")?;
    let report: serde_json::Value = r
        .unknown_tagged_fields
        .get(&AUDIT_TAG)
        .map(|b| serde_json::from_slice(b))
        .transpose()
        .context("the broker's audit report is not JSON")?
        .ok_or_else(|| {
            anyhow::anyhow!("group {group:?} not found, or the broker keeps no audit")
        })?;
    let mode = report["mode"].as_str().unwrap_or("?").to_string();
    let mut committed: BTreeMap<TopicPartition, (i64, Option<PartitionAudit>)> = BTreeMap::new();
    for p in report["partitions"].as_array().into_iter().flatten() {
        let tp = (
            p["topic"].as_str().unwrap_or_default().to_string(),
            p["partition"].as_i64().unwrap_or(-1) as i32,
        );
        let audit = serde_json::from_value(p["audit"].clone()).ok();
        committed.insert(tp, (p["committed"].as_i64().unwrap_or(-1), audit));
    }
    let parts: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
    let start = list_offsets(bootstrap, &parts, EARLIEST)?;
    let end = list_offsets(bootstrap, &parts, LATEST)?;
    let mut rows = Vec::new();
    for (tp, (offset, audit)) in &committed {
        let a = audit.clone().unwrap_or_default();
        let checksum = match (a.chain_from, a.chained_to) {
            (Some(from), Some(to)) if to > from => {
                if args.no_verify {
                    "not verified".to_string()
                } else {
                    verify(bootstrap, tp, &a, to, start.get(tp).copied())?
                }
            }
            _ => "none".to_string(),
        };
        rows.push(Row {
            topic: tp.0.clone(),
            partition: tp.1,
            log_start: start.get(tp).copied(),
            log_end: end.get(tp).copied(),
            delivered: audit.as_ref().map(|a| a.delivered_to),
            committed: *offset,
            lag: end.get(tp).map(|e| (e - offset).max(0)),
            skipped_records: a.skipped_records,
            unverified_records: a.unverified_records,
            expired_records: a.expired_records,
            unchecked_records: a.unchecked_records,
            refused_commits: a.refused_commits,
            checksum,
            chain: audit.as_ref().and(Some(a.chain)),
            chain_from: a.chain_from,
            chained_to: a.chained_to,
            events: a.events.clone(),
        });
    }
    if args.json {
        let out = serde_json::json!({ "group": group, "mode": mode, "partitions": rows });
        return Ok(format!("{out}\n"));
    }
    Ok(render(group, &mode, &rows))
}

/// The chain over the log compared with the group's: from its start, or from the first
/// checkpoint still in the log once retention deleted the start.
fn verify(
    bootstrap: &str,
    tp: &TopicPartition,
    a: &PartitionAudit,
    to: i64,
    log_start: Option<i64>,
) -> anyhow::Result<String> {
    let Some((from, seed)) = a.verifiable_from(log_start.unwrap_or(i64::MIN)) else {
        return Ok(format!(
            "unverifiable: the log starts at {} and no checkpoint of the chain is in it",
            log_start.unwrap_or_default()
        ));
    };
    let links = read_links(bootstrap, tp, from, to)?;
    let computed = chain::over_log(seed, links, from, to, &a.skipped);
    let since = if Some(from) == a.chain_from {
        String::new()
    } else {
        format!(" from {from}")
    };
    Ok(if computed == a.chain {
        format!("match{since}")
    } else {
        format!(
            "MISMATCH{since} (group {:#010x}, log {computed:#010x})",
            a.chain
        )
    })
}

/// The links of the log's batches whose last offset is in `[from, to)`, read with Fetch
/// from the partition's leader.
fn read_links(
    bootstrap: &str,
    tp: &TopicPartition,
    from: i64,
    to: i64,
) -> anyhow::Result<Vec<Link>> {
    let (brokers, by_leader) = partition_leaders(bootstrap, &BTreeSet::from([tp.clone()]))?;
    let addr = by_leader
        .keys()
        .next()
        .and_then(|l| brokers.get(l))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{}-{} has no leader", tp.0, tp.1))?;
    let mut c = KafkaClient::connect(&addr)?;
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(8 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(s(&tp.0)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(tp.1)
                    .with_fetch_offset(at)
                    .with_partition_max_bytes(8 << 20)])]);
        let r = c.send(&req, 11)?;
        let p = r
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| anyhow::anyhow!("empty Fetch response"))?;
        check(p.error_code, "Fetch")?;
        let links = chain::links(p.records.as_deref().unwrap_or_default());
        let Some(last) = links.last().map(|l| l.last) else {
            break;
        };
        out.extend(links);
        at = last + 1;
    }
    Ok(out)
}

fn opt(v: Option<i64>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn render(group: &str, mode: &str, rows: &[Row]) -> String {
    let skipped: i64 = rows.iter().map(|r| r.skipped_records).sum();
    let bad = rows
        .iter()
        .filter(|r| r.checksum.starts_with("MISMATCH"))
        .count();
    let mut out = format!(
        "group {group}: audit {mode}; {}\n\n",
        if skipped == 0 && bad == 0 {
            "clean: nothing skipped, every checked chain matches the log".to_string()
        } else {
            format!("{skipped} record(s) skipped, {bad} chain mismatch(es)")
        }
    );
    let mut t = vec![[
        "TOPIC",
        "PARTITION",
        "LOG-START",
        "LOG-END",
        "DELIVERED",
        "COMMITTED",
        "LAG",
        "SKIPPED",
        "UNVERIFIED",
        "EXPIRED",
        "CHECKSUM",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows {
        t.push(vec![
            r.topic.clone(),
            r.partition.to_string(),
            opt(r.log_start),
            opt(r.log_end),
            opt(r.delivered),
            r.committed.to_string(),
            opt(r.lag),
            r.skipped_records.to_string(),
            (r.unverified_records + r.unchecked_records).to_string(),
            r.expired_records.to_string(),
            r.checksum.clone(),
        ]);
    }
    out.push_str(&table(&t));
    let events: Vec<_> = rows
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (r, e)))
        .collect();
    if !events.is_empty() {
        out.push_str("\nevents (latest per partition):\n");
        let mut t = vec![[
            "TIME",
            "PARTITION",
            "WHAT",
            "OFFSETS",
            "CLIENT",
            "HOST",
            "MEMBER",
        ]
        .map(String::from)
        .to_vec()];
        for (r, e) in events {
            t.push(vec![
                chrono::DateTime::from_timestamp_millis(e.at_ms).map_or(e.at_ms.to_string(), |d| {
                    d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
                }),
                format!("{}-{}", r.topic, r.partition),
                serde_json::to_value(e.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                format!("{}..{}", e.from, e.to),
                e.client_id.clone(),
                e.host.clone(),
                if e.member_id.is_empty() {
                    "-".into()
                } else {
                    e.member_id.clone()
                },
            ]);
        }
        out.push_str(&table(&t));
    }
    out
}
