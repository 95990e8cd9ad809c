//! DescribeUserScramCredentials (50) and AlterUserScramCredentials (51): SCRAM users, as
//! `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-256=[...]'` and
//! `phxq user` manage them. Credentials are written salted through the metadata Raft group
//! (`security/credentials.rs`, rules there) and answered once durable. Describing needs
//! DESCRIBE on the cluster, altering ALTER (else CLUSTER_AUTHORIZATION_FAILED).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;
use phxq_protocol::errors::NONE;
use phxq_replication::Command;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::handlers::{replication_error_code, str};
use crate::security::acl::{AclOperation, Authz};
use crate::security::credentials::{self, Credentials};
use crate::security::scram::{ScramCredential, ScramMechanism};

const RESOURCE_NOT_FOUND: i16 = ResponseError::ResourceNotFound.code();
const DUPLICATE_RESOURCE: i16 = ResponseError::DuplicateResource.code();
const UNACCEPTABLE_CREDENTIAL: i16 = ResponseError::UnacceptableCredential.code();
const UNSUPPORTED_SASL_MECHANISM: i16 = ResponseError::UnsupportedSaslMechanism.code();

pub fn describe(
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
    _version: i16,
    az: &Authz,
) -> DescribeUserScramCredentialsResponse {
    if !az.cluster(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(phxq_protocol::errors::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str(
                "describing SCRAM credentials needs DESCRIBE on the cluster",
            )));
    }
    let all = broker.credentials.describe();
    let wanted: Vec<String> = match &req.users {
        None => all.keys().cloned().collect(),
        Some(users) => users.iter().map(|u| u.name.to_string()).collect(),
    };
    let mut seen = BTreeSet::new();
    let results = wanted
        .into_iter()
        .map(|user| {
            let r = DescribeUserScramCredentialsResult::default().with_user(str(user.clone()));
            if !seen.insert(user.clone()) {
                return r
                    .with_error_code(DUPLICATE_RESOURCE)
                    .with_error_message(Some(str(format!("user {user} asked for twice"))));
            }
            match all.get(&user) {
                None => r
                    .with_error_code(RESOURCE_NOT_FOUND)
                    .with_error_message(Some(str(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    )))),
                Some(infos) => r.with_credential_infos(
                    infos
                        .iter()
                        .map(|(m, i)| {
                            CredentialInfo::default()
                                .with_mechanism(m.kafka_type())
                                .with_iterations(*i as i32)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter(
    broker: &Broker,
    req: AlterUserScramCredentialsRequest,
    _version: i16,
    az: &Authz,
) -> AlterUserScramCredentialsResponse {
    // user -> (code, message) of the first problem found.
    let mut problems: BTreeMap<String, (i16, String)> = BTreeMap::new();
    if !az.cluster(AclOperation::Alter) {
        for user in req
            .deletions
            .iter()
            .map(|d| &d.name)
            .chain(req.upsertions.iter().map(|u| &u.name))
        {
            problems.entry(user.to_string()).or_insert((
                phxq_protocol::errors::CLUSTER_AUTHORIZATION_FAILED,
                "altering SCRAM credentials needs ALTER on the cluster".into(),
            ));
        }
    }
    let mut named: BTreeMap<(String, i8), usize> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for d in &req.deletions {
        *named.entry((d.name.to_string(), d.mechanism)).or_default() += 1;
        order.push(d.name.to_string());
    }
    for u in &req.upsertions {
        *named.entry((u.name.to_string(), u.mechanism)).or_default() += 1;
        order.push(u.name.to_string());
    }
    for ((user, _), n) in &named {
        if *n > 1 {
            problems.entry(user.clone()).or_insert((
                DUPLICATE_RESOURCE,
                format!("a user credential cannot be altered twice in the same request: {user}"),
            ));
        }
    }
    let mut puts: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    let mut touched: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for d in &req.deletions {
        let user = d.name.to_string();
        let Some(mech) = ScramMechanism::from_kafka_type(d.mechanism) else {
            problems.entry(user.clone()).or_insert((
                UNSUPPORTED_SASL_MECHANISM,
                format!("unknown SCRAM mechanism type {}", d.mechanism),
            ));
            continue;
        };
        if !broker.credentials.exists(mech, &user) {
            problems.entry(user.clone()).or_insert((
                RESOURCE_NOT_FOUND,
                format!("Attempt to delete a user credential that does not exist: {user}"),
            ));
            continue;
        }
        touched.entry(user.clone()).or_default().push(puts.len());
        puts.push((credentials::key(mech, &user), None));
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        let Some(mech) = ScramMechanism::from_kafka_type(u.mechanism) else {
            problems.entry(user.clone()).or_insert((
                UNSUPPORTED_SASL_MECHANISM,
                format!("unknown SCRAM mechanism type {}", u.mechanism),
            ));
            continue;
        };
        let iterations = u.iterations;
        let bad = if user.is_empty() {
            Some("the user name is empty".to_string())
        } else if iterations < mech.min_iterations() as i32
            || iterations > mech.max_iterations() as i32
        {
            Some(format!(
                "{} iterations {iterations} not in [{}, {}]",
                mech.name(),
                mech.min_iterations(),
                mech.max_iterations()
            ))
        } else if u.salt.is_empty() || u.salted_password.len() != mech.digest_len() {
            Some("the salt is empty or the salted password has the wrong length".to_string())
        } else {
            None
        };
        if let Some(why) = bad {
            problems
                .entry(user.clone())
                .or_insert((UNACCEPTABLE_CREDENTIAL, why));
            continue;
        }
        let cred = ScramCredential::from_salted_password(
            mech,
            &u.salt,
            &u.salted_password,
            iterations as u32,
        );
        touched.entry(user.clone()).or_default().push(puts.len());
        puts.push((
            credentials::key(mech, &user),
            Some(Credentials::encode(&cred)),
        ));
    }
    // A user with any problem gets none of its changes.
    let kept: Vec<(Bytes, Option<Bytes>)> = {
        let dropped: BTreeSet<usize> = touched
            .iter()
            .filter(|(u, _)| problems.contains_key(*u))
            .flat_map(|(_, idx)| idx.iter().copied())
            .collect();
        puts.into_iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, p)| p)
            .collect()
    };
    let mut written = NONE;
    if !kept.is_empty() {
        match broker.metadata.propose_on_leader(Command::Put(kept)).await {
            Ok(_) => {
                if let Err(e) = broker.credentials.reload(&broker.metadata) {
                    warn!(error = %e, "SCRAM credentials written but not re-read; the next metadata change does");
                }
                let users: Vec<&String> = touched
                    .keys()
                    .filter(|u| !problems.contains_key(*u))
                    .collect();
                info!(?users, "SCRAM credentials changed");
            }
            Err(e) => {
                warn!(error = %e, "SCRAM credentials not stored");
                written = replication_error_code(&e);
            }
        }
    }
    let mut seen = BTreeSet::new();
    let results = order
        .into_iter()
        .filter(|u| seen.insert(u.clone()))
        .map(|user| {
            let (code, msg) = match problems.get(&user) {
                Some((c, m)) => (*c, Some(m.clone())),
                None => (written, None),
            };
            AlterUserScramCredentialsResult::default()
                .with_user(str(user))
                .with_error_code(code)
                .with_error_message(msg.map(str))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
