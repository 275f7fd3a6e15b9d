//! `portcullis audit`: grade an API from its document, its config and
//! live probes, and write the report in the chosen format.

use crate::AuditFormat;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The live part of `audit`.
#[derive(clap::Args)]
pub(super) struct ProbeArgs {
    /// A live API to probe, e.g. https://127.0.0.1:8443 (bounded: a few
    /// requests per probe, at most 50 a second).
    #[arg(long)]
    target: Option<String>,
    /// PEM trust anchors for the target's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// An API key for the target (`@FILE` reads it from a file).
    #[arg(long)]
    api_key: Option<String>,
    #[arg(long, default_value = "x-api-key")]
    api_key_header: String,
    /// A token valid with every scope (`@FILE` reads it from a file).
    #[arg(long)]
    token: Option<String>,
    /// A valid token lacking the scope of --scoped-operation (`@FILE`).
    #[arg(long)]
    token_without_scope: Option<String>,
    /// The protected read to probe, `METHOD /path` (default: from --config,
    /// else the OpenAPI document's first secured read; with neither, the
    /// identity matrix is not run: `GET /` is not assumed to be protected).
    #[arg(long)]
    operation: Option<String>,
    /// A write that needs a scope, `METHOD /path` (default: from --config).
    #[arg(long)]
    scoped_operation: Option<String>,
    /// Requests in the throttling burst (at most 1000).
    #[arg(long, default_value_t = 50)]
    burst: usize,
    /// A client certificate (PEM chain) that identifies the caller, in
    /// place of or beside --api-key; the probes also try a self-signed
    /// impostor with its names.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The key of --cert (PEM; refused when group or world readable).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Do not probe the HTTP plane over a connection whose certificate does
    /// not verify (by default the certificate is judged under TLS-02/09/10
    /// and the probes go on over the unverified connection, said plainly in
    /// the report).
    #[arg(long)]
    strict_tls: bool,
    /// Also send the document's writes (POST, PUT, PATCH, DELETE) without
    /// credentials to see that they are refused. Off by default: an
    /// assessor must not change or delete the data it assesses.
    #[arg(long)]
    allow_writes: bool,
}

/// A secret from the command line; `@FILE` reads it from a file.
pub(super) fn secret(value: Option<&String>) -> Result<Option<String>, String> {
    value
        .map(|v| match v.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("{path}: {e}")),
            None => Ok(v.clone()),
        })
        .transpose()
}

/// Probes the target, when one is given.
pub(super) fn live_findings(
    p: &ProbeArgs,
    config: Option<&Path>,
    spec: Option<&Path>,
) -> Result<(Vec<portcullis_audit::model::Finding>, Vec<String>), String> {
    use portcullis_audit::probe;
    let Some(url) = &p.target else {
        return Ok((Vec::new(), Vec::new()));
    };
    let from_config = match config {
        Some(path) => portcullis_config::load(path)
            .map_or((None, None), |c| probe::operations_from_config(&c)),
        None => (None, None),
    };
    let protected = match &p.operation {
        Some(op) => Some(probe::parse_operation(op)?),
        None => from_config.0,
    };
    let scoped = match &p.scoped_operation {
        Some(op) => Some(probe::parse_operation(op)?),
        None => from_config.1,
    };
    let ca =
        p.ca.as_ref()
            .map(|c| std::fs::read_to_string(c).map_err(|e| format!("{}: {e}", c.display())))
            .transpose()?;
    let client_cert = match (&p.cert, &p.key) {
        (Some(cert), Some(key)) => Some(probe::ClientCert {
            chain: portcullis_gateway::tls::load_certs(cert).map_err(|e| format!("--cert: {e}"))?,
            key: portcullis_gateway::tls::load_key(key).map_err(|e| format!("--key: {e}"))?,
        }),
        _ => None,
    };
    let target = probe::Target {
        url: url.clone(),
        ca,
        api_key: secret(p.api_key.as_ref())?,
        api_key_header: p.api_key_header.clone(),
        token: secret(p.token.as_ref())?,
        token_without_scope: secret(p.token_without_scope.as_ref())?,
        protected,
        scoped,
        burst: p.burst.min(probe::MAX_BURST),
        client_cert,
        strict_tls: p.strict_tls,
        document: spec
            .map(|path| {
                std::fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| portcullis_audit::spec::parse(&text))
                    .map_err(|e| format!("{}: {e}", path.display()))
            })
            .transpose()?,
        allow_writes: p.allow_writes,
    };
    let prober = probe::Prober::new(target)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(rt.block_on(prober.run()))
}

pub(super) fn audit(
    mut opts: portcullis_audit::Options,
    probe: &ProbeArgs,
    as_of: Option<&str>,
    format: AuditFormat,
    output: Option<&Path>,
    fail_under: Option<f64>,
) -> ExitCode {
    use portcullis_audit::report;
    if let Some(day) = as_of {
        match time::Date::parse(
            day,
            &time::macros::format_description!("[year]-[month]-[day]"),
        ) {
            Ok(d) => opts.as_of = Some(d),
            Err(_) => {
                eprintln!("--as-of: `{day}` is not a date like 2026-11-28");
                return ExitCode::from(2);
            }
        }
    }
    if opts.spec.is_none()
        && opts.config.is_none()
        && opts.answers.is_none()
        && probe.target.is_none()
    {
        eprintln!("audit: give at least one of --spec, --config, --target, --answers");
        return ExitCode::from(2);
    }
    let live = match live_findings(probe, opts.config.as_deref(), opts.spec.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("audit: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match portcullis_audit::run(&opts, probe.target.clone(), live.0, live.1) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("audit: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match format {
        AuditFormat::Terminal => report::terminal(&r),
        AuditFormat::Json => report::json(&r),
        AuditFormat::Sarif => report::sarif(&r),
        AuditFormat::Junit => report::junit(&r),
        AuditFormat::Html => report::html(&r),
    };
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("audit: {}: {e}", path.display());
                return ExitCode::from(2);
            }
            eprintln!(
                "{}: score {:.1}, grade {}",
                path.display(),
                r.score.score,
                r.score.grade
            );
        }
        None => print!("{text}"),
    }
    match fail_under {
        Some(min) if r.score.score < min => {
            eprintln!("score {:.1} is under --fail-under {min}", r.score.score);
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}
