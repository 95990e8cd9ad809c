//! The share-group assignment (the idea of Kafka's `SimpleAssignor` for share groups):
//! which members fetch from which partitions. Unlike a consumer group, a partition may be
//! assigned to several members at once; the share-partition (`partition.rs`) keeps them
//! from getting the same records.
//!
//! Rules:
//! - Only partitions of topics some member subscribes to (and that exist) are assigned,
//!   and only to members subscribing to their topic.
//! - Every such partition gets at least one member, and every member that subscribes to an
//!   existing partition gets at least one partition.
//! - Each partition is shared by up to `ceil(members / partitions)` members (Kafka's
//!   "desired sharing"): with fewer members than partitions every partition has exactly one
//!   member; with more, partitions are shared as evenly as possible.
//! - Balance: slots are handed out partition by partition, round by round, each to the
//!   eligible member with the fewest partitions; when all members subscribe to the same
//!   topics, member loads and partition sharing each differ by at most one.
//! - Stickiness comes second to balance: among the least-loaded eligible members, one that
//!   had the partition in `current` is preferred, then the smallest member id.
//! - Deterministic: the result depends only on the inputs (ordered maps throughout).
//!
//! Membership itself (member epochs, heartbeats, the session timeout, the group epoch
//! bumped on every change that calls for a new assignment) is left to the wiring step,
//! which runs ShareGroupHeartbeat and calls [`assign`] when the group epoch moves.

use std::collections::{BTreeMap, BTreeSet};

/// A topic-partition.
pub type TopicPartition = (String, i32);

