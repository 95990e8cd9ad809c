//! The `phxq` admin commands as a secured Kafka client: Kafka tools' `--command-config FILE`
//! (`PHXQ_COMMAND_CONFIG`), a Java properties file with the client's security settings,
//! read once at the start of the CLI and used by every connection `kafka_client.rs` opens.
//!
//! Keys (Kafka's Java client names, and librdkafka's where they differ):
//! - `security.protocol`: PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL.
//! - `sasl.mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (required with SASL);
//!   `sasl.username` and `sasl.password` (librdkafka), or `sasl.jaas.config` with
//!   `username="..."` and `password="..."` (Java); the first wins.
//! - `ssl.ca.location` (librdkafka) or `ssl.truststore.location` (a PEM file only:
//!   `ssl.truststore.type=PEM`, or any type when the file is PEM): the CAs the broker's
//!   certificate must chain to. Neither: the system's CA bundle.
//! - `ssl.certificate.location` + `ssl.key.location` (librdkafka), or
//!   `ssl.keystore.location` holding both (PEM): a client certificate for mutual TLS.
//!   Encrypted keys (`ssl.key.password`) are refused: decrypt the key first.
//! - `ssl.endpoint.identification.algorithm`: `https` (default) checks the certificate is
//!   valid for the host dialled; `""` or `none` checks only the chain.
//! - Any other key is ignored, as Kafka's tools ignore keys meant for other clients.
//!
//! Properties syntax: `key=value`, `key: value` or `key value`; `#` and `!` start comments;
//! a trailing `\` continues the line; `\\`, `\=`, `\:`, `\t`, `\n` escapes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::listeners::SecurityProtocol;
use super::sasl::Mechanism;

/// Where Debian and most Linux systems keep the CA bundle.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How the admin commands connect.
#[derive(Clone, Debug)]
pub struct ClientSecurity {
    /// With SSL and SASL_SSL.
    pub tls: Option<Arc<ClientConfig>>,
    /// With SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslLogin>,
}

/// A SASL login. `Debug` leaves the password out.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish()
    }
}

static CONFIGURED: OnceLock<ClientSecurity> = OnceLock::new();

/// Reads `path` and makes it the security of every connection of this process.
pub fn configure_from_file(path: &Path) -> anyhow::Result<()> {
    let s = ClientSecurity::from_file(path)?;
    anyhow::ensure!(
        CONFIGURED.set(s).is_ok(),
        "the client security is already configured"
    );
    Ok(())
}

/// The security set by [`configure_from_file`]; `None`: plaintext.
pub fn configured() -> Option<&'static ClientSecurity> {
    CONFIGURED.get()
}

impl ClientSecurity {
    pub fn from_file(path: &Path) -> anyhow::Result<ClientSecurity> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read --command-config {}: {e}", path.display()))?;
        ClientSecurity::from_properties(&parse_properties(&text))
            .map_err(|e| anyhow::anyhow!("--command-config {}: {e}", path.display()))
    }

    pub fn from_properties(p: &BTreeMap<String, String>) -> anyhow::Result<ClientSecurity> {
        let get = |k: &str| p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let protocol = match get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(v) => SecurityProtocol::from_name(v).ok_or_else(|| {
                anyhow::anyhow!(
                    "security.protocol={v}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                )
            })?,
        };
        let sasl = if protocol.uses_sasl() {
            Some(sasl_login(p)?)
        } else {
            None
        };
        let tls = if protocol.uses_tls() {
            Some(tls_config(p)?)
        } else {
            None
        };
        Ok(ClientSecurity { tls, sasl })
    }
}

