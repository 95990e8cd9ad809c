//! DescribeAcls (29): the ACL bindings a filter selects (`security/acl/model.rs` says how
//! filters match), grouped by resource pattern as `kafka-acls --list` prints them. Needs
//! DESCRIBE on the cluster; SECURITY_DISABLED without an authorizer.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use crate::broker::Broker;
use crate::handlers::create_acls::{
    CLUSTER_AUTHORIZATION_FAILED, INVALID_REQUEST, NO_AUTHORIZER, SECURITY_DISABLED,
};
use crate::handlers::str;
use crate::security::acl::model::{AclFilter, AclOperation, PatternType, Permission, ResourceType};
use crate::security::acl::Authz;

/// The filter of wire fields, or why it is not one.
#[allow(clippy::too_many_arguments)]
pub fn filter(
    resource_type: i8,
    name: Option<&str>,
    pattern_type: i8,
    principal: Option<&str>,
    host: Option<&str>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    let unknown = |what: &str, code: i8| format!("unknown {what} code {code}");
    let f = AclFilter {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| unknown("resource type", resource_type))?,
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| unknown("pattern type", pattern_type))?,
        resource_name: name.map(str::to_string),
        principal: principal.map(str::to_string),
        host: host.map(str::to_string),
        operation: AclOperation::from_code(operation)
            .ok_or_else(|| unknown("operation", operation))?,
        permission: Permission::from_code(permission)
            .ok_or_else(|| unknown("permission type", permission))?,
    };
    match f.invalid() {
        Some(why) => Err(why),
        None => Ok(f),
    }
}

pub fn handle(
    broker: &Broker,
    req: DescribeAclsRequest,
    _version: i16,
    az: &Authz,
) -> DescribeAclsResponse {
    let error = |code: i16, message: String| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str(message)))
    };
    if !broker.acls.enabled {
        return error(SECURITY_DISABLED, NO_AUTHORIZER.into());
    }
    if !az.cluster(AclOperation::Describe) {
        return error(
            CLUSTER_AUTHORIZATION_FAILED,
            "describing ACLs needs DESCRIBE on the cluster".into(),
        );
    }
    let f = match filter(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(why) => return error(INVALID_REQUEST, why),
    };
    let mut by_resource: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for b in broker.acls.bindings().into_iter().filter(|b| f.matches(b)) {
        by_resource
            .entry((b.resource_type, b.resource_name.clone(), b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str(b.principal))
                    .with_host(str(b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt.code())
                .with_resource_name(str(name))
                .with_pattern_type(pt.code())
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}
