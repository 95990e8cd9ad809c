//! The group coordinator of this broker: every group whose home store group (a stable hash
//! of the group id, see [`super::home_index`]) this node leads, each a pure [`Group`] behind
//! a mutex, plus what the core cannot do itself:
//!
//! - parks JoinGroup/SyncGroup requests until the core answers their [`Token`]s;
//! - runs the timers (a tick every [`TICK`]) for session and rebalance timeouts;
//! - makes the group record durable (generation, protocol) through the store group's Raft
//!   log *before* the JoinGroup answers of a new generation go out, so a restarted
//!   coordinator never hands out a generation twice;
//! - (in `commits.rs`) writes each OffsetCommit as one `Command::Put` proposal and
//!   acknowledges it only once it is committed, then updates the in-memory offsets;
//! - rebuilds groups (generation, protocol, offsets) from the store group after a restart,
//!   and whenever this node becomes a store group's leader (failover): the timer task sees
//!   the new term, waits for a linearizable read (everything an earlier leader committed is
//!   applied here), and loads the groups afresh; until then requests for those groups get
//!   COORDINATOR_LOAD_IN_PROGRESS. A store group this node stops leading drops its groups
//!   (parked requests get NOT_COORDINATOR and clients find the new coordinator).
//!
//! Per group, an async `io` mutex orders commits, offset reads and record writes: a commit
//! checked against the lock table finishes before a later OffsetFetch (say, by the
//! partition's next owner) reads the offsets.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use phxq_replication::{Command, GroupId, ReplicaNode, ReplicationError, StoreGroup};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::consumer_coordinator::Catalog;
use super::consumer_protocol::TopicPartition;
use super::errors::*;
use super::group::{Effects, Group, GroupState, JoinResult, Reply, SyncResult};
use super::member::Token;
use super::offsets::{self, CommittedOffset, GroupRecord};
use super::rebalance::{JoinRequest, SyncRequest};
use super::views::{GroupDescription, Holders};
use super::GroupConfig;
use crate::audit::reconcile::PartitionAudit;
use crate::scheduler::inflow::InflowMeter;

/// Timer resolution for session and rebalance timeouts.
pub const TICK: Duration = Duration::from_millis(50);
/// Vacant groups are forgotten every this many ticks.
const SWEEP_EVERY: u64 = 100;
/// Ticks between two looks at the lock holders of speed-limited groups (200 ms: until a
/// new holder is published, its fetches are not attributed to the group).
const PUBLISH_EVERY: u64 = 4;

/// Partition count of a topic, `None` if it does not exist.
pub type PartitionCounts<'a> = &'a (dyn Fn(&str) -> Option<i32> + Sync);

/// One group and the requests parked on it.
pub struct Slot {
    pub id: String,
    /// The store group holding this group's record and offsets.
    pub store: GroupId,
    core: Mutex<Group>,
    pub(super) io: tokio::sync::Mutex<()>,
    waiters: Mutex<HashMap<Token, oneshot::Sender<Reply>>>,
}

impl Slot {
    fn new(group: Group, store: GroupId) -> Arc<Slot> {
        Arc::new(Slot {
            id: group.id.clone(),
            store,
            core: Mutex::new(group),
            io: tokio::sync::Mutex::new(()),
            waiters: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn core(&self) -> std::sync::MutexGuard<'_, Group> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deliver(&self, replies: Vec<(Token, Reply)>) {
        let mut waiters = self.waiters.lock().unwrap();
        for (token, reply) in replies {
            if let Some(tx) = waiters.remove(&token) {
                let _ = tx.send(reply);
            }
        }
    }
}

pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    node: Arc<ReplicaNode>,
    store_groups: Vec<GroupId>,
    clock: Instant,
    pub(super) groups: Mutex<HashMap<String, Arc<Slot>>>,
    /// Per store group: the leader term whose groups are loaded, or are being loaded.
    loaded: Mutex<HashMap<GroupId, Load>>,
    next_token: AtomicU64,
    /// Generations of classic groups started here (rebalances), for the metrics.
    rebalances: AtomicU64,
    /// Topics and logs, for KIP-848 groups (set once the broker is built).
    catalog: OnceLock<Weak<dyn Catalog>>,
    /// Inflow of the partitions KIP-848 groups subscribe to (the scheduler's input).
    pub(super) inflow: Mutex<InflowMeter>,
    /// The lock holders last published per speed-limited group.
    pub(super) published_holders: Mutex<HashMap<String, Holders>>,
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug)]
pub struct ListedGroup {
    pub id: String,
    pub protocol_type: String,
    /// Kafka's state name for the group's type.
    pub state: &'static str,
    /// "classic" or "consumer".
    pub group_type: &'static str,
}

