//! The message browser (`/console/messages?topic=&partition=&offset=|timestamp=&limit=`):
//! up to [`MAX_RECORDS`] records of one partition this broker leads, from an offset, from
//! the first record at or after a time (the ListOffsets lookup), or by default the last
//! `limit` ones; at most [`MAX_READ_BYTES`] of batches are read per request. With the ACL
//! authorizer on it answers 403: the console has no login, so it cannot check who reads.
//!
//! Keys, values and headers are shown as text when they are UTF-8 without control
//! characters, otherwise escaped byte by byte (`\xNN`, printable ASCII as is); each is cut
//! after [`MAX_SHOWN`] bytes, saying how many were left out. The HTML escapes all of it.

use std::sync::Arc;

use bytes::BytesMut;
use maud::{html, Markup};
use phxq_protocol::batch::{self, BatchHeader};
use phxq_protocol::records::{parse_record_fields, plain_records};
use phxq_replication::{PartitionId, ReadLimit, StoreGroup};
use serde::Serialize;

use super::layout::{href, page, time};
use super::query::Query;
use super::Failure;
use crate::broker::Broker;
use crate::groups::reset::parse_datetime;
use crate::handlers::list_offsets;
use phxq_protocol::errors;

/// Most records one request shows.
pub const MAX_RECORDS: i64 = 100;
/// Records shown when the request does not say.
pub const DEFAULT_RECORDS: i64 = 20;
/// Most batch bytes one request reads (the first batch is read whole regardless).
pub const MAX_READ_BYTES: usize = 1 << 20;
/// Bytes shown of one key, value or header value.
pub const MAX_SHOWN: usize = 1024;
/// Most bytes one compressed batch may expand to here.
const MAX_DECOMPRESSED: usize = 16 << 20;

/// A key, value or header value as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shown {
    Null,
    /// UTF-8 text; `cut` bytes left out at the end.
    Text {
        text: String,
        cut: usize,
    },
    /// Not clean text: every byte escaped (`\xNN`, `\n`, printable ASCII as is).
    Escaped {
        text: String,
        cut: usize,
    },
}

/// How `bytes` is shown, at most `max` of them.
pub fn show(bytes: Option<&[u8]>, max: usize) -> Shown {
    let Some(b) = bytes else {
        return Shown::Null;
    };
    match std::str::from_utf8(b) {
        Ok(t)
            if !t
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            let mut end = max.min(t.len());
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            Shown::Text {
                text: t[..end].to_string(),
                cut: t.len() - end,
            }
        }
        _ => {
            let end = max.min(b.len());
            Shown::Escaped {
                text: b[..end].escape_ascii().to_string(),
                cut: b.len() - end,
            }
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct MessagesView {
    /// Every topic, for the form.
    pub topics: Vec<String>,
    pub request: Request,
    /// None until a topic is chosen.
    pub result: Option<Browse>,
}

/// The request as understood (the form shows it back).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Request {
    pub topic: Option<String>,
    pub partition: i32,
    pub offset: Option<i64>,
    pub timestamp: Option<String>,
    pub limit: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Browse {
    pub partitions: i32,
    pub log_start: i64,
    pub high_watermark: i64,
    /// The first offset looked at.
    pub start: i64,
    pub records: Vec<RecordRow>,
    /// Where the next page starts, when there are more records.
    pub next: Option<i64>,
    /// Something the reader should know (an offset moved into range, the byte budget).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordRow {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Shown,
    pub value: Shown,
    pub headers: Vec<(Shown, Shown)>,
}

/// The records of one stored batch as shown, in offset order. phxq's own record parser
/// keeps header keys as bytes and duplicate header keys, as they were produced.
fn batch_rows(h: &BatchHeader, batch: &[u8]) -> Result<Vec<RecordRow>, String> {
    let bad = |e: phxq_protocol::records::RecordsError| {
        format!(
            "the stored batch at offset {} does not decode: {e}",
            h.base_offset
        )
    };
    let (_, plain) = plain_records(batch, MAX_DECOMPRESSED).map_err(bad)?;
    let fields = parse_record_fields(&plain, h.records_count).map_err(bad)?;
    let part = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &plain[r]);
    Ok(fields
        .iter()
        .map(|f| RecordRow {
            offset: h.base_offset + i64::from(f.offset_delta),
            timestamp: if h.is_log_append_time() {
                h.max_timestamp
            } else {
                h.base_timestamp.saturating_add(f.timestamp_delta)
            },
            key: show(part(&f.key), MAX_SHOWN),
            value: show(part(&f.value), MAX_SHOWN),
            headers: f
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        show(Some(&plain[k.clone()]), MAX_SHOWN),
                        show(part(v), MAX_SHOWN),
                    )
                })
                .collect(),
        })
        .collect())
}

