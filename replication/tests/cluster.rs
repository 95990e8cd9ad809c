//! Three in-process nodes over an in-memory transport: a follower that was cut off while the
//! leader wrote and purged thousands of entries catches up through a full snapshot, keeps the
//! state across a restart, and can then lead the group (dense offsets, idempotent retries).

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use phxq_replication::network::{BoxFuture, RaftRpc, RaftRpcReply, SnapshotChunk, Transport};
use phxq_replication::*;

const G: GroupId = GroupId(1);

/// Routes RPCs between the nodes of one test, through serde, with a per-node cut switch.
#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<NodeId, Arc<ReplicaNode>>>,
    cut: Mutex<HashSet<NodeId>>,
    snapshot_chunks: AtomicU64,
}

impl Net {
    fn is_cut(&self, n: NodeId) -> bool {
        self.cut.lock().unwrap().contains(&n)
    }
    fn set_cut(&self, n: NodeId, cut: bool) {
        let mut c = self.cut.lock().unwrap();
        if cut {
            c.insert(n);
        } else {
            c.remove(&n);
        }
    }
    fn node(&self, n: NodeId) -> Option<Arc<ReplicaNode>> {
        self.nodes.lock().unwrap().get(&n).cloned()
    }
}

struct Link {
    net: Arc<Net>,
    from: NodeId,
}

fn wire<T: serde::Serialize + serde::de::DeserializeOwned>(v: &T) -> Result<T, String> {
    let bytes = serde_json::to_vec(v).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

impl Transport for Link {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: RaftRpc,
    ) -> BoxFuture<Result<RaftRpcReply, String>> {
        let (net, from) = (self.net.clone(), self.from);
        Box::pin(async move {
            let reachable = || !net.is_cut(from) && !net.is_cut(target);
            if !reachable() {
                return Err(format!("{from} -> {target}: unreachable"));
            }
            let node = net
                .node(target)
                .ok_or_else(|| format!("node {target} is down"))?;
            if matches!(rpc, RaftRpc::SnapshotChunk(_)) {
                net.snapshot_chunks.fetch_add(1, Ordering::Relaxed);
            }
            let reply = node.handle_rpc(group, wire(&rpc)?).await?;
            if !reachable() {
                return Err(format!("{from} -> {target}: reply lost"));
            }
            wire(&reply)
        })
    }
}

/// Election timeouts: node 3 never campaigns before its restart. Pre-vote is off, so a
/// cut-off node that campaigns comes back with a higher term and deposes the leader.
fn node_config(dir: &std::path::Path, id: NodeId, restarted: bool) -> NodeConfig {
    let mut c = config(dir);
    c.node_id = id;
    (c.election_timeout_min_ms, c.election_timeout_max_ms) = match (id, restarted) {
        (3, false) => (30_000, 40_000),
        _ => (500, 800),
    };
    c
}