/// Where the groups of one store group stand on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    Loading(u64),
    Ready(u64),
}

pub(super) fn commit_error(e: &ReplicationError) -> i16 {
    match e {
        ReplicationError::NotLeader { .. } => NOT_COORDINATOR,
        _ => COORDINATOR_NOT_AVAILABLE,
    }
}

impl GroupCoordinator {
    /// Creates the coordinator, loads the groups of the store groups this node leads and
    /// starts the timer task.
    pub fn start(
        config: GroupConfig,
        node: Arc<ReplicaNode>,
        store_groups: Vec<GroupId>,
    ) -> Arc<GroupCoordinator> {
        let me = Arc::new(GroupCoordinator {
            config,
            node,
            store_groups,
            clock: Instant::now(),
            groups: Mutex::new(HashMap::new()),
            rebalances: AtomicU64::new(0),
            loaded: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            catalog: OnceLock::new(),
            inflow: Mutex::new(InflowMeter::default()),
            published_holders: Mutex::new(HashMap::new()),
        });
        me.load_all();
        tokio::spawn(run_timers(Arc::downgrade(&me)));
        me
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Gives the coordinator the broker's view of topics and logs (KIP-848 groups).
    pub fn set_catalog(&self, catalog: Weak<dyn Catalog>) {
        if self.catalog.set(catalog).is_err() {
            warn!("group coordinator catalog set twice; keeping the first");
        }
    }

    pub(super) fn catalog(&self) -> Option<Arc<dyn Catalog>> {
        self.catalog.get()?.upgrade()
    }

    pub(super) fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub fn home(&self, group_id: &str) -> GroupId {
        self.store_groups[super::home_index(group_id, self.store_groups.len())]
    }

    /// The node coordinating `group_id`: the leader of its home store group.
    pub fn coordinator_node(&self, group_id: &str) -> Result<u64, i16> {
        let store = self
            .node
            .group(self.home(group_id))
            .ok_or(COORDINATOR_NOT_AVAILABLE)?;
        store.leader().ok_or(COORDINATOR_NOT_AVAILABLE)
    }

    /// The store group `gid` if this node leads it and its groups are loaded for the
    /// current term.
    pub(super) fn store(&self, gid: GroupId) -> Result<StoreGroup, i16> {
        let store = self.node.group(gid).ok_or(COORDINATOR_NOT_AVAILABLE)?;
        let term = store.leader_term().ok_or(NOT_COORDINATOR)?;
        match self.loaded.lock().unwrap().get(&gid) {
            Some(Load::Ready(t)) if *t == term => Ok(store),
            _ => Err(COORDINATOR_LOAD_IN_PROGRESS),
        }
    }

    /// At start: loads the store groups this node leads with everything applied (a single
    /// node, whose groups are open and caught up by now). Others load on the timer.
    fn load_all(&self) {
        for gid in self.store_groups.clone() {
            let Some(store) = self.node.group(gid) else {
                continue;
            };
            if let (Some(term), [_]) = (store.leader_term(), store.voters().as_slice()) {
                self.load_or_retry(gid, &store, term);
            }
        }
    }

    /// Follows leadership changes of the store groups (called every tick): starts loading
    /// the groups of a store group this node has just become leader of, and drops those of
    /// one it no longer leads.
    fn follow_leadership(self: &Arc<Self>) {
        for gid in self.store_groups.clone() {
            let Some(store) = self.node.group(gid) else {
                continue;
            };
            let term = store.leader_term();
            let state = self.loaded.lock().unwrap().get(&gid).copied();
            match (term, state) {
                (Some(t), Some(Load::Ready(l) | Load::Loading(l))) if l == t => {}
                (Some(t), _) => {
                    self.unload(gid);
                    self.loaded.lock().unwrap().insert(gid, Load::Loading(t));
                    let me = self.clone();
                    tokio::spawn(async move {
                        match store.ensure_linearizable().await {
                            Ok(()) => me.load_or_retry(gid, &store, t),
                            Err(e) => {
                                warn!(store_group = gid.0, error = %e, "cannot load consumer groups after election");
                                me.loaded.lock().unwrap().remove(&gid);
                            }
                        }
                    });
                }
                (None, Some(_)) => {
                    self.unload(gid);
                    self.loaded.lock().unwrap().remove(&gid);
                    info!(
                        store_group = gid.0,
                        "no longer the leader: consumer groups handed over"
                    );
                }
                (None, None) => {}
            }
        }
    }

    /// Forgets the groups of `gid`; their parked requests fail with NOT_COORDINATOR.
    fn unload(&self, gid: GroupId) {
        let dropped: Vec<Arc<Slot>> = {
            let mut groups = self.groups.lock().unwrap();
            let ids: Vec<String> = groups
                .iter()
                .filter(|(_, s)| s.store == gid)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| groups.remove(id)).collect()
        };
        // Another broker coordinates these groups now and publishes their holders; what
        // this one published last must not stop it from publishing again if they return.
        let mut published = self.published_holders.lock().unwrap();
        for slot in dropped {
            published.remove(&slot.id);
            slot.waiters.lock().unwrap().clear();
        }
    }

