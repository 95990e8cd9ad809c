//! A share group's dead-letter topic (after KIP-1191, which Kafka has not shipped yet):
//! records a member rejected, or that reached the delivery-count limit, are written to
//! the topic named by the group config `errors.deadletterqueue.topic.name`, with where
//! they came from in headers.
//!
//! Rules:
//! - Opt-in per group. The topic must exist and its name must start with the broker's
//!   `[groups.share] dlq_topic_prefix` (Kafka's `errors.deadletterqueue.topic.name.prefix`,
//!   "dlq."), so a group cannot be pointed at an arbitrary business topic.
//! - Each dead letter carries the headers [`H_GROUP`], [`H_TOPIC`], [`H_PARTITION`],
//!   [`H_OFFSET`], [`H_DELIVERY_COUNT`] and [`H_REASON`] (`rejected` or
//!   `delivery_count_limit`); with `errors.deadletterqueue.copy.record.enable` (default
//!   true in phxq, see the README) also the original key, value, headers and timestamp.
//!   An offset whose record is gone (compacted, a control record) gets the headers alone.
//! - It goes to partition `source partition % dead-letter partitions`, so the dead letters
//!   of one partition stay in order.
//! - Delivery is at most once: the records are archived (and that is durable) before the
//!   dead letters are written; a dead letter that cannot be written is logged and counted
//!   (`phxq_share_dead_letters_failed`), the record stays archived. A broker crash between
//!   the two loses the dead letters of that moment.
//!
//! [`build`] is pure (unit-tested); [`run`] is the writer task, fed by the share-partition
//! manager after each durable change.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, TimestampType};
use tokio::sync::mpsc;
use tracing::warn;

use super::manager::ShareKey;
use super::partition::{ArchiveCause, ArchivedRecord};

/// Group configs (KIP-1191's names).
pub const TOPIC_NAME: &str = "errors.deadletterqueue.topic.name";
pub const COPY_RECORD: &str = "errors.deadletterqueue.copy.record.enable";

pub const H_GROUP: &str = "__dlq.errors.group.id";
pub const H_TOPIC: &str = "__dlq.errors.topic";
pub const H_PARTITION: &str = "__dlq.errors.partition";
pub const H_OFFSET: &str = "__dlq.errors.offset";
pub const H_DELIVERY_COUNT: &str = "__dlq.errors.delivery.count";
pub const H_REASON: &str = "__dlq.errors.reason";

/// Dead letters waiting to be written; beyond this the newest are dropped (and counted).
pub const QUEUE: usize = 1024;
/// Bytes of the source log read at once to find the records.
const READ_BYTES: usize = 1 << 20;

/// Archived records of one share-partition, handed to the writer.
#[derive(Clone, Debug)]
pub struct DeadLetters {
    pub key: ShareKey,
    pub records: Vec<ArchivedRecord>,
}

/// Where a group's dead letters go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub topic: String,
    pub copy_record: bool,
}

