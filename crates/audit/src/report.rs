//! The report's formats: a terminal table, JSON (versioned schema), SARIF
//! 2.1.0, JUnit XML and a self-contained HTML page.

use crate::Report;
use crate::model::{Location, Outcome, Verdict};
use serde_json::{Value, json};
use std::fmt::Write;

/// The terminal table: one line per ID, then the score.
pub fn terminal(r: &Report) -> String {
    let mut out = String::new();
    // What limits the evidence is said before the verdicts it limits.
    for n in r
        .notes
        .iter()
        .filter(|n| n.starts_with("PROBED OVER AN UNVERIFIED") || n.starts_with("NOTHING SHOWS"))
    {
        let _ = writeln!(out, "!! {n}");
    }
    let unanswered: usize = r
        .notes
        .iter()
        .filter(|n| n.contains(": no answer: "))
        .map(|n| {
            n.split(" and ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|k| k.parse::<usize>().ok())
                .map_or(1, |more| more + 1)
        })
        .sum();
    if unanswered > 0 {
        let _ = writeln!(
            out,
            "!! {unanswered} probe(s) got no answer (notes at the end): what they would have judged stays unverified\n"
        );
    }
    let _ = writeln!(
        out,
        "{:<12} {:<10} {:<10} {:>3}  title",
        "ID", "verdict", "evidence", "#"
    );
    for c in &r.controls {
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<10} {:>3}  {}",
            c.id,
            c.verdict.as_str(),
            c.evidence.map_or("-", crate::model::Evidence::as_str),
            c.findings
                .iter()
                .filter(|f| f.outcome != Outcome::Pass)
                .count(),
            c.title
        );
        for f in c.findings.iter().filter(|f| f.outcome != Outcome::Pass) {
            let _ = writeln!(
                out,
                "             {} {}: {}{}",
                match (f.outcome, &f.waived) {
                    (_, Some(_)) => "waived ",
                    (Outcome::Fail, _) => "FAIL   ",
                    _ => "partial",
                },
                f.location.label(),
                f.message,
                f.waived
                    .as_ref()
                    .map_or(String::new(), |w| format!(" [waived: {w}]"))
            );
        }
    }
    let s = &r.score;
    let _ = writeln!(out);
    for (g, v) in &s.groups {
        let _ = writeln!(
            out,
            "{g:<9} {:>5.1}  ({} of {} verified)",
            v.score, v.verified, v.total
        );
    }
    let _ = writeln!(
        out,
        "\nscore {:.1}  grade {}  coverage {:.1}%  pass {} partial {} fail {} unverified {} n/a {}",
        s.score, s.grade, s.coverage, s.passed, s.partial, s.failed, s.unverified, s.not_applicable
    );
    if let Some(c) = &s.capped {
        let _ = writeln!(out, "grade capped: {c}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("a report serialises")
}

/// A probe's URL as a URI reference: what a URI cannot hold literally
/// (controls, spaces, quotes, brackets after the host, non-ASCII, a `%`
/// that starts no escape) percent-encoded; escapes the probe sent on
/// purpose (`%2e%2e`) kept as they were.
fn uri(url: &str) -> String {
    let start = url
        .split_once("://")
        .and_then(|(scheme, rest)| rest.find('/').map(|i| scheme.len() + 3 + i))
        .unwrap_or(0);
    let (authority, rest) = url.split_at(start);
    let mut out = String::from(authority);
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if b.is_ascii_alphanumeric() || b"-._~:/?#@!$&'()*+,;=".contains(&b) || escape_start {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A finding's stable identity across runs, for SARIF consumers that
/// track results over time: the ID, the rule and where it was found,
/// without what changes from run to run (the status a probe got, the line
/// a spec pointer sits on, the message's wording).
fn fingerprint(id: &str, f: &crate::model::Finding) -> String {
    let place = match &f.location {
        Location::Spec { file, pointer, .. } => format!("spec {file}#{pointer}"),
        Location::Config { file, field } => format!("config {file} {field}"),
        Location::Probe { method, url, .. } => {
            // The path and query only: the same finding on another host
            // name of the same API is the same finding.
            let path = url
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                .unwrap_or("/");
            format!("probe {method} {path}")
        }
        Location::Answer { file, id } => format!("answer {file} {id}"),
    };
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{id}\n{}\n{place}", f.rule).as_bytes(),
    );
    digest
        .as_ref()
        .iter()
        .take(16)
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SARIF 2.1.0: one result per failing or partial finding; contract
/// findings point into the spec file, probe findings carry the request and
/// a `curl` reproduction.
pub fn sarif(r: &Report) -> String {
    let mut rules: Vec<Value> = Vec::new();
    let mut results = Vec::new();
    for c in &r.controls {
        let mut rule = json!({
            "id": c.id,
            "name": c.id.replace('-', ""),
            "shortDescription": { "text": c.title },
            "properties": {
                "owasp": c.owasp,
                "cwe": c.cwe.map(|n| format!("CWE-{n}")),
                "verdict": c.verdict.as_str(),
            },
        });
        if let Some(judged) = crate::catalog().get(&c.id).map(|k| &k.audit) {
            rule["fullDescription"] = json!({ "text": judged });
        }
        // The weakness the ID guards against, at its real home.
        if let Some(n) = c.cwe {
            rule["helpUri"] = json!(format!("https://cwe.mitre.org/data/definitions/{n}.html"));
        }
        rules.push(rule);
        for f in c.findings.iter().filter(|f| f.outcome != Outcome::Pass) {
            let level = match (f.outcome, &f.waived) {
                (_, Some(_)) => "note",
                (Outcome::Fail, _) => "error",
                _ => "warning",
            };
            let mut result = json!({
                "ruleId": c.id,
                "level": level,
                "message": { "text": f.message },
                "partialFingerprints": { "portcullisFinding/v1": fingerprint(&c.id, f) },
                "properties": { "rule": f.rule, "evidence": f.evidence.as_str() },
            });
            match &f.location {
                Location::Spec {
                    file,
                    pointer,
                    line,
                } => {
                    let mut region = json!({});
                    if let Some(l) = line {
                        region = json!({ "startLine": l });
                    }
                    result["locations"] = json!([{
                        "physicalLocation": { "artifactLocation": { "uri": file }, "region": region },
                        "logicalLocations": [{ "fullyQualifiedName": format!("#{pointer}") }],
                    }]);
                }
                Location::Config { file, field } => {
                    result["locations"] = json!([{
                        "physicalLocation": { "artifactLocation": { "uri": file } },
                        "logicalLocations": [{ "fullyQualifiedName": field }],
                    }]);
                }
                Location::Probe {
                    method,
                    url,
                    status,
                    curl,
                } => {
                    // The request is the location: its URL as the artifact,
                    // method and URL as the logical name.
                    result["locations"] = json!([{
                        "physicalLocation": { "artifactLocation": { "uri": uri(url) } },
                        "logicalLocations": [{
                            "fullyQualifiedName": format!("{method} {url}"),
                            "kind": "resource",
                        }],
                    }]);
                    result["properties"]["request"] =
                        json!({ "method": method, "url": url, "status": status, "curl": curl });
                }
                Location::Answer { file, id } => {
                    result["locations"] = json!([{
                        "physicalLocation": { "artifactLocation": { "uri": file } },
                        "logicalLocations": [{ "fullyQualifiedName": id }],
                    }]);
                }
            }
            if let Some(w) = &f.waived {
                result["suppressions"] = json!([{ "kind": "external", "justification": w }]);
            }
            results.push(result);
        }
    }
    serde_json::to_string_pretty(&json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "portcullis audit",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            } },
            "results": results,
            "properties": { "score": r.score.score, "grade": r.score.grade.to_string() },
        }],
    }))
    .expect("serialises")
}

