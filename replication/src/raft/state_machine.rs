//! A group's state machine as openraft sees it: applies go to the group-commit writer (the
//! entry loop is `raft::apply`, the partition semantics `partition::exec`), snapshots are descriptors of the durable redb state. Shipping
//! that state to a follower is `snapshot::transfer`: the data is installed before openraft hears of the
//! snapshot, so `install_snapshot` here only checks it and records it.
//!
//! Applies are committed non-durably (see `store::writer`); `applied_state` is read from redb,
//! where the applied log id is written in the same transaction as the data it covers. After
//! a crash redb holds a consistent prefix, so the applied id reported on restart matches
//! the data and openraft re-applies the rest from the durable raft log.

use std::io;
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::OptionalSend;
use redb::{Database, ReadableDatabase, Table, WriteTransaction};

use crate::partition::view::GroupShared;
use crate::raft::log_mem::LogShared;
use crate::raft::work::{RaftWork, RaftWriter};
use crate::store::meta::{applied_of, read_applied};
use crate::store::schema::*;
use crate::types::{GroupSnapshot, LeaderId, LogId, SnapshotMeta, StoredMembership, TypeConfig};

pub type GroupSnapshotOf = Snapshot<LeaderId, u64, openraft::BasicNode, GroupSnapshot>;

pub struct StateMachine {
    pub group: Arc<GroupShared>,
    pub log: Arc<LogShared>,
    pub writer: RaftWriter,
}

fn read_snapshot_meta(db: &Database, group: u32) -> io::Result<Option<SnapshotMeta>> {
    let txn = db.begin_read().map_err(io::Error::other)?;
    let meta = txn.open_table(GROUP_META).map_err(io::Error::other)?;
    match meta.get((group, META_SNAPSHOT)).map_err(io::Error::other)? {
        Some(v) => Ok(Some(
            serde_json::from_slice(v.value()).map_err(io::Error::other)?,
        )),
        None => Ok(None),
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = GroupSnapshot;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        read_applied(&self.group.db, self.group.id.0)
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        while let Some(item) = entries.try_next().await? {
            batch.push(item);
        }
        if batch.is_empty() {
            return Ok(());
        }
        // Applies are pipelined: the writer packs every queued apply (of every group) into
        // its next transaction and answers the responders after that commit. Waiting here
        // for our own commit would allow one apply per fsync. A failed transaction breaks
        // the writer: its responders get the error and the next apply stops the group.
        if self.writer.broken() {
            return Err(io::Error::other("storage writer failed; reopen the node"));
        }
        self.writer.submit(RaftWork::Apply {
            group: self.group.clone(),
            log: self.log.clone(),
            entries: batch,
        });
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            group: self.group.clone(),
            writer: self.writer.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        _snapshot: GroupSnapshot,
    ) -> Result<(), io::Error> {
        // The data was installed when the transfer completed (`snapshot::transfer`), at a state at or
        // after `meta`. Check that, and record the state as the current snapshot: it covers
        // everything openraft now purges from the log.
        let group = self.group.id.0;
        let want = meta.last_log_id;
        let behind: Arc<Mutex<Option<Option<LogId>>>> = Arc::default();
        let slot = behind.clone();
        let job = Box::new(move |txn: &WriteTransaction| -> Result<(), redb::Error> {
            let mut meta = txn.open_table(GROUP_META)?;
            let (applied, _) = applied_of(&meta, group).map_err(redb::Error::Io)?;
            if applied.map(|l| l.index) < want.map(|l| l.index) {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(applied);
                return Ok(());
            }
            record_snapshot(&mut meta, group)?;
            Ok(())
        });
        self.writer.exec(true, job).await?;
        if let Some(applied) = behind.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(io::Error::other(format!(
                "group {group}: snapshot {want:?} to install but the state is at {applied:?}"
            )));
        }
        self.group.reload()
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<GroupSnapshotOf>, io::Error> {
        let meta = read_snapshot_meta(&self.group.db, self.group.id.0)?;
        Ok(meta.map(|meta| Snapshot {
            meta,
            snapshot: GroupSnapshot {
                group: self.group.id,
            },
        }))
    }
}

/// Records the group's applied state (log id and membership) as its current snapshot.
pub fn record_snapshot(
    meta: &mut Table<(u32, u8), &'static [u8]>,
    group: u32,
) -> Result<SnapshotMeta, redb::Error> {
    let (last_log_id, last_membership) = applied_of(meta, group).map_err(redb::Error::Io)?;
    let snap = SnapshotMeta {
        last_log_id,
        last_membership,
    };
    let json = serde_json::to_vec(&snap).map_err(|e| redb::Error::Io(io::Error::other(e)))?;
    meta.insert((group, META_SNAPSHOT), json.as_slice())?;
    Ok(snap)
}

/// Builds a snapshot: one durable commit, which also reads the applied state it made
/// durable and records it as the group's current snapshot.
pub struct SnapshotBuilder {
    group: Arc<GroupShared>,
    writer: RaftWriter,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = GroupSnapshot;

    async fn build_snapshot(&mut self) -> Result<GroupSnapshotOf, io::Error> {
        let group = self.group.id.0;
        let out: Arc<Mutex<Option<SnapshotMeta>>> = Arc::default();
        let slot = out.clone();
        let job = Box::new(move |txn: &WriteTransaction| -> Result<(), redb::Error> {
            let mut meta = txn.open_table(GROUP_META)?;
            let snap = record_snapshot(&mut meta, group)?;
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(snap);
            Ok(())
        });
        self.writer.exec(true, job).await?;
        let meta = out.lock().unwrap_or_else(|p| p.into_inner()).take();
        let meta = meta.ok_or_else(|| io::Error::other("snapshot not built"))?;
        Ok(Snapshot {
            meta,
            snapshot: GroupSnapshot {
                group: self.group.id,
            },
        })
    }
}
