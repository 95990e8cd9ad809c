//! SaslHandshake (17) and SaslAuthenticate (36): a client logs in on a SASL listener
//! (rules in `security/sasl.rs`; the mechanisms in `security/scram.rs` and
//! `security/plain.rs`, credentials in `security/credentials.rs`).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::ResponseError;
use phxq_protocol::errors::NONE;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::handlers::str;
use crate::security::sasl::{Auth, Exchange, Mechanism};
use crate::security::scram::{self, ScramCredential, ScramServer};
use crate::security::{plain, scram::ScramMechanism};

const UNSUPPORTED_SASL_MECHANISM: i16 = ResponseError::UnsupportedSaslMechanism.code();
const ILLEGAL_SASL_STATE: i16 = ResponseError::IllegalSaslState.code();
const SASL_AUTHENTICATION_FAILED: i16 = ResponseError::SaslAuthenticationFailed.code();

pub fn handshake(
    broker: &Broker,
    req: SaslHandshakeRequest,
    version: i16,
    auth: &mut Auth,
) -> SaslHandshakeResponse {
    let enabled = &broker.config.security.sasl_enabled_mechanisms;
    let resp = SaslHandshakeResponse::default().with_mechanisms(enabled.iter().map(str).collect());
    if !auth.needs_sasl() {
        return resp.with_error_code(ILLEGAL_SASL_STATE);
    }
    if version == 0 {
        // v0 is followed by raw SASL tokens, which only pre-1.0 clients send.
        warn!(listener = %auth.listener.name, "SaslHandshake v0 (raw SASL tokens) is not served; the client needs SaslAuthenticate (Kafka 1.0 clients and later)");
        auth.close_after_reply = true;
        return resp.with_error_code(ILLEGAL_SASL_STATE);
    }
    let wanted = req.mechanism.as_str();
    match Mechanism::from_name(wanted).filter(|_| enabled.iter().any(|m| m == wanted)) {
        Some(m) => {
            auth.exchange = Exchange::Chosen(m);
            resp.with_error_code(NONE)
        }
        None => {
            warn!(listener = %auth.listener.name, mechanism = wanted, "SASL mechanism not enabled");
            resp.with_error_code(UNSUPPORTED_SASL_MECHANISM)
        }
    }
}