fn parse(q: &Query) -> Result<Request, Failure> {
    let offset = q.int("offset", 0, i64::MAX)?;
    let timestamp = q.get("timestamp").map(str::to_string);
    if offset.is_some() && timestamp.is_some() {
        return Err(Failure::bad_request(
            "give an offset or a timestamp, not both",
        ));
    }
    Ok(Request {
        topic: q.get("topic").map(str::to_string),
        partition: q.int("partition", 0, i32::MAX.into())?.unwrap_or(0) as i32,
        offset,
        timestamp,
        limit: q.int("limit", 1, MAX_RECORDS)?.unwrap_or(DEFAULT_RECORDS),
    })
}

pub async fn gather(b: &Arc<Broker>, q: &Query) -> Result<MessagesView, Failure> {
    if b.acls.enabled {
        // The console has no login: it would show records past the ACLs.
        return Err(Failure {
            status: 403,
            message: "the message browser is off while the ACL authorizer is on \
                      ([security] authorizer = \"acl\"): read records with a Kafka client \
                      whose principal may READ the topic"
                .into(),
        });
    }
    let request = parse(q)?;
    let mut topics: Vec<String> = b.topics.all().iter().map(|t| t.name.clone()).collect();
    topics.sort();
    let result = match &request.topic {
        None => None,
        Some(topic) => Some(browse(b, topic, &request).await?),
    };
    Ok(MessagesView {
        topics,
        request,
        result,
    })
}

async fn browse(b: &Arc<Broker>, topic: &str, r: &Request) -> Result<Browse, Failure> {
    let since = match &r.timestamp {
        Some(t) => {
            Some(parse_datetime(t).map_err(|e| Failure::bad_request(format!("timestamp: {e}")))?)
        }
        None => None,
    };
    let t = b
        .topics
        .get(topic)
        .ok_or_else(|| Failure::not_found(format!("no topic {topic:?}")))?;
    let (pid, g) = t.partition(r.partition).ok_or_else(|| {
        Failure::not_found(format!(
            "topic {topic:?} has {} partitions (0 to {})",
            t.partition_count(),
            t.partition_count() - 1
        ))
    })?;
    let group = b.leading(g).map_err(|code| {
        Failure::unavailable(format!(
            "this broker does not serve partition {} of {topic:?} ({}); its leader is node {}",
            r.partition,
            errors::name(code),
            b.replicas(g)
                .leader
                .map_or("none".into(), |l| l.to_string())
        ))
    })?;
    let offsets = group.offsets(pid).ok_or_else(|| {
        Failure::not_found(format!(
            "partition {} of {topic:?} is not here",
            r.partition
        ))
    })?;
    let (log_start, hw) = (offsets.log_start_offset, offsets.high_watermark);
    let mut notes = Vec::new();
    let start = match (r.offset, since) {
        (Some(o), _) if o < log_start => {
            notes.push(format!(
                "offset {o} is before the log start; starting at {log_start}"
            ));
            log_start
        }
        (Some(o), _) if o > hw => {
            notes.push(format!(
                "offset {o} is past the high watermark; starting at {hw}"
            ));
            hw
        }
        (Some(o), _) => o,
        (None, Some(ts)) => match list_offsets::lookup(&group, pid, ts) {
            Ok(Some((o, _))) => o,
            Ok(None) => {
                notes.push("no record at or after that time".into());
                hw
            }
            Err(code) => {
                return Err(Failure::unavailable(format!(
                    "cannot look up the time: {}",
                    errors::name(code)
                )))
            }
        },
        (None, None) => (hw - r.limit).max(log_start),
    };
    let limit = r.limit as usize;
    let read = tokio::task::spawn_blocking(move || read_records(&group, pid, start, hw, limit))
        .await
        .map_err(|e| Failure::unavailable(format!("the read failed: {e}")))?
        .map_err(|e| Failure::unavailable(format!("cannot read the partition: {e}")))?;
    if read.budget_spent {
        notes.push(format!(
            "stopped after reading {} KiB of batches; continue from the next offset",
            MAX_READ_BYTES >> 10
        ));
    }
    Ok(Browse {
        partitions: t.partition_count(),
        log_start,
        high_watermark: hw,
        start,
        next: (read.next < hw).then_some(read.next),
        records: read.records,
        notes,
    })
}

