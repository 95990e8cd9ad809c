//! Disk full: keeping a broker whose disk fills up correct and bringing it back by itself.
//!
//! - [`DiskGuard`] holds whether the data directory's filesystem is below its free-space
//!   floor (the rules are in [`floor`]); Produce asks it before appending and answers
//!   KAFKA_STORAGE_ERROR while it is low. Nothing else is refused.
//! - [`run`] measures the free space every `[storage] check_interval_ms` and logs each
//!   change (a warning when produce stops, info when it resumes).
//! - A real ENOSPC can still happen (the floor is off, another process filled the disk, a
//!   follower appends what its leader accepted). The node's storage writer then fails
//!   every later write and its Raft groups stop: nothing acknowledged is damaged (every
//!   acknowledged record was fsync'd before its answer), but the in-memory Raft state of
//!   that process can no longer be trusted. Once free space is back above the floor, [`run`]
//!   restarts the broker in place: it `exec`s its own binary with the same arguments and
//!   environment (same pid, so supervisors see no exit), and the node recovers from disk
//!   exactly as after a kill -9, which the cluster tests exercise. Clients reconnect.

pub mod config;
pub mod floor;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tracing::{error, info, warn};

use crate::broker::Broker;
use floor::{Floor, Space, Transition};

/// Whether this broker takes new records, as far as its disk is concerned.
pub struct DiskGuard {
    dir: PathBuf,
    floor: Mutex<Floor>,
    low: AtomicBool,
    /// The last measure, for the metrics.
    last: Mutex<Option<Space>>,
}

impl DiskGuard {
    /// A guard for the filesystem holding `dir`, measured once now so that a broker started
    /// on a full disk refuses produce from its first request.
    pub fn new(dir: &Path, config: &config::StorageConfig) -> DiskGuard {
        let guard = DiskGuard {
            dir: dir.to_path_buf(),
            floor: Mutex::new(Floor::new(config.min_free_bytes)),
            low: AtomicBool::new(false),
            last: Mutex::new(None),
        };
        if let Err(e) = guard.check() {
            warn!(dir = %dir.display(), error = %e, "cannot measure free disk space");
        }
        guard
    }

    /// True while free space is below the floor: produce is refused.
    pub fn low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// The last measure of the filesystem (None before the first one succeeded).
    pub fn space(&self) -> Option<Space> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Measures the free space and updates the state; logs a change.
    fn check(&self) -> io::Result<Space> {
        let space = free_space(&self.dir)?;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(space);
        let mut floor = self.floor.lock().unwrap_or_else(|p| p.into_inner());
        match floor.observe(space) {
            Some(Transition::BecameLow { floor }) => warn!(
                free_bytes = space.free,
                floor_bytes = floor,
                dir = %self.dir.display(),
                "free disk space below the floor: produce is refused with KAFKA_STORAGE_ERROR \
                 until space is freed (retention, DeleteRecords, DeleteTopics, or outside phxq)"
            ),
            Some(Transition::Recovered { floor }) => info!(
                free_bytes = space.free,
                floor_bytes = floor,
                "free disk space back above the floor: produce is accepted again"
            ),
            None => {}
        }
        self.low.store(floor.low(), Ordering::Relaxed);
        Ok(space)
    }

    /// Free space at which a node whose writer failed restarts.
    fn restart_bytes(&self, total: u64) -> u64 {
        let floor = self.floor.lock().unwrap_or_else(|p| p.into_inner());
        floor.resume_bytes(total)
    }
}

/// Watches the disk until the broker is gone.
pub async fn run(broker: Weak<Broker>) {
    let every = match broker.upgrade() {
        Some(b) => Duration::from_millis(b.config.storage.check_interval_ms),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut measure_failed = false;
    let mut waiting_logged = false;
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else {
            return;
        };
        let space = match b.disk.check() {
            Ok(s) => {
                measure_failed = false;
                s
            }
            Err(e) => {
                if !measure_failed {
                    warn!(error = %e, "cannot measure free disk space; keeping the last state");
                }
                measure_failed = true;
                continue;
            }
        };
        if !b.node.storage_failed() {
            continue;
        }
        let needed = b.disk.restart_bytes(space.total);
        if space.free < needed {
            if !waiting_logged {
                error!(
                    free_bytes = space.free,
                    needed_bytes = needed,
                    "a storage write failed (disk full?): this node serves no writes and \
                     restarts itself once enough space is free"
                );
                waiting_logged = true;
            }
            continue;
        }
        error!(
            free_bytes = space.free,
            "a storage write failed earlier and space is free again: restarting this broker \
             in place to recover from disk"
        );
        let e = restart_in_place();
        error!(error = %e, "cannot restart in place; restart phxq by hand");
        return;
    }
}

/// Replaces this process with a fresh run of the same binary and arguments. Returns only
/// if that fails. Every file and socket phxq opens is close-on-exec, so the new process
/// opens the database, takes its lock and binds the listeners afresh.
fn restart_in_place() -> io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return e,
    };
    std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec()
}

/// Free and total bytes of the filesystem holding `dir`.
fn free_space(dir: &Path) -> io::Result<Space> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: statvfs writes only into the zeroed struct it is given; the path is a valid
    // NUL-terminated string that outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok(Space {
        free: (st.f_bavail as u64).saturating_mul(unit),
        total: (st.f_blocks as u64).saturating_mul(unit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let s = free_space(dir.path()).unwrap();
        assert!(s.total > 0 && s.free <= s.total, "{s:?}");
        assert!(free_space(&dir.path().join("missing")).is_err());
    }
}
