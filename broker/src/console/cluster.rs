//! The cluster page (`/console/`): the brokers (those of `[cluster]`, or this one alone),
//! the Raft state of every store group hosted here as this node sees it (the same
//! `GroupStatus` that `phxq cluster status` asks each broker for), and this broker's
//! health and storage.

use std::collections::BTreeMap;

use maud::{html, Markup};
use phxq_replication::GroupStatus;
use serde::Serialize;

use super::layout::{bytes, opt, page};
use crate::broker::Broker;
use crate::metrics::health;

#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    pub node_id: i32,
    pub cluster_id: String,
    /// The metadata group's leader, -1 while none.
    pub controller: i32,
    pub brokers: Vec<BrokerRow>,
    pub store_groups: Vec<StoreGroupRow>,
    /// Why this broker is not ready; empty when it is.
    pub not_ready: Vec<String>,
    pub segment_bytes: u64,
    pub disk_free: Option<u64>,
    pub disk_total: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BrokerRow {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StoreGroupRow {
    #[serde(flatten)]
    pub status: GroupStatus,
    /// Partitions placed in the group (0 for the metadata group).
    pub partitions: usize,
}

pub fn gather(b: &Broker) -> ClusterView {
    let mut placed: BTreeMap<u32, usize> = BTreeMap::new();
    for t in b.topics.all() {
        for g in &t.placement {
            *placed.entry(g.0).or_default() += 1;
        }
    }
    let mut groups = b.node.status();
    groups.sort_by_key(|g| g.group);
    let space = b.disk.space();
    ClusterView {
        node_id: b.node_id(),
        cluster_id: b.cluster_id.clone(),
        controller: b.controller_id(),
        brokers: b
            .brokers()
            .into_iter()
            .map(|a| BrokerRow {
                id: a.id,
                host: a.host,
                port: a.port,
                rack: a.rack,
            })
            .collect(),
        store_groups: groups
            .into_iter()
            .map(|status| StoreGroupRow {
                partitions: placed.get(&status.group.0).copied().unwrap_or(0),
                status,
            })
            .collect(),
        not_ready: health::ready(b).err().unwrap_or_default(),
        segment_bytes: b.node.segment_bytes(),
        disk_free: space.map(|s| s.free),
        disk_total: space.map(|s| s.total),
    }
}

pub fn render(v: &ClusterView) -> Markup {
    let body = html! {
        section {
            h2 { "This broker" }
            dl.facts {
                dt { "Node id" } dd { (v.node_id) }
                dt { "Cluster id" } dd { code { (v.cluster_id) } }
                dt { "Controller" } dd { (if v.controller < 0 { "none".to_string() } else { v.controller.to_string() }) }
                dt { "Health" }
                dd {
                    @if v.not_ready.is_empty() {
                        span.ok { "ready" }
                    } @else {
                        span.bad { "not ready" }
                        ul { @for why in &v.not_ready { li { (why) } } }
                    }
                }
                dt { "Segment files" } dd { (bytes(v.segment_bytes)) }
                dt { "Disk" }
                dd {
                    @match (v.disk_free, v.disk_total) {
                        (Some(free), Some(total)) => { (bytes(free)) " free of " (bytes(total)) },
                        _ => "not measured yet",
                    }
                }
            }
        }
        section {
            h2 { "Brokers" }
            table {
                thead { tr { th { "Id" } th { "Address" } th { "Rack" } th { "" } } }
                tbody {
                    @for br in &v.brokers {
                        tr {
                            td.num { (br.id) }
                            td { (br.host) ":" (br.port) }
                            td { (opt(br.rack.as_deref())) }
                            td { @if br.id == v.node_id { "this broker" } @if br.id == v.controller { " controller" } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Store groups" }
            p.note { "Raft state as this node sees it; " code { "phxq cluster status" } " asks every broker." }
            table #store-groups {
                thead {
                    tr {
                        th { "Group" } th { "Partitions" } th { "This node" } th { "Leader" } th { "Term" }
                        th { "Voters" } th { "Last log" } th { "Committed" } th { "Applied" } th { "Followers (lag, last ack)" }
                    }
                }
                tbody {
                    @for g in &v.store_groups {
                        @let s = &g.status;
                        tr {
                            td.num { (s.group.0) @if s.group.0 == 0 { " (metadata)" } }
                            td.num { (g.partitions) }
                            td { (s.state) }
                            td { @match s.leader { Some(l) => (l), None => span.bad { "none" } } }
                            td.num { (s.term) }
                            td { (s.voters.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")) }
                            td.num { (opt(s.last_log)) }
                            td.num { (opt(s.committed)) }
                            td.num { (opt(s.applied)) }
                            td {
                                @for r in &s.replication {
                                    @let lag = s.last_log.unwrap_or(0).saturating_sub(r.matched.unwrap_or(0));
                                    span.follower {
                                        "node " (r.node) ": " (lag) " behind, "
                                        (r.last_ack_ms.map_or_else(|| "never acked".to_string(), |ms| format!("{ms} ms ago")))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("cluster", "Cluster", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phxq_replication::{GroupId, ReplicaProgress};

    fn view() -> ClusterView {
        ClusterView {
            node_id: 1,
            cluster_id: "<b>id</b>".into(),
            controller: 1,
            brokers: vec![
                BrokerRow {
                    id: 1,
                    host: "127.0.0.1".into(),
                    port: 9092,
                    rack: Some("<script>alert(1)</script>".into()),
                },
                BrokerRow {
                    id: 2,
                    host: "10.0.0.2".into(),
                    port: 9092,
                    rack: None,
                },
            ],
            store_groups: vec![StoreGroupRow {
                status: GroupStatus {
                    group: GroupId(1),
                    node: 1,
                    state: "Leader".into(),
                    term: 3,
                    leader: Some(1),
                    voters: vec![1, 2],
                    last_log: Some(120),
                    committed: Some(120),
                    applied: Some(119),
                    replication: vec![ReplicaProgress {
                        node: 2,
                        matched: Some(100),
                        last_ack_ms: Some(15),
                    }],
                },
                partitions: 4,
            }],
            not_ready: vec![],
            segment_bytes: 2048,
            disk_free: Some(1 << 30),
            disk_total: Some(1 << 31),
        }
    }

    #[test]
    fn shows_brokers_groups_and_health_escaped() {
        let html = render(&view()).into_string();
        assert!(html.contains("10.0.0.2:9092"));
        assert!(html.contains("node 2: 20 behind, 15 ms ago"), "{html}");
        assert!(html.contains("ready"));
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<b>id"));
        assert!(html.contains("&lt;b&gt;id&lt;/b&gt;"));
        let json = serde_json::to_value(view()).unwrap();
        assert_eq!(json["store_groups"][0]["term"], 3);
        assert_eq!(json["store_groups"][0]["partitions"], 4);
    }
}
