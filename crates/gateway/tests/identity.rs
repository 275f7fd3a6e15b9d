//! Identity at the gateway: API keys (AUTHN-04, AUTHZ-01, OPS-04), bearer
//! tokens (AUTHN-02, AUTHN-08, AUTHN-13, AUTHN-14), scopes (AUTHZ-02,
//! AUTHZ-08, AUTHZ-11), per-request evaluation (AUTHZ-05) and self-service
//! revocation (AUTHZ-07), with real HTTPS requests.

use http_body_util::Full;
use portcullis_testkit::{Proto, TestEnv, TestGateway, TestIssuer, TestResponse};
use std::time::Duration;

const API: &str = r#"
  - name: orders
    base_path: /v1
    upstream: backend
    routes:
      - { path: /orders, methods: [GET], auth: { api_key: true, token: true, scopes: [orders:read] } }
      - { path: /orders, methods: [POST], auth: { api_key: true, token: true, scopes: [orders:write], apps: [web] } }
      - { path: "/orders/{id}", methods: [GET], auth: { api_key: true } }
      - { path: /health, methods: [GET], auth: public }
"#;

const ISS: &str = "https://issuer.test";

struct Setup {
    env: TestEnv,
    issuer: TestIssuer,
    jwks: std::path::PathBuf,
    gw: TestGateway,
    key: String,
}

async fn setup() -> Setup {
    setup_with_keys(|_| Vec::new()).await
}

/// As [`setup`], with more JWKs published beside the issuer's own (made
/// from it by `extra`).
async fn setup_with_keys(extra: impl Fn(&serde_json::Value) -> Vec<serde_json::Value>) -> Setup {
    let env = TestEnv::new().await;
    let issuer = TestIssuer::new(ISS, "k1");
    let jwks = env.path().join("jwks.json");
    let key = env.provision_app("web");
    let identity = env.identity_yaml(&issuer, &jwks);
    let extra = extra(&issuer.jwk());
    if !extra.is_empty() {
        let mut keys = vec![issuer.jwk()];
        keys.extend(extra);
        std::fs::write(&jwks, serde_json::json!({ "keys": keys }).to_string()).unwrap();
    }
    let gw = env.gateway(API).with(&identity).start().await;
    Setup {
        env,
        issuer,
        jwks,
        gw,
        key,
    }
}

async fn call(
    gw: &TestGateway,
    method: &str,
    path: &str,
    key: Option<&str>,
    token: Option<&str>,
) -> TestResponse {
    let mut req = gw.request(method, path);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    gw.send(Proto::Http1, req.body(Full::default()).unwrap())
        .await
}

const INVALID: &str = r#"Bearer realm="portcullis", error="invalid_token""#;

struct Case {
    name: &'static str,
    token: Option<String>,
    status: u16,
    challenge: Option<&'static str>,
    /// What the refusal's event must say.
    why: &'static str,
}

