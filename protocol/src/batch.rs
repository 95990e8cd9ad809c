//! Record batches (magic v2) as they travel in Produce and Fetch.
//!
//! The broker stores the producer's bytes as they came and reads only the fixed
//! 61-byte header. The CRC32C covers `attributes..end`, not the base offset, the length,
//! the partition leader epoch or the magic byte, so the base offset can be patched in place
//! on the way out without re-encoding or re-checksumming.

/// Size of the fixed v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Offset of the first byte covered by the CRC (the attributes field).
const CRC_START: usize = 21;
/// Bytes before `batchLength` counts: base offset (8) and the length itself (4).
pub const LOG_OVERHEAD: usize = 12;

/// The fields of a v2 record batch header the broker needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `LOG_OVERHEAD + batch_length`.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Why a batch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record batch header is inconsistent: {0}")]
    Invalid(&'static str),
}

impl BatchHeader {
    /// Reads the header at the start of `buf` (no CRC check).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated(buf.len()));
        }
        let i16_at = |o: usize| i16::from_be_bytes([buf[o], buf[o + 1]]);
        let i32_at = |o: usize| i32::from_be_bytes(buf[o..o + 4].try_into().unwrap());
        let i64_at = |o: usize| i64::from_be_bytes(buf[o..o + 8].try_into().unwrap());
        let h = BatchHeader {
            base_offset: i64_at(0),
            batch_length: i32_at(8),
            partition_leader_epoch: i32_at(12),
            magic: buf[16] as i8,
            crc: i32_at(17) as u32,
            attributes: i16_at(21),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            producer_id: i64_at(43),
            producer_epoch: i16_at(51),
            base_sequence: i32_at(53),
            records_count: i32_at(57),
        };
        if h.magic != 2 {
            return Err(BatchError::UnsupportedMagic(h.magic));
        }
        Ok(h)
    }

    /// Total size of the batch in bytes, prefix included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    /// Offset of the last record relative to the batch's base offset.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    /// Sequence number of the last record, wrapping as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        ((self.base_sequence as i64 + self.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
    }
}

/// Checks one whole batch: header, declared length, record count and CRC.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(BatchError::Invalid("batch length shorter than the header"));
    }
    if h.total_len() != batch.len() {
        return Err(BatchError::Truncated(batch.len()));
    }
    if h.records_count < 0 || h.last_offset_delta < 0 {
        return Err(BatchError::Invalid("negative record count or offset delta"));
    }
    if h.records_count == 0 || h.last_offset_delta != h.records_count - 1 {
        return Err(BatchError::Invalid(
            "record count does not match last offset delta",
        ));
    }
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != h.crc {
        return Err(BatchError::CrcMismatch {
            expected: h.crc,
            actual,
        });
    }
    Ok(h)
}

/// Splits a `records` field (one or more concatenated batches) into whole batches,
/// validating each one.
pub fn split(records: &[u8]) -> Result<Vec<(std::ops::Range<usize>, BatchHeader)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated(rest.len()));
        }
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap());
        if len < 0 {
            return Err(BatchError::Invalid("negative batch length"));
        }
        let total = LOG_OVERHEAD + len as usize;
        if rest.len() < total {
            return Err(BatchError::Truncated(rest.len()));
        }
        let h = validate(&rest[..total])?;
        out.push((pos..pos + total, h));
        pos += total;
    }
    Ok(out)
}

/// Writes `base_offset` into the batch at the start of `batch`.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes `epoch` into the partition leader epoch field (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Records in a run of record batches (a fetched partition's, a produced one's); a
/// truncated last batch is not counted.
pub fn count_records(mut records: &[u8]) -> u64 {
    let mut n = 0u64;
    while let Ok(h) = BatchHeader::parse(records) {
        n += h.records_count.max(0) as u64;
        let len = h.total_len();
        if len == 0 || len > records.len() {
            break;
        }
        records = &records[len..];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn encode(records: &[Record], compression: Compression) -> BytesMut {
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records, &opts).unwrap();
        buf
    }

    fn record(offset: i64, ts: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 7,
            producer_epoch: 1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp: ts,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: Some(bytes::Bytes::from(vec![b'v'; 100])),
            headers: Default::default(),
        }
    }

    #[test]
    fn reads_header_and_checks_crc() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let buf = encode(&[record(0, 10), record(1, 30)], c);
            let h = validate(&buf).unwrap();
            assert_eq!(h.records_count, 2);
            assert_eq!(h.last_offset_delta, 1);
            assert_eq!(h.producer_id, 7);
            assert_eq!(h.base_timestamp, 10);
            assert_eq!(h.max_timestamp, 30);
            assert_eq!(h.total_len(), buf.len());
        }
    }

    #[test]
    fn patched_base_offset_keeps_crc_valid() {
        let mut buf = encode(&[record(0, 1)], Compression::None);
        set_base_offset(&mut buf, 4242);
        set_partition_leader_epoch(&mut buf, 3);
        assert_eq!(validate(&buf).unwrap().base_offset, 4242);
    }

    #[test]
    fn rejects_corruption_and_truncation() {
        let mut buf = encode(&[record(0, 1)], Compression::None);
        let n = buf.len();
        buf[n - 1] ^= 0xff;
        assert!(matches!(
            validate(&buf),
            Err(BatchError::CrcMismatch { .. })
        ));
        assert!(matches!(
            split(&buf[..n - 3]),
            Err(BatchError::Truncated(_))
        ));
        assert!(matches!(split(&buf[..5]), Err(BatchError::Truncated(_))));
    }

    #[test]
    fn splits_concatenated_batches() {
        let mut buf = encode(&[record(0, 1)], Compression::None);
        let second = encode(&[record(0, 2), record(1, 3)], Compression::Gzip);
        buf.extend_from_slice(&second);
        let parts = split(&buf).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].1.records_count, 2);
        assert_eq!(parts[1].0.end, buf.len());
    }

    #[test]
    fn records_are_counted_from_batch_headers() {
        // Two v2 batch headers with 3 and 4 records and no record bodies.
        let mut bytes = Vec::new();
        for count in [3i32, 4] {
            let mut b = vec![0u8; 61];
            let len: i32 = 61 - 12;
            b[8..12].copy_from_slice(&len.to_be_bytes());
            b[16] = 2; // magic
            b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
            b[57..61].copy_from_slice(&count.to_be_bytes());
            bytes.extend(b);
        }
        assert_eq!(count_records(&bytes), 7);
        assert_eq!(count_records(&bytes[..30]), 0);
    }
}
