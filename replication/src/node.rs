//! A node: its redb database, its group-commit writer, its router and the Raft groups it
//! hosts. `ReplicaNode` and `StoreGroup` in `api` are thin handles over this.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::api::{GroupId, NodeConfig, NodeId, ReplicationError};
use crate::fault::{DiskFault, FaultyBackend};
use crate::group::GroupShared;
use crate::log_store::{LogShared, LogStore};
use crate::network::{GroupNetworkFactory, NoPeers, RaftRpc, RaftRpcReply, Router, Transport};
use crate::schema::*;
use crate::segments::Segments;
use crate::state_machine::StateMachine;
use crate::types::Raft;
use crate::writer::Writer;

/// One group as hosted here.
pub struct GroupInner {
    pub id: GroupId,
    pub node_id: NodeId,
    pub raft: Raft,
    pub shared: Arc<GroupShared>,
    pub log: Arc<LogShared>,
    /// The node's router, for forwarding proposals to the group's leader.
    pub router: Router,
    /// Longest a forwarded proposal waits for a leader and its answer.
    pub forward_timeout: Duration,
}

impl GroupInner {
    /// Voters of the group as this replica knows them, in the order of the membership.
    pub fn voters(&self) -> Vec<NodeId> {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Proposes on this replica: fails with NotLeader unless it is the leader.
    pub async fn propose_local(
        &self,
        cmd: crate::api::Command,
    ) -> Result<crate::api::CommandResponse, ReplicationError> {
        self.log.wait_for_room().await;
        match self.raft.client_write(cmd).await {
            Ok(r) => r.data.map_err(ReplicationError::Storage),
            Err(e) => Err(write_error(e)),
        }
    }

    /// Proposes on the group's leader, wherever it is: locally, or forwarded over the
    /// router. Retries while the group elects a leader, up to `forward_timeout`.
    pub async fn propose_on_leader(
        &self,
        cmd: crate::api::Command,
    ) -> Result<crate::api::CommandResponse, ReplicationError> {
        let deadline = tokio::time::Instant::now() + self.forward_timeout;
        loop {
            let leader = self.raft.metrics().borrow_watched().current_leader;
            let result = match leader {
                Some(l) if l == self.node_id => self.propose_local(cmd.clone()).await,
                Some(l) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match self
                        .router
                        .call(l, self.id, RaftRpc::Forward(cmd.clone()), left)
                        .await
                    {
                        Ok(RaftRpcReply::Forwarded(r)) => r,
                        Ok(other) => Err(ReplicationError::Raft(format!(
                            "unexpected reply to a forwarded proposal: {other:?}"
                        ))),
                        Err(e) => Err(ReplicationError::NotLeader {
                            leader: None,
                        })
                        .inspect_err(|_| {
                            tracing::debug!(group = self.id.0, leader = l, error = %e, "forward")
                        }),
                    }
                }
                None => Err(ReplicationError::NotLeader { leader: None }),
            };
            match result {
                Err(ReplicationError::NotLeader { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }
}

pub struct NodeInner {
    pub config: NodeConfig,
    pub db: Arc<Database>,
    pub writer: Writer,
    pub router: Router,
    raft_config: Arc<openraft::Config>,
    pub groups: RwLock<BTreeMap<GroupId, Arc<GroupInner>>>,
    open_lock: tokio::sync::Mutex<()>,
    shut: AtomicBool,
    /// Snapshot transfers being received.
    snapshots: crate::snapshot::Inbox,
}

/// Refuses a database written with another storage layout; stamps a new one with [`FORMAT`].
fn check_format(txn: &redb::WriteTransaction) -> Result<(), ReplicationError> {
    let mut node = txn.open_table(NODE).map_err(storage)?;
    let found = node.get("format").map_err(storage)?.map(|v| v.value());
    match found {
        Some(FORMAT) => Ok(()),
        Some(other) => Err(storage(format!(
            "the data directory has storage format {other}; this phxq reads format {FORMAT}"
        ))),
        None => {
            let used = !txn
                .open_table(LOG)
                .map_err(storage)?
                .is_empty()
                .map_err(storage)?
                || !txn
                    .open_table(BATCHES)
                    .map_err(storage)?
                    .is_empty()
                    .map_err(storage)?;
            if used {
                return Err(storage(format!(
                    "the data directory was written by an older phxq (batches inside redb); \
                     this phxq keeps them in segment files (storage format {FORMAT}) and \
                     cannot read it: start with an empty data directory"
                )));
            }
            node.insert("format", FORMAT).map_err(storage)?;
            Ok(())
        }
    }
}

/// How often the node looks whether segment files may have become garbage.
const COLLECT_EVERY: Duration = Duration::from_secs(10);

/// Deletes segment files nothing refers to, after rows referring to batches were deleted.
async fn collect_segments(node: std::sync::Weak<NodeInner>) {
    let mut tick = tokio::time::interval(COLLECT_EVERY);
    loop {
        tick.tick().await;
        let Some(n) = node.upgrade() else { return };
        if n.shut.load(Ordering::Relaxed) {
            return;
        }
        if !n.writer.segments.take_garbage() {
            continue;
        }
        drop(n);
        // The deletion that raised the flag commits right after; look after it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(n) = node.upgrade() else { return };
        if let Err(e) = n.collect_segments().await {
            tracing::warn!(error = %e, "collecting segment files failed");
        }
    }
}

impl NodeInner {
    /// Deletes the segment files no row refers to (see `segments::collect_garbage`).
    pub async fn collect_segments(&self) -> Result<Vec<u32>, ReplicationError> {
        let (db, segments) = (self.db.clone(), self.writer.segments.clone());
        tokio::task::spawn_blocking(move || crate::segments::collect_garbage(&db, &segments))
            .await
            .map_err(storage)?
            .map_err(storage)
    }
}

pub fn storage(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::Storage(e.to_string())
}

/// Maps an openraft error of a write onto the broker's error.
pub fn write_error(
    e: RaftError<crate::types::TypeConfig, ClientWriteError<crate::types::TypeConfig>>,
) -> ReplicationError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f))
        | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
            ReplicationError::NotLeader {
                leader: f.leader_id,
            }
        }
        RaftError::APIError(other) => ReplicationError::Raft(other.to_string()),
        RaftError::Fatal(f) => fatal_error(f),
    }
}

