//! What `deploy/compose.yaml` runs besides gateways, from the same image:
//! `dev-pki` writes a development PKI (and the identity pepper every
//! instance must share) into a volume, and `demo-backend` serves the
//! quickstart's demo orders API over mutual TLS. Development only: hidden
//! from `--help`, and the CA is labelled as such.

use portcullis_gateway::dev::backend::{BackendServer, mtls_from_pem};
use portcullis_gateway::dev::pki::DevCa;
use portcullis_gateway::files::write_private;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

/// `dev-pki`: `ca.pem`, `ca.crl`, `<name>.pem`/`.key` per server
/// (`name=SAN,SAN`) and client name, `identity/` with a fresh pepper, and
/// `postgres-password` (0600) with a copy PostgreSQL's image can read.
/// Leaves an existing PKI as it is, so a restart keeps its certificates.
pub fn pki(dir: &Path, servers: &[String], clients: &[String]) -> ExitCode {
    if dir.join("ca.pem").exists() {
        println!("{}: PKI present, left as it is", dir.display());
        return ExitCode::SUCCESS;
    }
    match write_pki(dir, servers, clients) {
        Ok(()) => {
            println!("{}: development PKI written", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dev-pki: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn write_pki(dir: &Path, servers: &[String], clients: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ca = DevCa::new("Portcullis Compose Development CA")?;
    let next = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    std::fs::write(dir.join("ca.crl"), ca.crl(&[], next)?)?;
    for spec in servers {
        let (name, sans) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--server {spec}: write NAME=SAN[,SAN…]"))?;
        let sans: Vec<&str> = sans.split(',').collect();
        ca.issue_to(dir, name, &sans, false)?;
    }
    for name in clients {
        ca.issue_to(dir, name, &[name.as_str()], true)?;
    }
    portcullis_gateway::store::pepper::Pepper::load_or_create(&dir.join("identity"))?;
    let mut secret = [0u8; 24];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut secret)
        .map_err(|_| anyhow::anyhow!("no randomness for the PostgreSQL password"))?;
    let password = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    };
    write_private(&dir.join("postgres-password"), password.as_bytes())?;
    // The PostgreSQL image reads its password file as its own user.
    std::fs::write(dir.join("postgres-password.server"), &password)?;
    // Last: its presence marks a complete PKI.
    std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
    Ok(())
}

/// `demo-backend`: the quickstart's orders API on `bind`, over TLS with
/// `<pki>/<name>.pem`, client certificates from `<pki>/ca.pem` required.
pub fn backend(bind: SocketAddr, pki: &Path, name: &str) -> ExitCode {
    let serve = async {
        let read = |f: String| std::fs::read_to_string(pki.join(f));
        let tls = mtls_from_pem(
            &read("ca.pem".into())?,
            &read(format!("{name}.pem"))?,
            &read(format!("{name}.key"))?,
        )?;
        let server = BackendServer::start(bind, tls, super::demo_handler()).await?;
        println!("demo backend on {}", server.addr);
        tokio::signal::ctrl_c().await?;
        anyhow::Ok(())
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(serve));
    match rt {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-backend: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `copy-secrets FROM TO`: each file of a mounted secret (Kubernetes
/// writes them owned by root, readable by the pod's group) copied into `TO`
/// owned by this user with mode 0600, the only mode the gateway accepts for
/// private keys (TLS-07). The Helm chart runs it as an init container.
pub fn copy_secrets(from: &Path, to: &Path) -> ExitCode {
    let copy = || -> std::io::Result<usize> {
        std::fs::create_dir_all(to)?;
        let mut n = 0;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let name = entry.file_name();
            // Kubernetes keeps its versions in `..data` and `..<time>` directories.
            if name.to_string_lossy().starts_with("..") || !entry.path().is_file() {
                continue;
            }
            write_private(&to.join(&name), &std::fs::read(entry.path())?)?;
            n += 1;
        }
        Ok(n)
    };
    match copy() {
        Ok(n) => {
            println!(
                "copied {n} file(s) from {} to {} (mode 0600)",
                from.display(),
                to.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("copy-secrets: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_copied_private_and_kubernetes_bookkeeping_skipped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("secret"), dir.path().join("keys"));
        std::fs::create_dir_all(from.join("..2026_12_08")).unwrap();
        std::fs::write(from.join("gateway.key"), "KEY").unwrap();
        std::fs::set_permissions(
            from.join("gateway.key"),
            std::fs::Permissions::from_mode(0o440),
        )
        .unwrap();
        std::fs::write(from.join("..2026_12_08/gateway.key"), "OLD").unwrap();
        assert_eq!(
            super::copy_secrets(&from, &to),
            std::process::ExitCode::SUCCESS
        );
        assert_eq!(
            std::fs::read_to_string(to.join("gateway.key")).unwrap(),
            "KEY"
        );
        let mode = std::fs::metadata(to.join("gateway.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&to).unwrap().count(), 1);
    }

    #[test]
    fn the_pki_is_complete_and_its_keys_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let code = super::pki(
            &pki,
            &["gateway=localhost,gateway-1".into()],
            &["gateway-client".into()],
        );
        assert_eq!(code, std::process::ExitCode::SUCCESS);
        for f in [
            "ca.pem",
            "ca.crl",
            "gateway.pem",
            "gateway-client.pem",
            "identity/pepper.key",
        ] {
            assert!(pki.join(f).exists(), "{f}");
        }
        for key in ["gateway.key", "gateway-client.key", "postgres-password"] {
            let mode = std::fs::metadata(pki.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is private");
        }
        let ca = std::fs::read(pki.join("ca.pem")).unwrap();
        // A second run keeps the first PKI.
        super::pki(&pki, &["other=x".into()], &[]);
        assert_eq!(std::fs::read(pki.join("ca.pem")).unwrap(), ca);
        assert!(!pki.join("other.pem").exists());
    }
}
