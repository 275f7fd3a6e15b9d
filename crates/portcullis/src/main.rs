//! `portcullis`: the gateway, its config checker and the quickstart demo.

mod quickstart;

use clap::{Parser, Subcommand};
use portcullis_gateway::Gateway;
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
    }
}

/// Loads and fully builds a config (TLS files, keys, routes, upstreams),
/// printing every problem with its field path.
fn load(path: &Path) -> Result<(portcullis_config::Config, Gateway), ExitCode> {
    let config = match portcullis_config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid config", path.display());
            for fe in e.field_errors() {
                eprintln!("  error: {fe}");
            }
            return Err(ExitCode::from(1));
        }
    };
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
    let weakened = config.weakenings();
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
    for w in config.weakenings() {
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
        let running = match gateway.start().await {
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
