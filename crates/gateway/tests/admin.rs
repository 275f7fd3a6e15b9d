//! The admin plane (OPS-03, OPS-04, OPS-05, PROC-06): roles, kill switches,
//! the audit log, and that the admin API is never on a data-plane listener.

use portcullis_gateway::admin::Role;
use portcullis_gateway::store::SqliteStore;
use portcullis_gateway::store::audit_log::{self, AuditEntry, Break};
use portcullis_testkit::{ORDERS_API, TestEnv, TestGateway, admin_call};
use serde_json::json;

/// Config lines for `identity` and an admin plane on loopback.
fn admin_plane(env: &TestEnv) -> String {
    format!(
        "identity: {{ data_dir: {} }}\nadmin: {{ bind: '127.0.0.1:0' }}",
        env.identity_dir().display()
    )
}

/// The gateway's admin address.
fn admin_addr(gw: &TestGateway) -> std::net::SocketAddr {
    gw.running.as_ref().unwrap().addr("admin").unwrap()
}

/// A gateway with `identity` and an admin plane on loopback; its admin address.
async fn with_admin_plane(env: &TestEnv, apis: &str) -> (TestGateway, std::net::SocketAddr) {
    let gw = env.gateway(apis).with(&admin_plane(env)).start().await;
    let admin = admin_addr(&gw);
    (gw, admin)
}

fn bootstrap(env: &TestEnv, name: &str, role: Role) -> String {
    env.admin_token(name, role)
}