/// Member id -> assigned partitions.
pub type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// Assigns the partitions of `topics` (name -> partition count) to `members` (member id ->
/// subscribed topic names), preferring `current` where balance allows.
pub fn assign(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, i32>,
    current: &Assignment,
) -> Assignment {
    let mut out: Assignment = members
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    // Partitions with their eligible members.
    let mut partitions: Vec<(TopicPartition, Vec<&String>)> = Vec::new();
    for (topic, &count) in topics {
        let eligible: Vec<&String> = members
            .iter()
            .filter(|(_, subs)| subs.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if eligible.is_empty() {
            continue;
        }
        for p in 0..count.max(0) {
            partitions.push(((topic.clone(), p), eligible.clone()));
        }
    }
    if partitions.is_empty() {
        return out;
    }
    let desired_sharing = members.len().div_ceil(partitions.len()).max(1);
    let mut load: BTreeMap<&String, usize> = members.keys().map(|m| (m, 0)).collect();
    let mut sharing: Vec<usize> = vec![0; partitions.len()];
    let had = |m: &String, tp: &TopicPartition| current.get(m).is_some_and(|s| s.contains(tp));
    for _round in 0..desired_sharing {
        for (i, (tp, eligible)) in partitions.iter().enumerate() {
            let pick = eligible
                .iter()
                .filter(|m| !out.get(**m).is_some_and(|s| s.contains(tp)))
                .min_by_key(|m| (load.get(**m).copied().unwrap_or(0), !had(m, tp), **m));
            // A partition that already has a member only takes another one still below
            // its balanced number of slots, so sharing never overloads a member.
            if let Some(&m) = pick {
                if sharing[i] > 0 {
                    let slots = partitions.len() * desired_sharing;
                    let fair = slots.div_ceil(members.len());
                    if load.get(m).copied().unwrap_or(0) >= fair {
                        continue;
                    }
                }
                if let Some(s) = out.get_mut(m) {
                    s.insert(tp.clone());
                }
                *load.entry(m).or_default() += 1;
                sharing[i] += 1;
            }
        }
    }
    // A member left without a partition (subscriptions differ) shares the least-shared
    // partition it may have.
    for (m, subs) in members {
        if out.get(m).is_some_and(|s| !s.is_empty()) {
            continue;
        }
        let best = partitions
            .iter()
            .enumerate()
            .filter(|(_, ((t, _), _))| subs.contains(t))
            .min_by_key(|(i, (tp, _))| (sharing[*i], !had(m, tp), tp.clone()));
        if let Some((i, (tp, _))) = best {
            if let Some(s) = out.get_mut(m) {
                s.insert(tp.clone());
            }
            sharing[i] += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(v: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        v.iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn homogeneous(n: usize, topics: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        (0..n)
            .map(|i| {
                (
                    format!("m{i:02}"),
                    topics.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect()
    }

    fn topics(v: &[(&str, i32)]) -> BTreeMap<String, i32> {
        v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn sharing(a: &Assignment) -> BTreeMap<TopicPartition, usize> {
        let mut s = BTreeMap::new();
        for tps in a.values() {
            for tp in tps {
                *s.entry(tp.clone()).or_default() += 1;
            }
        }
        s
    }

    fn spread<I: Iterator<Item = usize>>(it: I) -> (usize, usize) {
        it.fold((usize::MAX, 0), |(lo, hi), x| (lo.min(x), hi.max(x)))
    }

    /// The rules that hold for every input.
    fn check_general(
        ms: &BTreeMap<String, BTreeSet<String>>,
        ts: &BTreeMap<String, i32>,
        a: &Assignment,
    ) {
        assert_eq!(a.keys().collect::<Vec<_>>(), ms.keys().collect::<Vec<_>>());
        let s = sharing(a);
        for (t, &n) in ts {
            let subscribed = ms.values().any(|subs| subs.contains(t));
            for p in 0..n {
                let k = s.get(&(t.clone(), p)).copied().unwrap_or(0);
                assert_eq!(k > 0, subscribed, "{t}-{p} shared by {k}");
            }
        }
        for (m, tps) in a {
            for (t, p) in tps {
                assert!(ms[m].contains(t), "{m} got {t} without subscribing");
                assert!(ts.get(t).is_some_and(|n| *p < *n), "{t}-{p} does not exist");
            }
            let can = ms[m].iter().any(|t| ts.get(t).is_some_and(|n| *n > 0));
            assert_eq!(!tps.is_empty(), can, "{m}: {tps:?}");
        }
    }

    fn check_balanced(a: &Assignment) {
        let (lo, hi) = spread(a.values().map(|s| s.len()));
        assert!(hi - lo <= 1, "member loads {lo}..{hi}: {a:?}");
        let (lo, hi) = spread(sharing(a).values().copied());
        assert!(hi - lo <= 1, "partition sharing {lo}..{hi}: {a:?}");
    }

    #[test]
    fn fewer_members_than_partitions_one_member_each() {
        let ms = homogeneous(3, &["t"]);
        let ts = topics(&[("t", 8)]);
        let a = assign(&ms, &ts, &Assignment::new());
        check_general(&ms, &ts, &a);
        check_balanced(&a);
        assert!(sharing(&a).values().all(|&k| k == 1));
    }

    #[test]
    fn more_members_than_partitions_share() {
        let ms = homogeneous(3, &["t"]);
        let ts = topics(&[("t", 1)]);
        let a = assign(&ms, &ts, &Assignment::new());
        check_general(&ms, &ts, &a);
        assert!(a.values().all(|s| s.len() == 1));
        assert_eq!(sharing(&a)[&("t".to_string(), 0)], 3);

        let ms = homogeneous(7, &["t"]);
        let ts = topics(&[("t", 3)]);
        let a = assign(&ms, &ts, &Assignment::new());
        check_general(&ms, &ts, &a);
        check_balanced(&a);
    }

    #[test]
    fn balanced_for_many_sizes() {
        for m in 1..=12 {
            for p in 1..=12 {
                let ms = homogeneous(m, &["a", "b"]);
                let ts = topics(&[("a", p), ("b", (p + 1) / 2)]);
                let a = assign(&ms, &ts, &Assignment::new());
                check_general(&ms, &ts, &a);
                check_balanced(&a);
            }
        }
    }

    #[test]
    fn deterministic_and_sticky() {
        let ms = homogeneous(4, &["t"]);
        let ts = topics(&[("t", 6)]);
        let a = assign(&ms, &ts, &Assignment::new());
        assert_eq!(a, assign(&ms, &ts, &Assignment::new()));
        // Given its own result, it keeps it.
        assert_eq!(assign(&ms, &ts, &a), a);
        // A member joining moves few partitions: everyone keeps at least one of theirs.
        let mut ms5 = ms.clone();
        ms5.insert("m99".into(), ["t".to_string()].into());
        let b = assign(&ms5, &ts, &a);
        check_general(&ms5, &ts, &b);
        check_balanced(&b);
        for (m, old) in &a {
            assert!(
                !old.is_disjoint(&b[m]),
                "{m} lost all of {old:?}: {:?}",
                b[m]
            );
        }
    }

    #[test]
    fn heterogeneous_subscriptions() {
        let ms = members(&[
            ("a", &["t1"]),
            ("b", &["t1", "t2"]),
            ("c", &["t2"]),
            ("d", &["t3"]),
            ("e", &["missing"]),
        ]);
        let ts = topics(&[("t1", 1), ("t2", 4), ("t3", 0), ("unsubscribed", 3)]);
        let a = assign(&ms, &ts, &Assignment::new());
        check_general(&ms, &ts, &a);
        assert!(a["d"].is_empty() && a["e"].is_empty());
        assert!(a["a"].contains(&("t1".to_string(), 0)));
        // Many members on a one-partition topic next to a big one.
        let ms = members(&[
            ("a", &["small"]),
            ("b", &["small"]),
            ("c", &["small"]),
            ("d", &["big"]),
        ]);
        let ts = topics(&[("small", 1), ("big", 10)]);
        let a = assign(&ms, &ts, &Assignment::new());
        check_general(&ms, &ts, &a);
        assert_eq!(a["d"].len(), 10);
    }

    #[test]
    fn nothing_to_assign() {
        let ts = topics(&[("t", 3)]);
        assert!(assign(&BTreeMap::new(), &ts, &Assignment::new()).is_empty());
        let ms = homogeneous(2, &["t"]);
        let a = assign(&ms, &BTreeMap::new(), &Assignment::new());
        assert!(a.values().all(|s| s.is_empty()));
        let a = assign(&ms, &topics(&[("t", -5)]), &Assignment::new());
        assert!(a.values().all(|s| s.is_empty()));
    }
}
