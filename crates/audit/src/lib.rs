//! `portcullis audit`: one explained verdict per checklist ID, from the
//! contract (static checks), the gateway config (what it enforces), live
//! probes of a running API, and questionnaire answers for what no machine
//! can see. Offline, deterministic: the same inputs give the same report.
//!
//! Verdicts: pass, partial, fail, not applicable, unverified; each rests on
//! the strongest evidence behind it (observed > configured > documented >
//! attested). Nothing passes without evidence.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]
#![forbid(unsafe_code)]

/// The `ServerCertVerifier` methods that check the handshake's signature
/// with the crypto provider's algorithms (the provider is `self.$field`):
/// however lenient a verifier here is about the certificate, the peer must
/// still prove it holds the certificate's key.
macro_rules! verify_handshake_signatures {
    ($field:tt) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.$field.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.$field.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$field
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

pub mod answers;
pub mod config_review;
mod lines;
pub mod model;
pub mod probe;
pub mod report;
pub mod score;
pub mod spec;
pub mod tls_probe;

use model::{Evidence, Finding, Verdict};
use portcullis_catalog::Catalog;
use serde::Serialize;

/// The catalogue, loaded once: its IDs are the findings' `&'static str`s.
pub fn catalog() -> &'static Catalog {
    static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
    CATALOG.get_or_init(Catalog::load)
}

/// Version of the JSON report's schema.
pub const SCHEMA: &str = "portcullis-audit/1";

/// What the assessment looked at.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Inputs {
    pub spec: Option<String>,
    pub config: Option<String>,
    pub target: Option<String>,
    pub answers: Option<String>,
    pub waivers: Option<String>,
}

/// The verdict on one checklist ID.
#[derive(Debug, Clone, Serialize)]
pub struct Control {
    pub id: String,
    pub group: String,
    pub title: String,
    pub verdict: Verdict,
    pub evidence: Option<Evidence>,
    /// OWASP API Security Top 10 (2023).
    pub owasp: Option<&'static str>,
    pub cwe: Option<u32>,
    pub findings: Vec<Finding>,
    /// For a pass, what proved it: the passing findings with evidence
    /// behind them (answered probes, document or config places, answers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proved_by: Vec<Finding>,
}

/// The whole assessment.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub inputs: Inputs,
    pub score: score::Score,
    pub controls: Vec<Control>,
    /// Problems with the inputs themselves (an expired waiver, an answer
    /// without evidence), never silently ignored.
    pub notes: Vec<String>,
}

/// OWASP API Top 10 (2023) category and CWE for a checklist ID.
pub fn classify(id: &str) -> (Option<&'static str>, Option<u32>) {
    let (group, _) = id.split_once('-').unwrap_or((id, ""));
    let owasp = match id {
        "AUTHZ-03" => Some("API1:2023"),
        "INPUT-06" | "OUTPUT-10" | "OUTPUT-13" | "DATA-02" | "CONTRACT-02" => Some("API3:2023"),
        "INPUT-08" => Some("API4:2023"),
        "TLS-04" | "AUTHN-10" | "AUTHN-12" | "AUTHZ-06" => Some("API10:2023"),
        _ => match group {
            "AUTHN" => Some("API2:2023"),
            "AUTHZ" => Some("API5:2023"),
            "CONTRACT" => Some("API9:2023"),
            "PROC" => None,
            _ => Some("API8:2023"),
        },
    };
    let cwe = match id {
        "TLS-01" => Some(299),
        "TLS-02" | "TLS-06" | "TLS-08" => Some(295),
        "TLS-03" => Some(327),
        "TLS-04" | "TLS-05" | "OUTPUT-12" => Some(319),
        "TLS-07" => Some(732),
        "TLS-09" => Some(297),
        "TLS-10" => Some(298),
        "AUTHN-04" | "DATA-01" => Some(598),
        "AUTHN-07" => Some(1390),
        "AUTHN-08" | "AUTHN-13" | "AUTHN-02" => Some(347),
        "AUTHZ-03" => Some(639),
        "DATA-02" | "OUTPUT-03" | "OUTPUT-06" | "OUTPUT-10" | "OUTPUT-13" | "CONTRACT-02" => {
            Some(200)
        }
        "DATA-03" | "DATA-04" | "OPS-01" | "OPS-02" => Some(778),
        "DATA-05" => Some(311),
        "INPUT-06" => Some(915),
        "INPUT-08" => Some(770),
        "INPUT-10" | "INPUT-11" => Some(89),
        "INPUT-12" | "INPUT-13" => Some(94),
        "OUTPUT-01" | "OUTPUT-02" | "OUTPUT-04" | "OUTPUT-05" | "OUTPUT-14" => Some(209),
        "OUTPUT-07" | "OUTPUT-08" | "OUTPUT-09" => Some(525),
        "OUTPUT-11" => Some(942),
        "CONTRACT-03" => Some(1059),
        "OPS-03" | "OPS-04" | "OPS-05" => Some(284),
        _ => match id.split_once('-').map(|x| x.0) {
            Some("AUTHN") => Some(287),
            Some("AUTHZ") => Some(285),
            Some("INPUT" | "CONTRACT") => Some(20),
            _ => None,
        },
    };
    (owasp, cwe)
}

