//! ListGroups (16): the groups this broker coordinates, with their protocol type and (v4+)
//! state, filtered by state (v4+) and type (v5+; all phxq groups are "classic").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use crate::broker::Broker;
use crate::handlers::str;

pub fn handle(broker: &Broker, req: ListGroupsRequest, _version: i16) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    if !types.is_empty() && !types.iter().any(|t| t == "classic") {
        return ListGroupsResponse::default();
    }
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, st)| states.is_empty() || states.contains(&st.name().to_lowercase()))
        .map(|(id, protocol_type, st)| {
            ListedGroup::default()
                .with_group_id(GroupId(str(id)))
                .with_protocol_type(str(protocol_type))
                .with_group_state(str(st.name()))
                .with_group_type(str("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