#[tokio::test]
async fn token_attack_matrix_gives_exact_status_and_challenge() {
    // The issuer's own P-256 key published again under other kids, for
    // encryption or as ES384, and an RSA key: each disagrees with an ES256
    // token signed by that very key, so only the key check can refuse it.
    let mut s = setup_with_keys(|own| {
        let variant = |kid: &str, field: &str, value: &str| {
            let mut k = own.clone();
            k["kid"] = kid.into();
            k[field] = value.into();
            k
        };
        vec![
            variant("k-enc", "use", "enc"),
            variant("k-384", "alg", "ES384"),
            {
                let mut k = own.clone();
                k["kid"] = "k-noalg".into();
                k.as_object_mut().unwrap().remove("alg");
                k
            },
            serde_json::json!({
                "kty": "RSA", "kid": "k-rsa", "use": "sig", "e": "AQAB",
                "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
            }),
        ]
    })
    .await;
    let own = s.issuer.jwk();
    let good = s.issuer.claims("alice", "orders:read orders:write");
    let now = portcullis_gateway::clock::now();
    let other = TestIssuer::new(ISS, "k-unknown");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        f(&mut c);
        s.issuer.mint(&c)
    };
    let valid = s.issuer.mint(&good);
    let (head, payload, sig) = {
        let mut parts = valid.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let tampered_payload = {
        let mut c = good.clone();
        c["scope"] = "orders:read orders:write admin".into();
        let forged = TestIssuer::forge(&serde_json::json!({}), &c, b"");
        format!("{head}.{}.{sig}", forged.split('.').nth(1).unwrap())
    };
    let alg_none = |signature: &[u8]| {
        TestIssuer::forge(
            &serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": "k1"}),
            &good,
            signature,
        )
    };
    let hs256_with_public_key = {
        use aws_lc_rs::hmac;
        let header = serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"});
        let unsigned = TestIssuer::forge(&header, &good, b"");
        let signing_input = unsigned.rsplit_once('.').unwrap().0.to_owned();
        let public_jwk = s.issuer.jwk().to_string();
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, public_jwk.as_bytes()),
            signing_input.as_bytes(),
        );
        TestIssuer::forge(&header, &good, tag.as_ref())
    };
    let header_with = |extra: serde_json::Value| {
        let mut hdr = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        hdr.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        // Signed with the real key, so only the header field can be the reason.
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(hdr["kid"].as_str().unwrap().into());
        header.typ = Some(hdr["typ"].as_str().unwrap().into());
        if let Some(jwk) = hdr.get("jwk") {
            header.jwk = Some(serde_json::from_value(jwk.clone()).unwrap());
        }
        if let Some(chain) = hdr.get("x5c") {
            header.x5c = Some(serde_json::from_value(chain.clone()).unwrap());
        }
        if let Some(enc) = hdr.get("enc") {
            header.extras.insert("enc", enc.as_str().unwrap());
        }
        if let Some(u) = hdr.get("jku") {
            header.jku = Some(u.as_str().unwrap().into());
        }
        if let Some(u) = hdr.get("x5u") {
            header.x5u = Some(u.as_str().unwrap().into());
        }
        if hdr.get("crit").is_some() {
            header.extras.insert("crit", vec!["exp-ext"]);
        }
        s.issuer.mint_with(&header, &good)
    };
    let refused = |name: &'static str, token: String, why: &'static str| Case {
        name,
        token: Some(token),
        status: 401,
        challenge: Some(INVALID),
        why,
    };
    let cases = vec![
        Case {
            name: "no token",
            token: None,
            status: 401,
            challenge: Some(r#"Bearer realm="portcullis""#),
            why: "missing bearer token",
        },
        refused("malformed", "not-a-jwt".into(), "not a compact JWS"),
        refused(
            "alg none, empty signature",
            alg_none(b""),
            "not a compact JWS",
        ),
        refused(
            "alg none with a signature",
            alg_none(b"sig"),
            "algorithm `none` not allowed",
        ),
        refused(
            "HS256 signed with the issuer's public key",
            hs256_with_public_key,
            "algorithm `HS256` not allowed",
        ),
        refused(
            "unknown kid",
            other.mint(&good),
            "no key in the issuer's JWKS",
        ),
        refused(
            "no kid while the JWKS holds several keys",
            {
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
                header.typ = Some("at+jwt".into());
                s.issuer.mint_with(&header, &good)
            },
            "no key in the issuer's JWKS matches kid None",
        ),
        refused(
            "wrong iss",
            with(&|c| c["iss"] = "https://evil.test".into()),
            "unknown issuer",
        ),
        refused(
            "wrong aud",
            with(&|c| c["aud"] = "payments-api".into()),
            "InvalidAudience",
        ),
        refused(
            "expired",
            with(&|c| c["exp"] = (now - 3600).into()),
            "ExpiredSignature",
        ),
        refused(
            "nbf in the future",
            with(&|c| c["nbf"] = (now + 3600).into()),
            "ImmatureSignature",
        ),
        refused(
            "iat in the future",
            with(&|c| c["iat"] = (now + 3600).into()),
            "`iat` is in the future",
        ),
        refused(
            "missing exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "exp",
        ),
        refused(
            "cnf binding to a DPoP key",
            with(&|c| {
                c["cnf"] =
                    serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
            }),
            "cnf binds the token to something other than a client certificate",
        ),
        refused(
            "cnf binding to a certificate and a DPoP key",
            with(&|c| {
                c["cnf"] = serde_json::json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2", "jkt": "x"});
            }),
            "cnf binds the token to something other than a client certificate",
        ),
        refused(
            "empty cnf",
            with(&|c| c["cnf"] = serde_json::json!({})),
            "cnf binds the token to something other than a client certificate",
        ),
        refused(
            "lifetime over a day",
            with(&|c| c["exp"] = (now + 10 * 86400).into()),
            "lifetime longer than this gateway accepts",
        ),
        refused(
            "wrong typ",
            header_with(serde_json::json!({"typ": "JWT"})),
            "wrong `typ`",
        ),
        refused(
            "unknown crit",
            header_with(serde_json::json!({"crit": ["exp-ext"]})),
            "`crit` names extensions",
        ),
        refused(
            "jku elsewhere",
            header_with(serde_json::json!({"jku": "https://evil.test/jwks"})),
            "embedded or remote key references",
        ),
        refused(
            "x5u elsewhere",
            header_with(serde_json::json!({"x5u": "https://evil.test/cert"})),
            "embedded or remote key references",
        ),
        refused(
            "embedded jwk",
            header_with(serde_json::json!({"jwk": own})),
            "embedded or remote key references",
        ),
        refused(
            "embedded x5c",
            header_with(serde_json::json!({"x5c": ["MIIBszCCAVmgAwIBAgIU"]})),
            "embedded or remote key references",
        ),
        refused(
            "enc in a JWS header",
            header_with(serde_json::json!({"enc": "A256GCM"})),
            "must not carry `enc`",
        ),
        refused(
            "JWK published for encryption",
            header_with(serde_json::json!({"kid": "k-enc"})),
            "the JWK is not for signatures",
        ),
        refused(
            "JWK published for another alg",
            header_with(serde_json::json!({"kid": "k-384"})),
            "the JWK's `alg` differs from the token's",
        ),
        refused(
            "JWK of another key type",
            header_with(serde_json::json!({"kid": "k-rsa"})),
            "key type does not fit the algorithm",
        ),
        refused(
            "ES384 token naming a P-256 key",
            TestIssuer::forge(
                &serde_json::json!({"alg": "ES384", "typ": "at+jwt", "kid": "k-noalg"}),
                &good,
                b"sig",
            ),
            "key type does not fit the algorithm",
        ),
        refused(
            "RS256 token naming an EC key",
            TestIssuer::forge(
                &serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "k-noalg"}),
                &good,
                b"sig",
            ),
            "key type does not fit the algorithm",
        ),
        refused(
            "oversized",
            with(&|c| c["pad"] = "x".repeat(10_000).into()),
            "token larger than",
        ),
        refused("tampered payload", tampered_payload, "InvalidSignature"),
        refused(
            "tampered signature",
            {
                // One bit of the signature flipped, still valid base64url.
                use base64::Engine;
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let mut raw = b64.decode(&sig).unwrap();
                raw[10] ^= 1;
                format!("{head}.{payload}.{}", b64.encode(raw))
            },
            "InvalidSignature",
        ),
        Case {
            name: "valid without scope",
            token: Some(with(&|c| c["scope"] = "profile".into())),
            status: 403,
            challenge: Some(
                r#"Bearer realm="portcullis", error="insufficient_scope", scope="orders:read""#,
            ),
            why: "forbidden",
        },
        Case {
            name: "valid",
            token: Some(valid.clone()),
            status: 200,
            challenge: None,
            why: "",
        },
    ];
    // Credentials in another scheme are no bearer token: the challenge asks
    // for one instead of judging what was sent.
    let basic = {
        let req =
            s.gw.request("GET", "/v1/orders")
                .header("x-api-key", &s.key)
                .header("authorization", format!("Basic {valid}"))
                .body(Full::default())
                .unwrap();
        s.gw.send(Proto::Http1, req).await
    };
    assert_eq!(basic.status, 401);
    assert_eq!(
        basic.header("www-authenticate"),
        Some(r#"Bearer realm="portcullis""#)
    );
    let e = s.gw.expect_event("missing-token").await;
    assert!(e.message.contains("missing bearer token"), "{}", e.message);
    for Case {
        name,
        token,
        status,
        challenge,
        why,
    } in cases
    {
        let r = call(&s.gw, "GET", "/v1/orders", Some(&s.key), token.as_deref()).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text());
        if status == 403 {
            assert_eq!(
                r.json()["detail"],
                "The caller is not allowed to perform this operation. It needs the scopes: orders:read."
            );
        }
        assert_eq!(r.header("www-authenticate"), challenge, "{name}");
        if status != 200 {
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{name}"
            );
            // The event names the check that refused, so a refusal by
            // another check (or by the JWT library) cannot stand in for it.
            let e = s.gw.next_event().await;
            assert_eq!(
                e.http_response.code, status,
                "{name}: one event per rejection"
            );
            assert!(
                e.message.contains(why),
                "{name}: refused for {:?}",
                e.message
            );
            let severity = match (status, name) {
                (401, "no token") => "Low",
                (401, _) => "High",
                _ => "Medium",
            };
            assert_eq!(e.severity, severity, "{name}");
        }
    }
    s.gw.assert_no_pending_event();
    assert_eq!(
        s.env.received().len(),
        1,
        "only the valid request reached the backend"
    );
    assert!(
        s.env.received()[0].headers.get("x-api-key").is_none(),
        "the API key never reaches the backend"
    );
    s.gw.stop().await;
}

