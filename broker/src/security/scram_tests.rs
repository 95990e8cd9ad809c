//! Tests of `scram.rs`: RFC 7677's example byte for byte, exchanges with a client written
//! here, and every refusal (a child module, so it sees the exchange's private state).

use super::*;

/// RFC 7677 §3's SCRAM-SHA-256 example.
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn authenticated(server: &ScramServer) -> bool {
    matches!(server.state, State::Complete)
}

fn rfc_credential() -> ScramCredential {
    let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096)
}

/// A client written from RFC 5802 with the crates directly, not the module's helpers.
struct TestClient {
    mechanism: ScramMechanism,
    gs2_header: String,
    client_first_bare: String,
}

impl TestClient {
    fn new(mechanism: ScramMechanism, user: &str, nonce: &str) -> Self {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        TestClient {
            mechanism,
            gs2_header: "n,,".into(),
            client_first_bare: format!("n={name},r={nonce}"),
        }
    }

    fn first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes()
    }

    /// (client-final message, expected server-final message).
    fn last(&self, server_first: &[u8], password: &str) -> (Vec<u8>, Vec<u8>) {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for attr in server_first.split(',') {
            match attr.split_at(2) {
                ("r=", v) => nonce = v,
                ("s=", v) => salt = BASE64.decode(v).unwrap(),
                ("i=", v) => iterations = v.parse().unwrap(),
                _ => panic!("unexpected {attr}"),
            }
        }
        let without_proof = format!("c={},r={nonce}", BASE64.encode(&self.gs2_header));
        let auth = format!("{},{server_first},{without_proof}", self.client_first_bare);
        macro_rules! keys {
            ($d:ty) => {{
                let mut salted = vec![0u8; <$d as Digest>::output_size()];
                pbkdf2::pbkdf2_hmac::<$d>(password.as_bytes(), &salt, iterations, &mut salted);
                let mac = |key: &[u8], data: &[u8]| {
                    let mut m = <Hmac<$d> as KeyInit>::new_from_slice(key).unwrap();
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                };
                let client_key = mac(&salted, b"Client Key");
                let stored_key = <$d>::digest(&client_key).to_vec();
                let signature = mac(&stored_key, auth.as_bytes());
                let proof: Vec<u8> = client_key
                    .iter()
                    .zip(&signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                (proof, mac(&mac(&salted, b"Server Key"), auth.as_bytes()))
            }};
        }
        let (proof, server_signature) = match self.mechanism {
            ScramMechanism::Sha256 => keys!(Sha256),
            ScramMechanism::Sha512 => keys!(Sha512),
        };
        (
            format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes(),
            format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        )
    }
}

#[test]
fn rfc7677_sha256_vector() {
    let mut server = ScramServer::new(ScramMechanism::Sha256, RFC_SERVER_NONCE);
    let first = server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
    assert_eq!(
        first,
        ClientFirst {
            username: "user".into(),
            authzid: None,
            client_nonce: "rOprNGfwEbeRWgbNEkqO".into(),
        }
    );
    let server_first = server.server_first(&rfc_credential());
    assert_eq!(server_first, RFC_SERVER_FIRST.as_bytes());
    assert!(!authenticated(&server));
    let server_final = server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(server_final, RFC_SERVER_FINAL.as_bytes());
    assert!(authenticated(&server));
    // Nothing after the end.
    assert!(matches!(
        server.client_final(RFC_CLIENT_FINAL.as_bytes()),
        Err(ScramError::OutOfOrder(_))
    ));
}

#[test]
fn rfc7677_client_written_here_agrees() {
    let client = TestClient::new(ScramMechanism::Sha256, "user", "rOprNGfwEbeRWgbNEkqO");
    let (last, expected) = client.last(RFC_SERVER_FIRST.as_bytes(), "pencil");
    assert_eq!(last, RFC_CLIENT_FINAL.as_bytes());
    assert_eq!(expected, RFC_SERVER_FINAL.as_bytes());
}

