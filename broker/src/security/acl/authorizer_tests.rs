//! The authorizer's and the filters' rules, one test each.

use super::authorizer::{AclSet, Authorizer};
use super::model::{
    AclBinding, AclFilter, AclOperation as Op, PatternType, Permission, ResourceType as Rt,
};

fn acl(rt: Rt, pt: PatternType, name: &str, who: &str, op: Op, perm: Permission) -> AclBinding {
    AclBinding {
        resource_type: rt,
        pattern_type: pt,
        resource_name: name.into(),
        principal: who.into(),
        host: "*".into(),
        operation: op,
        permission: perm,
    }
}

fn allow(rt: Rt, name: &str, who: &str, op: Op) -> AclBinding {
    acl(rt, PatternType::Literal, name, who, op, Permission::Allow)
}

fn authorizer(bindings: Vec<AclBinding>) -> Authorizer {
    Authorizer::new(AclSet::new(bindings), &["User:admin".into()], false)
}

const ALICE: &str = "User:alice";
const HOST: &str = "10.0.0.1";

#[test]
fn no_acls_refuses_unless_allow_everyone() {
    let a = authorizer(vec![]);
    assert!(!a.authorize(ALICE, HOST, Op::Read, Rt::Topic, "t"));
    let open = Authorizer::new(AclSet::default(), &[], true);
    assert!(open.authorize(ALICE, HOST, Op::Read, Rt::Topic, "t"));
}

#[test]
fn allow_everyone_does_not_apply_once_the_resource_has_acls() {
    let set = AclSet::new(vec![allow(Rt::Topic, "t", "User:bob", Op::Read)]);
    let a = Authorizer::new(set, &[], true);
    assert!(!a.authorize(ALICE, HOST, Op::Read, Rt::Topic, "t"));
    assert!(a.authorize(ALICE, HOST, Op::Read, Rt::Topic, "other"));
}

#[test]
fn super_users_may_do_everything() {
    let a = authorizer(vec![acl(
        Rt::Topic,
        PatternType::Literal,
        "*",
        "User:*",
        Op::All,
        Permission::Deny,
    )]);
    assert!(a.authorize("User:admin", HOST, Op::Write, Rt::Topic, "t"));
    assert!(!a.authorize(ALICE, HOST, Op::Write, Rt::Topic, "t"));
}

#[test]
fn literal_allow_is_for_that_name_and_operation() {
    let a = authorizer(vec![allow(Rt::Topic, "orders", ALICE, Op::Write)]);
    assert!(a.authorize(ALICE, HOST, Op::Write, Rt::Topic, "orders"));
    assert!(!a.authorize(ALICE, HOST, Op::Read, Rt::Topic, "orders"));
    assert!(!a.authorize(ALICE, HOST, Op::Write, Rt::Topic, "orders2"));
    assert!(!a.authorize("User:bob", HOST, Op::Write, Rt::Topic, "orders"));
    // Same name, other resource type.
    assert!(!a.authorize(ALICE, HOST, Op::Write, Rt::Group, "orders"));
}

#[test]
fn deny_wins_over_allow() {
    let a = authorizer(vec![
        allow(Rt::Topic, "*", ALICE, Op::All),
        acl(
            Rt::Topic,
            PatternType::Literal,
            "secret",
            ALICE,
            Op::Read,
            Permission::Deny,
        ),
    ]);
    assert!(a.authorize(ALICE, HOST, Op::Read, Rt::Topic, "public"));
    assert!(!a.authorize(ALICE, HOST, Op::Read, Rt::Topic, "secret"));
    // Denying READ implies nothing about DESCRIBE or WRITE.
    assert!(a.authorize(ALICE, HOST, Op::Describe, Rt::Topic, "secret"));
    assert!(a.authorize(ALICE, HOST, Op::Write, Rt::Topic, "secret"));
}

#[test]
fn deny_of_all_refuses_every_operation() {
    let a = authorizer(vec![
        allow(Rt::Group, "g", ALICE, Op::Read),
        acl(
            Rt::Group,
            PatternType::Prefixed,
            "g",
            "User:*",
            Op::All,
            Permission::Deny,
        ),
    ]);
    assert!(!a.authorize(ALICE, HOST, Op::Read, Rt::Group, "g"));
    assert!(!a.authorize(ALICE, HOST, Op::Describe, Rt::Group, "g"));
}

#[test]
fn prefixed_acls_cover_names_that_start_with_the_prefix() {
    let a = authorizer(vec![acl(
        Rt::Topic,
        PatternType::Prefixed,
        "payments.",
        ALICE,
        Op::Write,
        Permission::Allow,
    )]);
    assert!(a.authorize(ALICE, HOST, Op::Write, Rt::Topic, "payments.eu"));
    assert!(a.authorize(ALICE, HOST, Op::Write, Rt::Topic, "payments."));
    assert!(!a.authorize(ALICE, HOST, Op::Write, Rt::Topic, "payments"));
    assert!(!a.authorize(ALICE, HOST, Op::Write, Rt::Topic, "xpayments.eu"));
}

