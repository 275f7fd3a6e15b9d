//! Bearer token validation (AUTHN-02, AUTHN-07, AUTHN-08, AUTHN-13).
//!
//! OAuth 2.0 bearer tokens as signed JWTs (RFC 6750, RFC 9068): the header
//! is checked before any key is chosen (`alg` on the issuer's asymmetric
//! allowlist, never `none` or HS*; `crit` refused; `jku`, `x5u`, `jwk` and
//! `x5c` never followed but refused; optional `typ`), the key comes only
//! from the issuer's configured JWKS and must agree with the header
//! (`kty`/curve family, `alg`, `use`), then the signature (with aws-lc-rs,
//! on the key parsed when the JWKS was loaded: see `keyset`), `iss`, `aud`,
//! `exp`, `nbf` and `iat` (bounded skew) and the maximum lifetime are
//! checked here, each at an exact bound against the caller's clock.
//! Revocation is checked by the caller against the current snapshot, on
//! every request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm, PublicKeyUse};
use portcullis_config::Issuer;
use serde::Deserialize;
use std::str::FromStr;

use super::keyset::{KeySet, PreparedKey};

/// Why a token was refused; the text goes to events, never to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token larger than {0} bytes")]
    TooLarge(usize),
    #[error("not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("header: {0}")]
    Header(&'static str),
    #[error("algorithm `{0}` not allowed for this issuer")]
    Algorithm(String),
    #[error("unknown issuer")]
    UnknownIssuer,
    #[error("no key in the issuer's JWKS matches kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("the JWK does not fit the token's algorithm: {0}")]
    KeyMismatch(&'static str),
    #[error("signature or claims invalid: {0}")]
    Invalid(String),
    #[error("claim: {0}")]
    Claim(&'static str),
    #[error("token revoked")]
    Revoked,
}

/// The verified claims of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub issuer: String,
    pub subject: Option<String>,
    pub audience: Vec<String>,
    pub scopes: Vec<String>,
    pub expires_at: i64,
    pub issued_at: Option<i64>,
    /// `jti`, or `sha256:<hex>` of the token when it has none (for revocation).
    pub token_id: String,
    pub client_id: Option<String>,
    /// RFC 8705 `cnf.x5t#S256`: the token is usable only over a connection
    /// presenting the certificate with this SHA-256 thumbprint (base64url).
    pub cert_thumbprint: Option<String>,
}

/// RFC 7800 confirmation claim. Only certificate binding (RFC 8705) can be
/// checked here; a token bound to anything else is refused (fail closed).
#[derive(Deserialize, Default)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Confirmation {
    /// The certificate thumbprint the token is bound to.
    pub fn thumbprint(cnf: Option<Self>) -> Result<Option<String>, TokenError> {
        match cnf {
            None => Ok(None),
            Some(c) if !c.other.is_empty() || c.x5t_s256.is_none() => Err(TokenError::Claim(
                "cnf binds the token to something other than a client certificate",
            )),
            Some(c) => Ok(c.x5t_s256),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: Option<String>,
    #[serde(default)]
    aud: Audience,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    scope: Option<String>,
    scp: Option<Vec<String>>,
    client_id: Option<String>,
    /// OpenID Connect's authorized party: the client when `client_id` is absent.
    azp: Option<String>,
    cnf: Option<Confirmation>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

/// Header fields that matter, read before any key is chosen.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
    jku: Option<serde_json::Value>,
    x5u: Option<serde_json::Value>,
    jwk: Option<serde_json::Value>,
    x5c: Option<serde_json::Value>,
    enc: Option<serde_json::Value>,
}

fn segment(token: &str, n: usize) -> Option<&str> {
    token.split('.').nth(n)
}

/// The `iss` of a token, unverified, to pick the issuer's configuration.
pub fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = URL_SAFE_NO_PAD.decode(segment(token, 1)?).ok()?;
    serde_json::from_slice::<Iss>(&payload).ok()?.iss
}

/// Checks the token's shape and header; returns the algorithm and kid.
fn check_header(token: &str, issuer: &Issuer) -> Result<(Algorithm, Option<String>), TokenError> {
    if token.split('.').count() != 3 || token.split('.').any(str::is_empty) {
        return Err(TokenError::Malformed);
    }
    let header = URL_SAFE_NO_PAD
        .decode(segment(token, 0).ok_or(TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    let h: RawHeader =
        serde_json::from_slice(&header).map_err(|_| TokenError::Header("not a JSON object"))?;
    if h.enc.is_some() {
        return Err(TokenError::Header("a JWS header must not carry `enc`"));
    }
    if h.crit.is_some() {
        return Err(TokenError::Header(
            "`crit` names extensions this gateway does not understand",
        ));
    }
    if h.jku.is_some() || h.x5u.is_some() || h.jwk.is_some() || h.x5c.is_some() {
        return Err(TokenError::Header(
            "embedded or remote key references (jku, x5u, jwk, x5c) are refused",
        ));
    }
    let alg = h.alg.ok_or(TokenError::Header("missing `alg`"))?;
    if !issuer.algorithms.contains(&alg) {
        return Err(TokenError::Algorithm(alg));
    }
    if let Some(want) = &issuer.require_typ {
        let typ = h.typ.as_deref().unwrap_or("");
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !typ.eq_ignore_ascii_case(want) {
            return Err(TokenError::Header("wrong `typ`"));
        }
    }
    let alg = Algorithm::from_str(&alg).map_err(|_| TokenError::Algorithm(alg))?;
    Ok((alg, h.kid))
}

/// The key to verify with: by `kid`, or the only key when there is no
/// `kid`; it must agree with the algorithm.
fn select_key<'a>(
    keys: &'a KeySet,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<&'a PreparedKey, TokenError> {
    let key = match kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| TokenError::UnknownKey(kid.map(str::to_owned)))?;
    let jwk = &key.jwk;
    if let Some(KeyAlgorithm::HS256 | KeyAlgorithm::HS384 | KeyAlgorithm::HS512) =
        jwk.common.key_algorithm
    {
        return Err(TokenError::KeyMismatch("symmetric key"));
    }
    if jwk.common.key_algorithm.is_some() && key.declared != Some(alg) {
        return Err(TokenError::KeyMismatch(
            "the JWK's `alg` differs from the token's",
        ));
    }
    if let Some(u) = &jwk.common.public_key_use
        && *u != PublicKeyUse::Signature
    {
        return Err(TokenError::KeyMismatch("the JWK is not for signatures"));
    }
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::RSA(_), a) => matches!(
            a,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    if fits {
        Ok(key)
    } else {
        Err(TokenError::KeyMismatch(
            "key type does not fit the algorithm",
        ))
    }
}

/// Checks the signature over `header.payload` with the key parsed at JWKS
/// load, then returns the decoded payload.
fn check_signature(token: &str, alg: Algorithm, key: &PreparedKey) -> Result<Vec<u8>, TokenError> {
    let verifier = key.verifier(alg).ok_or(TokenError::KeyMismatch(
        "the JWK's parameters are not a valid public key",
    ))?;
    let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (_, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
    let invalid = |what: &str| TokenError::Invalid(what.to_owned());
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| invalid("InvalidSignature"))?;
    verifier
        .verify_sig(signed.as_bytes(), &signature)
        .map_err(|_| invalid("InvalidSignature"))?;
    URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| invalid("payload is not base64url"))
}

/// Verifies a token against one issuer's configuration and keys.
pub fn verify(
    token: &str,
    issuer: &Issuer,
    keys: &KeySet,
    skew_s: u64,
    max_lifetime_s: i64,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    let (alg, kid) = check_header(token, issuer)?;
    let key = select_key(keys, alg, kid.as_deref())?;
    let payload = check_signature(token, alg, key)?;
    let c: Claims = serde_json::from_slice(&payload)
        .map_err(|e| TokenError::Invalid(format!("claims: {e}")))?;
    let skew = skew_s as i64;
    let invalid = |what: &str| Err(TokenError::Invalid(what.to_owned()));
    if c.iss != issuer.issuer {
        return invalid("InvalidIssuer");
    }
    let audience_ok = match &c.aud {
        Audience::One(a) => issuer.audiences.contains(a),
        Audience::Many(v) => v.iter().any(|a| issuer.audiences.contains(a)),
        Audience::None => return invalid("Missing required claim: aud"),
    };
    if !audience_ok {
        return invalid("InvalidAudience");
    }
    if c.exp.saturating_add(skew) < now {
        return invalid("ExpiredSignature");
    }
    if c.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return invalid("ImmatureSignature");
    }
    if let Some(iat) = c.iat
        && iat > now + skew
    {
        return Err(TokenError::Claim("`iat` is in the future"));
    }
    if c.exp - now > max_lifetime_s + skew {
        return Err(TokenError::Claim(
            "lifetime longer than this gateway accepts",
        ));
    }
    let token_id = match c.jti {
        Some(j) if !j.is_empty() && j.len() <= 256 => j,
        Some(_) => return Err(TokenError::Claim("`jti` empty or too long")),
        None => {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
            format!("sha256:{}", URL_SAFE_NO_PAD.encode(d.as_ref()))
        }
    };
    let mut scopes: Vec<String> = c
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    scopes.extend(c.scp.unwrap_or_default());
    Ok(VerifiedToken {
        issuer: c.iss,
        subject: c.sub,
        audience: match c.aud {
            Audience::One(a) => vec![a],
            Audience::Many(v) => v,
            Audience::None => vec![],
        },
        scopes,
        expires_at: c.exp,
        issued_at: c.iat,
        token_id,
        client_id: c.client_id.or(c.azp),
        cert_thumbprint: Confirmation::thumbprint(c.cnf)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::JwkSet;
    use portcullis_config::{DEFAULT_ALGORITHMS, JwksSource};

    const NOW: i64 = 1_800_000_000;

    fn issuer() -> Issuer {
        Issuer {
            issuer: "https://issuer.test".into(),
            audiences: vec!["orders-api".into()],
            jwks: JwksSource::File("unused".into()),
            algorithms: DEFAULT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect(),
            require_typ: None,
        }
    }

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    /// A one-key JWKS (P-256, no `kid`) and a signer of ES256 tokens with it.
    fn es256_signer() -> (KeySet, impl Fn(&serde_json::Value) -> String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = key.public_key_raw();
        let jwks = KeySet::from(
            serde_json::from_value::<JwkSet>(serde_json::json!({"keys": [{
                "kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..])
            }]}))
            .unwrap(),
        );
        let encoding =
            jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        let header = jsonwebtoken::Header::new(Algorithm::ES256);
        (jwks, move |claims: &serde_json::Value| {
            jsonwebtoken::encode(&header, claims, &encoding).unwrap()
        })
    }

    /// A key pair of each default algorithm: its JWK (`kid` = the
    /// algorithm) and a token it signed.
    fn signed(alg: Algorithm, kid: Option<&str>) -> (serde_json::Value, String) {
        let claims = serde_json::json!({
            "iss": "https://issuer.test", "aud": "orders-api", "sub": "alice",
            "iat": NOW, "exp": NOW + 600,
        });
        let name = format!("{alg:?}");
        let (jwk, key) = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let (curve, params) = if alg == Algorithm::ES256 {
                    ("P-256", &rcgen::PKCS_ECDSA_P256_SHA256)
                } else {
                    ("P-384", &rcgen::PKCS_ECDSA_P384_SHA384)
                };
                let pair = rcgen::KeyPair::generate_for(params).unwrap();
                let raw = pair.public_key_raw();
                let half = (raw.len() - 1) / 2;
                (
                    serde_json::json!({"kty": "EC", "crv": curve,
                        "x": b64(&raw[1..=half]), "y": b64(&raw[half + 1..])}),
                    jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())
                        .unwrap(),
                )
            }
            Algorithm::EdDSA => {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
                (
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key_raw())}),
                    jsonwebtoken::EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes())
                        .unwrap(),
                )
            }
            _ => {
                use aws_lc_rs::signature::KeyPair as _;
                let pair =
                    aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
                let public =
                    aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let der =
                    aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                        .unwrap();
                (
                    serde_json::json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)}),
                    jsonwebtoken::EncodingKey::from_rsa_pem(
                        format!(
                            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
                        )
                        .as_bytes(),
                    )
                    .unwrap(),
                )
            }
        };
        let mut jwk = jwk;
        jwk["kid"] = name.clone().into();
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = kid.map(str::to_owned);
        (jwk, jsonwebtoken::encode(&header, &claims, &key).unwrap())
    }

    /// Every default algorithm verifies with a key of its family, and only
    /// with one: the key checks refuse the others before any signature work.
    #[test]
    fn every_default_algorithm_verifies_with_its_own_key_type_only() {
        let algs = [
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::PS256,
            Algorithm::RS256,
            Algorithm::EdDSA,
        ];
        let made: Vec<(Algorithm, serde_json::Value, String)> = algs
            .iter()
            .map(|a| {
                let (jwk, token) = signed(*a, Some(&format!("{a:?}")));
                (*a, jwk, token)
            })
            .collect();
        let all: JwkSet = serde_json::from_value(
            serde_json::json!({"keys": made.iter().map(|m| m.1.clone()).collect::<Vec<_>>()}),
        )
        .unwrap();
        let all = KeySet::from(all);
        for (alg, _, token) in &made {
            let ok = verify(token, &issuer(), &all, 0, 86_400, NOW);
            assert_eq!(ok.map(|t| t.subject), Ok(Some("alice".into())), "{alg:?}");
        }
        // The same token naming another family's key: refused by the key check.
        for (alg, _, token) in &made {
            let (h, rest) = token.split_once('.').unwrap();
            let mut header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
            let other = if matches!(alg, Algorithm::EdDSA) {
                "ES256"
            } else {
                "EdDSA"
            };
            header["kid"] = other.into();
            let swapped = format!("{}.{rest}", b64(header.to_string().as_bytes()));
            assert!(
                matches!(
                    verify(&swapped, &issuer(), &all, 0, 86_400, NOW),
                    Err(TokenError::KeyMismatch(_))
                ),
                "{alg:?} with the {other} key"
            );
        }
    }

    /// A token without `kid` verifies when the JWKS holds one key, and is
    /// refused when it holds several (no guessing).
    #[test]
    fn without_kid_only_a_single_key_is_used() {
        let (jwk, token) = signed(Algorithm::ES256, None);
        let one: JwkSet =
            serde_json::from_value(serde_json::json!({"keys": [jwk.clone()]})).unwrap();
        assert!(verify(&token, &issuer(), &KeySet::from(one), 0, 86_400, NOW).is_ok());
        let (other, _) = signed(Algorithm::ES256, None);
        let mut other = other;
        other["kid"] = "second".into();
        let two: JwkSet =
            serde_json::from_value(serde_json::json!({"keys": [jwk, other]})).unwrap();
        assert_eq!(
            verify(&token, &issuer(), &KeySet::from(two), 0, 86_400, NOW).err(),
            Some(TokenError::UnknownKey(None))
        );
    }

    /// The clock skew and the maximum lifetime are inclusive bounds: at
    /// them a token verifies, one second past them it does not.
    #[test]
    fn skew_and_lifetime_bounds_are_exact() {
        let (jwks, sign) = es256_signer();
        let token = |iat: i64, exp: i64| {
            sign(&serde_json::json!({
                "iss": "https://issuer.test", "aud": "orders-api", "iat": iat, "exp": exp,
            }))
        };
        let (skew, max) = (30, 3600);
        let check = |t: String| verify(&t, &issuer(), &jwks, skew as u64, max, NOW);
        assert!(
            check(token(NOW + skew, NOW + 600)).is_ok(),
            "iat at the skew"
        );
        assert_eq!(
            check(token(NOW + skew + 1, NOW + 600)).err(),
            Some(TokenError::Claim("`iat` is in the future"))
        );
        assert!(
            check(token(NOW, NOW + max + skew)).is_ok(),
            "exp at the lifetime"
        );
        assert_eq!(
            check(token(NOW, NOW + max + skew + 1)).err(),
            Some(TokenError::Claim(
                "lifetime longer than this gateway accepts"
            ))
        );
    }

    /// The claim checks once left to the JOSE library, each at its exact
    /// bound: issuer, audience (one or several), `exp` and `nbf` with the
    /// skew, and the signature over exactly `header.payload`.
    #[test]
    fn claims_and_signature_are_checked_at_their_bounds() {
        let (jwks, sign) = es256_signer();
        let skew = 30;
        let claims = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = serde_json::json!({
                "iss": "https://issuer.test", "aud": "orders-api", "iat": NOW, "exp": NOW + 60,
            });
            f(&mut c);
            sign(&c)
        };
        let check = |t: &str| verify(t, &issuer(), &jwks, skew as u64, 3600, NOW);
        let invalid = |why: &str| Some(TokenError::Invalid(why.into()));
        assert!(check(&claims(&|_| {})).is_ok());
        let mut other_issuer = issuer();
        other_issuer.issuer = "https://other.test".into();
        assert_eq!(
            verify(&claims(&|_| {}), &other_issuer, &jwks, 0, 3600, NOW).err(),
            invalid("InvalidIssuer")
        );
        let aud = |a: serde_json::Value| claims(&move |c| c["aud"] = a.clone());
        assert!(check(&aud(serde_json::json!(["x", "orders-api"]))).is_ok());
        assert_eq!(
            check(&aud(serde_json::json!(["x", "y"]))).err(),
            invalid("InvalidAudience")
        );
        assert_eq!(
            check(&aud(serde_json::json!([]))).err(),
            invalid("InvalidAudience")
        );
        assert_eq!(
            check(&aud("payments-api".into())).err(),
            invalid("InvalidAudience")
        );
        let no_aud = claims(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        });
        assert_eq!(check(&no_aud).err(), invalid("Missing required claim: aud"));
        let exp = |e: i64| claims(&move |c| c["exp"] = e.into());
        assert!(check(&exp(NOW - skew)).is_ok(), "exp at the skew");
        assert_eq!(
            check(&exp(NOW - skew - 1)).err(),
            invalid("ExpiredSignature")
        );
        let nbf = |n: i64| claims(&move |c| c["nbf"] = n.into());
        assert!(check(&nbf(NOW + skew)).is_ok(), "nbf at the skew");
        assert_eq!(
            check(&nbf(NOW + skew + 1)).err(),
            invalid("ImmatureSignature")
        );
        // Another key's signature, a signature on other bytes, and one that is not base64url.
        let (_, other_sign) = es256_signer();
        let foreign = other_sign(&serde_json::json!({
            "iss": "https://issuer.test", "aud": "orders-api", "iat": NOW, "exp": NOW + 60,
        }));
        assert_eq!(check(&foreign).err(), invalid("InvalidSignature"));
        let good = claims(&|_| {});
        let (signed, signature) = good.rsplit_once('.').unwrap();
        let spliced = format!(
            "{}.{signature}",
            claims(&|c| c["sub"] = "mallory".into())
                .rsplit_once('.')
                .unwrap()
                .0
        );
        assert_eq!(check(&spliced).err(), invalid("InvalidSignature"));
        assert_eq!(
            check(&format!("{signed}.!!")).err(),
            invalid("InvalidSignature")
        );
    }

    /// `jti` identifies the token for revocation: an empty or oversized one
    /// is refused, a missing one is replaced by the token's digest.
    #[test]
    fn jti_is_bounded_or_derived() {
        let (jwks, sign) = es256_signer();
        let token = |jti: Option<String>| {
            let mut claims = serde_json::json!({
                "iss": "https://issuer.test", "aud": "orders-api", "iat": NOW, "exp": NOW + 60,
            });
            if let Some(j) = jti {
                claims["jti"] = j.into();
            }
            sign(&claims)
        };
        let check = |t: &str| verify(t, &issuer(), &jwks, 0, 3600, NOW);
        assert_eq!(check(&token(Some("j-1".into()))).unwrap().token_id, "j-1");
        assert_eq!(
            check(&token(Some("j".repeat(256)))).unwrap().token_id.len(),
            256
        );
        for bad in [String::new(), "j".repeat(257)] {
            assert_eq!(
                check(&token(Some(bad))).err(),
                Some(TokenError::Claim("`jti` empty or too long"))
            );
        }
        let derived = token(None);
        assert!(check(&derived).unwrap().token_id.starts_with("sha256:"));
    }
}
