//! Single-node behaviour of store groups: offsets, reads, idempotence, deletes, kv.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use phxq_replication::*;

#[tokio::test]
async fn append_and_read_back_across_partitions_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g1 = node.open_group(GroupId(1)).await.unwrap();
    let g2 = node.open_group(GroupId(2)).await.unwrap();
    assert!(g1.is_leader() && g2.is_leader());
    assert_eq!(g1.leader(), Some(1));
    let (a, b, c) = (part(7, 0), part(7, 1), part(9, 0));
    create(&g1, &[a, b]).await;
    create(&g1, &[a]).await; // idempotent
    create(&g2, &[c]).await;

    // One command carrying batches for two partitions.
    let r = g1
        .propose(Command::Append(vec![
            AppendBatch {
                partition: a,
                batch: batch(3, 100),
            },
            AppendBatch {
                partition: b,
                batch: batch(2, 100),
            },
            AppendBatch {
                partition: a,
                batch: batch(4, 200),
            },
        ]))
        .await
        .unwrap();
    let CommandResponse::Appended(v) = r else {
        panic!()
    };
    let bases: Vec<i64> = v.iter().map(|x| x.unwrap().base_offset).collect();
    assert_eq!(bases, vec![0, 0, 3]);
    assert_eq!(append1(&g1, a, batch(1, 300)).await.unwrap().base_offset, 7);
    assert_eq!(append1(&g2, c, batch(5, 1)).await.unwrap().base_offset, 0);
    assert_eq!(append1(&g2, c, batch(5, 1)).await.unwrap().base_offset, 5);

    // Unknown partition, wrong group.
    assert_eq!(
        append1(&g2, a, batch(1, 1)).await,
        Err(AppendError::UnknownPartition)
    );
    assert_eq!(
        append1(&g1, part(1, 1), batch(1, 1)).await,
        Err(AppendError::UnknownPartition)
    );
    let corrupt = Bytes::from_static(b"not a batch");
    assert_eq!(
        append1(&g1, a, corrupt).await,
        Err(AppendError::CorruptBatch)
    );

    assert_eq!(
        g1.offsets(a),
        Some(PartitionOffsets {
            log_start_offset: 0,
            high_watermark: 8,
            last_stable_offset: 8,
            last_abort: -1,
        })
    );
    assert_eq!(g1.offsets(b).unwrap().high_watermark, 2);
    assert_eq!(g2.offsets(c).unwrap().high_watermark, 10);
    assert_eq!(g2.offsets(a), None);

    let mut out = BytesMut::new();
    let r = g1
        .read(a, 0, ReadLimit::at_least_one_batch(1 << 20), &mut out)
        .unwrap();
    assert_eq!(r.batches, 3);
    assert_eq!(r.bytes, out.len());
    assert_eq!(batches_in(&out), vec![(0, 3), (3, 4), (7, 1)]);
    // CRC still valid after the base offset patch.
    phxq_protocol::batch::split(&out).unwrap();

    // Mid-batch offset: the batch containing it comes first.
    let mut out = BytesMut::new();
    g1.read(a, 5, ReadLimit::at_least_one_batch(1 << 20), &mut out)
        .unwrap();
    assert_eq!(batches_in(&out), vec![(3, 4), (7, 1)]);

    // max_bytes too small still returns one batch, then stops.
    let mut out = BytesMut::new();
    let r = g1
        .read(a, 0, ReadLimit::at_least_one_batch(10), &mut out)
        .unwrap();
    assert_eq!((r.batches, batches_in(&out)), (1, vec![(0, 3)]));

    // A strict limit returns only whole batches that fit: none when the first is larger,
    // and exactly the ones whose bytes add up to at most the limit.
    let mut out = BytesMut::new();
    let r = g1.read(a, 0, ReadLimit::at_most(10), &mut out).unwrap();
    assert_eq!((r.batches, r.bytes, out.len()), (0, 0, 0));
    let (first, second) = {
        let mut all = BytesMut::new();
        g1.read(a, 0, ReadLimit::at_most(1 << 20), &mut all)
            .unwrap();
        let sizes = batch_sizes(&all);
        (sizes[0], sizes[1])
    };
    for limit in [first, first + second - 1] {
        let mut out = BytesMut::new();
        let r = g1.read(a, 0, ReadLimit::at_most(limit), &mut out).unwrap();
        assert_eq!((r.batches, r.bytes), (1, first), "limit {limit}");
        assert_eq!(batches_in(&out), vec![(0, 3)]);
    }
    let mut out = BytesMut::new();
    let r = g1
        .read(a, 0, ReadLimit::at_most(first + second), &mut out)
        .unwrap();
    assert_eq!(batches_in(&out), vec![(0, 3), (3, 4)]);
    assert_eq!(r.bytes, first + second);

    // At the high watermark: empty. Past it: out of range.
    let mut out = BytesMut::new();
    assert_eq!(
        g1.read(a, 8, ReadLimit::at_least_one_batch(1 << 20), &mut out)
            .unwrap()
            .batches,
        0
    );
    assert!(matches!(
        g1.read(a, 9, ReadLimit::at_least_one_batch(1 << 20), &mut out),
        Err(ReplicationError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        g1.read(part(5, 5), 0, ReadLimit::at_most(1), &mut out),
        Err(ReplicationError::UnknownPartition)
    ));
    assert!(out.is_empty());

    let mut wait = g1.applied_watch();
    let before = *wait.borrow_and_update();
    append1(&g1, b, batch(1, 1)).await.unwrap();
    assert!(*wait.borrow() > before);

    node.shutdown().await;
}

