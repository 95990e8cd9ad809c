//! The `uniform` assignor: every member ends with as many partitions as any other (within
//! one, among members with the same subscription), moving as few as it can: members keep
//! their current partitions up to their share, the rest go to the least loaded subscriber.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, AssignmentSpec};
use crate::groups::consumer_protocol::TopicPartition;

pub fn assign(spec: &AssignmentSpec) -> Assignment {
    let all = spec.all_partitions();
    let mut out: Assignment = spec
        .members
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    if spec.members.is_empty() {
        return out;
    }
    let quota = all.len().div_ceil(spec.members.len());
    let valid: BTreeSet<&TopicPartition> = all.iter().collect();
    let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
    // Keep current partitions that are still valid, up to the quota.
    for (id, m) in &spec.members {
        for tp in m
            .current
            .iter()
            .filter(|tp| valid.contains(tp) && m.topics.contains(&tp.0))
        {
            if out[id].len() >= quota || owner.contains_key(tp) {
                break;
            }
            out.get_mut(id).expect("member").insert(tp.clone());
            owner.insert(tp.clone(), id.clone());
        }
    }
    // The rest to the subscriber with the fewest.
    for tp in &all {
        if owner.contains_key(tp) {
            continue;
        }
        if let Some(id) = least_loaded(&out, &spec.subscribers(&tp.0)) {
            out.get_mut(&id).expect("member").insert(tp.clone());
            owner.insert(tp.clone(), id);
        }
    }
    // Even out: move from the fullest to the emptiest subscriber while they differ by two.
    for _ in 0..all.len() {
        let mut moved = false;
        let (max_id, _) = match out.iter().max_by_key(|(_, s)| s.len()) {
            Some((id, s)) => (id.clone(), s.len()),
            None => break,
        };
        let candidates: Vec<TopicPartition> = out[&max_id].iter().rev().cloned().collect();
        for tp in candidates {
            let Some(to) = least_loaded(&out, &spec.subscribers(&tp.0)) else {
                continue;
            };
            if out[&to].len() + 1 < out[&max_id].len() {
                out.get_mut(&max_id).expect("member").remove(&tp);
                out.get_mut(&to).expect("member").insert(tp);
                moved = true;
                break;
            }
        }
        if !moved {
            break;
        }
    }
    out
}

fn least_loaded(out: &Assignment, among: &[&String]) -> Option<String> {
    among
        .iter()
        .min_by_key(|id| (out[**id].len(), (**id).clone()))
        .map(|id| (*id).clone())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn balanced_and_complete() {
        for (members, parts) in [(1, 5), (3, 6), (3, 7), (4, 2), (5, 12)] {
            let s = spec(members, &[("t", parts)]);
            let a = assign(&s);
            assert_complete(&s, &a);
            let c = counts(&a);
            assert!(
                c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
                "{c:?}"
            );
        }
    }

    #[test]
    fn sticky_when_a_member_joins_and_leaves() {
        let mut s = spec(2, &[("t", 6)]);
        let first = assign(&s);
        for (id, m) in s.members.iter_mut() {
            m.current = first[id].clone();
        }
        // Nothing changes: nothing moves.
        assert_eq!(assign(&s), first);
        // A third member takes two, one from each.
        s.members.insert(
            "m2".into(),
            crate::scheduler::MemberSpec {
                topics: ["t".to_string()].into(),
                current: BTreeSet::new(),
            },
        );
        let second = assign(&s);
        assert_complete(&s, &second);
        assert_eq!(counts(&second), vec![2, 2, 2]);
        assert!(second["m0"].is_subset(&first["m0"]) && second["m1"].is_subset(&first["m1"]));
    }

    #[test]
    fn respects_subscriptions() {
        let mut s = spec(2, &[("a", 4), ("b", 2)]);
        s.members.get_mut("m1").unwrap().topics = ["b".to_string()].into();
        let a = assign(&s);
        assert_complete(&s, &a);
        assert!(a["m1"].iter().all(|tp| tp.0 == "b"));
    }
}
