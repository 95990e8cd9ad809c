//! Helpers shared by the integration tests: nodes in temp dirs and real v2 record batches.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use phxq_protocol::batch::BatchHeader;
use phxq_replication::*;

pub fn config(dir: &Path) -> NodeConfig {
    let mut c = NodeConfig::single(1, dir.to_path_buf());
    c.heartbeat_interval_ms = 100;
    c.election_timeout_min_ms = 300;
    c.election_timeout_max_ms = 600;
    c
}

pub async fn open(dir: &Path) -> Arc<ReplicaNode> {
    ReplicaNode::open(config(dir)).await.expect("open node")
}

pub fn part(topic: u128, index: i32) -> PartitionId {
    PartitionId {
        topic_id: topic,
        index,
    }
}

/// A batch of `n` records with timestamps `ts..ts+n`, optionally idempotent.
pub fn batch_with(n: usize, ts: i64, producer: Option<(i64, i16, i32)>, value_len: usize) -> Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq.wrapping_add(i as i32),
            timestamp: ts + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
    buf.freeze()
}

/// A transactional batch of `n` records of producer `pid` at `epoch`, from sequence `seq`.
pub fn txn_batch(n: usize, pid: i64, epoch: i16, seq: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq.wrapping_add(i as i32),
            timestamp: 1000 + i as i64,
            key: None,
            value: Some(Bytes::from(format!("t{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
    buf.freeze()
}

/// The commit (or abort) marker of producer `pid` at `epoch`.
pub fn marker(pid: i64, epoch: i16, commit: bool) -> Bytes {
    use phxq_protocol::control::{marker_batch, ControlType};
    let kind = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    marker_batch(pid, epoch, kind, 0, 2000)
}

pub fn batch(n: usize, ts: i64) -> Bytes {
    batch_with(n, ts, None, 10)
}

pub fn idem(n: usize, pid: i64, epoch: i16, seq: i32) -> Bytes {
    batch_with(n, 1000, Some((pid, epoch, seq)), 10)
}

pub async fn create(g: &StoreGroup, parts: &[PartitionId]) {
    g.propose(Command::CreatePartitions(parts.to_vec()))
        .await
        .expect("create");
}

/// Appends one batch and returns its result.
pub async fn append1(g: &StoreGroup, p: PartitionId, b: Bytes) -> Result<Appended, AppendError> {
    match g
        .propose(Command::Append(vec![AppendBatch {
            partition: p,
            batch: b,
        }]))
        .await
        .expect("propose")
    {
        CommandResponse::Appended(mut v) => v.remove(0),
        other => panic!("unexpected {other:?}"),
    }
}

/// Base offsets and record counts of the batches in a fetch buffer.
pub fn batches_in(buf: &[u8]) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let h = BatchHeader::parse(&buf[pos..]).expect("header");
        out.push((h.base_offset, h.records_count));
        pos += h.total_len();
    }
    out
}

/// The size in bytes of each whole batch in `buf`.
pub fn batch_sizes(buf: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let len = BatchHeader::parse(&buf[pos..]).expect("header").total_len();
        out.push(len);
        pos += len;
    }
    out
}