fn reason(c: ArchiveCause) -> &'static str {
    match c {
        ArchiveCause::Rejected => "rejected",
        ArchiveCause::DeliveryCountLimit => "delivery_count_limit",
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The dead letters of `archived` (offsets of `key`'s partition), from `batches` (whole
/// batches of that partition's log covering them, in order), at time `now`.
pub fn build(
    key: &ShareKey,
    batches: &[u8],
    archived: &[ArchivedRecord],
    copy_record: bool,
    now: i64,
) -> Result<Vec<Record>, String> {
    let wanted: BTreeMap<i64, &ArchivedRecord> = archived.iter().map(|a| (a.offset, a)).collect();
    let mut found: BTreeMap<i64, Record> = BTreeMap::new();
    if copy_record {
        for (range, h) in phxq_protocol::batch::split(batches).map_err(|e| e.to_string())? {
            if h.is_control()
                || wanted
                    .range(h.base_offset..=h.last_offset())
                    .next()
                    .is_none()
            {
                continue;
            }
            let (h, plain) = phxq_protocol::records::plain_records(&batches[range], 64 << 20)
                .map_err(|e| e.to_string())?;
            let fields = phxq_protocol::records::parse_record_fields(&plain, h.records_count)
                .map_err(|e| e.to_string())?;
            for f in fields {
                let offset = h.base_offset + i64::from(f.offset_delta);
                if !wanted.contains_key(&offset) {
                    continue;
                }
                let mut headers = kafka_protocol::indexmap::IndexMap::new();
                for (k, v) in &f.headers {
                    headers.insert(
                        s(String::from_utf8_lossy(&plain[k.clone()])),
                        v.clone().map(|v| plain.slice(v)),
                    );
                }
                found.insert(
                    offset,
                    Record {
                        transactional: false,
                        control: false,
                        delete_horizon: false,
                        partition_leader_epoch: -1,
                        producer_id: -1,
                        producer_epoch: -1,
                        timestamp_type: TimestampType::Creation,
                        offset: 0,
                        sequence: -1,
                        timestamp: h.base_timestamp + f.timestamp_delta,
                        key: f.key.map(|k| plain.slice(k)),
                        value: f.value.map(|v| plain.slice(v)),
                        headers,
                    },
                );
            }
        }
    }
    Ok(wanted
        .values()
        .enumerate()
        .map(|(i, a)| {
            let mut r = found.remove(&a.offset).unwrap_or(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: now,
                key: None,
                value: None,
                headers: Default::default(),
            });
            r.offset = i as i64;
            for (k, v) in [
                (H_GROUP, key.0.clone()),
                (H_TOPIC, key.1.clone()),
                (H_PARTITION, key.2.to_string()),
                (H_OFFSET, a.offset.to_string()),
                (H_DELIVERY_COUNT, a.delivery_count.to_string()),
                (H_REASON, reason(a.cause).to_string()),
            ] {
                r.headers.insert(s(k), Some(Bytes::from(v)));
            }
            r
        })
        .collect())
}

/// What the writer needs of the broker.
pub trait Sink: Send + Sync {
    /// The group's dead-letter topic, if it has one.
    fn target(&self, group: &str) -> Option<Target>;
    /// Whole batches of `topic`'s `partition` from `offset` (this broker leads it).
    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, String>;
    /// Writes `records` as one batch to `topic`, partition `hint % partitions`, acks=all.
    fn produce(
        &self,
        topic: String,
        hint: i32,
        records: Vec<Record>,
    ) -> futures::future::BoxFuture<'_, Result<(), String>>;
    /// A dead letter could not be written (or was dropped): counted.
    fn failed(&self, n: u64);
}

/// Reads the batches holding `archived` (sorted by offset) from the source partition.
fn read_covering(
    sink: &dyn Sink,
    key: &ShareKey,
    archived: &[ArchivedRecord],
) -> Result<Bytes, String> {
    let (Some(first), Some(last)) = (archived.first(), archived.last()) else {
        return Ok(Bytes::new());
    };
    let mut out = bytes::BytesMut::new();
    let mut from = first.offset;
    while from <= last.offset {
        let chunk = sink.read(&key.1, key.2, from, READ_BYTES)?;
        let batches = phxq_protocol::batch::split(&chunk).map_err(|e| e.to_string())?;
        let Some((_, h)) = batches.last() else {
            break;
        };
        from = h.last_offset() + 1;
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// The writer task: writes each share-partition's dead letters as they come.
pub async fn run(mut rx: mpsc::Receiver<DeadLetters>, sink: std::sync::Weak<dyn Sink>) {
    while let Some(mut d) = rx.recv().await {
        let Some(sink) = sink.upgrade() else {
            return;
        };
        let Some(target) = sink.target(&d.key.0) else {
            continue;
        };
        d.records.sort_by_key(|a| a.offset);
        let n = d.records.len() as u64;
        let (group, topic, partition) = d.key.clone();
        let records = read_covering(sink.as_ref(), &d.key, &d.records).and_then(|batches| {
            build(
                &d.key,
                &batches,
                &d.records,
                target.copy_record,
                crate::groups::offsets::now_ms(),
            )
        });
        let result = match records {
            Ok(records) => sink.produce(target.topic.clone(), partition, records).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                tracing::info!(%group, %topic, partition, dead_letters = n, dlq = %target.topic, "dead letters written")
            }
            Err(e) => {
                sink.failed(n);
                warn!(%group, %topic, partition, dead_letters = n, dlq = %target.topic, "dead letters not written: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

    fn record(offset: i64, key: &str, value: &str) -> Record {
        let mut headers = kafka_protocol::indexmap::IndexMap::new();
        headers.insert(s("h"), Some(Bytes::from_static(b"1")));
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 1000 + offset,
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from(value.to_string())),
            headers,
        }
    }

    fn batch(base: i64, n: i64, compression: Compression) -> Bytes {
        let records: Vec<Record> = (base..base + n)
            .map(|o| record(o, &format!("k{o}"), &format!("v{o}")))
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn dead_letters_copy_the_record_and_say_where_it_came_from() {
        let mut log = bytes::BytesMut::new();
        log.extend_from_slice(&batch(0, 3, Compression::None));
        log.extend_from_slice(&batch(3, 3, Compression::Gzip));
        let key = ("g".to_string(), "t".to_string(), 2);
        let archived = [
            ArchivedRecord {
                offset: 4,
                delivery_count: 5,
                cause: ArchiveCause::DeliveryCountLimit,
            },
            ArchivedRecord {
                offset: 1,
                delivery_count: 1,
                cause: ArchiveCause::Rejected,
            },
            ArchivedRecord {
                offset: 9,
                delivery_count: 2,
                cause: ArchiveCause::Rejected,
            },
        ];
        let out = build(&key, &log, &archived, true, 77).unwrap();
        assert_eq!(out.len(), 3);
        let h = |r: &Record, k: &str| {
            r.headers
                .get(&s(k))
                .cloned()
                .flatten()
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        };
        assert_eq!(out[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(out[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(out[0].timestamp, 1001);
        assert_eq!(
            h(&out[0], "h").as_deref(),
            Some("1"),
            "original headers kept"
        );
        assert_eq!(h(&out[0], H_REASON).as_deref(), Some("rejected"));
        assert_eq!(h(&out[1], H_OFFSET).as_deref(), Some("4"));
        assert_eq!(h(&out[1], H_DELIVERY_COUNT).as_deref(), Some("5"));
        assert_eq!(
            h(&out[1], H_REASON).as_deref(),
            Some("delivery_count_limit")
        );
        assert_eq!(
            out[1].value.as_deref(),
            Some(&b"v4"[..]),
            "from the compressed batch"
        );
        assert_eq!(h(&out[2], H_PARTITION).as_deref(), Some("2"));
        assert_eq!(
            out[2].value, None,
            "an offset without a record: headers only"
        );
        assert_eq!(out[2].timestamp, 77);
        assert_eq!(
            out.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        // Without copying: headers only.
        let bare = build(&key, &log, &archived, false, 77).unwrap();
        assert!(bare.iter().all(|r| r.value.is_none() && r.key.is_none()));
        assert_eq!(h(&bare[0], H_GROUP).as_deref(), Some("g"));
        assert_eq!(h(&bare[0], H_TOPIC).as_deref(), Some("t"));
        // Garbage is an error, not a panic.
        assert!(build(&key, b"\x00\x01garbage", &archived, true, 0).is_err());
    }
}
