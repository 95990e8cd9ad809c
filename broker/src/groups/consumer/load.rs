//! The load side of a KIP-848 group: what the scheduler measures of it (each member's
//! consume rate from its commits (`groups/meter.rs`), backlog trends, stalls, pinned partitions)
//! and when and how the `load` assignor reviews its target assignment.

use std::collections::BTreeMap;

use tracing::info;

use super::{ConsumerGroup, TopicMetadata};
use crate::groups::consumer_protocol::TopicPartition;
use crate::scheduler::{self, LoadFigures, PartitionLoad};

impl ConsumerGroup {
    /// Whether the `load` assignor should look at the load again now.
    pub fn load_review_due(&self, now: u64) -> bool {
        self.assignor == "load"
            && !self.members.is_empty()
            && self.group_epoch == self.assignment_epoch
            && self
                .last_decision
                .as_ref()
                .is_none_or(|(t, _)| now.saturating_sub(*t) >= self.settings.scheduler_interval_ms)
    }

    /// Runs the `load` assignor on fresh figures and adopts its result if it moves
    /// anything (a new group epoch). Returns whether it did.
    pub fn review_load(
        &mut self,
        now: u64,
        topics: &dyn TopicMetadata,
        figures: LoadFigures,
    ) -> bool {
        let mut spec = self.spec(topics);
        spec.load = figures;
        self.mark_falling_behind(&mut spec.load);
        let Some(decision) = scheduler::assign("load", &spec, &self.settings.tuning) else {
            return false;
        };
        let moved = decision.moved;
        let changed = decision.assignment != self.target;
        self.last_decision = Some((now, decision));
        if !changed {
            return false;
        }
        self.bump(&format!("scheduler moved {moved} partition(s)"));
        let (_, d) = self.last_decision.as_ref().expect("just set");
        for (member, tps) in &d.assignment {
            for tp in tps {
                if !self.target.get(member).is_some_and(|t| t.contains(tp)) {
                    self.moved_at.insert(tp.clone(), now);
                }
            }
        }
        self.target = d.assignment.clone();
        self.assignment_epoch = self.group_epoch;
        info!(group = %self.id, epoch = self.assignment_epoch, "scheduler: {}", d.reason);
        true
    }

    /// A member whose backlog on the same partitions grew since the last review cannot
    /// keep up: its measured rate is its capacity. (A member that keeps up has a steady
    /// backlog: what it consumed since its last commit.)
    fn mark_falling_behind(&mut self, figures: &mut LoadFigures) {
        let mut seen = BTreeMap::new();
        for (id, m) in &self.members {
            let held = m.held();
            let backlog: f64 = held
                .iter()
                .filter_map(|tp| figures.partitions.get(tp))
                .map(|l| l.backlog)
                .sum();
            if let Some((before_held, before)) = self.backlog_seen.get(id) {
                if *before_held == held && backlog > before * 1.05 + 10.0 {
                    figures.saturated.insert(id.clone());
                }
            }
            seen.insert(id.clone(), (held, backlog));
        }
        self.backlog_seen = seen;
    }

    /// Records accepted commits: progress per lock holder (its consume rate).
    pub fn record_commits(&mut self, commits: &[(TopicPartition, i64, Option<i64>)], now: u64) {
        for (tp, offset, before) in commits {
            if let Some(owner) = self.locks.owner(tp) {
                self.meter.record(&owner.member, *offset, *before, now);
            }
        }
    }

    /// Load figures for the `load` assignor, given each partition's measured load.
    pub fn figures(
        &self,
        partitions: BTreeMap<TopicPartition, PartitionLoad>,
        now: u64,
    ) -> LoadFigures {
        let mut f = LoadFigures {
            member_rates: self
                .members
                .keys()
                .filter_map(|id| {
                    self.meter
                        .rate(id)
                        .filter(|r| *r > 0.0)
                        .map(|r| (id.clone(), r))
                })
                .collect(),
            ..Default::default()
        };
        for (id, m) in &self.members {
            let backlog: f64 = m
                .held()
                .iter()
                .filter_map(|tp| partitions.get(tp))
                .map(|l| l.backlog)
                .sum();
            let idle = self.meter.idle_ms(id, now).unwrap_or(0);
            if backlog > 0.0 && idle > self.settings.scheduler_stall_ms {
                f.stalled.insert(id.clone());
            }
            // Far behind (more than half a minute of its own work): saturated whatever the
            // trend (see `mark_falling_behind` for the trend).
            let rate = f.member_rates.get(id).copied().unwrap_or(0.0);
            if rate > 0.0 && backlog > rate * 30.0 {
                f.saturated.insert(id.clone());
            }
        }
        let cooldown = self.settings.scheduler_cooldown_ms;
        f.pinned = self
            .moved_at
            .iter()
            .filter(|(_, t)| now.saturating_sub(**t) < cooldown)
            .map(|(tp, _)| tp.clone())
            .collect();
        f.partitions = partitions;
        f
    }

    /// A member's measured consume rate and time since its last progress, for describe.
    pub fn member_progress(&self, id: &str, now: u64) -> (Option<f64>, Option<u64>) {
        (self.meter.rate(id), self.meter.idle_ms(id, now))
    }
}