/// How one SaslAuthenticate round ended.
enum Round {
    /// More rounds follow; these bytes go to the client.
    Continue(Vec<u8>),
    /// Authenticated as this user; these bytes go to the client.
    Done(String, Vec<u8>),
    /// Refused: the reason is logged, the client hears only that it failed.
    Failed { user: String, why: String },
    /// Out of order.
    Illegal(&'static str),
}

pub async fn authenticate(
    broker: &Broker,
    req: SaslAuthenticateRequest,
    version: i16,
    auth: &mut Auth,
    peer: Option<std::net::SocketAddr>,
) -> SaslAuthenticateResponse {
    let resp = SaslAuthenticateResponse::default();
    if !auth.needs_sasl() {
        return resp
            .with_error_code(ILLEGAL_SASL_STATE)
            .with_error_message(Some(str("this listener does not use SASL")));
    }
    auth.authenticate_version = version;
    let mechanism = match &auth.exchange {
        Exchange::Chosen(m) => Some(*m),
        Exchange::ScramFinal { server, .. } => Some(Mechanism::Scram(server.mechanism())),
        Exchange::Idle => None,
    };
    let round = match std::mem::replace(&mut auth.exchange, Exchange::Idle) {
        Exchange::Idle => Round::Illegal("SaslAuthenticate before SaslHandshake"),
        Exchange::Chosen(Mechanism::Plain) => plain_round(broker, &req.auth_bytes),
        Exchange::Chosen(Mechanism::Scram(m)) => scram_first(broker, m, &req.auth_bytes, auth),
        Exchange::ScramFinal {
            mut server,
            user,
            known,
        } => match server.client_final(&req.auth_bytes) {
            Ok(reply) if known => Round::Done(user, reply),
            Ok(_) => Round::Failed {
                user,
                why: "unknown user".into(),
            },
            Err(e) => Round::Failed {
                user,
                why: e.to_string(),
            },
        },
    };
    let mechanism = mechanism.map_or("-", |m| m.name());
    match round {
        Round::Continue(bytes) => resp.with_auth_bytes(Bytes::from(bytes)),
        Round::Done(user, bytes) => {
            let principal = format!("User:{user}");
            if auth.authenticated && auth.principal.as_deref() != Some(principal.as_str()) {
                return fail(
                    broker,
                    auth,
                    peer,
                    mechanism,
                    &user,
                    "re-authentication as another principal",
                )
                .await;
            }
            let reauth_ms = broker.config.security.connections_max_reauth_ms;
            let lifetime = if reauth_ms > 0 && version >= 1 {
                auth.expires =
                    Some(tokio::time::Instant::now() + Duration::from_millis(reauth_ms as u64));
                reauth_ms
            } else {
                auth.expires = None;
                0
            };
            if !auth.authenticated {
                info!(peer = %show(peer), listener = %auth.listener.name, mechanism, %principal, "authenticated");
            }
            auth.authenticated = true;
            auth.principal = Some(principal);
            resp.with_auth_bytes(Bytes::from(bytes))
                .with_session_lifetime_ms(lifetime)
        }
        Round::Failed { user, why } => fail(broker, auth, peer, mechanism, &user, &why).await,
        Round::Illegal(why) => {
            auth.close_after_reply = true;
            warn!(peer = %show(peer), "SASL: {why}");
            resp.with_error_code(ILLEGAL_SASL_STATE)
                .with_error_message(Some(str(why)))
        }
    }
}

fn show(peer: Option<std::net::SocketAddr>) -> String {
    peer.map_or_else(|| "-".into(), |p| p.to_string())
}

/// Answers a failed authentication after the configured delay; the connection closes.
async fn fail(
    broker: &Broker,
    auth: &mut Auth,
    peer: Option<std::net::SocketAddr>,
    mechanism: &str,
    user: &str,
    why: &str,
) -> SaslAuthenticateResponse {
    warn!(peer = %show(peer), listener = %auth.listener.name, mechanism, user, reason = why, "authentication failed");
    broker.metrics.authentication_failed();
    auth.authenticated = false;
    auth.close_after_reply = true;
    let delay = broker.config.security.failed_authentication_delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    SaslAuthenticateResponse::default()
        .with_error_code(SASL_AUTHENTICATION_FAILED)
        .with_error_message(Some(str(format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
        ))))
}

fn plain_round(broker: &Broker, bytes: &[u8]) -> Round {
    let creds = match plain::parse(bytes) {
        Ok(c) => c,
        Err(e) => {
            return Round::Failed {
                user: "-".into(),
                why: e.to_string(),
            }
        }
    };
    let known = broker.credentials.of_user(&creds.username);
    if known.is_empty() {
        // As long as a known user's check: the answer time does not tell who exists.
        let fake = ScramCredential::fake(ScramMechanism::Sha256, &creds.username);
        let _ = fake.verify_password(&creds.password);
    }
    if known.iter().any(|c| c.verify_password(&creds.password)) {
        Round::Done(creds.username, Vec::new())
    } else {
        Round::Failed {
            why: if known.is_empty() {
                "unknown user".into()
            } else {
                "wrong password".into()
            },
            user: creds.username,
        }
    }
}

fn scram_first(broker: &Broker, mechanism: ScramMechanism, bytes: &[u8], auth: &mut Auth) -> Round {
    let mut server = ScramServer::new(mechanism, scram::random_nonce());
    let first = match server.client_first(bytes) {
        Ok(f) => f,
        Err(e) => {
            return Round::Failed {
                user: "-".into(),
                why: e.to_string(),
            }
        }
    };
    let user = first.username.clone();
    let (cred, known) = match broker.credentials.get(mechanism, &user) {
        Some(c) => (c, true),
        None => (ScramCredential::fake(mechanism, &user), false),
    };
    let reply = server.server_first(&cred);
    auth.exchange = Exchange::ScramFinal {
        server: Box::new(server),
        user,
        known,
    };
    Round::Continue(reply)
}
