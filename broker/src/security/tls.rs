//! TLS for SSL and SASL_SSL listeners (rustls, ring provider): the server configuration
//! built from `[security.tls]`'s PEM files, reloaded for new connections when the files
//! change (a renewed certificate needs no restart), and the principal of a client
//! certificate.
//!
//! Rules:
//! - `client_auth = "required"`: a client without a certificate signed by `ca_file` (or
//!   with an expired one) fails the handshake; `"requested"`: a certificate is verified
//!   when given; `"none"`: none is asked for.
//! - A reload that fails (a half-written file, a key that does not match) keeps the
//!   previous configuration and logs why; the next check tries again.
//! - The principal of a client certificate is `User:` followed by its subject's
//!   distinguished name as RFC 2253 writes it (`CN=app,O=Example`), as Kafka's default
//!   principal builder does.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::config::{ClientAuth, TlsConfig};

/// The TLS configuration of this broker's listeners (one per client-auth setting in use),
/// reloadable.
pub struct Tls {
    config: TlsConfig,
    /// Listener name -> acceptor.
    acceptors: RwLock<BTreeMap<String, TlsAcceptor>>,
    listeners: Vec<String>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

fn stamps(c: &TlsConfig) -> Vec<Option<SystemTime>> {
    [Some(&c.cert_file), Some(&c.key_file), c.ca_file.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

pub(super) fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("bad certificate in {}: {e}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

/// The rustls server configuration of `c` for listener `listener`.
pub fn server_config(c: &TlsConfig, listener: &str) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&c.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&c.key_file)
        .map_err(|e| anyhow::anyhow!("cannot read the key {}: {e}", c.key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match c.client_auth(listener)? {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let ca = c
                .ca_file
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("[security.tls] client_auth needs ca_file"))?;
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| anyhow::anyhow!("bad CA certificate in {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        anyhow::anyhow!(
            "certificate {} and key {} do not go together: {e}",
            c.cert_file.display(),
            c.key_file.display()
        )
    })?;
    Ok(Arc::new(config))
}

fn acceptors(c: &TlsConfig, listeners: &[String]) -> anyhow::Result<BTreeMap<String, TlsAcceptor>> {
    listeners
        .iter()
        .map(|l| Ok((l.clone(), TlsAcceptor::from(server_config(c, l)?))))
        .collect()
}

impl Tls {
    /// The TLS of `listeners` (the names of the SSL and SASL_SSL listeners).
    pub fn load(config: &TlsConfig, listeners: Vec<String>) -> anyhow::Result<Arc<Tls>> {
        Ok(Arc::new(Tls {
            stamps: Mutex::new(stamps(config)),
            acceptors: RwLock::new(acceptors(config, &listeners)?),
            config: config.clone(),
            listeners,
        }))
    }

    /// The acceptor for a new connection on `listener`.
    pub fn acceptor(&self, listener: &str) -> Option<TlsAcceptor> {
        self.acceptors.read().unwrap().get(listener).cloned()
    }

    /// Rebuilds the configuration if a file changed since the last (re)load.
    fn reload_if_changed(&self) {
        let now = stamps(&self.config);
        {
            let mut seen = self.stamps.lock().unwrap();
            if *seen == now {
                return;
            }
            *seen = now;
        }
        match acceptors(&self.config, &self.listeners) {
            Ok(all) => {
                *self.acceptors.write().unwrap() = all;
                info!(cert = %self.config.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                warn!(error = %e, "TLS files changed but do not load; keeping the previous ones")
            }
        }
    }
}

/// Checks the files every `reload_check_ms` while the broker runs.
pub async fn watch(tls: Weak<Tls>) {
    let every = match tls.upgrade() {
        Some(t) => Duration::from_millis(t.config.reload_check_ms),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(t) = tls.upgrade() else { return };
        tokio::task::block_in_place(|| t.reload_if_changed());
    }
}

/// `User:<subject DN>` of the client's certificate, if it sent one.
pub fn principal(conn: &rustls::ServerConnection) -> Option<String> {
    let cert = conn.peer_certificates()?.first()?;
    Some(format!("User:{}", subject_dn(cert.as_ref())?))
}

/// The subject of a DER certificate as RFC 2253 writes it (`CN=app,O=Example`); `None`
/// when it does not parse.
pub fn subject_dn(cert: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(rfc2253(parsed.subject()))
}

/// A distinguished name as RFC 2253 writes it: most specific first, `,` between RDNs.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let key = x509_parser::objects::oid2abbrev(
                    a.attr_type(),
                    x509_parser::objects::oid_registry(),
                )
                .map(str::to_string)
                .unwrap_or_else(|_| a.attr_type().to_id_string());
                let value = a.as_str().unwrap_or("").to_string();
                format!("{key}={}", escape(&value))
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    parts.reverse();
    parts.join(",")
}

/// RFC 2253 escaping of an attribute value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let edge = i == 0 && (c == ' ' || c == '#') || i + 1 == v.chars().count() && c == ' ';
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || edge {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn values_are_escaped_as_rfc_2253_says() {
        assert_eq!(escape("app"), "app");
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" lead"), "\\ lead");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("trail "), "trail\\ ");
    }
}
