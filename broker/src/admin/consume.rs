//! `phxq topic consume TOPIC`: reads records from each partition's leader with Fetch, as
//! any Kafka consumer does, and prints them with a format (`%v\n` by default) or as JSON
//! lines. Starts at the log start, the end, an offset, `-N` records before the end, a time,
//! or a group's committed offsets (then commits what it printed, as a simple consumer that
//! is not a group member: the group must have no active members, as Kafka requires).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use phxq_protocol::decompress::decompress;
use serde_json::json;

use super::offsets::{list_offsets, partition_leaders, EARLIEST, LATEST};
use super::{check, coordinator, s, topic_metadata, RETRIABLE};
use crate::kafka_client::KafkaClient;

/// Largest decompressed batch the consumer accepts (a compression bomb is refused).
const MAX_DECOMPRESSED: usize = 256 << 20;
const OFFSET_OUT_OF_RANGE: i16 = 1;

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// The topic.
    pub topic: String,
    /// Partitions to read (comma-separated; default: all).
    #[arg(short, long, value_delimiter = ',')]
    pub partitions: Vec<i32>,
    /// Where to start: earliest, latest, an offset, or -N (N records before the end).
    #[arg(short, long, default_value = "earliest", allow_hyphen_values = true)]
    pub offset: String,
    /// Start at the first record at or after this time (ms since the epoch, or
    /// YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM]).
    #[arg(long)]
    pub from_time: Option<String>,
    /// Start at this group's committed offsets and commit what was printed.
    #[arg(short, long)]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    pub num: Option<u64>,
    /// Stop at the end of every partition instead of waiting for more.
    #[arg(long)]
    pub to_end: bool,
    /// Output per record: %t topic, %p partition, %o offset, %k key, %v value, %T timestamp
    /// (ms), %h headers (k=v,...), and \n, \t.
    #[arg(short, long, default_value = "%v\\n")]
    pub format: String,
    /// One JSON object per record instead (key, value and header values as UTF-8 strings,
    /// or `*_hex` fields when they are not UTF-8).
    #[arg(long)]
    pub json: bool,
}

pub fn run(bootstrap: &str, a: &ConsumeArgs) -> anyhow::Result<String> {
    let parts = partitions(bootstrap, a)?;
    let mut position = start_offsets(bootstrap, a, &parts)?;
    let ends = if a.to_end {
        list_offsets(bootstrap, &parts, LATEST)?
    } else {
        BTreeMap::new()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut printed = 0u64;
    let mut leaders = partition_leaders(bootstrap, &parts)?;
    let mut conns: BTreeMap<BrokerId, KafkaClient> = BTreeMap::new();
    'outer: loop {
        let active: BTreeSet<_> = parts
            .iter()
            .filter(|tp| !a.to_end || position[*tp] < ends.get(*tp).copied().unwrap_or(0))
            .cloned()
            .collect();
        if active.is_empty() {
            break;
        }
        let mut refresh = false;
        for (leader, tps) in &leaders.1 {
            let tps: Vec<_> = tps.iter().filter(|tp| active.contains(*tp)).collect();
            if tps.is_empty() {
                continue;
            }
            let Some(addr) = leaders.0.get(leader) else {
                refresh = true;
                continue;
            };
            if !conns.contains_key(leader) {
                conns.insert(*leader, KafkaClient::connect(addr)?);
            }
            let c = conns.get_mut(leader).expect("just connected");
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(if a.to_end { 100 } else { 500 })
                .with_min_bytes(1)
                .with_max_bytes(16 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(s(&a.topic)))
                    .with_partitions(
                        tps.iter()
                            .map(|tp| {
                                FetchPartition::default()
                                    .with_partition(tp.1)
                                    .with_fetch_offset(position[*tp])
                                    .with_partition_max_bytes(4 << 20)
                            })
                            .collect(),
                    )]);
            let r = c.send(&req, 11)?;
            check(r.error_code, "Fetch")?;
            for t in r.responses {
                for p in t.partitions {
                    let tp = (a.topic.clone(), p.partition_index);
                    match p.error_code {
                        0 => {}
                        OFFSET_OUT_OF_RANGE => {
                            anyhow::bail!(
                                "offset {} is out of range for partition {}",
                                position[&tp],
                                tp.1
                            )
                        }
                        code if RETRIABLE.contains(&code) => {
                            refresh = true;
                            continue;
                        }
                        code => check(code, &format!("Fetch of partition {}", tp.1))?,
                    }
                    let Some(mut records) = p.records else {
                        continue;
                    };
                    for rec in decode(&mut records)? {
                        if rec.offset < position[&tp] || rec.control {
                            continue;
                        }
                        print(&mut out, a, tp.1, &rec)?;
                        position.insert(tp.clone(), rec.offset + 1);
                        printed += 1;
                        if a.num.is_some_and(|n| printed >= n) {
                            break 'outer;
                        }
                    }
                    // Past the last batch (its last offsets may be gone to compaction).
                    if let Some(end) = ends.get(&tp) {
                        if position[&tp] < *end && p.high_watermark <= position[&tp] {
                            position.insert(tp.clone(), *end);
                        }
                    }
                }
            }
            out.flush()?;
        }
        if refresh {
            std::thread::sleep(std::time::Duration::from_millis(200));
            leaders = partition_leaders(bootstrap, &parts)?;
            conns.clear();
        }
    }
    out.flush()?;
    if let Some(g) = &a.group {
        commit(bootstrap, g, &a.topic, &position)?;
    }
    Ok(String::new())
}

