//! Listeners by name and security protocol, as Kafka configures them.
//!
//! Rules:
//! - A `listeners` entry is `NAME://HOST:PORT`, or a bare `HOST:PORT`, which is the
//!   listener `PLAINTEXT` (phxq's configs before security keep working).
//! - A listener's security protocol is `listener_security_protocol_map[NAME]`, or NAME
//!   itself when it is one of Kafka's four protocols (PLAINTEXT, SSL, SASL_PLAINTEXT,
//!   SASL_SSL); any other name must be in the map. Names are case-sensitive, protocols are
//!   not, as in Kafka.
//! - One name may bind several addresses (phxq's default binds 127.0.0.1 and [::1] as one
//!   `PLAINTEXT` listener); all addresses of a name have the same protocol by construction.
//! - Where clients are told to reach this broker on a listener: its entry in
//!   `advertised_listeners` (`NAME://HOST:PORT`); else, for the first listener, the older
//!   `advertised_listener` or this broker's `kafka` address in `[cluster]`; else the
//!   listener's first bound address.
//! - Metadata answers each client with the addresses of the listener it connected to
//!   (every broker of a cluster is expected to have the same listener names; a broker entry
//!   in `[cluster]` may give its address per name in `listeners`).

use std::collections::BTreeMap;

/// Kafka's `security.protocol` of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// A listener as its connections know it: the name clients are told addresses by, and
/// its protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
}

impl Default for Listener {
    fn default() -> Listener {
        Listener {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
        }
    }
}

/// One configured listener address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    /// HOST:PORT to bind.
    pub addr: String,
}

/// Splits `NAME://HOST:PORT` (or a bare `HOST:PORT`, the listener PLAINTEXT).
pub fn split(entry: &str) -> (String, String) {
    match entry.split_once("://") {
        Some((name, addr)) => (name.to_string(), addr.to_string()),
        None => ("PLAINTEXT".to_string(), entry.to_string()),
    }
}

/// The listeners of `entries`, with their protocols from `map`.
pub fn parse(
    entries: &[String],
    map: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<ListenerSpec>> {
    let mut out: Vec<ListenerSpec> = Vec::new();
    for e in entries {
        let (name, addr) = split(e);
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "listener {e:?}: invalid listener name {name:?}"
        );
        let protocol = match map.get(&name) {
            Some(p) => SecurityProtocol::from_name(p).ok_or_else(|| {
                anyhow::anyhow!(
                    "listener_security_protocol_map: {name} = {p:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                )
            })?,
            None => SecurityProtocol::from_name(&name).ok_or_else(|| {
                anyhow::anyhow!(
                    "listener {e:?}: {name} is not a security protocol; give its protocol in listener_security_protocol_map"
                )
            })?,
        };
        crate::addr::parse_addr(&addr)?;
        out.push(ListenerSpec {
            name,
            protocol,
            addr,
        });
    }
    for name in map.keys() {
        anyhow::ensure!(
            out.iter().any(|l| &l.name == name),
            "listener_security_protocol_map names {name}, which is not in listeners"
        );
    }
    Ok(out)
}

/// `NAME -> HOST:PORT` of `advertised_listeners` entries; every name must be a listener.
pub fn advertised(
    entries: &[String],
    listeners: &[ListenerSpec],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for e in entries {
        anyhow::ensure!(
            e.contains("://"),
            "advertised_listeners entry {e:?} must be NAME://HOST:PORT"
        );
        let (name, addr) = split(e);
        anyhow::ensure!(
            listeners.iter().any(|l| l.name == name),
            "advertised_listeners names {name}, which is not in listeners"
        );
        crate::addr::split_host_port(&addr)?;
        anyhow::ensure!(
            out.insert(name.clone(), addr).is_none(),
            "advertised_listeners names {name} twice"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bare_addresses_are_plaintext_and_names_give_protocols() {
        let map = BTreeMap::from([("INTERNAL".to_string(), "sasl_ssl".to_string())]);
        let l = parse(
            &names(&[
                "127.0.0.1:9092",
                "[::1]:9092",
                "SSL://127.0.0.1:9093",
                "INTERNAL://0.0.0.0:9094",
            ]),
            &map,
        )
        .unwrap();
        assert_eq!(
            l.iter()
                .map(|l| (l.name.as_str(), l.protocol))
                .collect::<Vec<_>>(),
            vec![
                ("PLAINTEXT", SecurityProtocol::Plaintext),
                ("PLAINTEXT", SecurityProtocol::Plaintext),
                ("SSL", SecurityProtocol::Ssl),
                ("INTERNAL", SecurityProtocol::SaslSsl),
            ]
        );
        assert!(l[3].protocol.uses_tls() && l[3].protocol.uses_sasl());
    }

    #[test]
    fn unknown_names_and_bad_maps_are_refused() {
        let none = BTreeMap::new();
        assert!(parse(&names(&["CLIENT://127.0.0.1:9092"]), &none).is_err());
        let bad = BTreeMap::from([("CLIENT".to_string(), "TLS".to_string())]);
        assert!(parse(&names(&["CLIENT://127.0.0.1:9092"]), &bad).is_err());
        let stray = BTreeMap::from([("OTHER".to_string(), "SSL".to_string())]);
        assert!(parse(&names(&["127.0.0.1:9092"]), &stray).is_err());
        assert!(parse(&names(&["SSL://nowhere"]), &none).is_err());
    }

    #[test]
    fn advertised_addresses_by_name() {
        let l = parse(
            &names(&["127.0.0.1:9092", "SASL_SSL://0.0.0.0:9093"]),
            &BTreeMap::new(),
        )
        .unwrap();
        let a = advertised(&names(&["SASL_SSL://kafka.example.com:9093"]), &l).unwrap();
        assert_eq!(a["SASL_SSL"], "kafka.example.com:9093");
        assert!(advertised(&names(&["SSL://x:1"]), &l).is_err());
        assert!(advertised(&names(&["kafka.example.com:9093"]), &l).is_err());
    }
}
