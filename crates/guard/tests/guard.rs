//! The backend guard against a real gateway (AUTHN-10, AUTHN-12, AUTHZ-06):
//! requests the gateway forwards pass, with their claims; a direct call, a
//! token for another backend, an expired token, a token replayed (with the
//! same or another correlation id), a token from another signer and a
//! caller without the gateway's certificate are refused.

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use portcullis_gateway::dev::backend::{self, BackendServer, Handler, HandlerService};
use portcullis_guard::{GatewayContext, Guard, GuardConfig, GuardLayer, Keys, Refusal};
use portcullis_testkit::{Proto, TestEnv, fetch, https_client_with};
use std::sync::{Arc, Mutex};
use tower_layer::Layer;

/// What the guarded backend saw: the headers of every request that passed,
/// and the claims its handler read.
#[derive(Default)]
struct Seen {
    headers: Vec<HeaderMap>,
    contexts: Vec<GatewayContext>,
}

fn echo_claims(seen: Arc<Mutex<Seen>>) -> Handler {
    Arc::new(move |req: Request<Bytes>, _peer| {
        let context = req.extensions().get::<GatewayContext>().cloned();
        let mut s = seen.lock().unwrap();
        s.headers.push(req.headers().clone());
        let body = match &context {
            Some(c) => serde_json::to_vec(&c.0).unwrap(),
            None => b"{}".to_vec(),
        };
        if let Some(c) = context {
            s.contexts.push(c);
        }
        Box::pin(async move {
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        })
    })
}

/// Same as the gateway forwards: only the two headers the guard reads.
fn replay(headers: &HeaderMap, correlation: Option<&str>) -> HeaderMap {
    let mut out = HeaderMap::new();
    out.insert("portcullis-context", headers["portcullis-context"].clone());
    let c = correlation.map_or_else(
        || headers["x-correlation-id"].clone(),
        |c| c.parse().unwrap(),
    );
    out.insert("x-correlation-id", c);
    out
}

struct Setup {
    env: TestEnv,
    guarded: BackendServer,
    seen: Arc<Mutex<Seen>>,
    gw: portcullis_testkit::TestGateway,
    keys_dir: std::path::PathBuf,
}

/// A gateway whose `backend` upstream is a guarded server requiring the
/// gateway's client certificate; `other` reaches the same server with
/// another audience.
async fn setup(
    mine_extra: &str,
    guard_for: impl Fn(std::net::SocketAddr, &std::path::Path) -> GuardConfig,
) -> Setup {
    let env = TestEnv::new().await;
    let backend_id = env.ca.issue(&["guarded.test", "127.0.0.1"], false).unwrap();
    let gateway_client = env
        .ca
        .issue_to(env.path(), "gateway-client", &["gateway.internal"], true)
        .unwrap();
    // The JWKS listener's port is known only once the gateway runs, so the
    // guarded handler is installed after the gateway has started.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let guard_cell: Arc<std::sync::OnceLock<Handler>> = Arc::default();
    let handler: Handler = {
        let guard_cell = guard_cell.clone();
        Arc::new(move |req, peer| {
            let h = guard_cell.get().expect("guard installed").clone();
            h(req, peer)
        })
    };
    let guarded = BackendServer::start(
        "127.0.0.1:0".parse().unwrap(),
        backend::mtls_from_pem(
            &env.ca.cert_pem(),
            &backend_id.cert_pem,
            &backend_id.key_pem,
        )
        .unwrap(),
        handler,
    )
    .await
    .unwrap();
    let keys_dir = env.path().join("context-keys");
    let upstream = |audience: &str| {
        format!(
            "url: https://127.0.0.1:{}\nca: {}\nserver_name: guarded.test\nclient_cert: {}\nclient_key: {}\ncontext_audience: {audience}",
            guarded.addr.port(),
            env.ca_path.display(),
            gateway_client.cert.display(),
            gateway_client.key.display(),
        )
    };
    let api = |name: &str| {
        format!(
            "  - name: {name}\n    base_path: /{name}\n    upstream: {name}\n    routes:\n      - {{ path: /orders, methods: [GET], auth: public }}\n"
        )
    };
    let gw = env
        .gateway(&format!("{}{}", api("mine"), api("other")))
        .extra_upstream("mine", &format!("{}\n{mine_extra}", upstream("orders-backend")))
        .extra_upstream("other", &upstream("billing-backend"))
        .with(&format!(
            "context_token: {{ keys_dir: {}, lifetime_s: 2, overlap_s: 60, jwks_bind: '127.0.0.1:0' }}",
            keys_dir.display()
        ))
        .start()
        .await;
    let jwks = gw.running.as_ref().unwrap().addr("jwks").unwrap();
    let guard = Arc::new(Guard::new(guard_for(jwks, &keys_dir)).unwrap());
    let service = GuardLayer::new(guard).layer(HandlerService(echo_claims(seen.clone())));
    guard_cell
        .set(backend::from_service(service))
        .unwrap_or_else(|_| unreachable!());
    Setup {
        env,
        guarded,
        seen,
        gw,
        keys_dir,
    }
}