fn sasl_login(p: &BTreeMap<String, String>) -> anyhow::Result<SaslLogin> {
    let mech = p.get("sasl.mechanism").map(|v| v.trim()).unwrap_or("");
    let mechanism = Mechanism::from_name(&mech.to_ascii_uppercase()).ok_or_else(|| {
        anyhow::anyhow!(
            "sasl.mechanism={mech}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (required with SASL)"
        )
    })?;
    let jaas = p.get("sasl.jaas.config").map(String::as_str).unwrap_or("");
    let pick = |key: &str, jaas_key: &str| -> Option<String> {
        p.get(key).cloned().or_else(|| jaas_value(jaas, jaas_key))
    };
    let username = pick("sasl.username", "username").ok_or_else(|| {
        anyhow::anyhow!("SASL needs sasl.username (or username=\"...\" in sasl.jaas.config)")
    })?;
    let password = pick("sasl.password", "password").ok_or_else(|| {
        anyhow::anyhow!("SASL needs sasl.password (or password=\"...\" in sasl.jaas.config)")
    })?;
    Ok(SaslLogin {
        mechanism,
        username,
        password,
    })
}

/// `key="value"` in a JAAS line (`\"` and `\\` escaped inside the quotes).
fn jaas_value(jaas: &str, key: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(at) = rest.find(key) {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == ';');
        let after = rest[at + key.len()..].trim_start();
        rest = &rest[at + key.len()..];
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let Some(quoted) = after.trim_start().strip_prefix('"') else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let mut value = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?),
                '"' => return Some(value),
                c => value.push(c),
            }
        }
        return None;
    }
    None
}

fn tls_config(p: &BTreeMap<String, String>) -> anyhow::Result<Arc<ClientConfig>> {
    let get = |k: &str| p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if get("ssl.key.password").is_some() {
        anyhow::bail!(
            "ssl.key.password: encrypted keys are not supported; give a decrypted PEM key"
        );
    }
    let pem_store = |loc: &str, ty: &str| -> anyhow::Result<Option<PathBuf>> {
        let Some(path) = get(loc) else {
            return Ok(None);
        };
        let is_pem = std::fs::read(path)
            .map(|b| b.windows(10).any(|w| w == b"-----BEGIN"))
            .map_err(|e| anyhow::anyhow!("{loc} {path}: {e}"))?;
        let declared = get(ty).unwrap_or("JKS");
        anyhow::ensure!(
            is_pem,
            "{loc} {path}: only PEM files are supported ({ty}={declared}); convert it with \
             keytool/openssl, or give ssl.ca.location / ssl.certificate.location"
        );
        Ok(Some(PathBuf::from(path)))
    };

    let ca = match get("ssl.ca.location") {
        Some(p) => PathBuf::from(p),
        None => match pem_store("ssl.truststore.location", "ssl.truststore.type")? {
            Some(p) => p,
            None => {
                let system = PathBuf::from(SYSTEM_CA_BUNDLE);
                anyhow::ensure!(
                    system.is_file(),
                    "SSL needs ssl.ca.location (no system CA bundle at {SYSTEM_CA_BUNDLE})"
                );
                system
            }
        },
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&ca, "ssl.ca.location")? {
        roots
            .add(cert)
            .map_err(|e| anyhow::anyhow!("bad CA certificate in {}: {e}", ca.display()))?;
    }

    let identity = match (get("ssl.certificate.location"), get("ssl.key.location")) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("mutual TLS needs both ssl.certificate.location and ssl.key.location")
        }
        (None, None) => {
            pem_store("ssl.keystore.location", "ssl.keystore.type")?.map(|p| (p.clone(), p))
        }
    };

    let verify_host = match get("ssl.endpoint.identification.algorithm") {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("https") => true,
        Some(v) if v.eq_ignore_ascii_case("none") => false,
        Some(v) => anyhow::bail!(
            "ssl.endpoint.identification.algorithm={v}: expected https, none or empty"
        ),
    };
    // An empty value (Java's way of turning it off) is filtered out by `get`.
    let verify_host = verify_host
        && p.get("ssl.endpoint.identification.algorithm")
            .is_none_or(|v| !v.trim().is_empty());

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| anyhow::anyhow!("CA certificates in {}: {e}", ca.display()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainVerifier {
            inner: verifier,
            verify_host,
        }));
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = read_certs(&cert, "ssl.certificate.location")?;
            let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
                anyhow::anyhow!("ssl.key.location {}: no usable PEM key: {e}", key.display())
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                anyhow::anyhow!("the client certificate and key do not go together: {e}")
            })?
        }
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("{key} {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{key} {}: bad certificate: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{key} {}: no PEM certificate in it",
        path.display()
    );
    Ok(certs)
}

