//! The consumer-group lock table: which member owns which partition of the group.
//!
//! This is PhxQueue's lock service folded into the coordinator: a partition of a group is
//! owned by at most one member at a time, and an OffsetCommit for a partition from a
//! member that does not own it is refused (see `group.rs`), so a zombie or a revoked
//! member can never move the group's position. Kafka checks only the generation; this is
//! stronger.
//!
//! Rules (the group calls these at the right moments of the classic protocol):
//! - **Grant** happens when the leader's SyncGroup completes a generation: every assigned
//!   partition that nobody holds goes to its assignee.
//! - A partition held by someone else is **not** handed over, even if the leader assigned
//!   it elsewhere: the holder keeps it until it releases it, and the assignee's commits
//!   for it are refused meanwhile. With correct eager and cooperative clients this never
//!   happens; it is the fence against a stale holder.
//! - **Release** happens when the holder leaves the group (LeaveGroup, session timeout,
//!   rebalance timeout), when it rejoins in an eager generation (an eager member revokes
//!   everything before JoinGroup), or when it rejoins in a cooperative generation without
//!   listing the partition among its owned partitions (it revoked it).
//! - A live replay (`replay.rs`) **releases** the partitions it resets, whoever holds them.
//! - A static member replaced by a new member id for the same `group.instance.id` keeps
//!   its partitions under the new id.

use std::collections::{BTreeMap, BTreeSet};

use super::consumer_protocol::TopicPartition;

/// One held partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    pub member: String,
    /// The generation in which the holder was last confirmed as owner.
    pub generation: i32,
}

/// A partition that was assigned to one member while another still held it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub partition: TopicPartition,
    pub assignee: String,
    pub holder: String,
}

#[derive(Clone, Debug, Default)]
pub struct LockTable {
    owners: BTreeMap<TopicPartition, Lock>,
    by_member: BTreeMap<String, BTreeSet<TopicPartition>>,
}

impl LockTable {
    pub fn owner(&self, tp: &TopicPartition) -> Option<&Lock> {
        self.owners.get(tp)
    }

    pub fn is_owner(&self, tp: &TopicPartition, member: &str) -> bool {
        self.owners.get(tp).is_some_and(|l| l.member == member)
    }

