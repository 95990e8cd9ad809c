//! Consumer lag of the groups this broker coordinates, for the metrics: per partition the
//! log end offset (this broker's replica) minus the group's committed offset.

use super::coordinator::GroupCoordinator;
use super::group::GroupState;

/// One partition's lag for one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// Records between the committed offset and the log end (never negative).
    pub lag: i64,
}

impl GroupCoordinator {
    /// The lag of every partition a group coordinated here committed, by group id; a
    /// partition whose log end is not known on this broker is left out.
    pub fn lag(&self) -> Vec<PartitionLag> {
        let Some(catalog) = self.catalog() else {
            return vec![];
        };
        let slots: Vec<_> = self.groups.lock().unwrap().values().cloned().collect();
        let mut out = Vec::new();
        for slot in slots {
            if self.store(slot.store).is_err() {
                continue;
            }
            let g = slot.core();
            if g.state == GroupState::Dead {
                continue;
            }
            for ((topic, partition), committed) in &g.offsets {
                if let Some(end) = catalog.log_end(topic, *partition) {
                    out.push(PartitionLag {
                        group: slot.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        lag: (end - committed.offset).max(0),
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition))
        });
        out
    }
}
