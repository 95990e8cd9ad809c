//! The free-space floor: when this broker stops taking new records, and when it takes them
//! again. Pure; the monitor (`disk::run`) feeds it what `statvfs` says.
//!
//! # Rules
//!
//! - The floor is `[storage] min_free_bytes`, or by default 1 GiB or 5% of the
//!   filesystem, whichever is smaller (a small disk keeps a proportionate reserve).
//!   0 turns the floor off.
//! - Free space below the floor: *low*. Produce is refused with KAFKA_STORAGE_ERROR, so
//!   clients back off and retry, while everything else goes on: fetches, offset commits,
//!   group rebalances, replication from the leader, and the deletions that give space back
//!   (retention, DeleteRecords, DeleteTopics), whose small writes the reserve pays for.
//! - Low ends once free space is back at the floor plus a margin (a tenth of the floor,
//!   at least 1 MiB), so a broker hovering at the floor does not flap between the two.
//! - A restart of a node whose writer failed (a real ENOSPC, e.g. the floor was off or
//!   another process filled the disk) waits for the same margin.

/// Default floor: at most this many bytes...
const DEFAULT_FLOOR_BYTES: u64 = 1 << 30;
/// ...and at most this share of the filesystem, in percent.
const DEFAULT_FLOOR_PERCENT: u64 = 5;
/// Smallest margin above the floor before low space ends.
const MIN_MARGIN_BYTES: u64 = 1 << 20;

/// What `statvfs` says about the data directory's filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    /// Size of the filesystem.
    pub total: u64,
}

/// The floor and whether this broker is below it.
#[derive(Clone, Debug)]
pub struct Floor {
    configured: Option<u64>,
    low: bool,
}

/// A change of state worth logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Free space fell below the floor: produce is refused from now on.
    BecameLow { floor: u64 },
    /// Free space is back above the floor and margin: produce is taken again.
    Recovered { floor: u64 },
}

impl Floor {
    /// `configured`: `[storage] min_free_bytes` (None: the default for the filesystem).
    pub fn new(configured: Option<u64>) -> Floor {
        Floor {
            configured,
            low: false,
        }
    }

    /// The floor on a filesystem of `total` bytes.
    pub fn bytes(&self, total: u64) -> u64 {
        self.configured
            .unwrap_or_else(|| DEFAULT_FLOOR_BYTES.min(total / 100 * DEFAULT_FLOOR_PERCENT))
    }

    /// Free space at which a low broker recovers.
    pub fn resume_bytes(&self, total: u64) -> u64 {
        let floor = self.bytes(total);
        floor.saturating_add((floor / 10).max(MIN_MARGIN_BYTES))
    }

    pub fn low(&self) -> bool {
        self.low
    }

    /// Takes in a new measure; returns the transition it caused, if any.
    pub fn observe(&mut self, space: Space) -> Option<Transition> {
        let floor = self.bytes(space.total);
        if !self.low && floor > 0 && space.free < floor {
            self.low = true;
            return Some(Transition::BecameLow { floor });
        }
        if self.low && space.free >= self.resume_bytes(space.total) {
            self.low = false;
            return Some(Transition::Recovered { floor });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn space(free: u64, total: u64) -> Space {
        Space { free, total }
    }

    #[test]
    fn default_floor_is_a_gib_or_five_percent() {
        let f = Floor::new(None);
        assert_eq!(f.bytes(100 * GIB), GIB);
        assert_eq!(f.bytes(10 * GIB), 10 * GIB / 100 * 5);
        assert_eq!(f.bytes(64 * MIB), 64 * MIB / 100 * 5);
        assert_eq!(Floor::new(Some(7)).bytes(100 * GIB), 7);
    }

    #[test]
    fn low_below_the_floor_and_back_only_past_the_margin() {
        let mut f = Floor::new(Some(100 * MIB));
        assert_eq!(f.observe(space(200 * MIB, GIB)), None);
        assert!(!f.low());
        assert_eq!(
            f.observe(space(99 * MIB, GIB)),
            Some(Transition::BecameLow { floor: 100 * MIB })
        );
        assert!(f.low());
        // At the floor, and within the margin (10 MiB), it stays low.
        assert_eq!(f.observe(space(100 * MIB, GIB)), None);
        assert_eq!(f.observe(space(109 * MIB, GIB)), None);
        assert!(f.low());
        assert_eq!(
            f.observe(space(110 * MIB, GIB)),
            Some(Transition::Recovered { floor: 100 * MIB })
        );
        assert!(!f.low());
        // Just above the floor is fine while not low.
        assert_eq!(f.observe(space(100 * MIB, GIB)), None);
    }

    #[test]
    fn a_zero_floor_is_never_low_but_still_has_a_resume_margin() {
        let mut f = Floor::new(Some(0));
        assert_eq!(f.observe(space(0, GIB)), None);
        assert!(!f.low());
        assert_eq!(f.resume_bytes(GIB), MIB);
    }
}
