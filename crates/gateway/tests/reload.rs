//! Live reload: validated completely before it is swapped in, refused with
//! the messages of `check` (the old config keeps serving), requests in
//! flight finish on their config, limits are not reset, certificates are
//! taken over by new handshakes.

use portcullis_gateway::admin::{Role, create_admin};
use portcullis_gateway::store::audit_log;
use portcullis_testkit::{DELAY_HEADER, ORDERS_API, TestEnv, TestGateway, admin_call};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;
use std::time::Duration;

fn top(env: &TestEnv) -> String {
    format!(
        "identity: {{ data_dir: {} }}\nadmin: {{ bind: '127.0.0.1:0' }}",
        env.identity_dir().display()
    )
}

/// Writes the config the gateway reloads from.
fn rewrite(gw: &TestGateway, yaml: &str) {
    std::fs::write(&gw.config_path, yaml).unwrap();
}

fn operator(env: &TestEnv, role: Role) -> String {
    let (store, pepper) = env.store();
    create_admin(
        &store,
        &pepper,
        "olga",
        role,
        ("local:test", "local-store"),
        "setup",
    )
    .unwrap()
}

async fn reload(gw: &TestGateway, token: &str) -> (u16, serde_json::Value) {
    let admin = gw.running.as_ref().unwrap().addr("admin").unwrap();
    admin_call(admin, "POST", "/admin/v1/reload", Some(token), None).await
}

const INVOICES_API: &str = "
  - name: invoices
    base_path: /v2
    upstream: backend
    routes:
      - { path: /invoices, methods: [GET], auth: public }
";

#[tokio::test]
async fn a_reload_swaps_the_config_at_once_and_requests_in_flight_finish_on_theirs() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).with(&top(&env)).start().await;
    let token = operator(&env, Role::Operator);
    env.reply_with(|r| {
        let mut b = http::Response::builder().status(200);
        if r.uri.path().ends_with("/slow") {
            b = b.header(DELAY_HEADER, "1500");
        }
        b.body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap()
    });
    // The slow request starts under the old config (its correlation header
    // is x-correlation-id, the route /v1/orders/{id} exists)...
    let client = gw.client(portcullis_testkit::Proto::Http1);
    let in_flight = {
        let req = gw
            .request("GET", "/v1/orders/slow")
            .body(http_body_util::Full::default())
            .unwrap();
        tokio::spawn(async move { portcullis_testkit::fetch(&client, req).await })
    };
    // Once the backend holds it...
    for _ in 0..100 {
        if !env.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        env.received().len(),
        1,
        "the slow request reached the backend"
    );
    // ...a reload replaces the orders API with invoices, with another
    // correlation header, while it waits on the backend.
    rewrite(
        &gw,
        &env.gateway(INVOICES_API)
            .with(&format!(
                "{}\ncorrelation: {{ header: x-request-ref }}",
                top(&env)
            ))
            .yaml(),
    );
    let (status, body) = reload(&gw, &token).await;
    assert_eq!(status, 200, "{body}");
    let changed = body["changed"].as_array().unwrap();
    assert!(changed.contains(&json!("apis")), "{body}");
    assert!(changed.contains(&json!("headers")), "{body}");
    let event = gw.next_event().await;
    assert_eq!(event.status_code, "config-reloaded", "{event:?}");

    // New requests see the new config at once.
    assert_eq!(gw.get("/v1/orders").await.status, 404);
    let r = gw.get("/v2/invoices").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-request-ref").is_some());
    assert!(r.header("x-correlation-id").is_none());

    // The request in flight was answered, and under the config it began with.
    let slow = in_flight.await.unwrap();
    assert_eq!(slow.status, 200);
    assert!(
        slow.header("x-correlation-id").is_some(),
        "{:?}",
        slow.headers
    );
    assert!(slow.header("x-request-ref").is_none());

    // The reload is in the audit log, with what changed.
    let (store, pepper) = env.store();
    audit_log::verify(&store, &pepper).unwrap().unwrap();
    let entries = audit_log::entries(&store).unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|(_, e)| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.ends_with(&["config.reload", "config.reloaded"]),
        "{actions:?}"
    );
    assert_eq!(entries.last().unwrap().1["actor"], "olga");
    assert_eq!(
        entries.last().unwrap().1["after"]["changed"],
        json!(body["changed"])
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_invalid_config_is_refused_with_checks_messages_and_the_old_one_keeps_serving() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).with(&top(&env)).start().await;
    let token = operator(&env, Role::Operator);

    // A field error: the same messages `portcullis check` prints.
    let broken = env
        .gateway(&ORDERS_API.replace("upstream: backend", "upstream: nowhere"))
        .with(&top(&env))
        .yaml();
    rewrite(&gw, &broken);
    let expected: Vec<String> = portcullis_config::load(&gw.config_path)
        .unwrap_err()
        .field_errors()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(!expected.is_empty());
    let (status, body) = reload(&gw, &token).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:portcullis:problem:admin-invalid-config");
    assert_eq!(body["errors"], json!(expected), "{body}");
    assert!(body["errors"][0].as_str().unwrap().contains("nowhere"));
    let event = gw.next_event().await;
    assert_eq!(event.status_code, "config-reload-refused");
    assert_eq!(gw.get("/v1/orders").await.status, 200, "old config serves");

    // A file that cannot be used (a missing certificate): the build error
    // `check` prints, and nothing half-applied.
    let missing_cert = env
        .gateway(ORDERS_API)
        .with(&top(&env))
        .listeners(&format!(
            "  - name: public\n    bind: 127.0.0.1:0\n    tls: {{ cert: {}, key: {} }}\n",
            env.path().join("missing.pem").display(),
            env.gateway_cert.key.display()
        ))
        .yaml();
    rewrite(&gw, &missing_cert);
    let expected_build_error = {
        let config = portcullis_config::load(&gw.config_path).unwrap();
        portcullis_gateway::Gateway::build(&config)
            .err()
            .expect("a missing certificate does not build")
            .to_string()
    };
    let (status, body) = reload(&gw, &token).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"], json!([expected_build_error]), "{body}");
    assert!(expected_build_error.starts_with("listeners[0].tls"));
    let e = gw.expect_event("config-reload-refused").await;
    assert!(e.message.contains("invalid"), "{}", e.message);
    assert_eq!(gw.get("/v1/orders").await.status, 200, "old config serves");

    // What only a restart can change is refused, with the fields named.
    let moved = env
        .gateway(ORDERS_API)
        .with(&top(&env))
        .listeners(&format!(
            "  - name: public\n    bind: 127.0.0.1:1\n    tls: {{ cert: {}, key: {} }}\n",
            env.gateway_cert.cert.display(),
            env.gateway_cert.key.display()
        ))
        .yaml();
    rewrite(&gw, &moved);
    let (status, body) = reload(&gw, &token).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:portcullis:problem:admin-restart-needed");
    assert_eq!(
        body["errors"],
        json!(["listeners[0].bind: changing this needs a restart"])
    );
    let e = gw.expect_event("config-reload-refused").await;
    assert!(e.message.contains("need a restart"), "{}", e.message);
    assert_eq!(gw.get("/v1/orders").await.status, 200, "old config serves");

    // Each refusal is audited; a viewer may not reload at all.
    let (store, pepper) = env.store();
    let failed = audit_log::entries(&store)
        .unwrap()
        .iter()
        .filter(|(_, e)| e["action"] == "failed:config.reload")
        .count();
    assert_eq!(failed, 3);
    let viewer = {
        create_admin(
            &store,
            &pepper,
            "vic",
            Role::Viewer,
            ("local:test", "x"),
            "s",
        )
        .unwrap()
    };
    let (status, _) = reload(&gw, &viewer).await;
    assert_eq!(status, 403);
    gw.stop().await;
}