    /// Loads the groups of `gid`; when their records cannot be read, leaves `gid` not
    /// loaded (clients are told COORDINATOR_LOAD_IN_PROGRESS) and the next tick retries,
    /// instead of serving an empty state.
    fn load_or_retry(&self, gid: GroupId, store: &StoreGroup, term: u64) {
        if let Err(e) = self.load(gid, store, term) {
            warn!(store_group = gid.0, error = %e, "cannot read consumer groups; will retry");
            self.loaded.lock().unwrap().remove(&gid);
        }
    }

    /// Rebuilds the groups stored in `gid` from its applied state, for leader term `term`.
    fn load(&self, gid: GroupId, store: &StoreGroup, term: u64) -> Result<(), ReplicationError> {
        let mut found: BTreeMap<String, Group> = BTreeMap::new();
        for (key, value) in store.kv_scan(offsets::GROUPS_PREFIX.as_bytes())? {
            match (
                offsets::parse_group_key(&key),
                offsets::decode::<GroupRecord>(&value),
            ) {
                (Some(id), Some(rec)) => {
                    found.insert(
                        id.clone(),
                        Group::from_record(&id, self.config.clone(), &rec),
                    );
                }
                _ => {
                    warn!(key = %String::from_utf8_lossy(&key), "skipping unreadable group record")
                }
            }
        }
        let mut offsets_loaded = 0usize;
        for (key, value) in store.kv_scan(offsets::OFFSETS_PREFIX.as_bytes())? {
            match (
                offsets::parse_offset_key(&key),
                offsets::decode::<CommittedOffset>(&value),
            ) {
                (Some((id, tp)), Some(c)) => {
                    found
                        .entry(id.clone())
                        .or_insert_with(|| Group::new(&id, self.config.clone()))
                        .offsets
                        .insert(tp, c);
                    offsets_loaded += 1;
                }
                _ => {
                    warn!(key = %String::from_utf8_lossy(&key), "skipping unreadable committed offset")
                }
            }
        }
        for (key, value) in store.kv_scan(offsets::AUDIT_PREFIX.as_bytes())? {
            match (
                offsets::parse_audit_key(&key),
                offsets::decode::<PartitionAudit>(&value),
            ) {
                (Some((id, tp)), Some(a)) => {
                    if let Some(g) = found.get_mut(&id) {
                        g.audit.insert(tp, a);
                    }
                }
                _ => {
                    warn!(key = %String::from_utf8_lossy(&key), "skipping unreadable audit record")
                }
            }
        }
        for (key, value) in store.kv_scan(offsets::TXN_OFFSETS_PREFIX.as_bytes())? {
            match (
                offsets::parse_txn_offsets_key(&key),
                offsets::decode::<Vec<(TopicPartition, CommittedOffset)>>(&value),
            ) {
                (Some((id, producer_id)), Some(list)) => {
                    found
                        .entry(id.clone())
                        .or_insert_with(|| Group::new(&id, self.config.clone()))
                        .txn_offsets
                        .insert(producer_id, list.into_iter().collect());
                }
                _ => {
                    warn!(key = %String::from_utf8_lossy(&key), "skipping unreadable transactional offsets")
                }
            }
        }
        let count = found.len();
        {
            let mut loaded = self.loaded.lock().unwrap();
            if store.leader_term() != Some(term) {
                // Lost leadership while loading: the next tick sorts it out.
                loaded.remove(&gid);
                return Ok(());
            }
            let mut groups = self.groups.lock().unwrap();
            for (id, g) in found {
                groups.insert(id.clone(), Slot::new(g, gid));
            }
            loaded.insert(gid, Load::Ready(term));
        }
        if count > 0 {
            info!(
                store_group = gid.0,
                groups = count,
                offsets = offsets_loaded,
                "consumer groups loaded"
            );
        }
        Ok(())
    }

