//! What others see of one group: its DescribeGroups view (members, their assignment and
//! what phxq measured of them) and who fetches for it (lock holders and members by client
//! id and host, which speed limits and the fetch lock attribute fetches by). Pure, like
//! `group.rs`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::consumer_protocol::{self, TopicPartition};
use super::group::{Group, GroupState};

/// Who fetches for a group: per partition the (client id, client host) of the member
/// holding it, and every member's (client id, client host).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders {
    pub partitions: BTreeMap<TopicPartition, (String, String)>,
    pub members: BTreeSet<(String, String)>,
}

impl Holders {
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty() && self.members.is_empty()
    }
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
    /// The partitions whose lock it holds (lock mode), else its assignment as parsed.
    pub held: BTreeSet<TopicPartition>,
    /// Records per second it committed recently, once measured.
    pub consume_rate: Option<f64>,
    /// Milliseconds since a commit of it last moved a partition forward.
    pub idle_ms: Option<u64>,
    /// Log end minus committed offset over `held` (filled in by the coordinator, which
    /// knows the logs).
    pub backlog: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

impl Group {
    /// Who fetches for the group: each held partition's lock holder and every member, by
    /// client id and host (what a Fetch is attributed by; see `quotas/groups.rs`).
    pub fn lock_holders(&self) -> Holders {
        let mut out = Holders::default();
        if let Some(s) = &self.share {
            // Share groups: each assigned partition, by one of the members sharing it
            // (their fetches name the group, so this only spreads the group's speed limit
            // over the brokers leading its partitions).
            for m in s.members.values() {
                let who = (m.client_id.clone(), m.client_host.clone());
                for tp in &m.assigned {
                    out.partitions
                        .entry(tp.clone())
                        .or_insert_with(|| who.clone());
                }
                out.members.insert(who);
            }
            return out;
        }
        match &self.consumer {
            Some(c) => {
                for m in c.members.values() {
                    let who = (m.client_id.clone(), m.client_host.clone());
                    for tp in m.held() {
                        if c.locks.is_owner(&tp, &m.id) {
                            out.partitions.insert(tp, who.clone());
                        }
                    }
                    out.members.insert(who);
                }
            }
            None => {
                for m in self.members.values() {
                    let who = (m.client_id.clone(), m.client_host.clone());
                    let held = if self.lock_mode {
                        self.locks.held_by(&m.id)
                    } else {
                        consumer_protocol::parse_assignment(&m.assignment).unwrap_or_default()
                    };
                    for tp in held {
                        out.partitions.insert(tp, who.clone());
                    }
                    out.members.insert(who);
                }
            }
        }
        out
    }

    pub fn describe(&self, now: u64) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: self
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol).cloned().unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                    held: if self.lock_mode {
                        self.locks.held_by(&m.id)
                    } else {
                        consumer_protocol::parse_assignment(&m.assignment).unwrap_or_default()
                    },
                    consume_rate: self.meter.rate(&m.id),
                    idle_ms: self.meter.idle_ms(&m.id, now),
                    backlog: None,
                })
                .collect(),
        }
    }
}