impl Setup {
    fn jwks(&self) -> std::net::SocketAddr {
        self.gw.running.as_ref().unwrap().addr("jwks").unwrap()
    }

    /// Headers of the last request the guarded handler accepted.
    fn last_headers(&self) -> HeaderMap {
        self.seen.lock().unwrap().headers.last().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        self.seen.lock().unwrap().contexts.len()
    }
}

fn url_guard(jwks: std::net::SocketAddr, _: &std::path::Path) -> GuardConfig {
    let mut c = GuardConfig::new(
        "portcullis",
        "orders-backend",
        Keys::Url {
            url: format!("http://{jwks}/.well-known/jwks.json")
                .parse()
                .unwrap(),
            ca: None,
        },
    );
    c.gateway_peer_names = vec!["gateway.internal".into()];
    c.leeway = std::time::Duration::ZERO;
    c
}

#[tokio::test]
async fn guard_accepts_only_what_the_gateway_forwarded_for_this_backend() {
    let s = setup("", url_guard).await;
    // Through the gateway: accepted, and the handler sees the claims.
    let r = s.gw.get("/mine/orders").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let claims = r.json();
    assert_eq!(claims["aud"], "orders-backend");
    assert_eq!(claims["iss"], "portcullis");
    assert_eq!(
        claims["correlation_id"].as_str(),
        r.header("x-correlation-id"),
        "bound to the request's correlation id"
    );
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 2);
    assert!(claims["cnf"].is_null(), "no client certificate at the edge");
    // A client's own copy of the header never reaches the backend.
    let r =
        s.gw.send(
            Proto::Http1,
            s.gw.request("GET", "/mine/orders")
                .header("portcullis-context", "forged.by.client")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(s.last_headers()["portcullis-context"], "forged.by.client");
    assert_eq!(
        s.last_headers()
            .get_all("portcullis-context")
            .iter()
            .count(),
        1
    );

    // A direct call, bypassing the gateway: refused with a problem body.
    let client_id = s.env.ca.issue(&["gateway.internal"], true).unwrap();
    let direct = https_client_with(
        &s.env.ca.cert_pem(),
        Some((&client_id.cert_pem, &client_id.key_pem)),
        Proto::Http1,
    );
    let response = fetch(
        &direct,
        Request::get(format!(
            "https://127.0.0.1:{}/orders",
            s.guarded.addr.port()
        ))
        .body(Full::new(Bytes::new()))
        .unwrap(),
    )
    .await;
    assert_eq!(response.status, 401);
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(s.accepted(), 2, "the handler never saw it");

    // The captured token, sent again directly (with the gateway-named
    // certificate, so only the token decides): refused as a replay, and
    // under another correlation id as bound to another request.
    let headers = s.last_headers();
    let guard = Guard::new(url_guard(s.jwks(), &s.keys_dir)).unwrap();
    let peer = rustls_cert(&client_id.cert_pem);
    assert!(
        guard
            .verify(&replay(&headers, None), Some(&peer))
            .await
            .is_ok(),
        "fresh guard: first use"
    );
    assert_eq!(
        guard.verify(&replay(&headers, None), Some(&peer)).await,
        Err(Refusal::Replay)
    );
    assert_eq!(
        guard
            .verify(
                &replay(&headers, Some("01890a5d-ac96-774b-bcce-b302099a8057")),
                Some(&peer)
            )
            .await,
        Err(Refusal::Correlation)
    );
    let mut via_http = Request::get(format!(
        "https://127.0.0.1:{}/orders",
        s.guarded.addr.port()
    ));
    for (k, v) in &replay(&headers, None) {
        via_http = via_http.header(k, v);
    }
    let response = fetch(&direct, via_http.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(response.status, 401, "replayed over HTTP");

    // Minted for another backend: refused by this one.
    let r = s.gw.get("/other/orders").await;
    assert_eq!(r.status, 401);
    assert_eq!(s.accepted(), 2);

    // Expired: the gateway's lifetime here is 2 s and the guard allows no skew.
    let r = s.gw.get("/mine/orders").await;
    assert_eq!(r.status, 200);
    let fresh = s.last_headers();
    // A clock to pass, not synchronisation: the token's 2 s lifetime.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let late = Guard::new(url_guard(s.jwks(), &s.keys_dir)).unwrap();
    assert_eq!(
        late.verify(&replay(&fresh, None), Some(&peer)).await,
        Err(Refusal::Expired)
    );

    // Without the gateway's certificate, even a valid token is refused.
    let stranger = s.env.ca.issue(&["someone.else"], true).unwrap();
    let r = Guard::new(url_guard(s.jwks(), &s.keys_dir))
        .unwrap()
        .verify(
            &replay(&fresh, None),
            Some(&rustls_cert(&stranger.cert_pem)),
        )
        .await;
    assert!(matches!(r, Err(Refusal::Peer(_))), "{r:?}");
    // And without any certificate.
    let r = Guard::new(url_guard(s.jwks(), &s.keys_dir))
        .unwrap()
        .verify(&replay(&fresh, None), None)
        .await;
    assert_eq!(r, Err(Refusal::Peer("no client certificate")));
}

fn file_guard(_: std::net::SocketAddr, keys_dir: &std::path::Path) -> GuardConfig {
    GuardConfig::new(
        "portcullis",
        "orders-backend",
        Keys::File(keys_dir.join("jwks.json")),
    )
}

/// The gateway's JWKS listener answers anything but its key set with the
/// gateway's one unknown-route problem, hardened like every other answer;
/// the key set itself may be cached for a minute.
#[tokio::test]
async fn the_jwks_listener_refuses_other_paths_like_the_gateway() {
    let s = setup("", url_guard).await;
    let raw = |path: &'static str| {
        let addr = s.jwks();
        async move {
            let request = format!("GET {path} HTTP/1.1\r\nHost: jwks\r\nConnection: close\r\n\r\n");
            portcullis_testkit::plain_exchange(addr, request.as_bytes())
                .await
                .to_ascii_lowercase()
        }
    };
    let other = raw("/admin/v1/apps").await;
    assert!(other.starts_with("http/1.1 404"), "{other}");
    for expected in [
        "content-type: application/problem+json",
        "urn:portcullis:problem:unknown-route",
        "x-content-type-options: nosniff",
        "cache-control: no-store",
        "x-correlation-id: ",
    ] {
        assert!(other.contains(expected), "{expected} missing from {other}");
    }
    let keys = raw("/.well-known/jwks.json").await;
    assert!(keys.starts_with("http/1.1 200"), "{keys}");
    assert!(
        keys.contains("cache-control: max-age=60") && keys.contains("\"keys\""),
        "{keys}"
    );
}

