//! Broker configuration: defaults, overridden by a TOML file, then by environment
//! variables and command-line flags (see `cli.rs`). `config/single.toml` documents every key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::addr::split_host_port;

/// Everything `phxq serve` needs to run a node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Broker id and Raft node id.
    pub node_id: u64,
    /// Where the node keeps its redb database.
    pub data_dir: PathBuf,
    /// Kafka listeners: `NAME://HOST:PORT`, or `HOST:PORT` for the listener PLAINTEXT
    /// (`security/listeners.rs`). The first address of each name must bind; further ones
    /// (e.g. `[::1]:9092`) are skipped with a warning if unavailable.
    pub listeners: Vec<String>,
    /// `host:port` given to clients of the first listener in Metadata. Defaults to that
    /// listener's address (or this broker's `kafka` address in `[cluster]`).
    pub advertised_listener: Option<String>,
    /// `NAME://HOST:PORT` given to clients of listener NAME (Kafka's
    /// `advertised.listeners`).
    pub advertised_listeners: Vec<String>,
    /// Listener protocols, TLS and SASL (`[security]`, `security/`).
    pub security: crate::security::config::SecurityConfig,
    /// Rack of this broker, reported in Metadata.
    pub rack: Option<String>,
    /// Partitions of an auto-created topic, and of CreateTopics with -1 (Kafka's num.partitions).
    pub num_partitions: i32,
    /// Create unknown topics when a client asks for them in Metadata and allows it.
    pub auto_create_topics: bool,
    /// Number of store groups partitions are spread over on this node.
    pub store_groups: u32,
    /// Largest record batch accepted (Kafka's message.max.bytes); topics may override it.
    pub message_max_bytes: i32,
    /// Largest request frame accepted before the connection is closed.
    pub socket_request_max_bytes: usize,
    /// Raft heartbeat interval in milliseconds.
    pub raft_heartbeat_ms: u64,
    /// Memory for caching storage pages, in MiB. With the bounded in-flight log, this is what
    /// bounds the broker's memory, whatever the volume of data.
    pub cache_mb: usize,
    /// Address of the metrics and health endpoint (`metrics/`), which also serves the web
    /// console (`console/`). None: 127.0.0.1:9644 if it is free (a warning otherwise); "":
    /// off; an address: it must bind.
    pub metrics_listen: Option<String>,
    /// Serve the read-only web console on the metrics endpoint (it shows record contents
    /// to whoever reaches that address).
    pub console: bool,
    /// Retention and segment defaults of topics (`[log]`).
    pub log: crate::retention::config::LogConfig,
    /// The free-space floor of the data directory (`[storage]`, `disk/`).
    pub storage: crate::disk::config::StorageConfig,
    /// Consumer group coordinator settings (`[groups]`).
    pub groups: crate::groups::GroupConfig,
    /// Transaction coordinator settings (`[transactions]`, `txn/`).
    pub transactions: crate::txn::config::TransactionsConfig,
    /// The brokers of a cluster (`[cluster]`); absent: this node runs alone.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            data_dir: PathBuf::from("data"),
            listeners: vec!["127.0.0.1:9092".into(), "[::1]:9092".into()],
            advertised_listener: None,
            advertised_listeners: Vec::new(),
            security: Default::default(),
            rack: None,
            num_partitions: 1,
            auto_create_topics: true,
            store_groups: 1,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            raft_heartbeat_ms: 500,
            cache_mb: 256,
            metrics_listen: None,
            console: true,
            log: Default::default(),
            storage: Default::default(),
            groups: Default::default(),
            transactions: Default::default(),
            cluster: None,
        }
    }
}

