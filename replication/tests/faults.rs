//! A disk that refuses writes: proposals fail with `Storage`, nothing acknowledged is lost.
//! A disk that fails reads: every read answers `Storage`, never "no data".

mod common;

use std::time::Duration;

use common::*;
use phxq_replication::fault::DiskFault;
use phxq_replication::*;

#[tokio::test]
async fn full_disk_fails_proposals_and_keeps_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = part(3, 0);
    let fault = DiskFault::new();
    {
        let node = ReplicaNode::open_with_fault(config(dir.path()), fault.clone())
            .await
            .unwrap();
        let g = node.open_group(GroupId(1)).await.unwrap();
        create(&g, &[p]).await;
        for _ in 0..50 {
            append1(&g, p, batch(2, 1)).await.unwrap();
        }
        fault.fail();
        // Concurrent proposals while the disk is full: every one fails with a storage
        // error, none hangs, nothing panics.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                let cmd = Command::Append(vec![AppendBatch {
                    partition: p,
                    batch: batch(1, 1),
                }]);
                tokio::time::timeout(Duration::from_secs(10), g.propose(cmd)).await
            }));
        }
        for t in tasks {
            let r = t.await.unwrap().expect("proposal must not hang");
            assert!(
                matches!(r, Err(ReplicationError::Storage(_))),
                "expected a storage error, got {r:?}"
            );
        }
        // Later proposals fail the same way; reads still serve acknowledged data.
        let r = g.propose(Command::AllocateProducerIds(1)).await;
        assert!(matches!(r, Err(ReplicationError::Storage(_))), "{r:?}");
        assert_eq!(g.offsets(p).unwrap().high_watermark, 100);
        let mut out = bytes::BytesMut::new();
        assert_eq!(
            g.read(p, 0, ReadLimit::at_least_one_batch(1 << 20), &mut out)
                .unwrap()
                .batches,
            50
        );
        tokio::time::timeout(Duration::from_secs(10), node.shutdown())
            .await
            .expect("shutdown must not hang");
    }
    fault.heal();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let o = g.offsets(p).unwrap();
    assert!(o.high_watermark >= 100, "{o:?}");
    let mut out = bytes::BytesMut::new();
    g.read(p, 0, ReadLimit::at_least_one_batch(1 << 20), &mut out)
        .unwrap();
    let got = batches_in(&out);
    for (i, (base, n)) in got.iter().take(50).enumerate() {
        assert_eq!((*base, *n), (2 * i as i64, 2));
    }
    assert_eq!(
        append1(&g, p, batch(1, 1)).await.unwrap().base_offset,
        o.high_watermark
    );
    node.shutdown().await;
}

#[tokio::test]
async fn failing_reads_are_errors_not_missing_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = part(4, 0);
    let fault = DiskFault::new();
    let mut cfg = config(dir.path());
    // No page cache: every read of a table reaches the (faulty) file.
    cfg.cache_bytes = 0;
    let node = ReplicaNode::open_with_fault(cfg, fault.clone())
        .await
        .unwrap();
    let g = node.open_group(GroupId(1)).await.unwrap();
    create(&g, &[p]).await;
    for i in 0..5 {
        append1(&g, p, batch(2, 100 * i)).await.unwrap();
    }
    let put = Command::Put(vec![(
        bytes::Bytes::from_static(b"cluster_id"),
        Some(bytes::Bytes::from_static(b"abc")),
    )]);
    g.propose(put).await.unwrap();
    let storage = |what: &str, failed: bool| {
        assert!(failed, "{what}: expected a storage error while reads fail");
    };

    fault.fail_reads();
    let r = g.kv_get(b"cluster_id");
    storage("kv_get", matches!(r, Err(ReplicationError::Storage(_))));
    let r = g.kv_scan(b"");
    storage("kv_scan", matches!(r, Err(ReplicationError::Storage(_))));
    let r = g.batch_by_timestamp(p, 150);
    storage(
        "batch_by_timestamp",
        matches!(r, Err(ReplicationError::Storage(_))),
    );
    let r = g.max_timestamp(p);
    storage(
        "max_timestamp",
        matches!(r, Err(ReplicationError::Storage(_))),
    );
    let mut out = bytes::BytesMut::new();
    let r = g.read(p, 0, ReadLimit::at_least_one_batch(1 << 20), &mut out);
    storage("read", matches!(r, Err(ReplicationError::Storage(_))));

    // redb refuses every later read after an I/O error until the database is reopened.
    fault.heal();
    tokio::time::timeout(Duration::from_secs(10), node.shutdown())
        .await
        .expect("shutdown must not hang");
    drop((g, node));
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    assert_eq!(
        g.kv_get(b"cluster_id").unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(g.kv_scan(b"").unwrap().len(), 1);
    assert_eq!(
        g.batch_by_timestamp(p, 150).unwrap().unwrap().base_offset,
        4
    );
    assert_eq!(g.max_timestamp(p).unwrap().unwrap().0, 401);
    assert!(g.batch_by_timestamp(p, 1000).unwrap().is_none());
    node.shutdown().await;
}
