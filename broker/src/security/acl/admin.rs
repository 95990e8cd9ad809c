//! `phxq acl add|list|remove`: ACLs over the Kafka protocol (CreateAcls, DescribeAcls,
//! DeleteAcls), with `kafka-acls`' option names, so it works against Kafka too.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

use super::model::{AclOperation, PatternType, Permission, ResourceType, CLUSTER_NAME, WILDCARD};
use crate::admin::{check, s, table};
use crate::kafka_client::KafkaClient;

/// Which resource an ACL command is about (at most one of them).
#[derive(clap::Args, Debug, Default)]
pub struct ResourceArgs {
    /// A topic (`*` for every topic).
    #[arg(long)]
    topic: Option<String>,
    /// A consumer or share group (`*` for every group).
    #[arg(long)]
    group: Option<String>,
    /// A transactional id (`*` for every one).
    #[arg(long)]
    transactional_id: Option<String>,
    /// The cluster (cluster-wide operations: CREATE topics, ALTER ACLs, ...).
    #[arg(long)]
    cluster: bool,
    /// LITERAL (the default: the name, or `*` for all) or PREFIXED (every name that
    /// starts with it); for list and remove also ANY or MATCH (what applies to the name).
    #[arg(long, value_name = "TYPE")]
    resource_pattern_type: Option<String>,
}

