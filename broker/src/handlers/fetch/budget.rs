//! How much of one Fetch response each partition may fill, and in which order the
//! partitions of a connection's fetches get to fill it. Pure logic, no I/O.
//!
//! Size rules (KIP-74, as Kafka's replica manager applies them):
//! - The response carries at most the request's `max_bytes` of record batch bytes in total,
//!   and each partition at most its `partition_max_bytes`. Only whole batches are returned.
//! - Until a partition has returned data, the next partition's first batch is returned
//!   whole even when it alone is larger than both limits, so a consumer always makes
//!   progress. After the first partition with data, a batch that does not fit is left for
//!   a later fetch. Negative limits count as 0 (the exception still applies).
//! - Protocol overhead (headers, per-partition fields) is not counted, as in Kafka: clients
//!   allow for it (librdkafka wants `receive.message.max.bytes` >= `fetch.max.bytes` + 512).
//!
//! Fairness ([`Rotation`]): partitions spend the budget in request order, but starting at the
//! partition that was cut off by the budget in the previous fetch of the same connection,
//! wrapping around. A consumer of many partitions whose first partition always has data
//! still receives from every other one over successive fetches. Kafka gets the same effect
//! from fetch sessions (KIP-227, partitions that returned data move to the end); phxq keeps
//! no fetch sessions, and a consumer sends its fetches for a broker on one connection, so
//! the connection carries the rotation. The response still lists partitions in request
//! order: only the order in which they are filled rotates.

use phxq_replication::ReadLimit;

/// The byte budget of one Fetch response.
#[derive(Debug)]
pub struct ResponseBudget {
    remaining: usize,
    /// No partition has returned data yet: the next one may return its first batch whole.
    first_batch_whole: bool,
}

impl ResponseBudget {
    pub fn new(max_bytes: i32) -> Self {
        ResponseBudget {
            remaining: max_bytes.max(0) as usize,
            first_batch_whole: true,
        }
    }

    /// The limit for the next partition, given its `partition_max_bytes`.
    pub fn limit(&self, partition_max_bytes: i32) -> ReadLimit {
        ReadLimit {
            max_bytes: (partition_max_bytes.max(0) as usize).min(self.remaining),
            first_batch_whole: self.first_batch_whole,
            below: i64::MAX,
        }
    }

    /// Records that a partition returned `bytes` of batches.
    pub fn spend(&mut self, bytes: usize) {
        if bytes > 0 {
            self.remaining = self.remaining.saturating_sub(bytes);
            self.first_batch_whole = false;
        }
    }
}

/// A partition of a Fetch request: topic name and partition index.
pub type PartitionKey = (String, i32);

/// Per-connection fairness between fetches (see the module doc).
#[derive(Debug, Default)]
pub struct Rotation {
    resume_at: Option<PartitionKey>,
}

impl Rotation {
    /// The order in which to fill `partitions` (indices into it, given in request order):
    /// from the partition the previous fetch was cut off at, if this request has it, else
    /// from the first.
    pub fn order(&self, partitions: &[(&str, i32)]) -> impl Iterator<Item = usize> {
        let n = partitions.len();
        let start = self
            .resume_at
            .as_ref()
            .and_then(|(t, p)| {
                partitions
                    .iter()
                    .position(|(pt, pp)| *pt == t.as_str() && *pp == *p)
            })
            .unwrap_or(0);
        (0..n).map(move |i| (start + i) % n)
    }

