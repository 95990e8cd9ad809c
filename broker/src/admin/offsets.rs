//! ListOffsets as the admin commands need it: each partition's leader asked (from
//! Metadata), at the log end, the log start or a time.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, MetadataRequest, TopicName};

use super::s;
use crate::kafka_client::KafkaClient;

/// A topic and partition index.
pub type TopicPartition = (String, i32);

const NONE: i16 = 0;

/// The partitions of `parts` by leader, with the leaders' addresses (from Metadata).
#[allow(clippy::type_complexity)]
pub fn partition_leaders(
    bootstrap: &str,
    parts: &BTreeSet<TopicPartition>,
) -> anyhow::Result<(
    BTreeMap<BrokerId, String>,
    BTreeMap<BrokerId, Vec<TopicPartition>>,
)> {
    let topics: BTreeSet<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
    let mut c = KafkaClient::connect(bootstrap)?;
    let md = c.send(
        &MetadataRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                .collect(),
        )),
        4,
    )?;
    let brokers: BTreeMap<BrokerId, String> = md
        .brokers
        .iter()
        .map(|b| (b.node_id, format!("{}:{}", b.host, b.port)))
        .collect();
    let mut by_leader: BTreeMap<BrokerId, Vec<TopicPartition>> = BTreeMap::new();
    for t in &md.topics {
        let Some(name) = &t.name else { continue };
        for p in &t.partitions {
            let tp = (name.0.to_string(), p.partition_index);
            if parts.contains(&tp) {
                by_leader.entry(p.leader_id).or_default().push(tp);
            }
        }
    }
    Ok((brokers, by_leader))
}

/// ListOffsets timestamps: the log end, the log start.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// ListOffsets for `parts` at `timestamp` (LATEST, EARLIEST or a time in ms: the first
/// offset at or after it, -1 when there is none), asking each partition's leader.
pub fn list_offsets(
    bootstrap: &str,
    parts: &BTreeSet<TopicPartition>,
    timestamp: i64,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    if parts.is_empty() {
        return Ok(BTreeMap::new());
    }
    let (brokers, by_leader) = partition_leaders(bootstrap, parts)?;
    let mut out = BTreeMap::new();
    for (leader, tps) in by_leader {
        let mut conn = match brokers.get(&leader) {
            Some(addr) => {
                KafkaClient::connect(addr).or_else(|_| KafkaClient::connect(bootstrap))?
            }
            None => continue,
        };
        let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &tps {
            grouped.entry(t).or_default().push(*p);
        }
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                grouped
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_timestamp(timestamp)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let r = conn.send(&req, 1)?;
        for t in r.topics {
            for p in t.partitions {
                if p.error_code == NONE {
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(out)
}
