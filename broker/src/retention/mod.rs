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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phxq_replication::{Command, CommandResponse, ReplicationError, RetentionCut};
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
    for topic in broker.topics.all() {
        let policy = retention_policy(&broker.config, &topic);
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
            let started = std::time::Instant::now();
            let scan = group.clone();
            let cut =
                tokio::task::spawn_blocking(move || scan.retention_cut(pid, &policy, now)).await;
            let cut: RetentionCut = match cut {
                Ok(Ok(Some(c))) => c,
                // Deleted since the topic list was read.
                Ok(Ok(None)) | Ok(Err(ReplicationError::UnknownPartition)) => continue,
                Ok(Err(e)) => {
                    warn!(topic = %topic.name, partition = index, error = %e, "retention cannot read the partition; will retry");
                    continue;
                }
                Err(e) => {
                    warn!(topic = %topic.name, partition = index, error = %e, "retention scan failed; will retry");
                    continue;
                }
            };
            let mut reached = None;
            for step in &cut.steps {
                match group
                    .propose(Command::DeleteRecords(vec![(pid, *step)]))
                    .await
                {
                    Ok(CommandResponse::RecordsDeleted(r)) => match r.first() {
                        Some(Ok(start)) => reached = Some(*start),
                        other => {
                            warn!(topic = %topic.name, partition = index, ?other, "retention step refused");
                            break;
                        }
                    },
                    Ok(other) => {
                        warn!(topic = %topic.name, partition = index, ?other, "unexpected answer to a retention step");
                        break;
                    }
                    Err(e) => {
                        warn!(topic = %topic.name, partition = index, error = %e, "retention step not committed; will retry");
                        break;
                    }
                }
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
                    "retention dropped old segments"
                );
            }
        }
    }
    moved
}
