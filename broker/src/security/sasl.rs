//! A connection's authentication: who the client is, and the SASL exchange that tells
//! (SaslHandshake then SaslAuthenticate rounds, KIP-43 and KIP-152; re-authentication on
//! the same connection, KIP-368).
//!
//! Rules (Kafka's `SaslServerAuthenticator`):
//! - On a SASL listener, until the client is authenticated only ApiVersions,
//!   SaslHandshake and SaslAuthenticate are served; any other request closes the
//!   connection. Other listeners need no SASL: SaslHandshake there is ILLEGAL_SASL_STATE.
//! - SaslHandshake names a mechanism: one not enabled is UNSUPPORTED_SASL_MECHANISM (with
//!   the enabled list). SaslAuthenticate before a handshake is ILLEGAL_SASL_STATE.
//! - PLAIN: one round; the password is checked against the user's SCRAM credentials (any
//!   mechanism), so one set of credentials serves every mechanism.
//! - SCRAM-SHA-256/512: two rounds (client-first -> server-first, client-final ->
//!   server-final). An unknown user runs the exchange to the end and fails at the proof,
//!   like a wrong password: the answer never tells which.
//! - A failure answers SASL_AUTHENTICATION_FAILED after `failed_authentication_delay_ms`,
//!   is logged with the peer, and closes the connection.
//! - With `connections_max_reauth_ms` > 0 a session lasts that long (SaslAuthenticate v1+
//!   tells the client); after it, only a new handshake and authentication are served, and
//!   re-authentication must name the same principal. Clients of SaslAuthenticate v0 cannot
//!   re-authenticate and keep their session.
//! - The principal is `User:<name>` after SASL; on an SSL listener with a client
//!   certificate, `User:<subject DN>`; else `User:ANONYMOUS`.

use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use tokio::time::Instant;

use super::listeners::Listener;
use super::scram::{ScramMechanism, ScramServer};

/// A SASL mechanism phxq serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }
}

/// Where the SASL exchange stands.
pub enum Exchange {
    /// No handshake (or the last exchange ended).
    Idle,
    /// The handshake chose a mechanism; the next SaslAuthenticate starts it.
    Chosen(Mechanism),
    /// SCRAM: server-first sent, waiting for client-final.
    ScramFinal {
        server: Box<ScramServer>,
        user: String,
        known: bool,
    },
}

/// What a request is allowed to do before authentication.
pub enum Gate {
    Pass,
    Close(&'static str),
}

/// A connection's identity.
pub struct Auth {
    pub listener: Arc<Listener>,
    pub exchange: Exchange,
    /// `User:<name>` once authenticated (SASL), or of the TLS client certificate.
    pub principal: Option<String>,
    /// Whether a SASL listener's client has authenticated (and the session not expired).
    pub authenticated: bool,
    /// KIP-368: when the SASL session ends.
    pub expires: Option<Instant>,
    /// The SaslAuthenticate version the client uses (v0 clients cannot re-authenticate).
    pub authenticate_version: i16,
    /// A failed authentication was answered: close after writing it.
    pub close_after_reply: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("listener", &self.listener.name)
            .field("principal", &self.principal)
            .field("authenticated", &self.authenticated)
            .finish()
    }
}

impl Default for Auth {
    fn default() -> Auth {
        Auth::new(Arc::new(Listener::default()), None)
    }
}

impl Auth {
    pub fn new(listener: Arc<Listener>, tls_principal: Option<String>) -> Auth {
        Auth {
            listener,
            exchange: Exchange::Idle,
            principal: tls_principal,
            authenticated: false,
            expires: None,
            authenticate_version: 0,
            close_after_reply: false,
        }
    }

    pub fn needs_sasl(&self) -> bool {
        self.listener.protocol.uses_sasl()
    }

    /// Whether `api` may run now.
    pub fn gate(&mut self, api: ApiKey) -> Gate {
        if !self.needs_sasl() {
            return Gate::Pass;
        }
        if matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            return Gate::Pass;
        }
        if !self.authenticated {
            return Gate::Close("request before SASL authentication");
        }
        if self.expires.is_some_and(|e| Instant::now() >= e) {
            self.authenticated = false;
            return Gate::Close(
                "SASL session expired (connections_max_reauth_ms) without re-authentication",
            );
        }
        Gate::Pass
    }
}
