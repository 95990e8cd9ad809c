//! `phxq topic produce TOPIC`: one record per line of standard input, with an optional
//! key (split at `--key-separator`) and headers, written with acks=all by default to each
//! partition's leader, the way any Kafka producer writes: keyed records to the partition
//! Kafka's Java client would choose (`partitioner`), keyless ones round-robin, or all to
//! `--partition`. Prints where they went.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, ProduceRequest, TopicName};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::json;

use super::offsets::partition_leaders;
use super::partitioner::partition_of;
use super::{check, s, topic_metadata, RETRIABLE};
use crate::kafka_client::KafkaClient;

/// Lines sent per round of Produce requests.
const CHUNK: usize = 1000;
const ATTEMPTS: usize = 10;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// The topic.
    pub topic: String,
    /// Split each line at the first SEP into key and value (a line without it has no key).
    #[arg(short = 'k', long)]
    pub key_separator: Option<String>,
    /// A header KEY=VALUE on every record (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Write every record to this partition.
    #[arg(short, long)]
    pub partition: Option<i32>,
    /// Acknowledgements: -1 (all in-sync replicas, the default) or 1.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub acks: i16,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(bootstrap: &str, a: &ProduceArgs) -> anyhow::Result<String> {
    anyhow::ensure!(a.acks == -1 || a.acks == 1, "--acks must be -1 (all) or 1");
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("header {h:?} is not KEY=VALUE"))?;
        headers.push((k.to_string(), v.to_string()));
    }
    let partitions = topic_metadata(&mut KafkaClient::connect(bootstrap)?, &a.topic)?
        .partitions
        .len() as i32;
    if let Some(p) = a.partition {
        anyhow::ensure!(
            (0..partitions).contains(&p),
            "{} has {partitions} partitions, no partition {p}",
            a.topic
        );
    }
    let mut next = 0i32;
    let mut written: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    let mut total = 0u64;
    let mut chunk: BTreeMap<i32, Vec<(Option<Bytes>, Bytes)>> = BTreeMap::new();
    let mut in_chunk = 0;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let line = lines.next().transpose()?;
        if let Some(line) = &line {
            let (key, value) = match a
                .key_separator
                .as_deref()
                .and_then(|sep| line.split_once(sep))
            {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                None => (None, line.clone()),
            };
            let p = match (a.partition, &key) {
                (Some(p), _) => p,
                (None, Some(k)) => partition_of(k, partitions),
                (None, None) => {
                    next = (next + 1) % partitions;
                    next
                }
            };
            chunk.entry(p).or_default().push((key, Bytes::from(value)));
            in_chunk += 1;
        }
        if in_chunk >= CHUNK || (line.is_none() && in_chunk > 0) {
            for (p, (first, last)) in send(bootstrap, a, &headers, std::mem::take(&mut chunk))? {
                let e = written.entry(p).or_insert((first, last));
                e.1 = last;
            }
            total += in_chunk as u64;
            in_chunk = 0;
        }
        if line.is_none() {
            break;
        }
    }
    if a.json {
        let parts: BTreeMap<String, _> = written
            .iter()
            .map(|(p, (f, l))| (p.to_string(), json!({"first_offset": f, "last_offset": l})))
            .collect();
        let v = json!({"topic": a.topic, "records": total, "partitions": parts});
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut out = format!("produced {total} records to {}\n", a.topic);
    for (p, (f, l)) in written {
        out.push_str(&format!("  partition {p}: offsets {f}..={l}\n"));
    }
    Ok(out)
}

fn batch(
    records: &[(Option<Bytes>, Bytes)],
    headers: &[(String, String)],
) -> anyhow::Result<Bytes> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            let mut h = kafka_protocol::indexmap::IndexMap::new();
            for (k, v) in headers {
                h.insert(s(k), Some(Bytes::from(v.clone())));
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now,
                key: key.clone(),
                value: Some(value.clone()),
                headers: h,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

/// Writes each partition's records as one batch to its leader; returns the first and last
/// offset of each partition's batch. Retries what failed with a retriable error.
fn send(
    bootstrap: &str,
    a: &ProduceArgs,
    headers: &[(String, String)],
    chunk: BTreeMap<i32, Vec<(Option<Bytes>, Bytes)>>,
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let mut todo: BTreeMap<i32, (Bytes, i64)> = BTreeMap::new();
    for (p, recs) in &chunk {
        todo.insert(*p, (batch(recs, headers)?, recs.len() as i64));
    }
    send_batches(bootstrap, &a.topic, a.acks, todo)
}

/// Writes `records` as one uncompressed batch to `partition` of `topic` with acks=all
/// (the share groups' dead-letter writer).
pub fn send_batch(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    records: &[Record],
) -> anyhow::Result<(i64, i64)> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    let todo = BTreeMap::from([(partition, (buf.freeze(), records.len() as i64))]);
    let done = send_batches(bootstrap, topic, -1, todo)?;
    done.get(&partition)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no answer for {topic} partition {partition}"))
}

/// Writes one batch per partition (with its record count) to each partition's leader;
/// returns the first and last offset of each. Retries what failed with a retriable error.
fn send_batches(
    bootstrap: &str,
    topic: &str,
    acks: i16,
    mut todo: BTreeMap<i32, (Bytes, i64)>,
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let mut done = BTreeMap::new();
    for attempt in 0.. {
        let parts: BTreeSet<(String, i32)> = todo.keys().map(|p| (topic.to_string(), *p)).collect();
        let (brokers, by_leader) = partition_leaders(bootstrap, &parts)?;
        let mut failed = Vec::new();
        for (leader, tps) in by_leader {
            let addr = match brokers.get(&leader) {
                Some(addr) if leader != BrokerId(-1) => addr.clone(),
                _ => {
                    failed.extend(tps.iter().map(|(_, p)| (*p, 5i16)));
                    continue;
                }
            };
            let mut c = match KafkaClient::connect(&addr) {
                Ok(c) => c,
                Err(_) => {
                    failed.extend(tps.iter().map(|(_, p)| (*p, 6i16)));
                    continue;
                }
            };
            let req = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_data(
                        tps.iter()
                            .map(|(_, p)| {
                                PartitionProduceData::default()
                                    .with_index(*p)
                                    .with_records(Some(todo[p].0.clone()))
                            })
                            .collect(),
                    )]);
            let r = c.send(&req, 7)?;
            for t in r.responses {
                for p in t.partition_responses {
                    if p.error_code == 0 {
                        let n = todo[&p.index].1;
                        done.insert(p.index, (p.base_offset, p.base_offset + n - 1));
                    } else {
                        failed.push((p.index, p.error_code));
                    }
                }
            }
        }
        todo.retain(|p, _| !done.contains_key(p));
        if todo.is_empty() {
            break;
        }
        let what = |p: i32| format!("producing to {topic} partition {p}");
        if let Some((p, code)) = failed.iter().find(|(_, code)| !RETRIABLE.contains(code)) {
            check(*code, &what(*p))?;
        }
        if attempt + 1 >= ATTEMPTS {
            // Still failing (or without a leader) after every attempt: the last error.
            let (p, code) = match failed.first() {
                Some(f) => *f,
                None => (todo.keys().next().copied().unwrap_or(-1), 5),
            };
            check(code, &what(p))?;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(done)
}
