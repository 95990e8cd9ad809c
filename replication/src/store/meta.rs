//! A group's applied state as redb holds it: the log id of the last applied entry and the
//! membership it carried, written by every apply in the same transaction as its data.

use std::io;

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::store::log_id::decode_log_id;
use crate::store::schema::{GROUP_META, META_APPLIED, META_MEMBERSHIP};
use crate::types::{LogId, StoredMembership};

/// Reads the applied log id and membership of `group` from any readable meta table.
pub fn applied_of(
    meta: &impl ReadableTable<(u32, u8), &'static [u8]>,
    group: u32,
) -> io::Result<(Option<LogId>, StoredMembership)> {
    let applied = match meta.get((group, META_APPLIED)).map_err(io::Error::other)? {
        Some(v) => Some(decode_log_id(v.value()).map_err(io::Error::other)?),
        None => None,
    };
    let membership = match meta
        .get((group, META_MEMBERSHIP))
        .map_err(io::Error::other)?
    {
        Some(v) => serde_json::from_slice(v.value()).map_err(io::Error::other)?,
        None => StoredMembership::default(),
    };
    Ok((applied, membership))
}

pub fn read_applied(db: &Database, group: u32) -> io::Result<(Option<LogId>, StoredMembership)> {
    let txn = db.begin_read().map_err(io::Error::other)?;
    let meta = txn.open_table(GROUP_META).map_err(io::Error::other)?;
    applied_of(&meta, group)
}