fn run(
    mechanism: ScramMechanism,
    user: &str,
    credential: Option<&ScramCredential>,
    password: &str,
) -> (ScramServer, Result<Vec<u8>, ScramError>, Vec<u8>) {
    let client = TestClient::new(mechanism, user, "fyko+d2lbbFgONRv9qkxdawL");
    let mut server = ScramServer::new(mechanism, random_nonce());
    let first = server.client_first(&client.first()).unwrap();
    assert_eq!(first.username, user);
    let server_first = match credential {
        Some(c) => server.server_first(c),
        None => server.server_first(&ScramCredential::fake(mechanism, user)),
    };
    let (last, expected) = client.last(&server_first, password);
    let result = server.client_final(&last);
    (server, result, expected)
}

#[test]
fn sha512_round_trip() {
    let m = ScramMechanism::Sha512;
    let cred = ScramCredential::from_password(m, "s3cret", &random_salt(), 8192);
    assert_eq!(cred.stored_key.len(), 64);
    let (server, result, expected) = run(m, "alice", Some(&cred), "s3cret");
    assert_eq!(result.unwrap(), expected);
    assert!(authenticated(&server));
}

#[test]
fn wrong_password_fails_at_the_proof() {
    let cred = rfc_credential();
    let (server, result, _) = run(ScramMechanism::Sha256, "user", Some(&cred), "pencils");
    assert_eq!(result, Err(ScramError::InvalidProof));
    assert!(!authenticated(&server));
}

#[test]
fn unknown_user_runs_to_the_proof_and_fails_like_a_wrong_password() {
    for m in ScramMechanism::ALL {
        let (server, result, _) = run(m, "nobody", None, "guess");
        assert_eq!(result, Err(ScramError::InvalidProof));
        assert!(!authenticated(&server));
        assert_eq!(
            ScramCredential::fake(m, "nobody").stored_key.len(),
            m.digest_len()
        );
    }
    // The made-up salt is stable per name, differs between names and secrets, and looks
    // like a real one.
    let m = ScramMechanism::Sha256;
    assert_eq!(
        ScramCredential::fake(m, "nobody"),
        ScramCredential::fake(m, "nobody")
    );
    assert_ne!(
        ScramCredential::fake(m, "nobody").salt,
        ScramCredential::fake(m, "other").salt
    );
    let a = ScramCredential::fake_with_secret(m, "nobody", b"k");
    assert_eq!(a, ScramCredential::fake_with_secret(m, "nobody", b"k"));
    assert_ne!(
        a.salt,
        ScramCredential::fake_with_secret(m, "other", b"k").salt
    );
    assert_ne!(
        a.salt,
        ScramCredential::fake_with_secret(m, "nobody", b"j").salt
    );
    assert_ne!(
        a.salt,
        ScramCredential::fake_with_secret(ScramMechanism::Sha512, "nobody", b"k").salt
    );
    assert_eq!(a.salt.len(), random_salt().len());
    assert_eq!(a.iterations, 4096);
    for guess in ["", "nobody", "k", "password"] {
        assert!(!a.verify_password(guess));
    }
}

