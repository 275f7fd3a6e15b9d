//! Real Redis and PostgreSQL servers for tests: installed by the test
//! script, started on loopback ephemeral ports in a temporary directory,
//! stopped when dropped.

use crate::rand_suffix;
use portcullis_gateway::dev::pki::DevCa;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A loopback port free at the time of asking, for a server a test starts
/// in another process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A real `redis-server` on a free loopback port, stopped on drop. The
/// test command installs Redis (Debian package) before the tests run.
pub struct RedisServer {
    pub port: u16,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port)
    }

    /// Starts (again) on `port`, e.g. to test recovery after an outage.
    pub fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server not found: run ./scripts/test.sh, which installs it");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child, dir }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server now (an outage).
    pub fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real PostgreSQL server (Debian package) in a fresh cluster on a free
/// loopback port, with password (SCRAM) authentication; stopped and removed
/// on drop. Run as the `postgres` user when the tests run as root, since
/// PostgreSQL refuses to run as root.
pub struct PostgresServer {
    pub port: u16,
    /// A mode-0600 file holding the password of user `portcullis`.
    pub password_file: PathBuf,
    child: Option<std::process::Child>,
    data: PathBuf,
    run_as: Option<(u32, u32)>,
    _dir: tempfile::TempDir,
}

impl PostgresServer {
    fn bin(name: &str) -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        versions
            .pop()
            .map_or_else(|| PathBuf::from(name), |b| b.join(name))
    }

    /// `(uid, gid)` of the `postgres` account when this process is root.
    fn run_as() -> Option<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata("/proc/self").ok()?.uid() != 0 {
            return None;
        }
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
        let f: Vec<&str> = line.split(':').collect();
        Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
    }

    fn command(&self, program: PathBuf) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new(program);
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c
    }

    /// A new cluster, started on a free port.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A new cluster that also offers TLS with a certificate for 127.0.0.1 from `ca`.
    pub fn start_with_tls(ca: &DevCa) -> Self {
        Self::start_with(Some(ca.issue(&["127.0.0.1"], false).expect("certificate")))
    }

    fn start_with(tls: Option<portcullis_gateway::dev::pki::Issued>) -> Self {
        let run_as = Self::run_as();
        // Under /tmp when the server runs as another user: $TMPDIR may sit
        // in a directory that user cannot enter.
        let dir = match run_as {
            Some(_) => tempfile::tempdir_in("/tmp"),
            None => tempfile::tempdir(),
        }
        .expect("temp dir");
        let password = format!("pw-{}", rand_suffix());
        let server_pw = dir.path().join("server-pw");
        std::fs::write(&server_pw, &password).unwrap();
        let password_file = dir.path().join("client-pw");
        std::fs::write(&password_file, &password).unwrap();
        set_mode(&password_file, 0o600);
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&server_pw, Some(uid), Some(gid)).unwrap();
        }
        let mut server = Self {
            port: std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port(),
            password_file,
            child: None,
            data: dir.path().join("data"),
            run_as,
            _dir: dir,
        };
        let out = server
            .command(Self::bin("initdb"))
            .args([
                "--auth=scram-sha-256",
                "--username=portcullis",
                "--no-sync",
                "--encoding=UTF8",
            ])
            .arg(format!("--pwfile={}", server_pw.display()))
            .arg("-D")
            .arg(&server.data)
            .output()
            .expect("initdb not found: run ./scripts/test.sh, which installs PostgreSQL");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(id) = tls {
            // In the data directory, owned by the server's user, mode 0600.
            let (cert, key) = (
                server.data.join("server.crt"),
                server.data.join("server.key"),
            );
            std::fs::write(&cert, &id.cert_pem).unwrap();
            std::fs::write(&key, &id.key_pem).unwrap();
            set_mode(&key, 0o600);
            if let Some((uid, gid)) = run_as {
                for f in [&cert, &key] {
                    std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
                }
            }
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(server.data.join("postgresql.conf"))
                .unwrap();
            std::io::Write::write_all(&mut conf, b"ssl = on\n").unwrap();
        }
        server.start_again();
        server
    }

    /// Starts the server (again, after [`Self::stop`]) on the same port and data.
    pub fn start_again(&mut self) {
        let child = self
            .command(Self::bin("postgres"))
            .arg("-D")
            .arg(&self.data)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
            ])
            .args(["-p", &self.port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("postgres not found: run ./scripts/test.sh, which installs PostgreSQL");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // Ready means accepting sessions, not just listening (`starting up`).
        let ready = || {
            std::process::Command::new(Self::bin("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        };
        while !ready() {
            assert!(
                std::time::Instant::now() < deadline,
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// A `shared_state.postgres` section for this server.
    pub fn yaml(&self) -> String {
        format!(
            "  postgres: {{ host: 127.0.0.1, port: {}, dbname: postgres, user: portcullis, password_file: {} }}\n",
            self.port,
            self.password_file.display()
        )
    }

    /// The model of [`Self::yaml`], for opening the store directly.
    pub fn config(&self) -> portcullis_config::Postgres {
        portcullis_config::Postgres {
            host: "127.0.0.1".into(),
            port: self.port,
            dbname: "postgres".into(),
            user: "portcullis".into(),
            password_file: Some(self.password_file.clone()),
            ca: None,
            connect_timeout: Duration::from_secs(2),
            resync: Duration::from_secs(30),
            plaintext_remote: false,
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
