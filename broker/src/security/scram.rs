//! SASL/SCRAM (RFC 5802, with the SHA-256 and SHA-512 hashes of RFC 7677), server side, the
//! way Kafka's `ScramSaslServer` runs it. Pure: the caller feeds the client's messages in and
//! sends the answers back; the credential lookup is the caller's too.
//!
//! # The exchange
//!
//! ```text
//! client-first  n,,n=<user>,r=<cnonce>              -> ScramServer::client_first (username out)
//! server-first  r=<cnonce><snonce>,s=<salt>,i=<n>    <- ScramServer::server_first (credential in)
//! client-final  c=biws,r=<cnonce><snonce>,p=<proof>  -> ScramServer::client_final
//! server-final  v=<server signature>                 <-
//! ```
//!
//! Every error is final: the exchange moves to a failed state and refuses anything after it
//! (as Kafka's server does). Malformed input and calls out of order are error values, never
//! panics. `server_first` cannot fail (it always has bytes to send): a problem there (called
//! out of order, a credential of the other mechanism or with fewer than 4096 iterations) fails
//! the exchange, and `client_final` reports it.
//!
//! # What is accepted, what is refused
//!
//! * gs2 header: `n,,` (no channel binding) and `y,,` (the client could bind but thinks the
//!   server cannot: RFC 5802 §6 lets a server that offers no `-PLUS` mechanism accept it;
//!   Kafka's own parser takes `n` only). `p=<type>` (channel binding asked) is refused with
//!   [`ScramError::ChannelBindingNotSupported`]: phxq offers no `SCRAM-*-PLUS` mechanism.
//! * authzid: `a=<saslname>` in the gs2 header must name the username itself (Kafka's rule:
//!   "Client requested an authorization id that is different from username"), or be absent.
//! * `m=` (the reserved mandatory extension) is refused, as RFC 5802 requires; Kafka's parser
//!   skips it. No client sends it.
//! * `n=<saslname>`: `=2C` decodes to `,` and `=3D` to `=`; any other `=` is refused (`=2c`
//!   too, as in Kafka), and so are an empty name and a NUL. UTF-8 names are taken as they are
//!   (no SASLprep, as in Kafka; Kafka's parser is narrower, it takes ASCII names only).
//! * `r=<nonce>`: printable ASCII without `,` (0x21..=0x7E), not empty.
//! * Extensions after the nonce (`<alpha>=<value>`) are ignored, as Kafka does, except
//!   `tokenauth=true` (Kafka's delegation tokens, KIP-48), refused as unsupported.
//! * client-final: `c=` must be the base64 of the gs2 header the client sent (`biws` for
//!   `n,,`; Kafka does not check it), `r=` the combined nonce (or, exactly, the combined
//!   nonce with the client nonce once more in front: librdkafka before 2.6.1 sends that,
//!   confluentinc/librdkafka#4895), extensions are ignored, and
//!   `p=<proof>` comes last, base64 of the digest's length. The proof is checked as RFC 5802
//!   says: ClientKey = proof XOR HMAC(StoredKey, AuthMessage), and H(ClientKey) must equal
//!   StoredKey (constant-time comparison).
//! * AuthMessage is built from the bytes the client sent (RFC 5802); Kafka rebuilds it from
//!   the parsed fields, which gives the same bytes for every message it accepts.
//! * A credential with fewer than 4096 iterations is refused (Kafka's minimum). The
//!   constructors do not check bounds: AlterUserScramCredentials does, with Kafka's messages
//!   ([`ScramMechanism::min_iterations`] / [`ScramMechanism::max_iterations`]).
//!
//! # Unknown users
//!
//! Kafka fails at the client-first message when the user is unknown, which tells a prober
//! that the name does not exist. phxq follows RFC 5802 §5.1 instead: the caller answers with
//! [`ScramCredential::fake`], a made-up credential (a salt derived from the username and a
//! secret, so the same name always gets the same salt; Kafka's default 4096 iterations; keys
//! no password matches), and the exchange fails at the proof with
//! [`ScramError::InvalidProof`], exactly like a wrong password.

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The SCRAM mechanisms phxq offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms, in Kafka's type order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name, as in SaslHandshake and `sasl.enabled.mechanisms`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of a SASL name (exact, case-sensitive, as Kafka matches it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism's number in DescribeUserScramCredentials / AlterUserScramCredentials
    /// (Kafka's `org.apache.kafka.clients.admin.ScramMechanism`; 0 is UNKNOWN).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of an admin API number; `None` for 0 (UNKNOWN) and anything else.
    pub fn from_kafka_type(t: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    /// The fewest iterations Kafka accepts (4096 for both hashes).
    pub fn min_iterations(self) -> u32 {
        4096
    }

    /// The most iterations AlterUserScramCredentials accepts (16384).
    pub fn max_iterations(self) -> u32 {
        16384
    }

    /// The digest length in bytes: the length of StoredKey, ServerKey, the salted password
    /// and the proof.
    pub fn digest_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    pub(super) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub(super) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac =
                <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, parts),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Hi(password, salt, iterations) of RFC 5802 (PBKDF2 with HMAC of the mechanism's hash):
/// the salted password a client sends in AlterUserScramCredentials. Takes any iterations
/// (0 counts as 1); bounds are the caller's.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0u8; mechanism.digest_len()];
    match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
        }
    }
    out
}

