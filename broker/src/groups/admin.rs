//! `phxq group list` and `phxq group describe GROUP`: the admin view of consumer groups,
//! obtained over the Kafka protocol like any client would (FindCoordinator, ListGroups,
//! DescribeGroups or, for KIP-848 groups, ConsumerGroupDescribe, OffsetFetch, Metadata,
//! ListOffsets): members, their assignments, and per partition the committed offset, the
//! log end offset and the lag; per member its measured consume rate, backlog and idle time
//! (for KIP-848 groups also the scheduler's last decision).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    MetadataRequest, OffsetFetchRequest,
};

use super::consumer_protocol::{self, TopicPartition};
use super::errors::{GROUP_ID_NOT_FOUND, NONE};
use crate::handlers::consumer_group_describe::SCHEDULER_TAG;
use crate::kafka_client::KafkaClient;

pub(super) use crate::admin::offsets::{list_offsets, partition_leaders, EARLIEST, LATEST};
pub(super) use crate::admin::{address, check, coordinator, s, table, table_json};

/// Deletes each group through its coordinator (DeleteGroups), as
/// kafka-consumer-groups --delete does; a group with members is refused by the broker
/// (NON_EMPTY_GROUP).
pub fn delete(bootstrap: &str, groups: &[String]) -> anyhow::Result<String> {
    use kafka_protocol::messages::DeleteGroupsRequest;
    let mut out = String::new();
    let mut failed = Vec::new();
    for g in groups {
        let result = coordinator(bootstrap, g).and_then(|mut c| {
            let r = c.send(
                &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(g))]),
                2,
            )?;
            for res in r.results {
                check(res.error_code, &format!("deleting group {g}"))?;
            }
            Ok(())
        });
        match result {
            Ok(()) => out.push_str(&format!("deleted group {g}\n")),
            Err(e) => failed.push(e.to_string()),
        }
    }
    anyhow::ensure!(failed.is_empty(), "{out}{}", failed.join("\n"));
    Ok(out)
}

