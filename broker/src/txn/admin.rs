//! `phxq txn list` and `phxq txn describe ID`: the transactions of a cluster, as
//! kafka-transactions.sh shows them, over the Kafka protocol (ListTransactions on every
//! broker, FindCoordinator and DescribeTransactions), so they work against Kafka too.

use kafka_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, MetadataRequest, ProducerId,
    TransactionalId,
};

use crate::admin::{address, check, coordinator_of, s, table};
use crate::kafka_client::KafkaClient;

/// Every broker's transactions; `states` filters by state names (Ongoing, PrepareCommit,
/// ...), `min_duration_ms` keeps only those running longer (KIP-994), `pattern` those
/// whose whole id matches (KIP-1152).
pub fn list(
    bootstrap: &str,
    states: &[String],
    min_duration_ms: Option<i64>,
    pattern: Option<&str>,
    as_json: bool,
) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    let meta = c.send(&MetadataRequest::default().with_topics(Some(vec![])), 1)?;
    let req = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|st| s(st)).collect())
        .with_duration_filter(min_duration_ms.unwrap_or(-1))
        .with_transactional_id_pattern(pattern.map(s));
    let version = if pattern.is_some() {
        2
    } else if min_duration_ms.is_some() {
        1
    } else {
        0
    };
    let mut rows = Vec::new();
    let mut unknown = Vec::new();
    let mut not_listed = Vec::new();
    for b in &meta.brokers {
        let addr = address(&b.host, b.port);
        let listed = if addr == c.addr() {
            c.send(&req, version)
        } else {
            KafkaClient::connect(&addr).and_then(|mut o| o.send(&req, version))
        };
        match listed {
            Ok(r) if r.error_code == crate::groups::errors::INVALID_REGULAR_EXPRESSION => {
                anyhow::bail!(
                    "listing transactions failed: INVALID_REGULAR_EXPRESSION ({}): {:?} is not a regular expression",
                    r.error_code,
                    pattern.unwrap_or_default()
                )
            }
            Ok(r) if r.error_code == 0 => {
                unknown = r
                    .unknown_state_filters
                    .iter()
                    .map(|u| u.to_string())
                    .collect();
                for t in r.transaction_states {
                    rows.push((
                        t.transactional_id.0.to_string(),
                        b.node_id.0,
                        t.producer_id.0,
                        t.transaction_state.to_string(),
                    ));
                }
            }
            Ok(r) => not_listed.push(format!(
                "broker {} ({addr}): {} ({})",
                b.node_id.0,
                phxq_protocol::errors::name(r.error_code),
                r.error_code
            )),
            Err(e) => not_listed.push(format!("broker {} ({addr}): {e}", b.node_id.0)),
        }
    }
    rows.sort();
    anyhow::ensure!(
        unknown.is_empty(),
        "unknown transaction states: {} (known: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort)",
        unknown.join(", ")
    );
    if as_json {
        let v = serde_json::json!({
            "transactions": rows.iter().map(|(id, coordinator, pid, state)| serde_json::json!({
                "transactional_id": id,
                "coordinator": coordinator,
                "producer_id": pid,
                "state": state,
            })).collect::<Vec<_>>(),
            "not_listed": not_listed,
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut t = vec![vec![
        "TRANSACTIONAL ID".to_string(),
        "COORDINATOR".into(),
        "PRODUCER ID".into(),
        "STATE".into(),
    ]];
    for (id, coordinator, pid, state) in rows {
        t.push(vec![id, coordinator.to_string(), pid.to_string(), state]);
    }
    let mut out = table(&t);
    for n in not_listed {
        out.push_str(&format!("(not listed: {n})\n"));
    }
    Ok(out)
}

/// One transactional id as its coordinator knows it.
pub fn describe(bootstrap: &str, id: &str, as_json: bool) -> anyhow::Result<String> {
    let mut c = coordinator_of(bootstrap, id, 1)?;
    let r = c.send(
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(id))]),
        0,
    )?;
    let d = r
        .transaction_states
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty DescribeTransactions response"))?;
    check(d.error_code, &format!("describing transactional id {id}"))?;
    let partitions: Vec<String> = d
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}-{p}", t.topic.0))
        })
        .collect();
    if as_json {
        let v = serde_json::json!({
            "transactional_id": id,
            "state": d.transaction_state.as_str(),
            "producer_id": d.producer_id.0,
            "producer_epoch": d.producer_epoch,
            "timeout_ms": d.transaction_timeout_ms,
            "start_time_ms": d.transaction_start_time_ms,
            "partitions": partitions,
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let ProducerId(pid) = d.producer_id;
    let start = if d.transaction_start_time_ms < 0 {
        "-".to_string()
    } else {
        d.transaction_start_time_ms.to_string()
    };
    Ok(table(&[
        vec!["TRANSACTIONAL ID".into(), id.to_string()],
        vec!["STATE".into(), d.transaction_state.to_string()],
        vec!["PRODUCER ID".into(), pid.to_string()],
        vec!["PRODUCER EPOCH".into(), d.producer_epoch.to_string()],
        vec!["TIMEOUT MS".into(), d.transaction_timeout_ms.to_string()],
        vec!["START TIME MS".into(), start],
        vec!["PARTITIONS".into(), partitions.join(", ")],
    ]))
}