#[test]
fn prefixes_work_on_multibyte_names() {
    let a = authorizer(vec![acl(
        Rt::Group,
        PatternType::Prefixed,
        "zähler",
        ALICE,
        Op::Read,
        Permission::Allow,
    )]);
    assert!(a.authorize(ALICE, HOST, Op::Read, Rt::Group, "zähler-1"));
    assert!(!a.authorize(ALICE, HOST, Op::Read, Rt::Group, "zä"));
}

#[test]
fn wildcards_match_every_name_principal_and_host() {
    let a = authorizer(vec![allow(Rt::Topic, "*", "User:*", Op::Read)]);
    assert!(a.authorize(ALICE, HOST, Op::Read, Rt::Topic, "anything"));
    assert!(a.authorize("User:bob", "::1", Op::Read, Rt::Topic, "else"));
}

#[test]
fn host_must_match_unless_wildcard() {
    let mut b = allow(Rt::Topic, "t", ALICE, Op::Read);
    b.host = "10.0.0.1".into();
    let a = authorizer(vec![b]);
    assert!(a.authorize(ALICE, "10.0.0.1", Op::Read, Rt::Topic, "t"));
    assert!(!a.authorize(ALICE, "10.0.0.2", Op::Read, Rt::Topic, "t"));
}

#[test]
fn read_write_delete_alter_imply_describe() {
    for op in [Op::Read, Op::Write, Op::Delete, Op::Alter, Op::All] {
        let a = authorizer(vec![allow(Rt::Topic, "t", ALICE, op)]);
        assert!(
            a.authorize(ALICE, HOST, Op::Describe, Rt::Topic, "t"),
            "{op}"
        );
    }
    let a = authorizer(vec![allow(Rt::Topic, "t", ALICE, Op::Create)]);
    assert!(!a.authorize(ALICE, HOST, Op::Describe, Rt::Topic, "t"));
    let a = authorizer(vec![allow(Rt::Topic, "t", ALICE, Op::AlterConfigs)]);
    assert!(a.authorize(ALICE, HOST, Op::DescribeConfigs, Rt::Topic, "t"));
    let a = authorizer(vec![allow(Rt::Topic, "t", ALICE, Op::Describe)]);
    assert!(!a.authorize(ALICE, HOST, Op::Read, Rt::Topic, "t"));
}

#[test]
fn any_resource_of_a_type() {
    let a = authorizer(vec![allow(Rt::Topic, "t", ALICE, Op::Write)]);
    assert!(a.authorize_any(ALICE, HOST, Op::Write, Rt::Topic));
    assert!(!a.authorize_any("User:bob", HOST, Op::Write, Rt::Topic));
    assert!(!a.authorize_any(ALICE, HOST, Op::Read, Rt::Topic));
    // The same literal denied: nothing left.
    let a = authorizer(vec![
        allow(Rt::Topic, "t", ALICE, Op::Write),
        acl(
            Rt::Topic,
            PatternType::Literal,
            "t",
            ALICE,
            Op::Write,
            Permission::Deny,
        ),
    ]);
    assert!(!a.authorize_any(ALICE, HOST, Op::Write, Rt::Topic));
    // A prefix denial covers literals and longer prefixes under it, not others.
    let a = authorizer(vec![
        allow(Rt::Topic, "app.t", ALICE, Op::Write),
        acl(
            Rt::Topic,
            PatternType::Prefixed,
            "app.",
            ALICE,
            Op::All,
            Permission::Deny,
        ),
    ]);
    assert!(!a.authorize_any(ALICE, HOST, Op::Write, Rt::Topic));
    let a = authorizer(vec![
        allow(Rt::Topic, "other", ALICE, Op::Write),
        acl(
            Rt::Topic,
            PatternType::Prefixed,
            "app.",
            ALICE,
            Op::All,
            Permission::Deny,
        ),
    ]);
    assert!(a.authorize_any(ALICE, HOST, Op::Write, Rt::Topic));
    // The wildcard denied: nothing.
    let a = authorizer(vec![
        allow(Rt::Topic, "other", ALICE, Op::Write),
        acl(
            Rt::Topic,
            PatternType::Literal,
            "*",
            "User:*",
            Op::Write,
            Permission::Deny,
        ),
    ]);
    assert!(!a.authorize_any(ALICE, HOST, Op::Write, Rt::Topic));
    assert!(a.authorize_any("User:admin", HOST, Op::Write, Rt::Topic));
}

