//! DeleteAcls (31): removes the ACL bindings each filter selects, as `kafka-acls --remove`
//! and `phxq acl remove` send them; each filter's result lists what it removed. Needs
//! ALTER on the cluster; SECURITY_DISABLED without an authorizer. All removals of a
//! request are one write through the metadata Raft group, answered once durable.

use std::collections::BTreeSet;

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use phxq_replication::Command;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::handlers::create_acls::{
    describe, CLUSTER_AUTHORIZATION_FAILED, INVALID_REQUEST, NO_AUTHORIZER, SECURITY_DISABLED,
};
use crate::handlers::describe_acls::filter;
use crate::handlers::{replication_error_code, str};
use crate::security::acl::model::{AclBinding, AclOperation};
use crate::security::acl::{store, Authz};

fn failed(code: i16, message: impl Into<String>) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code)
        .with_error_message(Some(str(message)))
}

fn matching(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(str(b.resource_name.clone()))
        .with_pattern_type(b.pattern_type.code())
        .with_principal(str(b.principal.clone()))
        .with_host(str(b.host.clone()))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}

pub async fn handle(
    broker: &Broker,
    req: DeleteAclsRequest,
    _version: i16,
    az: &Authz,
) -> DeleteAclsResponse {
    let all = |r: DeleteAclsFilterResult| {
        DeleteAclsResponse::default().with_filter_results(vec![r; req.filters.len()])
    };
    if !broker.acls.enabled {
        return all(failed(SECURITY_DISABLED, NO_AUTHORIZER));
    }
    if !az.cluster(AclOperation::Alter) {
        return all(failed(
            CLUSTER_AUTHORIZATION_FAILED,
            "deleting ACLs needs ALTER on the cluster",
        ));
    }
    let bindings = broker.acls.bindings();
    let selected: Vec<Result<Vec<AclBinding>, String>> = req
        .filters
        .iter()
        .map(|f| {
            let f = filter(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )?;
            Ok(bindings.iter().filter(|b| f.matches(b)).cloned().collect())
        })
        .collect();
    let doomed: BTreeSet<&AclBinding> = selected.iter().flatten().flatten().collect();
    let mut written = None;
    if !doomed.is_empty() {
        let puts = doomed.iter().map(|b| (store::key(b), None)).collect();
        match broker.metadata.propose_on_leader(Command::Put(puts)).await {
            Ok(_) => {
                if let Err(e) = broker.acls.reload(&broker.metadata) {
                    warn!(error = %e, "ACLs deleted but not re-read; the next metadata change does");
                }
                let gone: Vec<String> = doomed.iter().map(|b| describe(b)).collect();
                info!(by = %az.principal, ?gone, "ACLs deleted");
            }
            Err(e) => {
                warn!(error = %e, "ACLs not deleted");
                written = Some((replication_error_code(&e), e.to_string()));
            }
        }
    }
    let results = selected
        .into_iter()
        .map(|s| match (s, &written) {
            (Err(why), _) => failed(INVALID_REQUEST, why),
            (Ok(bs), Some((code, why))) if !bs.is_empty() => failed(*code, why.clone()),
            (Ok(bs), _) => DeleteAclsFilterResult::default()
                .with_matching_acls(bs.iter().map(matching).collect()),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