#[tokio::test]
async fn api_keys_identify_the_application_and_fail_closed() {
    let mut s = setup().await;
    let token = s
        .issuer
        .mint(&s.issuer.claims("alice", "orders:read orders:write"));
    // No key, a malformed key, a well-formed unknown key: 401.
    for (key, code) in [
        (None, "missing-api-key"),
        (Some("nope"), "invalid-api-key"),
        (
            Some(
                "pcsk_0123456789ab_0000000000000000000000000000000000000000000000000000000000000000",
            ),
            "invalid-api-key",
        ),
    ] {
        let r = call(&s.gw, "GET", "/v1/orders/1", key, None).await;
        assert_eq!(r.status, 401, "{key:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"APIKey realm="portcullis""#)
        );
        s.gw.expect_event(code).await;
    }
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders/1", Some(&s.key), None)
            .await
            .status,
        200
    );
    // A key in the query string is refused even with a valid header key.
    let r = call(
        &s.gw,
        "GET",
        &format!("/v1/orders/1?api_key={}", s.key),
        Some(&s.key),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["type"],
        "urn:portcullis:problem:credential-in-query"
    );
    assert!(
        !s.gw
            .next_event()
            .await
            .http_request
            .url
            .path
            .contains("pcsk_")
    );
    // A known application that the route does not allow: 403.
    let batch_key = s.env.provision_app("batch");
    let ok = wait_for(&s.gw, "/v1/orders/1", &batch_key, 200).await;
    assert!(ok, "a key issued while running is picked up");
    // The refusals met while the new key was on its way are not this test's.
    while s.gw.events.try_recv().is_ok() {}
    let r =
        s.gw.send(
            Proto::Http1,
            s.gw.request("POST", "/v1/orders")
                .header("x-api-key", &batch_key)
                .header("authorization", format!("Bearer {token}"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"error="insufficient_scope""#)
    );
    let e = s.gw.expect_event("insufficient-scope").await;
    assert!(
        e.message.contains("application not allowed"),
        "{}",
        e.message
    );
    // Disabling the application or revoking the key takes effect on the next requests (AUTHZ-05).
    {
        use portcullis_gateway::store::Store;
        let (store, _) = s.env.store();
        store.set_app_enabled("batch", false).unwrap();
    }
    assert!(
        wait_for(&s.gw, "/v1/orders/1", &batch_key, 403).await,
        "disabled application refused (403: authenticated, switched off)"
    );
    {
        use portcullis_gateway::store::Store;
        let (store, _) = s.env.store();
        let id = portcullis_gateway::identity::apikeys::key_id(&s.key)
            .unwrap()
            .to_owned();
        store
            .revoke_key(&id, portcullis_gateway::clock::now())
            .unwrap();
    }
    assert!(
        wait_for(&s.gw, "/v1/orders/1", &s.key, 401).await,
        "revoked key refused"
    );
    s.gw.stop().await;
}

/// Polls (bounded) until the store change is visible to the gateway.
async fn wait_for(gw: &TestGateway, path: &str, key: &str, status: u16) -> bool {
    wait_for_token(gw, path, key, None, status).await
}

/// Polls (bounded) until a request with `key` and `token` gets `status`.
async fn wait_for_token(
    gw: &TestGateway,
    path: &str,
    key: &str,
    token: Option<&str>,
    status: u16,
) -> bool {
    for _ in 0..60 {
        if call(gw, "GET", path, Some(key), token).await.status == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn self_service_revocation_takes_effect_at_once_and_survives_restart() {
    let mut s = setup().await;
    let t1 = s.issuer.mint(&s.issuer.claims("alice", "orders:read"));
    let t2 = s.issuer.mint(&s.issuer.claims("alice", "orders:read"));
    let bob = s.issuer.mint(&s.issuer.claims("bob", "orders:read"));
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&t1))
            .await
            .status,
        200
    );
    // Revoke t1 with t1 itself (RFC 7009).
    let r = call(&s.gw, "POST", "/oauth2/revoke", Some(&s.key), Some(&t1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&t1)).await;
    assert_eq!(r.status, 401, "revoked on the very next request");
    assert_eq!(r.header("www-authenticate"), Some(INVALID));
    assert_eq!(s.gw.next_event().await.status_code, "invalid-token");
    // bob cannot revoke alice's token.
    let r =
        s.gw.send(
            Proto::Http1,
            s.gw.request("POST", "/oauth2/revoke")
                .header("x-api-key", &s.key)
                .header("authorization", format!("Bearer {bob}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(format!("token={t2}").into()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["detail"],
        "The caller is not allowed to perform this operation."
    );
    let e = s.gw.expect_event("insufficient-scope").await;
    assert!(e.message.contains("own subject"), "{}", e.message);
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&t2))
            .await
            .status,
        200
    );
    // "Revoke all my tokens" by subject.
    assert_eq!(
        call(&s.gw, "POST", "/oauth2/revoke-all", Some(&s.key), Some(&t2))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&t2))
            .await
            .status,
        401
    );
    let e = s.gw.expect_event("invalid-token").await;
    assert!(e.message.contains("revoked"), "{}", e.message);
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&bob))
            .await
            .status,
        200,
        "other subjects unaffected"
    );
    // After a restart on the same store, revocations still hold.
    s.gw.stop().await;
    let identity = format!(
        "identity:\n  data_dir: {}\n  issuers:\n    - issuer: {ISS}\n      audiences: [orders-api]\n      jwks_file: {}\n      require_typ: at+jwt\n",
        s.env.identity_dir().display(),
        s.jwks.display()
    );
    let gw = s.env.gateway(API).with(&identity).start().await;
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&s.key), Some(&t1))
            .await
            .status,
        401
    );
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&s.key), Some(&t2))
            .await
            .status,
        401
    );
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&s.key), Some(&bob))
            .await
            .status,
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn jwks_rotation_is_picked_up_and_a_broken_jwks_keeps_the_last_good_keys() {
    let mut s = setup().await;
    let old = s.issuer.mint(&s.issuer.claims("alice", "orders:read"));
    let next = TestIssuer::new(ISS, "k2");
    let new_token = next.mint(&next.claims("alice", "orders:read"));
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&new_token))
            .await
            .status,
        401
    );
    // Rotation: both keys published; no restart.
    TestIssuer::write_jwks(&s.jwks, &[&s.issuer, &next]);
    let accepted = wait_for_token(&s.gw, "/v1/orders", &s.key, Some(&new_token), 200).await;
    assert!(
        accepted,
        "token signed with the rotated-in key accepted without restart"
    );
    // A broken JWKS file: the last good keys stay in force.
    while s.gw.events.try_recv().is_ok() {}
    std::fs::write(&s.jwks, "{ not json").unwrap();
    // Evidence that the broken file was read and refused, not a pause.
    let e = s.gw.next_event().await;
    assert_eq!(e.status_code, "jwks-unusable", "{}", e.message);
    assert!(e.message.contains(ISS), "{}", e.message);
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&old))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&new_token))
            .await
            .status,
        200
    );
    // Rotation done: the old key leaves the JWKS. Its token, verified (and
    // remembered) moments ago, is refused as soon as the new set is read.
    TestIssuer::write_jwks(&s.jwks, &[&next]);
    let refused = wait_for_token(&s.gw, "/v1/orders", &s.key, Some(&old), 401).await;
    assert!(refused, "a token of a removed key outlived its key");
    assert_eq!(
        call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&new_token))
            .await
            .status,
        200
    );
    s.gw.stop().await;
}