fn partitions(bootstrap: &str, a: &ConsumeArgs) -> anyhow::Result<BTreeSet<(String, i32)>> {
    let t = topic_metadata(&mut KafkaClient::connect(bootstrap)?, &a.topic)?;
    let all: BTreeSet<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    for p in &a.partitions {
        anyhow::ensure!(all.contains(p), "{} has no partition {p}", a.topic);
    }
    Ok(all
        .into_iter()
        .filter(|p| a.partitions.is_empty() || a.partitions.contains(p))
        .map(|p| (a.topic.clone(), p))
        .collect())
}

fn start_offsets(
    bootstrap: &str,
    a: &ConsumeArgs,
    parts: &BTreeSet<(String, i32)>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let starts = list_offsets(bootstrap, parts, EARLIEST)?;
    let ends = list_offsets(bootstrap, parts, LATEST)?;
    let mut out = BTreeMap::new();
    let committed = match &a.group {
        Some(g) => Some(committed(bootstrap, g, &a.topic)?),
        None => None,
    };
    let by_time = match &a.from_time {
        Some(t) => Some(list_offsets(
            bootstrap,
            parts,
            crate::groups::reset::parse_datetime(t)?,
        )?),
        None => None,
    };
    for tp in parts {
        let (start, end) = (starts[tp], ends[tp]);
        let at = if let Some(c) = committed.as_ref().and_then(|c| c.get(&tp.1)) {
            *c
        } else if let Some(t) = &by_time {
            // -1: no record at or after the time.
            t.get(tp).copied().filter(|o| *o >= 0).unwrap_or(end)
        } else {
            match a.offset.as_str() {
                "earliest" | "beginning" | "start" => start,
                "latest" | "end" => end,
                v => match v.parse::<i64>() {
                    Ok(n) if n < 0 => (end + n).max(start),
                    Ok(n) => n.clamp(start, end),
                    Err(_) => {
                        anyhow::bail!("--offset {v:?}: use earliest, latest, an offset or -N")
                    }
                },
            }
        };
        out.insert(tp.clone(), at);
    }
    Ok(out)
}

fn decode(records: &mut Bytes) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    while records.len() >= 61 {
        let len = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        if len < 0 || records.len() < 12 + len as usize {
            break; // a partial batch at the end of a fetch
        }
        let set = RecordBatchDecoder::decode_with_custom_compression(
            records,
            Some(|r: &mut Bytes, c: Compression| {
                decompress(c as i16, r, MAX_DECOMPRESSED).map_err(|e| anyhow::anyhow!(e))
            }),
        )?;
        out.extend(set.records);
    }
    Ok(out)
}

fn text(b: &Option<Bytes>) -> String {
    b.as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn print(out: &mut impl Write, a: &ConsumeArgs, partition: i32, r: &Record) -> anyhow::Result<()> {
    if a.json {
        let mut v = json!({
            "topic": a.topic, "partition": partition, "offset": r.offset, "timestamp": r.timestamp,
        });
        let mut field = |name: &str, b: &Option<Bytes>| match b {
            None => v[name] = serde_json::Value::Null,
            Some(b) => match std::str::from_utf8(b) {
                Ok(t) => v[name] = json!(t),
                Err(_) => v[format!("{name}_hex")] = json!(hex(b)),
            },
        };
        field("key", &r.key);
        field("value", &r.value);
        let headers: Vec<_> = r
            .headers
            .iter()
            .map(|(k, val)| json!({"key": k.to_string(), "value": text(val)}))
            .collect();
        v["headers"] = json!(headers);
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let mut chars = a.format.chars().peekable();
    let mut line = String::new();
    while let Some(ch) = chars.next() {
        match (ch, chars.peek().copied()) {
            ('%', Some(f)) => {
                chars.next();
                match f {
                    't' => line.push_str(&a.topic),
                    'p' => line.push_str(&partition.to_string()),
                    'o' => line.push_str(&r.offset.to_string()),
                    'k' => line.push_str(&text(&r.key)),
                    'v' => line.push_str(&text(&r.value)),
                    'T' => line.push_str(&r.timestamp.to_string()),
                    'h' => line.push_str(
                        &r.headers
                            .iter()
                            .map(|(k, v)| format!("{k}={}", text(v)))
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    '%' => line.push('%'),
                    other => {
                        line.push('%');
                        line.push(other);
                    }
                }
            }
            ('\\', Some('n')) => {
                chars.next();
                line.push('\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                line.push('\t');
            }
            (c, _) => line.push(c),
        }
    }
    out.write_all(line.as_bytes())?;
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The group's committed offsets of `topic`'s partitions.
fn committed(bootstrap: &str, group: &str, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut c = coordinator(bootstrap, group)?;
    let r = c.send(
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
        2,
    )?;
    check(r.error_code, &format!("OffsetFetch of {group}"))?;
    let mut out = BTreeMap::new();
    for t in r.topics.into_iter().filter(|t| t.name.0.as_str() == topic) {
        for p in t.partitions {
            check(p.error_code, &format!("OffsetFetch of {group}"))?;
            if p.committed_offset >= 0 {
                out.insert(p.partition_index, p.committed_offset);
            }
        }
    }
    Ok(out)
}

fn commit(
    bootstrap: &str,
    group: &str,
    topic: &str,
    position: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<()> {
    let mut c = coordinator(bootstrap, group)?;
    let r = c.send(
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    position
                        .iter()
                        .map(|((_, p), o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                        })
                        .collect(),
                )]),
        2,
    )?;
    for t in r.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!(
                    "committing {group}'s offset of partition {}",
                    p.partition_index
                ),
            )?;
        }
    }
    Ok(())
}
