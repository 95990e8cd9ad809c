//! Kafka's ACL vocabulary: resource types, pattern types, operations and permission types
//! with their wire codes and names, an ACL binding (a resource pattern and an access
//! control entry) and the filters DescribeAcls and DeleteAcls match bindings with.
//!
//! Rules (Kafka's `AclBindingFilter`):
//! - A filter field that is ANY (or a `None` name, principal or host) matches everything.
//! - Pattern type MATCH matches what would apply to the named resource: a LITERAL binding
//!   of that name, the LITERAL wildcard `*`, and every PREFIXED binding whose prefix the
//!   name starts with. MATCH needs a resource name.
//! - A binding must be concrete: no ANY, MATCH or UNKNOWN anywhere; a PREFIXED binding
//!   has a non-empty prefix; a CLUSTER binding is named `kafka-cluster`.

use serde::{Deserialize, Serialize};

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A LITERAL resource name that matches every resource of its type.
pub const WILDCARD: &str = "*";
/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:expr, $text:expr;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The value of a wire code; `None` for a code Kafka does not define.
            pub fn from_code(code: i8) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Kafka's name (`PREFIXED`, `DESCRIBE_CONFIGS`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// Parses a name as Kafka's tools take it, in any case, with or without `-`
            /// or `_` between words (`IdempotentWrite`, `idempotent-write`).
            pub fn parse(s: &str) -> Option<$name> {
                let squash = |s: &str| s.trim().to_ascii_uppercase().replace(['-', '_'], "");
                let s = squash(s);
                $name::ALL.iter().copied().find(|v| squash(v.name()) == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// `PatternType`.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// `AclOperation`.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

kafka_enum!(
    /// `AclPermissionType`.
    Permission {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// A concrete ACL: who (principal, host) may or may not do what (operation) to which
/// resources (type, name, pattern).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub resource_name: String,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: Permission,
}

impl AclBinding {
    /// Why this binding cannot be stored, if it cannot (Kafka answers INVALID_REQUEST).
    pub fn invalid(&self) -> Option<String> {
        use AclOperation as Op;
        if matches!(
            self.resource_type,
            ResourceType::Any | ResourceType::Unknown
        ) {
            return Some(format!(
                "resource type {} is not concrete",
                self.resource_type
            ));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Some(format!(
                "pattern type {} is not LITERAL or PREFIXED",
                self.pattern_type
            ));
        }
        if matches!(self.operation, Op::Any | Op::Unknown) {
            return Some(format!("operation {} is not concrete", self.operation));
        }
        if matches!(self.permission, Permission::Any | Permission::Unknown) {
            return Some(format!(
                "permission {} is not ALLOW or DENY",
                self.permission
            ));
        }
        if self.resource_name.is_empty() {
            return Some("the resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Some(format!(
                "the cluster resource is named {CLUSTER_NAME:?}, not {:?}",
                self.resource_name
            ));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Some(format!(
                    "principal {:?} is not of the form Type:name (User:alice)",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Some("the host is empty (use * for any host)".into());
        }
        None
    }
}

/// What DescribeAcls and DeleteAcls select bindings by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub resource_name: Option<String>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: Permission,
}

impl AclFilter {
    /// A filter that matches every binding.
    #[cfg(test)]
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            pattern_type: PatternType::Any,
            resource_name: None,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: Permission::Any,
        }
    }

    /// Why this filter is not usable, if it is not (Kafka answers INVALID_REQUEST).
    pub fn invalid(&self) -> Option<String> {
        if self.resource_type == ResourceType::Unknown
            || self.pattern_type == PatternType::Unknown
            || self.operation == AclOperation::Unknown
            || self.permission == Permission::Unknown
        {
            return Some("the filter has an UNKNOWN field".into());
        }
        if self.pattern_type == PatternType::Match && self.resource_name.is_none() {
            return Some("pattern type MATCH needs a resource name".into());
        }
        None
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        let name_ok = match (self.pattern_type, &self.resource_name) {
            (PatternType::Match, Some(name)) => match b.pattern_type {
                PatternType::Literal => b.resource_name == *name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
                _ => false,
            },
            (pattern, name) => {
                (pattern == PatternType::Any || pattern == b.pattern_type)
                    && name.as_ref().is_none_or(|n| *n == b.resource_name)
            }
        };
        name_ok
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission == Permission::Any || self.permission == b.permission)
    }
}
