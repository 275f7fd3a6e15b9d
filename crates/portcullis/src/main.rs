//! `portcullis`: the gateway, its config checker and the quickstart demo.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

/// mimalloc: the request path allocates many small, short-lived objects
/// (headers, JSON values); measured faster than the system allocator in
/// bench/ S1 and S6.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod inventory;
mod quickstart;
mod remote;

use clap::{Parser, Subcommand};
use portcullis_gateway::Gateway;
use portcullis_gateway::identity::apikeys;
use portcullis_gateway::store::pepper::Pepper;
use portcullis_gateway::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An API gateway whose every default is the secure one"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config and list every weakened default.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a secure demo on this machine: dev PKI, demo backend, gateway.
    Quickstart {
        /// Where to keep the demo's PKI, config and events.
        #[arg(long, default_value = "portcullis-data")]
        data_dir: PathBuf,
        /// Gateway port on 127.0.0.1; 0 picks a free port.
        #[arg(long, default_value_t = 8443)]
        port: u16,
    },
    /// Print the checklist catalogue as Markdown (docs/controls.md).
    Controls,
    /// List every route: API, method, path, environment, authentication,
    /// scopes, data classification and owner (CONTRACT-03).
    Inventory {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "markdown")]
        format: inventory::Format,
        /// Add each route's volume and last-seen time, and the shadow
        /// endpoints, from the running gateway's admin plane (`admin.bind`;
        /// an admin token in the PORTCULLIS_ADMIN_TOKEN environment variable).
        #[arg(long)]
        traffic: bool,
    },
    /// Manage applications (in the store named by the config's `identity.data_dir`).
    Apps {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        action: AppsAction,
    },
    /// Manage API keys; a key is shown once, only its digest is stored.
    Keys {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Administrators of the admin API, and the audit log (on the store
    /// named by the config; changes made here are audited as `local:<user>`).
    Admin {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Grade an API against the checklist: its OpenAPI document, its
    /// Portcullis config, live probes of the running API (--target) and
    /// questionnaire answers, one verdict per ID with the evidence behind it.
    /// Exit codes: 0 assessed, 1 score under --fail-under, 2 unusable input.
    Audit(Box<AuditArgs>),
    /// Mint a fresh token from the quickstart's demo issuer (development only).
    DemoToken {
        #[arg(long, default_value = "portcullis-data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "demo-user")]
        subject: String,
        #[arg(long, default_value = "orders:read orders:write")]
        scope: String,
    },
}

#[derive(clap::Args)]
struct AuditArgs {
    /// OpenAPI 3.0/3.1 document (YAML or JSON).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// A Portcullis config.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    probe: ProbeArgs,
    /// Questionnaire answers for organizational items (YAML).
    #[arg(long)]
    answers: Option<PathBuf>,
    /// Accepted failures: ID, location, reason, approver, expiry (YAML).
    #[arg(long)]
    waivers: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "terminal")]
    format: AuditFormat,
    /// Write the report here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Exit 1 when the score is below this (0–100).
    #[arg(long)]
    fail_under: Option<f64>,
    /// Judge expiry dates as of this day (YYYY-MM-DD); default today.
    #[arg(long)]
    as_of: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuditFormat {
    Terminal,
    Json,
    Sarif,
    Junit,
    Html,
}

#[derive(Subcommand)]
enum AppsAction {
    Create {
        name: String,
    },
    List,
    Disable {
        name: String,
        /// Why (the audit log keeps it); required through the admin plane.
        #[arg(long)]
        reason: Option<String>,
    },
    Enable {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Client certificates carrying this SAN (DNS name or URI) identify the
    /// application, alongside or instead of an API key.
    BindCert {
        name: String,
        #[arg(long)]
        san: String,
    },
    UnbindCert {
        #[arg(long)]
        san: String,
    },
    /// Certificate names bound to applications.
    Certs,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an administrator; prints the admin token once.
    Create {
        name: String,
        /// viewer | operator | security-admin
        #[arg(long)]
        role: String,
    },
    /// Administrators and their roles.
    List,
    #[command(subcommand)]
    AuditLog(AuditLogAction),
}

#[derive(Subcommand)]
enum AuditLogAction {
    /// Check the hash chain; says which entry was edited, removed or moved.
    Verify,
    /// Print every entry as JSON lines.
    Show,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Issue a new key for an application.
    Issue {
        #[arg(long)]
        app: String,
    },
    List {
        #[arg(long)]
        app: Option<String>,
    },
    /// Revoke a key by its id (the part after `pcsk_`, before the second `_`).
    Revoke {
        id: String,
        /// Why (the audit log keeps it); required through the admin plane.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Issue a new key; the application's other keys stay valid for the overlap.
    Rotate {
        #[arg(long)]
        app: String,
        /// Seconds the old keys stay valid.
        #[arg(long, default_value_t = 86_400)]
        overlap_s: i64,
    },
}

/// Exit codes: 0 success, 1 invalid config or failed start, 2 usage.
fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => run(&config),
        Command::Quickstart { data_dir, port } => quickstart::main(&data_dir, port),
        Command::Controls => {
            print!("{}", portcullis_catalog::Catalog::load().to_markdown());
            ExitCode::SUCCESS
        }
        Command::Inventory {
            config,
            format,
            traffic,
        } => match load_config(&config) {
            Ok(c) => inventory_command(&c, format, traffic),
            Err(code) => code,
        },
        Command::Apps { config, action } => match admin_api(&config) {
            Err(code) => code,
            Ok(Some(api)) => outcome(apps_remote(&api, action)),
            Ok(None) => admin(&config, |store, pepper| apps(store, pepper, action)),
        },
        Command::Keys { config, action } => match admin_api(&config) {
            Err(code) => code,
            Ok(Some(api)) => outcome(keys_remote(&api, action)),
            Ok(None) => admin(&config, |store, pepper| keys(store, pepper, action)),
        },
        Command::Admin { config, action } => admins(&config, action),
        Command::Audit(args) => {
            let AuditArgs {
                spec,
                config,
                probe,
                answers,
                waivers,
                format,
                output,
                fail_under,
                as_of,
            } = *args;
            audit(
                portcullis_audit::Options {
                    spec,
                    config,
                    answers,
                    waivers,
                    as_of: None,
                    certificate_review: Some(portcullis_gateway::tls::certificate_findings),
                },
                &probe,
                as_of.as_deref(),
                format,
                output.as_deref(),
                fail_under,
            )
        }
        Command::DemoToken {
            data_dir,
            subject,
            scope,
        } => match quickstart::mint_demo_token(&data_dir, &subject, &scope) {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot mint a demo token: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn inventory_command(
    config: &portcullis_config::Config,
    format: inventory::Format,
    traffic: bool,
) -> ExitCode {
    let mut rows = inventory::rows(config);
    if !traffic {
        print!("{}", inventory::render(&rows, format));
        return ExitCode::SUCCESS;
    }
    let api = match remote::AdminApi::from_config(config) {
        Ok(Some(api)) => api,
        Ok(None) => {
            eprintln!("--traffic: the config has no `admin` plane to ask");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("--traffic: {e}");
            return ExitCode::from(2);
        }
    };
    let fetched = api.call("GET", "/admin/v1/inventory", None).and_then(|v| {
        serde_json::from_value::<inventory::Traffic>(v)
            .map_err(|e| format!("unexpected answer: {e}"))
    });
    match fetched {
        Ok(t) => {
            inventory::join(&mut rows, &t);
            if format == inventory::Format::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "routes": rows,
                        "shadow_endpoints": t.shadow_endpoints,
                        "shadow_not_kept": t.shadow_not_kept,
                    }))
                    .expect("serialises")
                );
            } else {
                print!("{}", inventory::render(&rows, format));
                print!("{}", inventory::render_shadow(&t, format));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("--traffic: {e}");
            ExitCode::from(1)
        }
    }
}