#[tokio::test]
async fn idempotent_producer_sequences_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let p = part(1, 0);
    create(&g, &[p]).await;

    let first = append1(&g, p, idem(3, 42, 0, 0)).await.unwrap();
    assert_eq!((first.base_offset, first.duplicate), (0, false));
    let second = append1(&g, p, idem(2, 42, 0, 3)).await.unwrap();
    assert_eq!(second.base_offset, 3);

    // Retry of an earlier batch: original offsets, nothing stored.
    let dup = append1(&g, p, idem(3, 42, 0, 0)).await.unwrap();
    assert_eq!((dup.base_offset, dup.duplicate), (0, true));
    assert_eq!(g.offsets(p).unwrap().high_watermark, 5);
    let mut out = BytesMut::new();
    g.read(p, 0, ReadLimit::at_least_one_batch(1 << 20), &mut out)
        .unwrap();
    assert_eq!(batches_in(&out).len(), 2);

    // Gap in sequence.
    assert_eq!(
        append1(&g, p, idem(1, 42, 0, 9)).await,
        Err(AppendError::OutOfOrderSequence)
    );
    // Next in sequence works.
    assert_eq!(
        append1(&g, p, idem(1, 42, 0, 5)).await.unwrap().base_offset,
        5
    );
    // New epoch must start at 0.
    assert_eq!(
        append1(&g, p, idem(1, 42, 1, 6)).await,
        Err(AppendError::OutOfOrderSequence)
    );
    assert_eq!(
        append1(&g, p, idem(1, 42, 1, 0)).await.unwrap().base_offset,
        6
    );
    // The old epoch is fenced.
    assert_eq!(
        append1(&g, p, idem(1, 42, 0, 6)).await,
        Err(AppendError::InvalidProducerEpoch)
    );
    // A producer never seen here may start anywhere.
    assert_eq!(
        append1(&g, p, idem(2, 43, 0, 77))
            .await
            .unwrap()
            .base_offset,
        7
    );
    assert_eq!(
        append1(&g, p, idem(1, 43, 0, 79))
            .await
            .unwrap()
            .base_offset,
        9
    );
    // Sequence wraps at i32::MAX.
    assert_eq!(
        append1(&g, p, idem(1, 44, 0, i32::MAX))
            .await
            .unwrap()
            .base_offset,
        10
    );
    assert_eq!(
        append1(&g, p, idem(1, 44, 0, 0)).await.unwrap().base_offset,
        11
    );
    // Non-idempotent batches are never deduplicated.
    assert_eq!(append1(&g, p, batch(1, 1)).await.unwrap().base_offset, 12);
    assert_eq!(append1(&g, p, batch(1, 1)).await.unwrap().base_offset, 13);
    node.shutdown().await;
}