struct Read {
    records: Vec<RecordRow>,
    /// The offset after the last one looked at.
    next: i64,
    budget_spent: bool,
}

/// Reads up to `limit` records of `pid` from `start` (below `hw`), at most
/// [`MAX_READ_BYTES`] of batches (blocking I/O).
fn read_records(
    group: &StoreGroup,
    pid: PartitionId,
    start: i64,
    hw: i64,
    limit: usize,
) -> Result<Read, String> {
    let mut records = Vec::new();
    let mut at = start;
    let mut spent = 0usize;
    while records.len() < limit && at < hw {
        if spent >= MAX_READ_BYTES {
            return Ok(Read {
                records,
                next: at,
                budget_spent: true,
            });
        }
        let mut buf = BytesMut::new();
        let r = group
            .read(
                pid,
                at,
                ReadLimit::at_least_one_batch(MAX_READ_BYTES - spent),
                &mut buf,
            )
            .map_err(|e| e.to_string())?;
        if r.batches == 0 {
            break;
        }
        spent += r.bytes;
        let buf = buf.freeze();
        let batches =
            batch::split(&buf).map_err(|e| format!("a stored batch is malformed: {e}"))?;
        let before = at;
        for (range, h) in batches {
            let next = h.last_offset() + 1;
            if next <= at {
                continue;
            }
            if !h.is_control() {
                for rec in batch_rows(&h, &buf[range])? {
                    if rec.offset >= at && records.len() < limit {
                        let offset = rec.offset;
                        records.push(rec);
                        // A page that stops inside a batch continues after its last record.
                        if records.len() == limit {
                            return Ok(Read {
                                records,
                                next: offset + 1,
                                budget_spent: false,
                            });
                        }
                    }
                }
            }
            at = next;
        }
        if at == before {
            // The read returned nothing at or after `at`: stop rather than ask again.
            break;
        }
    }
    Ok(Read {
        records,
        next: at,
        budget_spent: false,
    })
}

fn shown(s: &Shown) -> Markup {
    match s {
        Shown::Null => html! { span.null { "null" } },
        Shown::Text { text, cut } => html! {
            span.text { (text) } @if *cut > 0 { span.cut { "… (" (cut) " more bytes)" } }
        },
        Shown::Escaped { text, cut } => html! {
            span.escaped title="not UTF-8 text: bytes escaped" { (text) } @if *cut > 0 { span.cut { "… (" (cut) " more bytes)" } }
        },
    }
}