#[tokio::test]
async fn guard_refuses_other_signers_and_follows_key_rotation() {
    let s = setup("", file_guard).await;
    assert_eq!(s.gw.get("/mine/orders").await.status, 200);
    let headers = s.last_headers();
    let token = headers["portcullis-context"].to_str().unwrap().to_owned();
    let guard = Guard::new(file_guard(s.jwks(), &s.keys_dir)).unwrap();

    // Same header and claims, signed by a key that is not the gateway's.
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let parts: Vec<&str> = token.split('.').collect();
    let stranger = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    let forged = format!(
        "{signed}.{}",
        b64(stranger.sign(signed.as_bytes()).as_ref())
    );
    let with = |t: &str| {
        let mut h = replay(&headers, None);
        h.insert("portcullis-context", t.parse().unwrap());
        h
    };
    assert_eq!(
        guard.verify(&with(&forged), None).await,
        Err(Refusal::Invalid("bad signature"))
    );
    // Signed by the gateway's key, but this guard trusts another issuer.
    let mut elsewhere = file_guard(s.jwks(), &s.keys_dir);
    elsewhere.issuers = vec!["another-gateway".into()];
    assert_eq!(
        Guard::new(elsewhere)
            .unwrap()
            .verify(&with(&token), None)
            .await,
        Err(Refusal::Invalid("issuer not allowed"))
    );
    // `alg: none` and a token of another type are refused before any key is looked at.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"portcullis-context+jwt"}"#),
        parts[1]
    );
    assert!(matches!(
        guard.verify(&with(&none), None).await,
        Err(Refusal::Invalid(_))
    ));
    let plain_jwt = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"k"}"#),
        parts[1],
        parts[2]
    );
    assert_eq!(
        guard.verify(&with(&plain_jwt), None).await,
        Err(Refusal::Invalid("not a context token (typ)"))
    );
    // Twice the header: ambiguous, refused.
    let mut twice = replay(&headers, None);
    twice.append("portcullis-context", token.parse().unwrap());
    assert_eq!(
        guard.verify(&twice, None).await,
        Err(Refusal::Invalid("token given twice"))
    );

    // Rotation: the gateway signs with a new key, publishes both; the guard
    // reloads the file for the unknown kid and accepts.
    let attestor = s.gw.running.as_ref().unwrap().attestor().unwrap().clone();
    let old_kid = attestor.active_kid();
    attestor.rotate(portcullis_gateway::clock::now()).unwrap();
    assert_ne!(attestor.active_kid(), old_kid);
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.keys_dir.join("jwks.json")).unwrap()).unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "old key kept for the overlap"
    );
    assert_eq!(s.gw.get("/mine/orders").await.status, 200);
    assert_eq!(s.accepted(), 2);
    // Past the overlap the old key is retired and its file deleted.
    attestor
        .maintain(portcullis_gateway::clock::now() + 61)
        .unwrap();
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.keys_dir.join("jwks.json")).unwrap()).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], attestor.active_kid());
    let files = std::fs::read_dir(&s.keys_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".p8")
        })
        .count();
    assert_eq!(files, 1);
}

