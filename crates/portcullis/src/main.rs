//! `portcullis`: the gateway, its config checker and the quickstart demo.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

/// mimalloc: the request path allocates many small, short-lived objects
/// (headers, JSON values); measured faster than the system allocator in
/// bench/ S1 and S6.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin_commands;
mod audit_command;
mod init;
mod inventory;

use admin_commands::{admin, admin_api, admins, apps, apps_remote, keys, keys_remote, outcome};
use audit_command::{ProbeArgs, audit};
mod quickstart;
mod remote;

use clap::{Parser, Subcommand};
use portcullis_gateway::Gateway;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `portcullis --version`: the release and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PORTCULLIS_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "portcullis",
    version = VERSION,
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
    /// Write a commented config for your own API from its OpenAPI document:
    /// routes and security from the document, TODOs for what it cannot say.
    Init {
        /// The API's OpenAPI 3.0/3.1 document.
        #[arg(long)]
        openapi: PathBuf,
        /// The service behind the gateway, e.g. https://orders.internal:8443.
        #[arg(long)]
        upstream: Option<String>,
        /// Where to write the config (never overwritten).
        #[arg(long, short, default_value = "gateway.yaml")]
        output: PathBuf,
    },
    /// Print the config's JSON Schema (for editors and CI checks).
    Schema,
    /// Development only (deploy/compose.yaml): write a development PKI.
    #[command(hide = true)]
    DevPki {
        #[arg(long)]
        dir: PathBuf,
        /// NAME=SAN[,SAN…]: a server certificate.
        #[arg(long = "server")]
        servers: Vec<String>,
        /// NAME: a client certificate.
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Copy a mounted secret's files, mode 0600, owned by this user (the
    /// Helm chart's init container: private keys must not be group-readable).
    #[command(hide = true)]
    CopySecrets { from: PathBuf, to: PathBuf },
    /// Development only (deploy/compose.yaml): serve the demo orders API.
    #[command(hide = true)]
    DemoBackend {
        #[arg(long)]
        bind: std::net::SocketAddr,
        #[arg(long)]
        pki: PathBuf,
        #[arg(long)]
        name: String,
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

/// Logs go to standard error (standard output is the commands' own),
/// coloured only for a person at a terminal, never in files or pipes.
fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Exit codes: 0 success, 1 invalid config or failed start, 2 usage.
fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis_gateway::admin::process::set_build_info(
        env!("CARGO_PKG_VERSION"),
        env!("PORTCULLIS_COMMIT"),
    );
    init_logs();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => run(&config),
        Command::Quickstart { data_dir, port } => quickstart::main(&data_dir, port),
        Command::Init {
            openapi,
            upstream,
            output,
        } => init::main(&openapi, upstream.as_deref(), &output),
        Command::DevPki {
            dir,
            servers,
            clients,
        } => quickstart::container::pki(&dir, &servers, &clients),
        Command::CopySecrets { from, to } => quickstart::container::copy_secrets(&from, &to),
        Command::DemoBackend { bind, pki, name } => {
            quickstart::container::backend(bind, &pki, &name)
        }
        Command::Schema => {
            println!("{:#}", portcullis_config::json_schema::json_schema());
            ExitCode::SUCCESS
        }
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
    let grace = config.shutdown_grace;
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
        tracing::info!(
            grace_s = grace.as_secs(),
            "stopping: readiness failed, finishing in-flight requests"
        );
        running.shutdown(grace).await;
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
