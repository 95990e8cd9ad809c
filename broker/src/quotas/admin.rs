//! `phxq quota list` and `phxq quota set`: client quotas over the Kafka protocol
//! (DescribeClientQuotas, AlterClientQuotas), as `kafka-configs --entity-type clients`
//! does.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use super::{CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};
use crate::kafka_client::KafkaClient;

#[derive(clap::Args, Debug)]
pub struct EntityArgs {
    /// The quota applies to this client id.
    #[arg(long, conflicts_with = "default_client")]
    pub client_id: Option<String>,
    /// ...to every client id that has no quota of its own (each gets that much).
    #[arg(long)]
    pub default_client: bool,
    /// The quota applies to this user (shared by all its clients).
    #[arg(long, conflicts_with = "default_user")]
    pub user: Option<String>,
    /// ...to every user that has no quota of its own.
    #[arg(long)]
    pub default_user: bool,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    #[command(flatten)]
    pub entity: EntityArgs,
    /// Bytes/s of record batches the entity may produce to each broker.
    #[arg(long)]
    pub producer_byte_rate: Option<f64>,
    /// Bytes/s of record batches the entity may fetch from each broker.
    #[arg(long)]
    pub consumer_byte_rate: Option<f64>,
    /// Quota keys to remove (producer_byte_rate, consumer_byte_rate).
    #[arg(long = "remove")]
    pub remove: Vec<String>,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn entity(a: &EntityArgs) -> anyhow::Result<Vec<EntityData>> {
    let mut v = Vec::new();
    if a.user.is_some() || a.default_user {
        v.push(
            EntityData::default()
                .with_entity_type(s(super::entity::USER))
                .with_entity_name(a.user.as_deref().map(s)),
        );
    }
    if a.client_id.is_some() || a.default_client {
        v.push(
            EntityData::default()
                .with_entity_type(s(super::entity::CLIENT_ID))
                .with_entity_name(a.client_id.as_deref().map(s)),
        );
    }
    anyhow::ensure!(
        !v.is_empty(),
        "name the entity: --client-id, --default-client, --user or --default-user"
    );
    Ok(v)
}

/// Every quota set in the cluster; `as_json`: `[{"entity": {TYPE: NAME or null}, "values":
/// {KEY: VALUE}}]` (null names the default entity).
pub fn list(bootstrap: &str, as_json: bool) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    let r = c.send(&DescribeClientQuotasRequest::default(), 1)?;
    anyhow::ensure!(
        r.error_code == 0,
        "DescribeClientQuotas failed with Kafka error code {}: {}",
        r.error_code,
        r.error_message.as_deref().unwrap_or("")
    );
    let mut out = String::new();
    let entries = r.entries.unwrap_or_default();
    if as_json {
        let v: Vec<_> = entries
            .iter()
            .map(|e| {
                let entity: serde_json::Map<String, serde_json::Value> = e
                    .entity
                    .iter()
                    .map(|x| (x.entity_type.to_string(), x.entity_name.as_deref().into()))
                    .collect();
                let values: serde_json::Map<String, serde_json::Value> = e
                    .values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value.into()))
                    .collect();
                serde_json::json!({ "entity": entity, "values": values })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    if entries.is_empty() {
        out.push_str("no client quotas set\n");
    }
    for e in entries {
        let who: Vec<String> = e
            .entity
            .iter()
            .map(|x| {
                format!(
                    "{}={}",
                    x.entity_type,
                    x.entity_name.as_deref().unwrap_or("<default>")
                )
            })
            .collect();
        let values: Vec<String> = e
            .values
            .iter()
            .map(|v| format!("{}={}", v.key, v.value))
            .collect();
        out.push_str(&format!("{}  {}\n", who.join(","), values.join(" ")));
    }
    Ok(out)
}

/// Sets or removes quotas of one entity.
pub fn set(bootstrap: &str, a: &SetArgs) -> anyhow::Result<String> {
    let mut ops = Vec::new();
    for (key, v) in [
        (PRODUCER_BYTE_RATE, a.producer_byte_rate),
        (CONSUMER_BYTE_RATE, a.consumer_byte_rate),
    ] {
        if let Some(v) = v {
            ops.push(OpData::default().with_key(s(key)).with_value(v));
        }
    }
    for key in &a.remove {
        ops.push(OpData::default().with_key(s(key)).with_remove(true));
    }
    anyhow::ensure!(
        !ops.is_empty(),
        "nothing to change: --producer-byte-rate, --consumer-byte-rate or --remove KEY"
    );
    let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(entity(&a.entity)?)
        .with_ops(ops)]);
    let mut c = KafkaClient::connect(bootstrap)?;
    let r = c.send(&req, 1)?;
    for e in &r.entries {
        anyhow::ensure!(
            e.error_code == 0,
            "AlterClientQuotas failed with Kafka error code {}: {}",
            e.error_code,
            e.error_message.as_deref().unwrap_or("")
        );
    }
    Ok("quotas changed; every broker applies them within seconds\n".into())
}
