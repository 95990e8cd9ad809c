//! The offsets side of the coordinator: OffsetCommit (checked against the group and its
//! partition locks, written as one Raft proposal, acknowledged once durable), live offset
//! resets (`replay.rs`), OffsetFetch, OffsetDelete and DeleteGroups. Reads and writes of
//! one group are ordered by its `io` mutex, so a partition's next owner reads its previous
//! owner's last commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use phxq_replication::Command;
use tracing::{info, warn};

use super::consumer_protocol::{self, TopicPartition};
use super::coordinator::{commit_error, GroupCoordinator, Slot};
use super::errors::*;
use super::group::{Effects, GroupState};
use super::offsets::{self, CommittedOffset};

impl GroupCoordinator {
    /// OffsetCommit: checks every partition against the group (membership, generation,
    /// lock), writes the accepted ones in one proposal and answers once it is durable.
    pub async fn commit(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        items: Vec<(TopicPartition, CommittedOffset)>,
        live_reset: bool,
    ) -> Vec<i16> {
        let n = items.len();
        let slot = match self.slot(group_id, generation < 0) {
            Ok(Some(s)) => s,
            Ok(None) => return vec![ILLEGAL_GENERATION; n],
            Err(code) => return vec![code; n],
        };
        let _io = slot.io.lock().await;
        let admin = member_id.is_empty() && generation < 0 && instance_id.is_none();
        if admin && live_reset && slot.core().has_members() {
            return self.replay(&slot, items).await;
        }
        let tps: Vec<TopicPartition> = items.iter().map(|(tp, _)| tp.clone()).collect();
        let mut codes =
            slot.core()
                .check_commit(member_id, instance_id, generation, &tps, self.now());
        let accepted: Vec<(TopicPartition, CommittedOffset)> = items
            .into_iter()
            .zip(&codes)
            .filter(|(_, c)| **c == NONE)
            .map(|(i, _)| i)
            .collect();
        if accepted.is_empty() {
            return codes;
        }
        let result = self.write(&slot, offset_puts(&slot.id, &accepted)).await;
        match result {
            Ok(_) => slot.core().apply_commits(member_id, accepted, self.now()),
            Err(code) => {
                warn!(group = %slot.id, code, "offset commit not stored");
                for c in codes.iter_mut().filter(|c| **c == NONE) {
                    *c = code;
                }
            }
        }
        codes
    }

