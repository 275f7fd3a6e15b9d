//! The binary as a user meets it: `quickstart` brings up a working demo
//! whose printed commands give the promised answers, and `check` names the
//! field at fault.

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Proto, admin_call, fetch, https_client, https_client_with};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

use portcullis_testkit::ChildGuard as Child;

fn wait_for_file(path: &Path, child: &mut std::process::Child) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str(&text)
        {
            return v;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("quickstart exited early: {status}");
        }
        assert!(Instant::now() < deadline, "quickstart.json did not appear");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `portcullis quickstart` on free ports in `data`; waits for its facts.
fn quickstart(data: &Path, stdout: Stdio) -> (Child, serde_json::Value) {
    let mut child = Child(
        Command::new(BIN)
            .args(["quickstart", "--port", "0", "--data-dir"])
            .arg(data)
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let facts = wait_for_file(&data.join("quickstart.json"), &mut child.0);
    (child, facts)
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_serves_the_promised_answers_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, facts) = quickstart(&data, Stdio::piped());
    let ca = std::fs::read_to_string(facts["ca_cert"].as_str().unwrap()).unwrap();
    let base = facts["gateway_url"].as_str().unwrap();
    let examples = facts["examples"].as_array().unwrap();
    let statuses: Vec<u64> = examples
        .iter()
        .map(|e| e["expected_status"].as_u64().unwrap())
        .collect();
    for promised in [200, 201, 400, 401, 403, 404, 405, 415] {
        assert!(statuses.contains(&promised), "no example gives {promised}");
    }
    for field in [
        "api_key",
        "token",
        "token_without_write_scope",
        "revoke_endpoint",
    ] {
        assert!(
            facts[field].as_str().is_some_and(|v| !v.is_empty()),
            "quickstart.json lacks {field}"
        );
    }
    let client = https_client(&ca, Proto::Http1);
    let read = |v: &serde_json::Value| std::fs::read_to_string(v.as_str().unwrap()).unwrap();
    for e in examples {
        let with_cert = e["client_certificate"].as_array().map(|files| {
            let (cert, key) = (read(&files[0]), read(&files[1]));
            https_client_with(&ca, Some((&cert, &key)), Proto::Http1)
        });
        let client = with_cert.as_ref().unwrap_or(&client);
        let mut req = http::Request::builder()
            .method(e["method"].as_str().unwrap())
            .uri(format!("{base}{}", e["path"].as_str().unwrap()));
        for h in e["headers"].as_array().unwrap() {
            req = req.header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
        }
        let body = match e["body"].as_str() {
            Some(b) => {
                req = req.header("content-type", e["content_type"].as_str().unwrap());
                Full::new(Bytes::from(b.to_owned()))
            }
            None => Full::default(),
        };
        let r = fetch(client, req.body(body).unwrap()).await;
        assert_eq!(
            u64::from(r.status.as_u16()),
            e["expected_status"].as_u64().unwrap(),
            "{}: {}",
            e["name"],
            r.text()
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r.header("server").is_none());
        if let Some(text) = e["expect_in_body"].as_str() {
            assert!(r.text().contains(text), "{}: {}", e["name"], r.text());
        }
        // The secret-labelled field never leaves the gateway.
        assert!(
            !r.text().contains("cost_price"),
            "{}: {}",
            e["name"],
            r.text()
        );
    }
    // The WebSocket echo the quickstart made through the gateway at start,
    // and its printed handshake (101 where curl exists).
    let ws = &facts["websocket_echo"];
    assert_eq!(ws["received"], ws["sent"], "{ws}");
    if Command::new("curl").arg("--version").output().is_ok() {
        let (status, text) = curl(ws["curl_handshake"].as_str().unwrap());
        assert_eq!(status, "101", "{text}");
    }
    // The printed curl commands give the same answers, where curl exists
    // (the revoke example already ran above; its token stays revoked).
    if Command::new("curl").arg("--version").output().is_ok() {
        for e in examples
            .iter()
            .filter(|e| !e["path"].as_str().unwrap().contains("revoke"))
        {
            let (status, text) = curl(e["curl"].as_str().unwrap());
            assert_eq!(
                status,
                e["expected_status"].to_string(),
                "{}: {text}",
                e["curl"]
            );
        }
    }
    // The printed forms name the secrets as variables of the 0600 env file
    // and give the same answers once it is sourced.
    let env_file = facts["env_file"].as_str().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the env file is private");
    }
    let api_key = facts["api_key"].as_str().unwrap();
    if Command::new("curl").arg("--version").output().is_ok() {
        for e in examples
            .iter()
            .filter(|e| !e["path"].as_str().unwrap().contains("revoke"))
        {
            let shell = e["shell"].as_str().unwrap();
            assert!(!shell.contains(api_key), "{shell}");
            let (status, text) = curl(&format!(". '{env_file}' && {shell}"));
            assert_eq!(status, e["expected_status"].to_string(), "{shell}: {text}");
        }
    }
    // OPS-04: the operator's kill switch for the demo application, through
    // the admin plane, then the printed curl commands (same answers).
    let admin: std::net::SocketAddr = facts["admin_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let operator = facts["operator_token"].as_str().unwrap();
    let steps = facts["kill_switch_demo"].as_array().unwrap();
    let get_order = || {
        let req = http::Request::get(format!("{base}/v1/orders/1001"))
            .header("x-api-key", facts["api_key"].as_str().unwrap())
            .header(
                "authorization",
                format!("Bearer {}", facts["token"].as_str().unwrap()),
            )
            .body(Full::default())
            .unwrap();
        fetch(&client, req)
    };
    let reason = Some(serde_json::json!({ "reason": "test" }));
    for (n, step) in steps.iter().enumerate() {
        let status = match n {
            0 | 2 => {
                let verb = if n == 0 { "disable" } else { "enable" };
                let path = format!("/admin/v1/apps/demo-app/{verb}");
                admin_call(admin, "POST", &path, Some(operator), reason.clone())
                    .await
                    .0
            }
            _ => get_order().await.status.as_u16(),
        };
        assert_eq!(
            u64::from(status),
            step["expected_status"].as_u64().unwrap(),
            "{}",
            step["what"]
        );
    }
    if Command::new("curl").arg("--version").output().is_ok() {
        for step in steps {
            let (status, text) = curl(step["curl"].as_str().unwrap());
            assert_eq!(
                status,
                step["expected_status"].to_string(),
                "{}: {text}",
                step["curl"]
            );
        }
        // ... and their printed forms, with the env file sourced.
        for step in steps {
            let shell = step["shell"].as_str().unwrap();
            assert!(
                shell.contains("$OPERATOR_TOKEN") || shell.contains("$API_KEY"),
                "{shell}"
            );
            let (status, text) = curl(&format!(". '{env_file}' && {shell}"));
            assert_eq!(
                status,
                step["expected_status"].to_string(),
                "{shell}: {text}"
            );
        }
    }

    // The quickstart config is valid and `check` lists its weakened defaults.
    let check = Command::new(BIN)
        .args(["check", "--config"])
        .arg(facts["config"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(check.status.success());
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // AUTHN-10/12: the demo backend refuses a caller without a client
    // certificate at TLS, and its guard refuses any direct call, even with
    // the gateway's own certificate, for want of a context token.
    let backend = facts["backend_url"].as_str().unwrap();
    let pki = Path::new(facts["ca_cert"].as_str().unwrap())
        .parent()
        .unwrap();
    assert!(
        direct_call(backend, &ca, None).await.is_none(),
        "the backend answered a caller without a client certificate"
    );
    for stem in ["gateway-client", "demo-app-client"] {
        let answer = direct_call(backend, &ca, Some(&pki.join(stem)))
            .await
            .unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 401"), "{stem}: {answer}");
        assert!(answer.contains("gateway-attestation-required"), "{answer}");
    }
    // The printed direct call gives the same answer.
    if Command::new("curl").arg("--version").output().is_ok() {
        let (status, text) = curl(facts["direct_backend_call"].as_str().unwrap());
        assert_eq!(status, "401", "{text}");
    }
    // The gateway publishes its context-token keys on the loopback JWKS listener.
    let jwks_url = facts["context_jwks_url"].as_str().unwrap();
    let jwks = http_get_plain(jwks_url).await;
    assert!(jwks.contains("\"crv\":\"Ed25519\""), "{jwks}");
    // The inventory lists every route with its environment, auth and labels (CONTRACT-03).
    let inv = Command::new(BIN)
        .args(["inventory", "--format", "json", "--config"])
        .arg(facts["config"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(inv.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&inv.stdout).unwrap();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["operation_id"] == id)
            .unwrap()
            .clone()
    };
    // The document's five operations and the live API's two routes.
    assert_eq!(rows.len(), 7);
    assert_eq!(row("debugState")["environment"], "dev");
    assert_eq!(row("getHealth")["authentication"], "public");
    assert_eq!(row("getOrder")["classification"], "secret");
    assert_eq!(
        row("createOrder")["scopes"],
        serde_json::json!(["orders:write"])
    );
    assert_eq!(row("listOrders")["owner"], "orders-team");
    for format in ["csv", "markdown"] {
        let out = Command::new(BIN)
            .args(["inventory", "--format", format, "--config"])
            .arg(facts["config"].as_str().unwrap())
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("/v1/orders/{id}"));
    }
    // With --traffic, the running gateway adds volume, last seen and the
    // shadow endpoints (the examples asked for an undeclared path).
    let traffic = |token: Option<&str>, format: &str| {
        let mut c = Command::new(BIN);
        c.args(["inventory", "--traffic", "--format", format, "--config"])
            .arg(facts["config"].as_str().unwrap())
            .env_remove("PORTCULLIS_ADMIN_TOKEN");
        if let Some(t) = token {
            c.env("PORTCULLIS_ADMIN_TOKEN", t);
        }
        c.output().unwrap()
    };
    assert_eq!(traffic(None, "json").status.code(), Some(2));
    let out = traffic(Some(operator), "json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = inv["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["operation_id"] == "listOrders" && r["method"] == "GET")
        .unwrap();
    assert!(list["requests"].as_u64().unwrap() >= 1, "{list}");
    assert!(list["last_seen"].as_u64().is_some(), "{list}");
    let debug = inv["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["operation_id"] == "debugState")
        .unwrap();
    assert_eq!(debug["requests"], 0);
    assert!(
        !inv["shadow_endpoints"].as_array().unwrap().is_empty(),
        "{inv}"
    );
    let md = String::from_utf8(traffic(Some(operator), "markdown").stdout).unwrap();
    assert!(
        md.contains("Shadow endpoints") && md.contains("| requests | last_seen |"),
        "{md}"
    );

    // INPUT-08: a burst meets the demo app's limit on listOrders: 429 with
    // Retry-After and the RateLimit fields, and one event for the window.
    let started = Instant::now();
    let (mut ok, mut limited) = (0u32, 0u32);
    let mut last_429 = None;
    for _ in 0..400 {
        let req = http::Request::get(format!("{base}/v1/orders"))
            .header("x-api-key", facts["api_key"].as_str().unwrap())
            .header(
                "authorization",
                format!("Bearer {}", facts["token"].as_str().unwrap()),
            )
            .body(Full::default())
            .unwrap();
        let r = fetch(&client, req).await;
        match r.status.as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                last_429 = Some(r);
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    // At most the burst (200) plus what refilled (10/s) while it ran. A run
    // so slow that this bound would admit all 400 judges nothing: it fails
    // rather than passing vacuously.
    let bound = 200.0 + started.elapsed().as_secs_f64() * 10.0 + 6.0;
    assert!(
        bound < 400.0,
        "the burst took {:?}: too slow to judge the limit",
        started.elapsed()
    );
    assert!(
        f64::from(ok) <= bound,
        "{ok} accepted in {:?}",
        started.elapsed()
    );
    assert!(limited > 0);
    let r = last_429.unwrap();
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().unwrap() >= 1)
    );
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"application\";q=600;w=60")
    );
    assert_eq!(r.json()["type"], "urn:portcullis:problem:rate-limited");
    let deadline = Instant::now() + Duration::from_secs(5);
    let events_file = facts["events_file"].as_str().unwrap();
    let throttled = loop {
        let n = std::fs::read_to_string(events_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"rate-limited\""))
            .count();
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(throttled, 1, "one event per throttled key and window");
    // SIGTERM stops everything cleanly.
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "quickstart did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// Runs a printed curl command (`-i`): the status and the whole output.
fn curl(command: &str) -> (String, String) {
    let out = Command::new("sh").arg("-c").arg(command).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).unwrap_or("").to_owned();
    (status, text)
}

