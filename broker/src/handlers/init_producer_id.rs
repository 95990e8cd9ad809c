//! InitProducerId (22): producer ids for idempotent producers, allocated through the
//! metadata group so they are unique across restarts. A known producer asking again
//! (v3+, after a sequence error) gets its epoch bumped. Transactions are not supported:
//! a transactional id is refused.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use phxq_protocol::errors;
use phxq_replication::{Command, CommandResponse};
use tracing::warn;

use crate::broker::Broker;
use crate::handlers::replication_error_code;

pub async fn handle(
    broker: &Broker,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return resp.with_error_code(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
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
