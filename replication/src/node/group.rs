//! One Raft group as hosted on a node: its openraft instance, the readers' view of its
//! partitions and its log's memory, with proposing (locally or forwarded to the leader),
//! linearizable reads, leadership queries and status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::partition::compact_rows::{check_replacement, replace_batches};
use crate::partition::view::GroupShared;
use crate::raft::log_mem::LogShared;
use crate::raft::rpc::{RaftRpc, RaftRpcReply, Router};
use crate::raft::work::RaftWriter;
use crate::raft::{fatal_error, write_error, Raft};
use crate::types::{
    BatchReplacement, Command, CommandResponse, Elections, GroupId, GroupStatus, NodeId,
    PartitionId, ReplicaProgress, ReplicationError,
};

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
    /// The node's writer, for log compaction's swaps.
    pub writer: RaftWriter,
    /// What this replica has seen of the group's elections (`Elections`).
    pub elections: Arc<ElectionsSeen>,
}

/// Term stored when the replica started, and new leaderships seen since (`watch_leaders`).
#[derive(Debug, Default)]
pub struct ElectionsSeen {
    pub start_term: u64,
    pub leader_changes: AtomicU64,
}

/// Counts the new leaderships the group's Raft reports until it stops. It follows openraft's
/// server metrics, which change only with the vote, role, leader or membership (not with
/// every append), so this wakes on elections, not on traffic.
/// Each change is logged (store group, leader, term), and so is each election this node
/// starts (it became a candidate: its term and why it got there is the leader it lost).
pub fn watch_leaders(group: GroupId, raft: &Raft, seen: Arc<ElectionsSeen>) {
    let mut rx = raft.server_metrics();
    tokio::spawn(async move {
        let mut last: Option<(u64, NodeId)> = None;
        let mut candidate_term: Option<u64> = None;
        loop {
            let (now, campaign) = {
                let m = rx.borrow_watched();
                let term = m.vote.leader_id().term;
                (
                    m.current_leader.map(|l| (term, l)),
                    (m.state == openraft::ServerState::Candidate).then_some(term),
                )
            };
            if let Some(term) = campaign.filter(|t| candidate_term != Some(*t)) {
                tracing::info!(
                    store_group = group.0,
                    term,
                    last_leader = ?last.map(|l| l.1),
                    "starting an election"
                );
                candidate_term = Some(term);
            }
            if let Some(now) = now {
                if last.is_some_and(|l| l != now) {
                    seen.leader_changes.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        store_group = group.0,
                        leader = now.1,
                        term = now.0,
                        "store group has a new leader"
                    );
                }
                last = Some(now);
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

impl GroupInner {
    /// Swaps compacted batches of `p` in, in one durable writer transaction, if every row
    /// they replace is unchanged (see `partition::compact_rows`); false when one changed.
    pub async fn replace_batches(
        &self,
        p: PartitionId,
        reps: Vec<BatchReplacement>,
    ) -> Result<bool, ReplicationError> {
        reps.iter().try_for_each(check_replacement)?;
        let segments = self.shared.segments.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapped = done.clone();
        self.writer
            .exec(
                true,
                Box::new(move |txn| {
                    let ok = replace_batches(txn, &segments, p, &reps)?;
                    swapped.store(ok, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                }),
            )
            .await
            .map_err(ReplicationError::storage)?;
        Ok(done.load(std::sync::atomic::Ordering::SeqCst))
    }

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
    pub async fn propose_local(&self, cmd: Command) -> Result<CommandResponse, ReplicationError> {
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
        cmd: Command,
    ) -> Result<CommandResponse, ReplicationError> {
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

    /// Confirms that this replica is the leader with a quorum round trip and waits until
    /// everything committed before is applied and visible to reads: after it, reads here see
    /// every write acknowledged by any earlier leader.
    pub async fn ensure_linearizable(&self) -> Result<(), ReplicationError> {
        use openraft::raft::ReadPolicy;
        // A new leader serves reads once it has committed an entry of its own term; until
        // then openraft answers ForwardToLeader even on the leader, so retry a little.
        let deadline = tokio::time::Instant::now() + self.forward_timeout;
        let read = loop {
            match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                Ok(read) => break read,
                Err(openraft::error::RaftError::APIError(
                    openraft::error::LinearizableReadError::ForwardToLeader(f),
                )) => {
                    if !self.is_leader() || tokio::time::Instant::now() >= deadline {
                        return Err(ReplicationError::NotLeader {
                            leader: f.leader_id,
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(other) => return Err(ReplicationError::Raft(other.to_string())),
            }
        };
        let target = read.log_id().index;
        let mut w = self.shared.applied_watch();
        w.wait_for(|n| *n >= target)
            .await
            .map_err(|_| ReplicationError::ShuttingDown)?;
        Ok(())
    }

    /// Asks the leader to hand leadership to `to` (ignored on a follower).
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), ReplicationError> {
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(fatal_error)
    }

    /// Queues a command in the group's Raft log behind every earlier submission and returns
    /// without waiting for it to commit; the returned future resolves as [`propose`] would.
    /// Submissions made one after another enter the log in that order, so a connection can
    /// keep several produce requests in flight without reordering a producer's batches.
    ///
    /// [`propose`]: crate::api::StoreGroup::propose
    pub async fn submit(
        &self,
        cmd: Command,
    ) -> Result<
        impl std::future::Future<Output = Result<CommandResponse, ReplicationError>> + Send + 'static,
        ReplicationError,
    > {
        self.log.wait_for_room().await;
        let (responder, rx) = openraft::impls::ProgressResponder::complete_only();
        self.raft
            .client_write_ff(cmd, Some(responder))
            .await
            .map_err(fatal_error)?;
        Ok(async move {
            match rx.await {
                Ok(Ok(r)) => r.data.map_err(ReplicationError::Storage),
                Ok(Err(e)) => Err(write_error(openraft::error::RaftError::APIError(e))),
                Err(_) => Err(ReplicationError::ShuttingDown),
            }
        })
    }

    /// The current term if this replica is the group's leader.
    pub fn leader_term(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        (m.current_leader == Some(self.node_id) && m.state.is_leader()).then_some(m.current_term)
    }

    /// True when this replica leads the group and reads here see every entry committed by
    /// earlier leaders (the entry opening its term is applied). A new leader is not ready
    /// for a moment after its election: serving reads then could show an old high
    /// watermark.
    pub fn leader_ready(&self) -> bool {
        self.leader_term()
            .is_some_and(|t| self.shared.applied_term() >= t)
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.node_id)
    }

    /// The leader epoch of the group's partitions (KIP-320): the term of the leader this
    /// replica knows, `None` while it knows none.
    pub fn leader_epoch(&self) -> Option<i32> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        m.current_leader
            .map(|_| i32::try_from(m.current_term).unwrap_or(i32::MAX))
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// The group's elections as this replica saw them since it started.
    pub fn elections(&self) -> Elections {
        let term = self.raft.metrics().borrow_watched().current_term;
        Elections {
            terms_begun: term.saturating_sub(self.elections.start_term),
            leader_changes: self.elections.leader_changes.load(Ordering::Relaxed),
        }
    }

    /// The group's Raft state as this node sees it.
    pub fn status(&self) -> GroupStatus {
        use openraft::Instant;
        let m = self.raft.metrics().borrow_watched().clone();
        let me = self.node_id;
        let replication = match (&m.replication, &m.heartbeat) {
            (Some(r), hb) => r
                .iter()
                .filter(|(n, _)| **n != me)
                .map(|(n, matched)| ReplicaProgress {
                    node: *n,
                    matched: matched.as_ref().map(|l| l.index),
                    last_ack_ms: hb
                        .as_ref()
                        .and_then(|h| h.get(n).cloned().flatten())
                        .map(|t| t.elapsed().as_millis() as u64),
                })
                .collect(),
            (None, _) => Vec::new(),
        };
        GroupStatus {
            group: self.id,
            node: me,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            voters: m.membership_config.membership().voter_ids().collect(),
            last_log: m.last_log_index,
            committed: m.local_committed.map(|l| l.index),
            applied: m.last_applied.map(|l| l.index),
            replication,
        }
    }

    /// A one-line summary of the group's Raft state (term, leader, log, commit, applied).
    pub fn raft_status(&self) -> String {
        let m = self.raft.metrics().borrow_watched().clone();
        format!(
            "group={} state={:?} term={} leader={:?} last_log={:?} committed={:?} applied={:?} purged={:?}",
            self.id.0,
            m.state,
            m.current_term,
            m.current_leader,
            m.last_log_index,
            m.local_committed.map(|x| x.index),
            m.last_applied.map(|x| x.index),
            m.purged.map(|x| x.index),
        )
    }
}
