//! Three nodes in one process talking over the TCP transport on loopback: a group with
//! three voters elects a leader, replicates appends, forwards a follower's proposal, answers
//! status queries, and survives the loss of its leader without losing acknowledged data;
//! with a `PeerSecurity` that refuses strangers, a stranger's frames get no answer while the
//! members still replicate.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use phxq_replication::tcp::{
    fetch_status, plaintext, serve, BoxedStream, PeerSecurity, Plaintext, TcpTransport,
};
use phxq_replication::*;
use tokio::net::TcpListener;

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    addrs: HashMap<NodeId, SocketAddr>,
    nodes: HashMap<NodeId, Arc<ReplicaNode>>,
    stops: HashMap<NodeId, tokio::sync::oneshot::Sender<()>>,
    security: Arc<dyn PeerSecurity>,
}

impl Cluster {
    async fn start() -> Cluster {
        Cluster::start_with(plaintext()).await
    }

    async fn start_with(security: Arc<dyn PeerSecurity>) -> Cluster {
        let mut listeners = Vec::new();
        let mut addrs = HashMap::new();
        for id in 1..=3u64 {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.insert(id, l.local_addr().unwrap());
            listeners.push((id, l));
        }
        let mut c = Cluster {
            dirs: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
            addrs,
            nodes: HashMap::new(),
            stops: HashMap::new(),
            security,
        };
        for (id, l) in listeners {
            c.open(id, Some(l)).await;
        }
        c
    }

