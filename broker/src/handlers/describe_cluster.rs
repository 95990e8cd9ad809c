//! DescribeCluster (60): cluster id, controller and brokers.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use crate::broker::Broker;
use crate::handlers::str;

pub fn handle(
    broker: &Broker,
    _req: DescribeClusterRequest,
    _version: i16,
    listener: &str,
) -> DescribeClusterResponse {
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
        .with_cluster_authorized_operations(i32::MIN)
        .with_brokers(brokers)
}
