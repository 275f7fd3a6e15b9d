//! Nested JWE (RFC 7516/7518): signed-then-encrypted tokens. The gateway
//! decrypts client bearer tokens with its own keys (AUTHN-08) and then
//! verifies the inner JWS like any other token; it encrypts context tokens
//! to a backend's public key, and the backend guard decrypts them.
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
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
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

/// A public key tokens are encrypted to.
pub enum EncryptionKey {
    Rsa(OaepPublicEncryptingKey),
    /// A P-256 public key as X.509 SubjectPublicKeyInfo DER.
    EcP256(Vec<u8>),
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EncryptionKey::Rsa(_) => "EncryptionKey::Rsa",
            EncryptionKey::EcP256(_) => "EncryptionKey::EcP256",
        })
    }
}

impl EncryptionKey {
    /// Reads a `PUBLIC KEY` PEM (SubjectPublicKeyInfo): RSA (RSA-OAEP-256,
    /// at least 2048 bits) or P-256 (ECDH-ES+A256KW).
    pub fn from_spki_pem(pem: &[u8]) -> Result<Self, String> {
        use rustls_pki_types::SubjectPublicKeyInfoDer;
        use rustls_pki_types::pem::PemObject;
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|_| "not a PUBLIC KEY PEM (SubjectPublicKeyInfo)".to_owned())?;
        if let Ok(rsa) = PublicEncryptingKey::from_der(der.as_ref()) {
            if rsa.key_size_bits() < 2048 {
                return Err("RSA key shorter than 2048 bits".into());
            }
            return OaepPublicEncryptingKey::new(rsa)
                .map(EncryptionKey::Rsa)
                .map_err(|_| "unusable RSA key".to_owned());
        }
        let probe = PrivateKey::generate(&ECDH_P256).map_err(|_| "no randomness".to_owned())?;
        agreement::agree(
            &probe,
            UnparsedPublicKey::new(&ECDH_P256, der.as_ref()),
            (),
            |_| Ok(()),
        )
        .map_err(|()| "neither an RSA nor a P-256 public key".to_owned())?;
        Ok(EncryptionKey::EcP256(der.as_ref().to_vec()))
    }
}

impl EncryptionKey {
    /// The public half of a PKCS#8 PEM private key (for tests and tools
    /// that hold both halves).
    pub fn public_of_pkcs8_pem(pem: &[u8]) -> Result<Self, String> {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|_| "not a PKCS#8 PEM private key".to_owned())?;
        if let Ok(rsa) = PrivateDecryptingKey::from_pkcs8(der.secret_pkcs8_der()) {
            return OaepPublicEncryptingKey::new(rsa.public_key())
                .map(EncryptionKey::Rsa)
                .map_err(|_| "unusable RSA key".to_owned());
        }
        let ec = PrivateKey::from_private_key_der(&ECDH_P256, der.secret_pkcs8_der())
            .map_err(|_| "neither an RSA nor a P-256 key".to_owned())?;
        let public = ec
            .compute_public_key()
            .map_err(|_| "bad P-256 key".to_owned())?;
        let spki: PublicKeyX509Der<'_> = public.as_der().map_err(|_| "bad P-256 key".to_owned())?;
        Ok(EncryptionKey::EcP256(spki.as_ref().to_vec()))
    }
}

/// Encrypts `plaintext` (a compact JWS) into a compact nested JWE (`cty:
/// JWT`, `enc: A256GCM`) for the holder of `key`'s private half.
pub fn encrypt(
    plaintext: &str,
    key: &EncryptionKey,
    kid: Option<&str>,
) -> Result<String, &'static str> {
    let mut cek = [0u8; 32];
    let mut iv = [0u8; 12];
    aws_lc_rs::rand::fill(&mut cek).map_err(|_| "no randomness")?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| "no randomness")?;
    let mut header = serde_json::Map::new();
    header.insert("enc".into(), "A256GCM".into());
    header.insert("cty".into(), "JWT".into());
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    let encrypted_key = match key {
        EncryptionKey::Rsa(public) => {
            header.insert("alg".into(), "RSA-OAEP-256".into());
            let mut out = vec![0u8; public.ciphertext_size()];
            public
                .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut out, None)
                .map_err(|_| "content key does not encrypt")?
                .to_vec()
        }
        EncryptionKey::EcP256(recipient) => {
            header.insert("alg".into(), "ECDH-ES+A256KW".into());
            let ephemeral = PrivateKey::generate(&ECDH_P256).map_err(|_| "no randomness")?;
            let epk = ephemeral
                .compute_public_key()
                .map_err(|_| "ephemeral key")?;
            let point = epk.as_ref();
            let kek = agreement::agree(
                &ephemeral,
                UnparsedPublicKey::new(&ECDH_P256, recipient.as_slice()),
                "recipient key",
                |z| Ok(concat_kdf(z, "ECDH-ES+A256KW", b"", b"", 256)),
            )?;
            let mut out = vec![0u8; 40];
            let wrapped = AesKek::new(&AES_256, &kek)
                .map_err(|_| "key wrap")?
                .wrap(&cek, &mut out)
                .map_err(|_| "key wrap")?
                .to_vec();
            header.insert(
                "epk".into(),
                serde_json::json!({
                    "kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                }),
            );
            wrapped
        }
    };
    let protected = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header).to_string());
    let content = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| "content key")?);
    let mut data = plaintext.as_bytes().to_vec();
    let tag = content
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(protected.as_bytes()),
            &mut data,
        )
        .map_err(|_| "content does not encrypt")?;
    Ok(format!(
        "{protected}.{}.{}.{}.{}",
        URL_SAFE_NO_PAD.encode(encrypted_key),
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(data),
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    ))
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

    fn public_pem(private: &[u8]) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer;
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let der = PrivatePkcs8KeyDer::from_pem_slice(private).unwrap();
        let spki = if let Ok(rsa) = PrivateDecryptingKey::from_pkcs8(der.secret_pkcs8_der()) {
            rsa.public_key().as_der().unwrap().as_ref().to_vec()
        } else {
            let k = PrivateKey::from_private_key_der(&ECDH_P256, der.secret_pkcs8_der()).unwrap();
            let public = k.compute_public_key().unwrap();
            AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(&public)
                .unwrap()
                .as_ref()
                .to_vec()
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(spki);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n").into_bytes()
    }

    #[test]
    fn encrypts_to_rsa_and_p256_public_keys_and_round_trips() {
        for (kid, pem) in [
            (
                "rsa-1",
                &include_bytes!("../testdata/jwe/rsa-private.pem")[..],
            ),
            (
                "ec-1",
                &include_bytes!("../testdata/jwe/ec-private.pem")[..],
            ),
        ] {
            let key = EncryptionKey::from_spki_pem(&public_pem(pem)).unwrap();
            let token = encrypt("a.b.c", &key, Some(kid)).unwrap();
            assert!(is_jwe(token.as_str()));
            assert_eq!(decrypt(&token, &keys()).unwrap(), "a.b.c", "{kid}");
        }
        assert!(
            EncryptionKey::from_spki_pem(
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
            )
            .is_err()
        );
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