#[test]
fn nonce_mismatch() {
    let mut server = ScramServer::new(ScramMechanism::Sha256, RFC_SERVER_NONCE);
    server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
    server.server_first(&rfc_credential());
    let last = RFC_CLIENT_FINAL.replace("k0,p=", "k1,p=");
    assert_eq!(
        server.client_final(last.as_bytes()),
        Err(ScramError::NonceMismatch)
    );
    // Only the client's part of the nonce, too.
    let mut server = ScramServer::new(ScramMechanism::Sha256, RFC_SERVER_NONCE);
    server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
    server.server_first(&rfc_credential());
    let last = "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert_eq!(
        server.client_final(last.as_bytes()),
        Err(ScramError::NonceMismatch)
    );
    // librdkafka < 2.6.1's form (the client nonce once more in front) passes the nonce
    // check and is then judged by its proof; anything else around the nonce does not.
    let buggy = RFC_CLIENT_FINAL.replace(
        "r=rOprNGfwEbeRWgbNEkqO",
        "r=rOprNGfwEbeRWgbNEkqOrOprNGfwEbeRWgbNEkqO",
    );
    let mut server = ScramServer::new(ScramMechanism::Sha256, RFC_SERVER_NONCE);
    server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
    server.server_first(&rfc_credential());
    assert_eq!(
        server.client_final(buggy.as_bytes()),
        Err(ScramError::InvalidProof)
    );
    let junk = RFC_CLIENT_FINAL.replace(
        "r=rOprNGfwEbeRWgbNEkqO",
        "r=xxxxxxxxxxxxxxxxxxxxrOprNGfwEbeRWgbNEkqO",
    );
    let mut server = ScramServer::new(ScramMechanism::Sha256, RFC_SERVER_NONCE);
    server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
    server.server_first(&rfc_credential());
    assert_eq!(
        server.client_final(junk.as_bytes()),
        Err(ScramError::NonceMismatch)
    );
}

#[test]
fn bad_channel_binding() {
    for binding in ["eSws", "cD10bHMtdW5pcXVlLCw=", "bixhPXVzZXIs"] {
        let mut server = ScramServer::new(ScramMechanism::Sha256, RFC_SERVER_NONCE);
        server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
        server.server_first(&rfc_credential());
        let last = RFC_CLIENT_FINAL.replace("c=biws", &format!("c={binding}"));
        assert_eq!(
            server.client_final(last.as_bytes()),
            Err(ScramError::ChannelBindingMismatch),
            "{binding}"
        );
    }
}

#[test]
fn gs2_header_variants() {
    // `y,,` is accepted, and c= must then be its base64 ("eSws").
    let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
    let first = server.client_first(b"y,,n=user,r=c").unwrap();
    assert_eq!(first.username, "user");
    server.server_first(&rfc_credential());
    assert_eq!(
        server.client_final(format!("c=biws,r=cs,p={}", BASE64.encode([0u8; 32])).as_bytes()),
        Err(ScramError::ChannelBindingMismatch)
    );
    // An authzid equal to the username is accepted; a different one is refused.
    let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
    let first = server.client_first(b"n,a=us=2Cer,n=us=2Cer,r=c").unwrap();
    assert_eq!(first.authzid.as_deref(), Some("us,er"));
    let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
    assert_eq!(
        server.client_first(b"n,a=admin,n=user,r=c"),
        Err(ScramError::AuthzidMismatch)
    );
    // Channel binding asked: refused.
    let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
    assert_eq!(
        server.client_first(b"p=tls-unique,,n=user,r=c"),
        Err(ScramError::ChannelBindingNotSupported)
    );
}

#[test]
fn authzid_flows_into_the_channel_binding() {
    // The RFC 5802 client with an authzid: c= carries "n,a=user,".
    let cred = rfc_credential();
    let client = TestClient {
        mechanism: ScramMechanism::Sha256,
        gs2_header: "n,a=user,".into(),
        client_first_bare: "n=user,r=abc".into(),
    };
    let mut server = ScramServer::new(ScramMechanism::Sha256, "xyz");
    server.client_first(&client.first()).unwrap();
    let server_first = server.server_first(&cred);
    let (last, expected) = client.last(&server_first, "pencil");
    assert_eq!(server.client_final(&last).unwrap(), expected);
}

