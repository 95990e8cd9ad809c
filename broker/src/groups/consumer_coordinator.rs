//! The coordinator's side of KIP-848 consumer groups: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe through the pure [`ConsumerGroup`], the group epoch made durable
//! (through the store group's Raft log) before an answer that carries it goes out, the
//! timers, and the scheduler's measurements: inflow per partition from the log end
//! offsets, backlog from the committed offsets, consume rate per member from its commits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::warn;

use super::configs::GroupSettings;
use super::consumer::{
    ConsumerGroup, Heartbeat, HeartbeatReply, MemberState, Refusal, TopicMetadata,
};
use super::consumer_protocol::TopicPartition;
use super::coordinator::{commit_error, GroupCoordinator, Slot};
use super::errors::*;
use super::offsets::CommittedOffset;
use super::views::Holders;
use crate::audit::deliveries::{Check, Verdict};
use crate::scheduler::{LoadFigures, PartitionLoad};

/// What the coordinator needs to know of topics and logs.
pub trait Catalog: TopicMetadata + Send + Sync {
    /// The log end offset of a partition on this broker's replica.
    fn log_end(&self, topic: &str, partition: i32) -> Option<i64>;
    /// The group's settings: its group configs over the broker's defaults.
    fn group_settings(&self, group: &str) -> GroupSettings;
    /// A share group's settings: its `share.*` group configs over the broker's.
    fn share_settings(&self, group: &str) -> crate::share::config::ShareSettings;
    /// `group.share.max.size`: members per share group.
    fn share_max_size(&self) -> u32;
    /// Makes known to every broker who holds which partition of a speed-limited group
    /// (empty: the group is not limited any more, or has no members).
    fn publish_holders(&self, group: &str, holders: Holders);
    /// Asks the partitions' leaders to check commits against what they delivered
    /// (`audit/`); one answer per check, in order.
    fn check_deliveries(
        &self,
        checks: Vec<Check>,
    ) -> futures::future::BoxFuture<'_, Vec<Result<Verdict, String>>>;
}

/// A member as ConsumerGroupDescribe and `phxq group describe` show it.
#[derive(Clone, Debug)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assigned: BTreeSet<TopicPartition>,
    pub revoking: BTreeSet<TopicPartition>,
    pub target: BTreeSet<TopicPartition>,
    pub state: MemberState,
    /// Records per second it committed recently, once measured.
    pub consume_rate: Option<f64>,
    /// Milliseconds since its last commit that moved a partition forward.
    pub idle_ms: Option<u64>,
    /// Log end minus committed offset, summed over the partitions it holds.
    pub backlog: i64,
}