#[tokio::test]
async fn each_role_may_do_exactly_its_actions_and_every_refusal_is_audited() {
    let env = TestEnv::new().await;
    let api = ORDERS_API.replace("auth: public }", "auth: { api_key: true } }");
    let (mut gw, admin) = with_admin_plane(&env, &api).await;
    let root = bootstrap(&env, "root", Role::SecurityAdmin);
    let call = |token: Option<&str>, method: &str, path: &str, body: Option<serde_json::Value>| {
        let token = token.map(str::to_owned);
        let (method, path) = (method.to_owned(), path.to_owned());
        async move { admin_call(admin, &method, &path, token.as_deref(), body).await }
    };

    // A security-admin creates the other administrators.
    let mut tokens = std::collections::HashMap::new();
    for (name, role) in [("vera", "viewer"), ("otto", "operator")] {
        let (status, body) = call(
            Some(&root),
            "POST",
            "/admin/v1/admins",
            Some(json!({ "name": name, "role": role })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        tokens.insert(role, body["token"].as_str().unwrap().to_owned());
    }
    let (viewer, operator) = (tokens["viewer"].clone(), tokens["operator"].clone());
    // Each change is also an OCSF Account Change event (class 3001, Create).
    for _ in 0..2 {
        let e = gw.next_event().await;
        assert_eq!(
            (e.status_code.as_str(), e.class_uid, e.activity_id),
            ("admin.create", 3001, 1)
        );
    }

    // No or a wrong credential: 401, with an OCSF Authentication event.
    let (status, body) = call(None, "GET", "/admin/v1/apps", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "urn:portcullis:problem:admin-unauthenticated");
    let e = gw.next_event().await;
    assert_eq!(
        (e.status_code.as_str(), e.class_uid),
        ("admin-unauthenticated", 3002)
    );
    // The last hex digit changed (never to itself: a token ending in 0
    // gets a 1).
    let last = if root.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &root[..root.len() - 1]);
    assert_ne!(forged, root);
    assert_eq!(
        call(Some(&forged), "GET", "/admin/v1/apps", None).await.0,
        401
    );
    gw.expect_event("admin-unauthenticated").await;

    // (role, method, path, body, expected status)
    let app = |name: &str| json!({ "name": name });
    let off = json!({ "target": "api:orders", "reason": "incident 42" });
    let matrix: Vec<(&str, &str, &str, Option<serde_json::Value>, u16)> = vec![
        (&viewer, "GET", "/admin/v1/apps", None, 200),
        (&viewer, "GET", "/admin/v1/kill-switches", None, 200),
        (&viewer, "GET", "/admin/v1/audit-log", None, 200),
        (
            &viewer,
            "POST",
            "/admin/v1/kill-switches",
            Some(off.clone()),
            403,
        ),
        (&viewer, "POST", "/admin/v1/apps", Some(app("v")), 403),
        (&operator, "POST", "/admin/v1/apps", Some(app("o")), 403),
        (&operator, "POST", "/admin/v1/apps/web/keys", None, 403),
        (
            &operator,
            "POST",
            "/admin/v1/admins",
            Some(json!({ "name": "x", "role": "viewer" })),
            403,
        ),
        (&root, "POST", "/admin/v1/apps", Some(app("web")), 201),
        (
            &operator,
            "POST",
            "/admin/v1/kill-switches",
            Some(json!({ "target": "api:nope", "reason": "r" })),
            404,
        ),
        (
            &operator,
            "POST",
            "/admin/v1/kill-switches",
            Some(json!({ "target": "api:orders" })),
            400,
        ),
    ];
    let mut refusals = 0;
    for (token, method, path, body, want) in matrix {
        let (status, answer) = call(Some(token), method, path, body).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
        if want == 403 {
            refusals += 1;
            assert_eq!(answer["type"], "urn:portcullis:problem:admin-forbidden");
            assert_eq!(gw.next_event().await.status_code, "admin-forbidden");
        }
    }
    let (status, issued) = call(Some(&root), "POST", "/admin/v1/apps/web/keys", None).await;
    assert_eq!(status, 201);
    let key = issued["key"].as_str().unwrap().to_owned();
    let orders = |key: String| {
        let gw = &gw;
        async move {
            let req = gw
                .request("GET", "/v1/orders")
                .header("x-api-key", key)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            gw.send(portcullis_testkit::Proto::Http1, req).await
        }
    };
    assert_eq!(orders(key.clone()).await.status, 200);

    // Operator: the API off, effective on the next request, then on again.
    let (status, _) = call(
        Some(&operator),
        "POST",
        "/admin/v1/kill-switches",
        Some(off.clone()),
    )
    .await;
    assert_eq!(status, 200);
    let r = orders(key.clone()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["type"], "urn:portcullis:problem:switched-off");
    assert!(
        !r.text().contains("incident"),
        "the operator's reason stays internal"
    );
    let clear = json!({ "target": "api:orders", "reason": "fixed" });
    assert_eq!(
        call(
            Some(&operator),
            "POST",
            "/admin/v1/kill-switches-clear",
            Some(clear)
        )
        .await
        .0,
        200
    );
    assert_eq!(orders(key.clone()).await.status, 200);
    // One route only.
    let route = json!({ "target": "route:orders:/orders/{id}", "reason": "bug in lookup" });
    assert_eq!(
        call(
            Some(&operator),
            "POST",
            "/admin/v1/kill-switches",
            Some(route)
        )
        .await
        .0,
        200
    );
    assert_eq!(gw.get("/v1/orders/1").await.status, 503);
    assert_eq!(orders(key.clone()).await.status, 200);
    // An application's access off: 403; on again.
    let why = json!({ "reason": "leaked key suspected" });
    assert_eq!(
        call(
            Some(&operator),
            "POST",
            "/admin/v1/apps/web/disable",
            Some(why.clone())
        )
        .await
        .0,
        200
    );
    let r = orders(key.clone()).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["type"],
        "urn:portcullis:problem:application-disabled"
    );
    assert_eq!(
        call(
            Some(&operator),
            "POST",
            "/admin/v1/apps/web/enable",
            Some(why)
        )
        .await
        .0,
        200
    );
    assert_eq!(orders(key.clone()).await.status, 200);

    // The admin API is not served on the data-plane listener, even with a token.
    let req = gw
        .request("GET", "/admin/v1/whoami")
        .header("authorization", format!("Bearer {root}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(
        gw.send(portcullis_testkit::Proto::Http1, req).await.status,
        404
    );
    assert_eq!(gw.get("/healthz").await.status, 404);
    assert_eq!(call(None, "GET", "/healthz", None).await.0, 200);

    // Every change and every refusal is in the chained log, which verifies.
    let (status, log) = call(Some(&viewer), "GET", "/admin/v1/audit-log", None).await;
    assert_eq!(status, 200);
    assert_eq!(log["intact"], true, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["entry"]["action"].as_str().unwrap())
        .collect();
    for a in [
        "admin.create",
        "app.create",
        "key.issue",
        "kill-switch.set",
        "kill-switch.clear",
        "app.disable",
        "app.enable",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let denied = entries
        .iter()
        .filter(|e| {
            e["entry"]["action"]
                .as_str()
                .unwrap()
                .starts_with("denied:")
        })
        .count();
    assert_eq!(denied, refusals + 2, "each 401 and 403 is audited");
    let switched = entries
        .iter()
        .find(|e| e["entry"]["action"] == "kill-switch.set")
        .unwrap();
    assert_eq!(switched["entry"]["actor"], "otto");
    assert_eq!(switched["entry"]["role"], "operator");
    assert_eq!(switched["entry"]["reason"], "incident 42");
    assert!(switched["entry"]["correlation_id"].as_str().unwrap().len() >= 32);
    assert!(
        !log.to_string().contains(&key),
        "API keys never reach the log"
    );
}

/// Five entries in a fresh store (SQLite), and the store's directory.
fn five_entries() -> (
    tempfile::TempDir,
    SqliteStore,
    portcullis_gateway::store::pepper::Pepper,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let pepper = portcullis_gateway::store::pepper::Pepper::load_or_create(dir.path()).unwrap();
    for n in 1..=5 {
        let entry = AuditEntry {
            at: n,
            actor: "otto".into(),
            role: "operator".into(),
            action: format!("op-{n}"),
            target: "api:orders".into(),
            before: None,
            after: None,
            reason: Some("r".into()),
            correlation_id: format!("c{n}"),
        };
        audit_log::append(&store, &pepper, &entry).unwrap();
    }
    assert_eq!(audit_log::verify(&store, &pepper).unwrap(), Ok(5));
    (dir, store, pepper)
}

fn tamper(dir: &std::path::Path, sql: &str) {
    let c = rusqlite::Connection::open(dir.join("portcullis.db")).unwrap();
    c.execute_batch(sql).unwrap();
}

#[test]
fn audit_log_verification_names_edited_removed_and_reordered_entries() {
    let cases = [
        (
            "UPDATE audit_log SET entry = replace(entry, 'op-3', 'op-x') WHERE seq = 3",
            Break::Mismatch(3),
        ),
        ("DELETE FROM audit_log WHERE seq = 2", Break::Missing(2)),
        (
            "UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = -1",
            Break::Mismatch(2),
        ),
        (
            "DELETE FROM audit_log WHERE seq = 5",
            Break::Truncated {
                found: 4,
                recorded: 5,
            },
        ),
    ];
    for (sql, expected) in cases {
        let (dir, store, pepper) = five_entries();
        tamper(dir.path(), sql);
        assert_eq!(
            audit_log::verify(&store, &pepper).unwrap(),
            Err(expected.clone()),
            "{sql}"
        );
    }
    // Verifying needs the pepper the log was chained with: under any other
    // key (someone who re-chained an edited log without it) entry 1 fails.
    let (_dir, store, _) = five_entries();
    let other = tempfile::tempdir().unwrap();
    let other = portcullis_gateway::store::pepper::Pepper::load_or_create(other.path()).unwrap();
    assert_eq!(
        audit_log::verify(&store, &other).unwrap(),
        Err(Break::Mismatch(1))
    );
}

#[tokio::test]
async fn the_admin_plane_can_listen_on_a_private_unix_socket() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::new().await;
    let socket = env.path().join("admin.sock");
    let gw = env
        .gateway(ORDERS_API)
        .with(&format!(
            "identity: {{ data_dir: {} }}\nadmin: {{ unix: {} }}",
            env.identity_dir().display(),
            socket.display()
        ))
        .start()
        .await;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the gateway's user may connect");
    let ask = |request: &'static str| {
        let socket = socket.clone();
        async move {
            let mut s = tokio::net::UnixStream::connect(&socket).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    let health = ask("GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // The socket's permissions are not a credential: admin calls still need a token.
    let apps = ask("GET /admin/v1/apps HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").await;
    assert!(apps.starts_with("HTTP/1.1 401"), "{apps}");
    drop(gw);
}

#[tokio::test]
async fn metrics_and_inventory_show_traffic_and_shadow_endpoints() {
    let env = TestEnv::new().await;
    // A second upstream that nothing listens on: its health shows it.
    let dead = ORDERS_API
        .replace("name: orders", "name: gone")
        .replace("/v1", "/v9")
        .replace("upstream: backend", "upstream: dead");
    let gw = env
        .gateway(&format!("{ORDERS_API}{dead}"))
        .extra_upstream(
            "dead",
            &format!("url: https://127.0.0.1:1\nca: {}", env.ca_path.display()),
        )
        .with(&admin_plane(&env))
        .start()
        .await;
    let admin = admin_addr(&gw);
    let viewer = bootstrap(&env, "prometheus", Role::Viewer);
    for _ in 0..3 {
        assert_eq!(gw.get("/v1/orders").await.status, 200);
    }
    assert_eq!(gw.get("/v9/orders").await.status, 502);
    for path in [
        "/wp-admin/setup.php",
        "/wp-admin/setup.php",
        "/v1/internal/debug",
    ] {
        assert_eq!(gw.get(path).await.status, 404);
    }
    // Metrics need an admin token like any admin read.
    assert_eq!(
        admin_call(admin, "GET", "/metrics", None, None).await.0,
        401
    );
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = http::Request::get(format!("http://{admin}/metrics"))
        .header("authorization", format!("Bearer {viewer}"))
        .body(http_body_util::Full::default())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = {
        use http_body_util::BodyExt;
        String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    };
    for line in [
        "portcullis_route_requests_total{api=\"orders\",operation=\"GET /v1/orders\"} 3",
        "portcullis_rejections_total{reason=\"unknown-route\"} 3",
        "portcullis_requests_total{class=\"2xx\"} 3",
        "portcullis_requests_total{class=\"4xx\"} 3",
        "portcullis_requests_total{class=\"5xx\"} 1",
        "portcullis_shadow_requests_total 3",
        "portcullis_request_duration_seconds_count 7",
        "portcullis_event_spool_depth 0",
        "portcullis_upstream_up{upstream=\"backend\"} 1",
        "portcullis_upstream_requests_total{upstream=\"backend\"} 3",
        "portcullis_upstream_failures_total{upstream=\"backend\"} 0",
        "portcullis_upstream_up{upstream=\"dead\"} 0",
        "portcullis_upstream_failures_total{upstream=\"dead\"} 1",
        // Latency per route and per upstream (issue 22).
        "portcullis_route_request_duration_seconds_count{api=\"orders\",operation=\"GET /v1/orders\"} 3",
        "portcullis_route_request_duration_seconds_bucket{api=\"orders\",operation=\"GET /v1/orders\",le=\"+Inf\"} 3",
        "portcullis_route_request_duration_seconds_count{api=\"orders\",operation=\"DELETE /v1/orders/{id}\"} 0",
        "portcullis_upstream_request_duration_seconds_count{upstream=\"backend\"} 3",
        // Tries: the GET to the dead upstream was retried once.
        "portcullis_upstream_request_duration_seconds_count{upstream=\"dead\"} 2",
        "portcullis_build_info{version=\"",
        "process_open_fds ",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    dashboard_queries_match(&text);
    // The inventory's traffic: volume and last seen per route, and the shadow endpoints.
    let (status, inv) = admin_call(admin, "GET", "/admin/v1/inventory", Some(&viewer), None).await;
    assert_eq!(status, 200, "{inv}");
    let listed = inv["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["operation"] == "GET /v1/orders")
        .unwrap();
    assert_eq!(listed["requests"], 3);
    assert!(listed["last_seen"].as_u64().unwrap() > 1_700_000_000);
    let never = inv["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["operation"] == "DELETE /v1/orders/{id}")
        .unwrap();
    assert!(never["last_seen"].is_null() && never["requests"] == 0);
    assert_eq!(
        inv["shadow_endpoints"],
        json!([
            { "path": "/wp-admin/setup.php", "requests": 2 },
            { "path": "/v1/internal/debug", "requests": 1 },
        ])
    );
}

#[tokio::test]
async fn a_remote_admin_listener_is_mutual_tls_and_a_certificate_names_its_administrator() {
    let env = TestEnv::new().await;
    // Administrators' certificates come from their own CA.
    let admin_ca = portcullis_gateway::dev::pki::DevCa::new("Admin CA").unwrap();
    let admin_ca_path = env.path().join("admin-ca.pem");
    std::fs::write(&admin_ca_path, admin_ca.cert_pem()).unwrap();
    let olga = admin_ca.issue(&["olga"], true).unwrap();
    let mallory = admin_ca.issue(&["mallory"], true).unwrap();
    let revoked = admin_ca.issue(&["olga"], true).unwrap();
    let crl = env.path().join("admin.crl");
    let next_update = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    std::fs::write(
        &crl,
        admin_ca.crl(&[&revoked.cert_pem], next_update).unwrap(),
    )
    .unwrap();
    let stranger = env.ca.issue(&["olga"], true).unwrap();

    let gw = env
        .gateway(ORDERS_API)
        .with(&format!(
            "identity: {{ data_dir: {} }}\nadmin:\n  bind: '127.0.0.1:0'\n  tls:\n    cert: {}\n    key: {}\n    client_auth: {{ mode: required, ca: {}, crls: [{}] }}",
            env.identity_dir().display(),
            env.gateway_cert.cert.display(),
            env.gateway_cert.key.display(),
            admin_ca_path.display(),
            crl.display(),
        ))
        .start()
        .await;
    let admin = admin_addr(&gw);
    bootstrap(&env, "olga", Role::Operator);
    let root = bootstrap(&env, "root", Role::SecurityAdmin);
    let ca = env.ca.cert_pem();
    let client = |id: Option<&portcullis_gateway::dev::pki::Issued>| {
        portcullis_testkit::https_client_with(
            &ca,
            id.map(|i| (i.cert_pem.as_str(), i.key_pem.as_str())),
            portcullis_testkit::Proto::Http1,
        )
    };
    let call = |id, method: &'static str, path: &'static str, token: Option<String>| {
        let c = client(id);
        async move {
            portcullis_testkit::admin_call_tls(&c, admin, method, path, token.as_deref()).await
        }
    };

    // No certificate, one from another CA, a revoked one: no connection.
    assert!(
        call(None, "GET", "/admin/v1/whoami", Some(root.clone()))
            .await
            .is_err()
    );
    assert!(
        call(Some(&stranger), "GET", "/admin/v1/whoami", None)
            .await
            .is_err()
    );
    assert!(
        call(Some(&revoked), "GET", "/admin/v1/whoami", None)
            .await
            .is_err()
    );

    // The certificate names the administrator, with that administrator's role.
    let (status, body) = call(Some(&olga), "GET", "/admin/v1/whoami", None)
        .await
        .unwrap();
    assert_eq!(
        (status, &body),
        (200, &json!({ "name": "olga", "role": "operator" }))
    );
    let (status, body) = call(Some(&olga), "GET", "/admin/v1/admins", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(Some(&olga), "POST", "/admin/v1/apps", None)
        .await
        .unwrap();
    assert_eq!(status, 403, "an operator does not manage applications");
    // A token still works over mutual TLS, and speaks for its own administrator.
    let (status, body) = call(Some(&olga), "GET", "/admin/v1/whoami", Some(root))
        .await
        .unwrap();
    assert_eq!((status, body["name"].as_str()), (200, Some("root")));
    // A valid certificate that names no administrator: 401.
    let (status, body) = call(Some(&mallory), "GET", "/admin/v1/whoami", None)
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");

    // The plain data-plane listener still has no admin API.
    assert_eq!(gw.get("/admin/v1/whoami").await.status, 404);
    gw.stop().await;
}

/// Every plane refuses the same way: an admin error is the gateway's one
/// problem format (type, title, status, detail, correlation id) with the
/// data plane's hardening headers, and its correlation id in both places.
#[tokio::test]
async fn admin_refusals_are_the_gateways_problem_with_its_hardening_headers() {
    let env = TestEnv::new().await;
    let (_gw, admin) = with_admin_plane(&env, ORDERS_API).await;
    let raw = portcullis_testkit::plain_exchange(
        admin,
        b"POST /admin/v1/nothing HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 404"), "{raw}");
    for expected in [
        "content-type: application/problem+json",
        "cache-control: no-store",
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
        "content-security-policy: ",
    ] {
        assert!(head.contains(expected), "{expected} missing from {head}");
    }
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["type"], "urn:portcullis:problem:admin-not-found");
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["title"], "Not Found");
    let id = problem["correlation_id"].as_str().unwrap();
    assert!(head.contains(&format!("x-correlation-id: {id}")), "{head}");
}

/// Every series the shipped Grafana dashboard queries, and every label it
/// groups by, is in `text` (a real `/metrics` answer).
fn dashboard_queries_match(text: &str) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/portcullis.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for expr in &exprs {
        let names: Vec<&str> = expr
            .split(|c: char| !is_name(c))
            .filter(|w| w.starts_with("portcullis_") || w.starts_with("process_"))
            .collect();
        assert!(!names.is_empty(), "no series in {expr}");
        for name in &names {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))
                })
                .collect();
            assert!(
                !lines.is_empty(),
                "the dashboard queries {name}, which /metrics lacks ({expr})"
            );
            if let Some(by) = expr.split("by (").nth(1).and_then(|r| r.split(')').next()) {
                for label in by
                    .split(',')
                    .map(str::trim)
                    .filter(|l| *l != "le" && *l != "job" && *l != "instance")
                {
                    assert!(
                        lines.iter().any(|l| l.contains(&format!("{label}=\""))),
                        "{name} has no label {label} ({expr})"
                    );
                }
            }
        }
    }
}
