//! FindCoordinator (10): which broker coordinates a group. A group's coordinator is the
//! leader of its home store group (a stable hash of the group id over the store groups).
//! Transactional ids (key type 1) are placed the same way. v4+ asks for several keys.
//! Needs DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED) or the transactional id
//! (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::groups::errors::*;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub fn handle(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
    listener: &str,
    az: &Authz,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| lookup(broker, req.key_type, key, listener, az))
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = lookup(broker, req.key_type, req.key, listener, az);
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(if version >= 1 { c.error_message } else { None })
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

fn lookup(broker: &Broker, key_type: i8, key: StrBytes, listener: &str, az: &Authz) -> Coordinator {
    let c = Coordinator::default().with_key(key.clone());
    let fail = |code: i16, why: &str| {
        c.clone()
            .with_error_code(code)
            .with_error_message(Some(str(why)))
            .with_node_id(BrokerId(-1))
            .with_host(str(""))
            .with_port(-1)
    };
    if key_type != GROUP && key_type != TRANSACTION {
        return fail(INVALID_REQUEST, "unsupported coordinator key type");
    }
    if key_type == GROUP && !az.group(AclOperation::Describe, &key) {
        return fail(
            phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED,
            "finding a group's coordinator needs DESCRIBE on the group",
        );
    }
    if key_type == TRANSACTION && !az.transactional_id(AclOperation::Describe, &key) {
        return fail(
            phxq_protocol::errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "finding a transaction's coordinator needs DESCRIBE on the transactional id",
        );
    }
    match broker.coordinator_node(&key) {
        Ok(node) => match broker.broker_addr(node, listener) {
            Some(b) => c
                .clone()
                .with_node_id(BrokerId(b.id))
                .with_host(str(b.host))
                .with_port(b.port),
            None => fail(
                COORDINATOR_NOT_AVAILABLE,
                "the coordinator is not a known broker",
            ),
        },
        Err(code) => fail(code, "no leader for the group's store group"),
    }
}