/// The live part of `audit`.
#[derive(clap::Args)]
struct ProbeArgs {
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
fn secret(value: Option<&String>) -> Result<Option<String>, String> {
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
fn live_findings(
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

fn audit(
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

/// The admin plane of the config at `path`, when it declares one: then
/// `apps` and `keys` go through it (roles, audit log under the
/// administrator's name) and never write the store behind its back.
fn admin_api(path: &Path) -> Result<Option<remote::AdminApi>, ExitCode> {
    let config = load_config(path)?;
    remote::AdminApi::from_config(&config).map_err(|e| {
        eprintln!("{}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn outcome(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// A name as one path segment.
fn segment(name: &str) -> String {
    use std::fmt::Write;
    name.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// A change the admin API takes only with a reason (it goes to the audit log).
fn call_with_reason(
    api: &remote::AdminApi,
    method: &str,
    path: &str,
    reason: Option<String>,
) -> Result<(), String> {
    let reason = reason.ok_or("say why with --reason \"…\" (it goes to the audit log)")?;
    api.call(method, path, Some(&serde_json::json!({ "reason": reason })))
        .map(|_| ())
}

fn apps_remote(api: &remote::AdminApi, action: AppsAction) -> Result<(), String> {
    use serde_json::json;
    match action {
        AppsAction::Create { name } => {
            api.call("POST", "/admin/v1/apps", Some(&json!({ "name": name })))?;
            println!("created application {name}");
        }
        AppsAction::List => {
            for a in api.list("/admin/v1/apps")? {
                let state = if a["enabled"] == true {
                    "enabled"
                } else {
                    "disabled"
                };
                println!("{}\t{state}", a["name"].as_str().unwrap_or("?"));
            }
        }
        AppsAction::Disable { name, reason } => {
            let path = format!("/admin/v1/apps/{}/disable", segment(&name));
            call_with_reason(api, "POST", &path, reason)?;
            println!("disabled {name}: refused from the next request, on every instance");
        }
        AppsAction::Enable { name, reason } => {
            let path = format!("/admin/v1/apps/{}/enable", segment(&name));
            call_with_reason(api, "POST", &path, reason)?;
            println!("enabled {name}");
        }
        AppsAction::BindCert { name, san } => {
            api.call(
                "POST",
                &format!("/admin/v1/apps/{}/certs", segment(&name)),
                Some(&json!({ "san": san })),
            )?;
            println!("client certificates naming {san} now identify {name}");
        }
        AppsAction::UnbindCert { san } => {
            api.call(
                "POST",
                "/admin/v1/certs-unbind",
                Some(&json!({ "san": san })),
            )?;
            println!("{san} no longer identifies an application");
        }
        AppsAction::Certs => {
            for b in api.list("/admin/v1/certs")? {
                println!(
                    "{}\t{}",
                    b["san"].as_str().unwrap_or("?"),
                    b["app"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}

fn keys_remote(api: &remote::AdminApi, action: KeysAction) -> Result<(), String> {
    use serde_json::json;
    match action {
        KeysAction::Issue { ref app } | KeysAction::Rotate { ref app, .. } => {
            let (path, body, note) = match &action {
                KeysAction::Rotate { overlap_s, .. } => (
                    format!("/admin/v1/apps/{}/keys-rotate", segment(app)),
                    Some(json!({ "overlap_s": overlap_s })),
                    format!("older keys stay valid for {overlap_s} s. Shown once"),
                ),
                _ => (
                    format!("/admin/v1/apps/{}/keys", segment(app)),
                    None,
                    "shown once, store it now".to_owned(),
                ),
            };
            let k = api.call("POST", &path, body.as_ref())?;
            println!(
                "key id {} for {app}; {note}:",
                k["id"].as_str().unwrap_or("?")
            );
            println!("{}", k["key"].as_str().unwrap_or(""));
        }
        KeysAction::Revoke { id, reason } => {
            let path = format!("/admin/v1/keys/{}", segment(&id));
            call_with_reason(api, "DELETE", &path, reason)?;
            println!("revoked key {id}");
        }
        KeysAction::List { app } => {
            let path = match &app {
                Some(a) => format!("/admin/v1/keys?app={}", segment(a)),
                None => "/admin/v1/keys".to_owned(),
            };
            let now = portcullis_gateway::clock::now();
            for k in api.list(&path)? {
                print_key(
                    k["id"].as_str().unwrap_or("?"),
                    k["app"].as_str().unwrap_or("?"),
                    (k["revoked_at"].as_i64(), k["expires_at"].as_i64()),
                    now,
                );
            }
        }
    }
    Ok(())
}

/// Opens the store named by a config's identity section and runs `f`.
fn admin(path: &Path, f: impl FnOnce(&dyn Store, &Pepper) -> Result<(), StoreError>) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(identity) = config.identity else {
        eprintln!(
            "{}: no `identity` section: applications and keys live in identity.data_dir",
            path.display()
        );
        return ExitCode::from(1);
    };
    let opened = std::fs::create_dir_all(&identity.data_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| Pepper::load_or_create(&identity.data_dir).map_err(|e| e.to_string()))
        .and_then(|p| {
            portcullis_gateway::store::open(&identity, &p)
                .map(|s| (s, p))
                .map_err(|e| e.to_string())
        });
    let (store, pepper) = match opened {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    match f(store.as_ref(), &pepper) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Who changes the store from this machine's CLI, for the audit log.
fn local_actor() -> String {
    format!(
        "local:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// Audits a CLI change (before making it), then makes it.
fn audited<T>(
    store: &dyn Store,
    pepper: &Pepper,
    action: &str,
    target: &str,
    change: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let entry = portcullis_gateway::store::audit_log::AuditEntry {
        at: portcullis_gateway::clock::now(),
        actor: local_actor(),
        role: "local-store".into(),
        action: action.to_owned(),
        target: target.to_owned(),
        before: None,
        after: None,
        reason: None,
        correlation_id: uuid::Uuid::now_v7().to_string(),
    };
    portcullis_gateway::admin::logged(store, pepper, entry, change)
}

fn admins(path: &Path, action: AdminAction) -> ExitCode {
    use portcullis_gateway::admin::{Role, create_admin};
    if let AdminAction::Create { role, .. } = &action
        && Role::parse(role).is_none()
    {
        eprintln!("--role: `{role}` is not one of viewer, operator, security-admin");
        return ExitCode::from(2);
    }
    admin(path, |store, pepper| match action {
        AdminAction::Create { name, role } => {
            let role = Role::parse(&role).expect("checked above");
            let token = create_admin(
                store,
                pepper,
                &name,
                role,
                (&local_actor(), "local-store"),
                &uuid::Uuid::now_v7().to_string(),
            )?;
            println!(
                "administrator {name} ({}); token shown once, store it now:",
                role.as_str()
            );
            println!("{token}");
            Ok(())
        }
        AdminAction::List => {
            for a in store.admins()? {
                println!("{}\t{}", a.name, a.role);
            }
            Ok(())
        }
        AdminAction::AuditLog(AuditLogAction::Show) => {
            for (seq, e) in portcullis_gateway::store::audit_log::entries(store)? {
                println!("{}", serde_json::json!({ "seq": seq, "entry": e }));
            }
            Ok(())
        }
        AdminAction::AuditLog(AuditLogAction::Verify) => {
            match portcullis_gateway::store::audit_log::verify(store, pepper)? {
                Ok(n) => {
                    println!("audit log intact: {n} entries");
                    Ok(())
                }
                Err(b) => Err(StoreError::AuditBroken(b.to_string())),
            }
        }
    })
}

fn apps(store: &dyn Store, pepper: &Pepper, action: AppsAction) -> Result<(), StoreError> {
    let now = portcullis_gateway::clock::now();
    match action {
        AppsAction::Create { name } => {
            let app = audited(store, pepper, "app.create", &name, || {
                store.create_app(&name, now)
            })?;
            println!("created application {} ({})", app.name, app.id);
        }
        AppsAction::List => {
            for a in store.apps()? {
                println!(
                    "{}\t{}\t{}",
                    a.name,
                    if a.enabled { "enabled" } else { "disabled" },
                    a.id
                );
            }
        }
        AppsAction::Disable { name, .. } => {
            audited(store, pepper, "app.disable", &name, || {
                store.set_app_enabled(&name, false)
            })?;
            println!("disabled {name}: its keys are refused from the next request");
        }
        AppsAction::Enable { name, .. } => {
            audited(store, pepper, "app.enable", &name, || {
                store.set_app_enabled(&name, true)
            })?;
            println!("enabled {name}");
        }
        AppsAction::BindCert { name, san } => {
            // DNS names are compared in lower case, URIs exactly.
            let san = if san.contains(':') {
                san
            } else {
                san.to_ascii_lowercase()
            };
            audited(store, pepper, "app.bind-cert", &san, || {
                store.bind_certificate(&name, &san, now)
            })?;
            println!("client certificates naming {san} now identify {name}");
        }
        AppsAction::UnbindCert { san } => {
            audited(store, pepper, "app.unbind-cert", &san, || {
                store.unbind_certificate(&san)
            })?;
            println!("{san} no longer identifies an application");
        }
        AppsAction::Certs => {
            for (san, app) in store.certificate_bindings()? {
                println!("{san}\t{app}");
            }
        }
    }
    Ok(())
}

fn keys(store: &dyn Store, pepper: &Pepper, action: KeysAction) -> Result<(), StoreError> {
    let now = portcullis_gateway::clock::now();
    match action {
        KeysAction::Issue { app } => {
            let (id, key) = audited(store, pepper, "key.issue", &app, || {
                apikeys::issue(store, pepper, &app, now)
            })?;
            println!("key id {id} for {app}; shown once, store it now:");
            println!("{key}");
        }
        KeysAction::Rotate { app, overlap_s } => {
            let (id, key) = audited(store, pepper, "key.rotate", &app, || {
                apikeys::rotate(store, pepper, &app, overlap_s, now)
            })?;
            println!("key id {id} for {app}; older keys stay valid for {overlap_s} s. Shown once:");
            println!("{key}");
        }
        KeysAction::Revoke { id, .. } => {
            audited(store, pepper, "key.revoke", &id, || {
                store.revoke_key(&id, now)
            })?;
            println!("revoked key {id}");
        }
        KeysAction::List { app } => {
            let app_id = app
                .map(|a| store.app_by_name(&a))
                .transpose()?
                .map(|a| a.id);
            let names: std::collections::HashMap<String, String> =
                store.apps()?.into_iter().map(|a| (a.id, a.name)).collect();
            for k in store.keys(app_id.as_deref())? {
                print_key(
                    &k.id,
                    names.get(&k.app_id).map_or("?", String::as_str),
                    (k.revoked_at, k.expires_at),
                    now,
                );
            }
        }
    }
    Ok(())
}

/// One line of `keys list`: id, application, state.
fn print_key(id: &str, app: &str, (revoked_at, expires_at): (Option<i64>, Option<i64>), now: i64) {
    let state = match (revoked_at, expires_at) {
        (Some(_), _) => "revoked".to_owned(),
        (None, Some(e)) if e <= now => "expired".to_owned(),
        (None, Some(e)) => format!("expires in {} s", e - now),
        (None, None) => "active".to_owned(),
    };
    println!("{id}\t{app}\t{state}");
}

/// Loads and validates a config, printing every problem with its field path.
fn load_config(path: &Path) -> Result<portcullis_config::Config, ExitCode> {
    portcullis_config::load(path).map_err(|e| {
        eprintln!("{}: invalid config", path.display());
        for fe in e.field_errors() {
            eprintln!("  error: {fe}");
        }
        ExitCode::from(1)
    })
}

/// Loads and fully builds a config (TLS files, keys, routes, upstreams),
/// printing every problem with its field path.
fn load(path: &Path) -> Result<(portcullis_config::Config, Gateway), ExitCode> {
    let config = load_config(path)?;
    match Gateway::build(&config) {
        Ok(g) => Ok((config, g)),
        Err(e) => {
            eprintln!("{}: invalid config", path.display());
            eprintln!("  error: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn check(path: &Path) -> ExitCode {
    let (config, _gateway) = match load(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    println!("{}: valid", path.display());
    let mut weakened = config.weakenings();
    weakened.extend(portcullis_gateway::tls::certificate_findings(&config));
    if weakened.is_empty() {
        println!("no weakened defaults");
    } else {
        println!("weakened defaults ({}):", weakened.len());
        for w in weakened {
            println!("  warning: {}: {}", w.path, w.message);
        }
    }
    ExitCode::SUCCESS
}

fn run(path: &Path) -> ExitCode {
    let (config, gateway) = match load(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    for w in config
        .weakenings()
        .into_iter()
        .chain(portcullis_gateway::tls::certificate_findings(&config))
    {
        tracing::warn!(field = %w.path, "weakened default: {}", w.message);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        rt.worker_threads(n);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let running = match gateway.reloadable_from(path).start().await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(1);
            }
        };
        for (name, addr) in running.addrs() {
            tracing::info!(listener = %name, %addr, "ready");
        }
        wait_for_stop().await;
        tracing::info!("stopping: finishing in-flight requests");
        running.shutdown(Duration::from_secs(10)).await;
        ExitCode::SUCCESS
    })
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
