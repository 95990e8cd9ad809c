//! The topics page (`/console/topics`: every topic with its partition count, the records
//! kept in the partitions led here, and its traffic counters, which the page's script
//! turns into rates) and one topic's page (`/console/topic?name=`: per partition its
//! store group, leader, replicas, and where this broker leads it the log start and high
//! watermark).

use std::collections::BTreeMap;

use maud::{html, Markup};
use serde::Serialize;

use super::layout::{bytes, href, opt, page};
use super::query::Query;
use super::Failure;
use crate::broker::Broker;
use crate::metrics::TopicTotals;

#[derive(Clone, Debug, Serialize)]
pub struct TopicsView {
    pub node_id: i32,
    pub topics: Vec<TopicRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TopicRow {
    pub name: String,
    pub partitions: i32,
    /// Partitions this broker leads.
    pub led_here: usize,
    /// Records between log start and high watermark, summed over the partitions led here.
    pub records_here: i64,
    /// Traffic through this broker since it started.
    pub totals: TopicTotals,
}

#[derive(Clone, Debug, Serialize)]
pub struct TopicView {
    pub node_id: i32,
    pub name: String,
    pub id: String,
    pub configs: BTreeMap<String, String>,
    pub totals: TopicTotals,
    pub partitions: Vec<PartitionRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PartitionRow {
    pub partition: i32,
    pub store_group: u32,
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Known where this broker leads the partition.
    pub log_start: Option<i64>,
    pub high_watermark: Option<i64>,
}

impl PartitionRow {
    fn records(&self) -> Option<i64> {
        Some(self.high_watermark? - self.log_start?)
    }
}

fn partitions(b: &Broker, t: &crate::topics::Topic) -> Vec<PartitionRow> {
    let me = b.node_id();
    (0..t.partition_count())
        .filter_map(|i| {
            let (pid, g) = t.partition(i)?;
            let r = b.replicas(g);
            let offsets = if r.leader == Some(me) {
                b.node.group(g).and_then(|sg| sg.offsets(pid))
            } else {
                None
            };
            Some(PartitionRow {
                partition: i,
                store_group: g.0,
                leader: r.leader,
                replicas: r.replicas,
                isr: r.isr,
                log_start: offsets.map(|o| o.log_start_offset),
                high_watermark: offsets.map(|o| o.high_watermark),
            })
        })
        .collect()
}

pub fn gather_list(b: &Broker) -> TopicsView {
    let mut topics: Vec<TopicRow> = b
        .topics
        .all()
        .iter()
        .map(|t| {
            let parts = partitions(b, t);
            TopicRow {
                name: t.name.clone(),
                partitions: t.partition_count(),
                led_here: parts.iter().filter(|p| p.high_watermark.is_some()).count(),
                records_here: parts.iter().filter_map(PartitionRow::records).sum(),
                totals: b.metrics.topic_totals(&t.name),
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    TopicsView {
        node_id: b.node_id(),
        topics,
    }
}

pub fn gather_topic(b: &Broker, q: &Query) -> Result<TopicView, Failure> {
    let name = q.required("name")?;
    let t = b
        .topics
        .get(name)
        .ok_or_else(|| Failure::not_found(format!("no topic {name:?}")))?;
    Ok(TopicView {
        node_id: b.node_id(),
        name: t.name.clone(),
        id: t.uuid().to_string(),
        configs: t.configs.clone(),
        totals: b.metrics.topic_totals(&t.name),
        partitions: partitions(b, &t),
    })
}

pub fn render_list(v: &TopicsView) -> Markup {
    let body = html! {
        p.note { "Records: between log start and high watermark of the partitions this broker (node " (v.node_id) ") leads. Traffic: through this broker since it started; rates are measured by this page while it is open." }
        @if v.topics.is_empty() {
            p { "No topics." }
        } @else {
            table #topics data-api="/console/api/topics" {
                thead {
                    tr {
                        th { "Topic" } th { "Partitions" } th { "Led here" } th { "Records here" }
                        th { "In (total)" } th { "In rate" } th { "Out (total)" } th { "Out rate" }
                    }
                }
                tbody {
                    @for t in &v.topics {
                        tr data-topic=(t.name) {
                            td { a href=(href("/console/topic", &[("name", &t.name)])) { (t.name) } }
                            td.num.partitions { (t.partitions) }
                            td.num { (t.led_here) }
                            td.num { (t.records_here) }
                            td.num { (bytes(t.totals.bytes_in)) " / " (t.totals.records_in) " rec" }
                            td.num.rate-in { "…" }
                            td.num { (bytes(t.totals.bytes_out)) " / " (t.totals.records_out) " rec" }
                            td.num.rate-out { "…" }
                        }
                    }
                }
            }
        }
    };
    page("topics", "Topics", body)
}

pub fn render_topic(v: &TopicView) -> Markup {
    let body = html! {
        dl.facts {
            dt { "Topic id" } dd { code { (v.id) } }
            dt { "Partitions" } dd #partition-count { (v.partitions.len()) }
            dt { "In" } dd { (bytes(v.totals.bytes_in)) ", " (v.totals.records_in) " records" }
            dt { "Out" } dd { (bytes(v.totals.bytes_out)) ", " (v.totals.records_out) " records" }
            @for (k, val) in &v.configs {
                dt { code { (k) } } dd { code { (val) } }
            }
        }
        table #partitions {
            thead {
                tr {
                    th { "Partition" } th { "Store group" } th { "Leader" } th { "Replicas" } th { "In sync" }
                    th { "Log start" } th { "High watermark" } th { "Records" } th { "" }
                }
            }
            tbody {
                @for p in &v.partitions {
                    tr {
                        td.num { (p.partition) }
                        td.num { (p.store_group) }
                        td.num { (opt(p.leader)) @if p.leader == Some(v.node_id) { " (here)" } }
                        td { (join(&p.replicas)) }
                        td { (join(&p.isr)) }
                        td.num { (opt(p.log_start)) }
                        td.num { (opt(p.high_watermark)) }
                        td.num { (opt(p.records())) }
                        td {
                            @if p.high_watermark.is_some() {
                                a href=(href("/console/messages", &[("topic", &v.name), ("partition", &p.partition.to_string())])) { "browse" }
                            } @else {
                                span.note { "led by " (opt(p.leader)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page("topics", &format!("Topic {}", v.name), body)
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_links_and_escapes() {
        let v = TopicsView {
            node_id: 1,
            topics: vec![TopicRow {
                name: "a<b>&c".into(),
                partitions: 3,
                led_here: 3,
                records_here: 42,
                totals: TopicTotals {
                    bytes_in: 2048,
                    records_in: 42,
                    ..Default::default()
                },
            }],
        };
        let html = render_list(&v).into_string();
        assert!(
            html.contains("href=\"/console/topic?name=a%3Cb%3E%26c\""),
            "{html}"
        );
        assert!(html.contains(">a&lt;b&gt;&amp;c<"), "{html}");
        assert!(html.contains("2.0 KiB / 42 rec"));
    }

    #[test]
    fn partitions_led_elsewhere_show_their_leader() {
        let v = TopicView {
            node_id: 1,
            name: "t".into(),
            id: "0".into(),
            configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
            totals: TopicTotals::default(),
            partitions: vec![
                PartitionRow {
                    partition: 0,
                    store_group: 1,
                    leader: Some(1),
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                    log_start: Some(5),
                    high_watermark: Some(12),
                },
                PartitionRow {
                    partition: 1,
                    store_group: 2,
                    leader: Some(2),
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                    log_start: None,
                    high_watermark: None,
                },
            ],
        };
        let html = render_topic(&v).into_string();
        assert!(html.contains("<dd id=\"partition-count\">2</dd>"), "{html}");
        assert!(html.contains("led by 2"));
        assert!(
            html.contains("/console/messages?topic=t&amp;partition=0"),
            "{html}"
        );
        assert!(html.contains(">7<"), "records of partition 0: {html}");
    }
}