#[derive(Clone, Debug)]
pub struct ConsumerGroupView {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<MemberView>,
    /// The scheduler's last decision: how long ago (ms), and why.
    pub last_decision: Option<(u64, String)>,
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat for `group_id`.
    pub async fn consumer_heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        hb: Heartbeat,
    ) -> Result<HeartbeatReply, Refusal> {
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
        let (reply, dirty) = {
            let mut core = slot.core();
            core.use_consumer_protocol().map_err(|code| {
                (
                    code,
                    format!(
                        "group {group_id} is a classic group with members, not a consumer group"
                    ),
                )
            })?;
            let g = &mut *core;
            let offsets = &g.offsets;
            let c = g.consumer.as_mut().expect("consumer protocol in use");
            let settings = catalog.group_settings(group_id);
            c.settings.session_timeout_ms = settings.session_timeout_ms;
            c.settings.heartbeat_interval_ms = settings.heartbeat_interval_ms;
            let load = |c: &ConsumerGroup| self.figures(c, offsets, catalog.as_ref(), now);
            let reply = c.heartbeat(hb, now, catalog.as_ref(), &load)?;
            (reply, c.epoch_dirty)
        };
        if dirty {
            self.store_epoch(&slot).await?;
        }
        self.publish_holders(std::slice::from_ref(&slot));
        Ok(reply)
    }

    /// Makes the group's epoch durable (KIP-848 and share groups); clears the dirty mark if
    /// nothing newer came since.
    pub(super) async fn store_epoch(&self, slot: &Slot) -> Result<(), Refusal> {
        let stored = self.persist(slot).await.map_err(|e| {
            (
                commit_error(&e),
                format!("cannot store the group epoch: {e}"),
            )
        })?;
        if let Some(epoch) = stored {
            slot.core().epoch_stored(epoch);
        }
        Ok(())
    }

    /// Timers of a KIP-848 group (called from the coordinator's tick): session and
    /// revocation timeouts, then a look at the load when the scheduler is due.
    pub(super) fn tick_consumer_group(self: &Arc<Self>, slot: &Arc<Slot>, now: u64) {
        let dirty = {
            let mut core = slot.core();
            let g = &mut *core;
            let offsets = &g.offsets;
            let Some(c) = g.consumer.as_mut() else {
                return;
            };
            c.tick(now);
            if c.load_review_due(now) {
                if let Some(catalog) = self.catalog() {
                    let figures = self.figures(c, offsets, catalog.as_ref(), now);
                    c.review_load(now, catalog.as_ref(), figures);
                }
            }
            c.epoch_dirty
        };
        if dirty {
            let (me, slot) = (self.clone(), slot.clone());
            tokio::spawn(async move {
                if let Err((code, msg)) = me.store_epoch(&slot).await {
                    warn!(group = %slot.id, code, "{msg}");
                }
            });
        }
    }

    /// Load figures of a group: inflow and backlog of its subscribed partitions.
    fn figures(
        &self,
        c: &ConsumerGroup,
        offsets: &BTreeMap<TopicPartition, CommittedOffset>,
        catalog: &dyn Catalog,
        now: u64,
    ) -> LoadFigures {
        let mut meter = self.inflow.lock().unwrap_or_else(|e| e.into_inner());
        let mut partitions = BTreeMap::new();
        for topic in c.subscribed_topics() {
            for p in 0..catalog.partition_count(&topic).unwrap_or(0) {
                let Some(end) = catalog.log_end(&topic, p) else {
                    continue;
                };
                let tp = (topic.clone(), p);
                let inflow_rps = meter.observe(&tp, end, now);
                // No commit yet: where the group starts is unknown, so no backlog is
                // assumed rather than a guess.
                let backlog = offsets.get(&tp).map_or(0, |o| (end - o.offset).max(0)) as f64;
                partitions.insert(
                    tp,
                    PartitionLoad {
                        inflow_rps,
                        backlog,
                    },
                );
            }
        }
        c.figures(partitions, now)
    }

    /// ConsumerGroupDescribe of one group: Ok(None) when absent, Err(GROUP_ID_NOT_FOUND)
    /// for a classic group.
    pub fn consumer_describe(&self, group_id: &str) -> Result<Option<ConsumerGroupView>, i16> {
        let Some(slot) = self.slot(group_id, false)? else {
            return Ok(None);
        };
        let now = self.now();
        let catalog = self.catalog();
        let g = slot.core();
        let Some(c) = &g.consumer else {
            return if g.is_vacant() {
                Ok(None)
            } else {
                Err(GROUP_ID_NOT_FOUND)
            };
        };
        let backlog = |tps: &BTreeSet<TopicPartition>| -> i64 {
            tps.iter()
                .filter_map(|tp| {
                    let end = catalog.as_ref()?.log_end(&tp.0, tp.1)?;
                    Some((end - g.offsets.get(tp).map_or(0, |o| o.offset)).max(0))
                })
                .sum()
        };
        let members = c
            .members
            .values()
            .map(|m| {
                let (consume_rate, idle_ms) = c.member_progress(&m.id, now);
                MemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topics.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_regex.clone(),
                    assigned: m.assigned.clone(),
                    revoking: m.revoking.clone(),
                    target: c.target.get(&m.id).cloned().unwrap_or_default(),
                    state: m.state,
                    consume_rate,
                    idle_ms,
                    backlog: backlog(&m.held()),
                }
            })
            .collect();
        Ok(Some(ConsumerGroupView {
            state: c.state_name(),
            group_epoch: c.group_epoch,
            assignment_epoch: c.assignment_epoch,
            assignor: c.assignor.clone(),
            members,
            last_decision: c
                .last_decision
                .as_ref()
                .map(|(t, d)| (now.saturating_sub(*t), d.reason.clone())),
        }))
    }

    /// OffsetFetch by a KIP-848 member (member id and epoch given): NONE when it may read.
    pub fn check_offset_fetch(&self, group_id: &str, member_id: &str, epoch: i32) -> i16 {
        match self.slot(group_id, false) {
            Ok(Some(slot)) => match &slot.core().consumer {
                Some(c) => c.check_fetch(member_id, epoch),
                None => NONE,
            },
            Ok(None) => UNKNOWN_MEMBER_ID,
            Err(code) => code,
        }
    }
}
