//! Kafka's security model: listeners by name and protocol (`listeners.rs`), TLS
//! (`tls.rs`), who a connection is and its SASL exchange (`sasl.rs`), users' SCRAM
//! credentials in the metadata group (`credentials.rs`), `phxq user` (`admin.rs`) and
//! `[security]` (`config.rs`). `scram.rs` and `plain.rs` are the pure SASL mechanisms (no
//! I/O: the handlers feed them the client's bytes). `inter_broker.rs`: mutual TLS between
//! brokers (`[security.inter_broker]`). `client.rs` and `scram_client.rs`: the `phxq`
//! admin commands' TLS and SASL (`--command-config`).

pub mod acl;
pub mod admin;
pub mod client;
pub mod config;
pub mod credentials;
pub mod inter_broker;
pub mod listeners;
pub mod plain;
pub mod sasl;
pub mod scram;
pub mod scram_client;
pub mod tls;

pub use listeners::Listener;