#[tokio::test]
async fn delete_records_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(3)).await.unwrap();
    let p = part(2, 0);
    create(&g, &[p]).await;
    // Batches of 2 records; max timestamps 101, 301, 201, 401, 501.
    for ts in [100, 300, 200, 400, 500] {
        append1(&g, p, batch(2, ts)).await.unwrap();
    }
    assert_eq!(
        g.batch_by_timestamp(p, 0)
            .expect("read")
            .unwrap()
            .base_offset,
        0
    );
    assert_eq!(
        g.batch_by_timestamp(p, 150)
            .expect("read")
            .unwrap()
            .base_offset,
        2
    );
    assert_eq!(
        g.batch_by_timestamp(p, 301)
            .expect("read")
            .unwrap()
            .base_offset,
        2
    );
    assert_eq!(
        g.batch_by_timestamp(p, 302)
            .expect("read")
            .unwrap()
            .base_offset,
        6
    );
    assert!(g.batch_by_timestamp(p, 502).expect("read").is_none());
    let (ts, b) = g.max_timestamp(p).expect("read").unwrap();
    assert_eq!((ts, b.base_offset), (501, 8));
    assert_eq!(batches_in(&b.batch), vec![(8, 2)]);

    let del = |o: i64| Command::DeleteRecords(vec![(p, o)]);
    let CommandResponse::RecordsDeleted(r) = g.propose(del(11)).await.unwrap() else {
        panic!()
    };
    assert_eq!(r, vec![Err(AppendError::OffsetOutOfRange)]);
    let CommandResponse::RecordsDeleted(r) = g.propose(del(3)).await.unwrap() else {
        panic!()
    };
    assert_eq!(r, vec![Ok(3)]);
    assert_eq!(g.offsets(p).unwrap().log_start_offset, 3);
    let mut out = BytesMut::new();
    assert!(matches!(
        g.read(p, 2, ReadLimit::at_least_one_batch(1 << 20), &mut out),
        Err(ReplicationError::OffsetOutOfRange { .. })
    ));
    g.read(p, 3, ReadLimit::at_least_one_batch(1 << 20), &mut out)
        .unwrap();
    assert_eq!(batches_in(&out)[0], (2, 2)); // the batch containing 3 stays whole
                                             // Never moves backwards.
    let CommandResponse::RecordsDeleted(r) = g.propose(del(1)).await.unwrap() else {
        panic!()
    };
    assert_eq!(r, vec![Ok(3)]);

    // Dropping the batch at 2 (max ts 301) must re-expose batch 4 (max ts 201) by time.
    g.propose(del(4)).await.unwrap();
    assert_eq!(
        g.batch_by_timestamp(p, 0)
            .expect("read")
            .unwrap()
            .base_offset,
        4
    );
    assert_eq!(
        g.batch_by_timestamp(p, 250)
            .expect("read")
            .unwrap()
            .base_offset,
        6
    );

    let CommandResponse::RecordsDeleted(r) = g.propose(del(-1)).await.unwrap() else {
        panic!()
    };
    assert_eq!(r, vec![Ok(10)]);
    assert_eq!(
        g.offsets(p),
        Some(PartitionOffsets {
            log_start_offset: 10,
            high_watermark: 10,
            last_stable_offset: 10,
            last_abort: -1,
        })
    );
    assert!(g.batch_by_timestamp(p, 0).expect("read").is_none());
    assert!(g.max_timestamp(p).expect("read").is_none());
    // Offsets continue after the deleted ones.
    assert_eq!(append1(&g, p, batch(1, 5)).await.unwrap().base_offset, 10);
    assert_eq!(
        g.batch_by_timestamp(p, 0)
            .expect("read")
            .unwrap()
            .base_offset,
        10
    );

    // DeletePartitions drops everything.
    g.propose(Command::DeletePartitions(vec![p])).await.unwrap();
    assert_eq!(g.offsets(p), None);
    assert!(g.max_timestamp(p).expect("read").is_none());
    assert_eq!(
        append1(&g, p, batch(1, 5)).await,
        Err(AppendError::UnknownPartition)
    );
    node.shutdown().await;
}

