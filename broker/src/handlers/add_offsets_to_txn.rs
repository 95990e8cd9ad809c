//! AddOffsetsToTxn (25): a consumer group joins a producer's ongoing transaction, so that
//! the offsets it commits with TxnOffsetCommit are applied or dropped with the
//! transaction's outcome (`groups/txn_offsets.rs`). Needs WRITE on the transactional id
//! (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and READ on the group (else
//! GROUP_AUTHORIZATION_FAILED).

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::broker::Broker;
use crate::security::acl::{AclOperation, Authz};
use crate::txn::coordinator::ProducerIdAndEpoch;
use crate::txn::errors::*;

const API_KEY: i16 = 25;

pub async fn handle(
    broker: &Broker,
    req: AddOffsetsToTxnRequest,
    version: i16,
    az: &Authz,
) -> AddOffsetsToTxnResponse {
    let producer = ProducerIdAndEpoch {
        producer_id: req.producer_id.0,
        epoch: req.producer_epoch,
    };
    let code = if !az.transactional_id(AclOperation::Write, &req.transactional_id.0) {
        phxq_protocol::errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else if !az.group(AclOperation::Read, &req.group_id.0) {
        phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED
    } else if req.group_id.0.is_empty() {
        crate::groups::errors::INVALID_GROUP_ID
    } else {
        match broker
            .txns
            .add_offsets(&req.transactional_id.0, producer, &req.group_id.0)
            .await
        {
            Ok(()) => NONE,
            Err(code) => for_version(code, API_KEY, version),
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