#[test]
fn authorized_operations_are_a_bit_field_of_codes() {
    let a = authorizer(vec![allow(Rt::Topic, "t", ALICE, Op::Read)]);
    let bits = a.authorized_operations(ALICE, HOST, Rt::Topic, "t");
    assert_eq!(bits, (1 << Op::Read.code()) | (1 << Op::Describe.code()));
}

#[test]
fn duplicate_bindings_are_kept_once() {
    let b = allow(Rt::Topic, "t", ALICE, Op::Read);
    assert_eq!(AclSet::new(vec![b.clone(), b]).bindings().len(), 1);
}

#[test]
fn bindings_must_be_concrete() {
    let good = allow(Rt::Topic, "t", ALICE, Op::Read);
    assert_eq!(good.invalid(), None);
    let mut b = good.clone();
    b.resource_type = Rt::Any;
    assert!(b.invalid().is_some());
    let mut b = good.clone();
    b.pattern_type = PatternType::Match;
    assert!(b.invalid().is_some());
    let mut b = good.clone();
    b.operation = Op::Any;
    assert!(b.invalid().is_some());
    let mut b = good.clone();
    b.permission = Permission::Any;
    assert!(b.invalid().is_some());
    let mut b = good.clone();
    b.principal = "alice".into();
    assert!(b.invalid().is_some());
    let mut b = good.clone();
    b.resource_type = Rt::Cluster;
    assert!(
        b.invalid().is_some(),
        "a cluster binding must name kafka-cluster"
    );
    b.resource_name = "kafka-cluster".into();
    assert_eq!(b.invalid(), None);
}

#[test]
fn filters_select_by_every_field() {
    let b = acl(
        Rt::Topic,
        PatternType::Prefixed,
        "app.",
        ALICE,
        Op::Write,
        Permission::Allow,
    );
    assert!(AclFilter::any().matches(&b));
    let f = |edit: &dyn Fn(&mut AclFilter)| {
        let mut f = AclFilter::any();
        edit(&mut f);
        f.matches(&b)
    };
    assert!(f(&|f| f.resource_type = Rt::Topic));
    assert!(!f(&|f| f.resource_type = Rt::Group));
    assert!(f(&|f| f.pattern_type = PatternType::Prefixed));
    assert!(!f(&|f| f.pattern_type = PatternType::Literal));
    assert!(f(&|f| f.resource_name = Some("app.".into())));
    assert!(!f(&|f| f.resource_name = Some("app.x".into())));
    assert!(f(&|f| f.principal = Some(ALICE.into())));
    assert!(!f(&|f| f.principal = Some("User:bob".into())));
    assert!(f(&|f| f.host = Some("*".into())));
    assert!(!f(&|f| f.host = Some("10.0.0.1".into())));
    assert!(f(&|f| f.operation = Op::Write));
    assert!(!f(&|f| f.operation = Op::Read));
    assert!(f(&|f| f.permission = Permission::Allow));
    assert!(!f(&|f| f.permission = Permission::Deny));
}

#[test]
fn match_filters_find_what_applies_to_a_name() {
    let prefixed = acl(
        Rt::Topic,
        PatternType::Prefixed,
        "app.",
        ALICE,
        Op::Write,
        Permission::Allow,
    );
    let wildcard = allow(Rt::Topic, "*", ALICE, Op::Read);
    let literal = allow(Rt::Topic, "app.orders", ALICE, Op::Read);
    let other = allow(Rt::Topic, "billing", ALICE, Op::Read);
    let mut f = AclFilter::any();
    f.pattern_type = PatternType::Match;
    f.resource_name = Some("app.orders".into());
    assert!(f.matches(&prefixed));
    assert!(f.matches(&wildcard));
    assert!(f.matches(&literal));
    assert!(!f.matches(&other));
    let mut no_name = AclFilter::any();
    no_name.pattern_type = PatternType::Match;
    assert!(no_name.invalid().is_some());
}

#[test]
fn names_parse_as_the_tools_print_them() {
    assert_eq!(Op::parse("describe-configs"), Some(Op::DescribeConfigs));
    assert_eq!(Op::parse("IdempotentWrite"), Some(Op::IdempotentWrite));
    assert_eq!(Op::parse("Idempotent"), None);
    assert_eq!(Op::parse("idempotent_write"), Some(Op::IdempotentWrite));
    assert_eq!(Rt::parse("transactional-id"), Some(Rt::TransactionalId));
    assert_eq!(PatternType::parse("prefixed"), Some(PatternType::Prefixed));
    assert_eq!(Permission::from_code(2), Some(Permission::Deny));
    assert_eq!(Permission::from_code(9), None);
}
