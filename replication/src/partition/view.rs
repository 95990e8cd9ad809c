//! What readers see of one group's partitions: the offset cache (log start and high
//! watermark of every partition, as last committed) and the applied counter, shared by the
//! state machine, the writer (which publishes what each commit changed) and readers. The
//! reads themselves are in `read`.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, RwLock};

use redb::{Database, ReadableDatabase};
use tokio::sync::watch;

use crate::partition::exec::{offsets_of, ApplyEffect};
use crate::store::meta::read_applied;
use crate::store::schema::*;
use crate::store::segments::Segments;
use crate::types::{GroupId, PartitionId, PartitionOffsets};

/// The readers' view of one group: cached offsets and the applied position.
pub struct GroupShared {
    pub id: GroupId,
    pub db: Arc<Database>,
    /// Where the batch bytes are.
    pub segments: Arc<Segments>,
    /// Offsets of every partition of the group as last committed by the writer: O(partitions).
    offsets: RwLock<HashMap<PartitionId, PartitionOffsets>>,
    /// Index of the last applied log entry whose effects are committed and visible to reads
    /// (it grows with every applied entry).
    applied_tx: watch::Sender<u64>,
    /// Term of the last applied entry visible to reads. Once it reaches a leader's term,
    /// every entry of earlier terms is visible too (a leader opens its term with an entry).
    applied_term: std::sync::atomic::AtomicU64,
    /// Per partition, the latest term in which something was appended to it (since this
    /// process started) and the first offset appended in that term.
    term_starts: RwLock<HashMap<PartitionId, (u64, i64)>>,
}

fn load_offsets(db: &Database, id: GroupId) -> io::Result<HashMap<PartitionId, PartitionOffsets>> {
    let mut offsets = HashMap::new();
    let txn = db.begin_read().map_err(io::Error::other)?;
    let parts = txn.open_table(PARTITIONS).map_err(io::Error::other)?;
    let range = (id.0, 0u128, i32::MIN)..=(id.0, u128::MAX, i32::MAX);
    for item in parts.range(range).map_err(io::Error::other)? {
        let (k, v) = item.map_err(io::Error::other)?;
        let (_, topic_id, index) = k.value();
        let m = PartMeta::decode(v.value()).ok_or_else(|| io::Error::other("partition meta"))?;
        offsets.insert(PartitionId { topic_id, index }, offsets_of(&m));
    }
    Ok(offsets)
}

impl GroupShared {
    /// Loads the group's partition offsets from redb.
    pub fn load(
        id: GroupId,
        db: Arc<Database>,
        segments: Arc<Segments>,
    ) -> io::Result<Arc<GroupShared>> {
        let offsets = load_offsets(&db, id)?;
        let (applied, _) = read_applied(&db, id.0)?;
        let (applied_tx, _) = watch::channel(applied.map_or(0, |l| l.index));
        Ok(Arc::new(GroupShared {
            id,
            db,
            segments,
            offsets: RwLock::new(offsets),
            applied_tx,
            applied_term: applied.map_or(0, |l| l.leader_id.term).into(),
            term_starts: RwLock::new(HashMap::new()),
        }))
    }

    /// Re-reads offsets and the applied index from redb after the group's state was
    /// replaced wholesale (snapshot install). The offsets lock is held across the read
    /// transaction, so a publish of a later commit lands after it and is not lost.
    pub fn reload(&self) -> io::Result<()> {
        {
            let mut map = self.offsets.write().unwrap_or_else(|p| p.into_inner());
            *map = load_offsets(&self.db, self.id)?;
        }
        let (applied, _) = read_applied(&self.db, self.id.0)?;
        let applied = applied.map_or(0, |l| l.index);
        self.applied_tx.send_if_modified(|n| {
            let grew = applied > *n;
            *n = (*n).max(applied);
            grew
        });
        Ok(())
    }

    /// Publishes what a committed apply changed.
    pub fn publish(&self, effect: &ApplyEffect) {
        if !effect.offsets.is_empty() {
            let mut map = self.offsets.write().unwrap_or_else(|p| p.into_inner());
            for (p, o) in &effect.offsets {
                match o {
                    Some(o) => map.insert(*p, *o),
                    None => map.remove(p),
                };
            }
        }
        if !effect.appends.is_empty() {
            let mut starts = self.term_starts.write().unwrap_or_else(|p| p.into_inner());
            for &(p, term, base) in &effect.appends {
                let s = starts.entry(p).or_insert((term, base));
                if s.0 < term {
                    *s = (term, base);
                }
            }
        }
        if let Some(last) = effect.last_applied {
            self.applied_term
                .fetch_max(last.leader_id.term, std::sync::atomic::Ordering::Release);
            self.applied_tx.send_if_modified(|n| {
                let grew = last.index > *n;
                *n = (*n).max(last.index);
                grew
            });
        }
    }

    /// The first offset of `p` appended by an entry of `term`, if this process applied
    /// one (offsets below it were appended in earlier terms).
    pub fn term_start(&self, p: PartitionId, term: u64) -> Option<i64> {
        self.term_starts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&p)
            .filter(|s| s.0 == term)
            .map(|s| s.1)
    }

    /// Term of the last applied entry visible to reads.
    pub fn applied_term(&self) -> u64 {
        self.applied_term.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    pub fn offsets(&self, p: PartitionId) -> Option<PartitionOffsets> {
        self.offsets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&p)
            .copied()
    }
}