/// A fresh random salt (32 bytes from the OS) for a new credential.
pub fn random_salt() -> Vec<u8> {
    let mut salt = vec![0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    salt
}

/// A fresh server nonce: 32 random alphanumeric characters from the OS.
pub fn random_nonce() -> String {
    OsRng
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

const SALT_LEN: usize = 32;

/// What went wrong in an exchange. The messages never quote the client's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message that does not parse (the detail names the rule it broke).
    #[error("Invalid SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding (`p=` in the gs2 header).
    #[error("Authentication failed: channel binding is not supported")]
    ChannelBindingNotSupported,
    /// The gs2 header's `a=` names someone other than the username.
    #[error(
        "Authentication failed: Client requested an authorization id that is different from username"
    )]
    AuthzidMismatch,
    /// An extension phxq cannot honour: `tokenauth` (delegation tokens) or `m` (reserved).
    #[error("Authentication failed: unsupported SCRAM extension '{0}'")]
    UnsupportedExtension(&'static str),
    /// The client-final `c=` is not the base64 of the client-first gs2 header.
    #[error("Authentication failed: invalid channel binding in the final client message")]
    ChannelBindingMismatch,
    /// The client-final `r=` is not the nonce of the server-first message.
    #[error("Authentication failed: Invalid client nonce in the final client message")]
    NonceMismatch,
    /// The proof is wrong: a wrong password, or an unknown user.
    #[error("Authentication failed: Invalid user credentials")]
    InvalidProof,
    /// The credential given to [`ScramServer::server_first`] is for the other hash.
    #[error("SCRAM credential is for {credential}, the exchange is {exchange}")]
    MechanismMismatch {
        credential: ScramMechanism,
        exchange: ScramMechanism,
    },
    /// The credential given to [`ScramServer::server_first`] cannot be used (fewer than
    /// 4096 iterations, keys of the wrong length).
    #[error("Unusable SCRAM credential: {0}")]
    UnusableCredential(&'static str),
    /// The server nonce given to [`ScramServer::new`] is empty or not printable ASCII
    /// without `,` (reported by `client_first`).
    #[error("Invalid SCRAM server nonce")]
    InvalidServerNonce,
    /// A call out of order, or after the exchange failed or completed.
    #[error("Unexpected SCRAM message: {0}")]
    OutOfOrder(&'static str),
}

/// A user's SCRAM credential for one mechanism, as Kafka stores it (no password). `Debug`
/// leaves the keys out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("salt", &BASE64.encode(&self.salt))
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .field("iterations", &self.iterations)
            .finish()
    }
}

