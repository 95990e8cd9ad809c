//! Disk fault injection for tests: a redb storage backend over the real file that refuses
//! writes while a [`DiskFault`] switch is on, like a full disk would (ENOSPC), and fails
//! reads while its read switch is on (segment files honour the same switches).

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// Switches shared by a test and the node's storage. While writes fail, every write,
/// resize and sync of the database file and every segment append and sync fails with "no
/// space left on device"; while reads fail, every read of the database file (past redb's
/// page cache) and of the segment files fails with an I/O error.
#[derive(Clone, Debug, Default)]
pub struct DiskFault(Arc<Switches>);

#[derive(Debug, Default)]
struct Switches {
    writes: AtomicBool,
    reads: AtomicBool,
}

impl DiskFault {
    pub fn new() -> DiskFault {
        DiskFault::default()
    }
    /// From now on the disk refuses writes.
    pub fn fail(&self) {
        self.0.writes.store(true, Ordering::SeqCst);
    }
    /// From now on the disk fails reads.
    pub fn fail_reads(&self) {
        self.0.reads.store(true, Ordering::SeqCst);
    }
    /// The disk accepts writes and reads again.
    pub fn heal(&self) {
        self.0.writes.store(false, Ordering::SeqCst);
        self.0.reads.store(false, Ordering::SeqCst);
    }
    pub(crate) fn check(&self) -> io::Result<()> {
        if self.0.writes.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected: no space left on device",
            ))
        } else {
            Ok(())
        }
    }
    pub(crate) fn check_read(&self) -> io::Result<()> {
        if self.0.reads.load(Ordering::SeqCst) {
            Err(io::Error::other("injected: read error"))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
pub struct FaultyBackend {
    inner: FileBackend,
    fault: DiskFault,
}

impl FaultyBackend {
    pub fn new(file: File, fault: DiskFault) -> Result<FaultyBackend, redb::DatabaseError> {
        Ok(FaultyBackend {
            inner: FileBackend::new(file)?,
            fault,
        })
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.fault.check_read()?;
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.fault.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.fault.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.fault.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
