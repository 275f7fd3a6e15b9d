//! The report formats other tools read, judged by other tools' rules: the
//! SARIF output against the OASIS SARIF 2.1.0 JSON Schema, the JUnit
//! output by a strict XML 1.0 parser, both fed text a hostile server could
//! have put into a finding.

use portcullis_audit::model::{Evidence, Finding, Location, Outcome};
use portcullis_audit::{Inputs, assemble, report};

/// What a hostile or broken server can make a finding's message say:
/// markup, quotes, every C0 control, the two XML non-characters.
fn hostile() -> String {
    let mut s = String::from("</failure><x a='1' b=\"2\">&amp; ]]> ");
    s.extend((0u8..32).map(char::from));
    s.push('\u{FFFE}');
    s.push('\u{FFFF}');
    s.push_str(" end");
    s
}

fn report() -> portcullis_audit::Report {
    let probe = |status| Location::Probe {
        method: "GET".into(),
        url: format!("https://api.example.test/debug?q={}", hostile()),
        status,
        curl: "curl -i 'https://api.example.test/debug'".into(),
    };
    let findings = vec![
        Finding::new(
            "OUTPUT-04",
            "probe.stack-trace-detail",
            Outcome::Partial,
            Evidence::Observed,
            hostile(),
            probe(Some(500)),
        ),
        Finding::new(
            "AUTHN-06",
            "probe.unauthenticated-write",
            Outcome::Fail,
            Evidence::Observed,
            "a write succeeded without credentials",
            probe(Some(201)),
        )
        .critical(),
        Finding::new(
            "AUTHN-06",
            "spec.operation-unsecured",
            Outcome::Fail,
            Evidence::Documented,
            hostile(),
            Location::Spec {
                file: "openapi.yaml".into(),
                pointer: "/paths/~1orders/post".into(),
                line: Some(12),
            },
        ),
        Finding::new(
            "TLS-04",
            "config.plaintext-upstream",
            Outcome::Fail,
            Evidence::Configured,
            "plaintext",
            Location::Config {
                file: "portcullis.yaml".into(),
                field: "upstreams.orders.url".into(),
            },
        ),
        Finding::new(
            "PROC-01",
            "answer",
            Outcome::Partial,
            Evidence::Attested,
            hostile(),
            Location::Answer {
                file: "answers.yaml".into(),
                id: "PROC-01".into(),
            },
        ),
    ];
    assemble(Inputs::default(), findings, &[], vec![hostile()])
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    // The OASIS schema, byte for byte as published (the copy serde-sarif
    // 0.8.0 ships), except one known defect: both `language` patterns
    // (run, toolComponent) hold a stray `]` that an ECMA-262 regex (what
    // JSON Schema's `regex` format means) refuses, so a validator that
    // checks formats refuses the schema itself. Mended here, in sight.
    let mut schema: serde_json::Value =
        serde_json::from_str(include_str!("sarif-schema-2.1.0.json")).unwrap();
    for owner in ["run", "toolComponent"] {
        let language = &mut schema["definitions"][owner]["properties"]["language"]["pattern"];
        assert_eq!(language, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
        *language = "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$".into();
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles");
    let sarif: serde_json::Value = serde_json::from_str(&report::sarif(&report())).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "SARIF schema violations: {errors:#?}");

    // The validator is not lenient: a result without its message fails.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("message");
    assert!(!validator.is_valid(&broken));

    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "one result per non-passing finding");
    for r in results {
        let print = r["partialFingerprints"]["portcullisFinding/v1"]
            .as_str()
            .unwrap_or_else(|| panic!("no fingerprint: {r}"));
        assert_eq!(print.len(), 32);
        assert!(print.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    // Fingerprints tell findings apart, and the same run gives the same ones.
    let prints: std::collections::BTreeSet<&str> = results
        .iter()
        .map(|r| {
            r["partialFingerprints"]["portcullisFinding/v1"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(prints.len(), 5);
    let again: serde_json::Value = serde_json::from_str(&report::sarif(&report())).unwrap();
    assert_eq!(again["runs"][0]["results"], sarif["runs"][0]["results"]);

    // A probe finding names the request as its location.
    let write = results
        .iter()
        .find(|r| r["properties"]["rule"] == "probe.unauthenticated-write")
        .unwrap();
    let location = &write["locations"][0];
    assert!(
        location["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("https://api.example.test/debug?q=")
    );
    assert!(
        location["logicalLocations"][0]["fullyQualifiedName"]
            .as_str()
            .unwrap()
            .starts_with("GET https://api.example.test/debug")
    );
    assert_eq!(write["properties"]["request"]["status"], 201);
    assert_eq!(write["level"], "error");

    // Rules point at the weakness they guard against, at its real home.
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 83);
    let tls04 = rules.iter().find(|r| r["id"] == "TLS-04").unwrap();
    assert_eq!(
        tls04["helpUri"],
        "https://cwe.mitre.org/data/definitions/319.html"
    );
    assert!(
        !tls04["fullDescription"]["text"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // No invented home page for the tool.
    assert!(
        sarif["runs"][0]["tool"]["driver"]
            .get("informationUri")
            .is_none()
    );
}

#[test]
fn a_fingerprint_ignores_what_changes_between_runs() {
    let one = report();
    let mut other = report();
    // Another host, another status, another wording: the same finding.
    for c in &mut other.controls {
        for f in &mut c.findings {
            f.message.push_str(" (again)");
            if let Location::Probe { url, status, .. } = &mut f.location {
                *url = url.replace("api.example.test", "staging.example.test");
                *status = Some(503);
            }
            if let Location::Spec { line, .. } = &mut f.location {
                *line = Some(99);
            }
        }
    }
    let prints = |r: &portcullis_audit::Report| {
        let v: serde_json::Value = serde_json::from_str(&report::sarif(r)).unwrap();
        v["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["partialFingerprints"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(prints(&one), prints(&other));
}

#[test]
fn junit_is_well_formed_xml_whatever_a_server_said() {
    let xml = report::junit(&report());
    let doc = roxmltree::Document::parse(&xml)
        .unwrap_or_else(|e| panic!("JUnit output is not XML 1.0: {e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let cases: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 83);
    // The hostile text arrives as text, not as markup: one failure element
    // per failing case, and its text still carries what could be kept.
    let failures: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 2, "AUTHN-06 and TLS-04 fail");
    let authn06 = failures
        .iter()
        .find(|f| f.attribute("message") == Some("AUTHN-06 failed"))
        .unwrap();
    let text = authn06.text().unwrap();
    assert!(
        text.contains("</failure><x a='1' b=\"2\">&amp; ]]>"),
        "{text}"
    );
    assert!(text.contains('\u{FFFD}'), "dropped characters are marked");
    assert!(text.contains("\t\n"), "tab and newline are kept");
    assert!(!text.chars().any(|c| c < ' ' && !"\t\n\r".contains(c)));
    // Partial findings are written out too, and parse.
    assert!(
        root.descendants()
            .filter(|n| n.has_tag_name("system-out"))
            .any(|n| n.text().unwrap_or("").contains(" end"))
    );
}