/// Lists the groups of every broker (each lists the groups it coordinates), as
/// kafka-consumer-groups --list does; `as_json`: `{"groups": [...], "not_listed": [...]}`.
pub fn list(bootstrap: &str, as_json: bool) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    let meta = c.send(&MetadataRequest::default().with_topics(Some(vec![])), 1)?;
    let mut groups = Vec::new();
    let mut unreachable = Vec::new();
    for b in &meta.brokers {
        let addr = address(&b.host, b.port);
        let listed = if addr == c.addr() {
            c.send(&ListGroupsRequest::default(), 5)
        } else {
            KafkaClient::connect(&addr).and_then(|mut o| o.send(&ListGroupsRequest::default(), 5))
        };
        match listed {
            Ok(r) if r.error_code == NONE => groups.extend(r.groups),
            Ok(r) => unreachable.push(format!(
                "broker {} ({addr}): error {}",
                b.node_id.0, r.error_code
            )),
            Err(e) => unreachable.push(format!("broker {} ({addr}): {e}", b.node_id.0)),
        }
    }
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    groups.dedup_by(|a, b| a.group_id == b.group_id);
    if as_json {
        let v = serde_json::json!({
            "groups": groups.iter().map(|g| serde_json::json!({
                "group": g.group_id.0.as_str(),
                "type": g.group_type.as_str(),
                "state": g.group_state.as_str(),
                "protocol_type": g.protocol_type.as_str(),
            })).collect::<Vec<_>>(),
            "not_listed": unreachable,
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut rows = vec![vec![
        "GROUP".to_string(),
        "TYPE".into(),
        "STATE".into(),
        "PROTOCOL TYPE".into(),
    ]];
    for g in groups {
        rows.push(vec![
            g.group_id.0.to_string(),
            g.group_type.to_string(),
            g.group_state.to_string(),
            g.protocol_type.to_string(),
        ]);
    }
    let mut out = table(&rows);
    for u in unreachable {
        out.push_str(&format!("(not listed: {u})\n"));
    }
    Ok(out)
}

/// `as_json`: `{"group", "type", "state", ..., "members": [...], "partitions": [...]}`,
/// the tables below as objects (see `admin::table_json`).
pub fn describe(bootstrap: &str, group: &str, as_json: bool) -> anyhow::Result<String> {
    let mut c = coordinator(bootstrap, group)?;
    let d = c.send(
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
        5,
    )?;
    let g = d
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty DescribeGroups response"))?;
    if g.error_code == GROUP_ID_NOT_FOUND && g.group_state.as_str() != "Dead" {
        // Not a classic group: a share group or a KIP-848 consumer group.
        if super::share_admin::standings(&mut c, group)?.is_some() {
            return super::share_admin::describe(bootstrap, &mut c, group, as_json);
        }
        return describe_consumer_group(bootstrap, &mut c, group, as_json);
    }
    check(g.error_code, "DescribeGroups")?;
    let committed = committed_offsets(&mut c, group)?;
    anyhow::ensure!(
        g.group_state.as_str() != "Dead" || !committed.is_empty(),
        "group {group:?} not found"
    );

    let mut out = format!(
        "group {group}: state {}, protocol {}{}, {} member(s)\n\n",
        g.group_state,
        if g.protocol_type.is_empty() {
            "-"
        } else {
            g.protocol_type.as_str()
        },
        if g.protocol_data.is_empty() {
            String::new()
        } else {
            format!("/{}", g.protocol_data)
        },
        g.members.len()
    );
    let figures = phxq_figures(&g.unknown_tagged_fields);
    // Members and who owns what.
    let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
    let mut rows = vec![[
        "MEMBER",
        "INSTANCE",
        "CLIENT",
        "HOST",
        "ASSIGNMENT",
        "RATE/S",
        "BACKLOG",
        "IDLE",
    ]
    .map(String::from)
    .to_vec()];
    for m in &g.members {
        let assigned =
            consumer_protocol::parse_assignment(&m.member_assignment).unwrap_or_default();
        for tp in &assigned {
            owner.insert(tp.clone(), m.member_id.to_string());
        }
        let mut row = vec![
            m.member_id.to_string(),
            m.group_instance_id.as_deref().unwrap_or("-").to_string(),
            m.client_id.to_string(),
            if m.client_host.is_empty() {
                "-".to_string()
            } else {
                m.client_host.to_string()
            },
            consumer_protocol::describe(&assigned),
        ];
        row.extend(load_columns(&figures["members"][m.member_id.as_str()]));
        rows.push(row);
    }
    let partitions = offsets_table(bootstrap, &committed, &owner)?;
    if as_json {
        return json_out(serde_json::json!({
            "group": group,
            "type": "classic",
            "state": g.group_state.as_str(),
            "protocol_type": g.protocol_type.as_str(),
            "protocol": g.protocol_data.as_str(),
            "members": table_json(&rows),
            "partitions": table_json(&partitions),
        }));
    }
    if !g.members.is_empty() {
        out.push_str(&table(&rows));
        out.push('\n');
    }
    out.push_str(&table(&partitions));
    Ok(out)
}

pub(super) fn json_out(v: serde_json::Value) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}

/// The group's committed offsets.
pub(super) fn committed_offsets(
    c: &mut KafkaClient,
    group: &str,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let offsets = c.send(
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
        7,
    )?;
    check(offsets.error_code, "OffsetFetch")?;
    Ok(offsets
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                )
            })
        })
        .collect())
}

/// What phxq measured of a group, from the tagged field of a describe response (Null when
/// absent: an older broker).
fn phxq_figures(tagged: &BTreeMap<i32, bytes::Bytes>) -> serde_json::Value {
    tagged
        .get(&SCHEDULER_TAG)
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default()
}

