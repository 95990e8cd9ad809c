//! Transactions as the log applies them: open transactions hold the last stable offset
//! back, markers end them, aborts are listed for read_committed fetches, zombies are
//! fenced, and all of it survives a restart and moves with DeleteRecords.

mod common;

use bytes::BytesMut;
use common::*;
use phxq_replication::*;

fn lso(g: &StoreGroup, p: PartitionId) -> i64 {
    g.offsets(p).unwrap().last_stable_offset
}

#[tokio::test]
async fn markers_move_the_last_stable_offset_and_list_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let p = part(9, 0);
    create(&g, &[p]).await;

    assert_eq!(append1(&g, p, batch(2, 1)).await.unwrap().base_offset, 0);
    assert_eq!(lso(&g, p), 2);
    // Producer 100 opens a transaction at 2, producer 200 one at 5.
    assert_eq!(
        append1(&g, p, txn_batch(3, 100, 0, 0))
            .await
            .unwrap()
            .base_offset,
        2
    );
    assert_eq!(
        append1(&g, p, txn_batch(2, 200, 0, 0))
            .await
            .unwrap()
            .base_offset,
        5
    );
    assert_eq!(
        append1(&g, p, txn_batch(1, 100, 0, 3))
            .await
            .unwrap()
            .base_offset,
        7
    );
    assert_eq!(append1(&g, p, batch(1, 1)).await.unwrap().base_offset, 8);
    let o = g.offsets(p).unwrap();
    assert_eq!(
        (o.high_watermark, o.last_stable_offset, o.last_abort),
        (9, 2, -1)
    );

    // A read below the last stable offset stops before the open transactions.
    let mut out = BytesMut::new();
    g.read(
        p,
        0,
        ReadLimit::at_least_one_batch(1 << 20).below(2),
        &mut out,
    )
    .unwrap();
    assert_eq!(batches_in(&out), vec![(0, 2)]);

    // 100 commits: the oldest open transaction is now 200's.
    assert_eq!(
        append1(&g, p, marker(100, 0, true))
            .await
            .unwrap()
            .base_offset,
        9
    );
    assert_eq!(lso(&g, p), 5);
    // 200 aborts: nothing open, one abort listed from its first offset to its marker.
    assert_eq!(
        append1(&g, p, marker(200, 0, false))
            .await
            .unwrap()
            .base_offset,
        10
    );
    let o = g.offsets(p).unwrap();
    assert_eq!(
        (o.high_watermark, o.last_stable_offset, o.last_abort),
        (11, 11, 10)
    );
    assert_eq!(g.aborted_transactions(p, 0, 11).unwrap(), vec![(200, 5)]);
    // Only aborts whose records meet the fetched range are listed.
    assert_eq!(g.aborted_transactions(p, 0, 5).unwrap(), vec![]);
    assert_eq!(g.aborted_transactions(p, 11, 20).unwrap(), vec![]);
    // A marker written again (coordinator failover) changes nothing but takes an offset.
    assert_eq!(
        append1(&g, p, marker(200, 0, false))
            .await
            .unwrap()
            .base_offset,
        11
    );
    assert_eq!(g.aborted_transactions(p, 0, 12).unwrap(), vec![(200, 5)]);
    assert_eq!(lso(&g, p), 12);

    // Restart: the meta and the aborted list are durable.
    node.shutdown().await;
    drop((g, node));
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let o = g.offsets(p).unwrap();
    assert_eq!(
        (o.high_watermark, o.last_stable_offset, o.last_abort),
        (12, 12, 10)
    );
    assert_eq!(g.aborted_transactions(p, 0, 12).unwrap(), vec![(200, 5)]);

    // DeleteRecords past the abort marker forgets the abort.
    g.propose(Command::DeleteRecords(vec![(p, 11)]))
        .await
        .unwrap();
    let o = g.offsets(p).unwrap();
    assert_eq!((o.log_start_offset, o.last_abort), (11, -1));
    assert_eq!(g.aborted_transactions(p, 0, 12).unwrap(), vec![]);
    node.shutdown().await;
}

#[tokio::test]
async fn zombies_are_fenced_by_markers_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let p = part(9, 1);
    create(&g, &[p]).await;

    append1(&g, p, txn_batch(2, 7, 3, 0)).await.unwrap();
    // The next epoch may not write while the transaction of epoch 3 is open here.
    assert_eq!(
        append1(&g, p, txn_batch(1, 7, 4, 0)).await,
        Err(AppendError::InvalidTxnState)
    );
    // A marker from an older epoch is a zombie's.
    assert_eq!(
        append1(&g, p, marker(7, 2, true)).await,
        Err(AppendError::InvalidProducerEpoch)
    );
    // KIP-890: the abort carries the bumped epoch; the ended transaction's epoch is
    // fenced from then on, and the new epoch starts at sequence 0.
    append1(&g, p, marker(7, 4, false)).await.unwrap();
    assert_eq!(
        append1(&g, p, txn_batch(1, 7, 3, 2)).await,
        Err(AppendError::InvalidProducerEpoch)
    );
    assert_eq!(
        append1(&g, p, txn_batch(1, 7, 4, 0))
            .await
            .unwrap()
            .base_offset,
        3
    );
    assert_eq!(lso(&g, p), 3);
    node.shutdown().await;
}
