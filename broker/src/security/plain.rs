//! SASL/PLAIN (RFC 4616), server side: the one client message, `authzid NUL authcid NUL
//! passwd`, parsed the way Kafka's `PlainSaslServer` does. Pure: checking the password is the
//! caller's (phxq checks it against the user's SCRAM credentials with
//! `ScramCredential::verify_password`, and against `ScramCredential::fake` for an unknown
//! user so that both take the same time).
//!
//! # What is accepted, what is refused
//!
//! * Exactly two NULs, so three fields; fewer or more is refused ("expected 3 tokens, got
//!   N", Kafka's message). A NUL cannot hide inside a password: RFC 4616 forbids it.
//! * The message must be UTF-8 (RFC 4616); Kafka decodes it leniently, replacing bad bytes,
//!   which would only turn into a wrong password there.
//! * The username (authcid) and the password must not be empty (RFC 4616 and Kafka: "username
//!   not specified", "password not specified").
//! * The authzid may be empty; if not, it must equal the username (Kafka's rule: phxq, like
//!   Kafka, has no proxy authorization).
//! * No SASLprep and no length limit beyond the request's own (as Kafka).

use std::fmt;

/// A parsed PLAIN message. The password is kept out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainAuth {
    /// The authzid, when the client sent one (it equals `username` then).
    pub authzid: Option<String>,
    /// The authcid: who is authenticating.
    pub username: String,
    pub password: String,
}

impl fmt::Debug for PlainAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainAuth")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a PLAIN message is refused; the messages are Kafka's (where Kafka has one) and never
/// quote the client's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("Invalid SASL/PLAIN response: expected 3 tokens, got {0}")]
    TokenCount(usize),
    #[error("Invalid SASL/PLAIN response: not UTF-8")]
    NotUtf8,
    #[error("Authentication failed: username not specified")]
    EmptyUsername,
    #[error("Authentication failed: password not specified")]
    EmptyPassword,
    #[error(
        "Authentication failed: Client requested an authorization id that is different from username"
    )]
    AuthzidMismatch,
}

/// Parses `authzid NUL authcid NUL passwd`.
pub fn parse(msg: &[u8]) -> Result<PlainAuth, PlainError> {
    let tokens: Vec<&[u8]> = msg.split(|&b| b == 0).collect();
    let [authzid, username, password] = tokens[..] else {
        return Err(PlainError::TokenCount(tokens.len()));
    };
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| PlainError::NotUtf8)
    };
    let (authzid, username, password) = (text(authzid)?, text(username)?, text(password)?);
    if username.is_empty() {
        return Err(PlainError::EmptyUsername);
    }
    if password.is_empty() {
        return Err(PlainError::EmptyPassword);
    }
    if !authzid.is_empty() && authzid != username {
        return Err(PlainError::AuthzidMismatch);
    }
    Ok(PlainAuth {
        authzid: (!authzid.is_empty()).then_some(authzid),
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        assert_eq!(
            parse(b"\0alice\0s3cret").unwrap(),
            PlainAuth {
                authzid: None,
                username: "alice".into(),
                password: "s3cret".into(),
            }
        );
        let auth = parse(b"alice\0alice\0pass word").unwrap();
        assert_eq!(auth.authzid.as_deref(), Some("alice"));
        assert_eq!(auth.password, "pass word");
        // UTF-8 and the characters SCRAM escapes pass as they are.
        let auth = parse("\0jörg,=x\0pässwörd=,".as_bytes()).unwrap();
        assert_eq!(auth.username, "jörg,=x");
        assert_eq!(auth.password, "pässwörd=,");
    }

    #[test]
    fn refused() {
        let cases: &[(&[u8], PlainError)] = &[
            (b"", PlainError::TokenCount(1)),
            (b"alice", PlainError::TokenCount(1)),
            (b"alice\0pw", PlainError::TokenCount(2)),
            (b"\0alice\0pw\0", PlainError::TokenCount(4)),
            (b"\0alice\0p\0w", PlainError::TokenCount(4)),
            (b"\0\0\0\0\0", PlainError::TokenCount(6)),
            (b"\0\0pw", PlainError::EmptyUsername),
            (b"\0alice\0", PlainError::EmptyPassword),
            (b"\0\0", PlainError::EmptyUsername),
            (b"bob\0alice\0pw", PlainError::AuthzidMismatch),
            (b"Alice\0alice\0pw", PlainError::AuthzidMismatch),
            (b"\0al\xffice\0pw", PlainError::NotUtf8),
            (b"\0alice\0\xc3", PlainError::NotUtf8),
            (b"\xfe\0alice\0pw", PlainError::NotUtf8),
        ];
        for (msg, expected) in cases {
            assert_eq!(parse(msg).as_ref(), Err(expected), "{msg:?}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", parse(b"\0alice\0hunter2").unwrap());
        assert!(shown.contains("alice") && !shown.contains("hunter2"));
    }
}
