//! Shared pieces of the admin commands (`phxq group`, `phxq topic`, `phxq config`, ...),
//! which talk the Kafka protocol to any broker through [`crate::kafka_client`]: string
//! conversion, error checks, tables, broker addresses; ListOffsets by partition leader in
//! [`offsets`].

pub mod cluster;
pub mod consume;
pub mod offsets;
pub mod partitioner;
pub mod produce;
pub mod topics;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{FindCoordinatorRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::kafka_client::KafkaClient;

/// Kafka's "no error".
const NONE: i16 = 0;
/// Errors a command retries after a Metadata refresh: LEADER_NOT_AVAILABLE,
/// NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR.
pub const RETRIABLE: [i16; 4] = [5, 6, 7, 56];

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// An error when `code` is not NONE: "`what` failed: NAME (code)".
pub fn check(code: i16, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        code == NONE,
        "{what} failed: {} ({code})",
        phxq_protocol::errors::name(code)
    );
    Ok(())
}

/// Prints rows as left-aligned columns.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `host:port` of a broker as Metadata gives it.
/// A table (`rows[0]` its headers) as JSON: one object per row, keyed by the headers in
/// lower case with `-`, ` ` and `/` made `_` ("RATE/S" -> "rate_s"); "-" is null and
/// numbers are numbers, so `--json` output needs no second parser.
pub fn table_json(rows: &[Vec<String>]) -> serde_json::Value {
    let Some((headers, body)) = rows.split_first() else {
        return serde_json::Value::Array(Vec::new());
    };
    let keys: Vec<String> = headers
        .iter()
        .map(|h| h.to_lowercase().replace(['-', ' ', '/'], "_"))
        .collect();
    body.iter()
        .map(|r| {
            let row: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .zip(r)
                .map(|(k, v)| (k.clone(), cell_json(v)))
                .collect();
            serde_json::Value::Object(row)
        })
        .collect()
}

fn cell_json(v: &str) -> serde_json::Value {
    if v == "-" {
        serde_json::Value::Null
    } else if let Ok(i) = v.parse::<i64>() {
        i.into()
    } else {
        serde_json::Value::String(v.to_string())
    }
}

pub fn address(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connects to the coordinator of `group` (found through `bootstrap`).
pub fn coordinator(bootstrap: &str, group: &str) -> anyhow::Result<KafkaClient> {
    coordinator_of(bootstrap, group, 0)
}

/// Connects to the coordinator of `key`: a group (`key_type` 0) or a transactional id (1).
pub fn coordinator_of(bootstrap: &str, key: &str, key_type: i8) -> anyhow::Result<KafkaClient> {
    let mut c = KafkaClient::connect(bootstrap)?;
    let r = c.send(
        &FindCoordinatorRequest::default()
            .with_key(s(key))
            .with_key_type(key_type),
        1,
    )?;
    check(r.error_code, "FindCoordinator")?;
    let addr = address(&r.host, r.port);
    if addr == c.addr() {
        return Ok(c);
    }
    KafkaClient::connect(&addr).or_else(|_| KafkaClient::connect(bootstrap))
}

/// Metadata of `topics` (None: every topic), without creating any.
pub fn metadata(
    c: &mut KafkaClient,
    topics: Option<&[String]>,
) -> anyhow::Result<Vec<MetadataResponseTopic>> {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    Ok(c.send(&req, 12)?.topics)
}

/// Metadata of one existing topic (an error if it does not exist).
pub fn topic_metadata(c: &mut KafkaClient, topic: &str) -> anyhow::Result<MetadataResponseTopic> {
    let t = metadata(c, Some(&[topic.to_string()]))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no Metadata answer for {topic}"))?;
    check(t.error_code, &format!("Metadata of {topic}"))?;
    Ok(t)
}
