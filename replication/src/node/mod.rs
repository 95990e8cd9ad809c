//! A node, fourth layer: its redb database, its group-commit writer, its router and the
//! Raft groups it hosts (`group`), its settings (`config`) and the segment garbage
//! collector (`gc`). `ReplicaNode` and `StoreGroup` in `api` are thin handles over this.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, SnapshotPolicy};
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::node::config::NodeConfig;
use crate::node::group::{watch_leaders, ElectionsSeen, GroupInner};
use crate::partition::view::GroupShared;
use crate::raft::log_mem::LogShared;
use crate::raft::log_store::LogStore;
use crate::raft::network::GroupNetworkFactory;
use crate::raft::rpc::{NoPeers, RaftRpc, RaftRpcReply, Router, Transport};
use crate::raft::snapshot::transfer::{Inbox, Receiver};
use crate::raft::state_machine::StateMachine;
use crate::raft::work::RaftWriter;
use crate::raft::{fatal_error, Raft};
use crate::store::db::open_db;
use crate::store::fault::DiskFault;
use crate::store::schema::*;
use crate::store::segments::Segments;
use crate::types::{GroupId, GroupStatus, NodeId, ReplicationError, WriterCounters};

pub mod config;
pub mod gc;
pub mod group;

pub struct NodeInner {
    pub config: NodeConfig,
    pub db: Arc<Database>,
    pub writer: RaftWriter,
    pub router: Router,
    raft_config: Arc<openraft::Config>,
    pub groups: RwLock<BTreeMap<GroupId, Arc<GroupInner>>>,
    open_lock: tokio::sync::Mutex<()>,
    shut: Arc<AtomicBool>,
    /// Snapshot transfers being received.
    snapshots: Inbox,
    /// The broker's answer to [`RaftRpc::Peer`] requests.
    pub peer_service: std::sync::OnceLock<crate::raft::rpc::PeerService>,
}

fn storage(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::storage(e)
}

fn raft_config(c: &NodeConfig) -> Result<Arc<openraft::Config>, ReplicationError> {
    let cfg = openraft::Config {
        cluster_name: "phxq".into(),
        heartbeat_interval: c.heartbeat_interval_ms,
        election_timeout_min: c.election_timeout_min_ms,
        election_timeout_max: c.election_timeout_max_ms,
        // A snapshot is a durable-commit descriptor (cheap); it lets the log be purged.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(512),
        max_in_snapshot_log_to_keep: 128,
        purge_batch_size: 64,
        max_payload_entries: 1024,
        // A node that was cut off must not depose a healthy leader when it comes back with
        // a higher term: it asks first (Pre-Vote) and only then starts an election.
        enable_pre_vote: Some(true),
        // A restarted leader must win a new election rather than resume its old term: a new
        // term opens with an entry of its own, and reads (committed offsets, high
        // watermarks) wait until that entry is applied, i.e. until everything committed
        // before the restart is applied again. A resumed term would serve them at once.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    Ok(Arc::new(
        cfg.validate()
            .map_err(|e| ReplicationError::Raft(e.to_string()))?,
    ))
}

