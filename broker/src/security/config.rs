//! `[security]`: listener protocols, TLS, SASL, with Kafka's names in the comments.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// `listener.security.protocol.map`: the protocol of each listener whose name is not a
    /// protocol (`CLIENT = "SASL_SSL"`).
    pub listener_security_protocol_map: BTreeMap<String, String>,
    /// `sasl.enabled.mechanisms`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. PLAIN checks the
    /// password against the user's SCRAM credentials (either mechanism).
    pub sasl_enabled_mechanisms: Vec<String>,
    /// `connections.max.reauth.ms` (KIP-368): a SASL session lasts this long; the client
    /// re-authenticates on the same connection before it ends, or the connection is
    /// closed. 0: sessions do not expire.
    pub connections_max_reauth_ms: i64,
    /// `connection.failed.authentication.delay.ms`: a failed authentication is answered
    /// after this delay (then the connection closes), which slows password guessing.
    pub failed_authentication_delay_ms: u64,
    /// `[security.tls]`: for SSL and SASL_SSL listeners.
    pub tls: Option<TlsConfig>,
    /// `authorizer.class.name`: `"acl"` turns on the ACL authorizer (every request is
    /// checked against the ACLs of `phxq acl` / CreateAcls); `"none"` (the default)
    /// allows every request, and the ACL APIs answer SECURITY_DISABLED.
    pub authorizer: String,
    /// `super.users`: principals the authorizer allows everything (`["User:admin"]`).
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`: with the authorizer on, a resource that no ACL
    /// applies to is open to everyone (true) or to super users only (false, the default).
    pub allow_everyone_if_no_acl_found: bool,
    /// `[security.inter_broker]`: mutual TLS between brokers (`security/inter_broker.rs`).
    pub inter_broker: super::inter_broker::InterBrokerConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            listener_security_protocol_map: BTreeMap::new(),
            sasl_enabled_mechanisms: vec![
                "PLAIN".into(),
                "SCRAM-SHA-256".into(),
                "SCRAM-SHA-512".into(),
            ],
            connections_max_reauth_ms: 0,
            failed_authentication_delay_ms: 100,
            tls: None,
            authorizer: "none".into(),
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            inter_broker: Default::default(),
        }
    }
}

/// `[security.tls]`: PEM files, as Kafka's `ssl.keystore.type=PEM` takes them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The broker's certificate chain (leaf first), PEM.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_file: PathBuf,
    /// CA certificates that sign client certificates (PEM); needed unless
    /// `client_auth = "none"`.
    pub ca_file: Option<PathBuf>,
    /// `ssl.client.auth`: `none` (default), `requested` (a certificate is checked when
    /// given) or `required`. With a client certificate the principal is its subject
    /// (`User:CN=...`), unless SASL names one.
    #[serde(default = "default_client_auth")]
    pub client_auth: String,
    /// `listener.name.<name>.ssl.client.auth`: `client_auth` for one listener
    /// (`{ MTLS = "required" }`).
    #[serde(default)]
    pub client_auth_by_listener: std::collections::BTreeMap<String, String>,
    /// How often the files are checked for changes, in ms: a renewed certificate is used
    /// for new connections without a restart.
    #[serde(default = "default_reload_ms")]
    pub reload_check_ms: u64,
}

fn default_client_auth() -> String {
    "none".into()
}

fn default_reload_ms() -> u64 {
    10_000
}

/// What `ssl.client.auth` asks of clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl TlsConfig {
    /// `client_auth` of listener `listener`.
    pub fn client_auth(&self, listener: &str) -> anyhow::Result<ClientAuth> {
        let v = self
            .client_auth_by_listener
            .get(listener)
            .unwrap_or(&self.client_auth);
        Ok(match v.to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            other => anyhow::bail!(
                "[security.tls] client_auth = {other:?}: expected none, requested or required"
            ),
        })
    }
}

impl SecurityConfig {
    /// Whether the ACL authorizer is on.
    pub fn acl_authorizer(&self) -> bool {
        self.authorizer.eq_ignore_ascii_case("acl")
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(
                self.authorizer.to_ascii_lowercase().as_str(),
                "none" | "acl"
            ),
            "[security] authorizer = {:?}: expected \"none\" or \"acl\"",
            self.authorizer
        );
        for u in &self.super_users {
            anyhow::ensure!(
                u.split_once(':')
                    .is_some_and(|(k, n)| !k.is_empty() && !n.is_empty()),
                "[security] super_users: {u:?} is not a principal of the form User:name"
            );
        }
        for m in &self.sasl_enabled_mechanisms {
            anyhow::ensure!(
                matches!(m.as_str(), "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"),
                "[security] sasl_enabled_mechanisms: {m:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            );
        }
        anyhow::ensure!(
            self.connections_max_reauth_ms >= 0,
            "[security] connections_max_reauth_ms must be 0 (off) or positive"
        );
        anyhow::ensure!(
            self.failed_authentication_delay_ms <= 60_000,
            "[security] failed_authentication_delay_ms must be at most 60000"
        );
        if let Some(t) = &self.tls {
            let names =
                std::iter::once("").chain(t.client_auth_by_listener.keys().map(|k| k.as_str()));
            for name in names {
                let auth = t.client_auth(name)?;
                anyhow::ensure!(
                    auth == ClientAuth::None || t.ca_file.is_some(),
                    "[security.tls] client_auth {auth:?} needs ca_file"
                );
            }
            anyhow::ensure!(
                t.reload_check_ms >= 100,
                "[security.tls] reload_check_ms must be at least 100"
            );
        }
        self.inter_broker.validate(self.tls.as_ref())?;
        Ok(())
    }
}
