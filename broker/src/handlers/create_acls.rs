//! CreateAcls (30): adds ACL bindings, as `kafka-acls --add` and `phxq acl add` send them.
//! Needs ALTER on the cluster. Each binding must be concrete (`security/acl/model.rs`),
//! else that one is INVALID_REQUEST; the valid ones are written together through the
//! metadata Raft group (`security/acl/store.rs`) and answered once durable. Creating a
//! binding that exists is a success that changes nothing, as in Kafka.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError;
use phxq_protocol::errors::NONE;
use phxq_replication::Command;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::handlers::{replication_error_code, str};
use crate::security::acl::model::{
    AclBinding, AclOperation, PatternType, Permission, ResourceType,
};
use crate::security::acl::{store, Authz};

pub const SECURITY_DISABLED: i16 = ResponseError::SecurityDisabled.code();
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = ResponseError::ClusterAuthorizationFailed.code();
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();

/// The answer to a request for ACLs on a broker without an authorizer.
pub const NO_AUTHORIZER: &str =
    "no authorizer is configured on the broker ([security] authorizer = \"acl\")";

fn binding(c: &AclCreation) -> Result<AclBinding, String> {
    let unknown = |what: &str, code: i8| format!("unknown {what} code {code}");
    let b = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type)
            .ok_or_else(|| unknown("resource type", c.resource_type))?,
        pattern_type: PatternType::from_code(c.resource_pattern_type)
            .ok_or_else(|| unknown("pattern type", c.resource_pattern_type))?,
        resource_name: c.resource_name.to_string(),
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: AclOperation::from_code(c.operation)
            .ok_or_else(|| unknown("operation", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| unknown("permission type", c.permission_type))?,
    };
    match b.invalid() {
        Some(why) => Err(why),
        None => Ok(b),
    }
}

fn failed(code: i16, message: impl Into<String>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code)
        .with_error_message(Some(str(message)))
}

pub async fn handle(
    broker: &Broker,
    req: CreateAclsRequest,
    _version: i16,
    az: &Authz,
) -> CreateAclsResponse {
    let all = |r: AclCreationResult| {
        CreateAclsResponse::default().with_results(vec![r; req.creations.len()])
    };
    if !broker.acls.enabled {
        return all(failed(SECURITY_DISABLED, NO_AUTHORIZER));
    }
    if !az.cluster(AclOperation::Alter) {
        return all(failed(
            CLUSTER_AUTHORIZATION_FAILED,
            "creating ACLs needs ALTER on the cluster",
        ));
    }
    let parsed: Vec<Result<AclBinding, String>> = req.creations.iter().map(binding).collect();
    let puts: Vec<_> = parsed
        .iter()
        .filter_map(|b| b.as_ref().ok())
        .map(|b| (store::key(b), Some(bytes::Bytes::new())))
        .collect();
    let mut written = (NONE, None);
    if !puts.is_empty() {
        match broker.metadata.propose_on_leader(Command::Put(puts)).await {
            Ok(_) => {
                if let Err(e) = broker.acls.reload(&broker.metadata) {
                    warn!(error = %e, "ACLs written but not re-read; the next metadata change does");
                }
                let created: Vec<String> = parsed
                    .iter()
                    .filter_map(|b| b.as_ref().ok())
                    .map(describe)
                    .collect();
                info!(by = %az.principal, ?created, "ACLs created");
            }
            Err(e) => {
                warn!(error = %e, "ACLs not stored");
                written = (replication_error_code(&e), Some(e.to_string()));
            }
        }
    }
    let results = parsed
        .into_iter()
        .map(|b| match b {
            Err(why) => failed(INVALID_REQUEST, why),
            Ok(_) if written.0 != NONE => failed(written.0, written.1.clone().unwrap_or_default()),
            Ok(_) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// A binding as the log shows it: `ALLOW User:alice@* WRITE TOPIC:PREFIXED:orders`.
pub fn describe(b: &AclBinding) -> String {
    format!(
        "{} {}@{} {} {}:{}:{}",
        b.permission,
        b.principal,
        b.host,
        b.operation,
        b.resource_type,
        b.pattern_type,
        b.resource_name
    )
}
