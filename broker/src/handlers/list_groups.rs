//! ListGroups (16): the groups this broker coordinates, with their protocol type, (v4+)
//! state and (v5+) type — "classic" or "consumer" (KIP-848) — filtered by state (v4+) and
//! type (v5+), case-insensitively as Kafka does. Without DESCRIBE on the cluster, only
//! the groups the principal may DESCRIBE are listed.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use crate::broker::Broker;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};

pub fn handle(
    broker: &Broker,
    req: ListGroupsRequest,
    _version: i16,
    az: &Authz,
) -> ListGroupsResponse {
    let all = az.cluster(AclOperation::Describe);
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .filter(|g| all || az.group(AclOperation::Describe, &g.id))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str(g.id)))
                .with_protocol_type(str(g.protocol_type))
                .with_group_state(str(g.state))
                .with_group_type(str(g.group_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
