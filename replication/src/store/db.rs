//! Opening a node's redb database: the file (optionally behind a fault-injecting backend
//! for tests), every table created, and the storage format checked or stamped.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata};

use crate::store::fault::{DiskFault, FaultyBackend};
use crate::store::schema::*;
use crate::types::ReplicationError;

fn storage(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::storage(e)
}

/// Opens (or creates) the database at `path` with `cache_bytes` of page cache, creates
/// every table and refuses a database of another storage format. Blocking.
pub fn open_db(
    path: &Path,
    cache_bytes: usize,
    fault: Option<DiskFault>,
) -> Result<Database, ReplicationError> {
    let db = match fault {
        None => redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(storage)?,
        Some(fault) => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(storage)?;
            let backend = FaultyBackend::new(file, fault).map_err(storage)?;
            redb::Builder::new()
                .set_cache_size(cache_bytes)
                .create_with_backend(backend)
                .map_err(storage)?
        }
    };
    let txn = db.begin_write().map_err(storage)?;
    txn.open_table(LOG).map_err(storage)?;
    txn.open_table(GROUP_META).map_err(storage)?;
    txn.open_table(GROUPS).map_err(storage)?;
    txn.open_table(PARTITIONS).map_err(storage)?;
    txn.open_table(BATCHES).map_err(storage)?;
    txn.open_table(TIME_INDEX).map_err(storage)?;
    txn.open_table(PRODUCERS).map_err(storage)?;
    txn.open_table(TXNS).map_err(storage)?;
    txn.open_table(EPOCHS).map_err(storage)?;
    txn.open_table(KV).map_err(storage)?;
    check_format(&txn)?;
    txn.commit().map_err(storage)?;
    Ok(db)
}

/// Refuses a database written with another storage layout; stamps a new one with [`FORMAT`].
fn check_format(txn: &redb::WriteTransaction) -> Result<(), ReplicationError> {
    let mut node = txn.open_table(NODE).map_err(storage)?;
    let found = node.get("format").map_err(storage)?.map(|v| v.value());
    match found {
        Some(FORMAT) => Ok(()),
        Some(other) => Err(storage(format!(
            "the data directory has storage format {other}; this phxq reads format {FORMAT}"
        ))),
        None => {
            let used = !txn
                .open_table(LOG)
                .map_err(storage)?
                .is_empty()
                .map_err(storage)?
                || !txn
                    .open_table(BATCHES)
                    .map_err(storage)?
                    .is_empty()
                    .map_err(storage)?;
            if used {
                return Err(storage(format!(
                    "the data directory was written by an older phxq (batches inside redb); \
                     this phxq keeps them in segment files (storage format {FORMAT}) and \
                     cannot read it: start with an empty data directory"
                )));
            }
            node.insert("format", FORMAT).map_err(storage)?;
            Ok(())
        }
    }
}
