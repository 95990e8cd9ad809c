//! DeleteGroups (42): removes Empty groups with their committed offsets (NON_EMPTY_GROUP
//! while members remain, GROUP_ID_NOT_FOUND for unknown groups). A share group's
//! share-partition states go with it (on their partitions' leaders, `share/admin.rs`).
//! Needs DELETE on each group (else GROUP_AUTHORIZATION_FAILED).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::Broker;
use crate::security::acl::{AclOperation, Authz};

pub async fn handle(
    broker: &Broker,
    req: DeleteGroupsRequest,
    _version: i16,
    az: &Authz,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        if !az.group(AclOperation::Delete, &g.0) {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED),
            );
            continue;
        }
        // A share group without members: the partitions it has state on.
        let share_state = match broker.groups.share_admin_check(&g.0, true) {
            Ok(subscribed) => Some(super::share_group_offsets::state_partitions(
                broker, &g.0, subscribed,
            )),
            Err(_) => None,
        };
        let mut code = broker.groups.delete(&g.0).await;
        if let (0, Some(parts)) = (code, share_state) {
            code = match parts {
                Ok(parts) => super::share_group_offsets::delete_states(broker, &g.0, parts).await,
                Err((c, msg)) => {
                    tracing::warn!(group = %&*g.0, "share-partition states not deleted: {msg}");
                    c
                }
            };
        }
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