impl NodeInner {
    pub async fn open(
        config: NodeConfig,
        transport: Option<Arc<dyn Transport>>,
        fault: Option<DiskFault>,
    ) -> Result<Arc<NodeInner>, ReplicationError> {
        std::fs::create_dir_all(&config.data_dir).map_err(storage)?;
        let path = config.data_dir.join("phxq.redb");
        let seg_fault = fault.clone();
        let db = tokio::task::spawn_blocking(move || open_db(&path, config.cache_bytes, fault))
            .await
            .map_err(storage)??;
        let db = Arc::new(db);
        let existing: Vec<GroupId> = {
            let txn = db.begin_read().map_err(storage)?;
            let t = txn.open_table(GROUPS).map_err(storage)?;
            let mut v = Vec::new();
            for item in t.iter().map_err(storage)? {
                v.push(GroupId(item.map_err(storage)?.0.value()));
            }
            v
        };
        let seg_dir = config.data_dir.join("segments");
        let seg_bytes = config.segment_bytes;
        let segments = tokio::task::spawn_blocking(move || {
            Segments::open_with(&seg_dir, seg_fault, seg_bytes)
        })
        .await
        .map_err(storage)?
        .map_err(storage)?;
        let segments = Arc::new(segments);
        let writer = RaftWriter::start(db.clone(), segments.clone()).map_err(storage)?;
        let snapshots = Inbox::new(&config.data_dir);
        let node = Arc::new(NodeInner {
            raft_config: raft_config(&config)?,
            config,
            db: db.clone(),
            writer,
            router: Router {
                transport: transport.unwrap_or_else(|| Arc::new(NoPeers)),
                db: db.clone(),
                segments,
            },
            groups: RwLock::new(BTreeMap::new()),
            open_lock: tokio::sync::Mutex::new(()),
            shut: Arc::new(AtomicBool::new(false)),
            snapshots,
            peer_service: std::sync::OnceLock::new(),
        });
        tokio::spawn(crate::node::gc::run(
            Arc::downgrade(&node.db),
            Arc::downgrade(&node.writer.segments),
            node.shut.clone(),
        ));
        for id in &existing {
            let g = node.start_group(*id).await?;
            node.groups
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*id, g);
        }
        for id in existing {
            if let Some(g) = node.group(id) {
                node.kick(&g).await;
                // A reopened single-voter group gets its leader within an election; do not
                // hang forever. Groups with peers get theirs when the peers answer. The
                // membership shows in the metrics once the Raft core has loaded its state.
                let _ = g
                    .raft
                    .wait(Some(Duration::from_secs(2)))
                    .metrics(
                        |m| {
                            m.membership_config
                                .membership()
                                .voter_ids()
                                .next()
                                .is_some()
                        },
                        "membership loaded",
                    )
                    .await;
                if node.voters(id) == BTreeSet::from([node.config.node_id]) {
                    let _ = node.wait_leader(&g).await;
                }
            }
        }
        Ok(node)
    }

    pub fn group(&self, id: GroupId) -> Option<Arc<GroupInner>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    async fn start_group(&self, id: GroupId) -> Result<Arc<GroupInner>, ReplicationError> {
        let log = LogShared::open(
            id.0,
            self.db.clone(),
            self.writer.segments.clone(),
            self.writer.stats.clone(),
            self.config.max_append_bytes,
        )
        .map_err(storage)?;
        // The term stored before this start: elections are counted from it.
        let start_term = log.mem().vote.map_or(0, |v| v.leader_id().term);
        let shared = GroupShared::load(id, self.db.clone(), self.writer.segments.clone())
            .map_err(storage)?;
        let sm = StateMachine {
            group: shared.clone(),
            log: log.clone(),
            writer: self.writer.clone(),
        };
        let network = GroupNetworkFactory {
            router: self.router.clone(),
            group: id,
        };
        let raft = Raft::new(
            self.config.node_id,
            self.raft_config.clone(),
            network,
            LogStore {
                shared: log.clone(),
                writer: self.writer.clone(),
            },
            sm,
        )
        .await
        .map_err(fatal_error)?;
        let elections = Arc::new(ElectionsSeen {
            start_term,
            ..Default::default()
        });
        watch_leaders(id, &raft, elections.clone());
        Ok(Arc::new(GroupInner {
            id,
            node_id: self.config.node_id,
            raft,
            shared,
            log,
            router: self.router.clone(),
            forward_timeout: Duration::from_millis(
                self.config
                    .election_timeout_max_ms
                    .saturating_mul(4)
                    .max(5000),
            ),
            writer: self.writer.clone(),
            elections,
        }))
    }

    /// A group whose only voter is this node elects itself at once instead of waiting for
    /// an election timeout.
    async fn kick(&self, g: &GroupInner) {
        let m = g.raft.metrics().borrow_watched().clone();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        if voters == [self.config.node_id] && m.current_leader.is_none() {
            let _ = g.raft.trigger().elect(false).await;
        }
    }

    /// Waits until the group has a leader; when that is this node, until it has applied its
    /// whole log (so reads see everything acknowledged before a restart).
    pub async fn wait_leader(&self, g: &GroupInner) -> Result<(), ReplicationError> {
        let me = self.config.node_id;
        let timeout = Duration::from_millis(
            self.config
                .election_timeout_max_ms
                .saturating_mul(4)
                .max(2000),
        );
        let m = g
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| match m.current_leader {
                    Some(l) if l == me => {
                        m.state.is_leader() && m.last_applied.map(|x| x.index) >= m.last_log_index
                    }
                    Some(_) => true,
                    None => false,
                },
                "group has a leader",
            )
            .await
            .map_err(|e| ReplicationError::Raft(format!("group {}: {e}", g.id.0)))?;
        // openraft counts an entry applied when it is handed to the writer; reads see it once
        // the writer committed it.
        if m.current_leader == Some(me) {
            let target = m.last_applied.map_or(0, |l| l.index);
            let mut w = g.shared.applied_watch();
            tokio::time::timeout(timeout, w.wait_for(|n| *n >= target))
                .await
                .map_err(|_| {
                    ReplicationError::Raft(format!("group {}: apply did not catch up", g.id.0))
                })?
                .map_err(|_| ReplicationError::ShuttingDown)?;
        }
        Ok(())
    }

    pub async fn open_group(&self, id: GroupId) -> Result<Arc<GroupInner>, ReplicationError> {
        let g = self
            .open_group_with(id, BTreeSet::from([self.config.node_id]))
            .await?;
        self.wait_leader(&g).await?;
        Ok(g)
    }

    /// Creates (or reopens) a group whose voters are `voters` and returns at once, without
    /// waiting for a leader. A new group is initialized with exactly this voter set on every
    /// node that opens it: identical initial memberships on several nodes are safe in Raft
    /// (one of them wins the first election). A group that exists keeps its membership.
    pub async fn open_group_with(
        &self,
        id: GroupId,
        voters: BTreeSet<NodeId>,
    ) -> Result<Arc<GroupInner>, ReplicationError> {
        if self.shut.load(Ordering::Relaxed) {
            return Err(ReplicationError::ShuttingDown);
        }
        if let Some(g) = self.group(id) {
            return Ok(g);
        }
        let g = {
            let _guard = self.open_lock.lock().await;
            match self.group(id) {
                Some(g) => g,
                None => {
                    self.writer
                        .exec(
                            true,
                            Box::new(move |txn| {
                                txn.open_table(GROUPS)?.insert(id.0, ())?;
                                Ok(())
                            }),
                        )
                        .await
                        .map_err(storage)?;
                    let g = self.start_group(id).await?;
                    if !g.raft.is_initialized().await.map_err(fatal_error)? {
                        let members: BTreeMap<NodeId, BasicNode> =
                            voters.iter().map(|v| (*v, BasicNode::default())).collect();
                        if let Err(e) = g.raft.initialize(members).await {
                            tracing::warn!(group = id.0, error = %e, "initialize");
                        }
                    } else {
                        self.kick(&g).await;
                    }
                    self.groups
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, g.clone());
                    g
                }
            }
        };
        Ok(g)
    }

    /// Deletes the segment files no row refers to and returns their ids.
    pub async fn collect_segments(&self) -> Result<Vec<u32>, ReplicationError> {
        crate::node::gc::collect(self.db.clone(), self.writer.segments.clone()).await
    }

    /// The Raft state of every group hosted here.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.group_ids()
            .into_iter()
            .filter_map(|id| self.group(id))
            .map(|g| g.status())
            .collect()
    }

    /// A snapshot of the group-commit writer's counters.
    pub fn counters(&self) -> WriterCounters {
        let s = &self.writer.stats;
        WriterCounters {
            commits: s.commits.load(Ordering::Relaxed),
            durable_commits: s.durable_commits.load(Ordering::Relaxed),
            appends_flushed: s.appends_flushed.load(Ordering::Relaxed),
            log_bytes: s.log_bytes.load(Ordering::Relaxed),
            batch_bytes: s.batch_bytes.load(Ordering::Relaxed),
            sync_buckets: std::array::from_fn(|i| s.sync_buckets[i].load(Ordering::Relaxed)),
            sync_micros: s.sync_micros.load(Ordering::Relaxed),
        }
    }

    pub fn group_ids(&self) -> Vec<GroupId> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    pub async fn shutdown(&self) {
        self.shut.store(true, Ordering::Relaxed);
        let groups: Vec<_> = self
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for g in groups {
            if let Err(e) = g.raft.shutdown().await {
                tracing::warn!(group = g.id.0, error = %e, "raft shutdown");
            }
        }
        if let Err(e) = self.writer.shutdown().await {
            tracing::error!(error = %e, "the storage writer did not stop cleanly");
        }
    }

    /// Delivers an RPC from another node to one of our groups.
    pub async fn handle_rpc(&self, group: GroupId, rpc: RaftRpc) -> Result<RaftRpcReply, String> {
        if let RaftRpc::Peer { service, body } = rpc {
            let handler = self.peer_service.get().cloned().ok_or_else(|| {
                format!("node {} answers no peer requests yet", self.config.node_id)
            })?;
            return handler(service, body).await.map(RaftRpcReply::Peer);
        }
        let g = self.group(group).ok_or_else(|| {
            format!(
                "group {} is not hosted on node {}",
                group.0, self.config.node_id
            )
        })?;
        match rpc {
            RaftRpc::Append(r) => g
                .raft
                .append_entries(r)
                .await
                .map(RaftRpcReply::Append)
                .map_err(|e| e.to_string()),
            RaftRpc::Vote(r) => g
                .raft
                .vote(r)
                .await
                .map(RaftRpcReply::Vote)
                .map_err(|e| e.to_string()),
            RaftRpc::PreVote(r) => g
                .raft
                .pre_vote(r)
                .await
                .map(RaftRpcReply::Vote)
                .map_err(|e| e.to_string()),
            RaftRpc::TransferLeader(r) => g
                .raft
                .handle_transfer_leader(r)
                .await
                .map(RaftRpcReply::TransferLeader)
                .map_err(|e| e.to_string()),
            RaftRpc::Forward(cmd) => Ok(RaftRpcReply::Forwarded(g.propose_local(cmd).await)),
            RaftRpc::Peer { .. } => Err("a peer request is not a group's".into()),
            RaftRpc::SnapshotChunk(c) => {
                let to = Receiver {
                    id: g.id,
                    raft: &g.raft,
                    shared: &g.shared,
                };
                self.snapshots.receive(&self.writer, to, c).await
            }
        }
    }

    /// Voters of a group (for tests and the admin CLI).
    pub fn voters(&self, id: GroupId) -> BTreeSet<NodeId> {
        self.group(id)
            .map(|g| g.voters().into_iter().collect())
            .unwrap_or_default()
    }
}
