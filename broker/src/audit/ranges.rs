//! A set of half-open offset ranges `[from, to)`: what was delivered to one client of one
//! partition. Kept sorted, disjoint and merged (touching ranges become one), and bounded:
//! past [`MAX_RANGES`] the lowest range is forgotten and [`RangeSet::insert`] says up to
//! where, so that the caller counts those offsets as unknown rather than undelivered.

/// Ranges kept per set; a consumer that keeps seeking creates one per seek.
pub const MAX_RANGES: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(i64, i64)>,
}

impl RangeSet {
    /// Adds `[from, to)`. Returns `Some(end)` when the set was full and the offsets below
    /// `end` were forgotten.
    pub fn insert(&mut self, from: i64, to: i64) -> Option<i64> {
        if from >= to {
            return None;
        }
        let (mut from, mut to) = (from, to);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &(a, b) in &self.ranges {
            if b < from {
                kept.push((a, b));
            } else if a > to {
                if !placed {
                    kept.push((from, to));
                    placed = true;
                }
                kept.push((a, b));
            } else {
                from = from.min(a);
                to = to.max(b);
            }
        }
        if !placed {
            kept.push((from, to));
        }
        self.ranges = kept;
        if self.ranges.len() > MAX_RANGES {
            let (_, end) = self.ranges.remove(0);
            return Some(end);
        }
        None
    }

    /// The parts of `[from, to)` not in the set, in order.
    pub fn missing(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut at = from;
        for &(a, b) in &self.ranges {
            if at >= to {
                break;
            }
            if b <= at {
                continue;
            }
            if a > at {
                out.push((at, a.min(to)));
            }
            at = at.max(b);
        }
        if at < to {
            out.push((at, to));
        }
        out
    }

    /// Drops every offset below `offset`.
    pub fn forget_below(&mut self, offset: i64) {
        self.ranges.retain(|&(_, b)| b > offset);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(offset);
        }
    }

    pub fn first(&self) -> Option<i64> {
        self.ranges.first().map(|r| r.0)
    }

    /// One past the highest offset in the set.
    pub fn end(&self) -> Option<i64> {
        self.ranges.last().map(|r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_touching_and_overlapping_ranges() {
        let mut s = RangeSet::default();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(20, 25);
        assert_eq!(s.ranges, vec![(10, 25), (30, 40)]);
        s.insert(5, 35);
        assert_eq!(s.ranges, vec![(5, 40)]);
        s.insert(50, 50);
        assert_eq!(s.ranges, vec![(5, 40)]);
        s.insert(0, 1);
        assert_eq!(s.ranges, vec![(0, 1), (5, 40)]);
    }

    #[test]
    fn missing_is_the_complement_within_the_window() {
        let mut s = RangeSet::default();
        s.insert(10, 20);
        s.insert(30, 40);
        assert_eq!(s.missing(0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(s.missing(12, 18), vec![]);
        assert_eq!(s.missing(15, 35), vec![(20, 30)]);
        assert_eq!(s.missing(20, 30), vec![(20, 30)]);
        assert_eq!(RangeSet::default().missing(3, 7), vec![(3, 7)]);
    }

    #[test]
    fn forgetting_keeps_what_is_above() {
        let mut s = RangeSet::default();
        s.insert(10, 20);
        s.insert(30, 40);
        s.forget_below(15);
        assert_eq!(s.ranges, vec![(15, 20), (30, 40)]);
        s.forget_below(25);
        assert_eq!(s.ranges, vec![(30, 40)]);
    }

    #[test]
    fn a_full_set_forgets_its_lowest_range() {
        let mut s = RangeSet::default();
        for i in 0..MAX_RANGES as i64 {
            assert_eq!(s.insert(i * 10, i * 10 + 5), None);
        }
        assert_eq!(s.insert(10_000, 10_005), Some(5));
        assert_eq!(s.first(), Some(10));
        assert_eq!(s.end(), Some(10_005));
    }
}
