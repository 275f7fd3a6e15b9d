//! Bearer-token parsing and verification on arbitrary input, JWS and
//! nested JWE: never panics, and never accepts a token (the fuzzer holds
//! neither the issuer's signing key nor a way to forge GCM tags).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_config::Issuer;
use portcullis_gateway::identity::keyset::KeySet;
use portcullis_gateway::identity::tokens::{unverified_issuer, verify};

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","use":"sig","alg":"ES256","kid":"k1",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let _ = unverified_issuer(token);
    if portcullis_jose::jwe::is_jwe(token) {
        let keys = vec![(
            Some("ec-1".to_owned()),
            portcullis_jose::jwe::DecryptionKey::from_pkcs8_pem(include_bytes!("../../crates/jose/testdata/jwe/ec-private.pem")).unwrap(),
        )];
        assert!(portcullis_jose::jwe::decrypt(token, &keys).is_err());
    }
    let issuer = Issuer {
        issuer: "https://issuer.test".into(),
        audiences: vec!["orders-api".into()],
        jwks: portcullis_config::JwksSource::File("/dev/null".into()),
        algorithms: vec!["ES256".into(), "EdDSA".into(), "RS256".into()],
        require_typ: None,
    };
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(JWKS).expect("fixed JWKS");
    let jwks = KeySet::from(jwks);
    assert!(verify(token, &issuer, &jwks, 60, 86_400, 1_800_000_000).is_err());
});
