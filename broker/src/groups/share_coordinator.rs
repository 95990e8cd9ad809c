//! The coordinator's side of KIP-932 share groups: ShareGroupHeartbeat and
//! ShareGroupDescribe through the pure [`ShareGroup`] (`share/group.rs`), the group epoch
//! made durable (through the store group's Raft log, as the group's record of type
//! "share") before an answer that carries it goes out, and the session timeouts.
//!
//! Members live in memory: after a coordinator failover or restart a member's heartbeat
//! gets UNKNOWN_MEMBER_ID and it rejoins at epoch 0, at a group epoch above every one
//! handed out before (the durable epoch). What members hold lives with the partitions.

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::{info, warn};

use super::consumer_coordinator::Catalog;
use super::coordinator::{GroupCoordinator, Slot};
use super::errors::*;
use crate::share::assignor::TopicPartition;
use crate::share::group::{
    MembershipLimits, Refusal, ShareGroup, ShareHeartbeat, ShareHeartbeatReply, Topics,
};

/// A share group member as ShareGroupDescribe and `phxq group describe` show it.
#[derive(Clone, Debug)]
pub struct ShareMemberView {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub assigned: BTreeSet<TopicPartition>,
}

#[derive(Clone, Debug)]
pub struct ShareGroupView {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ShareMemberView>,
}

struct CatalogTopics<'a>(&'a dyn Catalog);

impl Topics for CatalogTopics<'_> {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.0.partition_count(topic)
    }
}

fn limits(catalog: &dyn Catalog, group: &str) -> MembershipLimits {
    let s = catalog.share_settings(group);
    MembershipLimits {
        session_timeout_ms: s.session_timeout_ms,
        heartbeat_interval_ms: s.heartbeat_interval_ms,
        max_size: catalog.share_max_size(),
    }
}

impl GroupCoordinator {
    /// ShareGroupHeartbeat for `group_id`.
    pub async fn share_heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        hb: ShareHeartbeat,
    ) -> Result<ShareHeartbeatReply, Refusal> {
        if group_id.is_empty() {
            return Err((INVALID_GROUP_ID, "the group id is empty".into()));
        }
        let catalog = self
            .catalog()
            .ok_or((COORDINATOR_NOT_AVAILABLE, String::new()))?;
        let slot = match self.slot(group_id, hb.member_epoch == 0) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err((
                    UNKNOWN_MEMBER_ID,
                    format!("group {group_id} has no member {}", hb.member_id),
                ))
            }
            Err(code) => return Err((code, String::new())),
        };
        let now = self.now();
        let limits = limits(catalog.as_ref(), group_id);
        let (reply, dirty) = {
            let mut core = slot.core();
            let s = core
                .use_share_protocol()
                .map_err(|code| (code, format!("Group {group_id} is not a share group.")))?;
            let joined = hb.member_epoch == 0;
            let member = hb.member_id.clone();
            let reply = s.heartbeat(hb, now, limits, &CatalogTopics(catalog.as_ref()))?;
            if joined {
                info!(group = %group_id, %member, epoch = s.group_epoch, "share group member joined");
            }
            (reply, s.epoch_dirty)
        };
        if dirty {
            self.store_epoch(&slot).await?;
        }
        // A speed-limited share group's limit applies on the brokers leading its partitions.
        self.publish_holders(std::slice::from_ref(&slot));
        Ok(reply)
    }

    /// Session timeouts of a share group (called from the coordinator's tick).
    pub(super) fn tick_share_group(self: &Arc<Self>, slot: &Arc<Slot>, now: u64) {
        let Some(catalog) = self.catalog() else {
            return;
        };
        let limits = limits(catalog.as_ref(), &slot.id);
        let dirty = {
            let mut core = slot.core();
            let Some(s) = core.share.as_mut() else {
                return;
            };
            if s.members.is_empty() {
                return;
            }
            for m in s.tick(now, limits, &CatalogTopics(catalog.as_ref())) {
                info!(group = %slot.id, member = %m, "share group member removed: no heartbeat within the session timeout");
            }
            s.epoch_dirty
        };
        self.publish_holders(std::slice::from_ref(slot));
        if dirty {
            let (me, slot) = (self.clone(), slot.clone());
            tokio::spawn(async move {
                if let Err((code, msg)) = me.store_epoch(&slot).await {
                    warn!(group = %slot.id, code, "{msg}");
                }
            });
        }
    }

    /// ShareGroupDescribe of one group: Ok(None) when absent, Err(GROUP_ID_NOT_FOUND) for
    /// a group of another type.
    pub fn share_describe(&self, group_id: &str) -> Result<Option<ShareGroupView>, i16> {
        let Some(slot) = self.slot(group_id, false)? else {
            return Ok(None);
        };
        let g = slot.core();
        let Some(s) = &g.share else {
            return if g.is_vacant() {
                Ok(None)
            } else {
                Err(GROUP_ID_NOT_FOUND)
            };
        };
        Ok(Some(view(s)))
    }
}

impl GroupCoordinator {
    /// Whether administrators may work on the share-partitions of `group_id`: it must be
    /// a share group coordinated here and, when `must_be_empty`, have no members
    /// (NON_EMPTY_GROUP). Returns the topics its members subscribe to.
    pub fn share_admin_check(
        &self,
        group_id: &str,
        must_be_empty: bool,
    ) -> Result<BTreeSet<String>, Refusal> {
        let slot = match self.slot(group_id, false) {
            Ok(Some(s)) => s,
            Ok(None) => return Err((GROUP_ID_NOT_FOUND, format!("Group {group_id} not found."))),
            Err(code) => return Err((code, String::new())),
        };
        let g = slot.core();
        let Some(s) = &g.share else {
            return Err((
                GROUP_ID_NOT_FOUND,
                format!("Group {group_id} is not a share group."),
            ));
        };
        if must_be_empty && !s.members.is_empty() {
            return Err((
                NON_EMPTY_GROUP,
                format!("Share group {group_id} has members; stop them first."),
            ));
        }
        Ok(s.subscribed_topics())
    }
}

fn view(s: &ShareGroup) -> ShareGroupView {
    ShareGroupView {
        state: s.state_name(),
        group_epoch: s.group_epoch,
        assignment_epoch: s.assignment_epoch,
        members: s
            .members
            .values()
            .map(|m| ShareMemberView {
                member_id: m.id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed.iter().cloned().collect(),
                assigned: m.assigned.clone(),
            })
            .collect(),
    }
}