    /// Partitions held by `member`.
    pub fn held_by(&self, member: &str) -> BTreeSet<TopicPartition> {
        self.by_member.get(member).cloned().unwrap_or_default()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    pub fn clear(&mut self) {
        self.owners.clear();
        self.by_member.clear();
    }

    /// Releases everything `member` holds; returns what it held.
    pub fn release_member(&mut self, member: &str) -> BTreeSet<TopicPartition> {
        let held = self.by_member.remove(member).unwrap_or_default();
        for tp in &held {
            self.owners.remove(tp);
        }
        held
    }

    /// Releases `tps` whoever holds them (a live replay); returns the ones that were held.
    pub fn release_partitions(
        &mut self,
        tps: &BTreeSet<TopicPartition>,
    ) -> BTreeSet<TopicPartition> {
        let mut released = BTreeSet::new();
        for tp in tps {
            if let Some(l) = self.owners.remove(tp) {
                if let Some(held) = self.by_member.get_mut(&l.member) {
                    held.remove(tp);
                    if held.is_empty() {
                        self.by_member.remove(&l.member);
                    }
                }
                released.insert(tp.clone());
            }
        }
        released
    }

    /// Keeps only the partitions of `member` that are in `still_owned` (a cooperative
    /// rejoin); returns the released ones.
    pub fn retain(
        &mut self,
        member: &str,
        still_owned: &BTreeSet<TopicPartition>,
    ) -> BTreeSet<TopicPartition> {
        let Some(held) = self.by_member.get_mut(member) else {
            return BTreeSet::new();
        };
        let released: BTreeSet<_> = held.difference(still_owned).cloned().collect();
        for tp in &released {
            held.remove(tp);
            self.owners.remove(tp);
        }
        if held.is_empty() {
            self.by_member.remove(member);
        }
        released
    }

    /// Completes generation `generation` with the leader's assignment: confirms the holders
    /// that are members of it, grants unheld assigned partitions to their assignees and
    /// reports partitions assigned to someone while another member holds them.
    pub fn grant(
        &mut self,
        generation: i32,
        assignment: &BTreeMap<String, BTreeSet<TopicPartition>>,
    ) -> Vec<Conflict> {
        for lock in self.owners.values_mut() {
            if assignment.contains_key(&lock.member) {
                lock.generation = generation;
            }
        }
        let mut conflicts = Vec::new();
        for (member, parts) in assignment {
            for tp in parts {
                match self.owners.get(tp) {
                    Some(l) if l.member == *member => {}
                    Some(l) => conflicts.push(Conflict {
                        partition: tp.clone(),
                        assignee: member.clone(),
                        holder: l.member.clone(),
                    }),
                    None => {
                        self.owners.insert(
                            tp.clone(),
                            Lock {
                                member: member.clone(),
                                generation,
                            },
                        );
                        self.by_member
                            .entry(member.clone())
                            .or_default()
                            .insert(tp.clone());
                    }
                }
            }
        }
        conflicts
    }

    /// Moves everything `old` holds to `new` (static member replacement).
    pub fn rename(&mut self, old: &str, new: &str) {
        let Some(held) = self.by_member.remove(old) else {
            return;
        };
        for tp in &held {
            if let Some(l) = self.owners.get_mut(tp) {
                l.member = new.to_string();
            }
        }
        self.by_member
            .entry(new.to_string())
            .or_default()
            .extend(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    fn set(v: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
        v.iter().map(|(t, p)| tp(t, *p)).collect()
    }

    fn assign(v: &[(&str, &[(&str, i32)])]) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        v.iter().map(|(m, ps)| (m.to_string(), set(ps))).collect()
    }

    #[test]
    fn grant_gives_unheld_partitions_to_assignees() {
        let mut l = LockTable::default();
        let c = l.grant(
            1,
            &assign(&[("a", &[("t", 0), ("t", 1)]), ("b", &[("t", 2)])]),
        );
        assert!(c.is_empty());
        assert!(l.is_owner(&tp("t", 0), "a"));
        assert!(l.is_owner(&tp("t", 2), "b"));
        assert!(!l.is_owner(&tp("t", 2), "a"));
        assert_eq!(l.held_by("a"), set(&[("t", 0), ("t", 1)]));
        assert_eq!(l.owner(&tp("t", 1)).unwrap().generation, 1);
    }

    #[test]
    fn a_held_partition_is_not_handed_over_until_released() {
        let mut l = LockTable::default();
        l.grant(1, &assign(&[("a", &[("t", 0), ("t", 1)])]));
        // The leader moves t-1 to b while a still holds it (a has not revoked it yet).
        let c = l.grant(2, &assign(&[("a", &[("t", 0)]), ("b", &[("t", 1)])]));
        assert_eq!(
            c,
            vec![Conflict {
                partition: tp("t", 1),
                assignee: "b".into(),
                holder: "a".into()
            }]
        );
        assert!(l.is_owner(&tp("t", 1), "a"));
        assert_eq!(
            l.owner(&tp("t", 1)).unwrap().generation,
            2,
            "a confirmed in gen 2"
        );
        // a rejoins (cooperative) still owning only t-0: t-1 is released...
        assert_eq!(l.retain("a", &set(&[("t", 0)])), set(&[("t", 1)]));
        assert!(l.owner(&tp("t", 1)).is_none());
        // ...and the next generation grants it to b.
        assert!(l
            .grant(3, &assign(&[("a", &[("t", 0)]), ("b", &[("t", 1)])]))
            .is_empty());
        assert!(l.is_owner(&tp("t", 1), "b"));
    }

    #[test]
    fn leaving_releases_everything_and_rename_keeps_everything() {
        let mut l = LockTable::default();
        l.grant(
            1,
            &assign(&[("a", &[("t", 0)]), ("b", &[("t", 1), ("u", 0)])]),
        );
        l.rename("b", "b2");
        assert!(l.is_owner(&tp("u", 0), "b2"));
        assert!(l.held_by("b").is_empty());
        assert_eq!(l.release_member("b2"), set(&[("t", 1), ("u", 0)]));
        assert_eq!(l.len(), 1);
        assert!(l.release_member("nobody").is_empty());
        assert!(l.retain("nobody", &BTreeSet::new()).is_empty());
    }

    #[test]
    fn holders_not_in_the_new_generation_keep_their_old_generation() {
        let mut l = LockTable::default();
        l.grant(1, &assign(&[("a", &[("t", 0)]), ("s", &[("t", 1)])]));
        l.grant(2, &assign(&[("a", &[("t", 0)])]));
        assert_eq!(l.owner(&tp("t", 1)).unwrap().generation, 1);
        assert_eq!(l.owner(&tp("t", 0)).unwrap().generation, 2);
    }
}
