//! Users' SCRAM credentials, kept salted in the metadata Raft group (never a password):
//! `scram/<MECHANISM>/<user>` -> JSON [`ScramCredential`] (salt, stored key, server key,
//! iterations), as Kafka keeps them in its metadata log. Every broker reads them back
//! after each metadata change, so a user created through any broker can log in on all.
//!
//! Rules (Kafka's AlterUserScramCredentials):
//! - Iterations between the mechanism's minimum (4096) and maximum (16384), else
//!   UNACCEPTABLE_CREDENTIAL; an empty user name or salt is UNACCEPTABLE_CREDENTIAL.
//! - A user named twice in one request (deleted and upserted, or twice for the same
//!   mechanism) is DUPLICATE_RESOURCE for all of its changes.
//! - Deleting a credential that does not exist is RESOURCE_NOT_FOUND.
//! - Unknown mechanism: UNSUPPORTED_SASL_MECHANISM.

use std::collections::BTreeMap;
use std::sync::RwLock;

use bytes::Bytes;
use phxq_replication::StoreGroup;

use super::scram::{ScramCredential, ScramMechanism};

pub const PREFIX: &str = "scram/";

pub fn key(mechanism: ScramMechanism, user: &str) -> Bytes {
    Bytes::from(format!("{PREFIX}{}/{user}", mechanism.name()))
}

/// Every user's credentials, as the metadata group holds them.
#[derive(Default)]
pub struct Credentials {
    /// (mechanism name, user) -> credential.
    by_user: RwLock<BTreeMap<(String, String), ScramCredential>>,
}

impl Credentials {
    pub fn load(metadata: &StoreGroup) -> anyhow::Result<Credentials> {
        let c = Credentials::default();
        c.reload(metadata)?;
        Ok(c)
    }

    /// Re-reads every credential; on a read error the previous set stays.
    pub fn reload(&self, metadata: &StoreGroup) -> anyhow::Result<()> {
        let rows = metadata
            .kv_scan(PREFIX.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot read the SCRAM credentials: {e}"))?;
        let mut all = BTreeMap::new();
        for (k, v) in rows {
            let key = String::from_utf8_lossy(&k[PREFIX.len()..]).into_owned();
            let (mech, user) = key
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("corrupt SCRAM credential key {key:?}"))?;
            let cred: ScramCredential = serde_json::from_slice(&v)
                .map_err(|e| anyhow::anyhow!("corrupt SCRAM credential of {user:?}: {e}"))?;
            all.insert((mech.to_string(), user.to_string()), cred);
        }
        *self.by_user.write().unwrap() = all;
        Ok(())
    }

    pub fn get(&self, mechanism: ScramMechanism, user: &str) -> Option<ScramCredential> {
        self.by_user
            .read()
            .unwrap()
            .get(&(mechanism.name().to_string(), user.to_string()))
            .cloned()
    }

    /// Every credential of `user` (any mechanism), for SASL/PLAIN.
    pub fn of_user(&self, user: &str) -> Vec<ScramCredential> {
        self.by_user
            .read()
            .unwrap()
            .iter()
            .filter(|((_, u), _)| u == user)
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// user -> [(mechanism, iterations)].
    pub fn describe(&self) -> BTreeMap<String, Vec<(ScramMechanism, u32)>> {
        let mut out: BTreeMap<String, Vec<(ScramMechanism, u32)>> = BTreeMap::new();
        for ((mech, user), c) in self.by_user.read().unwrap().iter() {
            if let Some(m) = ScramMechanism::from_name(mech) {
                out.entry(user.clone()).or_default().push((m, c.iterations));
            }
        }
        out
    }

    pub fn exists(&self, mechanism: ScramMechanism, user: &str) -> bool {
        self.get(mechanism, user).is_some()
    }

    /// A credential as stored.
    pub fn encode(c: &ScramCredential) -> Bytes {
        Bytes::from(serde_json::to_vec(c).expect("a credential serializes"))
    }
}
