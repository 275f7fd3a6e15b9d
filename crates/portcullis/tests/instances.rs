//! Several instances (#6 acceptance): two `portcullis run` processes behind
//! one "load balancer" (the test, alternating), sharing one real Redis (rate
//! limits) and one real PostgreSQL (applications, keys, revocations).
//!
//! - the pair accepts no more than one budget across both instances;
//! - a token revoked through instance A is refused by instance B within 1 s,
//!   and a key revoked / an application disabled with the CLI is refused by
//!   both within 1 s;
//! - Redis killed mid-test: the shared limit fails closed (429) with one
//!   outage event; Redis back: shared budgets again, and a recovery event;
//! - an API switched off through A's admin plane answers 503 on B within
//!   1 s, and both instances' admin actions land in one verifiable audit log;
//! - an instance whose pepper differs from the store's refuses to start.

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{
    HttpsClient, PostgresServer, Proto, RedisServer, TestEnv, TestIssuer, admin_call, fetch,
    https_client,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

struct Instance {
    child: std::process::Child,
    port: u16,
    admin_port: u16,
    config: PathBuf,
    events: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Event codes written so far.
    fn event_codes(&self) -> Vec<String> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["status_code"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The CLI against an instance's config: `(exit code, stdout, stderr)`.
fn cli(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    cli_as(None, config, args)
}

/// The CLI with an admin token: `apps` and `keys` go through the admin plane.
fn cli_as(token: Option<&str>, config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    portcullis_testkit::run_cli(BIN, config, token, args)
}

struct Fleet {
    env: TestEnv,
    pg: PostgresServer,
    jwks: PathBuf,
    issuer: TestIssuer,
}

impl Fleet {
    /// Writes instance `name`'s config (its own data directory and events
    /// file; shared Redis and PostgreSQL) and starts it.
    fn start(&self, name: &str, redis_port: u16, pepper_from: Option<&Path>) -> Instance {
        let dir = self.env.path().join(name);
        let data = dir.join("identity");
        std::fs::create_dir_all(&data).unwrap();
        if let Some(pepper) = pepper_from {
            // The documented way: every instance gets the first one's pepper.
            std::fs::copy(pepper, data.join("pepper.key")).unwrap();
        }
        let port = portcullis_testkit::free_port();
        let admin_port = portcullis_testkit::free_port();
        let events = dir.join("events.jsonl");
        let apis = "  - name: orders\n    base_path: /v1\n    upstream: backend\n    routes:\n      - { path: /orders, methods: [GET], auth: { api_key: true, token: true } }\n      - { path: /limited, methods: [GET], auth: { api_key: true } }\n    route_limits: { /limited: { rate_limits: [{ per: application, requests: 60, per_seconds: 60, burst: 6 }] } }\n";
        let gw = &self.env.gateway_cert;
        let yaml = self
            .env
            .gateway(apis)
            .listeners(&format!(
                "  - name: public\n    bind: 127.0.0.1:{port}\n    tls: {{ cert: {}, key: {} }}\n",
                gw.cert.display(),
                gw.key.display()
            ))
            .with(&format!(
                "identity:\n  data_dir: {}\n  issuers:\n    - issuer: {}\n      audiences: [orders-api]\n      jwks_file: {}\n      require_typ: at+jwt\n\
                 shared_state:\n  redis: {{ url: 'redis://127.0.0.1:{redis_port}/0', timeout_ms: 300 }}\n{}\
                 events: {{ file: {} }}\nadmin: {{ bind: '127.0.0.1:{admin_port}' }}\n",
                data.display(),
                self.issuer.issuer,
                self.jwks.display(),
                self.pg.yaml(),
                events.display()
            ))
            .yaml();
        let config = dir.join("gateway.yaml");
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Instance {
            child,
            port,
            admin_port,
            config,
            events,
        }
    }
}

/// Waits until the instance accepts connections (or exits: its stderr).
fn wait_ready(i: &mut Instance) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", i.port)).is_err() {
        if let Ok(Some(status)) = i.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = i.child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("{status}: {err}"));
        }
        assert!(Instant::now() < deadline, "instance did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

async fn get(client: &HttpsClient, url: &str, key: &str, token: Option<&str>) -> u16 {
    let mut req = http::Request::get(url).header("x-api-key", key);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    fetch(client, req.body(Full::new(Bytes::new())).unwrap())
        .await
        .status
        .as_u16()
}

/// Polls until `url` answers `status`; how long that took (at most `within`).
async fn refused_within(
    client: &HttpsClient,
    url: &str,
    key: &str,
    token: Option<&str>,
    status: u16,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        if get(client, url, key, token).await == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{url} still not {status} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_event(i: &Instance, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !i.event_codes().iter().any(|c| c == code) {
        assert!(
            Instant::now() < deadline,
            "no `{code}` event: {:?}",
            i.event_codes()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateway_processes_share_limits_revocations_and_applications() {
    let env = TestEnv::new().await;
    let fleet = Fleet {
        jwks: env.path().join("jwks.json"),
        pg: PostgresServer::start(),
        issuer: TestIssuer::new("https://issuer.test", "k1"),
        env,
    };
    TestIssuer::write_jwks(&fleet.jwks, &[&fleet.issuer]);
    let redis = RedisServer::start();
    let mut a = fleet.start("a", redis.port, None);
    wait_ready(&mut a).unwrap();
    let pepper = fleet.env.path().join("a/identity/pepper.key");
    let mut b = fleet.start("b", redis.port, Some(&pepper));
    wait_ready(&mut b).unwrap();

    // An instance with a pepper of its own would reject every key: refused at start.
    let mut stray = fleet.start("stray", redis.port, None);
    let err = wait_ready(&mut stray).expect_err("a third pepper must be refused");
    assert!(err.contains("pepper.key"), "{err}");

    // Provisioned through the CLI, which goes through B's admin plane with a
    // security-admin's token (made at setup, straight in the shared store).
    let (code, out, err) = cli(
        &a.config,
        &["admin", "create", "root", "--role", "security-admin"],
    );
    assert_eq!(code, Some(0), "{err}");
    let root = out.lines().last().unwrap().to_owned();
    let root = Some(root.as_str());
    assert_eq!(
        cli_as(root, &b.config, &["apps", "create", "web"]).0,
        Some(0)
    );
    let issue = || {
        let (code, out, err) = cli_as(root, &a.config, &["keys", "issue", "--app", "web"]);
        assert_eq!(code, Some(0), "{err}");
        out.lines().last().unwrap().to_owned()
    };
    let key = issue();
    let client = https_client(&fleet.env.ca.cert_pem(), Proto::Http1);
    // The new application and key reach both instances within 1 s.
    refused_within(
        &client,
        &a.url("/v1/limited"),
        &key,
        None,
        200,
        Duration::from_secs(1),
    )
    .await;
    refused_within(
        &client,
        &b.url("/v1/limited"),
        &key,
        None,
        200,
        Duration::from_secs(1),
    )
    .await;

    // One budget (burst 6, 2 used just now) across the pair.
    let mut accepted = 2;
    for n in 0..20 {
        let i = if n % 2 == 0 { &a } else { &b };
        match get(&client, &i.url("/v1/limited"), &key, None).await {
            200 => accepted += 1,
            429 => {}
            other => panic!("{other}"),
        }
    }
    // Within one burst: 6, plus at most one request refilled meanwhile.
    assert!((6..=7).contains(&accepted), "the pair accepted {accepted}");

    // Redis killed mid-test: the declared behaviour (on_failure: closed).
    let redis_port = redis.kill();
    for i in [&a, &b] {
        assert_eq!(get(&client, &i.url("/v1/limited"), &key, None).await, 429);
        wait_for_event(i, "shared-state-unavailable").await;
    }
    // Routes without a shared limit keep working meanwhile.
    let token = fleet.issuer.mint(&fleet.issuer.claims("alice", ""));
    assert_eq!(
        get(&client, &a.url("/v1/orders"), &key, Some(&token)).await,
        200
    );
    // Redis back (empty): shared budgets again, one recovery event each.
    let _redis = RedisServer::start_on(redis_port);
    for i in [&a, &b] {
        refused_within(
            &client,
            &i.url("/v1/limited"),
            &key,
            None,
            200,
            Duration::from_secs(3),
        )
        .await;
        wait_for_event(i, "shared-state-recovered").await;
    }

    // A token revoked through A is refused by B within 1 s.
    assert_eq!(
        get(&client, &b.url("/v1/orders"), &key, Some(&token)).await,
        200
    );
    let revoke = http::Request::post(a.url("/oauth2/revoke"))
        .header("x-api-key", &key)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("token={token}"))))
        .unwrap();
    let r = fetch(&client, revoke).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let took = refused_within(
        &client,
        &b.url("/v1/orders"),
        &key,
        Some(&token),
        401,
        Duration::from_secs(1),
    )
    .await;
    eprintln!("token revocation reached B in {took:?}");

    // A key revoked with the CLI is refused by both within 1 s.
    let second = issue();
    refused_within(
        &client,
        &b.url("/v1/limited"),
        &second,
        None,
        200,
        Duration::from_secs(1),
    )
    .await;
    let id = portcullis_gateway::identity::apikeys::key_id(&second).unwrap();
    assert_eq!(
        cli_as(
            root,
            &a.config,
            &["keys", "revoke", id, "--reason", "drill"]
        )
        .0,
        Some(0)
    );
    for i in [&a, &b] {
        refused_within(
            &client,
            &i.url("/v1/limited"),
            &second,
            None,
            401,
            Duration::from_secs(1),
        )
        .await;
    }

    // An operator switches the API off through A's admin plane: B answers 503
    // within 1 s; switched on again through B, A serves again within 1 s.
    let (code, out, err) = cli(
        &a.config,
        &["admin", "create", "otto", "--role", "operator"],
    );
    assert_eq!(code, Some(0), "{err}");
    let operator = out.lines().last().unwrap().to_owned();
    let admin_a = std::net::SocketAddr::from(([127, 0, 0, 1], a.admin_port));
    let admin_b = std::net::SocketAddr::from(([127, 0, 0, 1], b.admin_port));
    let target = serde_json::json!({ "target": "api:orders", "reason": "incident drill" });
    let (status, body) = admin_call(
        admin_a,
        "POST",
        "/admin/v1/kill-switches",
        Some(&operator),
        Some(target.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let took = refused_within(
        &client,
        &b.url("/v1/limited"),
        &key,
        None,
        503,
        Duration::from_secs(1),
    )
    .await;
    eprintln!("kill switch reached B in {took:?}");
    let (status, _) = admin_call(
        admin_b,
        "POST",
        "/admin/v1/kill-switches-clear",
        Some(&operator),
        Some(target),
    )
    .await;
    assert_eq!(status, 200);
    refused_within(
        &client,
        &a.url("/v1/limited"),
        &key,
        None,
        200,
        Duration::from_secs(1),
    )
    .await;
    // Both instances wrote to one audit log, which verifies.
    let (code, out, err) = cli(&b.config, &["admin", "audit-log", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("intact"), "{out}");

    // An application disabled with the CLI is refused (403) by both within 1 s.
    assert_eq!(
        cli_as(
            root,
            &b.config,
            &["apps", "disable", "web", "--reason", "drill"]
        )
        .0,
        Some(0)
    );
    for i in [&a, &b] {
        refused_within(
            &client,
            &i.url("/v1/limited"),
            &key,
            None,
            403,
            Duration::from_secs(1),
        )
        .await;
    }
}
