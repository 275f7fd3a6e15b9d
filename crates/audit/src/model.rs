//! What an assessment is made of: findings, each tied to one checklist ID
//! and resting on one level of evidence, and the verdict per ID they add
//! up to.

use serde::Serialize;

/// How strongly a finding is known, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// Someone says so (questionnaire answer).
    Attested,
    /// The contract says so.
    Documented,
    /// The gateway config enforces it.
    Configured,
    /// A probe saw it on the wire.
    Observed,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attested => "attested",
            Self::Documented => "documented",
            Self::Configured => "configured",
            Self::Observed => "observed",
        }
    }

    /// Credit a pass earns at this level: what the gateway is seen or
    /// configured to enforce earns full credit, what the contract only
    /// promises a little less, attested-only items are capped at half.
    pub fn credit(self) -> f64 {
        match self {
            Self::Observed | Self::Configured => 1.0,
            Self::Documented => 0.9,
            Self::Attested => 0.5,
        }
    }
}

/// What one check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Partial,
    Fail,
}

/// The verdict on one checklist ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Partial,
    Fail,
    NotApplicable,
    Unverified,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Partial => "partial",
            Self::Fail => "fail",
            Self::NotApplicable => "n/a",
            Self::Unverified => "unverified",
        }
    }
}

/// Where a finding was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A place in the OpenAPI document.
    Spec {
        file: String,
        pointer: String,
        line: Option<usize>,
    },
    /// A field of the gateway config.
    Config { file: String, field: String },
    /// A request sent to the target, with a `curl` reproduction.
    Probe {
        method: String,
        url: String,
        status: Option<u16>,
        curl: String,
    },
    /// A questionnaire answer.
    Answer { file: String, id: String },
}

impl Location {
    /// A short text for tables and waiver matching.
    pub fn label(&self) -> String {
        match self {
            Self::Spec { pointer, line, .. } => match line {
                Some(l) => format!("#{pointer} (line {l})"),
                None => format!("#{pointer}"),
            },
            Self::Config { field, .. } => field.clone(),
            Self::Probe {
                method,
                url,
                status,
                ..
            } => match status {
                Some(s) => format!("{method} {url} → {s}"),
                None => format!("{method} {url}"),
            },
            Self::Answer { id, .. } => format!("answer {id}"),
        }
    }
}

/// One thing the assessment found, for or against a checklist ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Checklist ID, e.g. `AUTHN-06`.
    pub id: &'static str,
    /// Stable rule name, e.g. `spec.operation-unsecured`.
    pub rule: &'static str,
    pub outcome: Outcome,
    pub evidence: Evidence,
    pub message: String,
    pub location: Location,
    /// A failure that caps the grade (plaintext, unauthenticated writes,
    /// `alg: none` accepted, stack traces).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// The waiver that accepts this failure, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waived: Option<String>,
}

impl Finding {
    pub fn new(
        id: &'static str,
        rule: &'static str,
        outcome: Outcome,
        evidence: Evidence,
        message: impl Into<String>,
        location: Location,
    ) -> Self {
        Self {
            id,
            rule,
            outcome,
            evidence,
            message: message.into(),
            location,
            critical: false,
            waived: None,
        }
    }

    #[must_use]
    pub fn critical(mut self) -> Self {
        self.critical = true;
        self
    }

    /// Whether the finding rests on something that could have gone the
    /// other way: an answered probe (an HTTP status, or the outcome of a TLS
    /// handshake), a place in the document or the config, a questionnaire
    /// answer. A request that got no answer proves nothing.
    pub fn has_evidence(&self) -> bool {
        match &self.location {
            Location::Probe { method, status, .. } => status.is_some() || method == "TLS",
            Location::Spec { .. } | Location::Config { .. } | Location::Answer { .. } => true,
        }
    }
}

/// The verdict on one ID from its findings: any unwaived failure fails it;
/// a partial or a waived failure makes it partial; otherwise a pass at the
/// strongest evidence seen. No finding: unverified (or not applicable when
/// the inputs say the item cannot apply).
pub fn verdict(findings: &[&Finding], not_applicable: bool) -> (Verdict, Option<Evidence>) {
    // A pass counts only with evidence behind it (see `has_evidence`).
    let findings: Vec<&Finding> = findings
        .iter()
        .copied()
        .filter(|f| f.outcome != Outcome::Pass || f.has_evidence())
        .collect();
    if findings.is_empty() {
        return if not_applicable {
            (Verdict::NotApplicable, None)
        } else {
            (Verdict::Unverified, None)
        };
    }
    let strongest =
        |f: &dyn Fn(&Finding) -> bool| findings.iter().filter(|x| f(x)).map(|x| x.evidence).max();
    if let Some(e) = strongest(&|x| x.outcome == Outcome::Fail && x.waived.is_none()) {
        return (Verdict::Fail, Some(e));
    }
    if let Some(e) = strongest(&|x| x.outcome != Outcome::Pass) {
        return (Verdict::Partial, Some(e));
    }
    (Verdict::Pass, strongest(&|_| true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(outcome: Outcome, evidence: Evidence) -> Finding {
        Finding::new(
            "AUTHN-06",
            "test",
            outcome,
            evidence,
            "",
            Location::Answer {
                file: String::new(),
                id: String::new(),
            },
        )
    }

    #[test]
    fn one_failure_fails_and_a_waiver_makes_it_partial() {
        let pass = f(Outcome::Pass, Evidence::Observed);
        let fail = f(Outcome::Fail, Evidence::Documented);
        assert_eq!(
            verdict(&[&pass, &fail], false),
            (Verdict::Fail, Some(Evidence::Documented))
        );
        let mut waived = fail.clone();
        waived.waived = Some("accepted".into());
        assert_eq!(verdict(&[&pass, &waived], false).0, Verdict::Partial);
        assert_eq!(
            verdict(&[&pass], false),
            (Verdict::Pass, Some(Evidence::Observed))
        );
        assert_eq!(verdict(&[], false).0, Verdict::Unverified);
        assert_eq!(verdict(&[], true).0, Verdict::NotApplicable);
    }

    #[test]
    fn a_pass_on_a_probe_without_an_answer_proves_nothing() {
        let probe = |status| Location::Probe {
            method: "GET".into(),
            url: "https://api.test/".into(),
            status,
            curl: String::new(),
        };
        let mut unanswered = f(Outcome::Pass, Evidence::Observed);
        unanswered.location = probe(None);
        assert_eq!(verdict(&[&unanswered], false).0, Verdict::Unverified);
        let mut answered = unanswered.clone();
        answered.location = probe(Some(401));
        assert_eq!(verdict(&[&unanswered, &answered], false).0, Verdict::Pass);
        // A TLS handshake's outcome is an answer; a failure stands anyway.
        let mut handshake = unanswered.clone();
        handshake.location = Location::Probe {
            method: "TLS".into(),
            url: "https://api.test".into(),
            status: None,
            curl: String::new(),
        };
        assert_eq!(verdict(&[&handshake], false).0, Verdict::Pass);
        let mut failed = unanswered.clone();
        failed.outcome = Outcome::Fail;
        assert_eq!(verdict(&[&failed], false).0, Verdict::Fail);
    }
}
