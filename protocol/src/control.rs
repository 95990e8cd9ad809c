//! Transaction markers: the control batches a transaction coordinator writes into every
//! partition of a transaction when it commits or aborts (KIP-98). A marker is a batch
//! with the transactional and control attributes set, the producer's id and epoch, no
//! sequence, and one record whose key is `(version: i16 = 0, type: i16)` (0 = ABORT,
//! 1 = COMMIT) and whose value is `(version: i16 = 0, coordinator epoch: i32)`.
//! Consumers skip control batches; `read_committed` consumers use them with the aborted
//! transactions list to drop aborted records.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::records::{parse_records, plain_records};

/// What a marker says about its producer's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// The marker batch ending `producer_id`'s transaction at `epoch` (base offset 0: the log
/// assigns it), written at `timestamp` (ms) by a coordinator at `coordinator_epoch`.
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    kind: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.code().to_be_bytes());
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    let mut buf = BytesMut::with_capacity(80);
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    // Encoding one small uncompressed record into a growable buffer cannot fail.
    RecordBatchEncoder::encode(&mut buf, std::iter::once(&record), &opts)
        .expect("encoding an uncompressed control record");
    buf.freeze()
}

/// The type of a control batch's marker; None when `batch` is not a control batch or its
/// first record is not a transaction marker (unknown or unreadable key).
pub fn control_type(batch: &[u8]) -> Option<ControlType> {
    let (h, plain) = plain_records(batch, 1 << 16).ok()?;
    if !h.is_control() || h.records_count < 1 {
        return None;
    }
    let records = parse_records(&plain, 1).ok()?;
    let key = plain.get(records.first()?.key.clone()?)?;
    if key.len() < 4 || key[0..2] != [0, 0] {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate;

    #[test]
    fn markers_round_trip() {
        for kind in [ControlType::Commit, ControlType::Abort] {
            let b = marker_batch(4242, 3, kind, 7, 1_700_000_000_000);
            let h = validate(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch), (4242, 3));
            assert_eq!(h.base_sequence, -1);
            assert_eq!(h.records_count, 1);
            assert_eq!(control_type(&b), Some(kind));
        }
    }

    #[test]
    fn a_data_batch_is_no_marker() {
        let record = Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 1,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: 0,
            timestamp: 1,
            key: Some(Bytes::from_static(&[0, 0, 0, 1])),
            value: None,
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, std::iter::once(&record), &opts).unwrap();
        assert_eq!(control_type(&buf), None);
        assert_eq!(control_type(b"garbage"), None);
    }
}
