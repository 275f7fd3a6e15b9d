//! Answers, waivers and the published score.

use portcullis_audit::model::Verdict;
use portcullis_audit::{Options, run};

fn day(s: &str) -> time::Date {
    time::Date::parse(
        s,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .unwrap()
}

fn verdict(r: &portcullis_audit::Report, id: &str) -> Verdict {
    r.controls.iter().find(|c| c.id == id).unwrap().verdict
}

#[test]
fn answers_are_attested_until_they_expire_and_waivers_accept_failures_for_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let answers = dir.path().join("answers.yaml");
    std::fs::write(
        &answers,
        "PROC-03: { answer: yes, evidence: 'Semgrep in CI on every merge', expires: 2027-01-31 }\n\
         PROC-07: { answer: yes, evidence: 'coverage report', expires: 2026-01-01 }\n\
         PROC-05: { answer: yes, expires: 2027-01-31 }\n\
         PROC-01: { answer: no, evidence: 'no one yet', expires: 2027-01-31 }\n",
    )
    .unwrap();
    let spec = dir.path().join("api.yaml");
    std::fs::write(
        &spec,
        "openapi: 3.1.0\ninfo: { title: t, version: '1' }\npaths:\n  /a:\n    delete:\n      responses: { '204': { description: gone } }\n",
    )
    .unwrap();
    let waivers = dir.path().join("waivers.yaml");
    std::fs::write(
        &waivers,
        "- { id: OUTPUT-01, location: '/paths/~1a/delete', reason: 'legacy client', approver: 'CISO', expires: 2027-01-31 }\n\
         - { id: AUTHN-06, location: '/paths/~1a/delete', reason: 'old', approver: 'CISO', expires: 2026-06-30 }\n",
    )
    .unwrap();
    let opts = Options {
        spec: Some(spec),
        answers: Some(answers),
        waivers: Some(waivers),
        as_of: Some(day("2026-11-28")),
        ..Options::default()
    };
    let r = run(&opts, None, Vec::new(), Vec::new()).unwrap();
    assert_eq!(verdict(&r, "PROC-03"), Verdict::Pass);
    let proc03 = r.controls.iter().find(|c| c.id == "PROC-03").unwrap();
    assert_eq!(
        proc03.evidence,
        Some(portcullis_audit::model::Evidence::Attested)
    );
    assert_eq!(
        verdict(&r, "PROC-07"),
        Verdict::Unverified,
        "expired answer"
    );
    assert_eq!(verdict(&r, "PROC-05"), Verdict::Unverified, "no evidence");
    assert_eq!(verdict(&r, "PROC-01"), Verdict::Fail);
    assert_eq!(verdict(&r, "OUTPUT-01"), Verdict::Partial, "waived");
    assert_eq!(verdict(&r, "AUTHN-06"), Verdict::Fail, "expired waiver");
    for note in [
        "expired on 2026-01-01",
        "without evidence",
        "expired on 2026-06-30",
    ] {
        assert!(
            r.notes.iter().any(|n| n.contains(note)),
            "{note}: {:?}",
            r.notes
        );
    }
    // An unauthenticated write is critical: the grade is capped.
    assert!(r.score.critical_failures >= 1);
    assert!(r.score.grade >= 'D');
    // Attested credit is capped: a pass on attestation alone earns half.
    let proc = &r.score.groups["PROC"];
    assert!(proc.score < 100.0 && proc.verified == 2, "{proc:?}");
}

/// The catalogue says, per ID, which rules `audit` judges it by: every
/// `(ID, rule)` pair in the sources is named in that ID's statement, and
/// every rule a statement names exists.
#[test]
fn the_catalogue_names_every_rule_audit_judges_an_id_by() {
    // Every source file of the assessor, wherever the layout puts it.
    fn read_all(dir: &std::path::Path, out: &mut String) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                read_all(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut sources = String::new();
    read_all(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut sources,
    );
    let catalog = portcullis_audit::catalog();
    let mut pairs = 0;
    for c in &catalog.control {
        let needle = format!("\"{}\",", c.id);
        for (at, _) in sources.match_indices(&needle) {
            let after = sources[at + needle.len()..].trim_start();
            let Some(rule) = after.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                continue;
            };
            if ["spec.", "probe.", "tls."]
                .iter()
                .any(|p| rule.starts_with(p))
            {
                pairs += 1;
                assert!(
                    c.audit.contains(&format!("`{rule}`")),
                    "{}: the catalogue's audit statement does not name `{rule}`: {}",
                    c.id,
                    c.audit
                );
            }
        }
    }
    assert!(pairs > 80, "only {pairs} (ID, rule) pairs found");
    for c in &catalog.control {
        for rule in c.audit.split('`').skip(1).step_by(2) {
            if ["spec.", "probe.", "tls."]
                .iter()
                .any(|p| rule.starts_with(p))
            {
                assert!(
                    sources.contains(&format!("\"{rule}\"")),
                    "{}: `{rule}` does not exist",
                    c.id
                );
            }
        }
    }
}

/// Every catalogue statement ends by saying which evidence passes the ID
/// and which fails it: every rule the statement names appears there.
#[test]
fn every_statement_says_what_passes_and_what_fails_it() {
    for c in &portcullis_audit::catalog().control {
        let (how, evidence) = c
            .audit
            .split_once(" Evidence: it ")
            .unwrap_or_else(|| panic!("{}: no `Evidence:` sentence: {}", c.id, c.audit));
        assert!(
            ["passes", "partial", "fails"]
                .iter()
                .any(|w| evidence.contains(w))
                && evidence.contains("it is unverified."),
            "{}: {evidence}",
            c.id
        );
        for rule in how.split('`').skip(1).step_by(2) {
            if ["spec.", "probe.", "tls."]
                .iter()
                .any(|p| rule.starts_with(p))
            {
                assert!(
                    evidence.contains(&format!("`{rule}`")),
                    "{}: `{rule}` is not in the evidence sentence",
                    c.id
                );
            }
        }
    }
}
