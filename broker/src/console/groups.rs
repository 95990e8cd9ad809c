//! The consumer groups page (`/console/groups`: the groups this broker coordinates with
//! their type, state, members and total lag) and one group's page (`/console/group?id=`:
//! members with what they hold, and per committed partition the committed offset, log
//! end, lag and holder).
//!
//! Lag over time is plotted by the page's script, which polls `/console/api/group` every
//! few seconds while the page is open and keeps the samples in the browser (bounded): the
//! broker keeps no history and does no work for the console while nobody looks; the plot
//! starts when the page is opened. Lag is this broker's log end minus the committed
//! offset, as in `phxq_consumer_group_lag`.

use std::collections::BTreeMap;
use std::sync::Arc;

use maud::{html, Markup};
use serde::Serialize;

use super::layout::{href, opt, page};
use super::query::Query;
use super::Failure;
use crate::broker::Broker;
use crate::groups::consumer_coordinator::Catalog;
use crate::groups::consumer_protocol::TopicPartition;
use phxq_protocol::errors;

#[derive(Clone, Debug, Serialize)]
pub struct GroupsView {
    pub node_id: i32,
    pub groups: Vec<GroupRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupRow {
    pub id: String,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: String,
    pub protocol_type: String,
    pub state: String,
    pub members: usize,
    /// Summed over the committed partitions whose log end is known here.
    pub lag: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupView {
    pub id: String,
    pub group_type: String,
    pub protocol_type: String,
    pub state: String,
    /// The classic group's protocol (assignor) or the consumer group's assignor.
    pub assignor: String,
    pub members: Vec<MemberRow>,
    pub partitions: Vec<LagRow>,
    pub total_lag: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberRow {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// "topic:partition" of what it holds.
    pub assigned: Vec<String>,
    pub consume_rate: Option<f64>,
    pub backlog: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LagRow {
    pub topic: String,
    pub partition: i32,
    /// -1: none committed.
    pub committed: i64,
    /// Not known when the partition's store group is not hosted here.
    pub log_end: Option<i64>,
    pub lag: Option<i64>,
    /// The member holding it.
    pub member: Option<String>,
}

/// Members and assignor of a group (classic or consumer), as its coordinator describes it.
fn members(b: &Broker, id: &str, group_type: &str) -> (String, Vec<MemberRow>) {
    let tps = |s: &std::collections::BTreeSet<TopicPartition>| {
        s.iter().map(|(t, p)| format!("{t}:{p}")).collect()
    };
    if group_type == "consumer" {
        match b.groups.consumer_describe(id) {
            Ok(Some(v)) => (
                v.assignor,
                v.members
                    .into_iter()
                    .map(|m| MemberRow {
                        assigned: tps(&m.assigned),
                        member_id: m.member_id,
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        consume_rate: m.consume_rate,
                        backlog: Some(m.backlog),
                    })
                    .collect(),
            ),
            _ => (String::new(), vec![]),
        }
    } else {
        match b.groups.describe(id) {
            Ok(Some(d)) => (
                d.protocol_name,
                d.members
                    .into_iter()
                    .map(|m| MemberRow {
                        assigned: tps(&m.held),
                        member_id: m.member_id,
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        consume_rate: m.consume_rate,
                        backlog: m.backlog,
                    })
                    .collect(),
            ),
            _ => (String::new(), vec![]),
        }
    }
}

pub fn gather_list(b: &Broker) -> GroupsView {
    let mut lag: BTreeMap<String, i64> = BTreeMap::new();
    for p in b.groups.lag() {
        *lag.entry(p.group).or_default() += p.lag;
    }
    GroupsView {
        node_id: b.node_id(),
        groups: b
            .groups
            .list()
            .into_iter()
            .map(|g| GroupRow {
                members: members(b, &g.id, g.group_type).1.len(),
                lag: lag.get(&g.id).copied().unwrap_or(0),
                id: g.id,
                group_type: g.group_type.into(),
                protocol_type: g.protocol_type,
                state: g.state.into(),
            })
            .collect(),
    }
}

pub async fn gather_group(b: &Arc<Broker>, q: &Query) -> Result<GroupView, Failure> {
    let id = q.required("id")?;
    let Some(listed) = b.groups.list().into_iter().find(|g| g.id == id) else {
        return Err(match b.coordinator_node(id) {
            Ok(n) if n as i32 != b.node_id() => Failure::not_found(format!(
                "group {id:?} is coordinated by node {n}: its console shows it"
            )),
            _ => Failure::not_found(format!("no group {id:?} on this broker")),
        });
    };
    let committed = b.groups.committed(id, None).await.map_err(|code| {
        Failure::unavailable(format!(
            "cannot read the offsets of group {id:?}: {}",
            errors::name(code)
        ))
    })?;
    let (assignor, members) = members(b, id, listed.group_type);
    let mut holder: BTreeMap<&str, &str> = BTreeMap::new();
    for m in &members {
        for tp in &m.assigned {
            holder.insert(tp, &m.member_id);
        }
    }
    let partitions: Vec<LagRow> = committed
        .iter()
        .map(|((topic, partition), c)| {
            let committed = c.as_ref().map_or(-1, |c| c.offset);
            let log_end = b.log_end(topic, *partition);
            LagRow {
                lag: log_end
                    .filter(|_| committed >= 0)
                    .map(|end| (end - committed).max(0)),
                member: holder
                    .get(format!("{topic}:{partition}").as_str())
                    .map(|m| m.to_string()),
                topic: topic.clone(),
                partition: *partition,
                committed,
                log_end,
            }
        })
        .collect();
    Ok(GroupView {
        id: listed.id,
        group_type: listed.group_type.into(),
        protocol_type: listed.protocol_type,
        state: listed.state.into(),
        assignor,
        total_lag: partitions.iter().filter_map(|p| p.lag).sum(),
        members,
        partitions,
    })
}

pub fn render_list(v: &GroupsView) -> Markup {
    let body = html! {
        p.note { "The groups this broker (node " (v.node_id) ") coordinates; lag is log end minus committed offset, summed over partitions." }
        @if v.groups.is_empty() {
            p { "No groups." }
        } @else {
            table #groups {
                thead { tr { th { "Group" } th { "Type" } th { "Protocol" } th { "State" } th { "Members" } th { "Lag" } } }
                tbody {
                    @for g in &v.groups {
                        tr data-group=(g.id) {
                            td { a href=(href("/console/group", &[("id", &g.id)])) { (g.id) } }
                            td { (g.group_type) }
                            td { (g.protocol_type) }
                            td { (g.state) }
                            td.num { (g.members) }
                            td.num.lag { (g.lag) }
                        }
                    }
                }
            }
        }
    };
    page("groups", "Consumer groups", body)
}

pub fn render_group(v: &GroupView) -> Markup {
    let api = href("/console/api/group", &[("id", &v.id)]);
    let body = html! {
        dl.facts {
            dt { "Type" } dd { (v.group_type) }
            dt { "Protocol" } dd { (v.protocol_type) }
            dt { "State" } dd { (v.state) }
            dt { "Assignor" } dd { (if v.assignor.is_empty() { "-" } else { &v.assignor }) }
            dt { "Total lag" } dd #total-lag { (v.total_lag) }
        }
        section {
            h2 { "Lag over time" }
            p.note { "Sampled by this page every 3 s while it is open." }
            div #lag-plot data-api=(api) {}
        }
        section {
            h2 { "Members" }
            @if v.members.is_empty() {
                p { "No members." }
            } @else {
                table #members {
                    thead { tr { th { "Member" } th { "Instance" } th { "Client" } th { "Host" } th { "Holds" } th { "Rate (rec/s)" } th { "Backlog" } } }
                    tbody {
                        @for m in &v.members {
                            tr {
                                td { code { (m.member_id) } }
                                td { (opt(m.instance_id.as_deref())) }
                                td { (m.client_id) }
                                td { (m.client_host) }
                                td { (m.assigned.join(", ")) }
                                td.num { (m.consume_rate.map_or_else(|| "-".to_string(), |r| format!("{r:.1}"))) }
                                td.num { (opt(m.backlog)) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Partitions" }
            @if v.partitions.is_empty() {
                p { "No committed offsets." }
            } @else {
                table #lag {
                    thead { tr { th { "Topic" } th { "Partition" } th { "Committed" } th { "Log end" } th { "Lag" } th { "Member" } } }
                    tbody {
                        @for p in &v.partitions {
                            tr {
                                td { a href=(href("/console/topic", &[("name", &p.topic)])) { (p.topic) } }
                                td.num { (p.partition) }
                                td.num { (p.committed) }
                                td.num { (opt(p.log_end)) }
                                td.num.lag data-tp=(format!("{}:{}", p.topic, p.partition)) { (opt(p.lag)) }
                                td { code { (opt(p.member.as_deref())) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page("groups", &format!("Group {}", v.id), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> GroupView {
        GroupView {
            id: "g\"><script>alert(1)</script>".into(),
            group_type: "classic".into(),
            protocol_type: "consumer".into(),
            state: "Stable".into(),
            assignor: "range".into(),
            members: vec![MemberRow {
                member_id: "m-1".into(),
                instance_id: None,
                client_id: "<i>client</i>".into(),
                client_host: "/127.0.0.1".into(),
                assigned: vec!["t:0".into()],
                consume_rate: Some(12.345),
                backlog: Some(3),
            }],
            partitions: vec![LagRow {
                topic: "t".into(),
                partition: 0,
                committed: 120,
                log_end: Some(500),
                lag: Some(380),
                member: Some("m-1".into()),
            }],
            total_lag: 380,
        }
    }

    #[test]
    fn group_page_shows_lag_and_escapes_ids() {
        let html = render_group(&view()).into_string();
        assert!(html.contains("<dd id=\"total-lag\">380</dd>"), "{html}");
        assert!(html.contains("data-tp=\"t:0\">380<"), "{html}");
        assert!(html.contains("12.3"));
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<i>client"), "{html}");
        // The plot's endpoint is an encoded query, inside an escaped attribute.
        assert!(
            html.contains(
                "data-api=\"/console/api/group?id=g%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E\""
            ),
            "{html}"
        );
    }

    #[test]
    fn list_shows_members_and_lag() {
        let v = GroupsView {
            node_id: 1,
            groups: vec![GroupRow {
                id: "g1".into(),
                group_type: "consumer".into(),
                protocol_type: "consumer".into(),
                state: "Empty".into(),
                members: 0,
                lag: 17,
            }],
        };
        let html = render_list(&v).into_string();
        assert!(html.contains("<td class=\"num lag\">17</td>"), "{html}");
        assert!(html.contains("/console/group?id=g1"));
    }
}