#[tokio::test]
async fn a_reload_keeps_rate_limit_state_and_new_handshakes_get_the_new_certificate() {
    let env = TestEnv::new().await;
    let limited = ORDERS_API.replace(
        "    routes:",
        "    rate_limits: [{ per: client, requests: 1, per_seconds: 3600, burst: 1 }]\n    routes:",
    );
    let gw = env.gateway(&limited).with(&top(&env)).start().await;
    let token = operator(&env, Role::Operator);
    assert_eq!(gw.get("/v1/orders").await.status, 200);
    assert_eq!(gw.get("/v1/orders").await.status, 429);

    // A new server certificate, and one more route: the limit is unchanged.
    let renewed = env
        .ca
        .issue_to(env.path(), "renewed", &["localhost", "127.0.0.1"], false)
        .unwrap();
    let listeners = format!(
        "  - name: public\n    bind: 127.0.0.1:0\n    tls: {{ cert: {}, key: {} }}\n",
        renewed.cert.display(),
        renewed.key.display()
    );
    let with_route = limited.replace(
        "      - { path: /orders, methods: [GET, POST], auth: public }",
        "      - { path: /orders, methods: [GET, POST], auth: public }\n      - { path: /returns, methods: [GET], auth: public }",
    );
    rewrite(
        &gw,
        &env.gateway(&with_route)
            .with(&top(&env))
            .listeners(&listeners)
            .yaml(),
    );
    let (status, body) = reload(&gw, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        gw.get("/v1/orders").await.status,
        429,
        "a reload is no way around a limit"
    );

    let tls = gw.raw_tls().await;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let expected = CertificateDer::from_pem_file(&renewed.cert).unwrap();
    assert_eq!(
        presented, expected,
        "new handshakes get the renewed certificate"
    );

    // A changed limit is a new limit, with a fresh budget.
    rewrite(
        &gw,
        &env.gateway(&with_route.replace("requests: 1,", "requests: 2,"))
            .with(&top(&env))
            .listeners(&listeners)
            .yaml(),
    );
    let (status, body) = reload(&gw, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.get("/v1/returns").await.status, 200);
    gw.stop().await;
}
