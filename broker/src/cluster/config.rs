//! The `[cluster]` table: the brokers of a cluster, this node's inter-broker listener and the
//! replication factor of store groups. Without it a node runs alone.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde::Deserialize;

use crate::addr::{parse_addr, split_host_port};

/// Cluster membership, the same list on every node (only `node_id` differs).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Address this node's inter-broker listener binds (Raft traffic of every group, one
    /// connection per peer). Defaults to this node's `internal` address in `brokers`.
    pub internal_listener: Option<String>,
    /// Voters per store group: 3, or fewer when the cluster has fewer brokers.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: usize,
    /// Every broker of the cluster, this one included.
    pub brokers: Vec<BrokerEntry>,
}

fn default_replication_factor() -> usize {
    3
}

/// One broker of the cluster.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BrokerEntry {
    /// Broker id = Raft node id.
    pub id: u64,
    /// HOST:PORT Kafka clients use to reach it (given out in Metadata).
    pub kafka: String,
    /// HOST:PORT of its inter-broker listener.
    pub internal: String,
    /// Rack (availability zone): replicas of a store group go to distinct racks first.
    pub rack: Option<String>,
    /// HOST:PORT of its other Kafka listeners by name (`SASL_SSL = "host:9093"`); a
    /// listener not named here is reached at `kafka`.
    #[serde(default)]
    pub listeners: std::collections::BTreeMap<String, String>,
}

impl ClusterConfig {
    /// Checks the list against this node's id.
    pub fn validate(&self, node_id: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.brokers.is_empty(),
            "[cluster] needs at least one entry in brokers"
        );
        let mut ids = BTreeSet::new();
        for b in &self.brokers {
            anyhow::ensure!(
                b.id > 0 && b.id <= i32::MAX as u64,
                "[cluster] broker id {} out of range",
                b.id
            );
            anyhow::ensure!(
                ids.insert(b.id),
                "[cluster] broker id {} listed twice",
                b.id
            );
            split_host_port(&b.kafka)?;
            for a in b.listeners.values() {
                split_host_port(a)?;
            }
            parse_addr(&b.internal)?;
        }
        anyhow::ensure!(
            ids.contains(&node_id),
            "node_id {node_id} is not among the [cluster] brokers {ids:?}"
        );
        if let Some(l) = &self.internal_listener {
            parse_addr(l)?;
        }
        anyhow::ensure!(
            (1..=7).contains(&self.replication_factor),
            "[cluster] replication_factor must be between 1 and 7"
        );
        Ok(())
    }

    pub fn broker(&self, id: u64) -> Option<&BrokerEntry> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// The address this node's inter-broker listener binds.
    pub fn internal_bind(&self, node_id: u64) -> anyhow::Result<SocketAddr> {
        match &self.internal_listener {
            Some(l) => parse_addr(l),
            None => parse_addr(
                &self
                    .broker(node_id)
                    .ok_or_else(|| anyhow::anyhow!("node {node_id} not in [cluster] brokers"))?
                    .internal,
            ),
        }
    }

    /// Voters of every group by id: group 0 (metadata) on every broker (up to 5, like a
    /// KRaft controller quorum), store group g on `replication_factor` brokers starting at
    /// broker (g-1) mod n, so that the first voter (the preferred leader) rotates and
    /// leaders spread. With racks, each next voter is the next broker in a rack not used
    /// yet, when there is one.
    pub fn voters(&self, group: u32) -> Vec<u64> {
        let mut ids: Vec<u64> = self.brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        if group == 0 {
            ids.truncate(5);
            return ids;
        }
        let rf = self.replication_factor.min(n);
        let start = (group as usize - 1) % n;
        let ring: Vec<u64> = (0..n).map(|i| ids[(start + i) % n]).collect();
        let rack = |id: u64| self.broker(id).and_then(|b| b.rack.clone());
        let mut chosen: Vec<u64> = Vec::with_capacity(rf);
        let mut racks = BTreeSet::new();
        // First pass: one broker per rack; second pass: fill up in ring order.
        for id in &ring {
            if chosen.len() == rf {
                break;
            }
            match rack(*id) {
                Some(r) if racks.contains(&r) => {}
                r => {
                    if let Some(r) = r {
                        racks.insert(r);
                    }
                    chosen.push(*id);
                }
            }
        }
        for id in &ring {
            if chosen.len() == rf {
                break;
            }
            if !chosen.contains(id) {
                chosen.push(*id);
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three(racks: [&str; 3]) -> ClusterConfig {
        ClusterConfig {
            internal_listener: None,
            replication_factor: 3,
            brokers: (1..=3)
                .map(|i| BrokerEntry {
                    id: i,
                    kafka: format!("127.0.0.1:909{}", i + 1),
                    internal: format!("127.0.0.1:1909{}", i + 1),
                    rack: Some(racks[i as usize - 1].to_string()).filter(|r| !r.is_empty()),
                    listeners: Default::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn preferred_leaders_rotate() {
        let c = three(["", "", ""]);
        assert_eq!(c.voters(0), vec![1, 2, 3]);
        assert_eq!(c.voters(1), vec![1, 2, 3]);
        assert_eq!(c.voters(2), vec![2, 3, 1]);
        assert_eq!(c.voters(3), vec![3, 1, 2]);
        assert_eq!(c.voters(4), vec![1, 2, 3]);
    }

    #[test]
    fn replicas_go_to_distinct_racks_first() {
        let mut c = three(["a", "a", "b"]);
        c.replication_factor = 2;
        assert_eq!(c.voters(1), vec![1, 3]);
        assert_eq!(c.voters(2), vec![2, 3]);
        assert_eq!(c.voters(3), vec![3, 1]);
    }

    #[test]
    fn validation() {
        let c = three(["", "", ""]);
        c.validate(2).unwrap();
        assert!(c.validate(4).is_err());
        let mut d = c.clone();
        d.brokers[1].id = 1;
        assert!(d.validate(1).is_err());
        let mut d = c;
        d.brokers[0].internal = "nowhere".into();
        assert!(d.validate(1).is_err());
    }
}