/// Text made safe for an XML attribute or element: the five markup
/// characters escaped, and every character XML 1.0 cannot carry at all
/// (C0 controls but tab, newline and carriage return; U+FFFE, U+FFFF)
/// replaced by U+FFFD, so a hostile server's answer cannot break the file.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a test suite per group, a test case per ID; failures fail,
/// unverified and n/a are skipped.
pub fn junit(r: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = r.score.failed;
    let _ = writeln!(
        out,
        "<testsuites name=\"portcullis audit\" tests=\"{}\" failures=\"{failures}\">",
        r.controls.len()
    );
    for (group, g) in &r.score.groups {
        let cases: Vec<_> = r.controls.iter().filter(|c| &c.group == group).collect();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{group}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            g.total,
            cases.iter().filter(|c| c.verdict == Verdict::Fail).count(),
            cases
                .iter()
                .filter(|c| matches!(c.verdict, Verdict::Unverified | Verdict::NotApplicable))
                .count()
        );
        for c in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{group}\" name=\"{} {}\">",
                c.id,
                xml(&c.title)
            );
            let detail: Vec<String> = c
                .findings
                .iter()
                .filter(|f| f.outcome != Outcome::Pass)
                .map(|f| format!("{}: {}", f.location.label(), f.message))
                .collect();
            match c.verdict {
                Verdict::Fail => {
                    let _ = write!(
                        out,
                        "<failure message=\"{} failed\">{}</failure>",
                        c.id,
                        xml(&detail.join("\n"))
                    );
                }
                Verdict::Unverified => {
                    let _ = write!(out, "<skipped message=\"unverified\"/>");
                }
                Verdict::NotApplicable => {
                    let _ = write!(out, "<skipped message=\"not applicable\"/>");
                }
                Verdict::Partial => {
                    let _ = write!(
                        out,
                        "<system-out>partial: {}</system-out>",
                        xml(&detail.join("\n"))
                    );
                }
                Verdict::Pass => {}
            }
            let _ = writeln!(out, "</testcase>");
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A self-contained HTML page: the score, an SVG bar chart of the group
/// scores, and every ID with its findings in an expandable `<details>`.
pub fn html(r: &Report) -> String {
    let s = &r.score;
    let mut bars = String::new();
    for (i, (g, v)) in s.groups.iter().enumerate() {
        let y = 10 + i * 26;
        let w = (v.score * 3.0).round();
        let _ = write!(
            bars,
            "<text x=\"0\" y=\"{}\" class=\"label\">{g}</text><rect x=\"90\" y=\"{y}\" width=\"{w}\" height=\"18\" class=\"bar\"/><text x=\"{}\" y=\"{}\">{:.1}</text>",
            y + 14,
            100.0 + w,
            y + 14,
            v.score
        );
    }
    let height = 20 + s.groups.len() * 26;
    let mut rows = String::new();
    for c in &r.controls {
        let mut items = String::new();
        for f in &c.findings {
            let _ = write!(
                items,
                "<li class=\"{}\"><code>{}</code> {} <span class=\"loc\">{}</span>{}</li>",
                match f.outcome {
                    Outcome::Pass => "pass",
                    Outcome::Partial => "partial",
                    Outcome::Fail => "fail",
                },
                xml(f.rule),
                xml(&f.message),
                xml(&f.location.label()),
                match &f.location {
                    Location::Probe { curl, .. } => format!("<pre>{}</pre>", xml(curl)),
                    _ => String::new(),
                }
            );
        }
        let _ = writeln!(
            rows,
            "<details class=\"control {v}\" id=\"{id}\"><summary><span class=\"id\">{id}</span> <span class=\"verdict\">{vs}</span> <span class=\"evidence\">{ev}</span> {title} <span class=\"map\">{owasp} {cwe}</span></summary><ul>{items}</ul></details>",
            v = c.verdict.as_str().replace('/', ""),
            id = c.id,
            vs = c.verdict.as_str(),
            ev = c.evidence.map_or("", crate::model::Evidence::as_str),
            title = xml(&c.title),
            owasp = c.owasp.unwrap_or(""),
            cwe = c.cwe.map_or(String::new(), |n| format!("CWE-{n}")),
        );
    }
    let notes = r.notes.iter().fold(String::new(), |mut out, n| {
        let _ = write!(out, "<li>{}</li>", xml(n));
        out
    });
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>portcullis audit: grade {grade}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}
.grade{{font-size:3em;font-weight:bold}}
svg text{{font-size:13px}} .bar{{fill:#3a6ea5}}
details{{border-bottom:1px solid #ddd;padding:.2em 0}} summary{{cursor:pointer}}
.id{{font-family:monospace;display:inline-block;width:7em}} .verdict{{display:inline-block;width:6em;font-weight:bold}}
.fail .verdict{{color:#b00}} .partial .verdict{{color:#a60}} .pass .verdict{{color:#070}} .unverified .verdict,.na .verdict{{color:#777}}
li.fail{{color:#b00}} li.partial{{color:#a60}} .loc,.map,.evidence{{color:#666;font-size:.9em}}
</style></head><body>
<h1>portcullis audit</h1>
<p><span class="grade" id="grade">{grade}</span> score <b id="score">{score:.1}</b> · coverage {coverage:.1}% · pass {passed} · partial {partial} · fail {failed} · unverified {unverified} · n/a {na}</p>
{capped}
<h2>Score by group</h2>
<svg id="chart" role="img" aria-label="score by group" width="460" height="{height}" xmlns="http://www.w3.org/2000/svg">{bars}</svg>
<h2>Checklist</h2>
<div id="controls">
{rows}</div>
<h2>Notes</h2><ul id="notes">{notes}</ul>
</body></html>
"#,
        grade = s.grade,
        score = s.score,
        coverage = s.coverage,
        passed = s.passed,
        partial = s.partial,
        failed = s.failed,
        unverified = s.unverified,
        na = s.not_applicable,
        capped = s.capped.as_ref().map_or(String::new(), |c| format!(
            "<p class=\"capped\">Grade capped: {}</p>",
            xml(c)
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn a_probe_url_becomes_a_uri_keeping_the_escapes_it_sent() {
        assert_eq!(
            uri("https://[::1]:8443/a/%2e%2e/b c\"<x>%zz/é?q=[1]"),
            "https://[::1]:8443/a/%2e%2e/b%20c%22%3Cx%3E%25zz/%C3%A9?q=%5B1%5D"
        );
        assert_eq!(uri("https://api.test"), "https://api.test");
        assert_eq!(uri("/relative path"), "/relative%20path");
    }
}
