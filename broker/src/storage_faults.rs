//! Tests: the broker over a disk whose reads fail. A read error must never look like "no
//! data": no new cluster id written over the stored one, no empty topic registry, no
//! ListOffsets answer of "no such record", but an error (start refused,
//! KAFKA_STORAGE_ERROR).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use phxq_protocol::errors;
use phxq_replication::fault::DiskFault;
use phxq_replication::{
    AppendBatch, Command, CommandResponse, GroupId, NodeConfig, PartitionId, ReplicaNode,
    StoreGroup,
};

use crate::topics::TopicRegistry;

const KEY: &[u8] = b"cluster_id";

fn config(dir: &std::path::Path) -> NodeConfig {
    let mut c = NodeConfig::single(1, dir.to_path_buf());
    c.heartbeat_interval_ms = 100;
    c.election_timeout_min_ms = 300;
    c.election_timeout_max_ms = 600;
    // No page cache: every read of a table reaches the (faulty) file.
    c.cache_bytes = 0;
    c
}

fn batch(ts: i64) -> Bytes {
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // One batch: the encoder starts a new one where sequences do not follow.
            sequence: -1 + i as i32,
            timestamp: ts + i,
            key: None,
            value: Some(Bytes::from_static(b"v")),
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

async fn cluster_id(metadata: &StoreGroup, fresh: &str) -> anyhow::Result<String> {
    let fresh = fresh.to_string();
    crate::cluster::node::cluster_id(metadata, KEY, move || fresh.clone()).await
}

#[tokio::test]
async fn read_errors_refuse_start_and_answer_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let fault = DiskFault::new();
    let pid = PartitionId {
        topic_id: 7,
        index: 0,
    };
    {
        let node = ReplicaNode::open_with_fault(config(dir.path()), fault.clone())
            .await
            .unwrap();
        let metadata = node.open_group(GroupId::METADATA).await.unwrap();
        assert_eq!(cluster_id(&metadata, "first").await.unwrap(), "first");
        let store = node.open_group(GroupId(1)).await.unwrap();
        store
            .propose(Command::CreatePartitions(vec![pid]))
            .await
            .unwrap();
        let r = store
            .propose(Command::Append(vec![AppendBatch {
                partition: pid,
                batch: batch(1000),
            }]))
            .await
            .unwrap();
        assert!(
            matches!(&r, CommandResponse::Appended(v) if v.iter().all(|a| a.is_ok())),
            "{r:?}"
        );

        assert_eq!(
            crate::handlers::list_offsets::lookup(&store, pid, 1001),
            Ok(Some((1, 1001)))
        );
        fault.fail_reads();
        let id = cluster_id(&metadata, "second").await;
        assert!(id.is_err(), "cluster id while reads fail: {id:?}");
        let topics = TopicRegistry::load(&metadata);
        assert!(topics.is_err(), "topic registry loaded while reads fail");
        assert_eq!(
            crate::handlers::list_offsets::lookup(&store, pid, 1001),
            Err(errors::KAFKA_STORAGE_ERROR)
        );
        fault.heal();
        node.shutdown().await;
    }
    // Reopened on a healthy disk: the stored id is the first one, nothing was overwritten.
    let node = ReplicaNode::open(config(dir.path())).await.unwrap();
    let metadata = node.open_group(GroupId::METADATA).await.unwrap();
    assert_eq!(cluster_id(&metadata, "third").await.unwrap(), "first");
    let store = node.open_group(GroupId(1)).await.unwrap();
    assert_eq!(
        crate::handlers::list_offsets::lookup(&store, pid, 1001),
        Ok(Some((1, 1001)))
    );
    node.shutdown().await;
}
