//! The records inside a v2 record batch, for what reads and copies them without going
//! through a full decode: the produce check of keys on compacted topics and the log
//! cleaner, which keeps some records of a batch and drops the others.
//!
//! A record on the wire (after the batch's records are decompressed):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint (-1: null) | key | valueLength varint (-1: null) | value | headers
//! ```
//!
//! [`rebuild`] writes a batch holding a subset of another's records: the header is kept
//! (base offset, last offset delta, base and max timestamps, producer fields), the kept
//! records are copied byte for byte (their offset and timestamp deltas stay relative to
//! the same base), the record count, length and CRC are recomputed and the records are
//! compressed again with the batch's codec. Offsets of kept records are so unchanged, and
//! a batch whose last records were dropped still ends at its old last offset, as Kafka's
//! cleaner writes them.

use std::io::Write;
use std::ops::Range;

use bytes::Bytes;

use crate::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::decompress::{decompress, DecompressError};

/// Offset of the first byte covered by the CRC (the attributes field).
const CRC_START: usize = 21;

/// Why a batch's records could not be read or written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    #[error("record batch header: {0}")]
    Header(#[from] crate::batch::BatchError),
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error("malformed record {index}: {what}")]
    Malformed { index: usize, what: &'static str },
    #[error("compressing records failed: {0}")]
    Compress(String),
}

/// One record of a batch, as positions in the batch's decompressed records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRef {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key bytes; None for a null key.
    pub key: Option<Range<usize>>,
    /// True when the value is null (a tombstone).
    pub null_value: bool,
    /// The whole record, length prefix included.
    pub raw: Range<usize>,
}

/// Reads a zigzag varint of at most `max_bytes` bytes at `*pos`.
fn varint(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut v: u64 = 0;
    for i in 0..max_bytes {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// The decompressed records of `batch` (at most `cap` bytes of them) and the header.
pub fn plain_records(batch: &[u8], cap: usize) -> Result<(BatchHeader, Bytes), RecordsError> {
    let h = BatchHeader::parse(batch)?;
    let end = h.total_len().min(batch.len());
    if end < HEADER_LEN {
        return Err(crate::batch::BatchError::Truncated(batch.len()).into());
    }
    let plain = decompress(h.compression(), &batch[HEADER_LEN..end], cap)?;
    Ok((h, plain))
}

/// One record's fields, as positions in the batch's decompressed records (what the web
/// console's message browser shows). Header keys are bytes, as on the wire; duplicate
/// header keys are kept, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFields {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    pub headers: Vec<(Range<usize>, Option<Range<usize>>)>,
}

/// A record's fields up to its value, read at `*pos` (which is left after the value length).
struct Head {
    start: usize,
    end: usize,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

fn head(plain: &[u8], pos: &mut usize, index: usize) -> Result<Head, RecordsError> {
    let bad = |what| RecordsError::Malformed { index, what };
    let start = *pos;
    let len = varint(plain, pos, 5).ok_or(bad("length"))?;
    if len < 0 || *pos + len as usize > plain.len() {
        return Err(bad("length past the end of the records"));
    }
    let end = *pos + len as usize;
    let body = &plain[..end];
    *pos += 1; // attributes
    let timestamp_delta = varint(body, pos, 10).ok_or(bad("timestamp delta"))?;
    let offset_delta = varint(body, pos, 5).ok_or(bad("offset delta"))?;
    let key_len = varint(body, pos, 5).ok_or(bad("key length"))?;
    let key = if key_len < 0 {
        None
    } else {
        let k = *pos..*pos + key_len as usize;
        if k.end > end {
            return Err(bad("key past the end of the record"));
        }
        *pos = k.end;
        Some(k)
    };
    let value_len = varint(body, pos, 5).ok_or(bad("value length"))?;
    let value = if value_len < 0 {
        None
    } else {
        let v = *pos..*pos + value_len as usize;
        if v.end > end {
            return Err(bad("value past the end of the record"));
        }
        Some(v)
    };
    Ok(Head {
        start,
        end,
        timestamp_delta,
        offset_delta: i32::try_from(offset_delta).map_err(|_| bad("offset delta"))?,
        key,
        value,
    })
}

/// Splits decompressed records into `count` records.
pub fn parse_records(plain: &[u8], count: i32) -> Result<Vec<RecordRef>, RecordsError> {
    let count = count.max(0) as usize;
    // Never trust the count for an allocation: a record takes at least 7 bytes.
    let mut out = Vec::with_capacity(count.min(plain.len() / 7 + 1));
    let mut pos = 0;
    for index in 0..count {
        let h = head(plain, &mut pos, index)?;
        out.push(RecordRef {
            offset_delta: h.offset_delta,
            timestamp_delta: h.timestamp_delta,
            key: h.key,
            null_value: h.value.is_none(),
            raw: h.start..h.end,
        });
        pos = h.end;
    }
    Ok(out)
}

/// Splits decompressed records into `count` records with every field, headers included
/// (checked to lie within their record).
pub fn parse_record_fields(plain: &[u8], count: i32) -> Result<Vec<RecordFields>, RecordsError> {
    let count = count.max(0) as usize;
    let mut out = Vec::with_capacity(count.min(plain.len() / 7 + 1));
    let mut pos = 0;
    for index in 0..count {
        let bad = |what| RecordsError::Malformed { index, what };
        let h = head(plain, &mut pos, index)?;
        let body = &plain[..h.end];
        pos = h.value.as_ref().map_or(pos, |v| v.end);
        let n = varint(body, &mut pos, 5).ok_or(bad("header count"))?;
        if n < 0 {
            return Err(bad("negative header count"));
        }
        // A header takes at least 2 bytes: never trust the count for an allocation.
        let mut headers = Vec::with_capacity((n as usize).min((h.end - pos) / 2));
        for _ in 0..n {
            let key_len = varint(body, &mut pos, 5).ok_or(bad("header key length"))?;
            if key_len < 0 || pos + key_len as usize > h.end {
                return Err(bad("header key past the end of the record"));
            }
            let key = pos..pos + key_len as usize;
            pos = key.end;
            let value_len = varint(body, &mut pos, 5).ok_or(bad("header value length"))?;
            let value = if value_len < 0 {
                None
            } else {
                let v = pos..pos + value_len as usize;
                if v.end > h.end {
                    return Err(bad("header value past the end of the record"));
                }
                pos = v.end;
                Some(v)
            };
            headers.push((key, value));
        }
        out.push(RecordFields {
            offset_delta: h.offset_delta,
            timestamp_delta: h.timestamp_delta,
            key: h.key,
            value: h.value,
            headers,
        });
        pos = h.end;
    }
    Ok(out)
}

/// Indexes (in the batch) of the records of `batch` that have no key, reading at most
/// `cap` decompressed bytes.
pub fn keyless_records(batch: &[u8], cap: usize) -> Result<Vec<i32>, RecordsError> {
    let (h, plain) = plain_records(batch, cap)?;
    Ok(parse_records(&plain, h.records_count)?
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i as i32)
        .collect())
}

/// The xerial snappy stream header (`SnappyOutputStream`), what Java clients write.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const XERIAL_BLOCK: usize = 32 * 1024;

/// Compresses records with a batch codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub fn compress(codec: i16, data: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let err = |e: std::io::Error| RecordsError::Compress(e.to_string());
    match codec {
        0 => Ok(data.to_vec()),
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(data).map_err(err)?;
            gz.finish().map_err(err)
        }
        2 => {
            let mut out = XERIAL_HEADER.to_vec();
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let c = enc
                    .compress_vec(chunk)
                    .map_err(|e| RecordsError::Compress(e.to_string()))?;
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
            Ok(out)
        }
        3 => {
            let mut enc = lz4::EncoderBuilder::new().build(Vec::new()).map_err(err)?;
            enc.write_all(data).map_err(err)?;
            let (out, r) = enc.finish();
            r.map_err(err)?;
            Ok(out)
        }
        4 => zstd::stream::encode_all(data, 3).map_err(err),
        other => Err(DecompressError::UnknownCodec(other).into()),
    }
}

