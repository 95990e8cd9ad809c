//! `phxq cluster info`: the cluster as a client sees it, over the Kafka protocol
//! (DescribeCluster for the cluster id, controller and brokers; Metadata for the topics),
//! as `rpk cluster info` does, so it works against Kafka too. A table, or `--json`.

use kafka_protocol::messages::DescribeClusterRequest;
use serde_json::json;

use super::{check, metadata, table};
use crate::kafka_client::KafkaClient;

/// The cluster's id, controller, brokers and topic and partition counts.
pub fn info(bootstrap: &str, as_json: bool) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    let cluster = c.send(&DescribeClusterRequest::default(), 0)?;
    if let Err(e) = check(cluster.error_code, "DescribeCluster") {
        return Err(match cluster.error_message {
            Some(m) => anyhow::anyhow!("{e}: {m}"),
            None => e,
        });
    }
    let topics = metadata(&mut c, None)?;
    let (internal, user): (Vec<_>, Vec<_>) = topics.iter().partition(|t| t.is_internal);
    let partitions: usize = user.iter().map(|t| t.partitions.len()).sum();
    let mut brokers: Vec<_> = cluster.brokers.iter().collect();
    brokers.sort_by_key(|b| b.broker_id.0);
    let controller = cluster.controller_id.0;
    if as_json {
        let v = json!({
            "cluster_id": cluster.cluster_id.as_str(),
            "controller_id": controller,
            "brokers": brokers.iter().map(|b| json!({
                "id": b.broker_id.0,
                "host": b.host.as_str(),
                "port": b.port,
                "rack": b.rack.as_deref(),
            })).collect::<Vec<_>>(),
            "topics": user.len(),
            "partitions": partitions,
            "internal_topics": internal.len(),
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut out = table(&[
        vec!["CLUSTER".into(), cluster.cluster_id.to_string()],
        vec![
            "CONTROLLER".into(),
            if controller < 0 {
                "none".into()
            } else {
                controller.to_string()
            },
        ],
        vec![
            "TOPICS".into(),
            format!(
                "{} ({partitions} partitions; {} internal topics)",
                user.len(),
                internal.len()
            ),
        ],
    ]);
    out.push('\n');
    let mut rows = vec![["BROKER", "HOST", "PORT", "RACK"]
        .map(String::from)
        .to_vec()];
    for b in brokers {
        rows.push(vec![
            format!(
                "{}{}",
                b.broker_id.0,
                if b.broker_id.0 == controller { "*" } else { "" }
            ),
            b.host.to_string(),
            b.port.to_string(),
            b.rack.as_deref().unwrap_or("-").to_string(),
        ]);
    }
    out.push_str(&table(&rows));
    Ok(out)
}
