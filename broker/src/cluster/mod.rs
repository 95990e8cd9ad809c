//! Running as one broker of a cluster: configuration of the brokers, the inter-broker
//! listener and the groups a broker votes in, leader re-balancing, and what Metadata tells
//! clients about brokers, leaders and replicas; `phxq cluster up|status`.

pub mod balance;
pub mod config;
pub mod leaders;
pub mod node;
pub mod status;
pub mod up;
pub mod view;