impl ScramCredential {
    /// The credential of a password (its UTF-8 bytes, no SASLprep, as in Kafka). No bounds
    /// are checked (see the module documentation).
    #[allow(dead_code)] // the broker builds credentials from salted passwords; tests use this
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let salted = salted_password(mechanism, password.as_bytes(), salt, iterations);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// The credential of a salted password, Hi(password, salt, iterations): what
    /// AlterUserScramCredentials carries (the client computes it). No bounds are checked: the
    /// caller refuses an empty salt, a salted password that is not
    /// [`ScramMechanism::digest_len`] long and iterations out of Kafka's bounds.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, &[b"Client Key"]);
        ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, &[b"Server Key"]),
            iterations,
        }
    }

    /// Whether `password` is this credential's password (SASL/PLAIN checks passwords against
    /// the SCRAM credentials). Runs PBKDF2 with the credential's iterations (milliseconds:
    /// keep it off the async threads) and compares in constant time. A credential SCRAM
    /// would refuse (fewer than 4096 iterations) matches no password.
    pub fn verify_password(&self, password: &str) -> bool {
        if self.iterations < self.mechanism.min_iterations() {
            return false;
        }
        let m = self.mechanism;
        let salted = salted_password(m, password.as_bytes(), &self.salt, self.iterations);
        let stored_key = m.hash(&m.hmac(&salted, &[b"Client Key"]));
        let server_key = m.hmac(&salted, &[b"Server Key"]);
        let same = stored_key.ct_eq(&self.stored_key) & server_key.ct_eq(&self.server_key);
        same.into()
    }

    /// A made-up credential for a user that does not exist, so that a SCRAM exchange (or a
    /// PLAIN check) runs as for a real user and fails only at the proof. Derived from the
    /// username and a random secret of this process: a prober asking twice for one name sees
    /// the same salt (a fresh salt each time would give the unknown names away). Another
    /// broker, or this one after a restart, answers with another salt; use
    /// [`ScramCredential::fake_with_secret`] with a secret shared by the cluster to avoid that.
    pub fn fake(mechanism: ScramMechanism, username: &str) -> Self {
        static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
        let secret = SECRET.get_or_init(|| {
            let mut s = [0u8; 32];
            OsRng.fill_bytes(&mut s);
            s
        });
        Self::fake_with_secret(mechanism, username, secret)
    }

    /// [`ScramCredential::fake`] with the given secret: the salt (32 bytes, as
    /// [`random_salt`]) and the keys are HMACs of the secret over the mechanism and the
    /// username; 4096 iterations (Kafka's default). Nobody knows a password for these keys.
    pub fn fake_with_secret(mechanism: ScramMechanism, username: &str, secret: &[u8]) -> Self {
        // Digest-long outputs; the salt keeps the first SALT_LEN bytes (<= either digest).
        let derive = |label: &[u8]| {
            mechanism.hmac(
                secret,
                &[
                    label,
                    b"\0",
                    mechanism.name().as_bytes(),
                    b"\0",
                    username.as_bytes(),
                ],
            )
        };
        let mut salt = derive(b"phxq fake SCRAM salt");
        salt.truncate(SALT_LEN);
        ScramCredential {
            mechanism,
            salt,
            stored_key: derive(b"phxq fake SCRAM stored key"),
            server_key: derive(b"phxq fake SCRAM server key"),
            iterations: mechanism.min_iterations(),
        }
    }
}

/// What the client-first message says; `username` is the one to look the credential up for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The decoded `n=` name.
    pub username: String,
    /// The gs2 header's `a=`, when the client sent one (it equals `username` then).
    pub authzid: Option<String>,
    pub client_nonce: String,
}

/// The server side of one SCRAM exchange. See the module documentation for the order of the
/// calls and the rules.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    server_nonce: String,
    state: State,
}

#[derive(Debug)]
enum State {
    AwaitClientFirst,
    AwaitCredential(FirstSeen),
    AwaitClientFinal {
        first: FirstSeen,
        server_first: String,
        credential: ScramCredential,
    },
    Complete,
    /// The exchange failed; `deferred` is an error `server_first` could not return, which
    /// `client_final` reports.
    Failed {
        deferred: Option<ScramError>,
    },
}

#[derive(Debug)]
struct FirstSeen {
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
    username: String,
}

