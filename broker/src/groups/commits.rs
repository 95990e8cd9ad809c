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
use crate::audit::reconcile::{Decision, PartitionAudit, Who};

impl GroupCoordinator {
    /// OffsetCommit: checks every partition against the group (membership, generation,
    /// lock) and, for audited groups, against what the committer was delivered
    /// (`audit.rs`); writes the accepted ones with their audit records in one proposal and
    /// answers once it is durable.
    pub async fn commit(
        self: &Arc<Self>,
        group_id: &str,
        by: &Committer<'_>,
        items: Vec<(TopicPartition, CommittedOffset)>,
        live_reset: bool,
    ) -> Vec<i16> {
        let n = items.len();
        let slot = match self.slot(group_id, by.generation < 0) {
            Ok(Some(s)) => s,
            Ok(None) => return vec![ILLEGAL_GENERATION; n],
            Err(code) => return vec![code; n],
        };
        let _io = slot.io.lock().await;
        let admin = by.member_id.is_empty() && by.generation < 0 && by.instance_id.is_none();
        if admin && live_reset && slot.core().has_members() {
            return self.replay(&slot, by, items).await;
        }
        let tps: Vec<TopicPartition> = items.iter().map(|(tp, _)| tp.clone()).collect();
        let mut codes = slot.core().check_commit(
            by.member_id,
            by.instance_id,
            by.generation,
            &tps,
            self.now(),
        );
        let accepted: Vec<(usize, (TopicPartition, CommittedOffset))> = items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| codes[*i] == NONE)
            .collect();
        if accepted.is_empty() {
            return codes;
        }
        let moves: Vec<(TopicPartition, i64)> = accepted
            .iter()
            .map(|(_, (tp, c))| (tp.clone(), c.offset))
            .collect();
        let decisions = self.audit(&slot, &by.who(), &moves).await;
        let mut kept = Vec::with_capacity(accepted.len());
        let mut audits = Vec::new();
        for ((i, item), decision) in accepted.into_iter().zip(decisions) {
            match decision {
                Decision::Accept => kept.push((i, item)),
                Decision::Record(a) => {
                    audits.push((item.0.clone(), a));
                    kept.push((i, item));
                }
                Decision::Refuse { code, audit } => {
                    codes[i] = code;
                    audits.push((item.0, audit));
                }
            }
        }
        if kept.is_empty() && audits.is_empty() {
            return codes;
        }
        let items: Vec<(TopicPartition, CommittedOffset)> =
            kept.iter().map(|(_, item)| item.clone()).collect();
        let mut puts = offset_puts(&slot.id, &items);
        puts.extend(audit_puts(&slot.id, &audits));
        match self.write(&slot, puts).await {
            Ok(_) => {
                let mut g = slot.core();
                g.audit.extend(audits);
                g.apply_commits(by.member_id, items, self.now());
            }
            Err(code) => {
                warn!(group = %slot.id, code, "offset commit not stored");
                for (i, _) in kept {
                    codes[i] = code;
                }
            }
        }
        codes
    }

    /// A live replay (`replay.rs`): the new offsets, their audit records and the group
    /// record with the replay's fences in one proposal; the members are made to give the
    /// partitions up. Called with the group's `io` lock held.
    async fn replay(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        by: &Committer<'_>,
        items: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Vec<i16> {
        let n = items.len();
        let tps: BTreeSet<TopicPartition> = items.iter().map(|(tp, _)| tp.clone()).collect();
        let moves: Vec<(TopicPartition, i64)> =
            items.iter().map(|(tp, c)| (tp.clone(), c.offset)).collect();
        let mut who = by.who();
        who.admin = true;
        let audits: Vec<(TopicPartition, PartitionAudit)> = self
            .audit(slot, &who, &moves)
            .await
            .into_iter()
            .zip(&moves)
            .filter_map(|(d, (tp, _))| match d {
                Decision::Record(a) | Decision::Refuse { audit: a, .. } => Some((tp.clone(), a)),
                Decision::Accept => None,
            })
            .collect();
        let mut fx = Effects::default();
        let record = {
            let mut g = slot.core();
            g.begin_replay(&tps, self.now(), &mut fx);
            g.record()
        };
        let mut puts = offset_puts(&slot.id, &items);
        puts.extend(audit_puts(&slot.id, &audits));
        puts.push((offsets::group_key(&slot.id), Some(offsets::encode(&record))));
        let result = self.write(slot, puts).await;
        let codes = match result {
            Ok(_) => {
                let mut g = slot.core();
                g.epoch_stored(record.generation);
                g.offsets.extend(items);
                g.audit.extend(audits);
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
            if g.share.as_ref().is_some_and(|s| !s.members.is_empty()) {
                return NON_EMPTY_GROUP;
            }
            g.state = GroupState::Dead;
            std::iter::once(offsets::group_key(&slot.id))
                .chain(g.offsets.keys().map(|tp| offsets::offset_key(&slot.id, tp)))
                .chain(g.audit.keys().map(|tp| offsets::audit_key(&slot.id, tp)))
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
                self.forget(&slot);
                info!(group = group_id, "group deleted");
                NONE
            }
            Err(code) => {
                slot.core().state = GroupState::Empty;
                code
            }
        }
    }

    /// Drops a deleted group's slot (unless a new one took its place meanwhile).
    pub(super) fn forget(&self, slot: &Arc<Slot>) {
        let mut groups = self.groups.lock().unwrap();
        if groups.get(&slot.id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            groups.remove(&slot.id);
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
        let keys = offsets::partition_deletes(&slot.id, &present);
        let store = self.store(slot.store)?;
        store
            .propose(Command::Put(keys))
            .await
            .map_err(|e| commit_error(&e))?;
        let mut g = slot.core();
        for tp in &present {
            g.offsets.remove(tp);
            g.audit.remove(tp);
        }
        Ok(codes)
    }
}

/// The rows of the audit records of group `group`.
fn audit_puts(
    group: &str,
    items: &[(TopicPartition, PartitionAudit)],
) -> Vec<(Bytes, Option<Bytes>)> {
    items
        .iter()
        .map(|(tp, a)| (offsets::audit_key(group, tp), Some(offsets::encode(a))))
        .collect()
}

/// Who sends an OffsetCommit: the group member (empty for admin clients) and the
/// connection's client id and host (what the audit matches deliveries by).
pub struct Committer<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation: i32,
    pub client_id: &'a str,
    pub host: &'a str,
    /// `phxq group reset` asked (the request's live reset tag): an operator's reset, which
    /// a strict group's audit records rather than refuses.
    pub operator: bool,
}

impl Committer<'_> {
    fn who(&self) -> Who {
        Who {
            client_id: self.client_id.to_string(),
            host: self.host.to_string(),
            member_id: self.member_id.to_string(),
            admin: self.operator,
        }
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
