//! InitProducerId (22): producer ids for idempotent and transactional producers.
//!
//! - Without a transactional id (idempotence): a new id allocated through the metadata
//!   group, so ids are unique across restarts; a known producer asking again (v3+, after
//!   a sequence error) gets its epoch bumped.
//! - With a transactional id: the transaction coordinator of that id (`txn/`) fences the
//!   previous producer of the id (epoch bump), aborts its open transaction, and answers
//!   once that is durable. PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v4 (KIP-588).
//! - Authorization: WRITE on the transactional id (else
//!   TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer needs IDEMPOTENT_WRITE
//!   on the cluster or WRITE on some topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use phxq_protocol::errors;
use phxq_replication::{Command, CommandResponse};
use tracing::warn;

use crate::broker::Broker;
use crate::handlers::replication_error_code;
use crate::security::acl::{AclOperation, Authz, ResourceType};
use crate::txn::coordinator::ProducerIdAndEpoch;

/// ApiKey of InitProducerId, for the version-dependent error codes.
const API_KEY: i16 = 22;

pub async fn handle(
    broker: &Broker,
    req: InitProducerIdRequest,
    version: i16,
    az: &Authz,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match &req.transactional_id {
        Some(id) if !az.transactional_id(AclOperation::Write, id) => {
            return resp.with_error_code(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        }
        None if !az.cluster(AclOperation::IdempotentWrite)
            && !az.allows_any(AclOperation::Write, ResourceType::Topic) =>
        {
            return resp.with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED)
        }
        _ => {}
    }
    if let Some(id) = &req.transactional_id {
        let expected =
            (req.producer_id.0 >= 0 && req.producer_epoch >= 0).then_some(ProducerIdAndEpoch {
                producer_id: req.producer_id.0,
                epoch: req.producer_epoch,
            });
        return match broker
            .txns
            .init_producer_id(&id.0, req.transaction_timeout_ms, expected)
            .await
        {
            Ok(p) => resp
                .with_producer_id(ProducerId(p.producer_id))
                .with_producer_epoch(p.epoch),
            Err(code) => {
                resp.with_error_code(crate::txn::errors::for_version(code, API_KEY, version))
            }
        };
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker
        .metadata
        .propose_on_leader(Command::AllocateProducerIds(1))
        .await
    {
        Ok(CommandResponse::ProducerIds(id)) => {
            resp.with_producer_id(ProducerId(id)).with_producer_epoch(0)
        }
        Ok(other) => {
            warn!("unexpected answer to AllocateProducerIds: {other:?}");
            resp.with_error_code(errors::UNKNOWN_SERVER_ERROR)
        }
        Err(e) => resp.with_error_code(replication_error_code(&e)),
    }
}