#[tokio::test]
async fn kv_and_producer_ids() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId::METADATA).await.unwrap();
    let h = node.open_group(GroupId(1)).await.unwrap();
    let put = |k: &'static str, v: Option<&'static str>| (Bytes::from(k), v.map(Bytes::from));
    g.propose(Command::Put(vec![
        put("t/a", Some("1")),
        put("t/b", Some("2")),
        put("u/a", Some("3")),
    ]))
    .await
    .unwrap();
    h.propose(Command::Put(vec![put("t/z", Some("other group"))]))
        .await
        .unwrap();
    assert_eq!(g.kv_get(b"t/a").expect("read"), Some(Bytes::from("1")));
    assert_eq!(g.kv_get(b"t/z").expect("read"), None);
    let keys: Vec<Bytes> = g
        .kv_scan(b"t/")
        .expect("read")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![Bytes::from("t/a"), Bytes::from("t/b")]);
    assert_eq!(g.kv_scan(b"").expect("read").len(), 3);
    g.propose(Command::Put(vec![put("t/a", None)]))
        .await
        .unwrap();
    assert_eq!(g.kv_get(b"t/a").expect("read"), None);

    let CommandResponse::ProducerIds(a) =
        g.propose(Command::AllocateProducerIds(10)).await.unwrap()
    else {
        panic!()
    };
    let CommandResponse::ProducerIds(b) = g.propose(Command::AllocateProducerIds(1)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!((a, b), (1000, 1010));

    // Compare-and-put: only the first of two creations of one key wins; an update or a
    // removal needs the current value.
    let cas =
        |expected: Option<&'static str>, value: Option<&'static str>| Command::CompareAndPut {
            key: Bytes::from("topic/x"),
            expected: expected.map(Bytes::from),
            value: value.map(Bytes::from),
        };
    let won = |r: CommandResponse| matches!(r, CommandResponse::Compared(true));
    assert!(won(g.propose(cas(None, Some("id-1"))).await.unwrap()));
    assert!(!won(g.propose(cas(None, Some("id-2"))).await.unwrap()));
    assert_eq!(
        g.kv_get(b"topic/x").expect("read"),
        Some(Bytes::from("id-1"))
    );
    assert!(!won(g.propose(cas(Some("id-2"), None)).await.unwrap()));
    assert!(won(g
        .propose(cas(Some("id-1"), Some("id-1b")))
        .await
        .unwrap()));
    assert!(won(g.propose(cas(Some("id-1b"), None)).await.unwrap()));
    assert_eq!(g.kv_get(b"topic/x").expect("read"), None);
    node.shutdown().await;
}

#[tokio::test]
async fn submissions_enter_the_log_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let p = part(4, 0);
    create(&g, &[p]).await;
    let mut pending = Vec::new();
    for n in 1..=20usize {
        let cmd = Command::Append(vec![AppendBatch {
            partition: p,
            batch: batch(n, 1),
        }]);
        pending.push((n, g.submit(cmd).await.unwrap()));
    }
    let mut expected = 0i64;
    for (n, fut) in pending {
        let CommandResponse::Appended(v) = fut.await.unwrap() else {
            panic!()
        };
        assert_eq!(v[0].unwrap().base_offset, expected);
        expected += n as i64;
    }
    node.shutdown().await;
}

