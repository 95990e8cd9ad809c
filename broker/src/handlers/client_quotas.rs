//! DescribeClientQuotas (48) and AlterClientQuotas (49): Kafka's client quota APIs
//! (`kafka-configs --entity-type clients/users`, the Admin clients' describeClientQuotas
//! and alterClientQuotas) over phxq's quotas (`quotas/`).
//! Describing needs DESCRIBE_CONFIGS on the cluster, altering ALTER_CONFIGS (else
//! CLUSTER_AUTHORIZATION_FAILED).

use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use phxq_protocol::errors;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::handlers::str;
use crate::quotas::entity::Entity;
use crate::quotas::{Match, QuotaError};
use crate::security::acl::{AclOperation, Authz};

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub fn describe(
    broker: &Broker,
    req: DescribeClientQuotasRequest,
    _version: i16,
    az: &Authz,
) -> DescribeClientQuotasResponse {
    if !az.cluster(AclOperation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str(
                "describing client quotas needs DESCRIBE_CONFIGS on the cluster",
            )));
    }
    let components: Result<Vec<(String, Match)>, String> = req
        .components
        .iter()
        .map(|c| {
            let m = match (c.match_type, &c._match) {
                (MATCH_EXACT, Some(name)) => Match::Exact(name.to_string()),
                (MATCH_EXACT, None) => return Err("exact match without a name".to_string()),
                (MATCH_DEFAULT, _) => Match::Default,
                (MATCH_SPECIFIED, _) => Match::Specified,
                (other, _) => return Err(format!("unknown match type {other}")),
            };
            Ok((c.entity_type.to_string(), m))
        })
        .collect();
    let components = match components {
        Ok(c) => c,
        Err(msg) => {
            return DescribeClientQuotasResponse::default()
                .with_error_code(errors::INVALID_REQUEST)
                .with_error_message(Some(str(msg)))
        }
    };
    let entries = broker
        .quotas
        .describe(&components, req.strict)
        .into_iter()
        .map(|(e, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    e.parts()
                        .into_iter()
                        .map(|(t, n)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(str(t))
                                .with_entity_name(n.map(str))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .into_iter()
                        .map(|(k, v)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(str(k))
                                .with_value(v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub async fn alter(
    broker: &Broker,
    req: AlterClientQuotasRequest,
    _version: i16,
    az: &Authz,
) -> AlterClientQuotasResponse {
    let mut out = Vec::with_capacity(req.entries.len());
    let allowed = az.cluster(AclOperation::AlterConfigs);
    for entry in req.entries {
        let echo: Vec<_> = entry
            .entity
            .iter()
            .map(|e| {
                alter_client_quotas_response::EntityData::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect();
        let result = match Entity::from_parts(
            entry
                .entity
                .iter()
                .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
        ) {
            Err(msg) => Err((errors::INVALID_REQUEST, msg)),
            Ok(_) if !allowed => Err((
                errors::CLUSTER_AUTHORIZATION_FAILED,
                "altering client quotas needs ALTER_CONFIGS on the cluster".to_string(),
            )),
            Ok(entity) => {
                let ops: Vec<(String, Option<f64>)> = entry
                    .ops
                    .iter()
                    .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
                    .collect();
                match broker
                    .quotas
                    .alter(&broker.metadata, &entity, &ops, req.validate_only)
                    .await
                {
                    Ok(()) => {
                        if !req.validate_only {
                            info!(%entity, ?ops, "client quotas altered");
                        }
                        Ok(())
                    }
                    Err(e) => Err((
                        match &e {
                            QuotaError::Invalid(_) | QuotaError::Conflict => {
                                errors::INVALID_REQUEST
                            }
                            QuotaError::Replication(r) => crate::errors::replication_error_code(r),
                        },
                        e.to_string(),
                    )),
                }
            }
        };
        let r = alter_client_quotas_response::EntryData::default().with_entity(echo);
        out.push(match result {
            Ok(()) => r,
            Err((code, msg)) => {
                warn!(code, "client quota change refused: {msg}");
                r.with_error_code(code).with_error_message(Some(str(msg)))
            }
        });
    }
    AlterClientQuotasResponse::default().with_entries(out)
}
