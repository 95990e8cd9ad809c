//! Offsets committed inside a transaction (TxnOffsetCommit; KIP-98, KIP-447): the
//! consume-transform-produce loop's input positions, which must become visible exactly
//! when the transaction's output does.
//!
//! Rules (Kafka's group coordinator):
//! - A TxnOffsetCommit that carries the consumer's group metadata (member id, generation;
//!   v3+) is checked like an OffsetCommit: membership, generation and, for the consumer-
//!   group lock, that the member owns each partition. Without it (member "" and
//!   generation -1) it is taken as Kafka takes it, unchecked. A share group refuses with
//!   GROUP_ID_NOT_FOUND.
//! - Accepted offsets are pending for the producer id, merged with its earlier pending
//!   ones, and durable (`txnoffsets/<group>/<producer id>`) before the answer. They are
//!   not committed offsets: OffsetFetch does not return them (with `require_stable` it
//!   answers UNSTABLE_OFFSET_COMMIT for those partitions).
//! - The transaction's marker reaches the group ([`GroupCoordinator::complete_txn`]): on
//!   commit the pending offsets become the committed offsets in the same Raft entry that
//!   removes them; on abort they are removed. A marker with nothing pending changes
//!   nothing (markers are written again after a coordinator failover).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use phxq_replication::Command;
use tracing::warn;

use super::commits::Committer;
use super::consumer_protocol::TopicPartition;
use super::coordinator::{commit_error, GroupCoordinator};
use super::errors::*;
use super::offsets::{self, CommittedOffset};

impl GroupCoordinator {
    /// TxnOffsetCommit: one code per item.
    pub async fn txn_commit(
        self: &Arc<Self>,
        group_id: &str,
        by: &Committer<'_>,
        producer_id: i64,
        items: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Vec<i16> {
        let n = items.len();
        let slot = match self.slot(group_id, true) {
            Ok(Some(s)) => s,
            Ok(None) => return vec![COORDINATOR_NOT_AVAILABLE; n],
            Err(code) => return vec![code; n],
        };
        let _io = slot.io.lock().await;
        let tps: Vec<TopicPartition> = items.iter().map(|(tp, _)| tp.clone()).collect();
        let codes = {
            let mut g = slot.core();
            if g.share.is_some() {
                vec![GROUP_ID_NOT_FOUND; n]
            } else if by.member_id.is_empty() && by.generation < 0 && by.instance_id.is_none() {
                vec![NONE; n]
            } else {
                g.check_commit(
                    by.member_id,
                    by.instance_id,
                    by.generation,
                    &tps,
                    self.now(),
                )
            }
        };
        let mut pending: BTreeMap<TopicPartition, CommittedOffset> = slot
            .core()
            .txn_offsets
            .get(&producer_id)
            .cloned()
            .unwrap_or_default();
        let mut any = false;
        for ((tp, c), code) in items.into_iter().zip(&codes) {
            if *code == NONE {
                pending.insert(tp, c);
                any = true;
            }
        }
        if !any {
            return codes;
        }
        let value = offsets::encode(&pending.iter().collect::<Vec<_>>());
        let key = offsets::txn_offsets_key(&slot.id, producer_id);
        match self.write_puts(slot.store, vec![(key, Some(value))]).await {
            Ok(()) => {
                slot.core().txn_offsets.insert(producer_id, pending);
                codes
            }
            Err(code) => {
                warn!(group = %slot.id, producer_id, code, "transactional offsets not stored");
                codes
                    .into_iter()
                    .map(|c| if c == NONE { code } else { c })
                    .collect()
            }
        }
    }

    /// The marker of `producer_id`'s transaction reached `group_id`: its pending offsets
    /// are committed (`commit`) or dropped.
    pub async fn complete_txn(
        self: &Arc<Self>,
        group_id: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), i16> {
        let Some(slot) = self.slot(group_id, false)? else {
            return Ok(());
        };
        let _io = slot.io.lock().await;
        let Some(pending) = slot.core().txn_offsets.get(&producer_id).cloned() else {
            return Ok(());
        };
        let mut puts: Vec<(Bytes, Option<Bytes>)> =
            vec![(offsets::txn_offsets_key(&slot.id, producer_id), None)];
        let items: Vec<(TopicPartition, CommittedOffset)> = pending.into_iter().collect();
        if commit {
            puts.extend(
                items
                    .iter()
                    .map(|(tp, c)| (offsets::offset_key(&slot.id, tp), Some(offsets::encode(c)))),
            );
        }
        self.write_puts(slot.store, puts).await?;
        let mut g = slot.core();
        g.txn_offsets.remove(&producer_id);
        if commit {
            g.apply_commits("", items, self.now());
        }
        Ok(())
    }

    /// Whether `group_id` has offsets of an undecided transaction for `tp` (OffsetFetch
    /// with `require_stable`).
    pub fn has_pending_txn_offsets(&self, group_id: &str, tp: &TopicPartition) -> bool {
        match self.slot(group_id, false) {
            Ok(Some(slot)) => slot
                .core()
                .txn_offsets
                .values()
                .any(|offsets| offsets.contains_key(tp)),
            _ => false,
        }
    }

    async fn write_puts(
        &self,
        store: phxq_replication::GroupId,
        puts: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), i16> {
        self.store(store)?
            .propose(Command::Put(puts))
            .await
            .map(|_| ())
            .map_err(|e| commit_error(&e))
    }
}
