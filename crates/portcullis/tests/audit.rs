//! `portcullis audit` against a deliberately weak API (test data in
//! `fixtures/weak_api.py`): every planted flaw is reported under its ID,
//! and nothing else fails.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

use portcullis_testkit::ChildGuard as Child;

fn hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// The failed IDs of a JSON report, and the rules behind each failure.
fn failures(report: &serde_json::Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut ids = BTreeSet::new();
    let mut rules = BTreeSet::new();
    for c in report["controls"].as_array().unwrap() {
        if c["verdict"] == "fail" {
            ids.insert(c["id"].as_str().unwrap().to_owned());
            for f in c["findings"].as_array().unwrap() {
                if f["outcome"] == "fail" {
                    rules.insert(format!(
                        "{} {}",
                        c["id"].as_str().unwrap(),
                        f["rule"].as_str().unwrap()
                    ));
                }
            }
        }
    }
    (ids, rules)
}

#[test]
fn every_planted_flaw_of_the_weak_api_is_reported_under_its_id_and_nothing_else_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ca = portcullis_gateway::devpki::DevCa::new("Weak API CA").unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    let leaf = ca
        .issue_to(dir.path(), "weak", &["localhost", "127.0.0.1"], false)
        .unwrap();
    let secret = "weak-fixture-secret";
    let mut server = Child(
        Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/weak_api.py"
            ))
            .arg(&leaf.cert)
            .arg(&leaf.key)
            .arg(secret)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the weak fixture"),
    );
    let mut line = String::new();
    std::io::BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the fixture prints its port");
    let claims = |scope: &str| serde_json::json!({ "sub": "alice", "scope": scope, "exp": 4_102_444_800_i64 });
    let token = dir.path().join("token");
    std::fs::write(
        &token,
        hs256(secret.as_bytes(), &claims("items:read items:write")),
    )
    .unwrap();
    let read_only = dir.path().join("token-ro");
    std::fs::write(&read_only, hs256(secret.as_bytes(), &claims("items:read"))).unwrap();
    let out = Command::new(BIN)
        .args(["audit", "--format", "json", "--burst", "5"])
        .args(["--target", &format!("https://127.0.0.1:{port}")])
        .arg("--ca")
        .arg(&ca_path)
        .arg(format!("--token=@{}", token.display()))
        .arg(format!("--token-without-scope=@{}", read_only.display()))
        .args([
            "--operation",
            "GET /v1/items",
            "--scoped-operation",
            "POST /v1/items",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (failed, rules) = failures(&report);
    let expected: BTreeSet<String> = [
        "AUTHN-06",
        "AUTHN-13",
        "AUTHN-14",
        "CONTRACT-03",
        "DATA-03",
        "OUTPUT-02",
        "OUTPUT-03",
        "OUTPUT-07",
        "OUTPUT-08",
        "OUTPUT-09",
        "OUTPUT-11",
        "OUTPUT-12",
        "OUTPUT-14",
        "TLS-05",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(failed, expected, "rules: {rules:#?}");
    for rule in [
        "AUTHN-13 probe.accepted-bad-credentials",
        "AUTHN-14 probe.403-for-authentication",
        "AUTHN-06 probe.accepted-bad-credentials",
        "OUTPUT-02 probe.stack-trace",
        "OUTPUT-03 probe.banner",
        "OUTPUT-11 probe.cors-reflects-origin",
        "OUTPUT-12 probe.no-hsts",
        "OUTPUT-09 probe.cacheable",
        "CONTRACT-03 probe.debug-path-served",
        "TLS-05 tls.weak-suite",
    ] {
        assert!(rules.contains(rule), "{rule} not in {rules:#?}");
    }
    // What it does right is seen as right.
    let verdict = |id: &str| {
        report["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["verdict"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for id in [
        "AUTHZ-08", "AUTHZ-02", "INPUT-01", "INPUT-06", "TLS-02", "TLS-03", "TLS-09", "TLS-10",
    ] {
        assert_eq!(verdict(id), "pass", "{id}");
    }
    // Critical failures (alg: none, a stack trace) cap the grade.
    assert!(report["score"]["critical_failures"].as_u64().unwrap() >= 2);
    assert!(report["score"]["grade"].as_str().unwrap() >= "D");
    // Credentials never appear in the report.
    let text = String::from_utf8_lossy(&out.stdout);
    let secret_token = std::fs::read_to_string(&token).unwrap();
    assert!(!text.contains(secret_token.trim()) && text.contains("$TOKEN"));
}
