//! EndTxn (26): commit or abort a producer's transaction. The answer comes once the
//! decision is durable in the coordinator's store group; the markers are then written into
//! every partition and group of the transaction in the background, and until they are the
//! producer's next transactional request gets CONCURRENT_TRANSACTIONS (and retries).
//! v5+ (KIP-890) bumps the producer epoch with the decision and returns the new one.
//! Needs WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use crate::broker::Broker;
use crate::security::acl::{AclOperation, Authz};
use crate::txn::coordinator::{ProducerIdAndEpoch, TxnResult};
use crate::txn::errors::*;

const API_KEY: i16 = 26;

pub async fn handle(
    broker: &Broker,
    req: EndTxnRequest,
    version: i16,
    az: &Authz,
) -> EndTxnResponse {
    let producer = ProducerIdAndEpoch {
        producer_id: req.producer_id.0,
        epoch: req.producer_epoch,
    };
    let result = if req.committed {
        TxnResult::Commit
    } else {
        TxnResult::Abort
    };
    let resp = EndTxnResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if !az.transactional_id(AclOperation::Write, &req.transactional_id.0) {
        return resp.with_error_code(phxq_protocol::errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    match broker
        .txns
        .end_txn(&req.transactional_id.0, producer, result, version >= 5)
        .await
    {
        Ok(p) => resp
            .with_producer_id(ProducerId(p.producer_id))
            .with_producer_epoch(p.epoch),
        Err(code) => resp.with_error_code(for_version(code, API_KEY, version)),
    }
}
