//! The ACL bindings of the cluster, kept in the metadata Raft group as Kafka keeps them in
//! its metadata log, and the authorizer built from them.
//!
//! Each binding is one key, `acl/` followed by the binding as a JSON array (resource type,
//! pattern type, name, principal, host, operation, permission), with an empty value: a
//! create or a delete is one `Put` of whole keys, so concurrent changes through different
//! brokers never overwrite each other. Every broker re-reads the bindings after each
//! metadata change (and after its own changes), so an ACL created anywhere applies
//! everywhere.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use phxq_replication::StoreGroup;

use super::authorizer::{AclSet, Authorizer};
use super::model::{AclBinding, AclOperation, PatternType, Permission, ResourceType};
use crate::security::config::SecurityConfig;

pub const PREFIX: &str = "acl/";

type KeyFields = (String, String, String, String, String, String, String);

/// The metadata key of `b`.
pub fn key(b: &AclBinding) -> Bytes {
    let fields: KeyFields = (
        b.resource_type.name().into(),
        b.pattern_type.name().into(),
        b.resource_name.clone(),
        b.principal.clone(),
        b.host.clone(),
        b.operation.name().into(),
        b.permission.name().into(),
    );
    let json = serde_json::to_string(&fields).expect("strings serialize");
    Bytes::from(format!("{PREFIX}{json}"))
}

/// The binding a metadata key holds.
pub fn parse_key(k: &[u8]) -> anyhow::Result<AclBinding> {
    let text = std::str::from_utf8(k.strip_prefix(PREFIX.as_bytes()).unwrap_or(k))?;
    let (rt, pt, name, principal, host, op, perm): KeyFields = serde_json::from_str(text)?;
    let bad = |what: &str, v: &str| anyhow::anyhow!("unknown {what} {v:?} in ACL key {text}");
    Ok(AclBinding {
        resource_type: ResourceType::parse(&rt).ok_or_else(|| bad("resource type", &rt))?,
        pattern_type: PatternType::parse(&pt).ok_or_else(|| bad("pattern type", &pt))?,
        resource_name: name,
        principal,
        host,
        operation: AclOperation::parse(&op).ok_or_else(|| bad("operation", &op))?,
        permission: Permission::parse(&perm).ok_or_else(|| bad("permission", &perm))?,
    })
}

/// The cluster's ACLs and this broker's authorizer settings.
pub struct Acls {
    /// Whether an authorizer is configured (`[security] authorizer = "acl"`); without
    /// one every request is allowed and the ACL APIs answer SECURITY_DISABLED.
    pub enabled: bool,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    current: RwLock<Arc<Authorizer>>,
}

impl Acls {
    pub fn load(metadata: &StoreGroup, config: &SecurityConfig) -> anyhow::Result<Acls> {
        let acls = Acls {
            enabled: config.acl_authorizer(),
            super_users: config.super_users.clone(),
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            current: RwLock::new(Arc::new(Authorizer::default())),
        };
        acls.reload(metadata)?;
        Ok(acls)
    }

    /// Re-reads every binding; on a read error the previous ones stay.
    pub fn reload(&self, metadata: &StoreGroup) -> anyhow::Result<()> {
        let rows = metadata
            .kv_scan(PREFIX.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot read the ACLs: {e}"))?;
        let bindings = rows
            .iter()
            .map(|(k, _)| parse_key(k))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let authorizer = Authorizer::new(
            AclSet::new(bindings),
            &self.super_users,
            self.allow_if_no_acl,
        );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(authorizer);
        Ok(())
    }

    /// The authorizer of the bindings read last; `None` when no authorizer is configured.
    pub fn authorizer(&self) -> Option<Arc<Authorizer>> {
        self.enabled.then(|| {
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    /// Every binding (whether or not the authorizer is on).
    pub fn bindings(&self) -> Vec<AclBinding> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.acls.bindings().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_any_name() {
        let b = AclBinding {
            resource_type: ResourceType::Group,
            pattern_type: PatternType::Prefixed,
            resource_name: "a/\"b\"\u{e4}".into(),
            principal: "User:CN=x,O=y".into(),
            host: "*".into(),
            operation: AclOperation::DescribeConfigs,
            permission: Permission::Deny,
        };
        let k = key(&b);
        assert!(k.starts_with(PREFIX.as_bytes()));
        assert_eq!(parse_key(&k).unwrap(), b);
    }

    #[test]
    fn a_corrupt_key_is_an_error_not_a_skip() {
        assert!(parse_key(b"acl/[\"TOPIC\"]").is_err());
        assert!(
            parse_key(b"acl/[\"NOPE\",\"LITERAL\",\"t\",\"User:a\",\"*\",\"READ\",\"ALLOW\"]")
                .is_err()
        );
    }
}
