//! Manual replica assignments (the `assignments` of CreateTopics and CreatePartitions, as
//! `kafka-topics --replica-assignment 1:2:3,2:3:1` sends them) mapped onto store groups.
//!
//! A partition lives in a store group and has that group's voters as replicas; it cannot
//! have a replica set of its own. So each partition's wanted brokers choose a store group:
//! - one whose voters include every wanted broker (a group with more voters serves the
//!   partition with more replicas than asked: never less durable, as for the replication
//!   factor);
//! - among those, one led by the first wanted broker (Kafka's preferred leader) if there is
//!   one, then the least loaded (fewest partitions);
//! - none: INVALID_REPLICA_ASSIGNMENT, naming the store groups and their brokers.
//!
//! Kafka's checks come first, with its codes: partitions numbered from the first new one
//! without gaps, the same number of replicas for each, no broker twice, only known brokers.

use std::collections::BTreeSet;

use phxq_replication::GroupId;

/// A store group partitions may go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub group: GroupId,
    pub voters: BTreeSet<i32>,
    pub leader: Option<i32>,
    /// Partitions it holds.
    pub load: usize,
}

/// The store group of each assigned partition, in partition order. `assignments` are
/// (partition index, wanted brokers); the partitions must be `first..first + n`.
pub fn map(
    assignments: &[(i32, Vec<i32>)],
    first: i32,
    brokers: &BTreeSet<i32>,
    candidates: &mut [Candidate],
) -> Result<Vec<GroupId>, String> {
    let mut sorted: Vec<&(i32, Vec<i32>)> = assignments.iter().collect();
    sorted.sort_by_key(|(p, _)| *p);
    for (i, (p, _)) in sorted.iter().enumerate() {
        if *p != first + i as i32 {
            return Err(format!(
                "partitions of a replica assignment must be numbered from {first} without gaps or repeats; got partition {p}"
            ));
        }
    }
    let width = sorted.first().map_or(0, |(_, r)| r.len());
    let mut out = Vec::with_capacity(sorted.len());
    for (p, wanted) in sorted {
        if wanted.is_empty() || wanted.len() != width {
            return Err(format!(
                "all partitions must have the same number of replicas (partition {p} has {}, partition {first} has {width})",
                wanted.len()
            ));
        }
        let set: BTreeSet<i32> = wanted.iter().copied().collect();
        if set.len() != wanted.len() {
            return Err(format!("partition {p} lists a broker twice: {wanted:?}"));
        }
        if let Some(b) = set.iter().find(|b| !brokers.contains(b)) {
            return Err(format!("partition {p}: broker {b} is not in the cluster"));
        }
        let best = candidates
            .iter_mut()
            .filter(|c| c.voters.is_superset(&set))
            .min_by_key(|c| (c.leader != Some(wanted[0]), c.load, c.group));
        let Some(c) = best else {
            let groups: Vec<String> = candidates
                .iter()
                .map(|c| format!("{} on brokers {:?}", c.group.0, c.voters))
                .collect();
            return Err(format!(
                "partition {p}: no store group has replicas on all of brokers {wanted:?} (store groups: {})",
                groups.join(", ")
            ));
        };
        c.load += 1;
        out.push(c.group);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands() -> Vec<Candidate> {
        // Three brokers, replication factor 2: {1,2} led by 1, {2,3} led by 2, {3,1} led by 3.
        [(1, [1, 2], 1), (2, [2, 3], 2), (3, [3, 1], 3)]
            .into_iter()
            .map(|(g, v, l)| Candidate {
                group: GroupId(g),
                voters: v.into_iter().collect(),
                leader: Some(l),
                load: 0,
            })
            .collect()
    }

    fn brokers() -> BTreeSet<i32> {
        [1, 2, 3].into_iter().collect()
    }

    #[test]
    fn partitions_go_where_their_brokers_are_led_by_the_preferred_one() {
        let mut c = cands();
        let got = map(
            &[(1, vec![3, 2]), (0, vec![1, 2]), (2, vec![1, 3])],
            0,
            &brokers(),
            &mut c,
        )
        .unwrap();
        // [1,2] -> group 1; [3,2] -> {2,3} (led by 2: the only one holding both);
        // [1,3] -> {3,1} (led by 3, the only group with both).
        assert_eq!(got, vec![GroupId(1), GroupId(2), GroupId(3)]);
        // Fewer replicas than a group has are served by it; the preferred leader wins.
        let got = map(&[(0, vec![3]), (1, vec![2])], 0, &brokers(), &mut c).unwrap();
        assert_eq!(got, vec![GroupId(3), GroupId(2)]);
    }

    #[test]
    fn kafkas_checks_refuse_bad_assignments() {
        let b = brokers();
        for (bad, why) in [
            (vec![(0, vec![1, 2]), (2, vec![2, 3])], "numbered"),
            (vec![(0, vec![1, 2]), (1, vec![2])], "same number"),
            (vec![(0, vec![1, 1])], "twice"),
            (vec![(0, vec![1, 9])], "not in the cluster"),
            (vec![(0, vec![1, 2, 3])], "no store group"),
        ] {
            let e = map(&bad, 0, &b, &mut cands()).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // CreatePartitions numbers from the first new partition.
        assert!(map(&[(4, vec![1, 2])], 4, &b, &mut cands()).is_ok());
        assert!(map(&[(0, vec![1, 2])], 4, &b, &mut cands()).is_err());
    }
}
