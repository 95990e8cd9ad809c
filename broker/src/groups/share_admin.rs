//! The admin view of share groups over the Kafka protocol (`phxq group describe` and
//! `phxq group reset` of a share group): ShareGroupDescribe for the members and their
//! assignments, DescribeShareGroupOffsets for each share-partition's start offset (and
//! phxq's counts of its in-flight records, in a tagged field), ListOffsets for the log
//! ends, AlterShareGroupOffsets for a reset.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, GroupId,
    ShareGroupDescribeRequest, TopicName,
};

use super::admin::{check, list_offsets, s, table, LATEST};
use super::consumer_protocol::{self, TopicPartition};
use super::errors::{GROUP_ID_NOT_FOUND, NONE};
use crate::handlers::share_group_offsets::STANDING_TAG;
use crate::kafka_client::KafkaClient;
use crate::share::admin::Standing;

/// The share-partitions of `group` with their standing; `None` when the group is not a
/// share group.
pub fn standings(
    c: &mut KafkaClient,
    group: &str,
) -> anyhow::Result<Option<BTreeMap<TopicPartition, Standing>>> {
    let r = c.send(
        &DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None),
        ]),
        0,
    )?;
    let Some(g) = r.groups.into_iter().next() else {
        anyhow::bail!("empty DescribeShareGroupOffsets response");
    };
    if g.error_code == GROUP_ID_NOT_FOUND {
        return Ok(None);
    }
    check(g.error_code, "DescribeShareGroupOffsets")?;
    let mut out = BTreeMap::new();
    for t in g.topics {
        for p in t.partitions {
            let tp = (t.topic_name.0.to_string(), p.partition_index);
            let standing = p
                .unknown_tagged_fields
                .get(&STANDING_TAG)
                .and_then(|b| serde_json::from_slice::<Standing>(b).ok())
                .unwrap_or(Standing {
                    start_offset: p.start_offset,
                    ..Default::default()
                });
            if p.error_code != NONE {
                anyhow::bail!(
                    "{} partition {}: {}",
                    tp.0,
                    tp.1,
                    phxq_protocol::errors::name(p.error_code)
                );
            }
            out.insert(tp, standing);
        }
    }
    Ok(Some(out))
}

fn count(v: Option<u64>) -> String {
    v.map_or("-".into(), |n| n.to_string())
}

/// `phxq group describe` of a share group.
pub fn describe(
    bootstrap: &str,
    c: &mut KafkaClient,
    group: &str,
    as_json: bool,
) -> anyhow::Result<String> {
    let d = c.send(
        &ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
        1,
    )?;
    let g = d
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty ShareGroupDescribe response"))?;
    check(g.error_code, "ShareGroupDescribe")?;
    let mut out = format!(
        "group {group}: share group (KIP-932), state {}, epoch {}, {} member(s)\n\n",
        g.group_state,
        g.group_epoch,
        g.members.len()
    );
    let mut members: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    let mut rows = vec![["MEMBER", "CLIENT", "HOST", "EPOCH", "ASSIGNED"]
        .map(String::from)
        .to_vec()];
    for m in &g.members {
        let assigned: BTreeSet<TopicPartition> = m
            .assignment
            .topic_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic_name.0.to_string(), *p))
            })
            .collect();
        for tp in &assigned {
            *members.entry(tp.clone()).or_default() += 1;
        }
        rows.push(vec![
            m.member_id.to_string(),
            m.client_id.to_string(),
            m.client_host.to_string(),
            m.member_epoch.to_string(),
            consumer_protocol::describe(&assigned),
        ]);
    }
    let member_rows = rows;
    if !g.members.is_empty() && !as_json {
        out.push_str(&table(&member_rows));
        out.push('\n');
    }
    let standings = standings(c, group)?.unwrap_or_default();
    let parts: BTreeSet<TopicPartition> = standings.keys().chain(members.keys()).cloned().collect();
    let ends = list_offsets(bootstrap, &parts, LATEST)?;
    let mut rows = vec![[
        "TOPIC",
        "PARTITION",
        "START",
        "LOG-END",
        "BACKLOG",
        "IN-FLIGHT",
        "ACQUIRED",
        "REDELIVERABLE",
        "ARCHIVED",
        "MEMBERS",
    ]
    .map(String::from)
    .to_vec()];
    for tp in &parts {
        let st = standings.get(tp).copied().unwrap_or(Standing {
            start_offset: -1,
            ..Default::default()
        });
        let end = ends.get(tp).copied();
        rows.push(vec![
            tp.0.clone(),
            tp.1.to_string(),
            if st.start_offset >= 0 {
                st.start_offset.to_string()
            } else {
                "-".into()
            },
            end.map_or("-".into(), |e| e.to_string()),
            match end {
                Some(e) if st.start_offset >= 0 => (e - st.start_offset).max(0).to_string(),
                _ => "-".into(),
            },
            count(st.in_flight),
            count(st.acquired),
            count(st.redeliverable),
            count(st.archived),
            members.get(tp).copied().unwrap_or(0).to_string(),
        ]);
    }
    if as_json {
        return super::admin::json_out(serde_json::json!({
            "group": group,
            "type": "share",
            "state": g.group_state.as_str(),
            "group_epoch": g.group_epoch,
            "members": super::admin::table_json(&member_rows),
            "partitions": super::admin::table_json(&rows),
        }));
    }
    out.push_str(&table(&rows));
    Ok(out)
}

/// AlterShareGroupOffsets: each share-partition of `plan` starts over at its offset.
pub fn alter(
    c: &mut KafkaClient,
    group: &str,
    plan: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<()> {
    let req = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(
            consumer_protocol::grouped(&plan.keys().cloned().collect())
                .into_iter()
                .map(|(t, ps)| {
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(s(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    AlterShareGroupOffsetsRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_start_offset(plan[&(t.clone(), p)])
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let r = c.send(&req, 0)?;
    check(r.error_code, "AlterShareGroupOffsets")?;
    let mut failed = Vec::new();
    for t in &r.responses {
        for p in &t.partitions {
            if p.error_code != NONE {
                failed.push(format!(
                    "{} partition {}: {}",
                    t.topic_name.0,
                    p.partition_index,
                    phxq_protocol::errors::name(p.error_code)
                ));
            }
        }
    }
    anyhow::ensure!(failed.is_empty(), "reset refused: {}", failed.join("; "));
    Ok(())
}
