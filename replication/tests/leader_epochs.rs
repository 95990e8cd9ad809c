//! Leader epochs (KIP-101, KIP-320): each batch carries the Raft term it was appended in,
//! every term's first offset is kept per partition, and OffsetForLeaderEpoch's answer
//! comes from them; all of it survives a restart and goes with a deleted partition.

mod common;

use bytes::BytesMut;
use common::*;
use phxq_protocol::batch::BatchHeader;
use phxq_replication::*;

/// (base offset, leader epoch) of each batch a read of `p` from 0 returns.
fn epochs_read(g: &StoreGroup, p: PartitionId) -> Vec<(i64, i32)> {
    let mut out = BytesMut::new();
    g.read(p, 0, ReadLimit::at_least_one_batch(1 << 20), &mut out)
        .unwrap();
    let mut v = Vec::new();
    let mut pos = 0;
    while pos < out.len() {
        let h = BatchHeader::parse(&out[pos..]).unwrap();
        let epoch = i32::from_be_bytes(out[pos + 12..pos + 16].try_into().unwrap());
        v.push((h.base_offset, epoch));
        pos += h.total_len();
    }
    v
}

async fn leader_epoch(g: &StoreGroup) -> i32 {
    for _ in 0..200 {
        if let (Some(e), true) = (g.leader_epoch(), g.leader_ready()) {
            return e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no leader");
}

#[tokio::test]
async fn batches_carry_their_epoch_and_epochs_end_where_the_next_begins() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let p = part(7, 0);
    create(&g, &[p]).await;
    let e1 = leader_epoch(&g).await;
    assert!(e1 >= 1);
    append1(&g, p, batch(2, 1)).await.unwrap();
    append1(&g, p, batch(1, 3)).await.unwrap();
    assert_eq!(epochs_read(&g, p), vec![(0, e1), (2, e1)]);
    assert_eq!(g.end_offset_for_epoch(p, e1, e1).unwrap(), (e1, 3));

    // A restart is a new election: a newer epoch, which starts at offset 3.
    node.shutdown().await;
    drop((g, node));
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let e2 = leader_epoch(&g).await;
    assert!(e2 > e1, "{e2} > {e1}");
    // Nothing appended in e2 yet: e1 runs to the end.
    assert_eq!(g.end_offset_for_epoch(p, e1, e2).unwrap(), (e1, 3));
    append1(&g, p, batch(4, 10)).await.unwrap();
    assert_eq!(epochs_read(&g, p), vec![(0, e1), (2, e1), (3, e2)]);
    assert_eq!(g.end_offset_for_epoch(p, e1, e2).unwrap(), (e1, 3));
    assert_eq!(g.end_offset_for_epoch(p, e2, e2).unwrap(), (e2, 7));
    // An epoch between two that appended: the floor is the older one.
    if e2 > e1 + 1 {
        assert_eq!(g.end_offset_for_epoch(p, e1 + 1, e2).unwrap(), (e1, 3));
    }
    // Older than every epoch: it ends where the first one starts.
    assert_eq!(g.end_offset_for_epoch(p, e1 - 1, e2).unwrap(), (e1 - 1, 0));
    // Unknown epochs.
    assert_eq!(g.end_offset_for_epoch(p, e2 + 1, e2).unwrap(), (-1, -1));
    assert_eq!(g.end_offset_for_epoch(p, -1, e2).unwrap(), (-1, -1));

    // A deleted partition's epochs go with it: recreated, it starts over.
    g.propose(Command::DeletePartitions(vec![p])).await.unwrap();
    create(&g, &[p]).await;
    append1(&g, p, batch(1, 20)).await.unwrap();
    assert_eq!(epochs_read(&g, p), vec![(0, e2)]);
    assert_eq!(g.end_offset_for_epoch(p, e1, e2).unwrap(), (e1, 0));
    node.shutdown().await;
}