    /// A live replay (`replay.rs`): the new offsets and the group record with the replay's
    /// fences in one proposal; the members are made to give the partitions up. Called with
    /// the group's `io` lock held.
    async fn replay(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        items: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Vec<i16> {
        let n = items.len();
        let tps: BTreeSet<TopicPartition> = items.iter().map(|(tp, _)| tp.clone()).collect();
        let mut fx = Effects::default();
        let record = {
            let mut g = slot.core();
            g.begin_replay(&tps, self.now(), &mut fx);
            g.record()
        };
        let mut puts = offset_puts(&slot.id, &items);
        puts.push((offsets::group_key(&slot.id), Some(offsets::encode(&record))));
        let result = self.write(slot, puts).await;
        let codes = match result {
            Ok(_) => {
                let mut g = slot.core();
                if let Some(c) = g.consumer.as_mut() {
                    if c.group_epoch == record.generation {
                        c.epoch_dirty = false;
                    }
                }
                g.offsets.extend(items);
                info!(group = %slot.id, partitions = %consumer_protocol::describe(&tps), "offsets reset on a live group");
                vec![NONE; n]
            }
            Err(code) => {
                // The members still give the partitions up; nothing was reset, so the
                // replay can simply be retried.
                warn!(group = %slot.id, code, "live offset reset not stored");
                vec![code; n]
            }
        };
        self.dispatch(slot, fx);
        codes
    }

    /// Writes `puts` into the group's store group through Raft; the Kafka error code if
    /// it could not.
    async fn write(&self, slot: &Slot, puts: Vec<(Bytes, Option<Bytes>)>) -> Result<(), i16> {
        self.store(slot.store)?
            .propose(Command::Put(puts))
            .await
            .map(|_| ())
            .map_err(|e| commit_error(&e))
    }

    /// Committed offsets of `group_id`: of the given topics' partitions, or all (`None`).
    pub async fn committed(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<BTreeMap<TopicPartition, Option<CommittedOffset>>, i16> {
        let slot = self.slot(group_id, false)?;
        let stored = match &slot {
            Some(slot) => {
                let _io = slot.io.lock().await;
                slot.core().offsets.clone()
            }
            None => BTreeMap::new(),
        };
        Ok(match topics {
            None => stored.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            Some(topics) => topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .map(|tp| {
                    let v = stored.get(&tp).cloned();
                    (tp, v)
                })
                .collect(),
        })
    }

    /// DeleteGroups for one group: only an Empty group; its record and offsets go in one
    /// proposal.
    pub async fn delete(&self, group_id: &str) -> i16 {
        let slot = match self.slot(group_id, false) {
            Ok(Some(s)) => s,
            Ok(None) => return GROUP_ID_NOT_FOUND,
            Err(code) => return code,
        };
        let _io = slot.io.lock().await;
        let keys: Vec<(Bytes, Option<Bytes>)> = {
            let mut g = slot.core();
            match g.state {
                GroupState::Dead => return GROUP_ID_NOT_FOUND,
                GroupState::Empty => {}
                _ => return NON_EMPTY_GROUP,
            }
            g.state = GroupState::Dead;
            std::iter::once(offsets::group_key(&slot.id))
                .chain(g.offsets.keys().map(|tp| offsets::offset_key(&slot.id, tp)))
                .map(|k| (k, None))
                .collect()
        };
        let result = match self.store(slot.store) {
            Ok(store) => store
                .propose(Command::Put(keys))
                .await
                .map_err(|e| commit_error(&e)),
            Err(code) => Err(code),
        };
        match result {
            Ok(_) => {
                let mut groups = self.groups.lock().unwrap();
                if groups.get(group_id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    groups.remove(group_id);
                }
                info!(group = group_id, "group deleted");
                NONE
            }
            Err(code) => {
                slot.core().state = GroupState::Empty;
                code
            }
        }
    }

    /// OffsetDelete: removes committed offsets of topics the group is not subscribed to.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        tps: &[TopicPartition],
    ) -> Result<Vec<i16>, i16> {
        let slot = self.slot(group_id, false)?.ok_or(GROUP_ID_NOT_FOUND)?;
        let _io = slot.io.lock().await;
        let (codes, present) = {
            let g = slot.core();
            if g.state == GroupState::Dead {
                return Err(GROUP_ID_NOT_FOUND);
            }
            let codes: Vec<i16> = tps
                .iter()
                .map(|tp| {
                    if g.is_subscribed(&tp.0) {
                        GROUP_SUBSCRIBED_TO_TOPIC
                    } else {
                        NONE
                    }
                })
                .collect();
            let present: Vec<TopicPartition> = tps
                .iter()
                .zip(&codes)
                .filter(|(tp, c)| **c == NONE && g.offsets.contains_key(*tp))
                .map(|(tp, _)| tp.clone())
                .collect();
            (codes, present)
        };
        if present.is_empty() {
            return Ok(codes);
        }
        let keys = present
            .iter()
            .map(|tp| (offsets::offset_key(&slot.id, tp), None))
            .collect();
        let store = self.store(slot.store)?;
        store
            .propose(Command::Put(keys))
            .await
            .map_err(|e| commit_error(&e))?;
        let mut g = slot.core();
        for tp in &present {
            g.offsets.remove(tp);
        }
        Ok(codes)
    }
}

/// The rows of committed offsets of group `group`.
fn offset_puts(
    group: &str,
    items: &[(TopicPartition, CommittedOffset)],
) -> Vec<(Bytes, Option<Bytes>)> {
    items
        .iter()
        .map(|(tp, c)| (offsets::offset_key(group, tp), Some(offsets::encode(c))))
        .collect()
}
