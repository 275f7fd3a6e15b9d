//! Nested JWE (RFC 7516/7518): signed-then-encrypted bearer tokens
//! (AUTHN-08). Decrypted with the gateway's own keys, then the inner JWS is
//! verified like any other token; an unsigned inner token is refused there.
//!
//! Only `RSA-OAEP-256` and `ECDH-ES+A256KW` (P-256) key management with
//! `A256GCM` content encryption; no compression (`zip`), which would open a
//! compression oracle. Built from the aws-lc-rs primitives already linked
//! for TLS, so there is one crypto library in the tree; checked against
//! tokens made by an independent implementation (Python jwcrypto) in
//! `testdata/jwe`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrap};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// A key the gateway decrypts tokens with.
pub enum DecryptionKey {
    Rsa(OaepPrivateDecryptingKey),
    EcP256(PrivateKey),
}

impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecryptionKey::Rsa(_) => "DecryptionKey::Rsa(..)",
            DecryptionKey::EcP256(_) => "DecryptionKey::EcP256(..)",
        })
    }
}

impl DecryptionKey {
    /// Reads a PKCS#8 PEM private key: RSA (for RSA-OAEP-256) or P-256 (for ECDH-ES+A256KW).
    pub fn from_pkcs8_pem(pem: &[u8]) -> Result<Self, String> {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|_| "not a PKCS#8 PEM private key".to_owned())?;
        if let Ok(rsa) = PrivateDecryptingKey::from_pkcs8(der.secret_pkcs8_der()) {
            return OaepPrivateDecryptingKey::new(rsa)
                .map(DecryptionKey::Rsa)
                .map_err(|_| "unusable RSA key".to_owned());
        }
        PrivateKey::from_private_key_der(&ECDH_P256, der.secret_pkcs8_der())
            .map(DecryptionKey::EcP256)
            .map_err(|_| "neither an RSA nor a P-256 key".to_owned())
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    enc: String,
    kid: Option<String>,
    zip: Option<serde_json::Value>,
    epk: Option<Epk>,
    apu: Option<String>,
    apv: Option<String>,
}

#[derive(Deserialize)]
struct Epk {
    kty: String,
    crv: String,
    x: String,
    y: String,
}

/// Whether a compact token is a JWE (five parts) rather than a JWS (three).
pub fn is_jwe(token: &str) -> bool {
    token.split('.').count() == 5
}

fn b64(s: &str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "part is not base64url")
}

