//! `phxq user create|list|delete`: SCRAM users, over the Kafka protocol
//! (AlterUserScramCredentials, DescribeUserScramCredentials) like `kafka-configs
//! --entity-type users`, so it works against Kafka too. The password is salted and hashed
//! here; only the salted password (Kafka's wire format) leaves the machine.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};

use super::scram::{self, ScramMechanism};
use crate::admin::{check, s, table};
use crate::kafka_client::KafkaClient;

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user, or change its password (SCRAM-SHA-256 and SCRAM-SHA-512 unless
    /// --mechanism names one). PLAIN logins check the same credentials.
    Create {
        user: String,
        /// The password (or set PHXQ_PASSWORD, which keeps it out of the process list).
        #[arg(long, env = "PHXQ_PASSWORD", hide_env_values = true)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512; repeat for both (the default).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Every SCRAM user with its mechanisms and iterations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a user's credentials (of every mechanism unless --mechanism names one).
    Delete {
        user: String,
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
    },
}

fn mechanisms(names: &[String]) -> anyhow::Result<Vec<ScramMechanism>> {
    if names.is_empty() {
        return Ok(vec![ScramMechanism::Sha256, ScramMechanism::Sha512]);
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::from_name(n).ok_or_else(|| {
                anyhow::anyhow!("unknown mechanism {n:?}: SCRAM-SHA-256 or SCRAM-SHA-512")
            })
        })
        .collect()
}

pub fn run(bootstrap: &str, cmd: &UserCommand) -> anyhow::Result<String> {
    let mut c = KafkaClient::connect(bootstrap)?;
    match cmd {
        UserCommand::Create {
            user,
            password,
            mechanisms: names,
            iterations,
        } => {
            let mut upsertions = Vec::new();
            for m in mechanisms(names)? {
                let salt = scram::random_salt();
                let salted = scram::salted_password(m, password.as_bytes(), &salt, *iterations);
                upsertions.push(
                    ScramCredentialUpsertion::default()
                        .with_name(s(user))
                        .with_mechanism(m.kafka_type())
                        .with_iterations(*iterations as i32)
                        .with_salt(salt.into())
                        .with_salted_password(salted.into()),
                );
            }
            let r = c.send(
                &AlterUserScramCredentialsRequest::default().with_upsertions(upsertions),
                0,
            )?;
            for res in &r.results {
                check(res.error_code, &format!("creating user {user}")).map_err(|e| {
                    anyhow::anyhow!("{e}: {}", res.error_message.as_deref().unwrap_or(""))
                })?;
            }
            Ok(format!("user {user} created (or its password changed)\n"))
        }
        UserCommand::Delete {
            user,
            mechanisms: names,
        } => {
            let wanted = if names.is_empty() {
                // Only the mechanisms the user has: deleting a missing one is an error.
                let r = c.send(
                    &DescribeUserScramCredentialsRequest::default()
                        .with_users(Some(vec![UserName::default().with_name(s(user))])),
                    0,
                )?;
                let res = r
                    .results
                    .first()
                    .ok_or_else(|| anyhow::anyhow!("empty DescribeUserScramCredentials answer"))?;
                check(res.error_code, &format!("deleting user {user}"))?;
                res.credential_infos
                    .iter()
                    .filter_map(|i| ScramMechanism::from_kafka_type(i.mechanism))
                    .collect()
            } else {
                mechanisms(names)?
            };
            let deletions = wanted
                .into_iter()
                .map(|m| {
                    ScramCredentialDeletion::default()
                        .with_name(s(user))
                        .with_mechanism(m.kafka_type())
                })
                .collect();
            let r = c.send(
                &AlterUserScramCredentialsRequest::default().with_deletions(deletions),
                0,
            )?;
            for res in &r.results {
                check(res.error_code, &format!("deleting user {user}"))?;
            }
            Ok(format!("user {user} deleted\n"))
        }
        UserCommand::List { json } => {
            let r = c.send(
                &DescribeUserScramCredentialsRequest::default().with_users(None),
                0,
            )?;
            check(r.error_code, "DescribeUserScramCredentials")?;
            let mut rows = Vec::new();
            for res in &r.results {
                check(res.error_code, "DescribeUserScramCredentials")?;
                for i in &res.credential_infos {
                    let m = ScramMechanism::from_kafka_type(i.mechanism)
                        .map_or("unknown", |m| m.name());
                    rows.push((res.user.to_string(), m.to_string(), i.iterations));
                }
            }
            rows.sort();
            if *json {
                let v = serde_json::json!({
                    "users": rows.iter().map(|(u, m, i)| serde_json::json!({
                        "user": u, "mechanism": m, "iterations": i,
                    })).collect::<Vec<_>>(),
                });
                return Ok(serde_json::to_string_pretty(&v)? + "\n");
            }
            let mut t = vec![vec![
                "USER".to_string(),
                "MECHANISM".into(),
                "ITERATIONS".into(),
            ]];
            t.extend(rows.into_iter().map(|(u, m, i)| vec![u, m, i.to_string()]));
            Ok(table(&t))
        }
    }
}
