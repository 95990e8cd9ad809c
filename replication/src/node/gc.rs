//! Segment garbage collection on a node: a task that looks, after topics or records were
//! deleted, for segment files no row refers to any more and deletes them. The store does
//! the collecting (`store::segments::collect_garbage`); this wires in who refers to
//! segment files: the partition batch index and the raft log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::Database;

use crate::partition::read::BatchRefs;
use crate::raft::log_read::LogRefs;
use crate::store::segments::{collect_garbage, Segments};
use crate::types::ReplicationError;

/// How often the node looks whether segment files may have become garbage.
const COLLECT_EVERY: Duration = Duration::from_secs(10);

/// Deletes segment files nothing refers to, after rows referring to batches were deleted.
/// Ends when the node shuts down (`shut`) or is dropped (the handles are gone).
pub async fn run(db: Weak<Database>, segments: Weak<Segments>, shut: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(COLLECT_EVERY);
    loop {
        tick.tick().await;
        if shut.load(Ordering::Relaxed) {
            return;
        }
        let Some(segs) = segments.upgrade() else {
            return;
        };
        if !segs.take_garbage() {
            continue;
        }
        drop(segs);
        // The deletion that raised the flag commits right after; look after it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (Some(d), Some(segs)) = (db.upgrade(), segments.upgrade()) else {
            return;
        };
        if let Err(e) = collect(d, segs.clone()).await {
            // Raise the flag again: the next tick retries instead of forgetting the garbage.
            segs.note_garbage();
            tracing::warn!(error = %e, "collecting segment files failed; will retry");
        }
    }
}

/// Deletes the segment files no row refers to (see `segments::collect_garbage`).
pub async fn collect(
    db: Arc<Database>,
    segments: Arc<Segments>,
) -> Result<Vec<u32>, ReplicationError> {
    tokio::task::spawn_blocking(move || collect_garbage(&db, &segments, &[&BatchRefs, &LogRefs]))
        .await
        .map_err(ReplicationError::storage)?
        .map_err(ReplicationError::storage)
}
