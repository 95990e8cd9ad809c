//! Background upkeep of a cluster member: keeps the topic registry, group configs, dynamic
//! broker configs and quotas in step with the metadata group (changes made through other
//! brokers) and hands each store group's leadership back to its preferred leader (the first
//! of its voters) once that broker is back and caught up, so leaders stay spread across
//! brokers after a failover.

use std::sync::Weak;
use std::time::Duration;

use phxq_replication::GroupId;
use tracing::{info, warn};

use crate::broker::Broker;

/// How often leadership is checked against the preferred placement.
const BALANCE_EVERY: Duration = Duration::from_secs(3);
/// A follower is caught up when it is at most this many entries behind.
const CAUGHT_UP_ENTRIES: u64 = 16;

/// Reloads the topic registry whenever the metadata group applies something.
pub async fn follow_metadata(broker: Weak<Broker>) {
    let Some(mut applied) = broker.upgrade().map(|b| b.metadata.applied_watch()) else {
        return;
    };
    while applied.changed().await.is_ok() {
        // A failed read keeps the registry as it was (never a partial one) and is retried
        // until it succeeds, not only at the next metadata change.
        loop {
            let Some(b) = broker.upgrade() else { return };
            let before: Vec<String> = b.topics.all().iter().map(|t| t.name.clone()).collect();
            match b
                .topics
                .reload(&b.metadata)
                .and_then(|()| b.group_configs.reload(&b.metadata))
                .and_then(|()| b.broker_configs.reload(&b.metadata))
                .and_then(|()| b.quotas.reload(&b.metadata))
                .and_then(|()| b.credentials.reload(&b.metadata))
                .and_then(|()| b.acls.reload(&b.metadata))
                .and_then(|()| b.leaders.reload(&b.metadata))
                .and_then(|()| {
                    b.quotas
                        .groups
                        .reload(&b.metadata, &b.group_configs, &b.config.groups)
                }) {
                Ok(()) => {
                    // A deleted topic's metric series go with it, on every broker.
                    for gone in before.iter().filter(|n| b.topics.get(n).is_none()) {
                        b.metrics.forget_topic(gone);
                    }
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "cannot reload topics, group configs, broker configs, quotas, credentials and ACLs; retrying")
                }
            }
            drop(b);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Moves leadership of store groups this broker leads to their preferred leader when that
/// broker has caught up.
pub async fn rebalance_leaders(broker: Weak<Broker>) {
    loop {
        tokio::time::sleep(BALANCE_EVERY).await;
        let Some(b) = broker.upgrade() else { return };
        let Some(cluster) = &b.config.cluster else {
            return;
        };
        for g in 1..=b.config.store_groups {
            let Some(group) = b.node.group(GroupId(g)) else {
                continue;
            };
            let Some(preferred) = cluster.voters(g).first().copied() else {
                continue;
            };
            if preferred == b.config.node_id || !group.leader_ready() {
                continue;
            }
            let st = group.status();
            let caught_up = st.replication.iter().any(|r| {
                r.node == preferred
                    && r.last_ack_ms.is_some_and(|ms| ms < 2000)
                    && r.matched.unwrap_or(0) + CAUGHT_UP_ENTRIES >= st.last_log.unwrap_or(0)
            });
            if caught_up {
                info!(
                    group = g,
                    to = preferred,
                    "handing leadership back to the preferred leader"
                );
                if let Err(e) = group.transfer_leader(preferred).await {
                    warn!(group = g, error = %e, "leader transfer failed");
                }
            }
        }
    }
}