#[test]
fn extensions() {
    let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
    assert_eq!(
        server.client_first(b"n,,n=user,r=c,tokenauth=true"),
        Err(ScramError::UnsupportedExtension("tokenauth"))
    );
    let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
    assert_eq!(
        server.client_first(b"n,,n=user,r=c,tokenauth=TRUE"),
        Err(ScramError::UnsupportedExtension("tokenauth"))
    );
    let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
    assert_eq!(
        server.client_first(b"n,,m=x,n=user,r=c"),
        Err(ScramError::UnsupportedExtension("m"))
    );
    // Unknown extensions (and tokenauth=false) are ignored, as Kafka does, and they are
    // part of the AuthMessage.
    let cred = rfc_credential();
    let client = TestClient {
        mechanism: ScramMechanism::Sha256,
        gs2_header: "n,,".into(),
        client_first_bare: "n=user,r=abc,tokenauth=false,foo=bar".into(),
    };
    let mut server = ScramServer::new(ScramMechanism::Sha256, "xyz");
    assert_eq!(
        server.client_first(&client.first()).unwrap().username,
        "user"
    );
    let server_first = server.server_first(&cred);
    let (last, expected) = client.last(&server_first, "pencil");
    assert_eq!(server.client_final(&last).unwrap(), expected);
}

#[test]
fn saslname_escaping() {
    assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
    assert_eq!(decode_saslname("=3D=2C").unwrap(), "=,");
    assert_eq!(decode_saslname("=3D2C").unwrap(), "=2C");
    assert_eq!(decode_saslname("üser").unwrap(), "üser");
    for bad in [
        "", "a=", "a=2", "a=2c", "a=3d", "a=41", "=", "a\0b", "a==2C",
    ] {
        assert!(decode_saslname(bad).is_err(), "{bad:?}");
    }
    // A whole exchange for a name with both escapes.
    let m = ScramMechanism::Sha256;
    let cred = ScramCredential::from_password(m, "pw", b"salt", 4096);
    let (server, result, expected) = run(m, "o'brien,=x", Some(&cred), "pw");
    assert_eq!(result.unwrap(), expected);
    assert!(authenticated(&server));
}

