//! One member of a classic consumer group: identity, timeouts, the protocols it offered in
//! its last JoinGroup, its assignment in the current generation, and the JoinGroup or
//! SyncGroup request of its that is parked waiting for the rebalance.

use bytes::Bytes;

/// Identifies a parked request; the coordinator maps it to the connection waiting for it.
pub type Token = u64;

#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    /// `/ip` of the connection that last joined, as Kafka reports it.
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// The member's assignment in the current generation (empty until SyncGroup).
    pub assignment: Bytes,
    pub join_waiter: Option<Token>,
    pub sync_waiter: Option<Token>,
    /// Time (ms) of the last heartbeat, join, sync or commit.
    pub last_heartbeat: u64,
    /// Joined in the current rebalance and not yet given a generation.
    pub is_new: bool,
}

impl Member {
    pub fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    pub fn is_static(&self) -> bool {
        self.instance_id.is_some()
    }

    /// Same protocols with the same metadata, in the same order: rejoining with them
    /// changes nothing.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The metadata the member gave for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.metadata(protocol).is_some()
    }

    /// Whether the member has proven it is alive recently enough at `now`. Members with a
    /// parked JoinGroup or SyncGroup are alive by definition (their connection is busy
    /// waiting), except new members parked for longer than `new_member_timeout_ms`.
    pub fn alive(&self, now: u64, new_member_timeout_ms: u64) -> bool {
        if self.is_new {
            return now < self.last_heartbeat + new_member_timeout_ms;
        }
        if self.join_waiter.is_some() || self.sync_waiter.is_some() {
            return true;
        }
        now < self.last_heartbeat + self.session_timeout_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        Member {
            id: "m".into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 1000,
            rebalance_timeout_ms: 5000,
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from_static(b"r")),
                ("roundrobin".into(), Bytes::from_static(b"rr")),
            ],
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            last_heartbeat: 100,
            is_new: false,
        }
    }

    #[test]
    fn liveness_follows_session_timeout_unless_parked() {
        let mut m = member();
        assert!(m.alive(1099, 300_000));
        assert!(!m.alive(1100, 300_000));
        m.sync_waiter = Some(1);
        assert!(m.alive(10_000, 300_000));
        m.sync_waiter = None;
        m.is_new = true;
        m.join_waiter = Some(2);
        assert!(m.alive(10_000, 300_000));
        assert!(!m.alive(400_000, 300_000));
    }

    #[test]
    fn protocols() {
        let m = member();
        assert_eq!(m.metadata("roundrobin").unwrap().as_ref(), b"rr");
        assert!(!m.supports("sticky"));
        assert!(m.matches(&m.protocols.clone()));
        assert!(!m.matches(&m.protocols[..1]));
    }
}
