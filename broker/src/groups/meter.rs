//! How fast each member of a group really consumes, measured from its commits: a commit
//! that moves a partition forward counts the records in between for the partition's lock
//! holder. Rates are smoothed about once a second. Both group types keep one: KIP-848
//! groups feed it to the scheduler, and `phxq group describe` shows it for every group.

use std::collections::BTreeMap;

/// What a member's commits showed of its speed.
#[derive(Clone, Debug, Default)]
struct Progress {
    /// Records committed by the member since the last rate update.
    consumed: u64,
    /// Records per second, smoothed.
    rate: Option<f64>,
    /// When a commit last moved one of its partitions forward (or it was first seen).
    last_progress: u64,
}

#[derive(Clone, Debug, Default)]
pub struct ConsumeMeter {
    progress: BTreeMap<String, Progress>,
    last_update: u64,
}

impl ConsumeMeter {
    /// A commit by (or attributed to) `member` that moved a partition from `before` (None:
    /// no earlier commit) to `offset`.
    pub fn record(&mut self, member: &str, offset: i64, before: Option<i64>, now: u64) {
        let p = self.progress.entry(member.to_string()).or_default();
        match before {
            Some(before) if offset > before => {
                p.consumed += (offset - before) as u64;
                p.last_progress = now;
            }
            Some(_) => {}
            None => p.last_progress = now,
        }
    }

    /// Smooths the rates of `members` about once a second; members seen for the first time
    /// start their idle time now.
    pub fn update<'a>(&mut self, members: impl Iterator<Item = &'a String>, now: u64) {
        let dt = now.saturating_sub(self.last_update);
        if dt < 1000 {
            return;
        }
        self.last_update = now;
        for id in members {
            let p = self.progress.entry(id.clone()).or_insert_with(|| Progress {
                last_progress: now,
                ..Default::default()
            });
            let sample = p.consumed as f64 * 1000.0 / dt as f64;
            p.consumed = 0;
            p.rate = Some(match p.rate {
                Some(r) => 0.7 * r + 0.3 * sample,
                None => sample,
            });
        }
    }

    pub fn forget(&mut self, member: &str) {
        self.progress.remove(member);
    }

    /// Records per second `member` committed recently, once measured.
    pub fn rate(&self, member: &str) -> Option<f64> {
        self.progress.get(member).and_then(|p| p.rate)
    }

    /// Milliseconds since `member` last moved a partition forward.
    pub fn idle_ms(&self, member: &str, now: u64) -> Option<u64> {
        self.progress
            .get(member)
            .map(|p| now.saturating_sub(p.last_progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_committed_progress() {
        let mut m = ConsumeMeter::default();
        let ids = ["a".to_string(), "b".to_string()];
        m.update(ids.iter(), 1000);
        m.record("a", 100, None, 1100);
        m.record("a", 600, Some(100), 1500);
        // A commit that does not move forward is not progress.
        m.record("b", 50, Some(50), 1500);
        m.update(ids.iter(), 2000);
        assert_eq!(m.rate("a"), Some(0.7 * 0.0 + 0.3 * 500.0));
        assert_eq!(m.rate("b"), Some(0.0));
        assert_eq!(m.idle_ms("a", 3000), Some(1500));
        assert_eq!(m.idle_ms("b", 3000), Some(2000));
        m.forget("a");
        assert_eq!(m.rate("a"), None);
    }
}