/// rustls' WebPKI verification of the broker's certificate, without the host name check
/// when `ssl.endpoint.identification.algorithm` turns it off (the chain is checked before
/// the name, so only a name mismatch is forgiven).
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    verify_host: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.verify_host => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A Java properties file's keys and values (see the module documentation).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut line = line.trim_start().to_string();
        if logical.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        // A line ending in an odd number of backslashes continues on the next one.
        while line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1 {
            line.pop();
            logical.push_str(&line);
            line = match lines.next() {
                Some(next) => next.trim_start().to_string(),
                None => String::new(),
            };
        }
        logical.push_str(&line);
        let entry = std::mem::take(&mut logical);
        if entry.trim().is_empty() {
            continue;
        }
        let (key, value) = split_entry(&entry);
        out.insert(unescape(&key), unescape(value.trim_start()));
    }
    out
}

/// The key (up to the first unescaped `=`, `:` or whitespace) and the rest after the
/// separator.
fn split_entry(entry: &str) -> (String, &str) {
    let mut escaped = false;
    for (i, c) in entry.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (entry[..i].trim_end().to_string(), &entry[i + 1..]),
            c if c.is_whitespace() => {
                let rest = entry[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (entry[..i].to_string(), rest);
            }
            _ => {}
        }
    }
    (entry.to_string(), "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_as_java_reads_them() {
        let p = parse_properties(
            "# a comment\n! another\nsecurity.protocol=SASL_SSL\n  sasl.mechanism : SCRAM-SHA-512\n\
             sasl.username alice\nsasl.password=p\\=w\\:d\\\\\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n    \
             username=\"bob\" password=\"b\\\"s\";\nempty=\n",
        );
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(p["sasl.username"], "alice");
        assert_eq!(p["sasl.password"], "p=w:d\\");
        assert_eq!(
            p["sasl.jaas.config"],
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"bob\" password=\"b\"s\";"
        );
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn jaas_values() {
        let j = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="app" password="s3\"cr=t";"#;
        assert_eq!(jaas_value(j, "username").as_deref(), Some("app"));
        assert_eq!(jaas_value(j, "password").as_deref(), Some("s3\"cr=t"));
        assert_eq!(jaas_value(j, "user"), None);
        assert_eq!(jaas_value("required username=\"x", "username"), None);
    }

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sasl_settings() {
        let s = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            (
                "sasl.jaas.config",
                "x.ScramLoginModule required username=\"j\" password=\"jp\";",
            ),
        ]))
        .unwrap();
        assert!(s.tls.is_none(), "SASL_PLAINTEXT: no TLS");
        let login = s.sasl.unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("j", "jp")
        );
        assert!(
            !format!("{login:?}").contains("jp"),
            "Debug shows no password"
        );

        for (bad, says) in [
            (vec![("security.protocol", "TLS")], "security.protocol=TLS"),
            (
                vec![
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.mechanism", "GSSAPI"),
                ],
                "sasl.mechanism=GSSAPI",
            ),
            (
                vec![
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.mechanism", "PLAIN"),
                    ("sasl.username", "u"),
                ],
                "needs sasl.password",
            ),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.ca.location", "/nonexistent/ca.pem"),
                ],
                "/nonexistent/ca.pem",
            ),
            (
                vec![("security.protocol", "SSL"), ("ssl.key.password", "x")],
                "encrypted keys",
            ),
        ] {
            let e = ClientSecurity::from_properties(&props(&bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
        let plain = ClientSecurity::from_properties(&props(&[])).unwrap();
        assert!(plain.tls.is_none() && plain.sasl.is_none());
    }
}