#[tokio::test]
async fn jwks_over_https_rotates_survives_outage_and_is_not_flooded() {
    use bytes::Bytes;
    use portcullis_gateway::dev::backend;
    use std::sync::{Arc, Mutex};
    let env = TestEnv::new().await;
    let k1 = TestIssuer::new(ISS, "k1");
    let k2 = TestIssuer::new(ISS, "k2");
    let jwks_of = |keys: &[&TestIssuer]| {
        serde_json::json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
    };
    // A real HTTPS JWKS server; `None` makes it answer 503 (an outage).
    let published: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(Some(jwks_of(&[&k1]))));
    let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let handler: backend::Handler = {
        let published = published.clone();
        let hits = hits.clone();
        Arc::new(move |_req, _peer| {
            hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = published.lock().unwrap().clone();
            let resp = match body {
                Some(b) => http::Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(b))),
                None => http::Response::builder()
                    .status(503)
                    .body(Full::new(Bytes::new())),
            };
            Box::pin(async move { resp.unwrap() })
        })
    };
    let server = env.https_server(handler).await;
    let key = env.provision_app("web");
    let identity = format!(
        "identity:\n  data_dir: {}\n  issuers:\n    - issuer: {ISS}\n      audiences: [orders-api]\n      jwks_url: https://127.0.0.1:{}/jwks.json\n      jwks_ca: {}\n      jwks_refetch_interval_s: 1\n",
        env.identity_dir().display(),
        server.addr.port(),
        env.ca_path.display()
    );
    let gw = env.gateway(API).with(&identity).start().await;
    let t1 = k1.mint(&k1.claims("alice", "orders:read"));
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&key), Some(&t1))
            .await
            .status,
        200
    );
    // Rotation: the issuer publishes k2; a k2 token is accepted without a restart.
    *published.lock().unwrap() = Some(jwks_of(&[&k1, &k2]));
    let t2 = k2.mint(&k2.claims("alice", "orders:read"));
    let mut accepted = false;
    for _ in 0..40 {
        if call(&gw, "GET", "/v1/orders", Some(&key), Some(&t2))
            .await
            .status
            == 200
        {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "rotated-in key accepted");
    // A flood of unknown kids: the JWKS server sees at most a couple of fetches.
    let before = hits.load(std::sync::atomic::Ordering::Relaxed);
    for n in 0..40 {
        let forged = TestIssuer::new(ISS, &format!("made-up-{n}"));
        let r = call(
            &gw,
            "GET",
            "/v1/orders",
            Some(&key),
            Some(&forged.mint(&forged.claims("eve", "orders:read"))),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let during = hits.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        during <= 3,
        "unknown-kid flood caused {during} JWKS fetches"
    );
    // Outage: the JWKS server fails; the last good keys stay in force.
    *published.lock().unwrap() = None;
    // A clock to pass, not synchronisation: unknown kids may trigger a
    // fetch once per `jwks_refetch_interval_s` (1 s), and the flood above
    // just used it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let identity = gw.running.as_ref().unwrap().identity().unwrap();
    let fetched = identity.jwks_fetches(ISS);
    let unknown = TestIssuer::new(ISS, "k3");
    assert_eq!(
        call(
            &gw,
            "GET",
            "/v1/orders",
            Some(&key),
            Some(&unknown.mint(&unknown.claims("a", "orders:read")))
        )
        .await
        .status,
        401
    );
    assert!(
        identity.jwks_fetches(ISS) > fetched,
        "the unknown kid met the outage (a fetch was tried)"
    );
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&key), Some(&t1))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&key), Some(&t2))
            .await
            .status,
        200
    );
    gw.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn nested_jwe_tokens_are_decrypted_then_verified() {
    let env = TestEnv::new().await;
    let issuer = TestIssuer::new(ISS, "k1");
    let jwks = env.path().join("jwks.json");
    let key = env.provision_app("web");
    // The gateway's decryption keys (test-only keys, copied with mode 0600).
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../jose/testdata/jwe");
    let mut pems = Vec::new();
    for name in ["rsa-private.pem", "ec-private.pem"] {
        let pem = std::fs::read(testdata.join(name)).unwrap();
        portcullis_gateway::files::write_private(&env.path().join(name), &pem).unwrap();
        pems.push(pem);
    }
    let identity = format!(
        "{}  decryption_keys:\n    - {{ kid: rsa-1, key: {} }}\n    - {{ kid: ec-1, key: {} }}\n",
        env.identity_yaml(&issuer, &jwks),
        env.path().join("rsa-private.pem").display(),
        env.path().join("ec-private.pem").display()
    );
    let mut gw = env.gateway(API).with(&identity).start().await;
    let inner = issuer.mint(&issuer.claims("alice", "orders:read"));
    for (pem, kid) in [(&pems[0], "rsa-1"), (&pems[1], "ec-1")] {
        let jwe = portcullis_testkit::jwe_encrypt(&inner, pem, kid);
        let r = call(&gw, "GET", "/v1/orders", Some(&key), Some(&jwe)).await;
        assert_eq!(r.status, 200, "{kid}: {}", r.text());
    }
    // An unsigned inner token is refused, however well encrypted.
    let unsigned = TestIssuer::forge(
        &serde_json::json!({"alg": "none", "typ": "at+jwt"}),
        &issuer.claims("alice", "orders:read"),
        b"",
    );
    let r = call(
        &gw,
        "GET",
        "/v1/orders",
        Some(&key),
        Some(&portcullis_testkit::jwe_encrypt(
            &unsigned, &pems[1], "ec-1",
        )),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(INVALID));
    gw.expect_event("invalid-token").await;
    // Tampered ciphertext: 401.
    let jwe = portcullis_testkit::jwe_encrypt(&inner, &pems[0], "rsa-1");
    let mut parts: Vec<&str> = jwe.split('.').collect();
    let flipped = if parts[3].starts_with('A') {
        parts[3].replacen('A', "B", 1)
    } else {
        format!("A{}", &parts[3][1..])
    };
    parts[3] = &flipped;
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&key), Some(&parts.join(".")))
            .await
            .status,
        401
    );
    // Issue 16 item 4: refused before any decryption work when the header
    // names a key id the gateway does not hold, or an issuer it does not
    // trust (RFC 7519 §5.3 replicated claim); the events say which.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwe = portcullis_testkit::jwe_encrypt(&inner, &pems[0], "rsa-1");
    let mut parts: Vec<String> = jwe.split('.').map(str::to_owned).collect();
    let mut header: serde_json::Value =
        serde_json::from_slice(&base64::Engine::decode(&b64, &parts[0]).unwrap()).unwrap();
    header["iss"] = "https://partner.test".into();
    parts[0] = base64::Engine::encode(&b64, header.to_string());
    for (token, why) in [
        (
            portcullis_testkit::jwe_encrypt(&inner, &pems[0], "rsa-9"),
            "key id this gateway does not hold",
        ),
        (parts.join("."), "issuer that is not configured"),
    ] {
        let r = call(&gw, "GET", "/v1/orders", Some(&key), Some(&token)).await;
        assert_eq!(r.status, 401, "{why}");
        loop {
            let e = gw.next_event().await;
            if e.message.contains(why) {
                break;
            }
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn opaque_tokens_are_introspected_every_time_and_fail_closed() {
    use bytes::Bytes;
    use portcullis_gateway::dev::backend;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let env = TestEnv::new().await;
    let issuer = TestIssuer::new(ISS, "k1");
    let jwks = env.path().join("jwks.json");
    let key = env.provision_app("web");
    // A real RFC 7662 endpoint over HTTPS, checking the gateway's client credentials.
    let calls = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicBool::new(true));
    let handler: backend::Handler = {
        let calls = calls.clone();
        let up = up.clone();
        Arc::new(move |req: http::Request<Bytes>, _peer| {
            calls.fetch_add(1, Ordering::Relaxed);
            let now = portcullis_gateway::clock::now();
            let authorized = req
                .headers()
                .get("authorization")
                .is_some_and(|v| v == "Basic Z2F0ZXdheTpzM2NyM3Q=");
            let body = String::from_utf8_lossy(req.body()).into_owned();
            let answer = if !up.load(Ordering::Relaxed) {
                None
            } else if !authorized {
                Some((401, serde_json::json!({"error": "invalid_client"})))
            } else if body.starts_with("token=opaque%2Dread&") {
                Some((
                    200,
                    serde_json::json!({"active": true, "scope": "orders:read", "sub": "carol", "exp": now + 600, "iat": now, "aud": "orders-api", "iss": "https://as.test"}),
                ))
            } else if body.starts_with("token=opaque%2Dno%2Dexp&") {
                Some((
                    200,
                    serde_json::json!({"active": true, "scope": "orders:read", "sub": "carol"}),
                ))
            } else {
                Some((200, serde_json::json!({"active": false})))
            };
            let resp = match answer {
                Some((status, json)) => http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(json.to_string()))),
                None => http::Response::builder()
                    .status(503)
                    .body(Full::new(Bytes::new())),
            };
            Box::pin(async move { resp.unwrap() })
        })
    };
    let server = env.https_server(handler).await;
    let secret = env.path().join("introspection-secret");
    portcullis_gateway::files::write_private(&secret, b"s3cr3t\n").unwrap();
    let identity = format!(
        "{}  introspection:\n    url: https://127.0.0.1:{}/introspect\n    ca: {}\n    client_id: gateway\n    client_secret_file: {}\n    issuer: https://as.test\n    audiences: [orders-api]\n",
        env.identity_yaml(&issuer, &jwks),
        server.addr.port(),
        env.ca_path.display(),
        secret.display()
    );
    // Two issuers (the JWKS one and the introspection server): the API names both.
    let api = API.replace(
        "    upstream: backend\n",
        "    upstream: backend\n    token_issuers: [https://issuer.test, https://as.test]\n",
    );
    let mut gw = env.gateway(&api).with(&identity).start().await;
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&key), Some("opaque-read"))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&key), Some("opaque-read"))
            .await
            .status,
        200
    );
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "answers are not cached (AUTHZ-05)"
    );
    for (token, why) in [("opaque-unknown", "inactive"), ("opaque-no-exp", "no exp")] {
        let r = call(&gw, "GET", "/v1/orders", Some(&key), Some(token)).await;
        assert_eq!(r.status, 401, "{why}");
        assert_eq!(r.header("www-authenticate"), Some(INVALID), "{why}");
        gw.expect_event("invalid-token").await;
    }
    // A refused token is refused again from memory for a few seconds (a
    // flood of unknown tokens does not reach the authorization server).
    let before = calls.load(Ordering::Relaxed);
    for _ in 0..5 {
        let r = call(&gw, "GET", "/v1/orders", Some(&key), Some("opaque-unknown")).await;
        assert_eq!(r.status, 401);
        let e = gw.expect_event("invalid-token").await;
        assert!(e.message.contains("inactive"), "{}", e.message);
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        before,
        "refusals are remembered"
    );
    // Scope still applies to introspected tokens.
    let r = call(&gw, "POST", "/v1/orders", Some(&key), Some("opaque-read")).await;
    assert_eq!(r.status, 403);
    let e = gw.expect_event("insufficient-scope").await;
    assert!(e.message.contains("scope"), "{}", e.message);
    // The authorization server is down: fail closed.
    up.store(false, Ordering::Relaxed);
    assert_eq!(
        call(&gw, "GET", "/v1/orders", Some(&key), Some("opaque-read"))
            .await
            .status,
        401
    );
    gw.stop().await;
    server.stop().await;
}