#[test]
fn malformed_client_first() {
    let cases: &[&[u8]] = &[
        b"",
        b"n",
        b"n,",
        b"n,,",
        b"x,,n=user,r=c",
        b"nn,,n=user,r=c",
        b"n,b=user,n=user,r=c",
        b"n,a=,n=user,r=c",
        b"n,,r=c,n=user",
        b"n,,n=user",
        b"n,,n=user,",
        b"n,,n=user,r=",
        b"n,,n=user,r=a b",
        b"n,,n=user,r=\x7f",
        b"n,,n=,r=c",
        b"n,,n=us=er,r=c",
        b"n,,user,r=c",
        b"n,,n=user,r=c,",
        b"n,,n=user,r=c,=x",
        b"n,,n=user,r=c,k=",
        b"n,,n=user,r=c,1=x",
        b"n,,n=user,r=c,noequals",
        b"n,,n=\xff\xfe,r=c",
        b"\xc3",
        b",,,,,,",
        b"==========",
    ];
    for case in cases {
        let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
        let err = server.client_first(case).unwrap_err();
        assert!(matches!(err, ScramError::Malformed(_)), "{case:?}: {err:?}");
        // A failed exchange refuses everything after.
        assert_eq!(server.server_first(&rfc_credential()), Vec::<u8>::new());
        assert!(matches!(
            server.client_first(RFC_CLIENT_FIRST.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
    }
}

#[test]
fn malformed_client_final() {
    let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let cases: Vec<String> = vec![
        String::new(),
        "p=".into(),
        format!("c=biws,r={nonce}"),
        format!("c=biws,r={nonce},p="),
        format!("c=biws,r={nonce},p=!!!!"),
        format!("c=biws,r={nonce},p=AAAA"),
        format!("c=biws,r={nonce},p={proof}{proof}"),
        format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ"),
        format!("r={nonce},p={proof}"),
        format!("c=biws,p={proof}"),
        format!("c=bi,r={nonce},p={proof}"),
        format!("c=biws,x={nonce},p={proof}"),
        format!("c=biws,r={nonce},,p={proof}"),
        format!("c=biws,r={nonce},p={proof},x=y"),
        format!("c=biws,r={nonce},p={proof},"),
        format!("x,c=biws,r={nonce},p={proof}"),
        ",p=,p=,p=".into(),
    ];
    for case in cases
        .iter()
        .map(|c| c.as_bytes())
        .chain([&b"\xff,p=AA=="[..]])
    {
        let mut server = ScramServer::new(ScramMechanism::Sha256, RFC_SERVER_NONCE);
        server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
        server.server_first(&rfc_credential());
        let err = server.client_final(case).unwrap_err();
        assert!(
            matches!(err, ScramError::Malformed(_)),
            "{:?}: {err:?}",
            String::from_utf8_lossy(case)
        );
        assert!(matches!(
            server.client_final(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
    }
}

#[test]
fn out_of_order() {
    let cred = rfc_credential();
    let fresh = || ScramServer::new(ScramMechanism::Sha256, "s");
    // server_first before client_first: nothing to send, and the exchange is over.
    let mut server = fresh();
    assert_eq!(server.server_first(&cred), Vec::<u8>::new());
    assert!(matches!(
        server.client_final(RFC_CLIENT_FINAL.as_bytes()),
        Err(ScramError::OutOfOrder(_))
    ));
    let mut server = fresh();
    assert!(matches!(
        server.client_final(RFC_CLIENT_FINAL.as_bytes()),
        Err(ScramError::OutOfOrder(_))
    ));
    assert!(matches!(
        server.client_first(b"n,,n=user,r=c"),
        Err(ScramError::OutOfOrder(_))
    ));
    let mut server = fresh();
    server.client_first(b"n,,n=user,r=c").unwrap();
    assert!(matches!(
        server.client_final(RFC_CLIENT_FINAL.as_bytes()),
        Err(ScramError::OutOfOrder(_))
    ));
    let mut server = fresh();
    server.client_first(b"n,,n=user,r=c").unwrap();
    assert!(matches!(
        server.client_first(b"n,,n=user,r=c"),
        Err(ScramError::OutOfOrder(_))
    ));
    // server_first twice: the second answer is empty and the exchange fails.
    let mut server = fresh();
    server.client_first(b"n,,n=user,r=c").unwrap();
    assert!(!server.server_first(&cred).is_empty());
    assert_eq!(server.server_first(&cred), Vec::<u8>::new());
    assert!(matches!(
        server.client_final(b"c=biws,r=cs,p=AAAA"),
        Err(ScramError::OutOfOrder(_))
    ));
    // After completion, nothing.
    let mut server = ScramServer::new(ScramMechanism::Sha256, RFC_SERVER_NONCE);
    server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
    server.server_first(&cred);
    server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(server.server_first(&cred), Vec::<u8>::new());
    assert!(authenticated(&server));
    assert!(matches!(
        server.client_first(RFC_CLIENT_FIRST.as_bytes()),
        Err(ScramError::OutOfOrder(_))
    ));
}

#[test]
fn unusable_credentials_fail_at_client_final() {
    let try_with = |cred: &ScramCredential| {
        let client = TestClient::new(ScramMechanism::Sha256, "user", "c");
        let mut server = ScramServer::new(ScramMechanism::Sha256, "s");
        server.client_first(&client.first()).unwrap();
        let server_first = server.server_first(cred);
        assert!(!server_first.is_empty());
        let (last, _) = client.last(&server_first, "pencil");
        let result = server.client_final(&last);
        assert!(!authenticated(&server));
        result.unwrap_err()
    };
    let sha512 = ScramCredential::from_password(ScramMechanism::Sha512, "pencil", b"s", 4096);
    assert!(matches!(
        try_with(&sha512),
        ScramError::MechanismMismatch { .. }
    ));
    let weak = ScramCredential::from_password(ScramMechanism::Sha256, "pencil", b"s", 4095);
    assert!(matches!(try_with(&weak), ScramError::UnusableCredential(_)));
    let mut short = rfc_credential();
    short.stored_key.pop();
    assert!(matches!(
        try_with(&short),
        ScramError::UnusableCredential(_)
    ));
}

#[test]
fn server_nonce_is_checked() {
    for bad in ["", "a,b", "a b", "é"] {
        let mut server = ScramServer::new(ScramMechanism::Sha256, bad);
        assert_eq!(
            server.client_first(RFC_CLIENT_FIRST.as_bytes()),
            Err(ScramError::InvalidServerNonce),
            "{bad:?}"
        );
    }
    let n = random_nonce();
    assert_eq!(n.len(), 32);
    assert!(is_valid_nonce(&n));
    assert_ne!(n, random_nonce());
}

#[test]
fn mechanisms() {
    for m in ScramMechanism::ALL {
        assert_eq!(ScramMechanism::from_name(m.name()), Some(m));
        assert_eq!(ScramMechanism::from_kafka_type(m.kafka_type()), Some(m));
        assert_eq!(m.min_iterations(), 4096);
        assert_eq!(m.max_iterations(), 16384);
    }
    assert_eq!(ScramMechanism::Sha256.kafka_type(), 1);
    assert_eq!(ScramMechanism::Sha512.kafka_type(), 2);
    assert_eq!(ScramMechanism::Sha256.digest_len(), 32);
    assert_eq!(ScramMechanism::Sha512.digest_len(), 64);
    assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
    assert_eq!(ScramMechanism::from_name("PLAIN"), None);
    assert_eq!(ScramMechanism::from_kafka_type(0), None);
    assert_eq!(ScramMechanism::from_kafka_type(3), None);
    assert_eq!(ScramMechanism::from_kafka_type(-1), None);
}

#[test]
fn credentials() {
    for m in ScramMechanism::ALL {
        let salt = random_salt();
        assert_eq!(salt.len(), 32);
        assert_ne!(salt, random_salt());
        let from_password = ScramCredential::from_password(m, "hunter2", &salt, 4096);
        let salted = salted_password(m, b"hunter2", &salt, 4096);
        assert_eq!(salted.len(), m.digest_len());
        let from_salted = ScramCredential::from_salted_password(m, &salt, &salted, 4096);
        assert_eq!(from_password, from_salted);
        assert_eq!(from_password.stored_key.len(), m.digest_len());
        assert_eq!(from_password.server_key.len(), m.digest_len());
        assert!(from_password.verify_password("hunter2"));
        assert!(!from_password.verify_password("hunter3"));
        assert!(!from_password.verify_password(""));
        // Another salt or iteration count is another credential.
        assert_ne!(
            from_password,
            ScramCredential::from_password(m, "hunter2", b"x", 4096)
        );
        assert_ne!(
            from_password,
            ScramCredential::from_password(m, "hunter2", &salt, 4097)
        );
        // Fewer iterations than Kafka's minimum: no password matches.
        let weak = ScramCredential::from_password(m, "hunter2", &salt, 1);
        assert!(!weak.verify_password("hunter2"));
    }
    // The RFC's credential verifies its password; its salted password is the RFC's.
    assert!(rfc_credential().verify_password("pencil"));
    assert!(!rfc_credential().verify_password("Pencil"));
    // Debug output keeps the keys out of the logs.
    let shown = format!("{:?}", rfc_credential());
    assert!(
        shown.contains("redacted")
            && !shown.contains(&format!("{:?}", rfc_credential().stored_key))
    );
}

#[test]
fn credential_serde_round_trip() {
    let cred = ScramCredential::from_password(ScramMechanism::Sha512, "pw", b"salt", 8192);
    let json = serde_json::to_string(&cred).unwrap();
    assert!(json.contains("\"SCRAM-SHA-512\""));
    assert_eq!(
        serde_json::from_str::<ScramCredential>(&json).unwrap(),
        cred
    );
    let bytes = postcard::to_allocvec(&cred).unwrap();
    assert_eq!(
        postcard::from_bytes::<ScramCredential>(&bytes).unwrap(),
        cred
    );
}
