//! The scheduler: server-side partition assignment for KIP-848 consumer groups
//! (`group.remote.assignor`), and the load figures the `load` assignor places by.
//!
//! An assignor is a pure function from an [`AssignmentSpec`] (members with their resolved
//! subscriptions and current target partitions, the subscribed topics' partition counts,
//! and measured load) to a target assignment. The group (`groups/consumer`) decides when
//! to run one and reconciles members towards its result under the consumer-group lock;
//! the assignor never has to care who holds what right now.
//!
//! - `uniform` (Kafka's default): balanced partition counts, sticky.
//! - `range` (Kafka's): per topic, contiguous ranges over the members sorted by id.
//! - `load` (phxq's default, PhxQueue's scheduler): balances the time each member needs to
//!   drain its backlog plus inflow, given how fast it really consumes; see [`load`].

pub mod inflow;
pub mod load;
pub mod range;
pub mod uniform;

use std::collections::{BTreeMap, BTreeSet};

use crate::groups::consumer_protocol::TopicPartition;

/// Target partitions per member id.
pub type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// A member as an assignor sees it.
#[derive(Clone, Debug, Default)]
pub struct MemberSpec {
    /// Topics the member subscribes to that exist.
    pub topics: BTreeSet<String>,
    /// Its partitions in the current target assignment (for stickiness).
    pub current: BTreeSet<TopicPartition>,
}

/// What is measured of a partition for the group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PartitionLoad {
    /// Records appended per second, recently.
    pub inflow_rps: f64,
    /// Log end offset minus the group's committed offset (what is left to consume).
    pub backlog: f64,
}

/// Measured load of a group: per partition, and the consume rate of each member.
#[derive(Clone, Debug, Default)]
pub struct LoadFigures {
    pub partitions: BTreeMap<TopicPartition, PartitionLoad>,
    /// Records per second each member committed recently; absent while unknown.
    pub member_rates: BTreeMap<String, f64>,
    /// Members that hold partitions with backlog and made no progress on them for the
    /// stall timeout: they get nothing (PhxQueue's disaster recovery).
    pub stalled: BTreeSet<String>,
    /// Members that are behind (their partitions hold more than a second of their work):
    /// their measured rate is their capacity. A member that keeps up could do more than it
    /// is measured at.
    pub saturated: BTreeSet<String>,
    /// Partitions moved within the cooldown: they stay where they are.
    pub pinned: BTreeSet<TopicPartition>,
}

#[derive(Clone, Debug, Default)]
pub struct AssignmentSpec {
    pub members: BTreeMap<String, MemberSpec>,
    /// Partition counts of the subscribed topics.
    pub partitions: BTreeMap<String, i32>,
    pub load: LoadFigures,
}

impl AssignmentSpec {
    /// Every partition some member subscribes to, in order.
    pub fn all_partitions(&self) -> Vec<TopicPartition> {
        let subscribed: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.topics.iter())
            .collect();
        self.partitions
            .iter()
            .filter(|(t, _)| subscribed.contains(t))
            .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
            .collect()
    }

    /// Members subscribed to `topic`, by id.
    pub fn subscribers(&self, topic: &str) -> Vec<&String> {
        self.members
            .iter()
            .filter(|(_, m)| m.topics.contains(topic))
            .map(|(id, _)| id)
            .collect()
    }
}

/// The outcome of one assignor run, with the reason shown by `phxq group describe`.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    pub assignment: Assignment,
    pub reason: String,
    /// Partitions whose member changed compared with the current target.
    pub moved: usize,
}

/// The server-side assignors by name.
pub const ASSIGNORS: &[&str] = &["load", "uniform", "range"];

/// Runs the assignor `name` (one of [`ASSIGNORS`]); `None` for an unknown name.
pub fn assign(name: &str, spec: &AssignmentSpec, tuning: &load::Tuning) -> Option<Decision> {
    let decision = match name {
        "uniform" => Decision {
            assignment: uniform::assign(spec),
            reason: "uniform: balanced partition counts".into(),
            moved: 0,
        },
        "range" => Decision {
            assignment: range::assign(spec),
            reason: "range: contiguous ranges per topic".into(),
            moved: 0,
        },
        "load" => load::assign(spec, tuning),
        _ => return None,
    };
    let moved = moved(spec, &decision.assignment);
    Some(Decision { moved, ..decision })
}

/// How many partitions change member between the current target and `next`.
pub fn moved(spec: &AssignmentSpec, next: &Assignment) -> usize {
    let before: BTreeMap<&TopicPartition, &String> = spec
        .members
        .iter()
        .flat_map(|(id, m)| m.current.iter().map(move |tp| (tp, id)))
        .collect();
    next.iter()
        .flat_map(|(id, tps)| tps.iter().map(move |tp| (tp, id)))
        .filter(|(tp, id)| before.get(tp).is_some_and(|b| b != id))
        .count()
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// `n` members ("m0".."m{n-1}") all subscribed to `topics` (name, partitions).
    pub fn spec(n: usize, topics: &[(&str, i32)]) -> AssignmentSpec {
        let names: BTreeSet<String> = topics.iter().map(|(t, _)| t.to_string()).collect();
        AssignmentSpec {
            members: (0..n)
                .map(|i| {
                    (
                        format!("m{i}"),
                        MemberSpec {
                            topics: names.clone(),
                            current: BTreeSet::new(),
                        },
                    )
                })
                .collect(),
            partitions: topics.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            load: LoadFigures::default(),
        }
    }

    /// Checks that every subscribed partition is assigned exactly once, to a subscriber.
    pub fn assert_complete(spec: &AssignmentSpec, a: &Assignment) {
        let mut seen = BTreeSet::new();
        for (m, tps) in a {
            for tp in tps {
                assert!(spec.members[m].topics.contains(&tp.0), "{m} got {tp:?}");
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        assert_eq!(seen.len(), spec.all_partitions().len(), "{a:?}");
    }

    pub fn counts(a: &Assignment) -> Vec<usize> {
        a.values().map(|s| s.len()).collect()
    }
}
