//! What no machine can see: questionnaire answers for organizational items
//! (each with evidence and an expiry date; evidence level "attested"), and
//! waivers that accept a failure for a time (ID, location, reason,
//! approver, expiry). Expired or incomplete entries count for nothing and
//! are reported.

use crate::model::{Evidence, Finding, Location, Outcome};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    /// `yes`, `partial` or `no`.
    #[serde(rename = "answer")]
    said: String,
    evidence: Option<String>,
    /// `YYYY-MM-DD`.
    expires: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    pub id: String,
    /// Matched as a substring of the finding's location (e.g. a JSON
    /// pointer, a config field, a URL).
    pub location: String,
    pub reason: String,
    pub approver: String,
    pub expires: String,
}

fn date(s: &str) -> Option<time::Date> {
    time::Date::parse(
        s,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// Findings from an answers file. `ids`: the catalogue's IDs.
pub fn answers(
    file: &str,
    text: &str,
    today: time::Date,
    ids: &[&'static str],
) -> Result<(Vec<Finding>, Vec<String>), String> {
    let parsed: BTreeMap<String, Answer> =
        yaml_serde::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for (id, a) in parsed {
        let Some(id) = ids.iter().copied().find(|i| *i == id) else {
            notes.push(format!("{file}: `{id}` is not a checklist ID; ignored"));
            continue;
        };
        let Some(expires) = date(&a.expires) else {
            notes.push(format!(
                "{file}: {id}: `expires` is not a date (YYYY-MM-DD); ignored"
            ));
            continue;
        };
        if expires < today {
            notes.push(format!(
                "{file}: {id}: the answer expired on {expires}; ask again"
            ));
            continue;
        }
        let Some(evidence) = a.evidence.filter(|e| !e.trim().is_empty()) else {
            notes.push(format!(
                "{file}: {id}: an answer without evidence counts for nothing"
            ));
            continue;
        };
        let outcome = match a.said.as_str() {
            "yes" => Outcome::Pass,
            "partial" => Outcome::Partial,
            "no" => Outcome::Fail,
            other => {
                notes.push(format!(
                    "{file}: {id}: answer `{other}` is not yes, partial or no; ignored"
                ));
                continue;
            }
        };
        findings.push(Finding::new(
            id,
            "answer",
            outcome,
            Evidence::Attested,
            format!("answered `{}` until {expires}: {evidence}", a.said),
            Location::Answer {
                file: file.to_owned(),
                id: id.to_owned(),
            },
        ));
    }
    Ok((findings, notes))
}

/// Applies a waivers file to failures; returns notes on expired ones.
pub fn waive(
    file: &str,
    text: &str,
    today: time::Date,
    findings: &mut [Finding],
) -> Result<Vec<String>, String> {
    let waivers: Vec<Waiver> = yaml_serde::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let mut notes = Vec::new();
    for w in waivers {
        let Some(expires) = date(&w.expires) else {
            notes.push(format!(
                "{file}: waiver for {}: `expires` is not a date; ignored",
                w.id
            ));
            continue;
        };
        if expires < today {
            notes.push(format!(
                "{file}: the waiver for {} at `{}` (approved by {}) expired on {expires}; the failure counts again",
                w.id, w.location, w.approver
            ));
            continue;
        }
        let mut used = false;
        for f in findings.iter_mut().filter(|f| {
            f.id == w.id && f.outcome == Outcome::Fail && f.location.label().contains(&w.location)
        }) {
            f.waived = Some(format!(
                "{} (approved by {}, until {expires})",
                w.reason, w.approver
            ));
            used = true;
        }
        if !used {
            notes.push(format!(
                "{file}: the waiver for {} at `{}` matches no failure",
                w.id, w.location
            ));
        }
    }
    Ok(notes)
}