impl Config {
    /// Reads a TOML file on top of the defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {}", path.display(), e.message()))
    }

    /// Checks values that would otherwise fail later in a less clear way.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.listeners.is_empty(),
            "at least one listener is required"
        );
        let specs = self.listener_specs()?;
        crate::security::listeners::advertised(&self.advertised_listeners, &specs)?;
        if let Some(a) = &self.advertised_listener {
            split_host_port(a)?;
        }
        self.security.validate()?;
        if specs.iter().any(|l| l.protocol.uses_tls()) {
            anyhow::ensure!(
                self.security.tls.is_some(),
                "an SSL or SASL_SSL listener needs [security.tls] (cert_file, key_file)"
            );
        }
        if specs.iter().any(|l| l.protocol.uses_sasl()) {
            anyhow::ensure!(
                !self.security.sasl_enabled_mechanisms.is_empty(),
                "a SASL listener needs [security] sasl_enabled_mechanisms"
            );
        }
        anyhow::ensure!(
            self.node_id > 0 && self.node_id <= i32::MAX as u64,
            "node_id must be between 1 and {}",
            i32::MAX
        );
        anyhow::ensure!(
            self.num_partitions >= 1,
            "num_partitions must be at least 1"
        );
        anyhow::ensure!(
            (1..=1024).contains(&self.store_groups),
            "store_groups must be between 1 and 1024"
        );
        anyhow::ensure!(
            self.message_max_bytes >= 1024,
            "message_max_bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.socket_request_max_bytes >= 1024
                && self.socket_request_max_bytes <= i32::MAX as usize,
            "socket_request_max_bytes must be between 1024 and {}",
            i32::MAX
        );
        anyhow::ensure!(
            self.raft_heartbeat_ms >= 10,
            "raft_heartbeat_ms must be at least 10"
        );
        anyhow::ensure!(self.cache_mb >= 1, "cache_mb must be at least 1");
        self.log.validate()?;
        self.storage.validate()?;
        self.groups.validate()?;
        self.transactions.validate()?;
        if let Some(c) = &self.cluster {
            c.validate(self.node_id)?;
            if let (Some(mine), Some(entry)) = (&self.rack, c.broker(self.node_id)) {
                anyhow::ensure!(
                    entry.rack.is_none() || entry.rack.as_ref() == Some(mine),
                    "rack {mine:?} disagrees with this node's rack in [cluster] brokers"
                );
            }
        }
        Ok(())
    }

    /// The advertised `(host, port)`: `advertised_listener`, else this node's `kafka`
    /// address in `[cluster]`, else the first listener.
    /// The listeners, with their names and protocols.
    pub fn listener_specs(&self) -> anyhow::Result<Vec<crate::security::listeners::ListenerSpec>> {
        crate::security::listeners::parse(
            &self.listeners,
            &self.security.listener_security_protocol_map,
        )
    }

    /// Where clients of listener `name` reach this broker (see `security/listeners.rs`).
    pub fn advertised_on(&self, name: &str) -> (String, i32) {
        let specs = self.listener_specs().unwrap_or_default();
        let first = specs.first().map(|l| l.name.as_str()) == Some(name);
        let configured = crate::security::listeners::advertised(&self.advertised_listeners, &specs)
            .unwrap_or_default()
            .remove(name);
        match configured {
            Some(a) => split_host_port(&a).unwrap_or_else(|_| ("127.0.0.1".into(), 9092)),
            None if first || specs.is_empty() => self.advertised(),
            None => {
                let own = specs
                    .iter()
                    .find(|l| l.name == name)
                    .map(|l| l.addr.clone());
                own.and_then(|a| split_host_port(&a).ok())
                    .unwrap_or_else(|| self.advertised())
            }
        }
    }

    pub fn advertised(&self) -> (String, i32) {
        let own = self
            .cluster
            .as_ref()
            .and_then(|c| c.broker(self.node_id))
            .map(|b| b.kafka.as_str());
        let a = self
            .advertised_listener
            .as_deref()
            .or(own)
            .unwrap_or(&self.listeners[0]);
        let a = crate::security::listeners::split(a).1;
        split_host_port(&a).unwrap_or_else(|_| ("127.0.0.1".into(), 9092))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/single.toml");
        let c = Config::from_file(&path).unwrap();
        c.validate().unwrap();
        for n in 1..=3 {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../config/cluster/node{n}.toml"));
            let c = Config::from_file(&path).unwrap();
            c.validate().unwrap();
            assert_eq!(c.node_id, n);
            assert_eq!(c.advertised().1, 9091 + n as i32);
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<Config>("no_such_key = 1").is_err());
        let c = Config {
            num_partitions: 0,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            listeners: vec!["nonsense".into()],
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn advertised_defaults_to_first_listener() {
        let c = Config::default();
        assert_eq!(c.advertised(), ("127.0.0.1".to_string(), 9092));
        let c = Config {
            advertised_listener: Some("[::1]:19092".into()),
            ..Config::default()
        };
        assert_eq!(c.advertised(), ("::1".to_string(), 19092));
    }
}
