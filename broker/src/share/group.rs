//! Share-group membership (KIP-932's ShareGroupHeartbeat) as a pure state machine: who is
//! in the group, what each member subscribes to, and which partitions each one fetches.
//!
//! Rules:
//! - **Join.** A heartbeat at epoch 0 joins (or rejoins: a member id already present starts
//!   over). It must name the member id (clients generate it, KIP-1082) and its subscribed
//!   topics; a group at `max_size` members refuses newcomers (GROUP_MAX_SIZE_REACHED).
//! - **Epochs.** The *group epoch* goes up whenever the assignment's inputs change: a member
//!   joins, leaves or times out, a subscription changes, or a subscribed topic's partition
//!   count changes. The assignment ([`super::assignor`]) is then recomputed at once: share
//!   groups have no revocation phase, because a partition may be shared and the
//!   share-partition's acquisition locks keep members from getting the same records. A
//!   member's epoch is the assignment epoch it was last told.
//! - **Fencing.** A heartbeat at an epoch other than the member's is FENCED_MEMBER_EPOCH,
//!   except the member's previous epoch (its last answer was lost). An unknown member id
//!   at epoch > 0 is UNKNOWN_MEMBER_ID; the client then rejoins at epoch 0.
//! - **Leave and timeout.** Epoch -1 leaves. A member with no heartbeat within the session
//!   timeout is removed ([`ShareGroup::tick`]). The records it holds are released by the
//!   partition leaders when its share sessions close or its locks expire (`manager.rs`).
//! - **Answers.** The assignment goes out on a join and whenever the member's partitions
//!   changed since its last answer; otherwise it is left out ("unchanged").

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{self, Assignment, TopicPartition};

/// Kafka error codes of ShareGroupHeartbeat.
pub const INVALID_REQUEST: i16 = 42;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;

/// What the group needs to know of the topics: partition counts of existing topics.
pub trait Topics {
    fn partition_count(&self, topic: &str) -> Option<i32>;
}

/// A ShareGroupHeartbeat, decoded.
#[derive(Clone, Debug, Default)]
pub struct ShareHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareHeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's partitions, when they changed (or on a join).
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

/// An error answer: code and message.
pub type Refusal = (i16, String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareMember {
    pub id: String,
    pub rack_id: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: BTreeSet<String>,
    /// What the member was last told it has.
    pub assigned: BTreeSet<TopicPartition>,
    /// When its last heartbeat came (ms).
    pub last_seen_ms: u64,
}

/// The membership of one share group.
#[derive(Clone, Debug)]
pub struct ShareGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    pub target: Assignment,
    /// Partition counts of the subscribed topics the target was computed for.
    subscribed: BTreeMap<String, i32>,
    /// The group epoch moved since it was last made durable.
    pub epoch_dirty: bool,
}

/// Limits from the group's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipLimits {
    pub session_timeout_ms: u32,
    pub heartbeat_interval_ms: u32,
    pub max_size: u32,
}

impl ShareGroup {
    /// A group with no members, its epochs starting after `epoch` (the last durable one).
    pub fn new(id: &str, epoch: i32) -> ShareGroup {
        ShareGroup {
            id: id.to_string(),
            group_epoch: epoch.max(0),
            assignment_epoch: epoch.max(0),
            members: BTreeMap::new(),
            target: Assignment::new(),
            subscribed: BTreeMap::new(),
            epoch_dirty: false,
        }
    }

