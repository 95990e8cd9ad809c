//! The ACL authorizer: whether a principal connecting from a host may perform an operation
//! on a resource, from the stored ACL bindings. Pure: the bindings come in, a decision
//! comes out; `store.rs` keeps the bindings and handlers ask through `authz.rs`.
//!
//! Rules (Kafka's `StandardAuthorizer`):
//! - A super user (`super_users`) may do everything.
//! - The ACLs that apply to a resource are the LITERAL ones of its name, the LITERAL
//!   wildcard `*` of its type, and the PREFIXED ones whose prefix its name starts with.
//!   An entry applies to a request when its principal is the request's or `User:*`, and
//!   its host is the client's address or `*`.
//! - DENY wins: a DENY entry for the operation (or for ALL) refuses, whatever allows.
//! - Otherwise an ALLOW entry for the operation, or for ALL, allows. ALLOW of READ, WRITE,
//!   DELETE or ALTER also allows DESCRIBE; ALLOW of ALTER_CONFIGS allows DESCRIBE_CONFIGS.
//!   (DENY implies nothing: denying READ leaves DESCRIBE as it was.)
//! - No applicable entry at all for the resource (for any principal): allowed only with
//!   `allow_everyone_if_no_acl_found`; otherwise refused.
//! - "Any resource of a type" (InitProducerId for an idempotent producer needs WRITE on
//!   some topic): allowed when some ALLOW binding for the principal, host and operation is
//!   not covered by a DENY (a DENY of the wildcard, of a prefix that covers it, or of the
//!   same literal).

use std::collections::{BTreeSet, HashMap};

use super::model::{
    AclBinding, AclOperation as Op, PatternType, Permission, ResourceType, WILDCARD,
    WILDCARD_PRINCIPAL,
};

/// The part of a binding that says who and what, kept under its resource pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    principal: String,
    host: String,
    operation: Op,
    permission: Permission,
}

impl Entry {
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// Every binding, indexed by resource pattern.
#[derive(Default, Debug)]
pub struct AclSet {
    literal: HashMap<(ResourceType, String), Vec<Entry>>,
    prefixed: HashMap<(ResourceType, String), Vec<Entry>>,
    all: BTreeSet<AclBinding>,
}

impl AclSet {
    pub fn new(bindings: impl IntoIterator<Item = AclBinding>) -> AclSet {
        let mut set = AclSet::default();
        for b in bindings {
            if !set.all.insert(b.clone()) {
                continue;
            }
            let entry = Entry {
                principal: b.principal,
                host: b.host,
                operation: b.operation,
                permission: b.permission,
            };
            let index = match b.pattern_type {
                PatternType::Prefixed => &mut set.prefixed,
                _ => &mut set.literal,
            };
            index
                .entry((b.resource_type, b.resource_name))
                .or_default()
                .push(entry);
        }
        set
    }

    pub fn bindings(&self) -> &BTreeSet<AclBinding> {
        &self.all
    }

    /// The entries that apply to resource `name` of type `rt`.
    fn applicable<'a>(
        &'a self,
        rt: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let literal = [name, WILDCARD]
            .into_iter()
            .enumerate()
            // A resource literally named "*" is not listed twice.
            .filter(move |(i, n)| *i == 0 || *n != name)
            .filter_map(move |(_, n)| self.literal.get(&(rt, n.to_string())));
        let prefixes = (!self.prefixed.is_empty())
            .then(|| {
                name.char_indices()
                    .map(|(i, c)| &name[..i + c.len_utf8()])
                    .filter_map(move |p| self.prefixed.get(&(rt, p.to_string())))
            })
            .into_iter()
            .flatten();
        literal.chain(prefixes).flatten()
    }
}

/// Whether `granted` (an ALLOW entry's operation) allows `wanted`.
fn allow_covers(granted: Op, wanted: Op) -> bool {
    granted == wanted
        || granted == Op::All
        || (wanted == Op::Describe
            && matches!(granted, Op::Read | Op::Write | Op::Delete | Op::Alter))
        || (wanted == Op::DescribeConfigs && granted == Op::AlterConfigs)
}

