//! An issuer's signing keys, parsed once when its JWKS is loaded (AUTHN-02,
//! AUTHN-08).
//!
//! Every key is turned into aws-lc-rs verification keys for each signing
//! algorithm it can serve, when the JWKS is read or fetched; a request then
//! costs only the signature check itself, with no base64, JSON or key
//! parsing (an RSA public key built anew per request cost more than the
//! verification). A key that names its `alg` is prepared for that one
//! algorithm only. A key that cannot be parsed is kept, unusable, so that a
//! token naming it is refused with a reason instead of an unknown `kid`.

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use std::str::FromStr;

/// One JWK and its verification keys, by algorithm.
pub struct PreparedKey {
    pub jwk: Jwk,
    /// The JWK's own `alg` as a signing algorithm; `None` when absent or
    /// not a signing algorithm this gateway knows.
    pub declared: Option<Algorithm>,
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl PreparedKey {
    /// The parsed key for `alg`, if this key serves it and parsed.
    pub fn verifier(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, k)| k)
    }
}

/// An issuer's keys as they were published, each prepared for use.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<PreparedKey>,
}

impl From<JwkSet> for KeySet {
    fn from(set: JwkSet) -> Self {
        Self {
            keys: set.keys.into_iter().map(prepare).collect(),
        }
    }
}

impl KeySet {
    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&PreparedKey> {
        self.keys
            .iter()
            .find(|k| k.jwk.common.key_id.as_deref() == Some(kid))
    }
}

/// The signing algorithms a key's type and curve can serve.
fn algorithms_for(params: &AlgorithmParameters) -> &'static [Algorithm] {
    match params {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            &[Algorithm::ES256]
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
            &[Algorithm::ES384]
        }
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        _ => &[],
    }
}

fn verification_algorithm(alg: Algorithm) -> Option<&'static dyn sig::VerificationAlgorithm> {
    Some(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

fn rsa_parameters(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// The aws-lc-rs key for one algorithm; `None` when the JWK's parameters
/// do not form a valid public key of that type.
fn parse(params: &AlgorithmParameters, alg: Algorithm) -> Option<ParsedPublicKey> {
    let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
    match params {
        AlgorithmParameters::EllipticCurve(p) => {
            // SEC 1 uncompressed point: 0x04 || x || y.
            let mut point = vec![4];
            point.extend(b64(&p.x)?);
            point.extend(b64(&p.y)?);
            ParsedPublicKey::new(verification_algorithm(alg)?, point).ok()
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            ParsedPublicKey::new(verification_algorithm(alg)?, b64(&p.x)?).ok()
        }
        AlgorithmParameters::RSA(p) => RsaPublicKeyComponents {
            n: b64(&p.n)?,
            e: b64(&p.e)?,
        }
        .to_parsed_public_key(rsa_parameters(alg)?)
        .ok(),
        _ => None,
    }
}

fn prepare(jwk: Jwk) -> PreparedKey {
    let declared = jwk
        .common
        .key_algorithm
        .and_then(|a| Algorithm::from_str(&format!("{a:?}")).ok());
    let verifiers = algorithms_for(&jwk.algorithm)
        .iter()
        .filter(|a| jwk.common.key_algorithm.is_none() || declared == Some(**a))
        .filter_map(|a| Some((*a, parse(&jwk.algorithm, *a)?)))
        .collect();
    PreparedKey {
        jwk,
        declared,
        verifiers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &serde_json::Value) -> KeySet {
        KeySet::from(serde_json::from_value::<JwkSet>(serde_json::json!({ "keys": keys })).unwrap())
    }

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn p256() -> serde_json::Value {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..])})
    }

    /// A key is prepared for the algorithms of its type, or only the one
    /// it declares; a point off the curve yields no verifier at all.
    #[test]
    fn keys_are_prepared_for_what_they_can_verify() {
        let mut declared = p256();
        declared["alg"] = "ES256".into();
        declared["kid"] = "d".into();
        let mut off_curve = p256();
        off_curve["y"] = b64(&[7; 32]).into();
        off_curve["kid"] = "bad".into();
        let mut undeclared = p256();
        undeclared["kid"] = "u".into();
        let mut other_alg = p256();
        other_alg["alg"] = "ES384".into();
        other_alg["kid"] = "o".into();
        let keys = set(&serde_json::json!([
            declared, off_curve, undeclared, other_alg
        ]));
        let has = |kid: &str, alg| keys.find(kid).unwrap().verifier(alg).is_some();
        assert!(has("d", Algorithm::ES256));
        assert!(has("u", Algorithm::ES256));
        assert!(!has("u", Algorithm::ES384));
        assert!(!has("bad", Algorithm::ES256), "a point off the curve");
        assert!(!has("o", Algorithm::ES256), "declared for another alg");
        assert!(!has("o", Algorithm::ES384), "ES384 on a P-256 key");
        assert!(keys.find("missing").is_none());
    }
}