/// AUTHN-01: every authenticated request yields one claim set, handed to the
/// backend as the context token. Decoded and verified against the gateway's
/// published keys, it names the subject, the gateway as issuer, the backend
/// as audience, a short expiry, a fresh `jti` per request and the methods
/// that authenticated the caller, with the application, the token's issuer,
/// scopes and client.
#[tokio::test]
async fn the_context_token_carries_the_verified_claim_set() {
    use jsonwebtoken::jwk::JwkSet;
    let s = setup().await;
    let mut claims = s.issuer.claims("alice", "orders:read orders:write");
    claims["client_id"] = "web".into();
    let token = s.issuer.mint(&claims);
    let attestor = s.gw.running.as_ref().unwrap().attestor().unwrap();
    let published: JwkSet = serde_json::from_slice(&attestor.jwks()).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = call(&s.gw, "GET", "/v1/orders", Some(&s.key), Some(&token)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let received = s.env.received();
        let context = received.last().unwrap().headers["portcullis-context"]
            .to_str()
            .unwrap()
            .to_owned();
        let header = jsonwebtoken::decode_header(&context).unwrap();
        let jwk = published.find(header.kid.as_deref().unwrap()).unwrap();
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_issuer(&["portcullis"]);
        v.set_audience(&["backend"]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let c = jsonwebtoken::decode::<serde_json::Value>(
            &context,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &v,
        )
        .expect("signed by the gateway's published key")
        .claims;
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["iss"], "portcullis");
        assert_eq!(c["aud"], "backend");
        let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
        assert_eq!(exp - iat, 30, "the default lifetime");
        assert_eq!(c["amr"], serde_json::json!(["api_key", "bearer"]));
        assert_eq!(c["app"], "web");
        assert_eq!(c["token_iss"], ISS);
        assert_eq!(c["client_id"], "web");
        assert_eq!(
            c["scopes"],
            serde_json::json!(["orders:read", "orders:write"])
        );
        assert!(c["correlation_id"].is_string());
        seen.push(c["jti"].as_str().unwrap().to_owned());
    }
    assert_ne!(seen[0], seen[1], "a fresh jti per request");
    s.gw.stop().await;
}