    /// Remembers the first partition (in fill order) that had data but got none because
    /// the budget ran out; `None` when every partition got what it could.
    pub fn cut_off_at(&mut self, partition: Option<PartitionKey>) {
        self.resume_at = partition;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills partitions holding batches of the given sizes the way the Fetch handler does,
    /// and returns the bytes each partition got (in request order) and where it was cut off.
    fn fill(
        max_bytes: i32,
        partition_max_bytes: i32,
        batches: &[Vec<usize>],
        rotation: &Rotation,
    ) -> (Vec<usize>, Option<usize>) {
        let keys: Vec<(&str, i32)> = (0..batches.len()).map(|i| ("t", i as i32)).collect();
        let mut budget = ResponseBudget::new(max_bytes);
        let mut got = vec![0; batches.len()];
        let mut cut = None;
        for i in rotation.order(&keys) {
            let limit = budget.limit(partition_max_bytes);
            let mut bytes = 0;
            for (n, &b) in batches[i].iter().enumerate() {
                let whole_first = n == 0 && limit.first_batch_whole;
                if !whole_first && bytes + b > limit.max_bytes {
                    break;
                }
                bytes += b;
            }
            if bytes == 0 && !batches[i].is_empty() && cut.is_none() {
                cut = Some(i);
            }
            got[i] = bytes;
            budget.spend(bytes);
        }
        (got, cut)
    }

    #[test]
    fn total_and_per_partition_limits_hold_with_whole_batches() {
        let parts = vec![vec![400; 3], vec![400; 3], vec![400; 3]];
        let (got, cut) = fill(1000, 10_000, &parts, &Rotation::default());
        assert_eq!(got, vec![800, 0, 0]);
        assert_eq!(cut, Some(1));
        let (got, _) = fill(1000, 500, &parts, &Rotation::default());
        assert_eq!(got, vec![400, 400, 0]);
        let (got, _) = fill(10_000, 10_000, &parts, &Rotation::default());
        assert_eq!(got, vec![1200; 3]);
    }

    #[test]
    fn first_batch_of_first_non_empty_partition_comes_whole() {
        // Empty partitions before it do not use up the exception.
        let parts = vec![vec![], vec![5000, 10], vec![3000]];
        let (got, cut) = fill(1000, 800, &parts, &Rotation::default());
        assert_eq!(got, vec![0, 5000, 0]);
        assert_eq!(cut, Some(2));
        // A later partition's oversized batch waits, even with budget left.
        let parts = vec![vec![100], vec![3000]];
        let (got, _) = fill(1000, 1000, &parts, &Rotation::default());
        assert_eq!(got, vec![100, 0]);
        // Zero and negative limits still let the first batch through, and nothing else.
        for max in [0, -1] {
            let (got, _) = fill(max, max, &[vec![10, 10], vec![10]], &Rotation::default());
            assert_eq!(got, vec![10, 0]);
        }
    }

    #[test]
    fn rotation_resumes_where_the_budget_ran_out() {
        let keys: Vec<(&str, i32)> = vec![("a", 0), ("a", 1), ("b", 0)];
        let mut r = Rotation::default();
        assert_eq!(r.order(&keys).collect::<Vec<_>>(), vec![0, 1, 2]);
        r.cut_off_at(Some(("b".into(), 0)));
        assert_eq!(r.order(&keys).collect::<Vec<_>>(), vec![2, 0, 1]);
        // A partition no longer asked for: start from the first.
        r.cut_off_at(Some(("c".into(), 0)));
        assert_eq!(r.order(&keys).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(r.order(&[]).count(), 0);
    }

    /// 20 partitions that always have data and a budget for two of them per fetch: every
    /// partition is served within ten fetches, and keeps being served.
    #[test]
    fn no_partition_starves_when_the_first_always_has_data() {
        let parts: Vec<Vec<usize>> = (0..20).map(|_| vec![100; 50]).collect();
        let mut r = Rotation::default();
        let mut served = vec![0usize; 20];
        for fetch in 0..30 {
            let (got, cut) = fill(200, 100, &parts, &r);
            assert_eq!(got.iter().sum::<usize>(), 200, "fetch {fetch}");
            for (i, g) in got.iter().enumerate() {
                served[i] += (*g > 0) as usize;
            }
            if fetch == 9 {
                assert!(
                    served.iter().all(|&s| s == 1),
                    "after 10 fetches: {served:?}"
                );
            }
            r.cut_off_at(cut.map(|i| ("t".to_string(), i as i32)));
        }
        assert!(
            served.iter().all(|&s| s == 3),
            "after 30 fetches: {served:?}"
        );
    }
}