/// Batch bytes live in segment files; deleting a topic or its records frees the files no
/// row refers to any more, and what is still referred to reads back intact, also after a
/// restart.
#[tokio::test]
async fn deleted_batches_free_their_segment_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 256 << 10;
    let node = ReplicaNode::open(cfg.clone()).await.unwrap();
    let g = node.open_group(GroupId(1)).await.unwrap();
    let (gone, kept) = (part(5, 0), part(6, 0));
    create(&g, &[gone, kept]).await;
    // 8 batches of ~100 KiB to `gone`, then one to `kept`, then 8 more to `gone`.
    for _ in 0..8 {
        append1(&g, gone, batch_with(10, 1, None, 10_000))
            .await
            .unwrap();
    }
    append1(&g, kept, batch_with(3, 7, None, 1000))
        .await
        .unwrap();
    for _ in 0..8 {
        append1(&g, gone, batch_with(10, 1, None, 10_000))
            .await
            .unwrap();
    }
    let before = node.segment_files();
    assert!(before.len() >= 5, "files: {before:?}");
    // Nothing is garbage yet.
    assert!(node.collect_segment_files().await.unwrap().is_empty());

    // Dropping the head of `gone` frees no file that still holds later batches.
    let CommandResponse::RecordsDeleted(r) = g
        .propose(Command::DeleteRecords(vec![(gone, 40)]))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r, vec![Ok(40)]);
    // The raft log refers to the bytes too until it is purged (after a snapshot, every 512
    // entries): write enough small entries for that.
    async fn purge_log(g: &StoreGroup) {
        for i in 0..700u32 {
            let k = Bytes::from(format!("k{}", i % 7));
            g.propose(Command::Put(vec![(k, Some(Bytes::from_static(b"v")))]))
                .await
                .unwrap();
        }
    }
    /// Collects until fewer than `than` files are left (the node's own collection, every
    /// 10 s after a delete, may get there first). Returns the files left.
    async fn collect_below(node: &ReplicaNode, than: usize) -> Vec<u32> {
        for _ in 0..100 {
            node.collect_segment_files().await.unwrap();
            if node.segment_files().len() < than {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        node.segment_files()
    }
    purge_log(&g).await;
    let still = collect_below(&node, before.len()).await;
    assert!(
        still.len() < before.len(),
        "the head's files are freed: {before:?}"
    );
    assert!(
        still.len() >= 3,
        "later batches keep their files: {still:?}"
    );
    g.propose(Command::DeletePartitions(vec![gone]))
        .await
        .unwrap();
    purge_log(&g).await;
    assert!(collect_below(&node, still.len()).await.len() < still.len());
    let left = node.segment_files();
    assert!(left.len() <= 3, "left: {left:?} of {before:?}");

    let check = |g: &StoreGroup| {
        let mut out = BytesMut::new();
        g.read(kept, 0, ReadLimit::at_least_one_batch(1 << 20), &mut out)
            .unwrap();
        assert_eq!(batches_in(&out), vec![(0, 3)]);
    };
    check(&g);
    node.shutdown().await;
    drop(g);
    drop(node);
    let node = ReplicaNode::open(cfg).await.unwrap();
    let g = node.open_group(GroupId(1)).await.unwrap();
    check(&g);
    assert_eq!(node.segment_files(), left);
}

/// A data directory from the layout before segment files (batch bytes inside redb, no
/// format stamp) is refused with a message saying so, not misread.
#[tokio::test]
async fn a_data_directory_of_the_old_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("phxq.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<(u32, u64), &[u8]> =
                redb::TableDefinition::new("raft_log");
            let mut log = txn.open_table(def).unwrap();
            log.insert((1, 1), &[0u8; 17][..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = match ReplicaNode::open(config(dir.path())).await {
        Ok(_) => panic!("an old data directory was opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("older phxq"), "{err}");
    // A fresh directory is stamped and opens again.
    let fresh = tempfile::tempdir().unwrap();
    open(fresh.path()).await.shutdown().await;
    open(fresh.path()).await.shutdown().await;
}

#[tokio::test]
async fn term_start_offsets_say_what_the_current_leader_appended() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let (a, b) = (part(7, 0), part(7, 1));
    create(&g, &[a, b]).await;
    let term = g.leader_term().expect("leader");
    assert_eq!(g.term_start_offset(a, term), None, "nothing appended yet");
    append1(&g, a, batch(3, 100)).await.unwrap();
    append1(&g, a, batch(2, 100)).await.unwrap();
    assert_eq!(g.term_start_offset(a, term), Some(0));
    assert_eq!(g.term_start_offset(b, term), None);
    assert_eq!(g.term_start_offset(a, term + 1), None, "another term");
    node.shutdown().await;
    drop(g);
    drop(node);

    // After a restart the node leads in a new term: everything before it is older.
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let term2 = g.leader_term().expect("leader");
    assert!(term2 > term);
    assert_eq!(g.term_start_offset(a, term2), None);
    append1(&g, a, batch(1, 100)).await.unwrap();
    assert_eq!(g.term_start_offset(a, term2), Some(5));
    node.shutdown().await;
}

/// Retention's decision over a real batch index: the time cut stops at the first segment
/// holding a young record, the size cut keeps at least the limit, a long cut comes in
/// steps of at most 4096 batches, and applying the steps with DeleteRecords moves the log
/// start there, after which the same policy finds nothing more to drop.
#[tokio::test]
async fn retention_cut_over_the_batch_index() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let p = part(9, 0);
    create(&g, &[p]).await;
    let hour = 3_600_000i64;
    let now = 100 * hour;
    let one = batch_with(1, 0, None, 10);
    let len = one.len() as u64;
    // 10_000 one-record batches stamped 50 hours ago, then 100 stamped now, in few entries.
    let stamped = |ts: i64| AppendBatch {
        partition: p,
        batch: batch_with(1, ts, None, 10),
    };
    for chunk in 0..10 {
        let old: Vec<AppendBatch> = (0..1000)
            .map(|i| stamped(50 * hour + chunk * 1000 + i))
            .collect();
        g.propose(Command::Append(old)).await.unwrap();
    }
    g.propose(Command::Append((0..100).map(|_| stamped(now)).collect()))
        .await
        .unwrap();
    let policy = |ms: Option<i64>, bytes: Option<u64>| RetentionPolicy {
        retention_ms: ms,
        retention_bytes: bytes,
        segment_bytes: 64 * len,
        segment_ms: None,
    };

    assert_eq!(g.retention_cut(p, &policy(None, None), now).unwrap(), None);
    assert_eq!(
        g.retention_cut(p, &policy(Some(60 * hour), None), now)
            .unwrap(),
        None
    );
    // Segments of 64 batches: 10_100 = 157 full ones and 52 batches. Those up to 9984 are
    // all old; the one from 9984 holds 16 old and 48 young records, and stays.
    let cut = g
        .retention_cut(p, &policy(Some(hour), None), now)
        .unwrap()
        .unwrap();
    assert_eq!(cut.log_start, 9984);
    assert_eq!(
        (cut.segments, cut.batches, cut.bytes),
        (156, 9984, 9984 * len)
    );
    assert_eq!(cut.steps, vec![4096, 8192, 9984]);
    // Size: keep at least 1000 batches' bytes, in whole segments.
    let by_size = g
        .retention_cut(p, &policy(None, Some(1000 * len)), now)
        .unwrap()
        .unwrap();
    let kept = 10_100 - by_size.log_start;
    assert!((1000..1064).contains(&kept), "kept {kept}");

    for step in &cut.steps {
        let CommandResponse::RecordsDeleted(r) = g
            .propose(Command::DeleteRecords(vec![(p, *step)]))
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(r, vec![Ok(*step)]);
    }
    assert_eq!(g.offsets(p).unwrap().log_start_offset, 9984);
    assert_eq!(
        g.retention_cut(p, &policy(Some(hour), None), now).unwrap(),
        None
    );
    // The size limit now counts only what is left.
    let again = g
        .retention_cut(p, &policy(None, Some(50 * len)), now)
        .unwrap()
        .unwrap();
    assert_eq!(again.log_start, 10_048);
    assert_eq!(again.steps, vec![10_048]);
    // Everything expired: the log start reaches the log end.
    let all = g
        .retention_cut(p, &policy(Some(hour), None), now + 2 * hour)
        .unwrap()
        .unwrap();
    assert_eq!(all.log_start, 10_100);
    assert!(matches!(
        g.retention_cut(part(9, 1), &policy(Some(hour), None), now),
        Err(ReplicationError::UnknownPartition)
    ));
}

/// Log compaction's storage side: a swap replaces and removes batches without moving an
/// offset; a fetch at a removed offset answers from the next kept batch; the time index
/// skips a removed batch; a swap whose rows changed since they were read (DeleteRecords
/// came first) does nothing; a new batch must keep its base offset and last offset delta;
/// and the swapped index survives a restart.
#[tokio::test]
async fn compaction_swaps_batches_without_moving_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let p = part(5, 0);
    create(&g, &[p]).await;
    for i in 0..4 {
        append1(&g, p, batch(3, 100 * i)).await.unwrap();
    }
    let index = g.compaction_index(p).unwrap();
    assert_eq!(
        index
            .iter()
            .map(|b| (b.base_offset, b.next_offset))
            .collect::<Vec<_>>(),
        vec![(0, 3), (3, 6), (6, 9), (9, 12)]
    );
    let bytes = g.read_indexed(&index).unwrap();
    // Batch 0 goes; batch 1 keeps its middle record only (offset 4), still ending at 5.
    let (h, plain) = phxq_protocol::records::plain_records(&bytes[1], 1 << 20).unwrap();
    let recs = phxq_protocol::records::parse_records(&plain, h.records_count).unwrap();
    let one = phxq_protocol::records::rebuild(&bytes[1], &plain, &[&recs[1]]).unwrap();
    // A batch that does not keep its last offset delta is refused.
    let mut bad = one.clone();
    bad[23..27].copy_from_slice(&1i32.to_be_bytes());
    assert!(g
        .replace_batches(
            p,
            vec![BatchReplacement {
                old: index[1],
                new: Some(Bytes::from(bad))
            }]
        )
        .await
        .is_err());
    let swap = vec![
        BatchReplacement {
            old: index[0],
            new: None,
        },
        BatchReplacement {
            old: index[1],
            new: Some(Bytes::from(one)),
        },
    ];
    assert!(g.replace_batches(p, swap.clone()).await.unwrap());
    // The same swap again: its rows changed, nothing happens.
    assert!(!g.replace_batches(p, swap).await.unwrap());
    let o = g.offsets(p).unwrap();
    assert_eq!((o.log_start_offset, o.high_watermark), (0, 12));
    let mut out = BytesMut::new();
    g.read(p, 0, ReadLimit::at_most(1 << 20), &mut out).unwrap();
    assert_eq!(batches_in(&out), vec![(3, 1), (6, 3), (9, 3)]);
    let mut out = BytesMut::new();
    g.read(p, 5, ReadLimit::at_most(1 << 20), &mut out).unwrap();
    assert_eq!(batches_in(&out), vec![(3, 1), (6, 3), (9, 3)]);
    // The time index's first row named batch 0: the next batch answers.
    let b = g.batch_by_timestamp(p, 0).unwrap().unwrap();
    assert_eq!(b.base_offset, 3);

    // DeleteRecords wins over a swap prepared before it.
    let index = g.compaction_index(p).unwrap();
    // Batch 3 (offsets 3..=5) lies wholly below the new log start 7: its row goes.
    let stale = vec![BatchReplacement {
        old: index[0],
        new: None,
    }];
    let CommandResponse::RecordsDeleted(r) = g
        .propose(Command::DeleteRecords(vec![(p, 7)]))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r, vec![Ok(7)]);
    assert!(!g.replace_batches(p, stale).await.unwrap());
    node.shutdown().await;
    drop(g);
    drop(node);

    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    let mut out = BytesMut::new();
    g.read(p, 7, ReadLimit::at_most(1 << 20), &mut out).unwrap();
    assert_eq!(batches_in(&out), vec![(6, 3), (9, 3)]);
    node.shutdown().await;
}

#[tokio::test]
async fn elections_are_counted_from_the_term_stored_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(GroupId(1)).await.unwrap();
    assert!(g.is_leader());
    let first = g.elections();
    let term = g.status().term;
    // A new group: every term it has was begun here; its first leader is no change.
    assert!(
        first.terms_begun >= 1 && first.terms_begun == term,
        "{first:?}, term {term}"
    );
    assert_eq!(first.leader_changes, 0);
    node.shutdown().await;
    drop((g, node));

    // Reopened: the single voter elects itself again; only the terms since the restart count.
    let node = open(dir.path()).await;
    let g = node.group(GroupId(1)).unwrap();
    assert!(g.is_leader());
    let again = g.elections();
    let now = g.status().term;
    assert!(now > term, "term {term} -> {now}");
    assert_eq!(again.terms_begun, now - term, "{again:?}");
    assert_eq!(again.leader_changes, 0);
    node.shutdown().await;
}
