//! The emulator's side of STACKIT's service-account key flow: a key pair,
//! the key file a user downloads from the portal, the check of the signed
//! assertion, and short-lived access tokens.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an issued access token lives.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The emulator's RSA key, in the forms it hands out (PEM texts for the key
/// file) and the one it verifies with (the public key's DER).
struct EmulatorKey {
    private_pem: String,
    public_pem: String,
    public_der: Vec<u8>,
}

/// One RSA key per process: generating it takes a noticeable moment, and
/// every emulator a test suite starts can share it.
fn key_pair() -> &'static EmulatorKey {
    static KEY: OnceLock<EmulatorKey> = OnceLock::new();
    KEY.get_or_init(|| rsa_key(aws_lc_rs::rsa::KeySize::Rsa2048))
}

/// A fresh RSA key pair as PKCS#8 private and SPKI public PEM texts, the
/// forms a STACKIT key file and a JWT library take (the key-flow tests make
/// keys the emulator does not know).
#[cfg(test)]
pub fn rsa_key_pem(size: aws_lc_rs::rsa::KeySize) -> (String, String) {
    let key = rsa_key(size);
    (key.private_pem, key.public_pem)
}

fn rsa_key(size: aws_lc_rs::rsa::KeySize) -> EmulatorKey {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    let private = aws_lc_rs::rsa::KeyPair::generate(size).expect("RSA key generation");
    let private_der = private.as_der().expect("PKCS#8 encoding");
    let public_der = private.public_key().as_der().expect("SPKI encoding");
    let pem = |tag: &str, der: &[u8]| {
        pem::encode_config(
            &pem::Pem::new(tag, der),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    };
    EmulatorKey {
        private_pem: pem("PRIVATE KEY", private_der.as_ref()),
        public_pem: pem("PUBLIC KEY", public_der.as_ref()),
        public_der: public_der.as_ref().to_vec(),
    }
}

pub struct ServiceAccount {
    pub email: String,
    pub subject: String,
    pub key_id: String,
    /// What the assertion's `aud` must be: the emulator's token endpoint.
    pub audience: String,
    access_secret: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: Option<u64>,
    jti: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct AccessClaims {
    sub: String,
    iat: u64,
    exp: u64,
}

impl ServiceAccount {
    pub fn new(token_endpoint: String) -> Self {
        ServiceAccount {
            email: "sqlflex-import@sa.stackit.cloud".into(),
            subject: uuid::Uuid::new_v4().to_string(),
            key_id: uuid::Uuid::new_v4().to_string(),
            audience: token_endpoint,
            access_secret: uuid::Uuid::new_v4().as_bytes().to_vec(),
        }
    }

    /// Writes the key JSON as the STACKIT portal hands it out, plus
    /// `tokenEndpoint`, which tells the tool where this emulator's token
    /// endpoint is (on STACKIT it is the fixed service-account API).
    pub fn write_key_file(&self, path: &Path) -> std::io::Result<()> {
        let EmulatorKey {
            private_pem,
            public_pem,
            ..
        } = key_pair();
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let key = serde_json::json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "publicKey": public_pem,
            "createdAt": now,
            "keyType": "USER_MANAGED",
            "keyOrigin": "GENERATED",
            "keyAlgorithm": "RSA_2048",
            "active": true,
            "tokenEndpoint": self.audience,
            "credentials": {
                "kid": self.key_id,
                "iss": self.email,
                "sub": self.subject,
                "aud": self.audience,
                "privateKey": private_pem,
            }
        });
        write_private(path, &serde_json::to_vec_pretty(&key).expect("JSON"))
    }

    /// Checks a self-signed RS512 assertion; returns why it is refused.
    pub fn verify_assertion(&self, assertion: &str) -> Result<(), String> {
        // aws-lc verifies with an SPKI key as it is (RFC 5280 or 8017).
        let key = DecodingKey::from_rsa_der(&key_pair().public_der);
        let mut validation = Validation::new(Algorithm::RS512);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.email]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let data = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
            .map_err(|e| format!("invalid assertion: {e}"))?;
        if data.claims.sub != self.subject {
            return Err("invalid assertion: unknown subject".into());
        }
        if data
            .header
            .kid
            .as_deref()
            .is_some_and(|kid| kid != self.key_id)
        {
            return Err("invalid assertion: unknown key id".into());
        }
        Ok(())
    }

    /// A short-lived access token (a JWT, so clients can read its `exp`).
    pub fn issue_access_token(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = AccessClaims {
            sub: self.subject.clone(),
            iat: now,
            exp: now + ACCESS_TOKEN_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.access_secret),
        )
        .expect("HS256 signing")
    }

    pub fn accepts_access_token(&self, token: &str) -> bool {
        let validation = Validation::new(Algorithm::HS256);
        jsonwebtoken::decode::<AccessClaims>(
            token,
            &DecodingKey::from_secret(&self.access_secret),
            &validation,
        )
        .is_ok()
    }
}

/// A file only its owner can read: it holds a private key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