/// Folds findings into one verdict per catalogue ID, applies the score.
/// `planes` are the assessment planes the inputs covered (`spec`,
/// `config`, `live`, `ask`): an ID none of whose planes was covered is
/// unverified; an ID that cannot apply (`not_applicable`) is n/a.
pub fn assemble(
    inputs: Inputs,
    mut findings: Vec<Finding>,
    not_applicable: &[&str],
    notes: Vec<String>,
) -> Report {
    let catalog = catalog();
    findings.sort_by(|a, b| {
        (a.id, a.rule, a.location.label(), &a.message).cmp(&(
            b.id,
            b.rule,
            b.location.label(),
            &b.message,
        ))
    });
    findings.dedup();
    let controls: Vec<Control> = catalog
        .control
        .iter()
        .map(|c| {
            let mine: Vec<&Finding> = findings.iter().filter(|f| f.id == c.id).collect();
            let (verdict, evidence) =
                model::verdict(&mine, not_applicable.contains(&c.id.as_str()));
            let (owasp, cwe) = classify(&c.id);
            let proved_by = if verdict == Verdict::Pass {
                mine.iter()
                    .filter(|f| f.outcome == model::Outcome::Pass && f.has_evidence())
                    .map(|f| (*f).clone())
                    .collect()
            } else {
                Vec::new()
            };
            Control {
                proved_by,
                id: c.id.clone(),
                group: c
                    .id
                    .split_once('-')
                    .map_or(c.id.clone(), |g| g.0.to_owned()),
                title: c.title.clone(),
                verdict,
                evidence,
                owasp,
                cwe,
                findings: mine.into_iter().cloned().collect(),
            }
        })
        .collect();
    Report {
        schema: SCHEMA,
        inputs,
        score: score::score(&controls),
        controls,
        notes,
    }
}

/// What `portcullis audit` was asked to look at.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub spec: Option<std::path::PathBuf>,
    pub config: Option<std::path::PathBuf>,
    pub answers: Option<std::path::PathBuf>,
    pub waivers: Option<std::path::PathBuf>,
    /// The day expiry dates are judged against (default: today, UTC).
    pub as_of: Option<time::Date>,
    /// What `check` says of the certificate files a config names (wildcard
    /// names, expiry within 30 days, upstreams without a client
    /// certificate): the gateway's `tls::certificate_findings`, passed in
    /// because this crate reads configs, not certificates.
    pub certificate_review:
        Option<fn(&portcullis_config::Config) -> Vec<portcullis_config::Weakening>>,
}

fn read(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs every check the inputs allow and assembles the report. `live`:
/// findings of live probes, made by the caller (they need a runtime).
pub fn run(
    opts: &Options,
    target: Option<String>,
    live: Vec<Finding>,
    live_notes: Vec<String>,
) -> Result<Report, String> {
    let mut findings = live;
    let mut notes = live_notes;
    let mut not_applicable = Vec::new();
    let name = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    if let Some(path) = &opts.spec {
        let text = read(path)?;
        let root = spec::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = path.display().to_string();
        findings.extend(spec::Spec::new(&file, &text, &root).run());
        // No OAuth operation: the scope rules have nothing to say.
        if !spec::uses_oauth(&root) {
            not_applicable.extend(["AUTHZ-02", "AUTHZ-11"]);
        }
    }
    if let Some(path) = &opts.config {
        let config = portcullis_config::load(path).map_err(|e| {
            let errors: Vec<String> = e.field_errors().iter().map(ToString::to_string).collect();
            format!("{}: invalid config: {}", path.display(), errors.join("; "))
        })?;
        let file = path.display().to_string();
        findings.extend(config_review::review(&file, &config));
        if let Some(certificates) = opts.certificate_review {
            findings.extend(config_review::certificates(&file, certificates(&config)));
        }
    }
    let today = opts
        .as_of
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    let ids: Vec<&'static str> = catalog().control.iter().map(|c| c.id.as_str()).collect();
    if let Some(path) = &opts.answers {
        let (found, n) = answers::answers(&path.display().to_string(), &read(path)?, today, &ids)?;
        findings.extend(found);
        notes.extend(n);
    }
    if let Some(path) = &opts.waivers {
        notes.extend(answers::waive(
            &path.display().to_string(),
            &read(path)?,
            today,
            &mut findings,
        )?);
    }
    let inputs = Inputs {
        spec: name(&opts.spec),
        config: name(&opts.config),
        target,
        answers: name(&opts.answers),
        waivers: name(&opts.waivers),
    };
    Ok(assemble(inputs, findings, &not_applicable, notes))
}
