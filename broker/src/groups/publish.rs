//! The coordinator's side of speed-limited and fetch-locked groups: it publishes who holds
//! each of their partitions (and who their members are) so that every broker can attribute
//! fetches to them (`quotas/groups.rs`). Published when a group syncs or heartbeats and
//! every few timer ticks, only when it changed.

use std::sync::Arc;

use super::coordinator::{GroupCoordinator, Slot};
use super::views::Holders;

impl GroupCoordinator {
    /// Publishes the lock holders of speed-limited (or fetch-locked) groups whose holders
    /// changed since they were last published (and nothing for groups no longer so).
    pub(super) fn publish_holders(&self, slots: &[Arc<Slot>]) {
        let Some(catalog) = self.catalog() else {
            return;
        };
        let mut published = self.published_holders.lock().unwrap();
        for slot in slots {
            let holders = if catalog.group_settings(&slot.id).needs_holders() {
                slot.core().lock_holders()
            } else {
                Holders::default()
            };
            let before = published.get(&slot.id);
            if before == Some(&holders) || (before.is_none() && holders.is_empty()) {
                continue;
            }
            catalog.publish_holders(&slot.id, holders.clone());
            if holders.is_empty() {
                published.remove(&slot.id);
            } else {
                published.insert(slot.id.clone(), holders);
            }
        }
    }
}
