//! Full snapshots on the wire: a leader streams a group's state to a follower that is too
//! far behind for the log (the leader purged the entries it needs).
//!
//! Sending ([`send`], the router's `full_snapshot`): a blocking task dumps the group from one
//! redb read transaction (`dump`) into a small channel of chunks; the chunks go out
//! one after another as [`RaftRpc::SnapshotChunk`], each acknowledged, the last one (`done`)
//! answered with openraft's `SnapshotResponse` once installed. The read transaction sees the
//! applied state Y at send time, which may be ahead of the snapshot meta's last log id X that
//! openraft hands over: the dump carries Y.
//!
//! Receiving ([`Inbox`]): chunks are appended to `<data_dir>/snapshots/group-<id>.part`
//! (offset 0 starts a new transfer, any other offset must continue the current one). On
//! `done` the dump is validated, then installed in ONE durable writer transaction that
//! replaces every row of the group and writes `META_APPLIED` = Y with it (never backwards),
//! then openraft is told about meta X (`install_full_snapshot`). Openraft then re-applies
//! X+1..Y, which `raft::apply` skips as already applied. A crash before the install commits leaves
//! the old state; the temp file is deleted afterwards and at the next start.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use openraft::error::{ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::SnapshotResponse;
use openraft::storage::Snapshot;
use openraft::OptionalSend;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::partition::view::GroupShared;
use crate::raft::rpc::{RaftRpc, RaftRpcReply, Router, SnapshotChunk};
use crate::raft::snapshot::dump::{dump_group, validate};
use crate::raft::snapshot::install::install;
use crate::raft::work::RaftWriter;
use crate::raft::Raft;
use crate::types::{GroupId, GroupSnapshot, NodeId, SnapshotMeta, TypeConfig, Vote};

/// The group a snapshot is received for: its Raft handle and its readers' view.
pub struct Receiver<'a> {
    pub id: GroupId,
    pub raft: &'a Raft,
    pub shared: &'a GroupShared,
}

/// Chunk size when openraft does not suggest one.
const DEFAULT_CHUNK: usize = 3 << 20;
/// Largest chunk sent.
const MAX_CHUNK: usize = 8 << 20;
/// Largest chunk accepted (well under a transport frame limit of 16 MiB).
const MAX_RECEIVED_CHUNK: usize = 12 << 20;

/// Distinguishes transfers of the same snapshot.
static TRANSFERS: AtomicU64 = AtomicU64::new(0);

fn unreachable(msg: impl std::fmt::Display) -> StreamingError<TypeConfig> {
    StreamingError::Unreachable(Unreachable::from_string(msg.to_string()))
}