async fn start(
    net: &Arc<Net>,
    dir: &std::path::Path,
    id: NodeId,
    restarted: bool,
) -> Arc<ReplicaNode> {
    let link = Arc::new(Link {
        net: net.clone(),
        from: id,
    });
    // A restarted node's database is free once the last RPC still running on the old
    // instance has returned.
    let mut tries = 0;
    let n = loop {
        match ReplicaNode::open_with_transport(node_config(dir, id, restarted), Some(link.clone()))
            .await
        {
            Ok(n) => break n,
            Err(e) if tries < 100 => {
                tries += 1;
                eprintln!("reopen node {id}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("open node {id}: {e}"),
        }
    };
    net.nodes.lock().unwrap().insert(id, n.clone());
    n
}

async fn poll<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn poll_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `name=Some(n)` field of a group's raft status line.
fn status_field(g: &StoreGroup, name: &str) -> Option<u64> {
    let s = g.raft_status();
    let rest = s.split(&format!(" {name}=Some(")).nth(1)?;
    rest.split(')').next()?.parse().ok()
}

fn purged(g: &StoreGroup) -> Option<u64> {
    status_field(g, "purged")
}

/// Waits until `g`'s raft log and applied index (as openraft sees them) match the leader's.
async fn in_sync(net: &Net, g: &StoreGroup) {
    poll("node 3 to be in sync with the leader", 20, || {
        let leader = net.node(g.leader()?)?.group(G)?;
        let want = status_field(&leader, "applied")?;
        (status_field(g, "applied")? >= want && status_field(g, "last_log")? >= want).then_some(())
    })
    .await;
}

fn applied(g: &StoreGroup) -> u64 {
    *g.applied_watch().borrow()
}

/// Asserts that two replicas hold the same partitions, batches (byte for byte) and kv.
fn assert_same(a: &StoreGroup, b: &StoreGroup, parts: &[PartitionId]) {
    for p in parts {
        let (oa, ob) = (a.offsets(*p), b.offsets(*p));
        assert_eq!(oa, ob, "offsets of {p:?}");
        let o = oa.expect("partition exists");
        assert_eq!(
            a.aborted_transactions(*p, 0, i64::MAX).unwrap(),
            b.aborted_transactions(*p, 0, i64::MAX).unwrap(),
            "aborted transactions of {p:?}"
        );
        let (mut ra, mut rb) = (BytesMut::new(), BytesMut::new());
        a.read(
            *p,
            o.log_start_offset,
            ReadLimit::at_least_one_batch(64 << 20),
            &mut ra,
        )
        .unwrap();
        b.read(
            *p,
            o.log_start_offset,
            ReadLimit::at_least_one_batch(64 << 20),
            &mut rb,
        )
        .unwrap();
        assert!(!ra.is_empty());
        assert!(ra == rb, "batches of {p:?} differ");
        let ma = a
            .max_timestamp(*p)
            .expect("read")
            .map(|(t, s)| (t, s.base_offset, s.batch));
        let mb = b
            .max_timestamp(*p)
            .expect("read")
            .map(|(t, s)| (t, s.base_offset, s.batch));
        assert_eq!(ma, mb);
        for ts in [0, 500, 1500] {
            let fa = a
                .batch_by_timestamp(*p, ts)
                .expect("read")
                .map(|s| s.base_offset);
            assert_eq!(
                fa,
                b.batch_by_timestamp(*p, ts)
                    .expect("read")
                    .map(|s| s.base_offset)
            );
        }
    }
    let kv = a.kv_scan(b"").expect("read");
    assert!(kv.len() > 100);
    assert_eq!(kv, b.kv_scan(b"").expect("read"));
}

async fn leader_of(net: &Net, ids: &[NodeId]) -> Option<(NodeId, StoreGroup)> {
    for id in ids {
        if let Some(g) = net.node(*id).and_then(|n| n.group(G)) {
            if g.is_leader() {
                return Some((*id, g));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_through_a_snapshot() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = Arc::new(Net::default());
    net.set_cut(3, true);
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        nodes.push(start(&net, dirs[id as usize - 1].path(), id, false).await);
    }
    let voters = BTreeSet::from([1, 2, 3]);
    for n in nodes {
        n.open_group_with(G, voters.clone()).await.unwrap();
    }
    // Elections may take a round or two: retry the first write until a leader takes it.
    let parts = [part(7, 0), part(7, 1), part(7, 2)];
    let (_, g) = poll_async("a leader among nodes 1 and 2", 20, || async {
        let (id, g) = leader_of(&net, &[1, 2]).await?;
        g.propose(Command::CreatePartitions(parts.to_vec()))
            .await
            .ok()
            .map(|_| (id, g))
    })
    .await;
    let CommandResponse::ProducerIds(pid) =
        g.propose(Command::AllocateProducerIds(2)).await.unwrap()
    else {
        panic!("producer ids")
    };
    // Idempotent producer `pid` writes to every partition; remember its batches.
    let mut seqs = [0i32; 3];
    let mut idem_sent: Vec<(PartitionId, Bytes)> = Vec::new();
    let mut futs = Vec::new();
    let mut answers = Vec::new();
    for i in 0..2100usize {
        let p = i % 3;
        let cmd = if i % 10 == 9 {
            let mut items = vec![(
                Bytes::from(format!("key{i:05}")),
                Some(Bytes::from(format!("value{i}"))),
            )];
            if i % 100 == 99 {
                items.push((Bytes::from(format!("key{:05}", i - 90)), None));
            }
            Command::Put(items)
        } else if i == 1000 {
            Command::DeleteRecords(vec![(parts[2], 40)])
        } else if i == 500 || i == 700 {
            // Producer pid + 1 writes a transaction to partition 0, aborted at 600, and
            // one to partition 1 that stays open: the snapshot carries both.
            Command::Append(vec![AppendBatch {
                partition: parts[(i - 500) / 200],
                batch: txn_batch(3, pid + 1, 0, ((i - 500) / 200 * 3) as i32),
            }])
        } else if i == 600 {
            Command::Append(vec![AppendBatch {
                partition: parts[0],
                batch: marker(pid + 1, 0, false),
            }])
        } else if i % 2 == 0 {
            let n = 1 + i % 3;
            let b = batch_with(n, i as i64, Some((pid, 0, seqs[p])), 20);
            seqs[p] += n as i32;
            idem_sent.push((parts[p], b.clone()));
            let mut v = vec![AppendBatch {
                partition: parts[p],
                batch: b,
            }];
            if i % 7 == 0 {
                v.push(AppendBatch {
                    partition: parts[(p + 1) % 3],
                    batch: batch(2, i as i64),
                });
            }
            Command::Append(v)
        } else {
            Command::Append(vec![AppendBatch {
                partition: parts[p],
                batch: batch_with(1 + i % 4, i as i64, None, 30),
            }])
        };
        futs.push(g.submit(cmd).await.expect("submit"));
        if futs.len() == 200 {
            answers.extend(futures::future::join_all(futs.drain(..)).await);
        }
    }
    answers.extend(futures::future::join_all(futs.drain(..)).await);
    let mut idem_bases = Vec::new();
    for a in answers {
        if let CommandResponse::Appended(v) = a.expect("committed") {
            for r in v {
                let r = r.expect("appended");
                assert!(!r.duplicate);
                idem_bases.push(r.base_offset);
            }
        }
    }
    // The leader has built snapshots and purged the log node 3 would need.
    poll("the leader to purge its log", 10, || {
        purged(&g).filter(|p| *p > 100)
    })
    .await;
    assert_eq!(net.snapshot_chunks.load(Ordering::Relaxed), 0);

    net.set_cut(3, false);
    let target = applied(&g);
    let n3 = net.node(3).unwrap();
    let g3 = n3.group(G).unwrap();
    poll("node 3 to catch up", 30, || {
        (applied(&g3) >= target).then_some(())
    })
    .await;
    assert!(net.snapshot_chunks.load(Ordering::Relaxed) > 0);
    // Openraft finishes the install (its metrics show the purge) after the data is visible,
    // then re-applies the entries between the snapshot meta and the installed state.
    poll("node 3's log to be purged by the install", 10, || {
        purged(&g3)
    })
    .await;
    in_sync(&net, &g3).await;
    assert_same(&g, &g3, &parts);

    // Restart node 3: the installed state is durable.
    n3.shutdown().await;
    net.nodes.lock().unwrap().remove(&3);
    drop((g3, n3));
    let n3 = start(&net, dirs[2].path(), 3, true).await;
    let g3 = n3.group(G).expect("group reopened");
    assert!(applied(&g3) >= target);
    assert_same(&g, &g3, &parts);
    in_sync(&net, &g3).await;

    // Make node 3 the leader: cut off whoever leads (as node 3 sees it) until node 3 wins
    // an election, then write.
    let p0 = parts[0];
    let mut cut_off: Option<NodeId> = None;
    let mut rounds = 0;
    let (hw, a) = loop {
        rounds += 1;
        assert!(rounds < 20, "node 3 never took a write as leader");
        let leader = poll("node 3 to see a leader", 20, || {
            g3.leader().filter(|l| Some(*l) != cut_off).filter(|l| {
                net.node(*l)
                    .and_then(|n| n.group(G))
                    .is_some_and(|g| g.is_leader())
            })
        })
        .await;
        if leader == 3 {
            let hw = g3.offsets(p0).unwrap().high_watermark;
            let r = g3
                .propose(Command::Append(vec![AppendBatch {
                    partition: p0,
                    batch: batch(2, 5000),
                }]))
                .await;
            match r {
                Ok(CommandResponse::Appended(mut v)) => break (hw, v.remove(0).unwrap()),
                Ok(other) => panic!("{other:?}"),
                Err(e) => eprintln!("node 3 lost the write: {e}"),
            }
            continue;
        }
        if let Some(prev) = cut_off.take() {
            net.set_cut(prev, false);
        }
        net.set_cut(leader, true);
        cut_off = Some(leader);
    };
    // Dense offsets continue where the old leader stopped.
    assert_eq!((a.base_offset, a.duplicate), (hw, false));
    // An idempotent retry of a batch written before the snapshot is a duplicate...
    let (rp, rb) = idem_sent
        .iter()
        .rev()
        .find(|(p, _)| *p == p0)
        .cloned()
        .unwrap();
    let orig = phxq_protocol::batch::BatchHeader::parse(&rb).unwrap();
    let dup = append1(&g3, rp, rb).await.unwrap();
    assert!(dup.duplicate);
    assert!(idem_bases.contains(&dup.base_offset));
    let mut out = BytesMut::new();
    g3.read(
        p0,
        dup.base_offset,
        ReadLimit::at_least_one_batch(1),
        &mut out,
    )
    .unwrap();
    let stored = phxq_protocol::batch::BatchHeader::parse(&out).unwrap();
    assert_eq!(
        (stored.base_sequence, stored.records_count),
        (orig.base_sequence, orig.records_count)
    );
    // ...and the producer's next sequence is accepted at the next offset.
    let next = batch_with(1, 6000, Some((pid, 0, seqs[0])), 20);
    let a = append1(&g3, p0, next).await.unwrap();
    assert_eq!((a.base_offset, a.duplicate), (hw + 2, false));

    for id in 1..=3 {
        if let Some(n) = net.node(id) {
            n.shutdown().await;
        }
    }
}

#[tokio::test]
async fn snapshot_chunks_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path()).await;
    let g = node.open_group(G).await.unwrap();
    let p = part(1, 0);
    create(&g, &[p]).await;
    let chunk = |offset: u64, data: &'static [u8], done: bool| {
        RaftRpc::SnapshotChunk(SnapshotChunk {
            vote: openraft::impls::Vote::new(1, 1),
            meta: Default::default(),
            snapshot_id: "t".into(),
            offset,
            data: Bytes::from_static(data),
            done,
        })
    };
    // No transfer in progress.
    assert!(node.handle_rpc(G, chunk(5, b"x", false)).await.is_err());
    // A transfer must continue at the offset received so far.
    match node.handle_rpc(G, chunk(0, b"abc", false)).await {
        Ok(RaftRpcReply::SnapshotAck { received: 3 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(node.handle_rpc(G, chunk(4, b"x", false)).await.is_err());
    // A complete but bad dump is refused without touching the state or the writer.
    assert!(node.handle_rpc(G, chunk(3, b"junk", true)).await.is_err());
    assert!(!node.storage_failed());
    assert_eq!(append1(&g, p, batch(1, 1)).await.unwrap().base_offset, 0);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    node.shutdown().await;
}
