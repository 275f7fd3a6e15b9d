//! A test token issuer: an ES256 key, its JWKS file, and tokens minted
//! with any header and claims (including the hostile ones), plain or
//! nested in JWE.

use crate::rand_suffix;
use std::path::Path;

/// A token issuer for tests: an ES256 key, its JWKS file, and minting.
pub struct TestIssuer {
    pub issuer: String,
    pub kid: String,
    key: rcgen::KeyPair,
}

impl TestIssuer {
    pub fn new(issuer: &str, kid: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            kid: kid.to_owned(),
            key: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key"),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        use base64::Engine;
        let raw = self.key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        })
    }

    /// Writes a JWKS document holding these issuers' keys.
    pub fn write_jwks(path: &Path, keys: &[&TestIssuer]) {
        let set = serde_json::json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, set.to_string()).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    /// Standard claims: this issuer, audience `orders-api`, one hour, a fresh jti.
    pub fn claims(&self, sub: &str, scope: &str) -> serde_json::Value {
        let now = portcullis_gateway::clock::now();
        serde_json::json!({
            "iss": self.issuer, "sub": sub, "aud": "orders-api", "scope": scope,
            "iat": now, "exp": now + 3600, "jti": format!("jti-{}", rand_suffix()),
        })
    }

    /// Signs claims with the standard header (ES256, kid, `typ: at+jwt`).
    pub fn mint(&self, claims: &serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        self.mint_with(&header, claims)
    }

    pub fn mint_with(&self, header: &jsonwebtoken::Header, claims: &serde_json::Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes())
            .expect("EC key PEM");
        jsonwebtoken::encode(header, claims, &key).expect("signing")
    }

    /// A compact JWS with an arbitrary header and payload and the given signature bytes.
    pub fn forge(
        header: &serde_json::Value,
        claims: &serde_json::Value,
        signature: &[u8],
    ) -> String {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes()),
            b64(signature)
        )
    }
}

/// Encrypts a compact JWS into a nested JWE (`cty: JWT`, A256GCM) for the
/// holder of `private_pem` (PKCS#8): RSA → RSA-OAEP-256, P-256 → ECDH-ES+A256KW.
pub fn jwe_encrypt(inner: &str, private_pem: &[u8], kid: &str) -> String {
    use portcullis_jose::jwe;
    let key = jwe::EncryptionKey::public_of_pkcs8_pem(private_pem).expect("PKCS#8 PEM");
    jwe::encrypt(inner, &key, Some(kid)).expect("encrypts")
}