impl ScramServer {
    /// A new exchange with the given server nonce ([`random_nonce`]; tests inject theirs).
    /// A nonce that is empty or not printable ASCII without `,` fails the exchange at
    /// `client_first` ([`ScramError::InvalidServerNonce`]).
    pub fn new(mechanism: ScramMechanism, server_nonce: impl Into<String>) -> Self {
        ScramServer {
            mechanism,
            server_nonce: server_nonce.into(),
            state: State::AwaitClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Takes the client-first message; returns the username to look the credential up for.
    pub fn client_first(&mut self, msg: &[u8]) -> Result<ClientFirst, ScramError> {
        let result = match &self.state {
            State::AwaitClientFirst if !is_valid_nonce(&self.server_nonce) => {
                Err(ScramError::InvalidServerNonce)
            }
            State::AwaitClientFirst => parse_client_first(msg),
            State::Failed { .. } => Err(ScramError::OutOfOrder("the exchange failed")),
            State::Complete => Err(ScramError::OutOfOrder("the exchange is complete")),
            _ => Err(ScramError::OutOfOrder(
                "the client-first message was already received",
            )),
        };
        match result {
            Ok((seen, authzid)) => {
                let out = ClientFirst {
                    username: seen.username.clone(),
                    authzid,
                    client_nonce: seen.client_nonce.clone(),
                };
                self.state = State::AwaitCredential(seen);
                Ok(out)
            }
            Err(e) => {
                self.state = State::Failed { deferred: None };
                Err(e)
            }
        }
    }

    /// Answers the client-first message with the user's credential (or
    /// [`ScramCredential::fake`] for an unknown user): the server-first message. Never fails:
    /// called out of order it returns nothing; with a credential of the other mechanism, with
    /// fewer than 4096 iterations (Kafka's rule) or keys of the wrong length, it answers as
    /// usual and the exchange fails at `client_final`, which reports why.
    pub fn server_first(&mut self, credential: &ScramCredential) -> Vec<u8> {
        let first = match std::mem::replace(&mut self.state, State::Failed { deferred: None }) {
            State::AwaitCredential(first) => first,
            State::AwaitClientFirst => {
                self.state = State::Failed {
                    deferred: Some(ScramError::OutOfOrder(
                        "server-first before the client-first message",
                    )),
                };
                return Vec::new();
            }
            State::AwaitClientFinal { .. } => {
                self.state = State::Failed {
                    deferred: Some(ScramError::OutOfOrder(
                        "the server-first message was already sent",
                    )),
                };
                return Vec::new();
            }
            other => {
                // Failed or complete: stays so.
                self.state = other;
                return Vec::new();
            }
        };
        let server_first = format!(
            "r={}{},s={},i={}",
            first.client_nonce,
            self.server_nonce,
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let out = server_first.clone().into_bytes();
        let len = self.mechanism.digest_len();
        let unusable = if credential.mechanism != self.mechanism {
            Some(ScramError::MechanismMismatch {
                credential: credential.mechanism,
                exchange: self.mechanism,
            })
        } else if credential.iterations < self.mechanism.min_iterations() {
            Some(ScramError::UnusableCredential("Too few iterations"))
        } else if credential.stored_key.len() != len || credential.server_key.len() != len {
            Some(ScramError::UnusableCredential(
                "the keys are not the length of the mechanism's digest",
            ))
        } else {
            None
        };
        self.state = match unusable {
            Some(e) => State::Failed { deferred: Some(e) },
            None => State::AwaitClientFinal {
                first,
                server_first,
                credential: credential.clone(),
            },
        };
        out
    }

    /// Takes the client-final message; returns the server-final message (`v=<signature>`)
    /// when the proof is right, and the exchange is complete.
    pub fn client_final(&mut self, msg: &[u8]) -> Result<Vec<u8>, ScramError> {
        match std::mem::replace(&mut self.state, State::Failed { deferred: None }) {
            State::AwaitClientFinal {
                first,
                server_first,
                credential,
            } => {
                let nonce = format!("{}{}", first.client_nonce, self.server_nonce);
                let server_final =
                    verify_client_final(msg, &first, &server_first, &nonce, &credential)?;
                self.state = State::Complete;
                Ok(server_final)
            }
            State::AwaitClientFirst => Err(ScramError::OutOfOrder("no client-first message yet")),
            State::AwaitCredential(_) => Err(ScramError::OutOfOrder("no server-first message yet")),
            State::Complete => Err(ScramError::OutOfOrder("the exchange is complete")),
            State::Failed { deferred } => {
                Err(deferred.unwrap_or(ScramError::OutOfOrder("the exchange failed")))
            }
        }
    }
}

fn parse_client_first(msg: &[u8]) -> Result<(FirstSeen, Option<String>), ScramError> {
    let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (cbind, rest) = msg
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    match cbind {
        "n" | "y" => {}
        c if c.starts_with("p=") => return Err(ScramError::ChannelBindingNotSupported),
        _ => return Err(ScramError::Malformed("bad gs2 channel binding flag")),
    }
    let (authz, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    let authzid = if authz.is_empty() {
        None
    } else {
        let name = authz
            .strip_prefix("a=")
            .ok_or(ScramError::Malformed("bad gs2 authzid"))?;
        Some(decode_saslname(name)?)
    };
    let gs2_header = &msg[..msg.len() - bare.len()];

    let mut attrs = bare.split(',');
    let user_attr = attrs.next().unwrap_or_default();
    if user_attr.starts_with("m=") {
        return Err(ScramError::UnsupportedExtension("m"));
    }
    let username = decode_saslname(
        user_attr
            .strip_prefix("n=")
            .ok_or(ScramError::Malformed("no n= username"))?,
    )?;
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no r= nonce"))?;
    if !is_valid_nonce(client_nonce) {
        return Err(ScramError::Malformed("bad client nonce"));
    }
    for ext in attrs {
        let (key, value) = parse_extension(ext)?;
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            return Err(ScramError::UnsupportedExtension("tokenauth"));
        }
    }
    if let Some(a) = &authzid {
        if *a != username {
            return Err(ScramError::AuthzidMismatch);
        }
    }
    Ok((
        FirstSeen {
            gs2_header: gs2_header.to_owned(),
            client_first_bare: bare.to_owned(),
            client_nonce: client_nonce.to_owned(),
            username,
        },
        authzid,
    ))
}

fn verify_client_final(
    msg: &[u8],
    first: &FirstSeen,
    server_first: &str,
    nonce: &str,
    credential: &ScramCredential,
) -> Result<Vec<u8>, ScramError> {
    let m = credential.mechanism;
    let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (without_proof, proof) = msg
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("no p= proof at the end"))?;
    let mut attrs = without_proof.split(',');
    let binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(ScramError::Malformed("no c= channel binding"))?;
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no r= nonce"))?;
    for ext in attrs {
        parse_extension(ext)?;
    }
    let binding = BASE64
        .decode(binding)
        .map_err(|_| ScramError::Malformed("bad base64 in c="))?;
    let proof = BASE64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("bad base64 in p="))?;
    if proof.len() != m.digest_len() {
        return Err(ScramError::Malformed(
            "the proof is not the digest's length",
        ));
    }
    if binding != first.gs2_header.as_bytes() {
        return Err(ScramError::ChannelBindingMismatch);
    }
    // librdkafka before 2.6.1 (Debian's kcat links 2.0.2) puts its own nonce in front once
    // more (confluentinc/librdkafka#4895): exactly that form is taken too, as Kafka 3.x did
    // (`endsWith`). It still carries this exchange's server nonce, and the proof covers it,
    // so nothing can be replayed.
    let librdkafka_form = client_nonce.len() == first.client_nonce.len() + nonce.len()
        && client_nonce.starts_with(first.client_nonce.as_str())
        && client_nonce.ends_with(nonce);
    if client_nonce != nonce && !librdkafka_form {
        return Err(ScramError::NonceMismatch);
    }

    let auth_message = [
        first.client_first_bare.as_bytes(),
        b",",
        server_first.as_bytes(),
        b",",
        without_proof.as_bytes(),
    ];
    let client_signature = m.hmac(&credential.stored_key, &auth_message);
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if !bool::from(m.hash(&client_key).ct_eq(&credential.stored_key)) {
        return Err(ScramError::InvalidProof);
    }
    let server_signature = m.hmac(&credential.server_key, &auth_message);
    Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
}

/// `<alpha>=<value>` of an extension (Kafka's `[A-Za-z]+=[^,]+`).
fn parse_extension(ext: &str) -> Result<(&str, &str), ScramError> {
    match ext.split_once('=') {
        Some((key, value))
            if !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphabetic())
                && !value.is_empty() =>
        {
            Ok((key, value))
        }
        _ => Err(ScramError::Malformed("bad extension")),
    }
}

/// RFC 5802's nonce: printable ASCII but `,`.
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Decodes a saslname: `=2C` is `,`, `=3D` is `=`, any other `=` is refused, and so are an
/// empty name and NUL.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    if name.is_empty() {
        return Err(ScramError::Malformed("empty username"));
    }
    if name.contains('\0') {
        return Err(ScramError::Malformed("NUL in the username"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = &rest[i + 1..];
        if let Some(after) = escape.strip_prefix("2C") {
            out.push(',');
            rest = after;
        } else if let Some(after) = escape.strip_prefix("3D") {
            out.push('=');
            rest = after;
        } else {
            return Err(ScramError::Malformed("bad escape in the username"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