/// Concat KDF (NIST SP 800-56A, RFC 7518 §4.6.2) for one SHA-256 block.
pub fn concat_kdf(z: &[u8], algorithm_id: &str, apu: &[u8], apv: &[u8], key_bits: u32) -> Vec<u8> {
    let mut input =
        Vec::with_capacity(4 + z.len() + 16 + algorithm_id.len() + apu.len() + apv.len());
    input.extend_from_slice(&1u32.to_be_bytes());
    input.extend_from_slice(z);
    for part in [algorithm_id.as_bytes(), apu, apv] {
        input.extend_from_slice(&(part.len() as u32).to_be_bytes());
        input.extend_from_slice(part);
    }
    input.extend_from_slice(&key_bits.to_be_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    digest.as_ref()[..(key_bits / 8) as usize].to_vec()
}

/// Decrypts a compact JWE with the first key that fits its `alg` (and
/// `kid`, when both name one); returns the inner plaintext (a compact JWS).
pub fn decrypt(
    token: &str,
    keys: &[(Option<String>, DecryptionKey)],
) -> Result<String, &'static str> {
    let parts: Vec<&str> = token.split('.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = parts[..] else {
        return Err("not a compact JWE");
    };
    let header: Header =
        serde_json::from_slice(&b64(protected)?).map_err(|_| "header is not JSON")?;
    if header.zip.is_some() {
        return Err("compressed JWE refused");
    }
    if header.enc != "A256GCM" {
        return Err("content encryption must be A256GCM");
    }
    let fits = |kid: &Option<String>| header.kid.is_none() || kid.is_none() || *kid == header.kid;
    let encrypted_key = b64(encrypted_key)?;
    let cek = match header.alg.as_str() {
        "RSA-OAEP-256" => {
            let key = keys
                .iter()
                .find_map(|(kid, k)| match k {
                    DecryptionKey::Rsa(r) if fits(kid) => Some(r),
                    _ => None,
                })
                .ok_or("no RSA decryption key")?;
            let mut out = vec![0u8; key.min_output_size()];
            key.decrypt(&OAEP_SHA256_MGF1SHA256, &encrypted_key, &mut out, None)
                .map_err(|_| "content key does not decrypt")?
                .to_vec()
        }
        "ECDH-ES+A256KW" => {
            let key = keys
                .iter()
                .find_map(|(kid, k)| match k {
                    DecryptionKey::EcP256(e) if fits(kid) => Some(e),
                    _ => None,
                })
                .ok_or("no P-256 decryption key")?;
            let epk = header.epk.as_ref().ok_or("missing epk")?;
            if epk.kty != "EC" || epk.crv != "P-256" {
                return Err("epk must be an EC P-256 key");
            }
            let mut point = vec![4u8];
            point.extend(b64(&epk.x)?);
            point.extend(b64(&epk.y)?);
            let apu = header
                .apu
                .as_deref()
                .map(b64)
                .transpose()?
                .unwrap_or_default();
            let apv = header
                .apv
                .as_deref()
                .map(b64)
                .transpose()?
                .unwrap_or_default();
            // The agreement rejects points not on the curve (invalid-curve attacks).
            let kek = agreement::agree(
                key,
                UnparsedPublicKey::new(&ECDH_P256, &point),
                "bad epk",
                |z| Ok(concat_kdf(z, "ECDH-ES+A256KW", &apu, &apv, 256)),
            )?;
            let kek = AesKek::new(&AES_256, &kek).map_err(|_| "key wrap")?;
            let mut out = vec![0u8; encrypted_key.len()];
            kek.unwrap(&encrypted_key, &mut out)
                .map_err(|_| "content key does not unwrap")?
                .to_vec()
        }
        _ => return Err("key management must be RSA-OAEP-256 or ECDH-ES+A256KW"),
    };
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| "content key length")?);
    let nonce = Nonce::try_assume_unique_for_key(&b64(iv)?).map_err(|_| "iv length")?;
    let mut in_out = b64(ciphertext)?;
    in_out.extend(b64(tag)?);
    let plain = key
        .open_in_place(nonce, Aad::from(protected.as_bytes()), &mut in_out)
        .map_err(|_| "ciphertext does not authenticate")?;
    String::from_utf8(plain.to_vec()).map_err(|_| "plaintext is not text")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../testdata/jwe/vectors.json")).unwrap()
    }

    fn keys() -> Vec<(Option<String>, DecryptionKey)> {
        vec![
            (
                Some("rsa-1".into()),
                DecryptionKey::from_pkcs8_pem(include_bytes!("../testdata/jwe/rsa-private.pem"))
                    .unwrap(),
            ),
            (
                Some("ec-1".into()),
                DecryptionKey::from_pkcs8_pem(include_bytes!("../testdata/jwe/ec-private.pem"))
                    .unwrap(),
            ),
        ]
    }

    #[test]
    fn decrypts_tokens_from_an_independent_implementation() {
        let v = vectors();
        for name in ["rsa_oaep_256", "ecdh_es_a256kw", "ecdh_es_a256kw_apu_apv"] {
            let token = v[name].as_str().unwrap();
            assert!(is_jwe(token));
            assert_eq!(decrypt(token, &keys()).unwrap(), v["plaintext"], "{name}");
        }
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let v = vectors();
        let token = v["ecdh_es_a256kw"].as_str().unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut ct = URL_SAFE_NO_PAD.decode(&parts[3]).unwrap();
        ct[0] ^= 1;
        parts[3] = URL_SAFE_NO_PAD.encode(ct);
        assert_eq!(
            decrypt(&parts.join("."), &keys()),
            Err("ciphertext does not authenticate")
        );
        // Only the RSA key: the ECDH token cannot be opened.
        let rsa_only: Vec<_> = keys()
            .into_iter()
            .filter(|(k, _)| k.as_deref() == Some("rsa-1"))
            .collect();
        assert!(decrypt(token, &rsa_only).is_err());
        // A header asking for compression or another enc is refused.
        let bad = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RSA-OAEP-256","enc":"A128CBC-HS256"}"#),
            "a.b.c.d"
        );
        assert_eq!(
            decrypt(&bad, &keys()),
            Err("content encryption must be A256GCM")
        );
        let zip = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}"#),
            "a.b.c.d"
        );
        assert_eq!(decrypt(&zip, &keys()), Err("compressed JWE refused"));
    }
}