/// Streams `group`'s current state to `target` as a snapshot with meta `meta`.
pub async fn send(
    router: &Router,
    target: NodeId,
    group: GroupId,
    vote: Vote,
    meta: SnapshotMeta,
    cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
    option: RPCOption,
) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
    let chunk = option
        .snapshot_chunk_size()
        .unwrap_or(DEFAULT_CHUNK)
        .clamp(64 << 10, MAX_CHUNK);
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(2);
    let db = router.db.clone();
    let segments = router.segments.clone();
    // Ends when the dump is done or when `rx` is dropped (transfer over or cancelled).
    tokio::task::spawn_blocking(move || {
        if let Err(e) = dump_group(&db, &segments, group.0, chunk, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let id = format!(
        "{}/{}/{}",
        meta.last_log_id.map_or(0, |l| l.index),
        std::process::id(),
        TRANSFERS.fetch_add(1, Ordering::Relaxed)
    );
    tracing::info!(group = group.0, target, snapshot = %id, last_log_id = ?meta.last_log_id, "sending snapshot");
    let stream = async move {
        let mut offset = 0u64;
        let mut cur = next_chunk(&mut rx).await?;
        loop {
            let Some(data) = cur else {
                return Err(unreachable("snapshot dump ended early"));
            };
            let following = next_chunk(&mut rx).await?;
            let done = following.is_none();
            let len = data.len() as u64;
            let rpc = RaftRpc::SnapshotChunk(SnapshotChunk {
                vote,
                meta: meta.clone(),
                snapshot_id: id.clone(),
                offset,
                data,
                done,
            });
            // The last chunk is answered after the dump is validated and installed in one
            // durable transaction: give it time in proportion to a large group.
            let ttl = if done {
                std::time::Duration::from_secs(300)
            } else {
                option.hard_ttl().max(std::time::Duration::from_secs(10))
            };
            match router.call(target, group, rpc, ttl).await {
                Ok(RaftRpcReply::Snapshot(r)) if done => return Ok(r),
                Ok(RaftRpcReply::SnapshotAck { received }) if !done && received == offset + len => {
                }
                Ok(other) => return Err(unreachable(format!("unexpected reply {other:?}"))),
                Err(e) => return Err(unreachable(e)),
            }
            offset += len;
            cur = following;
        }
    };
    tokio::select! {
        r = stream => r,
        closed = cancel => Err(StreamingError::Closed(closed)),
    }
}

async fn next_chunk(
    rx: &mut mpsc::Receiver<io::Result<Bytes>>,
) -> Result<Option<Bytes>, StreamingError<TypeConfig>> {
    match rx.recv().await {
        None => Ok(None),
        Some(Ok(c)) => Ok(Some(c)),
        Some(Err(e)) => Err(unreachable(format!("snapshot dump failed: {e}"))),
    }
}

/// A transfer being received.
struct Transfer {
    id: String,
    path: PathBuf,
    file: tokio::fs::File,
    received: u64,
}

/// The snapshot transfers a node is receiving, one per group at most.
pub struct Inbox {
    dir: PathBuf,
    slots: Mutex<HashMap<GroupId, Arc<tokio::sync::Mutex<Option<Transfer>>>>>,
}

impl Inbox {
    /// The inbox of a node; deletes transfers left over from before a restart.
    pub fn new(data_dir: &Path) -> Inbox {
        let dir = data_dir.join("snapshots");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "part") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Inbox {
            dir,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, group: GroupId) -> Arc<tokio::sync::Mutex<Option<Transfer>>> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(group)
            .or_default()
            .clone()
    }

    /// Takes one chunk of a transfer to group `g`; installs the snapshot on the last one.
    pub async fn receive(
        &self,
        writer: &RaftWriter,
        g: Receiver<'_>,
        c: SnapshotChunk,
    ) -> Result<RaftRpcReply, String> {
        let group = g.id.0;
        if c.data.len() > MAX_RECEIVED_CHUNK {
            return Err(format!(
                "group {group}: snapshot chunk of {} bytes is too large",
                c.data.len()
            ));
        }
        let slot = self.slot(g.id);
        let mut held = slot.lock().await;
        if c.offset == 0 {
            if let Some(old) = held.take() {
                drop(old.file);
                let _ = tokio::fs::remove_file(&old.path).await;
            }
            let path = self.dir.join(format!("group-{group}.part"));
            let file = async {
                tokio::fs::create_dir_all(&self.dir).await?;
                tokio::fs::File::create(&path).await
            }
            .await
            .map_err(|e| format!("group {group}: snapshot file {}: {e}", path.display()))?;
            *held = Some(Transfer {
                id: c.snapshot_id.clone(),
                path,
                file,
                received: 0,
            });
        }
        let t = match held.as_mut() {
            Some(t) if t.id == c.snapshot_id && t.received == c.offset => t,
            Some(t) => {
                return Err(format!(
                    "group {group}: snapshot chunk {}@{} out of order (expecting {}@{})",
                    c.snapshot_id, c.offset, t.id, t.received
                ))
            }
            None => {
                return Err(format!(
                    "group {group}: snapshot chunk at offset {} without a transfer",
                    c.offset
                ))
            }
        };
        let written = async {
            t.file.write_all(&c.data).await?;
            if c.done {
                t.file.flush().await?;
            }
            io::Result::Ok(())
        }
        .await;
        if let Err(e) = written {
            if let Some(t) = held.take() {
                drop(t.file);
                let _ = tokio::fs::remove_file(&t.path).await;
            }
            return Err(format!("group {group}: writing snapshot chunk: {e}"));
        }
        t.received += c.data.len() as u64;
        if !c.done {
            return Ok(RaftRpcReply::SnapshotAck {
                received: t.received,
            });
        }
        let Some(t) = held.take() else {
            return Err(format!("group {group}: snapshot transfer vanished"));
        };
        drop(t.file);
        let r = install_received(writer, g, &t.path, c.vote, c.meta).await;
        let _ = tokio::fs::remove_file(&t.path).await;
        r
    }
}

/// Installs a completely received dump, then hands the snapshot meta to openraft.
async fn install_received(
    writer: &RaftWriter,
    g: Receiver<'_>,
    path: &Path,
    vote: Vote,
    meta: SnapshotMeta,
) -> Result<RaftRpcReply, String> {
    let group = g.id.0;
    let p = path.to_path_buf();
    let info = tokio::task::spawn_blocking(move || validate(&p))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("group {group}: bad snapshot dump: {e}"))?;
    if info.group != group {
        return Err(format!(
            "group {group}: snapshot dump is of group {}",
            info.group
        ));
    }
    if info.applied.map(|l| l.index) < meta.last_log_id.map(|l| l.index) {
        return Err(format!(
            "group {group}: snapshot dump at {:?} is older than its meta {:?}",
            info.applied, meta.last_log_id
        ));
    }
    let installed = Arc::new(Mutex::new(false));
    let flag = installed.clone();
    let p = path.to_path_buf();
    let segments = writer.segments.clone();
    writer
        .exec(
            true,
            Box::new(move |txn| {
                let done = install(txn, &segments, group, &p, info)?;
                *flag.lock().unwrap_or_else(|p| p.into_inner()) = done;
                Ok(())
            }),
        )
        .await
        .map_err(|e| format!("group {group}: installing snapshot: {e}"))?;
    let installed = *installed.lock().unwrap_or_else(|p| p.into_inner());
    g.shared
        .reload()
        .map_err(|e| format!("group {group}: reloading after snapshot: {e}"))?;
    tracing::info!(
        group,
        installed,
        rows = info.rows,
        state = ?info.applied,
        meta = ?meta.last_log_id,
        "snapshot received"
    );
    let snapshot = Snapshot {
        meta,
        snapshot: GroupSnapshot { group: g.id },
    };
    g.raft
        .install_full_snapshot(vote, snapshot)
        .await
        .map(RaftRpcReply::Snapshot)
        .map_err(|e| format!("group {group}: {e}"))
}
