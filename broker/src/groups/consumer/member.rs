//! One member of a KIP-848 consumer group: identity, subscription, session, its epoch and
//! the partitions it owns, is revoking, or is waiting for.

use std::collections::BTreeSet;

use crate::groups::consumer_protocol::TopicPartition;

/// Where a member is in reconciling its assignment towards the group's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// At the target epoch with every target partition it can have.
    Stable,
    /// Must give up `revoking` first; stays at its old epoch until it reports it has.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's epoch: the group epoch of the target it last reconciled to.
    pub epoch: i32,
    /// The epoch before the last bump: a heartbeat at this epoch whose answer was lost is
    /// still accepted.
    pub previous_epoch: i32,
    pub state: MemberState,
    pub subscribed_topics: BTreeSet<String>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: u64,
    /// Partitions the member owns (and holds the lock of) at its epoch.
    pub assigned: BTreeSet<TopicPartition>,
    /// Partitions the member must revoke; it still holds their locks until it does.
    pub revoking: BTreeSet<TopicPartition>,
    /// Time (ms) of the last heartbeat.
    pub last_heartbeat: u64,
    /// When revocation started: the member is fenced if it takes longer than its
    /// rebalance timeout.
    pub revoking_since: Option<u64>,
    /// A static member that left with epoch -2: its place is kept for the session
    /// timeout, for the same instance id to take back.
    pub away: bool,
    /// What the last heartbeat response told the member (epoch and assignment), to send
    /// the assignment again only when it changes.
    pub last_sent: Option<(i32, BTreeSet<TopicPartition>)>,
}

impl ConsumerMember {
    pub fn new(id: &str, now: u64) -> ConsumerMember {
        ConsumerMember {
            id: id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: 0,
            previous_epoch: -1,
            state: MemberState::Stable,
            subscribed_topics: BTreeSet::new(),
            subscribed_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: 300_000,
            assigned: BTreeSet::new(),
            revoking: BTreeSet::new(),
            last_heartbeat: now,
            revoking_since: None,
            away: false,
            last_sent: None,
        }
    }

    /// Every partition whose lock the member holds.
    pub fn held(&self) -> BTreeSet<TopicPartition> {
        self.assigned.union(&self.revoking).cloned().collect()
    }

    pub fn set_epoch(&mut self, epoch: i32) {
        if epoch != self.epoch {
            self.previous_epoch = self.epoch;
            self.epoch = epoch;
        }
    }
}
