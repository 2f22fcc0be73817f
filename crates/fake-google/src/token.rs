//! A fake OAuth 2.0 token endpoint and the service-account key that goes
//! with it. The key is a real RSA key (made by `openssl genpkey`); its file
//! is the JSON a Google Cloud service-account key file holds, with
//! `token_uri` pointing here. The endpoint verifies the signed JWT
//! assertion a client sends (RS256 with the key's public half; issuer, audience,
//! scope and expiry: Google's "Using OAuth 2.0 for Server to Server
//! Applications") and answers with an access token, which the fake APIs
//! then require.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{self, KeyPair};
use serde_json::{Value, json};

/// The scope bfctl asks for.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A service account: its key file, and the tokens issued to it.
#[derive(Clone)]
pub struct ServiceAccount {
    pub email: String,
    pub key_file: PathBuf,
    public_key: Arc<Vec<u8>>,
    issued: Arc<Mutex<BTreeSet<String>>>,
    /// Assertions refused, with why (for the tests' messages).
    pub refusals: Arc<Mutex<Vec<String>>>,
}

impl ServiceAccount {
    /// Makes a 2048-bit RSA key with openssl and writes the key file into
    /// `dir`; `token_uri` is where the token endpoint listens.
    pub fn create(dir: &Path, project: &str, token_uri: &str) -> Result<ServiceAccount, String> {
        let pem_path = dir.join("key.pem");
        let status = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem_path)
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|error| format!("running openssl genpkey: {error}"))?;
        if !status.success() {
            return Err(format!("openssl genpkey exited with {status}"));
        }
        let pem = std::fs::read_to_string(&pem_path).map_err(|e| e.to_string())?;
        std::fs::remove_file(&pem_path).map_err(|e| e.to_string())?;
        let der = pem_body(&pem)?;
        let pair = signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|error| format!("the key is not PKCS#8 RSA: {error}"))?;
        let email = format!("bfctl-test@{project}.iam.gserviceaccount.com");
        let key = json!({
            "type": "service_account",
            "project_id": project,
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": email,
            "client_id": "123456789",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        });
        let key_file = dir.join("service-account.json");
        std::fs::write(&key_file, key.to_string()).map_err(|e| e.to_string())?;
        Ok(ServiceAccount {
            email,
            key_file,
            public_key: Arc::new(pair.public_key().as_ref().to_vec()),
            issued: Arc::default(),
            refusals: Arc::default(),
        })
    }

    /// How many tokens the endpoint issued.
    pub fn issued_count(&self) -> usize {
        self.issued.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether `token` was issued by the token endpoint.
    pub fn accepts(&self, token: &str) -> bool {
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(token)
    }

    /// The token endpoint's answer to a form-encoded request body.
    pub fn token_response(&self, form: &str, token_uri: &str) -> (u16, Value) {
        match self.verify(form, token_uri) {
            Ok(()) => {
                let token = format!("ya29.fake-{}", uuid_like());
                self.issued
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(token.clone());
                (
                    200,
                    json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
                )
            }
            Err(reason) => {
                self.refusals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(reason.clone());
                (
                    400,
                    json!({"error": "invalid_grant", "error_description": reason}),
                )
            }
        }
    }

    fn verify(&self, form: &str, token_uri: &str) -> Result<(), String> {
        let fields: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if field("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return Err("grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer".into());
        }
        let assertion = field("assertion").ok_or("no assertion")?;
        let parts: Vec<&str> = assertion.split('.').collect();
        let [header, claims, signed] = parts.as_slice() else {
            return Err("the assertion is not a JWT (three parts)".into());
        };
        // Base64url, padded or not: RFC 7515 leaves the padding out, gcp_auth
        // keeps it, and Google's endpoint takes both (gcp_auth is in wide use).
        let b64 = base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let header: Value = serde_json::from_slice(&b64.decode(header).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if header["alg"] != "RS256" {
            return Err(format!("alg {} (RS256 expected)", header["alg"]));
        }
        let signature = b64.decode(signed).map_err(|e| e.to_string())?;
        let message = &assertion[..assertion.len() - signed.len() - 1];
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.public_key.as_slice(),
        )
        .verify(message.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with the service account's key".to_string())?;
        let claims: Value = serde_json::from_slice(&b64.decode(claims).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if claims["iss"] != self.email.as_str() {
            return Err(format!("iss {} is not {}", claims["iss"], self.email));
        }
        if claims["aud"] != token_uri {
            return Err(format!("aud {} is not {token_uri}", claims["aud"]));
        }
        let scopes = claims["scope"].as_str().unwrap_or("");
        if !scopes.split(' ').any(|s| s == CLOUD_PLATFORM_SCOPE) {
            return Err(format!("scope {scopes:?} lacks {CLOUD_PLATFORM_SCOPE}"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let exp = claims["exp"].as_i64().unwrap_or(0);
        if exp < now || exp > now + 3700 {
            return Err(format!("exp {exp} is not within the next hour"));
        }
        Ok(())
    }
}

fn pem_body(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|error| format!("the PEM is not base64: {error}"))
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed), nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const TOKEN_URI: &str = "http://127.0.0.1:1/token";

    /// A JWT assertion signed with the PEM key in `key_file`.
    fn assertion(key_file: &Path, claims: &Value) -> String {
        let key: Value = serde_json::from_str(&std::fs::read_to_string(key_file).unwrap()).unwrap();
        let der = pem_body(key["private_key"].as_str().unwrap()).unwrap();
        let pair = signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{header}.{body}");
        let mut signed = vec![0; pair.public().modulus_len()];
        pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            message.as_bytes(),
            &mut signed,
        )
        .unwrap();
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signed))
    }

    fn form(assertion: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", assertion)
            .finish()
    }

    #[test]
    fn only_assertions_signed_with_the_accounts_key_get_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let account = ServiceAccount::create(dir.path(), "my-project", TOKEN_URI).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = json!({"iss": account.email, "aud": TOKEN_URI,
            "scope": CLOUD_PLATFORM_SCOPE, "iat": now, "exp": now + 3600});
        let (code, answer) =
            account.token_response(&form(&assertion(&account.key_file, &claims)), TOKEN_URI);
        assert_eq!(code, 200, "{answer}");
        assert!(account.accepts(answer["access_token"].as_str().unwrap()));

        let other_dir = tempfile::tempdir().unwrap();
        let other = ServiceAccount::create(other_dir.path(), "my-project", TOKEN_URI).unwrap();
        let (code, answer) =
            account.token_response(&form(&assertion(&other.key_file, &claims)), TOKEN_URI);
        assert_eq!(code, 400, "another key's signature: {answer}");

        let mut late = claims.clone();
        late["exp"] = (now - 10).into();
        let (code, _) =
            account.token_response(&form(&assertion(&account.key_file, &late)), TOKEN_URI);
        assert_eq!(code, 400, "expired");
        let mut narrow = claims;
        narrow["scope"] = "https://www.googleapis.com/auth/devstorage.read_only".into();
        let (code, _) =
            account.token_response(&form(&assertion(&account.key_file, &narrow)), TOKEN_URI);
        assert_eq!(code, 400, "without the cloud-platform scope");
    }
}
