//! The `load` assignor: PhxQueue's scheduler. It places partitions by measured work, not
//! by count.
//!
//! - The work of a partition is what is left to consume plus what will arrive over the
//!   planning horizon: `1 + backlog + inflow_rps * horizon` records (the 1 makes idle
//!   partitions count, so an idle group is balanced by count).
//! - The speed of a member is the rate at which it committed recently if it is behind
//!   (saturated: that rate is what it can do). A member that keeps up may be able to do
//!   more than it is asked, so it counts as at least as fast as the fastest member; one
//!   with no figure yet, likewise (or 1 record/s when nobody has one: then all are equal).
//! - The drain time of a member is its work divided by its speed. The assignor keeps the
//!   current target and moves partitions, one at a time, from the member with the longest
//!   drain time to where the move shortens it most, while each move helps (at most
//!   `max_moves`); the moves are kept only if together they shorten the longest drain time
//!   by at least `min_gain` (a fraction). Moving costs a revocation, so an even load moves
//!   nothing.
//! - Partitions nobody has yet (new members, new partitions, members gone) go first,
//!   heaviest first, to the member that would finish them earliest.
//! - A stalled member (see [`super::LoadFigures::stalled`]) gets nothing: its partitions
//!   go to the others before its session times out.
//! - A partition moved within the cooldown ([`super::LoadFigures::pinned`]) is not moved
//!   again (unless its member is stalled or gone).
//!
//! When the group runs it (a new member, a member gone, a subscription or partition count
//! change, or periodically when the load shifts), and how often a partition may move, is
//! the group's business (`groups/consumer`): the cooldown and interval are in [`Tuning`].

use std::collections::BTreeMap;

use super::{Assignment, AssignmentSpec, Decision};
use crate::groups::consumer_protocol::TopicPartition;

/// The scheduler's settings (`[groups]` table: `scheduler_*`).
#[derive(Clone, Debug, PartialEq)]
pub struct Tuning {
    /// Seconds of inflow counted as work.
    pub horizon_secs: f64,
    /// Moves are made only if together they shorten the longest drain time by at least
    /// this fraction.
    pub min_gain: f64,
    /// Most partitions moved in one decision.
    pub max_moves: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            horizon_secs: 10.0,
            min_gain: 0.1,
            max_moves: 8,
        }
    }
}