/// A plain HTTP GET on loopback; the response as text.
async fn http_get_plain(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A raw HTTP/1.1 call straight to the demo backend (bypassing the gateway),
/// with the client certificate `<stem>.pem`/`<stem>.key` or none. `None`
/// when the backend refused to answer.
async fn direct_call(backend: &str, ca_pem: &str, stem: Option<&Path>) -> Option<String> {
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let identity = stem.map(|stem| {
        let read = |ext: &str| std::fs::read_to_string(stem.with_extension(ext)).unwrap();
        (read("pem"), read("key"))
    });
    let config = portcullis_testkit::client_config_with(
        ca_pem,
        identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
    );
    let addr = backend.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("orders.internal").unwrap(), tcp)
        .await
        .ok()?;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: orders.internal\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Runs `check` on a config made of the given upstream and route lines;
/// asserts it fails and returns its standard error.
fn check_fails(upstream: &str, route: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listeners:\n  - {{ name: a, bind: \"127.0.0.1:0\", tls: {{ cert: c.pem, key: k.pem }} }}\nupstreams:\n  u: {upstream}\napis:\n  - name: x\n    upstream: u\n    routes:\n      - {route}\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_reports_the_field_and_the_reason() {
    let err = check_fails(
        r#"{ url: "http://10.0.0.1" }"#,
        "{ path: /a, methods: [GET] }",
    );
    assert!(err.contains("apis[0].routes[0].auth: required"), "{err}");
    // ... and, in the same run, the file's other problems: the plaintext
    // upstream and the certificate files that do not exist.
    assert!(
        err.contains("upstreams.u.url") && err.contains("plaintext upstream refused"),
        "{err}"
    );
    for field in [
        "listeners[0].tls.cert: no such file",
        "listeners[0].tls.key: no such file",
    ] {
        assert!(err.contains(field), "{field}: {err}");
    }
    let err = check_fails(
        r#"{ url: "http://10.0.0.1" }"#,
        "{ path: /a, methods: [GET], auth: public }",
    );
    assert!(
        err.contains("upstreams.u.url") && err.contains("plaintext upstream refused"),
        "{err}"
    );
    // A missing certificate file is reported with the listener's field path.
    let err = check_fails(
        r#"{ url: "http://10.0.0.1", dangerous_plaintext_upstream: true }"#,
        "{ path: /a, methods: [GET], auth: public }",
    );
    assert!(
        err.contains("listeners[0].tls") && err.contains("c.pem"),
        "{err}"
    );
}

/// The help describes the assessor that exists, not one that is coming.
#[test]
fn audit_help_names_the_live_plane_as_present() {
    let out = Command::new(BIN).args(["help", "audit"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("live probes of the running API"), "{help}");
    assert!(help.contains("--strict-tls"), "{help}");
    assert!(!help.contains("(soon)"), "{help}");
}

#[test]
fn apps_and_keys_commands_manage_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.yaml");
    std::fs::write(
        &cfg,
        "listeners:\n  - { name: a, bind: \"127.0.0.1:0\", tls: { cert: c.pem, key: k.pem } }\nidentity: { data_dir: id }\nupstreams:\n  u: { url: \"https://10.0.0.1\", ca: ca.pem }\napis:\n  - name: x\n    upstream: u\n    routes:\n      - { path: /a, methods: [GET], auth: { api_key: true } }\n",
    )
    .unwrap();
    // `--config` goes before the subcommand action.
    let run = |args: &[&str]| portcullis_testkit::run_cli(BIN, &cfg, None, args);
    assert_eq!(run(&["apps", "create", "web"]).0, Some(0));
    let (code, _, err) = run(&["apps", "create", "web"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already exists"), "{err}");
    let (code, out, _) = run(&["keys", "issue", "--app", "web"]);
    assert_eq!(code, Some(0));
    let key = out.lines().last().unwrap().to_owned();
    assert!(key.starts_with("pcsk_"), "{out}");
    let id = key
        .trim_start_matches("pcsk_")
        .split('_')
        .next()
        .unwrap()
        .to_owned();
    let (_, list, _) = run(&["keys", "list"]);
    assert!(
        list.contains(&id) && list.contains("active") && !list.contains(&key),
        "only the id is listed: {list}"
    );
    let (code, out, _) = run(&["keys", "rotate", "--app", "web", "--overlap-s", "3600"]);
    assert_eq!(code, Some(0), "{out}");
    let rotated = out.lines().last().unwrap().to_owned();
    assert!(rotated.starts_with("pcsk_") && rotated != key);
    let (_, list, _) = run(&["keys", "list", "--app", "web"]);
    assert!(
        list.contains("expires in"),
        "the old key keeps an overlap: {list}"
    );
    assert_eq!(run(&["keys", "revoke", &id]).0, Some(0));
    assert!(run(&["keys", "list"]).1.contains("revoked"));
    // Only the digest is stored: the key itself is nowhere in the data directory.
    for entry in std::fs::read_dir(dir.path().join("id")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&key));
    }
    assert_eq!(run(&["apps", "disable", "web"]).0, Some(0));
    assert!(run(&["apps", "list"]).1.contains("disabled"));
    // Every change above is in the chained audit log, by the local user.
    let (code, log, _) = run(&["admin", "audit-log", "show"]);
    assert_eq!(code, Some(0));
    for action in [
        "app.create",
        "key.issue",
        "key.rotate",
        "key.revoke",
        "app.disable",
    ] {
        assert!(log.contains(action), "{action} missing: {log}");
    }
    assert!(log.contains("local:") && !log.contains(&key), "{log}");
    let (code, out, _) = run(&["admin", "audit-log", "verify"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("intact"), "{out}");
    // Administrators: a bad role is a usage error; a good one prints a token once.
    assert_eq!(run(&["admin", "create", "x", "--role", "root"]).0, Some(2));
    let (code, out, _) = run(&["admin", "create", "vera", "--role", "viewer"]);
    assert_eq!(code, Some(0));
    assert!(out.lines().last().unwrap().starts_with("pcadm_"), "{out}");
    assert!(run(&["admin", "list"]).1.contains("vera\tviewer"));
}

/// Waits until the events file has an event with `code`.
fn wait_for_event_code(events: &Path, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let needle = format!("\"status_code\":\"{code}\"");
    while !std::fs::read_to_string(events).is_ok_and(|t| t.contains(&needle)) {
        assert!(
            Instant::now() < deadline,
            "no {code} event in {}",
            events.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_config_and_a_broken_file_leaves_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, facts) = quickstart(&data, Stdio::null());
    let ca = std::fs::read_to_string(facts["ca_cert"].as_str().unwrap()).unwrap();
    let health = format!("{}/v1/health", facts["gateway_url"].as_str().unwrap());
    let client = https_client(&ca, Proto::Http1);
    let get = || async {
        fetch(
            &client,
            http::Request::get(&health)
                .header("origin", "https://ops.example.com")
                .body(Full::default())
                .unwrap(),
        )
        .await
    };
    let config = data.join("gateway.yaml");
    let original = std::fs::read_to_string(&config).unwrap();
    let events = data.join("events.jsonl");
    let pid = child.0.id();
    let hangup = || {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -HUP {pid}")])
            .status()
            .unwrap();
        assert!(status.success());
    };

    // A broken file: refused, reported, and the running config serves on.
    std::fs::write(&config, format!("{original}\nno_such_setting: 1\n")).unwrap();
    hangup();
    wait_for_event_code(&events, "config-reload-refused");
    let refused = std::fs::read_to_string(&events).unwrap();
    assert!(
        refused.contains("no_such_setting"),
        "the event names the field"
    );
    let r = get().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("access-control-allow-origin").is_none());

    // A good one (another CORS origin): taken over by the next request,
    // the process still up.
    let allowed = r#"allowed_origins: ["https://app.example.com"]"#;
    assert!(original.contains(allowed));
    std::fs::write(
        &config,
        original.replace(
            allowed,
            r#"allowed_origins: ["https://app.example.com", "https://ops.example.com"]"#,
        ),
    )
    .unwrap();
    hangup();
    wait_for_event_code(&events, "config-reloaded");
    let r = get().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://ops.example.com"),
        "{:?}",
        r.headers
    );
    assert!(child.0.try_wait().unwrap().is_none(), "still running");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_admin_plane_apps_and_keys_go_through_it_and_obey_roles() {
    use portcullis_gateway::admin::Role;
    let env = portcullis_testkit::TestEnv::new().await;
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = portcullis_testkit::ORDERS_API.replace("auth: public }", "auth: { api_key: true } }");
    let gw = env
        .gateway(&api)
        .with(&format!(
            "identity: {{ data_dir: {} }}\nadmin: {{ bind: '127.0.0.1:{admin_port}' }}",
            env.identity_dir().display()
        ))
        .start()
        .await;
    let root = env.admin_token("root", Role::SecurityAdmin);
    let otto = env.admin_token("otto", Role::Operator);
    let cfg = gw.config_path.clone();
    let run = move |token: Option<&str>, args: &[&str]| {
        portcullis_testkit::run_cli(BIN, &cfg, token, args)
    };

    // No token: refused before anything is written (no fallback to the store).
    let (code, _, err) = run(None, &["apps", "create", "billing"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("PORTCULLIS_ADMIN_TOKEN"), "{err}");
    // An operator may not create applications or issue keys.
    let (code, _, err) = run(Some(&otto), &["apps", "create", "billing"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("403"), "{err}");
    assert!(!run(Some(&root), &["apps", "list"]).1.contains("billing"));

    // A security-admin may; the key works on the data plane.
    assert_eq!(run(Some(&root), &["apps", "create", "billing"]).0, Some(0));
    let (code, out, err) = run(Some(&root), &["keys", "issue", "--app", "billing"]);
    assert_eq!(code, Some(0), "{err}");
    let key = out.lines().last().unwrap().to_owned();
    let get = |key: String| {
        let req = gw
            .request("GET", "/v1/orders")
            .header("x-api-key", key)
            .body(Full::default())
            .unwrap();
        gw.send(Proto::Http1, req)
    };
    assert_eq!(get(key.clone()).await.status, 200);
    let (_, list, _) = run(Some(&otto), &["keys", "list", "--app", "billing"]);
    assert!(
        list.contains("billing") && list.contains("active"),
        "{list}"
    );

    // The operator switches the application off, with a reason.
    let (code, _, err) = run(Some(&otto), &["apps", "disable", "billing"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--reason"), "{err}");
    let (code, _, err) = run(
        Some(&otto),
        &["apps", "disable", "billing", "--reason", "leaked key"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(get(key.clone()).await.status, 403);
    assert_eq!(
        run(
            Some(&otto),
            &["apps", "enable", "billing", "--reason", "rotated"]
        )
        .0,
        Some(0)
    );
    assert_eq!(get(key).await.status, 200);

    // The audit log names the administrators, not the machine's user.
    let (store, _) = env.store();
    let entries = portcullis_gateway::store::audit_log::entries(&store).unwrap();
    let by: Vec<(String, String)> = entries
        .iter()
        .map(|(_, e)| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("root", "app.create"),
        ("root", "key.issue"),
        ("otto", "app.disable"),
        ("otto", "app.enable"),
        ("otto", "denied:manage applications"),
    ] {
        assert!(
            by.iter()
                .any(|(a, x)| a == expected.0 && x.starts_with(expected.1)),
            "{expected:?} not in {by:?}"
        );
    }
    assert!(
        !by.iter()
            .any(|(a, _)| a.starts_with("local:") && a != "local:test")
    );
    gw.stop().await;
}

/// `portcullis audit` against the running quickstart, in `format`.
/// `audit` of the running quickstart with its tokens; the application is
/// identified by its API key, or with `client_cert` by its certificate.
fn audit_quickstart_as(
    facts: &serde_json::Value,
    dir: &Path,
    format: &str,
    client_cert: bool,
    extra: &[&str],
) -> (Option<i32>, String) {
    let write = |name: &str, field: &str| {
        let path = dir.join(name);
        std::fs::write(&path, facts[field].as_str().unwrap()).unwrap();
        format!("@{}", path.display())
    };
    let field = |name: &str| facts[name].as_str().unwrap().to_owned();
    let app = if client_cert {
        vec![
            "--cert".to_owned(),
            field("client_cert"),
            "--key".to_owned(),
            field("client_key"),
        ]
    } else {
        vec!["--api-key".to_owned(), write("key", "api_key")]
    };
    let out = Command::new(BIN)
        .args(["audit", "--format", format, "--as-of", "2026-11-28"])
        .args(["--config", facts["config"].as_str().unwrap()])
        .args(["--spec", facts["openapi"].as_str().unwrap()])
        .args(["--target", facts["gateway_url"].as_str().unwrap()])
        .args(["--ca", facts["ca_cert"].as_str().unwrap()])
        .args(app)
        .args(extra)
        .args(["--token", &write("token", "token")])
        .args([
            "--token-without-scope",
            &write("ro", "token_without_write_scope"),
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn audit_quickstart(facts: &serde_json::Value, dir: &Path, format: &str) -> (Option<i32>, String) {
    audit_quickstart_as(facts, dir, format, false, &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_assessor_grades_the_quickstart_a_with_no_failed_implemented_control() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_child, facts) = quickstart(&data, Stdio::null());
    let (code, json) = audit_quickstart(&facts, dir.path(), "json");
    assert_eq!(code, Some(0));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["schema"], "portcullis-audit/1");
    assert_eq!(report["score"]["grade"], "A", "{}", report["score"]);
    let catalog = portcullis_catalog::Catalog::load();
    for c in report["controls"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let implemented =
            catalog.get(id).unwrap().status == portcullis_catalog::Status::Implemented;
        assert!(
            !(implemented && c["verdict"] == "fail"),
            "{id} fails although the gateway implements it: {c}"
        );
        // Every pass names what proved it (issue 18).
        if c["verdict"] == "pass" {
            assert!(
                c["proved_by"].as_array().is_some_and(|p| !p.is_empty()),
                "{id} passes with nothing behind it: {c}"
            );
        }
    }
    // Every one of the 83 IDs has a verdict; identity and transport are observed.
    assert_eq!(report["controls"].as_array().unwrap().len(), 83);
    let evidence = |id: &str| {
        report["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["evidence"]
            .clone()
    };
    for id in ["AUTHN-13", "AUTHN-14", "AUTHZ-08", "OUTPUT-12", "DATA-04"] {
        assert_eq!(evidence(id), "observed", "{id}");
    }
    // Same inputs, same report.
    let again = audit_quickstart(&facts, dir.path(), "json").1;
    let differs = json
        .lines()
        .zip(again.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b);
    assert!(
        differs.is_none(),
        "the second report differs at line {differs:?}"
    );
    assert_eq!(again.len(), json.len());

    // SARIF 2.1.0 with rules for every ID; JUnit with a case per ID; HTML
    // with the chart and an expandable entry per ID.
    let sarif: serde_json::Value =
        serde_json::from_str(&audit_quickstart(&facts, dir.path(), "sarif").1).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(
        sarif["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        83
    );
    let junit = audit_quickstart(&facts, dir.path(), "junit").1;
    assert_eq!(junit.matches("<testcase ").count(), 83);
    let html = audit_quickstart(&facts, dir.path(), "html").1;
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg id=\"chart\""));
    assert_eq!(html.matches("<details class=\"control").count(), 83);
    assert!(html.contains("<span class=\"grade\" id=\"grade\">A</span>"));

    // The demo app's client certificate in place of its API key identifies
    // it (the identity matrix runs), and a self-signed impostor bearing its
    // name is refused (AUTHN-11). Last, as it drains the demo app's budget:
    // a burst of up to 300 meets its limit on listOrders (burst 200, 10 a
    // second) with 429 and `Retry-After` (INPUT-08).
    let (code, json) = audit_quickstart_as(&facts, dir.path(), "json", true, &["--burst", "300"]);
    assert_eq!(code, Some(0));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["score"]["grade"], "A", "{}", report["score"]);
    let rules = |id: &str| -> Vec<String> {
        portcullis_testkit::audit_findings(&report, id)
            .iter()
            .map(|f| {
                format!(
                    "{} {}",
                    f["rule"].as_str().unwrap(),
                    f["outcome"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert!(
        rules("AUTHN-11").contains(&"probe.impostor-certificate-refused pass".to_owned()),
        "{:?}",
        rules("AUTHN-11")
    );
    assert!(
        rules("AUTHN-14").contains(&"probe.401 pass".to_owned()),
        "{:?}",
        rules("AUTHN-14")
    );
    assert!(json.contains(r#"--cert \"$CLIENT_CERT\""#));
    assert!(
        rules("INPUT-08").contains(&"probe.429-retry-after pass".to_owned()),
        "{:?}",
        rules("INPUT-08")
    );
}
