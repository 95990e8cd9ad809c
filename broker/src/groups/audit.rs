//! The coordinator's use of the real-time reconciliation (`audit/`): before a commit is
//! written, each partition it moves forward is checked with the partition's leader
//! against what the committing client was delivered; the resulting audit record of each
//! partition is written in the same Raft proposal as the offsets (so it survives
//! coordinator failover exactly as they do), and a `strict` group's commit that would
//! skip undelivered records is refused.

use std::sync::Arc;

use super::consumer_protocol::TopicPartition;
use super::coordinator::{GroupCoordinator, Slot};
use crate::audit::reconcile::{self, Decision, Mode, Who};

impl GroupCoordinator {
    /// What each commit in `items` (partition, new offset) does to the group's audit, in
    /// order. Called with the group's `io` lock held.
    pub(super) async fn audit(
        &self,
        slot: &Arc<Slot>,
        who: &Who,
        items: &[(TopicPartition, i64)],
    ) -> Vec<Decision> {
        let accept = || vec![Decision::Accept; items.len()];
        let Some(catalog) = self.catalog() else {
            return accept();
        };
        let mode = catalog.group_settings(&slot.id).audit;
        if mode == Mode::Off {
            return accept();
        }
        let prior: Vec<_> = {
            let g = slot.core();
            items
                .iter()
                .map(|(tp, _)| {
                    (
                        g.audit.get(tp).cloned().unwrap_or_default(),
                        g.offsets.get(tp).map(|c| c.offset),
                    )
                })
                .collect()
        };
        let mut asked = Vec::new();
        let mut checks = Vec::new();
        for (i, ((tp, to), (audit, committed))) in items.iter().zip(&prior).enumerate() {
            if let Some(c) = reconcile::check_for(tp, audit, *committed, *to, who) {
                asked.push(i);
                checks.push(c);
            }
        }
        let mut verdicts: Vec<Option<Result<_, String>>> = vec![None; items.len()];
        if !checks.is_empty() {
            for (i, v) in asked
                .into_iter()
                .zip(catalog.check_deliveries(checks).await)
            {
                verdicts[i] = Some(v);
            }
        }
        let now = super::offsets::now_ms();
        items
            .iter()
            .zip(prior)
            .zip(verdicts)
            .map(|(((tp, to), (audit, committed)), verdict)| {
                if let Some(Err(e)) = &verdict {
                    tracing::warn!(group = %slot.id, topic = %tp.0, partition = tp.1, error = %e,
                        "commit could not be checked against deliveries");
                }
                let d = reconcile::decide(&audit, committed, *to, verdict, who, mode, now);
                if let Decision::Refuse { audit, .. } = &d {
                    if let Some(e) = audit.events.last() {
                        tracing::warn!(group = %slot.id, topic = %tp.0, partition = tp.1,
                            from = e.from, to = e.to, client_id = %who.client_id, host = %who.host,
                            "strict group: commit refused, it would skip records never delivered");
                    }
                } else if let Decision::Record(a) = &d {
                    if let Some(e) = a
                        .events
                        .last()
                        .filter(|e| e.kind == reconcile::Kind::Skipped && e.at_ms == now)
                    {
                        tracing::warn!(group = %slot.id, topic = %tp.0, partition = tp.1,
                            from = e.from, to = e.to, client_id = %who.client_id, host = %who.host,
                            "commit skipped records never delivered to the committer");
                    }
                }
                d
            })
            .collect()
    }
}

impl GroupCoordinator {
    /// The group's audit as `phxq group audit` reads it: its mode and, per partition, the
    /// committed offset and the audit record (JSON).
    pub async fn audit_report(&self, group_id: &str) -> Result<serde_json::Value, i16> {
        let slot = self
            .slot(group_id, false)?
            .ok_or(super::errors::GROUP_ID_NOT_FOUND)?;
        let _io = slot.io.lock().await;
        let mode = self
            .catalog()
            .map_or(Mode::Off, |c| c.group_settings(group_id).audit);
        let g = slot.core();
        let partitions: Vec<serde_json::Value> = g
            .offsets
            .iter()
            .map(|(tp, c)| {
                serde_json::json!({
                    "topic": tp.0,
                    "partition": tp.1,
                    "committed": c.offset,
                    "audit": g.audit.get(tp),
                })
            })
            .collect();
        Ok(serde_json::json!({
            "mode": mode.name(),
            "partitions": partitions,
        }))
    }
}