pub fn fatal_error(f: Fatal<crate::types::TypeConfig>) -> ReplicationError {
    match f {
        Fatal::StorageError(e) => ReplicationError::Storage(e.to_string()),
        Fatal::Stopped => ReplicationError::ShuttingDown,
        other => ReplicationError::Raft(other.to_string()),
    }
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
        let db = tokio::task::spawn_blocking(move || -> Result<Database, ReplicationError> {
            let db = match fault {
                None => redb::Builder::new()
                    .set_cache_size(config.cache_bytes)
                    .create(path)
                    .map_err(storage)?,
                Some(fault) => {
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(path)
                        .map_err(storage)?;
                    let backend = FaultyBackend::new(file, fault).map_err(storage)?;
                    redb::Builder::new()
                        .set_cache_size(config.cache_bytes)
                        .create_with_backend(backend)
                        .map_err(storage)?
                }
            };
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(LOG).map_err(storage)?;
            txn.open_table(GROUP_META).map_err(storage)?;
            txn.open_table(GROUPS).map_err(storage)?;
            txn.open_table(PARTITIONS).map_err(storage)?;
            txn.open_table(BATCHES).map_err(storage)?;
            txn.open_table(TIME_INDEX).map_err(storage)?;
            txn.open_table(PRODUCERS).map_err(storage)?;
            txn.open_table(KV).map_err(storage)?;
            check_format(&txn)?;
            txn.commit().map_err(storage)?;
            Ok(db)
        })
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
        let writer = Writer::start(db.clone(), segments.clone()).map_err(storage)?;
        let snapshots = crate::snapshot::Inbox::new(&config.data_dir);
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
            shut: AtomicBool::new(false),
            snapshots,
        });
        tokio::spawn(collect_segments(Arc::downgrade(&node)));
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
            self.writer.clone(),
            self.config.max_append_bytes,
        )
        .map_err(storage)?;
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
            },
            sm,
        )
        .await
        .map_err(fatal_error)?;
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
        self.writer.shutdown().await;
    }

    /// Delivers an RPC from another node to one of our groups.
    pub async fn handle_rpc(&self, group: GroupId, rpc: RaftRpc) -> Result<RaftRpcReply, String> {
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
            RaftRpc::SnapshotChunk(c) => self.snapshots.receive(&self.writer, &g, c).await,
        }
    }

    /// Voters of a group (for tests and the admin CLI).
    pub fn voters(&self, id: GroupId) -> BTreeSet<NodeId> {
        self.group(id)
            .map(|g| g.voters().into_iter().collect())
            .unwrap_or_default()
    }
}