/// RATE/S, BACKLOG and IDLE of one member's figures.
fn load_columns(f: &serde_json::Value) -> [String; 3] {
    [
        f["consume_rate"]
            .as_f64()
            .map_or("-".into(), |r| format!("{r:.0}")),
        f["backlog"].as_i64().map_or("-".into(), |b| b.to_string()),
        f["idle_ms"]
            .as_u64()
            .map_or("-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
    ]
}

/// Committed offsets, log end offsets and lag, for committed and assigned partitions:
/// the rows of a table, headers first.
fn offsets_table(
    bootstrap: &str,
    committed: &BTreeMap<TopicPartition, i64>,
    owner: &BTreeMap<TopicPartition, String>,
) -> anyhow::Result<Vec<Vec<String>>> {
    let parts: BTreeSet<TopicPartition> = committed.keys().chain(owner.keys()).cloned().collect();
    let ends = log_end_offsets(bootstrap, &parts)?;
    let mut rows = vec![vec![
        "TOPIC".to_string(),
        "PARTITION".into(),
        "COMMITTED".into(),
        "LOG-END".into(),
        "LAG".into(),
        "OWNER".into(),
    ]];
    for tp in &parts {
        let c = committed.get(tp).copied().unwrap_or(-1);
        let end = ends.get(tp).copied();
        let lag = match end {
            Some(e) if c >= 0 => (e - c).max(0).to_string(),
            _ => "-".into(),
        };
        rows.push(vec![
            tp.0.clone(),
            tp.1.to_string(),
            if c >= 0 { c.to_string() } else { "-".into() },
            end.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
            lag,
            owner.get(tp).cloned().unwrap_or_else(|| "-".into()),
        ]);
    }
    Ok(rows)
}

/// `phxq group describe` of a KIP-848 group: members with their epochs, reconciliation
/// state, assigned and revoking partitions, and what the scheduler measured (consume rate,
/// backlog, time since progress) and last decided.
fn describe_consumer_group(
    bootstrap: &str,
    c: &mut KafkaClient,
    group: &str,
    as_json: bool,
) -> anyhow::Result<String> {
    let d = c.send(
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
        1,
    )?;
    let g = d
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty ConsumerGroupDescribe response"))?;
    check(g.error_code, "ConsumerGroupDescribe")?;
    let figures = phxq_figures(&g.unknown_tagged_fields);
    let mut out = format!(
        "group {group}: consumer protocol (KIP-848), state {}, epoch {} (assignment epoch {}), assignor {}, {} member(s)\n\n",
        g.group_state,
        g.group_epoch,
        g.assignment_epoch,
        g.assignor_name,
        g.members.len()
    );
    let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
    let mut rows = vec![[
        "MEMBER", "INSTANCE", "CLIENT", "HOST", "EPOCH", "STATE", "ASSIGNED", "REVOKING", "RATE/S",
        "BACKLOG", "IDLE",
    ]
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
            owner.insert(tp.clone(), m.member_id.to_string());
        }
        let f = &figures["members"][m.member_id.as_str()];
        let revoking: Vec<String> = f["revoking"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        rows.push(vec![
            m.member_id.to_string(),
            m.instance_id.as_deref().unwrap_or("-").to_string(),
            m.client_id.to_string(),
            m.client_host.to_string(),
            m.member_epoch.to_string(),
            f["state"].as_str().unwrap_or("-").to_string(),
            consumer_protocol::describe(&assigned),
            if revoking.is_empty() {
                "-".into()
            } else {
                revoking.join(",")
            },
        ]);
        rows.last_mut().expect("pushed").extend(load_columns(f));
    }
    let committed = committed_offsets(c, group)?;
    let partitions = offsets_table(bootstrap, &committed, &owner)?;
    if as_json {
        return json_out(serde_json::json!({
            "group": group,
            "type": "consumer",
            "state": g.group_state.as_str(),
            "group_epoch": g.group_epoch,
            "assignment_epoch": g.assignment_epoch,
            "assignor": g.assignor_name.as_str(),
            "members": table_json(&rows),
            "scheduler_last_decision": figures["last_decision"].clone(),
            "partitions": table_json(&partitions),
        }));
    }
    if !g.members.is_empty() {
        out.push_str(&table(&rows));
        out.push('\n');
    }
    if let Some(d) = figures["last_decision"].as_object() {
        out.push_str(&format!(
            "scheduler: last decision {:.1}s ago: {}\n\n",
            d["ms_ago"].as_u64().unwrap_or(0) as f64 / 1000.0,
            d["reason"].as_str().unwrap_or("-")
        ));
    }
    out.push_str(&table(&partitions));
    Ok(out)
}

/// Latest offsets, asking each partition's leader.
fn log_end_offsets(
    bootstrap: &str,
    parts: &BTreeSet<TopicPartition>,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    list_offsets(bootstrap, parts, LATEST)
}
