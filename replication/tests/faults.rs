//! A disk that refuses writes: proposals fail with `Storage`, nothing acknowledged is lost.

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