/// A batch with the header of `batch` holding only `kept` of its records (taken from
/// `plain`, its decompressed records), compressed with its codec. See the module doc.
pub fn rebuild(batch: &[u8], plain: &[u8], kept: &[&RecordRef]) -> Result<Vec<u8>, RecordsError> {
    let h = BatchHeader::parse(batch)?;
    let mut body = Vec::with_capacity(kept.iter().map(|r| r.raw.len()).sum());
    for r in kept {
        let raw = plain.get(r.raw.clone()).ok_or(RecordsError::Malformed {
            index: 0,
            what: "record outside the records",
        })?;
        body.extend_from_slice(raw);
    }
    let records = compress(h.compression(), &body)?;
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&records);
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn record(offset: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // One batch: the encoder starts a new one where offset - sequence changes.
            sequence: offset as i32,
            timestamp: 1000 + offset,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records, &opts).unwrap();
        buf.to_vec()
    }

    /// A zigzag varint, as records carry their lengths and deltas.
    fn zz(v: i64) -> Vec<u8> {
        let mut u = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = vec![];
        loop {
            if u < 0x80 {
                out.push(u as u8);
                return out;
            }
            out.push((u as u8 & 0x7f) | 0x80);
            u >>= 7;
        }
    }

    /// One record's bytes, length prefix included.
    fn raw_record(
        offset_delta: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Vec<u8> {
        let field = |b: Option<&[u8]>| match b {
            None => zz(-1),
            Some(b) => [zz(b.len() as i64), b.to_vec()].concat(),
        };
        let mut body = vec![0u8];
        body.extend(zz(7));
        body.extend(zz(offset_delta));
        body.extend(field(key));
        body.extend(field(value));
        body.extend(zz(headers.len() as i64));
        for (k, v) in headers {
            body.extend(field(Some(k)));
            body.extend(field(*v));
        }
        [zz(body.len() as i64), body].concat()
    }

    #[test]
    fn record_fields_keep_every_header_as_bytes() {
        // Encoded by kafka-protocol, compressed: the fields come back where they are.
        let mut r = record(100, Some("k"), Some("value"));
        r.headers.insert("h".into(), Some(Bytes::from_static(b"x")));
        r.headers.insert("n".into(), None);
        let batch = encode(&[r, record(101, None, None)], Compression::Gzip);
        let (h, plain) = plain_records(&batch, 1 << 20).unwrap();
        let f = parse_record_fields(&plain, h.records_count).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(&plain[f[0].key.clone().unwrap()], b"k");
        assert_eq!(&plain[f[0].value.clone().unwrap()], b"value");
        let hs: Vec<_> = f[0]
            .headers
            .iter()
            .map(|(k, v)| (&plain[k.clone()], v.clone().map(|v| &plain[v])))
            .collect();
        assert_eq!(hs, vec![(&b"h"[..], Some(&b"x"[..])), (&b"n"[..], None)]);
        assert_eq!((f[1].key.clone(), f[1].value.clone()), (None, None));
        assert_eq!(f[1].offset_delta, 1);

        // Written by hand: a header key that is not UTF-8, and the same key twice.
        let plain = [
            raw_record(
                0,
                Some(b"\xff"),
                Some(b"v"),
                &[(b"\xfe\x00", Some(b"1")), (b"d", Some(b"2")), (b"d", None)],
            ),
            raw_record(1, None, Some(b""), &[]),
        ]
        .concat();
        let f = parse_record_fields(&plain, 2).unwrap();
        assert_eq!(f[0].headers.len(), 3);
        assert_eq!(&plain[f[0].headers[0].0.clone()], b"\xfe\x00");
        assert_eq!(&plain[f[0].headers[2].0.clone()], b"d");
        assert_eq!(f[0].headers[2].1, None);
        assert_eq!(f[1].value.clone().map(|v| v.len()), Some(0));
        // parse_records reads the same records.
        let refs = parse_records(&plain, 2).unwrap();
        assert_eq!(refs[0].key, f[0].key);
        assert!(!refs[1].null_value);

        // A header running past its record, or a count past the bytes: refused, no panic.
        let mut bad = raw_record(0, None, Some(b"v"), &[(b"key", Some(b"val"))]);
        let last = bad.len() - 1;
        bad[last - 3] = 40; // the header value length (zigzag 20)
        assert!(parse_record_fields(&bad, 1).is_err());
        let huge = raw_record(0, None, None, &[]);
        let mut huge = huge[..huge.len() - 1].to_vec();
        huge.extend(zz(i32::MAX as i64));
        huge[0] = zz(huge.len() as i64 - 1)[0];
        assert!(parse_record_fields(&huge, 1).is_err());
        assert!(parse_record_fields(&plain, 3).is_err());
    }

    #[test]
    fn a_rebuilt_batch_keeps_offsets_header_and_checks_out() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let recs = vec![
                record(100, Some("a"), Some("1")),
                record(101, None, Some("2")),
                record(102, Some("b"), None),
                record(103, Some("a"), Some("3")),
            ];
            let batch = encode(&recs, compression);
            assert_eq!(keyless_records(&batch, 1 << 20).unwrap(), vec![1]);
            let (h, plain) = plain_records(&batch, 1 << 20).unwrap();
            let parsed = parse_records(&plain, h.records_count).unwrap();
            assert_eq!(parsed.len(), 4);
            assert_eq!(&plain[parsed[0].key.clone().unwrap()], b"a");
            assert!(parsed[2].null_value && !parsed[0].null_value);
            assert_eq!(parsed[3].offset_delta, 3);
            // Keep the tombstone of b only: the batch still spans 100..=103.
            let out = rebuild(&batch, &plain, &[&parsed[2]]).unwrap();
            let h2 = crate::batch::BatchHeader::parse(&out).unwrap();
            assert_eq!(h2.base_offset, 100);
            assert_eq!(h2.last_offset_delta, 3);
            assert_eq!(h2.records_count, 1);
            assert_eq!(h2.max_timestamp, h.max_timestamp);
            assert_eq!(crc32c::crc32c(&out[CRC_START..]), h2.crc);
            let mut b = Bytes::from(out);
            let set = RecordBatchDecoder::decode(&mut b).unwrap();
            assert_eq!(set.records.len(), 1, "{compression:?}");
            assert_eq!(set.records[0].offset, 102);
            assert_eq!(set.records[0].key.as_deref(), Some(&b"b"[..]));
            assert_eq!(set.records[0].value, None);
            assert_eq!(set.records[0].timestamp, 1102);
        }
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let batch = encode(&[record(0, Some("k"), Some("v"))], Compression::None);
        let (h, plain) = plain_records(&batch, 1 << 20).unwrap();
        for cut in 0..plain.len() {
            assert!(parse_records(&plain[..cut], h.records_count).is_err());
        }
        assert!(parse_records(&plain, 2).is_err());
        assert!(parse_records(&[0xff; 12], 1).is_err());
        assert!(plain_records(&batch[..30], 1 << 20).is_err());
    }
}
