//! Running as one broker of a cluster: configuration of the brokers, the inter-broker
//! listener, leader placement, and `phxq cluster up|status`.

pub mod config;
pub mod status;
pub mod up;
