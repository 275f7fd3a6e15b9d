//! The backend guard on arbitrary context-token headers (plain JWS and
//! nested JWE): never panics, and never accepts a token (the fuzzer holds
//! neither the gateway's signing key nor a way to forge GCM tags).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_guard::{DecryptionKey, Guard, GuardConfig, Keys};
use std::sync::OnceLock;

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1","alg":"EdDSA","use":"sig"}]}"#;

fn guard() -> &'static (Guard, tokio::runtime::Runtime) {
    static GUARD: OnceLock<(Guard, tokio::runtime::Runtime)> = OnceLock::new();
    GUARD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pc-fuzz-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, JWKS).unwrap();
        let mut config = GuardConfig::new("portcullis", "orders", Keys::File(jwks));
        config.decryption_keys = vec![(
            None,
            DecryptionKey::from_pkcs8_pem(include_bytes!("../../crates/jose/testdata/jwe/ec-private.pem")).unwrap(),
        )];
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        (Guard::new(config).unwrap(), rt)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(data) else { return };
    let mut headers = http::HeaderMap::new();
    headers.insert("portcullis-context", value);
    headers.insert("x-correlation-id", http::HeaderValue::from_static("c1"));
    let (guard, rt) = guard();
    assert!(rt.block_on(guard.verify(&headers, None)).is_err());
});