    /// The group's slot, created if `create` and absent. Errors when this node does not
    /// coordinate the group.
    pub(super) fn slot(&self, group_id: &str, create: bool) -> Result<Option<Arc<Slot>>, i16> {
        let gid = self.home(group_id);
        self.store(gid)?;
        let mut groups = self.groups.lock().unwrap();
        if let Some(s) = groups.get(group_id) {
            return Ok(Some(s.clone()));
        }
        if !create {
            return Ok(None);
        }
        let s = Slot::new(Group::new(group_id, self.config.clone()), gid);
        groups.insert(group_id.to_string(), s.clone());
        Ok(Some(s))
    }

    fn register(&self, slot: &Slot) -> (Token, oneshot::Receiver<Reply>) {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        slot.waiters.lock().unwrap().insert(token, tx);
        (token, rx)
    }

    /// Carries out a core operation's effects: persist first if a generation was created,
    /// then answer the parked requests.
    pub(super) fn dispatch(self: &Arc<Self>, slot: &Arc<Slot>, fx: Effects) {
        self.rebalances
            .fetch_add(u64::from(fx.rebalances), Ordering::Relaxed);
        if !fx.persist {
            if !fx.replies.is_empty() {
                slot.deliver(fx.replies);
            }
            return;
        }
        let (me, slot) = (self.clone(), slot.clone());
        tokio::spawn(async move {
            match me.persist(&slot).await {
                Ok(_) => slot.deliver(fx.replies),
                Err(e) => {
                    warn!(group = %slot.id, error = %e, "cannot store the group's generation: members must rejoin");
                    let mut again = Effects::default();
                    slot.core().persist_failed(me.now(), &mut again);
                    let failed = fx.replies.into_iter().map(|(t, r)| match r {
                        Reply::Join(j) if j.error == NONE => (
                            t,
                            Reply::Join(JoinResult::error(&j.member_id, COORDINATOR_NOT_AVAILABLE)),
                        ),
                        other => (t, other),
                    });
                    slot.deliver(failed.chain(again.replies).collect());
                }
            }
        });
    }