/// Whether `denied` (a DENY entry's operation) refuses `wanted`.
fn deny_covers(denied: Op, wanted: Op) -> bool {
    denied == wanted || denied == Op::All
}

/// The operations Kafka reports as authorized for a resource type (the bits of
/// `*_authorized_operations`).
pub fn operations_of(rt: ResourceType) -> &'static [Op] {
    match rt {
        ResourceType::Topic => &[
            Op::Read,
            Op::Write,
            Op::Create,
            Op::Describe,
            Op::Delete,
            Op::Alter,
            Op::DescribeConfigs,
            Op::AlterConfigs,
        ],
        ResourceType::Group => &[
            Op::Read,
            Op::Describe,
            Op::Delete,
            Op::DescribeConfigs,
            Op::AlterConfigs,
        ],
        ResourceType::Cluster => &[
            Op::Create,
            Op::ClusterAction,
            Op::DescribeConfigs,
            Op::AlterConfigs,
            Op::IdempotentWrite,
            Op::Alter,
            Op::Describe,
        ],
        ResourceType::TransactionalId => &[Op::Describe, Op::Write, Op::TwoPhaseCommit],
        _ => &[],
    }
}

/// Decides requests against an [`AclSet`].
#[derive(Debug, Default)]
pub struct Authorizer {
    pub acls: AclSet,
    super_users: BTreeSet<String>,
    allow_if_no_acl: bool,
}

impl Authorizer {
    pub fn new(acls: AclSet, super_users: &[String], allow_if_no_acl: bool) -> Authorizer {
        Authorizer {
            acls,
            super_users: super_users.iter().cloned().collect(),
            allow_if_no_acl,
        }
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// May `principal` from `host` perform `op` on resource `name` of type `rt`?
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: Op,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let mut any = false;
        let mut allowed = false;
        for e in self.acls.applicable(rt, name) {
            any = true;
            if !e.applies_to(principal, host) {
                continue;
            }
            match e.permission {
                Permission::Deny if deny_covers(e.operation, op) => return false,
                Permission::Allow if allow_covers(e.operation, op) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any && self.allow_if_no_acl)
    }

    /// May `principal` from `host` perform `op` on at least one resource of type `rt`?
    pub fn authorize_any(&self, principal: &str, host: &str, op: Op, rt: ResourceType) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let mine = |b: &&AclBinding| {
            b.resource_type == rt
                && (b.principal == principal || b.principal == WILDCARD_PRINCIPAL)
                && (b.host == host || b.host == WILDCARD)
        };
        let bindings: Vec<&AclBinding> = self.acls.all.iter().filter(mine).collect();
        let denies: Vec<&&AclBinding> = bindings
            .iter()
            .filter(|b| b.permission == Permission::Deny && deny_covers(b.operation, op))
            .collect();
        let denied = |b: &AclBinding| {
            denies.iter().any(|d| match d.pattern_type {
                PatternType::Literal => {
                    d.resource_name == WILDCARD
                        || (b.pattern_type == PatternType::Literal
                            && d.resource_name == b.resource_name)
                }
                PatternType::Prefixed => b.resource_name.starts_with(&d.resource_name),
                _ => false,
            })
        };
        let allowed = bindings.iter().any(|b| {
            b.permission == Permission::Allow && allow_covers(b.operation, op) && !denied(b)
        });
        allowed
            || (self.allow_if_no_acl
                && !self.acls.all.iter().any(|b| b.resource_type == rt)
                && denies.is_empty())
    }

    /// The `*_authorized_operations` bit field of a resource: bit `code` set for each
    /// operation of its type that is allowed.
    pub fn authorized_operations(
        &self,
        principal: &str,
        host: &str,
        rt: ResourceType,
        name: &str,
    ) -> i32 {
        operations_of(rt)
            .iter()
            .filter(|op| self.authorize(principal, host, **op, rt, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}