#[tokio::test]
async fn encrypted_context_tokens_open_only_with_the_backends_key() {
    let pkcs8 = {
        let k =
            aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::ECDH_P256).unwrap();
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = k.as_der().unwrap();
        der.as_ref().to_vec()
    };
    let pem = |label: &str, der: &[u8]| {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    };
    let private_pem = pem("PRIVATE KEY", &pkcs8);
    let public =
        portcullis_jose::jwe::EncryptionKey::public_of_pkcs8_pem(private_pem.as_bytes()).unwrap();
    let portcullis_jose::jwe::EncryptionKey::EcP256(spki) = public else {
        unreachable!()
    };
    let dir = tempfile::tempdir().unwrap();
    let public_path = dir.path().join("backend-public.pem");
    std::fs::write(&public_path, pem("PUBLIC KEY", &spki)).unwrap();
    let key_pem = private_pem.clone();
    let s = setup(
        &format!("context_encrypt_to: {}", public_path.display()),
        move |_, keys_dir| {
            let mut c = file_guard("127.0.0.1:1".parse().unwrap(), keys_dir);
            c.decryption_keys = vec![(
                None,
                portcullis_guard::DecryptionKey::from_pkcs8_pem(key_pem.as_bytes()).unwrap(),
            )];
            c.require_encryption = true;
            c
        },
    )
    .await;
    let r = s.gw.get("/mine/orders").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["aud"], "orders-backend");
    let headers = s.last_headers();
    let token = headers["portcullis-context"].to_str().unwrap();
    assert_eq!(
        token.split('.').count(),
        5,
        "a compact JWE reached the backend"
    );
    // A guard without the backend's private key cannot read it.
    let keyless = Guard::new(file_guard(s.jwks(), &s.keys_dir)).unwrap();
    assert_eq!(
        keyless.verify(&replay(&headers, None), None).await,
        Err(Refusal::Invalid("encrypted token but no decryption key"))
    );
}

fn rustls_cert(pem: &str) -> rustls_pki_types::CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}