pub fn render(v: &MessagesView) -> Markup {
    let r = &v.request;
    let body = html! {
        form.browse method="get" action="/console/messages" {
            label { "Topic "
                select name="topic" {
                    @for t in &v.topics {
                        option value=(t) selected[r.topic.as_deref() == Some(t.as_str())] { (t) }
                    }
                }
            }
            label { "Partition " input type="number" name="partition" min="0" value=(r.partition); }
            label { "From offset " input type="number" name="offset" min="0" value=[r.offset]; }
            label { "or time " input type="text" name="timestamp" placeholder="2026-01-31T12:00:00Z or ms" value=[r.timestamp.as_deref()]; }
            label { "Records " input type="number" name="limit" min="1" max=(MAX_RECORDS) value=(r.limit); }
            button type="submit" { "Show" }
        }
        @if let (Some(topic), Some(res)) = (&r.topic, &v.result) {
            p.note {
                "Partition " (r.partition) " of " a href=(href("/console/topic", &[("name", topic)])) { (topic) }
                ": log start " (res.log_start) ", high watermark " (res.high_watermark)
                ", showing " (res.records.len()) " from offset " (res.start) "."
            }
            @for n in &res.notes { p.note { (n) } }
            @if res.records.is_empty() {
                p { "No records." }
            } @else {
                table #records {
                    thead { tr { th { "Offset" } th { "Timestamp" } th { "Key" } th { "Value" } th { "Headers" } } }
                    tbody {
                        @for rec in &res.records {
                            tr {
                                td.num { (rec.offset) }
                                td.time { (time(rec.timestamp)) }
                                td.key { (shown(&rec.key)) }
                                td.value { (shown(&rec.value)) }
                                td.headers {
                                    @for (k, val) in &rec.headers {
                                        div { (shown(k)) " = " (shown(val)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = res.next {
                p {
                    a.next href=(href("/console/messages", &[
                        ("topic", topic),
                        ("partition", &r.partition.to_string()),
                        ("offset", &next.to_string()),
                        ("limit", &r.limit.to_string()),
                    ])) { "Next records from offset " (next) " →" }
                }
            }
        }
    };
    page("messages", "Messages", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_text_escaped_and_cut() {
        assert_eq!(show(None, 10), Shown::Null);
        assert_eq!(
            show(Some(b"hello"), 10),
            Shown::Text {
                text: "hello".into(),
                cut: 0
            }
        );
        // Not UTF-8: escaped byte by byte.
        assert_eq!(
            show(Some(&[0x00, 0xff, b'a', b'"']), 10),
            Shown::Escaped {
                text: "\\x00\\xffa\\\"".into(),
                cut: 0
            }
        );
        // UTF-8 with a control character: escaped too (it would be invisible).
        assert!(matches!(
            show(Some(b"a\x1b[31m"), 10),
            Shown::Escaped { .. }
        ));
        // Cut on a character boundary, with the bytes left out counted.
        assert_eq!(
            show(Some("ééé".as_bytes()), 3),
            Shown::Text {
                text: "é".into(),
                cut: 4
            }
        );
        assert_eq!(
            show(Some(&[0xff; 5]), 2),
            Shown::Escaped {
                text: "\\xff\\xff".into(),
                cut: 3
            }
        );
    }

    fn view(records: Vec<RecordRow>) -> MessagesView {
        MessagesView {
            topics: vec!["t".into(), "x\"><img src=x>".into()],
            request: Request {
                topic: Some("t".into()),
                partition: 0,
                offset: Some(0),
                timestamp: None,
                limit: 2,
            },
            result: Some(Browse {
                partitions: 1,
                log_start: 0,
                high_watermark: 5,
                start: 0,
                next: Some(2),
                records,
                notes: vec![],
            }),
        }
    }

    #[test]
    fn hostile_records_come_out_inert() {
        let row = RecordRow {
            offset: 0,
            timestamp: 0,
            key: show(Some(b"<script>alert(1)</script>"), MAX_SHOWN),
            value: show(Some(b"<img src=x onerror=alert(1)>"), MAX_SHOWN),
            headers: vec![(
                show(Some(b"h<b>"), MAX_SHOWN),
                show(Some(&[0xde, 0xad, b'<', 0xbe, 0xef]), MAX_SHOWN),
            )],
        };
        let bin = RecordRow {
            offset: 1,
            timestamp: 1_700_000_000_000,
            key: Shown::Null,
            value: show(Some(&[0x00, 0x01, 0xfe, 0xff]), MAX_SHOWN),
            headers: vec![],
        };
        let html = render(&view(vec![row, bin])).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("\\xde\\xad&lt;\\xbe\\xef"), "{html}");
        assert!(html.contains("\\x00\\x01\\xfe\\xff"), "{html}");
        assert!(html.contains("2023-11-14 22:13:20.000 UTC"), "{html}");
        assert!(
            html.contains("/console/messages?topic=t&amp;partition=0&amp;offset=2&amp;limit=2"),
            "{html}"
        );
        // The JSON twin: serde escapes strings; the kinds say how to read them.
        let json = serde_json::to_value(view(vec![])).unwrap();
        assert_eq!(json["result"]["next"], 2);
    }

    #[test]
    fn long_values_are_cut_with_a_marker() {
        let big = vec![b'a'; MAX_SHOWN + 10];
        let row = RecordRow {
            offset: 0,
            timestamp: 0,
            key: Shown::Null,
            value: show(Some(&big), MAX_SHOWN),
            headers: vec![],
        };
        let html = render(&view(vec![row])).into_string();
        assert!(html.contains("… (10 more bytes)"), "{html}");
    }

    #[test]
    fn bad_parameters_are_400s() {
        let q = |s: &str| parse(&Query::parse(s).unwrap());
        assert_eq!(q("topic=t&offset=1&timestamp=5").unwrap_err().status, 400);
        assert_eq!(q("topic=t&limit=101").unwrap_err().status, 400);
        assert_eq!(q("topic=t&limit=0").unwrap_err().status, 400);
        assert_eq!(q("topic=t&partition=-1").unwrap_err().status, 400);
        assert_eq!(q("topic=t&offset=abc").unwrap_err().status, 400);
        let r = q("topic=t").unwrap();
        assert_eq!((r.partition, r.limit, r.offset), (0, DEFAULT_RECORDS, None));
    }
}
