//! The `range` assignor: for each topic, its subscribers sorted by member id get
//! contiguous ranges of partitions, the first `partitions % subscribers` one more.

use super::{Assignment, AssignmentSpec};

pub fn assign(spec: &AssignmentSpec) -> Assignment {
    let mut out: Assignment = spec
        .members
        .keys()
        .map(|m| (m.clone(), Default::default()))
        .collect();
    for (topic, &count) in &spec.partitions {
        let subs = spec.subscribers(topic);
        if subs.is_empty() {
            continue;
        }
        let (each, extra) = (count as usize / subs.len(), count as usize % subs.len());
        let mut next = 0i32;
        for (i, m) in subs.iter().enumerate() {
            let n = each + usize::from(i < extra);
            let set = out.get_mut(*m).expect("subscriber is a member");
            set.extend((next..next + n as i32).map(|p| (topic.clone(), p)));
            next += n as i32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn contiguous_ranges_first_members_get_the_extra() {
        let s = spec(3, &[("a", 7), ("b", 2)]);
        let a = assign(&s);
        assert_complete(&s, &a);
        let a0: Vec<_> = a["m0"].iter().cloned().collect();
        assert_eq!(
            a0,
            vec![
                ("a".into(), 0),
                ("a".into(), 1),
                ("a".into(), 2),
                ("b".into(), 0)
            ]
        );
        assert_eq!(counts(&a), vec![4, 3, 2]);
    }
}