    /// Writes the group's current record (the latest state at the time of writing: writes
    /// are serialized by `io`, so the stored generation never goes back). Returns the
    /// generation (or group epoch) written, `None` for a deleted group.
    pub(super) async fn persist(&self, slot: &Slot) -> Result<Option<i32>, ReplicationError> {
        let _io = slot.io.lock().await;
        let record = {
            let g = slot.core();
            if g.state == GroupState::Dead {
                return Ok(None);
            }
            g.record()
        };
        let generation = record.generation;
        let store = self
            .node
            .group(slot.store)
            .ok_or(ReplicationError::ShuttingDown)?;
        store
            .propose(Command::Put(vec![(
                offsets::group_key(&slot.id),
                Some(offsets::encode(&record)),
            )]))
            .await
            .map(|_| Some(generation))
    }

    /// One timer tick over every group with members; `sweep` also forgets vacant groups.
    fn tick_all(self: &Arc<Self>, tick_no: u64, sweep: bool) {
        let slots: Vec<Arc<Slot>> = self.groups.lock().unwrap().values().cloned().collect();
        let now = self.now();
        for slot in &slots {
            if slot.core().consumer.is_some() {
                self.tick_consumer_group(slot, now);
                continue;
            }
            if slot.core().share.is_some() {
                self.tick_share_group(slot, now);
                continue;
            }
            let mut fx = Effects::default();
            {
                let mut g = slot.core();
                if g.members.is_empty()
                    && g.pending_members.is_empty()
                    && g.state != GroupState::PreparingRebalance
                {
                    continue;
                }
                g.tick(now, &mut fx);
            }
            self.dispatch(slot, fx);
        }
        if tick_no.is_multiple_of(PUBLISH_EVERY) {
            self.publish_holders(&slots);
        }
        let interval = self.config.offsets_retention_check_interval_ms / TICK.as_millis() as u64;
        if tick_no.is_multiple_of(interval.max(1)) {
            self.expire_offsets(&slots);
        }
        if !sweep {
            return;
        }
        let wall = offsets::now_ms();
        for slot in &slots {
            slot.core().note_emptiness(wall);
        }
        // Forget groups that never got anywhere (e.g. a JoinGroup refused before the member
        // was added), unless a request is using them right now: handlers hold a clone of
        // the slot, taken under this same map lock.
        self.groups
            .lock()
            .unwrap()
            .retain(|_, s| Arc::strong_count(s) > 1 || !s.core().is_vacant());
    }

    pub async fn join(self: &Arc<Self>, group_id: &str, req: JoinRequest) -> JoinResult {
        let fail = |code| JoinResult::error(&req.member_id, code);
        if group_id.is_empty() {
            return fail(INVALID_GROUP_ID);
        }
        let slot = match self.slot(group_id, req.member_id.is_empty()) {
            Ok(Some(s)) => s,
            Ok(None) => return fail(UNKNOWN_MEMBER_ID),
            Err(code) => return fail(code),
        };
        let member_id = req.member_id.clone();
        let (token, rx) = self.register(&slot);
        let mut fx = Effects::default();
        slot.core().join(req, token, self.now(), &mut fx);
        self.dispatch(&slot, fx);
        match rx.await {
            Ok(Reply::Join(r)) => r,
            _ => JoinResult::error(&member_id, COORDINATOR_NOT_AVAILABLE),
        }
    }

    pub async fn sync(
        self: &Arc<Self>,
        group_id: &str,
        req: SyncRequest,
        counts: PartitionCounts<'_>,
    ) -> SyncResult {
        if group_id.is_empty() {
            return SyncResult::error(INVALID_GROUP_ID);
        }
        let slot = match self.slot(group_id, false) {
            Ok(Some(s)) => s,
            Ok(None) => return SyncResult::error(UNKNOWN_MEMBER_ID),
            Err(code) => return SyncResult::error(code),
        };
        let (token, rx) = self.register(&slot);
        let mut fx = Effects::default();
        {
            let mut g = slot.core();
            g.sync(req, token, self.now(), &mut fx);
            g.set_partition_baseline(counts);
        }
        // Before the members learn their partitions, so their first fetch is attributed.
        self.publish_holders(std::slice::from_ref(&slot));
        self.dispatch(&slot, fx);
        match rx.await {
            Ok(Reply::Sync(r)) => r,
            _ => SyncResult::error(COORDINATOR_NOT_AVAILABLE),
        }
    }