    async fn open(&mut self, id: NodeId, listener: Option<TcpListener>) {
        let listener = match listener {
            Some(l) => l,
            None => {
                self.stops.remove(&id);
                tokio::time::sleep(Duration::from_millis(50)).await;
                TcpListener::bind(self.addrs[&id]).await.unwrap()
            }
        };
        let peers = self
            .addrs
            .iter()
            .filter(|(p, _)| **p != id)
            .map(|(p, a)| (*p, *a))
            .collect();
        let mut cfg = config(self.dirs[id as usize - 1].path());
        cfg.node_id = id;
        let t: Arc<dyn phxq_replication::network::Transport> =
            Arc::new(TcpTransport::new(peers, self.security.clone()));
        // A node just shut down releases its database when its last tasks end.
        let mut node = None;
        for _ in 0..100 {
            match ReplicaNode::open_with_transport(cfg.clone(), Some(t.clone())).await {
                Ok(n) => {
                    node = Some(n);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let node = node.expect("reopen");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stops.insert(id, stop);
        let security = self.security.clone();
        tokio::spawn(serve(
            listener,
            Arc::downgrade(&node),
            security,
            async move {
                let _ = stopped.await;
            },
        ));
        node.open_group_with(GroupId(1), BTreeSet::from([1, 2, 3]))
            .await
            .unwrap();
        self.nodes.insert(id, node);
    }

    async fn leader(&self) -> NodeId {
        for _ in 0..200 {
            for (id, n) in &self.nodes {
                if n.group(GroupId(1)).unwrap().is_leader() {
                    return *id;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no leader elected");
    }
}

async fn append(g: &StoreGroup, p: PartitionId, ts: i64) -> i64 {
    let cmd = Command::Append(vec![AppendBatch {
        partition: p,
        batch: batch_with(3, ts, None, 100),
    }]);
    match g.propose(cmd).await.unwrap() {
        CommandResponse::Appended(v) => v[0].as_ref().unwrap().base_offset,
        other => panic!("{other:?}"),
    }
}

/// Waits until every node has applied `p` up to `hw`.
async fn wait_high_watermark(c: &Cluster, p: PartitionId, hw: i64) {
    for n in c.nodes.values() {
        let g = n.group(GroupId(1)).unwrap();
        for _ in 0..200 {
            if g.offsets(p).map(|o| o.high_watermark) == Some(hw) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(g.offsets(p).unwrap().high_watermark, hw);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_fail_over() {
    let mut c = Cluster::start().await;
    // The first elections of three nodes started together may take a round or two: a
    // forwarded proposal waits them out.
    let p = part(7, 0);
    c.nodes[&1]
        .group(GroupId(1))
        .unwrap()
        .propose_on_leader(Command::CreatePartitions(vec![p]))
        .await
        .unwrap();
    let leader = c.leader().await;
    let lg = c.nodes[&leader].group(GroupId(1)).unwrap();
    for i in 0..10 {
        assert_eq!(append(&lg, p, i * 10).await, i * 3);
    }
    // Many proposals at once: followers then often apply entries the leader committed
    // before their own copy is flushed. Every node still writes each batch's bytes once.
    let batches: Vec<_> = (0..100)
        .map(|i| batch_with(3, 500 + i, None, 30_000))
        .collect();
    let total: u64 = batches.iter().map(|b| b.len() as u64).sum();
    // Proposals return once a majority has them: let the third node catch up first.
    wait_high_watermark(&c, p, 30).await;
    let before: Vec<u64> = c.nodes.values().map(|n| n.segment_bytes()).collect();
    let sends = batches.into_iter().map(|b| {
        lg.propose(Command::Append(vec![AppendBatch {
            partition: p,
            batch: b,
        }]))
    });
    for r in futures::future::join_all(sends).await {
        assert!(matches!(r, Ok(CommandResponse::Appended(_))), "{r:?}");
    }
    wait_high_watermark(&c, p, 330).await;
    for (n, b) in c.nodes.values().zip(before) {
        // Exactly `total` unless an election made a follower drop and re-append entries.
        let written = n.segment_bytes() - b;
        assert!(
            written >= total && written < total + total / 10,
            "{written} bytes written for {total} bytes of batches"
        );
    }

    // A follower forwards an administrative write to the leader; a plain propose refuses.
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    let fg = c.nodes[&follower].group(GroupId(1)).unwrap();
    assert!(matches!(
        fg.propose(Command::Put(vec![])).await,
        Err(ReplicationError::NotLeader { leader: Some(l) }) if l == leader
    ));
    fg.propose_on_leader(Command::Put(vec![(
        Bytes::from_static(b"k"),
        Some(Bytes::from_static(b"v")),
    )]))
    .await
    .unwrap();

    // Status over the inter-broker listener.
    let st = fetch_status(c.addrs[&leader], &Plaintext, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].leader, Some(leader));
    assert_eq!(st[0].voters, vec![1, 2, 3]);
    assert_eq!(st[0].replication.len(), 2);

    // Kill the leader: the others elect a new one that has every acknowledged record.
    drop((lg, fg));
    c.nodes.remove(&leader).unwrap().shutdown().await;
    let new_leader = c.leader().await;
    assert_ne!(new_leader, leader);
    let ng = c.nodes[&new_leader].group(GroupId(1)).unwrap();
    ng.ensure_linearizable().await.unwrap();
    assert_eq!(ng.offsets(p).unwrap().high_watermark, 330);
    assert_eq!(ng.kv_get(b"k").expect("read").as_deref(), Some(&b"v"[..]));
    let mut out = BytesMut::new();
    ng.read(p, 0, ReadLimit::at_least_one_batch(1 << 20), &mut out)
        .unwrap();
    assert!(out.len() > 10 * 100);
    assert_eq!(append(&ng, p, 1000).await, 330);

    // The old leader comes back and catches up as a follower.
    c.open(leader, None).await;
    let back = c.nodes[&leader].group(GroupId(1)).unwrap();
    for _ in 0..200 {
        if back.offsets(p).map(|o| o.high_watermark) == Some(333) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(back.offsets(p).unwrap().high_watermark, 333);

    // Leadership can be handed back.
    ng.transfer_leader(leader).await.unwrap();
    for _ in 0..200 {
        if back.is_leader() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(back.is_leader());
    for n in c.nodes.values() {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn garbage_on_the_internal_listener_closes_only_that_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = Cluster::start().await;
    let addr = c.addrs[&1];
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).await.unwrap(), 0, "connection closed");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(s.read(&mut buf).await.unwrap(), 0, "oversized frame closes");
    let st = fetch_status(addr, &Plaintext, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(st[0].group, GroupId(1));
    // A well-formed status request written by hand is answered.
    assert!(!raw_status(addr).await.is_empty());
    for n in c.nodes.values() {
        n.shutdown().await;
    }
}

/// The status request (postcard: variant 1, id 1) in a frame, as a stranger could write it
/// by hand (`compat-tests/python/test_cluster_security.py` sends these bytes); what came
/// back before the connection closed.
const STATUS_FRAME: [u8; 6] = [0, 0, 0, 2, 1, 1];

async fn raw_status(addr: SocketAddr) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&STATUS_FRAME).await.unwrap();
    let mut len = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len)).await {
        Ok(Ok(_)) => len.to_vec(),
        Ok(Err(_)) => Vec::new(),
        Err(_) => panic!("neither an answer nor a close within 5 s"),
    }
}

/// A toy upgrade: the connecting side says a 4-byte password first; the accepting side
/// refuses anyone who does not.
struct Password;

impl PeerSecurity for Password {
    fn connect(
        &self,
        mut stream: tokio::net::TcpStream,
        _peer: SocketAddr,
    ) -> phxq_replication::network::BoxFuture<std::io::Result<BoxedStream>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            stream.write_all(b"PHXQ").await?;
            Ok(Box::new(stream) as BoxedStream)
        })
    }

    fn accept(
        &self,
        mut stream: tokio::net::TcpStream,
        _peer: SocketAddr,
    ) -> phxq_replication::network::BoxFuture<Result<BoxedStream, String>> {
        Box::pin(async move {
            use tokio::io::AsyncReadExt;
            let mut said = [0u8; 4];
            stream
                .read_exact(&mut said)
                .await
                .map_err(|e| format!("no password: {e}"))?;
            if &said != b"PHXQ" {
                return Err("wrong password".into());
            }
            Ok(Box::new(stream) as BoxedStream)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_get_no_answer_and_members_still_replicate() {
    let c = Cluster::start_with(Arc::new(Password)).await;
    let p = part(9, 0);
    // The first elections may still be settling (a node that looked like the leader can
    // lose it): create the partition on whoever leads once it sticks.
    let mut tries = 0;
    let (leader, lg) = loop {
        let leader = c.leader().await;
        let lg = c.nodes[&leader].group(GroupId(1)).unwrap();
        match lg.propose(Command::CreatePartitions(vec![p])).await {
            Ok(_) => break (leader, lg),
            Err(e) if tries < 40 => {
                tries += 1;
                eprintln!("creating the partition on node {leader}: {e}; again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no leader took the partition: {e}"),
        }
    };
    assert_eq!(append(&lg, p, 1).await, 0);
    wait_high_watermark(&c, p, 3).await;
    // Strangers: a hand-written status frame and a plaintext status call are refused
    // (closed without an answer); the one who knows the password is answered.
    let addr = c.addrs[&leader];
    assert_eq!(raw_status(addr).await, Vec::<u8>::new());
    let refused = fetch_status(addr, &Plaintext, Duration::from_secs(5)).await;
    assert!(refused.is_err(), "{refused:?}");
    let st = fetch_status(addr, &Password, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(st[0].leader, Some(leader));
    // The members never noticed.
    assert_eq!(append(&lg, p, 2).await, 3);
    drop(lg);
    for n in c.nodes.values() {
        n.shutdown().await;
    }
}