impl ResourceArgs {
    /// (type, name) of the resource named, if one is.
    fn resource(&self) -> anyhow::Result<Option<(ResourceType, String)>> {
        let mut named = Vec::new();
        if let Some(t) = &self.topic {
            named.push((ResourceType::Topic, t.clone()));
        }
        if let Some(g) = &self.group {
            named.push((ResourceType::Group, g.clone()));
        }
        if let Some(t) = &self.transactional_id {
            named.push((ResourceType::TransactionalId, t.clone()));
        }
        if self.cluster {
            named.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        anyhow::ensure!(
            named.len() <= 1,
            "name one resource: --topic, --group, --transactional-id or --cluster"
        );
        Ok(named.pop())
    }

    fn pattern(&self, default: PatternType) -> anyhow::Result<PatternType> {
        match &self.resource_pattern_type {
            None => Ok(default),
            Some(p) => PatternType::parse(p).ok_or_else(|| {
                anyhow::anyhow!("unknown pattern type {p:?}: LITERAL, PREFIXED, ANY or MATCH")
            }),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum AclCommand {
    /// Add ACLs: each principal gets each operation on the resource.
    Add {
        #[command(flatten)]
        resource: ResourceArgs,
        /// A principal to allow (`User:alice`, `User:*`); repeat for several.
        #[arg(long)]
        allow_principal: Vec<String>,
        /// A principal to deny; DENY wins over any ALLOW.
        #[arg(long)]
        deny_principal: Vec<String>,
        /// The client address the ACL applies to (`*`, the default: any).
        #[arg(long, default_value = WILDCARD)]
        host: String,
        /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
        /// AlterConfigs, IdempotentWrite or All; repeat for several.
        #[arg(long, required = true)]
        operation: Vec<String>,
    },
    /// List the ACLs (of one resource, or all).
    List {
        #[command(flatten)]
        resource: ResourceArgs,
        /// Only the ACLs of this principal.
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove the ACLs a filter selects, and print them.
    Remove {
        #[command(flatten)]
        resource: ResourceArgs,
        /// Only ALLOW ACLs of this principal (repeatable).
        #[arg(long)]
        allow_principal: Vec<String>,
        /// Only DENY ACLs of this principal (repeatable).
        #[arg(long)]
        deny_principal: Vec<String>,
        /// Only ACLs for this host.
        #[arg(long)]
        host: Option<String>,
        /// Only ACLs of these operations (repeatable).
        #[arg(long)]
        operation: Vec<String>,
    },
}

fn operation(name: &str) -> anyhow::Result<AclOperation> {
    AclOperation::parse(name).ok_or_else(|| anyhow::anyhow!("unknown operation {name:?}"))
}

/// One printed row: resource type, pattern type, name, principal, host, operation,
/// permission.
type Row = [String; 7];

fn print(mut rows: Vec<Row>, json: bool) -> anyhow::Result<String> {
    rows.sort();
    if json {
        let acls: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "resource_type": r[0], "pattern_type": r[1], "resource_name": r[2],
                    "principal": r[3], "host": r[4], "operation": r[5], "permission": r[6],
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&serde_json::json!({ "acls": acls }))? + "\n");
    }
    let mut t = vec![[
        "RESOURCE",
        "PATTERN",
        "NAME",
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
    ]
    .map(String::from)
    .to_vec()];
    t.extend(rows.into_iter().map(|r| r.to_vec()));
    Ok(table(&t))
}

fn name_of<T: Copy>(code: i8, parse: fn(i8) -> Option<T>, show: fn(T) -> &'static str) -> String {
    parse(code).map_or_else(|| format!("UNKNOWN({code})"), |v| show(v).to_string())
}

pub fn run(bootstrap: &str, cmd: &AclCommand) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    match cmd {
        AclCommand::Add {
            resource,
            allow_principal,
            deny_principal,
            host,
            operation: ops,
        } => {
            let (rt, name) = resource.resource()?.ok_or_else(|| {
                anyhow::anyhow!(
                    "name the resource: --topic, --group, --transactional-id or --cluster"
                )
            })?;
            let pattern = resource.pattern(PatternType::Literal)?;
            anyhow::ensure!(
                matches!(pattern, PatternType::Literal | PatternType::Prefixed),
                "an ACL's pattern type is LITERAL or PREFIXED"
            );
            anyhow::ensure!(
                !allow_principal.is_empty() || !deny_principal.is_empty(),
                "name a principal: --allow-principal or --deny-principal"
            );
            let ops = ops
                .iter()
                .map(|o| operation(o))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let who = allow_principal
                .iter()
                .map(|p| (p, Permission::Allow))
                .chain(deny_principal.iter().map(|p| (p, Permission::Deny)));
            let mut creations = Vec::new();
            for (principal, permission) in who {
                for op in &ops {
                    creations.push(
                        AclCreation::default()
                            .with_resource_type(rt.code())
                            .with_resource_name(s(&name))
                            .with_resource_pattern_type(pattern.code())
                            .with_principal(s(principal))
                            .with_host(s(host))
                            .with_operation(op.code())
                            .with_permission_type(permission.code()),
                    );
                }
            }
            let n = creations.len();
            let r = c.send(&CreateAclsRequest::default().with_creations(creations), 2)?;
            for res in &r.results {
                check(res.error_code, "creating ACLs").map_err(|e| {
                    anyhow::anyhow!("{e}: {}", res.error_message.as_deref().unwrap_or(""))
                })?;
            }
            Ok(format!("{n} ACL(s) added to {rt} {pattern} {name}\n"))
        }
        AclCommand::List {
            resource,
            principal,
            json,
        } => {
            let named = resource.resource()?;
            let (rt, name) = match &named {
                Some((rt, name)) => (*rt, Some(name.clone())),
                None => (ResourceType::Any, None),
            };
            let default = if named.is_some() {
                PatternType::Literal
            } else {
                PatternType::Any
            };
            let r = c.send(
                &DescribeAclsRequest::default()
                    .with_resource_type_filter(rt.code())
                    .with_resource_name_filter(name.as_deref().map(s))
                    .with_pattern_type_filter(resource.pattern(default)?.code())
                    .with_principal_filter(principal.as_deref().map(s))
                    .with_host_filter(None)
                    .with_operation(AclOperation::Any.code())
                    .with_permission_type(Permission::Any.code()),
                2,
            )?;
            check(r.error_code, "describing ACLs").map_err(|e| {
                anyhow::anyhow!("{e}: {}", r.error_message.as_deref().unwrap_or(""))
            })?;
            let mut rows = Vec::new();
            for res in &r.resources {
                for a in &res.acls {
                    rows.push([
                        name_of(
                            res.resource_type,
                            ResourceType::from_code,
                            ResourceType::name,
                        ),
                        name_of(res.pattern_type, PatternType::from_code, PatternType::name),
                        res.resource_name.to_string(),
                        a.principal.to_string(),
                        a.host.to_string(),
                        name_of(a.operation, AclOperation::from_code, AclOperation::name),
                        name_of(a.permission_type, Permission::from_code, Permission::name),
                    ]);
                }
            }
            print(rows, *json)
        }
        AclCommand::Remove {
            resource,
            allow_principal,
            deny_principal,
            host,
            operation: ops,
        } => {
            let named = resource.resource()?;
            anyhow::ensure!(
                named.is_some() || !allow_principal.is_empty() || !deny_principal.is_empty(),
                "name a resource or a principal (removing every ACL takes `--topic '*' \
                 --resource-pattern-type any` and the like, per resource type)"
            );
            let (rt, name) = match &named {
                Some((rt, name)) => (*rt, Some(name.clone())),
                None => (ResourceType::Any, None),
            };
            let default = if named.is_some() {
                PatternType::Literal
            } else {
                PatternType::Any
            };
            let pattern = resource.pattern(default)?;
            let ops: Vec<AclOperation> = if ops.is_empty() {
                vec![AclOperation::Any]
            } else {
                ops.iter()
                    .map(|o| operation(o))
                    .collect::<anyhow::Result<_>>()?
            };
            let who: Vec<(Option<&String>, Permission)> =
                if allow_principal.is_empty() && deny_principal.is_empty() {
                    vec![(None, Permission::Any)]
                } else {
                    allow_principal
                        .iter()
                        .map(|p| (Some(p), Permission::Allow))
                        .chain(deny_principal.iter().map(|p| (Some(p), Permission::Deny)))
                        .collect()
                };
            let mut filters = Vec::new();
            for (principal, permission) in &who {
                for op in &ops {
                    filters.push(
                        DeleteAclsFilter::default()
                            .with_resource_type_filter(rt.code())
                            .with_resource_name_filter(name.as_deref().map(s))
                            .with_pattern_type_filter(pattern.code())
                            .with_principal_filter(principal.map(|p| s(p)))
                            .with_host_filter(host.as_deref().map(s))
                            .with_operation(op.code())
                            .with_permission_type(permission.code()),
                    );
                }
            }
            let r = c.send(&DeleteAclsRequest::default().with_filters(filters), 2)?;
            let mut rows = Vec::new();
            for res in &r.filter_results {
                check(res.error_code, "removing ACLs").map_err(|e| {
                    anyhow::anyhow!("{e}: {}", res.error_message.as_deref().unwrap_or(""))
                })?;
                for a in &res.matching_acls {
                    rows.push([
                        name_of(a.resource_type, ResourceType::from_code, ResourceType::name),
                        name_of(a.pattern_type, PatternType::from_code, PatternType::name),
                        a.resource_name.to_string(),
                        a.principal.to_string(),
                        a.host.to_string(),
                        name_of(a.operation, AclOperation::from_code, AclOperation::name),
                        name_of(a.permission_type, Permission::from_code, Permission::name),
                    ]);
                }
            }
            rows.sort();
            rows.dedup();
            let n = rows.len();
            Ok(format!("{n} ACL(s) removed\n{}", print(rows, false)?))
        }
    }
}