    pub fn heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        counts: PartitionCounts<'_>,
    ) -> i16 {
        if group_id.is_empty() {
            return INVALID_GROUP_ID;
        }
        let slot = match self.slot(group_id, false) {
            Ok(Some(s)) => s,
            Ok(None) => return UNKNOWN_MEMBER_ID,
            Err(code) => return code,
        };
        let now = self.now();
        let mut fx = Effects::default();
        let code = {
            let mut g = slot.core();
            g.check_partition_counts(counts, now, &mut fx);
            g.heartbeat(member_id, instance_id, generation, now)
        };
        self.dispatch(&slot, fx);
        code
    }

    /// LeaveGroup for several members: a group-level error, or one code per member.
    pub fn leave(
        self: &Arc<Self>,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        if group_id.is_empty() {
            return Err(INVALID_GROUP_ID);
        }
        let slot = match self.slot(group_id, false)? {
            Some(s) => s,
            None => return Ok(vec![UNKNOWN_MEMBER_ID; members.len()]),
        };
        let now = self.now();
        let mut fx = Effects::default();
        let codes = {
            let mut g = slot.core();
            if g.state == GroupState::Dead {
                return Err(COORDINATOR_NOT_AVAILABLE);
            }
            members
                .iter()
                .map(|(m, i)| g.leave(m, i.as_deref(), now, &mut fx))
                .collect()
        };
        self.dispatch(&slot, fx);
        Ok(codes)
    }

    /// Rebalances (new generations) of classic groups this node coordinated since it started.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    /// Every group this node coordinates, by id.
    pub fn list(&self) -> Vec<ListedGroup> {
        let slots: Vec<Arc<Slot>> = self.groups.lock().unwrap().values().cloned().collect();
        let mut out: Vec<_> = slots
            .iter()
            .filter(|s| self.store(s.store).is_ok())
            .filter_map(|s| {
                let g = s.core();
                (g.state != GroupState::Dead).then(|| ListedGroup {
                    id: s.id.clone(),
                    protocol_type: match (&g.consumer, &g.share) {
                        (_, Some(_)) => super::group::GROUP_TYPE_SHARE.to_string(),
                        (Some(_), None) => super::consumer_protocol::CONSUMER.to_string(),
                        (None, None) => g.protocol_type.clone().unwrap_or_default(),
                    },
                    state: g.state_name(),
                    group_type: g.group_type(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// DescribeGroups of one classic group; a KIP-848 group is not one (GROUP_ID_NOT_FOUND,
    /// as Kafka answers: ConsumerGroupDescribe describes it).
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupDescription>, i16> {
        let Some(slot) = self.slot(group_id, false)? else {
            return Ok(None);
        };
        let g = slot.core();
        if g.consumer.is_some() || g.share.is_some() {
            return Err(GROUP_ID_NOT_FOUND);
        }
        let mut d = g.describe(self.now());
        if let Some(catalog) = self.catalog() {
            for m in &mut d.members {
                m.backlog = Some(
                    m.held
                        .iter()
                        .filter_map(|tp| {
                            let end = catalog.log_end(&tp.0, tp.1)?;
                            Some((end - g.offsets.get(tp)?.offset).max(0))
                        })
                        .sum(),
                );
            }
        }
        Ok(Some(d).filter(|d| d.state != GroupState::Dead))
    }
}

async fn run_timers(me: Weak<GroupCoordinator>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        interval.tick().await;
        let Some(me) = me.upgrade() else {
            return;
        };
        me.follow_leadership();
        me.tick_all(tick, tick % SWEEP_EVERY == 0);
    }
}
