//! The published score: deterministic, 0–100, per group and overall.
//!
//! Each verified ID earns points: a pass earns the credit of its evidence
//! (observed or configured 1.0, documented 0.9, attested 0.5), a partial
//! half of that, a failure nothing. Not-applicable and unverified IDs earn
//! nothing and count for nothing, so the score says how good what was
//! verified is, and `coverage` says how much was verified. Score = 100 ×
//! points / verified IDs, per group and overall.
//!
//! Grade: A ≥ 90, B ≥ 80, C ≥ 70, D ≥ 60, else F. A coverage under 60% of
//! the checklist caps the grade at B (too little was seen to say A). A
//! critical failure (plaintext, an unauthenticated write, `alg: none`
//! accepted, a stack trace) caps it at D.

use crate::Control;
use crate::model::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub score: f64,
    pub verified: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub score: f64,
    pub grade: char,
    /// Verified IDs (pass, partial, fail) over all IDs.
    pub coverage: f64,
    pub passed: usize,
    pub partial: usize,
    pub failed: usize,
    pub unverified: usize,
    pub not_applicable: usize,
    pub critical_failures: usize,
    pub groups: BTreeMap<String, Group>,
    /// Why the grade is lower than the score alone would give, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped: Option<String>,
}

fn points(c: &Control) -> Option<f64> {
    let credit = c.evidence.map_or(0.0, crate::model::Evidence::credit);
    match c.verdict {
        Verdict::Pass => Some(credit),
        Verdict::Partial => Some(credit / 2.0),
        Verdict::Fail => Some(0.0),
        Verdict::NotApplicable | Verdict::Unverified => None,
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn score(controls: &[Control]) -> Score {
    let mut groups: BTreeMap<String, (f64, usize, usize)> = BTreeMap::new();
    for c in controls {
        let g = groups.entry(c.group.clone()).or_default();
        g.2 += 1;
        if let Some(p) = points(c) {
            g.0 += p;
            g.1 += 1;
        }
    }
    let (total_points, verified) = groups
        .values()
        .fold((0.0, 0), |(p, v), g| (p + g.0, v + g.1));
    let value = if verified == 0 {
        0.0
    } else {
        round(100.0 * total_points / verified as f64)
    };
    let count = |v: Verdict| controls.iter().filter(|c| c.verdict == v).count();
    let critical_failures = controls
        .iter()
        .flat_map(|c| &c.findings)
        .filter(|f| f.critical && f.outcome == crate::model::Outcome::Fail && f.waived.is_none())
        .count();
    let coverage = round(100.0 * verified as f64 / controls.len().max(1) as f64);
    let mut grade = match value {
        v if v >= 90.0 => 'A',
        v if v >= 80.0 => 'B',
        v if v >= 70.0 => 'C',
        v if v >= 60.0 => 'D',
        _ => 'F',
    };
    let mut capped = None;
    if coverage < 60.0 && grade < 'B' {
        grade = 'B';
        capped = Some(format!("coverage {coverage}% is under 60%: at most B"));
    }
    if critical_failures > 0 && grade < 'D' {
        grade = 'D';
        capped = Some(format!(
            "{critical_failures} critical failure(s): at most D"
        ));
    }
    Score {
        score: value,
        grade,
        coverage,
        passed: count(Verdict::Pass),
        partial: count(Verdict::Partial),
        failed: count(Verdict::Fail),
        unverified: count(Verdict::Unverified),
        not_applicable: count(Verdict::NotApplicable),
        critical_failures,
        groups: groups
            .into_iter()
            .map(|(k, (p, v, t))| {
                (
                    k,
                    Group {
                        score: if v == 0 {
                            0.0
                        } else {
                            round(100.0 * p / v as f64)
                        },
                        verified: v,
                        total: t,
                    },
                )
            })
            .collect(),
        capped,
    }
}
