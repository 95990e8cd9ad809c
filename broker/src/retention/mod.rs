//! Retention: the background task that applies each topic's `retention.ms` and
//! `retention.bytes` on this broker. It owns the timer and the choice of partitions, and
//! nothing else:
//!
//! - every `log.retention.check.interval.ms`, for each partition whose store group this
//!   broker leads, it asks the replication layer which head of the log the topic's policy
//!   (`topic_configs::retention_policy`) drops (`StoreGroup::retention_cut`: whole
//!   segments, decided by the pure `partition::retention` of the replication crate);
//! - it moves the log start there with `Command::DeleteRecords` through the group's Raft
//!   log, the command Kafka's DeleteRecords uses: every replica applies the same log start
//!   and drops the same batches, and each node's segment collector then deletes the
//!   segment files no row refers to any more.
//!
//! Followers do nothing here: they apply what their leader decided. The batch index is
//! scanned on a blocking thread from a redb read transaction (no lock that produce or
//! fetch take), and a cut is proposed in bounded steps, so deletion never holds up the
//! data path for long. A read or proposal that fails is logged and retried at the next
//! check; it never counts as "nothing to delete".

pub mod config;

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use phxq_replication::{
    Command, CommandResponse, PartitionId, ReplicationError, RetentionCut, RetentionPolicy,
    StoreGroup,
};
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::topic_configs::retention_policy;

/// Checks for expired segments every `log.retention.check.interval.ms`, starting one
/// interval after the broker starts (so a restart does not delete before clients reconnect),
/// until the broker is gone.
pub async fn run(broker: Weak<Broker>) {
    let every = match broker.upgrade() {
        Some(b) => Duration::from_millis(b.config.log.retention_check_interval_ms),
        None => return,
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else {
            return;
        };
        let n = enforce(&b).await;
        if n > 0 {
            debug!(partitions = n, "retention moved log starts");
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One retention check over every partition this broker leads; returns how many
/// partitions' log starts moved.
pub async fn enforce(broker: &Arc<Broker>) -> usize {
    let now = now_ms();
    let mut moved = 0;
    // With the dynamic broker configs in effect (`log.retention.ms`, ...).
    let config = broker.broker_configs.effective();
    for topic in broker.topics.all() {
        let policy = retention_policy(&config, &topic);
        if !policy.limits() {
            continue;
        }
        for index in 0..topic.partition_count() {
            let Some((pid, g)) = topic.partition(index) else {
                continue;
            };
            let Ok(group) = broker.leading(g) else {
                continue;
            };
            let started = Instant::now();
            let cut = match plan(&group, pid, policy, now).await {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    warn!(topic = %topic.name, partition = index, "retention cannot read the partition; will retry: {e}");
                    continue;
                }
            };
            let (reached, outcome) = apply(&group, pid, &cut).await;
            if let Err(e) = outcome {
                warn!(topic = %topic.name, partition = index, "retention stopped short; will retry: {e}");
            }
            if let Some(start) = reached {
                moved += 1;
                info!(
                    topic = %topic.name,
                    partition = index,
                    log_start = start,
                    segments = cut.segments,
                    batches = cut.batches,
                    bytes = cut.bytes,
                    steps = cut.steps.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    complete = start >= cut.log_start,
                    "retention dropped old segments"
                );
            }
        }
    }
    moved
}

/// What the policy drops from `pid`, scanned on a blocking thread; None when nothing
/// goes (or the partition was deleted since the topic list was read).
async fn plan(
    group: &StoreGroup,
    pid: PartitionId,
    policy: RetentionPolicy,
    now: i64,
) -> Result<Option<RetentionCut>, String> {
    let scan = group.clone();
    match tokio::task::spawn_blocking(move || scan.retention_cut(pid, &policy, now)).await {
        Ok(Ok(cut)) => Ok(cut),
        Ok(Err(ReplicationError::UnknownPartition)) => Ok(None),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the scan did not finish: {e}")),
    }
}

/// Moves the log start of `pid` through the steps of `cut`, one Raft entry each; returns
/// the log start reached (None if not even the first step was applied) and why it
/// stopped early, if it did.
async fn apply(
    group: &StoreGroup,
    pid: PartitionId,
    cut: &RetentionCut,
) -> (Option<i64>, Result<(), String>) {
    let mut reached = None;
    for step in &cut.steps {
        let outcome = group
            .propose(Command::DeleteRecords(vec![(pid, *step)]))
            .await;
        match outcome {
            Ok(CommandResponse::RecordsDeleted(r)) => match r.first() {
                Some(Ok(start)) => reached = Some(*start),
                other => return (reached, Err(format!("step to {step} refused: {other:?}"))),
            },
            Ok(other) => return (reached, Err(format!("unexpected answer {other:?}"))),
            Err(e) => return (reached, Err(format!("step to {step} not committed: {e}"))),
        }
    }
    (reached, Ok(()))
}