pub fn assign(spec: &AssignmentSpec, tuning: &Tuning) -> Decision {
    let mut out: Assignment = spec
        .members
        .keys()
        .map(|m| (m.clone(), Default::default()))
        .collect();
    if spec.members.is_empty() {
        return Decision {
            assignment: out,
            reason: "no members".into(),
            moved: 0,
        };
    }
    let all = spec.all_partitions();
    let work: BTreeMap<&TopicPartition, f64> = all
        .iter()
        .map(|tp| {
            let l = spec.load.partitions.get(tp).copied().unwrap_or_default();
            (
                tp,
                1.0 + l.backlog.max(0.0) + l.inflow_rps.max(0.0) * tuning.horizon_secs,
            )
        })
        .collect();
    let speed = speeds(spec);
    let usable = |id: &String| !spec.load.stalled.contains(id);
    let mut load: BTreeMap<String, f64> = out.keys().map(|m| (m.clone(), 0.0)).collect();
    // Keep the current target where it is still valid.
    let mut placed = std::collections::BTreeSet::new();
    for (id, m) in &spec.members {
        if !usable(id) {
            continue;
        }
        for tp in &m.current {
            if let Some(w) = work.get(tp) {
                if m.topics.contains(&tp.0) && placed.insert(tp.clone()) {
                    out.get_mut(id).expect("member").insert(tp.clone());
                    *load.get_mut(id).expect("member") += w;
                }
            }
        }
    }
    // Unplaced partitions, heaviest first, to whoever finishes them earliest.
    let mut rest: Vec<&TopicPartition> = all.iter().filter(|tp| !placed.contains(*tp)).collect();
    rest.sort_by(|a, b| work[b].total_cmp(&work[a]).then(a.cmp(b)));
    let new_placed = rest.len();
    for tp in rest {
        let subs: Vec<&String> = spec
            .subscribers(&tp.0)
            .into_iter()
            .filter(|m| usable(m))
            .collect();
        let best = subs.into_iter().min_by(|a, b| {
            let fa = (load[*a] + work[tp]) / speed[*a];
            let fb = (load[*b] + work[tp]) / speed[*b];
            fa.total_cmp(&fb).then(a.cmp(b))
        });
        if let Some(m) = best {
            out.get_mut(m).expect("member").insert(tp.clone());
            *load.get_mut(m).expect("member") += work[tp];
        }
    }
    // Rebalance: shorten the longest drain time move by move; keep the moves only if
    // together they are worth their revocations.
    let drain = |load: &BTreeMap<String, f64>, m: &String| load[m] / speed[m];
    let longest_of = |out: &Assignment, load: &BTreeMap<String, f64>| {
        out.keys()
            .filter(|m| usable(m))
            .map(|m| drain(load, m))
            .fold(0.0, f64::max)
    };
    let before = longest_of(&out, &load);
    let (kept_out, kept_load) = (out.clone(), load.clone());
    let mut moves = 0;
    while moves < tuning.max_moves {
        let Some(from) = out
            .keys()
            .filter(|m| usable(m))
            .max_by(|a, b| drain(&load, a).total_cmp(&drain(&load, b)).then(b.cmp(a)))
            .cloned()
        else {
            break;
        };
        let longest = drain(&load, &from);
        let mut best: Option<(TopicPartition, String, f64)> = None;
        for tp in out[&from]
            .iter()
            .filter(|tp| !spec.load.pinned.contains(*tp))
        {
            for to in spec.subscribers(&tp.0) {
                if *to == from || !usable(to) {
                    continue;
                }
                let after_from = (load[&from] - work[tp]) / speed[&from];
                let after_to = (load[to] + work[tp]) / speed[to];
                let worst = after_from.max(after_to);
                if best.as_ref().is_none_or(|(_, _, w)| worst < *w) {
                    best = Some((tp.clone(), to.clone(), worst));
                }
            }
        }
        let Some((tp, to, worst)) = best else {
            break;
        };
        if worst >= longest * (1.0 - 1e-9) {
            break;
        }
        let w = work[&tp];
        out.get_mut(&from).expect("member").remove(&tp);
        out.get_mut(&to).expect("member").insert(tp);
        *load.get_mut(&from).expect("member") -= w;
        *load.get_mut(&to).expect("member") += w;
        moves += 1;
    }
    if moves > 0 && longest_of(&out, &load) > before * (1.0 - tuning.min_gain) {
        (out, load, moves) = (kept_out, kept_load, 0);
    }
    let longest = longest_of(&out, &load);
    let measured = spec
        .members
        .keys()
        .any(|m| spec.load.member_rates.contains_key(m));
    let mut reason = if measured {
        format!("load: longest drain {longest:.1}s; {moves} moved to even out, {new_placed} newly placed")
    } else {
        format!("load: no consume rates measured yet, members count as equal (largest share {longest:.0} records of work); {moves} moved to even out, {new_placed} newly placed")
    };
    if !spec.load.stalled.is_empty() {
        let stalled: Vec<&str> = spec.load.stalled.iter().map(String::as_str).collect();
        reason.push_str(&format!("; stalled, given nothing: {}", stalled.join(",")));
    }
    Decision {
        assignment: out,
        reason,
        moved: 0,
    }
}