    /// KIP-932's state names.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Every topic some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// Handles one heartbeat at `now` (ms).
    pub fn heartbeat(
        &mut self,
        hb: ShareHeartbeat,
        now: u64,
        limits: MembershipLimits,
        topics: &dyn Topics,
    ) -> Result<ShareHeartbeatReply, Refusal> {
        let interval = limits.heartbeat_interval_ms.min(i32::MAX as u32) as i32;
        if hb.member_id.is_empty() {
            return Err((INVALID_REQUEST, "MemberId can't be empty.".into()));
        }
        match hb.member_epoch {
            -1 => {
                if self.members.remove(&hb.member_id).is_some() {
                    self.bump();
                }
                self.reassign(topics);
                return Ok(ShareHeartbeatReply {
                    member_id: hb.member_id,
                    member_epoch: -1,
                    heartbeat_interval_ms: interval,
                    assignment: None,
                });
            }
            0 => {
                let Some(subs) = hb.subscribed_topic_names.clone() else {
                    return Err((
                        INVALID_REQUEST,
                        "SubscribedTopicNames must be set in first request.".into(),
                    ));
                };
                if !self.members.contains_key(&hb.member_id)
                    && self.members.len() as u64 >= u64::from(limits.max_size)
                {
                    return Err((
                        GROUP_MAX_SIZE_REACHED,
                        format!(
                            "The share group {} has reached its maximum capacity of {} members.",
                            self.id, limits.max_size
                        ),
                    ));
                }
                self.members.insert(
                    hb.member_id.clone(),
                    ShareMember {
                        id: hb.member_id.clone(),
                        rack_id: hb.rack_id.clone(),
                        epoch: 0,
                        previous_epoch: 0,
                        client_id: hb.client_id.clone(),
                        client_host: hb.client_host.clone(),
                        subscribed: subs.into_iter().collect(),
                        assigned: BTreeSet::new(),
                        last_seen_ms: now,
                    },
                );
                self.bump();
            }
            e if e < -1 => {
                return Err((INVALID_REQUEST, format!("MemberEpoch {e} is not valid.")));
            }
            e => {
                let Some(m) = self.members.get_mut(&hb.member_id) else {
                    return Err((
                        UNKNOWN_MEMBER_ID,
                        format!(
                            "Member {} is not a member of group {}.",
                            hb.member_id, self.id
                        ),
                    ));
                };
                if e != m.epoch && e != m.previous_epoch {
                    return Err((
                        FENCED_MEMBER_EPOCH,
                        format!(
                            "The share group member has epoch {e}, the coordinator has {}.",
                            m.epoch
                        ),
                    ));
                }
                m.last_seen_ms = now;
                m.client_host = hb.client_host.clone();
                if let Some(subs) = &hb.subscribed_topic_names {
                    let subs: BTreeSet<String> = subs.iter().cloned().collect();
                    if subs != m.subscribed {
                        m.subscribed = subs;
                        self.bump();
                    }
                }
            }
        }
        self.reassign(topics);
        let joined = hb.member_epoch == 0;
        let m = self
            .members
            .get_mut(&hb.member_id)
            .expect("member present after join or heartbeat");
        let target = self.target.get(&m.id).cloned().unwrap_or_default();
        let changed = target != m.assigned || m.epoch != self.assignment_epoch;
        if m.epoch != self.assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = self.assignment_epoch;
        }
        m.assigned = target.clone();
        Ok(ShareHeartbeatReply {
            member_id: m.id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: interval,
            assignment: (joined || changed).then_some(target),
        })
    }

    /// Session timeouts at `now`: members not heard from are removed. Returns their ids.
    pub fn tick(&mut self, now: u64, limits: MembershipLimits, topics: &dyn Topics) -> Vec<String> {
        let timeout = u64::from(limits.session_timeout_ms);
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| now.saturating_sub(m.last_seen_ms) > timeout)
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
        }
        if !gone.is_empty() {
            self.bump();
        }
        self.reassign(topics);
        gone
    }

    fn bump(&mut self) {
        self.group_epoch = self.group_epoch.saturating_add(1);
        self.epoch_dirty = true;
    }

    /// Recomputes the target when the group epoch moved or a subscribed topic's partition
    /// count changed.
    fn reassign(&mut self, topics: &dyn Topics) {
        let counts: BTreeMap<String, i32> = self
            .subscribed_topics()
            .into_iter()
            .filter_map(|t| topics.partition_count(&t).map(|n| (t, n)))
            .collect();
        if counts != self.subscribed {
            self.subscribed = counts;
            if self.group_epoch == self.assignment_epoch {
                self.bump();
            }
        }
        if self.group_epoch == self.assignment_epoch {
            return;
        }
        let subs: BTreeMap<String, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| (m.id.clone(), m.subscribed.clone()))
            .collect();
        self.target = assignor::assign(&subs, &self.subscribed, &self.target);
        self.assignment_epoch = self.group_epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T(BTreeMap<String, i32>);
    impl Topics for T {
        fn partition_count(&self, topic: &str) -> Option<i32> {
            self.0.get(topic).copied()
        }
    }

    fn topics(v: &[(&str, i32)]) -> T {
        T(v.iter().map(|(t, n)| (t.to_string(), *n)).collect())
    }

    const L: MembershipLimits = MembershipLimits {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
        max_size: 3,
    };

    fn join(id: &str, subs: &[&str]) -> ShareHeartbeat {
        ShareHeartbeat {
            member_id: id.into(),
            member_epoch: 0,
            subscribed_topic_names: Some(subs.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn beat(id: &str, epoch: i32) -> ShareHeartbeat {
        ShareHeartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            ..Default::default()
        }
    }

    #[test]
    fn members_share_one_partition_and_get_epochs() {
        let t = topics(&[("t", 1)]);
        let mut g = ShareGroup::new("g", 0);
        let a = g.heartbeat(join("a", &["t"]), 0, L, &t).unwrap();
        assert_eq!(a.member_epoch, 1);
        assert_eq!(a.assignment, Some([("t".to_string(), 0)].into()));
        let b = g.heartbeat(join("b", &["t"]), 0, L, &t).unwrap();
        assert_eq!(b.member_epoch, 2);
        assert_eq!(b.assignment, Some([("t".to_string(), 0)].into()));
        // a is behind: it moves to epoch 2 with the same partition, which is sent again
        // because its epoch changed.
        let a2 = g.heartbeat(beat("a", 1), 10, L, &t).unwrap();
        assert_eq!(a2.member_epoch, 2);
        // Nothing changed since: the assignment is left out.
        let a3 = g.heartbeat(beat("a", 2), 20, L, &t).unwrap();
        assert_eq!(a3.assignment, None);
        assert_eq!(g.state_name(), "Stable");
        assert!(g.epoch_dirty);
    }

    #[test]
    fn fencing_unknown_members_and_bad_requests() {
        let t = topics(&[("t", 2)]);
        let mut g = ShareGroup::new("g", 5);
        assert_eq!(
            g.heartbeat(beat("x", 3), 0, L, &t).unwrap_err().0,
            UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            g.heartbeat(beat("", 0), 0, L, &t).unwrap_err().0,
            INVALID_REQUEST
        );
        assert_eq!(
            g.heartbeat(beat("x", 0), 0, L, &t).unwrap_err().0,
            INVALID_REQUEST
        );
        let a = g.heartbeat(join("a", &["t"]), 0, L, &t).unwrap();
        assert_eq!(a.member_epoch, 6, "epochs continue after the durable one");
        assert_eq!(
            g.heartbeat(beat("a", 9), 0, L, &t).unwrap_err().0,
            FENCED_MEMBER_EPOCH
        );
        assert_eq!(
            g.heartbeat(beat("a", -5), 0, L, &t).unwrap_err().0,
            INVALID_REQUEST
        );
    }

    #[test]
    fn max_size_leave_and_session_timeout() {
        let t = topics(&[("t", 4)]);
        let mut g = ShareGroup::new("g", 0);
        for m in ["a", "b", "c"] {
            g.heartbeat(join(m, &["t"]), 0, L, &t).unwrap();
        }
        assert_eq!(
            g.heartbeat(join("d", &["t"]), 0, L, &t).unwrap_err().0,
            GROUP_MAX_SIZE_REACHED
        );
        // A member already in may rejoin.
        g.heartbeat(join("c", &["t"]), 0, L, &t).unwrap();
        let left = g.heartbeat(beat("c", g.group_epoch), 0, L, &t);
        assert!(left.is_ok());
        let r = g.heartbeat(beat("c", -1), 0, L, &t).unwrap();
        assert_eq!(r.member_epoch, -1);
        assert_eq!(g.members.len(), 2);
        // a keeps beating, b goes silent.
        let e = g.members["a"].epoch;
        g.heartbeat(beat("a", e), 40_000, L, &t).unwrap();
        assert!(g.tick(44_000, L, &t).is_empty());
        assert_eq!(g.tick(46_000, L, &t), vec!["b".to_string()]);
        let all: BTreeSet<TopicPartition> = (0..4).map(|p| ("t".to_string(), p)).collect();
        assert_eq!(g.target["a"], all, "the last member gets every partition");
    }

    #[test]
    fn new_partitions_and_subscription_changes_reassign() {
        let mut t = topics(&[("t", 1), ("u", 1)]);
        let mut g = ShareGroup::new("g", 0);
        g.heartbeat(join("a", &["t"]), 0, L, &t).unwrap();
        t.0.insert("t".into(), 2);
        let e = g.members["a"].epoch;
        let r = g.heartbeat(beat("a", e), 1, L, &t).unwrap();
        assert_eq!(r.assignment.unwrap().len(), 2);
        let mut hb = beat("a", r.member_epoch);
        hb.subscribed_topic_names = Some(vec!["t".into(), "u".into()]);
        let r = g.heartbeat(hb, 2, L, &t).unwrap();
        assert_eq!(r.assignment.unwrap().len(), 3);
        // A topic that does not exist is subscribed but assigns nothing.
        let mut hb = beat("a", r.member_epoch);
        hb.subscribed_topic_names = Some(vec!["nope".into()]);
        let r = g.heartbeat(hb, 3, L, &t).unwrap();
        assert_eq!(r.assignment, Some(BTreeSet::new()));
    }
}
