//! DescribeCluster (60): cluster id, controller and brokers.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use crate::broker::Broker;
use crate::handlers::str;

pub fn handle(
    broker: &Broker,
    _req: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(str(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_cluster_authorized_operations(i32::MIN)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id()))
            .with_host(str(broker.host.clone()))
            .with_port(broker.port)
            .with_rack(broker.config.rack.clone().map(str))])
}