/// Records per second per member: what it is measured at if saturated; otherwise at least
/// the fastest measured rate (it may have headroom); 1 when nothing is measured.
fn speeds(spec: &AssignmentSpec) -> BTreeMap<String, f64> {
    let fastest = spec
        .members
        .keys()
        .filter_map(|m| spec.load.member_rates.get(m).copied())
        .fold(0.0, f64::max);
    let reference = if fastest > 0.0 { fastest } else { 1.0 };
    spec.members
        .keys()
        .map(|m| {
            let measured = spec.load.member_rates.get(m).copied();
            let speed = match measured {
                Some(r) if spec.load.saturated.contains(m) => r,
                Some(r) => r.max(reference),
                None => reference,
            };
            // A member measured at 0 still counts as slow, not as infinitely slow, so
            // drain times stay comparable.
            (m.clone(), speed.max(reference * 0.01).max(1e-3))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{uniform, PartitionLoad};
    use super::*;

    fn with_current(mut s: AssignmentSpec, a: &Assignment) -> AssignmentSpec {
        for (id, m) in s.members.iter_mut() {
            m.current = a.get(id).cloned().unwrap_or_default();
        }
        s
    }

    fn longest_drain(s: &AssignmentSpec, a: &Assignment, t: &Tuning) -> f64 {
        let speed = speeds(s);
        a.iter()
            .map(|(m, tps)| {
                let w: f64 = tps
                    .iter()
                    .map(|tp| {
                        let l = s.load.partitions.get(tp).copied().unwrap_or_default();
                        1.0 + l.backlog + l.inflow_rps * t.horizon_secs
                    })
                    .sum();
                w / speed[m]
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn idle_group_is_balanced_by_count_and_even_load_moves_nothing() {
        let s = spec(3, &[("t", 12)]);
        let t = Tuning::default();
        let first = assign(&s, &t).assignment;
        assert_complete(&s, &first);
        assert_eq!(counts(&first), vec![4, 4, 4]);
        let again = assign(&with_current(s, &first), &t).assignment;
        assert_eq!(again, first);
    }

    /// 12 partitions, one with 10x the inflow of the others, 3 equal members: `load` ends
    /// with a shorter longest drain time than `uniform`.
    #[test]
    fn skewed_inflow_beats_uniform() {
        let mut s = spec(3, &[("t", 12)]);
        for p in 0..12 {
            let inflow = if p == 0 { 1000.0 } else { 100.0 };
            s.load.partitions.insert(
                ("t".into(), p),
                PartitionLoad {
                    inflow_rps: inflow,
                    backlog: inflow,
                },
            );
        }
        for m in 0..3 {
            s.load.member_rates.insert(format!("m{m}"), 1000.0);
        }
        s.load.saturated.insert("m0".into());
        let t = Tuning::default();
        let u = uniform::assign(&s);
        let current = with_current(s.clone(), &u);
        let l = assign(&current, &t);
        assert_complete(&s, &l.assignment);
        let (du, dl) = (
            longest_drain(&s, &u, &t),
            longest_drain(&s, &l.assignment, &t),
        );
        assert!(dl < du * 0.9, "load {dl} vs uniform {du}");
        // The hot partition's member gets fewer partitions.
        let hot = l
            .assignment
            .iter()
            .find(|(_, tps)| tps.contains(&("t".to_string(), 0)))
            .unwrap();
        assert!(hot.1.len() < 4, "{:?}", l.assignment);
    }

    /// A slow member (a tenth of the others' rate) ends with less work.
    #[test]
    fn slow_member_gets_less() {
        let mut s = spec(3, &[("t", 12)]);
        for p in 0..12 {
            s.load.partitions.insert(
                ("t".into(), p),
                PartitionLoad {
                    inflow_rps: 50.0,
                    backlog: 500.0,
                },
            );
        }
        s.load.member_rates.insert("m0".into(), 100.0);
        s.load.member_rates.insert("m1".into(), 1000.0);
        s.load.member_rates.insert("m2".into(), 1000.0);
        s.load.saturated.insert("m0".into());
        let t = Tuning {
            max_moves: 100,
            ..Tuning::default()
        };
        let u = uniform::assign(&s);
        let l = assign(&with_current(s.clone(), &u), &t).assignment;
        assert_complete(&s, &l);
        assert!(l["m0"].len() < l["m1"].len(), "{l:?}");
        assert!(longest_drain(&s, &l, &t) < longest_drain(&s, &u, &t));
    }

    /// Members that keep up are not taken for slow because they are not busy: the hot
    /// member (behind, at its capacity) sheds partitions to them.
    #[test]
    fn keeping_up_is_not_slow() {
        let mut s = spec(3, &[("t", 12)]);
        for p in 0..12 {
            let inflow = if p == 0 { 1000.0 } else { 100.0 };
            let backlog = if p < 4 { 2000.0 } else { 0.0 };
            s.load.partitions.insert(
                ("t".into(), p),
                PartitionLoad {
                    inflow_rps: inflow,
                    backlog,
                },
            );
        }
        let u = uniform::assign(&s);
        let hot = u
            .iter()
            .find(|(_, t)| t.contains(&("t".to_string(), 0)))
            .unwrap()
            .0
            .clone();
        for m in u.keys() {
            let rate = if *m == hot { 1100.0 } else { 400.0 };
            s.load.member_rates.insert(m.clone(), rate);
        }
        s.load.saturated.insert(hot.clone());
        let l = assign(&with_current(s.clone(), &u), &Tuning::default()).assignment;
        assert!(l[&hot].len() < u[&hot].len(), "{l:?}");
        // Pinned partitions stay put even when moving them would help.
        s.load.pinned = u[&hot].clone();
        let l = assign(&with_current(s, &u), &Tuning::default()).assignment;
        assert_eq!(l[&hot], u[&hot]);
    }

    #[test]
    fn stalled_member_gets_nothing() {
        let mut s = spec(3, &[("t", 6)]);
        let u = uniform::assign(&s);
        s = with_current(s, &u);
        s.load.stalled.insert("m1".into());
        let d = assign(&s, &Tuning::default());
        assert_complete(&s, &d.assignment);
        assert!(d.assignment["m1"].is_empty());
        assert!(d.reason.contains("stalled"), "{}", d.reason);
        // The others kept what they had.
        assert!(u["m0"].is_subset(&d.assignment["m0"]));
    }
}
