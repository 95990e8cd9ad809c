//! SASL/SCRAM (RFC 5802, SHA-256 and SHA-512 of RFC 7677), client side: what the `phxq`
//! admin commands send to log in (`kafka_client.rs`). Pure, like `scram.rs`, whose hashes
//! and PBKDF2 it uses: the caller carries the messages.
//!
//! ```text
//! client-first  n,,n=<user>,r=<cnonce>               <- ScramClient::client_first
//! server-first  r=<cnonce><snonce>,s=<salt>,i=<n>     -> ScramClient::client_final
//! client-final  c=biws,r=<cnonce><snonce>,p=<proof>  <-
//! server-final  v=<server signature>                  -> ScramClient::verify_server_final
//! ```
//!
//! Rules: the server's messages are untrusted input: one that does not parse, a nonce that
//! does not start with ours (or adds nothing), fewer iterations than the mechanism's
//! minimum or more than its maximum (a server must not make us compute for minutes), an
//! `e=` error, or a server signature that does not match (a server that does not know the
//! password) is an error value, never a panic. The username is escaped (`,` as `=2C`, `=`
//! as `=3D`); the password is taken as its UTF-8 bytes (no SASLprep, as in Kafka).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::scram::{random_nonce, salted_password, ScramMechanism};

/// The client side of one exchange.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    /// ServerSignature expected in server-final, once client-final is built.
    server_signature: Option<Vec<u8>>,
}

/// The gs2 header: no channel binding, no authzid.
const GS2_HEADER: &str = "n,,";

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str) -> ScramClient {
        ScramClient::with_nonce(mechanism, username, password, &random_nonce())
    }

    /// With a given client nonce (RFC test vectors).
    pub fn with_nonce(
        mechanism: ScramMechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> ScramClient {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_nonce: nonce.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            server_signature: None,
        }
    }

    /// The client-first message.
    pub fn client_first(&self) -> Vec<u8> {
        format!("{GS2_HEADER}{}", self.client_first_bare).into_bytes()
    }

    /// Takes the server-first message; returns the client-final message (with the proof).
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "the server-first SCRAM message is not UTF-8".to_string())?;
        if let Some(e) = server_first.strip_prefix("e=") {
            return Err(format!("the server refused the SCRAM exchange: {e}"));
        }
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => {
                    salt = Some(
                        BASE64
                            .decode(v)
                            .map_err(|_| "the server's SCRAM salt is not base64".to_string())?,
                    )
                }
                Some(("i", v)) => {
                    iterations = Some(v.parse::<u32>().map_err(|_| {
                        "the server's SCRAM iteration count is not a number".to_string()
                    })?)
                }
                Some(("m", _)) => return Err("the server asked for a SCRAM extension".into()),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err("the server-first SCRAM message lacks r=, s= or i=".into());
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err("the server's SCRAM nonce does not extend ours".into());
        }
        if nonce.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err("the server's SCRAM nonce is not printable ASCII".into());
        }
        let m = self.mechanism;
        if iterations < m.min_iterations() || iterations > m.max_iterations() {
            return Err(format!(
                "the server asks for {iterations} SCRAM iterations (accepted: {}..={})",
                m.min_iterations(),
                m.max_iterations()
            ));
        }
        if salt.is_empty() {
            return Err("the server's SCRAM salt is empty".into());
        }
        let salted = salted_password(m, self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", BASE64.encode(GS2_HEADER));
        let auth = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = m.hmac(&salted, &[b"Client Key"]);
        let stored_key = m.hash(&client_key);
        let signature = m.hmac(&stored_key, &[auth.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, &[b"Server Key"]);
        self.server_signature = Some(m.hmac(&server_key, &[auth.as_bytes()]));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proves it knows the credential.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let expected = self
            .server_signature
            .as_ref()
            .ok_or_else(|| "server-final SCRAM message before client-final".to_string())?;
        let text = std::str::from_utf8(server_final)
            .map_err(|_| "the server-final SCRAM message is not UTF-8".to_string())?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(format!("the server refused the SCRAM proof: {e}"));
        }
        let v = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or_else(|| "the server-final SCRAM message has no v=".to_string())?;
        let got = BASE64
            .decode(v)
            .map_err(|_| "the server's SCRAM signature is not base64".to_string())?;
        if bool::from(got.ct_eq(expected)) {
            Ok(())
        } else {
            Err("the server's SCRAM signature is wrong: it does not know the credential".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramCredential, ScramServer};

    /// RFC 7677 §3's SCRAM-SHA-256 example, byte for byte.
    #[test]
    fn rfc7677_sha256_vector() {
        let mut c = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = c
            .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            last,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c
            .verify_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_err());
        assert!(c.verify_server_final(b"e=invalid-proof").is_err());
    }

    /// Client against the broker's server, both hashes, a name that needs escaping.
    fn exchange(m: ScramMechanism, user: &str, password: &str, actual: &str) -> Result<(), String> {
        let credential = ScramCredential::from_password(m, actual, b"salt-of-the-earth", 4096);
        let mut client = ScramClient::new(m, user, password);
        let mut server = ScramServer::new(m, random_nonce());
        let first = server.client_first(&client.client_first()).unwrap();
        assert_eq!(first.username, user);
        let server_first = server.server_first(&credential);
        let last = client.client_final(&server_first)?;
        let server_final = server.client_final(&last).map_err(|e| e.to_string())?;
        client.verify_server_final(&server_final)
    }

    #[test]
    fn logs_in_to_the_server_with_both_hashes() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            exchange(m, "alice,=x", "s3cret", "s3cret").unwrap();
            let e = exchange(m, "alice", "wrong", "s3cret").unwrap_err();
            assert!(e.contains("Invalid user credentials"), "{e}");
        }
    }

    #[test]
    fn refuses_bad_server_first_messages() {
        let m = ScramMechanism::Sha256;
        let mut c = ScramClient::with_nonce(m, "u", "p", "abc");
        for bad in [
            &b"r=xyzdef,s=c2FsdA==,i=4096"[..],  // not our nonce
            b"r=abc,s=c2FsdA==,i=4096",          // adds nothing
            b"r=abcdef,s=c2FsdA==,i=1",          // too few iterations
            b"r=abcdef,s=c2FsdA==,i=4000000000", // far too many
            b"r=abcdef,s=!!!,i=4096",            // salt not base64
            b"r=abcdef,s=,i=4096",               // empty salt
            b"r=abcdef,i=4096",                  // no salt
            b"r=abcdef,s=c2FsdA==,i=x",          // iterations not a number
            b"e=unknown-user",                   // an error
            b"\xff\xfe",                         // not UTF-8
            b"m=ext,r=abcdef,s=c2FsdA==,i=4096", // a mandatory extension
        ] {
            assert!(
                c.client_final(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            c.verify_server_final(b"v=AAAA").is_err(),
            "before client-final"
        );
    }
}
