//! DescribeCluster (60): cluster id, controller and brokers. Needs DESCRIBE on the
//! cluster (else CLUSTER_AUTHORIZATION_FAILED); the cluster's authorized operations are
//! filled when asked for.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use crate::broker::Broker;
use crate::handlers::str;
use crate::security::acl::model::CLUSTER_NAME;
use crate::security::acl::{AclOperation, Authz, ResourceType};

pub fn handle(
    broker: &Broker,
    req: DescribeClusterRequest,
    _version: i16,
    listener: &str,
    az: &Authz,
) -> DescribeClusterResponse {
    if !az.cluster(AclOperation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(phxq_protocol::errors::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str("describing the cluster needs DESCRIBE on it")));
    }
    let brokers = broker
        .brokers_on(listener)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_cluster_authorized_operations(az.operations(
            req.include_cluster_authorized_operations,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ))
        .with_brokers(brokers)
}
