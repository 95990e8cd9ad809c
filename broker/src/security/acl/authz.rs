//! What one request's handler asks: may this connection's principal, from its host, do an
//! operation on a resource? Built per request from the connection's identity and the
//! authorizer of the moment (`store.rs`); with no authorizer configured everything is
//! allowed, so handlers ask unconditionally.

use std::sync::Arc;

use super::authorizer::Authorizer;
use super::model::{AclOperation, ResourceType, CLUSTER_NAME};

/// The principal of a connection that did not authenticate (PLAINTEXT, SSL without a
/// client certificate).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Kafka's value of an `*_authorized_operations` field that was not asked for.
pub const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

/// One request's authorization context.
pub struct Authz {
    authorizer: Option<Arc<Authorizer>>,
    pub principal: String,
    pub host: String,
}

impl Authz {
    pub fn new(
        authorizer: Option<Arc<Authorizer>>,
        principal: Option<&str>,
        host: String,
    ) -> Authz {
        Authz {
            authorizer,
            principal: principal.unwrap_or(ANONYMOUS).to_string(),
            host,
        }
    }

    /// The context without an authorizer: everything is allowed, nothing is allocated.
    pub fn unchecked() -> Authz {
        Authz {
            authorizer: None,
            principal: String::new(),
            host: String::new(),
        }
    }

    pub fn allows(&self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        let Some(a) = &self.authorizer else {
            return true;
        };
        let ok = a.authorize(&self.principal, &self.host, op, rt, name);
        if !ok {
            tracing::debug!(principal = %self.principal, host = %self.host, %op, %rt, name, "denied");
        }
        ok
    }

    pub fn topic(&self, op: AclOperation, topic: &str) -> bool {
        self.allows(op, ResourceType::Topic, topic)
    }

    pub fn group(&self, op: AclOperation, group: &str) -> bool {
        self.allows(op, ResourceType::Group, group)
    }

    pub fn cluster(&self, op: AclOperation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub fn transactional_id(&self, op: AclOperation, id: &str) -> bool {
        self.allows(op, ResourceType::TransactionalId, id)
    }

    /// May the principal do `op` on some resource of type `rt`?
    pub fn allows_any(&self, op: AclOperation, rt: ResourceType) -> bool {
        match &self.authorizer {
            None => true,
            Some(a) => a.authorize_any(&self.principal, &self.host, op, rt),
        }
    }

    /// The `*_authorized_operations` field of a resource, when the request asked for it.
    pub fn operations(&self, asked: bool, rt: ResourceType, name: &str) -> i32 {
        if !asked {
            return OPERATIONS_NOT_ASKED;
        }
        match &self.authorizer {
            Some(a) => a.authorized_operations(&self.principal, &self.host, rt, name),
            None => super::authorizer::operations_of(rt)
                .iter()
                .fold(0, |bits, op| bits | (1 << op.code())),
        }
    }
}
