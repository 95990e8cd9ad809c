//! What clients are told about the cluster (Metadata, DescribeCluster, FindCoordinator):
//! the brokers and their addresses, the controller (the metadata group's leader), and per
//! store group its leader, replicas (voters) and in-sync replicas.

use phxq_replication::GroupId;

use crate::addr::split_host_port;
use crate::broker::Broker;

/// A broker as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddr {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Leader and replicas of a store group (= of every partition placed in it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicas {
    pub leader: Option<i32>,
    /// The partitions' leader epoch: the leader's Raft term (-1 while there is none).
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A follower counts as in sync while it acknowledged the leader within this long and is
/// at most [`ISR_MAX_LAG`] entries behind.
const ISR_MAX_SILENCE_MS: u64 = 5_000;
const ISR_MAX_LAG: u64 = 1_000;

impl Broker {
    /// Every broker of the cluster (just this one when it runs alone), at their addresses
    /// on the first listener.
    pub fn brokers(&self) -> Vec<BrokerAddr> {
        let first = self
            .config
            .listener_specs()
            .ok()
            .and_then(|l| l.first().map(|l| l.name.clone()))
            .unwrap_or_default();
        self.brokers_on(&first)
    }

    /// Every broker at its address on listener `listener` (the one a client connected to:
    /// Metadata answers with addresses it can reach the same way).
    pub fn brokers_on(&self, listener: &str) -> Vec<BrokerAddr> {
        match &self.config.cluster {
            None => {
                let (host, port) = self.config.advertised_on(listener);
                vec![BrokerAddr {
                    id: self.node_id(),
                    host,
                    port,
                    rack: self.config.rack.clone(),
                }]
            }
            Some(c) => c
                .brokers
                .iter()
                .map(|b| {
                    let addr = if b.id == self.config.node_id {
                        None
                    } else {
                        b.listeners.get(listener).cloned()
                    };
                    let (host, port) = match addr {
                        Some(a) => split_host_port(&a).unwrap_or_else(|_| (String::new(), -1)),
                        None if b.id == self.config.node_id => self.config.advertised_on(listener),
                        None => split_host_port(&b.kafka).unwrap_or_else(|_| (String::new(), -1)),
                    };
                    BrokerAddr {
                        id: b.id as i32,
                        host,
                        port,
                        rack: b.rack.clone(),
                    }
                })
                .collect(),
        }
    }

    pub fn broker_addr(&self, id: u64, listener: &str) -> Option<BrokerAddr> {
        self.brokers_on(listener)
            .into_iter()
            .find(|b| b.id as u64 == id)
    }

    /// The broker coordinating consumer group (or transactional id) `id`: the leader of
    /// its home store group, from this broker's Raft state or, when it does not host that
    /// group, from the leader the group's members recorded.
    pub fn coordinator_node(&self, id: &str) -> Result<u64, i16> {
        let home = self.groups.home(id);
        if self.node.group(home).is_some() {
            return self.groups.coordinator_node(id);
        }
        self.leaders
            .get(home)
            .map(|r| r.node)
            .ok_or(phxq_protocol::errors::COORDINATOR_NOT_AVAILABLE)
    }

    /// Replicas of every partition: the voters of a store group.
    pub fn replication_factor(&self) -> i16 {
        match &self.config.cluster {
            None => 1,
            Some(c) => c.replication_factor.min(c.brokers.len()) as i16,
        }
    }

    /// The controller: the metadata group's leader (-1 while there is none).
    pub fn controller_id(&self) -> i32 {
        self.metadata.leader().map_or(-1, |l| l as i32)
    }

    /// Leader, replicas and in-sync replicas of a store group. The leader knows its
    /// followers' progress; another broker reports every replica as in sync while the
    /// group has a leader.
    /// A group this broker does not host (more brokers than the replication factor) is
    /// described from the leader its members recorded in the metadata group
    /// (`cluster/leaders.rs`) and the configured voters.
    pub fn replicas(&self, group: GroupId) -> Replicas {
        let Some(g) = self.node.group(group) else {
            let voters: Vec<i32> = match &self.config.cluster {
                Some(c) => c.voters(group.0).into_iter().map(|v| v as i32).collect(),
                None => Vec::new(),
            };
            let recorded = self.leaders.get(group);
            return Replicas {
                leader: recorded.map(|r| r.node as i32),
                leader_epoch: recorded.map_or(-1, |r| r.epoch),
                isr: if recorded.is_some() {
                    voters.clone()
                } else {
                    Vec::new()
                },
                replicas: voters,
            };
        };
        let leader = g.leader();
        let voters: Vec<i32> = g.voters().into_iter().map(|v| v as i32).collect();
        let isr = match leader {
            None => vec![],
            Some(l) if l == self.config.node_id => {
                let st = g.status();
                let last = st.last_log.unwrap_or(0);
                let mut isr = vec![l as i32];
                isr.extend(
                    st.replication
                        .iter()
                        .filter(|r| {
                            r.last_ack_ms.is_some_and(|ms| ms <= ISR_MAX_SILENCE_MS)
                                && r.matched.unwrap_or(0) + ISR_MAX_LAG >= last
                        })
                        .map(|r| r.node as i32),
                );
                isr.sort_unstable();
                isr
            }
            Some(_) => voters.clone(),
        };
        Replicas {
            leader: leader.map(|l| l as i32),
            leader_epoch: g.leader_epoch().unwrap_or(-1),
            replicas: voters,
            isr,
        }
    }
}
