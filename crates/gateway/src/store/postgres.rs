//! The shared store on PostgreSQL (INPUT-10, AUTHZ-05): the same tables, migrations and bound
//! parameters as the embedded SQLite store, for several gateway instances.
//!
//! Every table has a statement trigger that calls `pg_notify` on the
//! `portcullis_store` channel, so a change made through any instance, the
//! CLI or plain SQL reaches every listening instance when it commits
//! (LISTEN/NOTIFY is transactional: no notice for a rolled-back change, no
//! change without its notice). Each instance also re-reads everything
//! periodically (`resync_s`) and after its listening connection reconnects,
//! so a missed notice cannot leave it stale.
//!
//! The `postgres` client drives its own small runtime; each call therefore
//! runs on a short-lived scoped thread, never on a tokio worker, and the
//! client is dropped off the runtime too.

use crate::store::model::{
    Admin, Application, AuditLog, AuditRow, ChainMac, ChangeFeed, KeyRecord, Revocation, Snapshot,
    Store, StoreError, decode_head, encode_head, same_check,
};
use crate::store::sql;
use portcullis_config::Postgres;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Row};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The LISTEN/NOTIFY channel every change is announced on.
pub const CHANNEL: &str = "portcullis_store";

/// Serialises migrations between instances starting at once.
const MIGRATION_LOCK: i64 = 0x706f_7274_6375;

/// The same migrations as SQLite's, in PostgreSQL's dialect, plus the
/// change triggers. Applied in order; `portcullis_schema.version` is the
/// count applied.
const MIGRATIONS: &[&str] = &[
    "CREATE FUNCTION portcullis_changed() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN PERFORM pg_notify('portcullis_store', TG_TABLE_NAME); RETURN NULL; END $$;
    CREATE TABLE applications (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        enabled BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES applications(id),
        mac BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT
    );
    CREATE TABLE token_revocations (
        issuer TEXT NOT NULL,
        jti TEXT,
        subject TEXT,
        revoked_before BIGINT,
        expires_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX token_revocations_jti ON token_revocations(issuer, jti) WHERE jti IS NOT NULL;
    CREATE TRIGGER applications_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON applications
        FOR EACH STATEMENT EXECUTE FUNCTION portcullis_changed();
    CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
        FOR EACH STATEMENT EXECUTE FUNCTION portcullis_changed();
    CREATE TRIGGER token_revocations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON token_revocations
        FOR EACH STATEMENT EXECUTE FUNCTION portcullis_changed();",
    "CREATE TABLE app_certificates (
        san TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES applications(id),
        created_at BIGINT NOT NULL
    );
    CREATE TRIGGER app_certificates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON app_certificates
        FOR EACH STATEMENT EXECUTE FUNCTION portcullis_changed();",
    "CREATE TABLE store_meta (
        name TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );",
    "CREATE TABLE admins (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        mac BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        disabled_at BIGINT
    );
    CREATE TABLE kill_switches (
        target TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        entry TEXT NOT NULL,
        mac BYTEA NOT NULL
    );
    CREATE TRIGGER kill_switches_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kill_switches
        FOR EACH STATEMENT EXECUTE FUNCTION portcullis_changed();",
];

/// Serialises audit-log appends between instances.
const AUDIT_LOCK: i64 = 0x706f_7274_6175;

/// How to reach the server: settings, TLS and the password (never logged).
#[derive(Clone)]
struct Connector {
    config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl Connector {
    fn new(pg: &Postgres) -> Result<Self, StoreError> {
        let mut config = postgres::Config::new();
        config
            .host(&pg.host)
            .port(pg.port)
            .dbname(&pg.dbname)
            .user(&pg.user)
            .application_name("portcullis")
            .connect_timeout(pg.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            // A statement that hangs must not hold the store (or a request) forever.
            .options("-c statement_timeout=5000");
        if let Some(file) = &pg.password_file {
            let shown = format!("shared_state.postgres.password_file: {}", file.display());
            crate::tls::check_key_permissions(file)
                .map_err(|e| StoreError::Setup(format!("{shown}: {e}")))?;
            let text = std::fs::read_to_string(file)
                .map_err(|e| StoreError::Setup(format!("{shown}: {}", e.kind())))?;
            config.password(text.trim_end_matches(['\r', '\n']));
        }
        let tls = match &pg.ca {
            Some(ca) => {
                config.ssl_mode(postgres::config::SslMode::Require);
                let client = crate::tls::client_config(ca)
                    .map_err(|e| StoreError::Setup(format!("shared_state.postgres.ca: {e}")))?;
                Some(MakeRustlsConnect::new(client))
            }
            None => {
                config.ssl_mode(postgres::config::SslMode::Disable);
                None
            }
        };
        Ok(Self { config, tls })
    }

    /// Connects; call off the tokio runtime.
    fn connect(&self) -> Result<Client, StoreError> {
        Ok(match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        })
    }
}

/// Runs `f` on a fresh thread: the `postgres` client blocks on its own
/// runtime, which must never happen on a tokio worker.
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, StoreError> + Send) -> Result<T, StoreError> {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(StoreError::Setup("store call panicked".into())))
    })
}

/// The PostgreSQL store. One connection, re-established when it drops.
pub struct PgStore {
    connector: Connector,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The client owns a runtime, which cannot be dropped inside another.
        if let Some(client) = self
            .client
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = std::thread::spawn(move || drop(client));
        }
    }
}

impl PgStore {
    /// Connects and applies the migrations this database lacks.
    pub fn open(pg: &Postgres) -> Result<Self, StoreError> {
        let store = Self {
            connector: Connector::new(pg)?,
            client: Mutex::new(None),
        };
        store.with(|c| {
            let mut tx = c.transaction()?;
            // The lock first: two instances creating the table at once race
            // even with IF NOT EXISTS.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS portcullis_schema (version INTEGER NOT NULL)",
            )?;
            let version: i32 = match tx.query_opt("SELECT version FROM portcullis_schema", &[])? {
                Some(row) => row.get(0),
                None => {
                    tx.execute("INSERT INTO portcullis_schema (version) VALUES (0)", &[])?;
                    0
                }
            };
            if version as usize > MIGRATIONS.len() {
                return Err(StoreError::Setup(format!(
                    "the database is at schema version {version}, newer than this gateway knows ({}): upgrade the gateway",
                    MIGRATIONS.len()
                )));
            }
            for m in &MIGRATIONS[version as usize..] {
                tx.batch_execute(m)?;
            }
            tx.execute(
                "UPDATE portcullis_schema SET version = $1",
                &[&(MIGRATIONS.len() as i32)],
            )?;
            tx.commit()?;
            Ok(())
        })?;
        Ok(store)
    }

    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut guard = self.client.lock().unwrap_or_else(PoisonError::into_inner);
            if guard.as_ref().is_none_or(Client::is_closed) {
                *guard = Some(self.connector.connect()?);
            }
            let client = guard.as_mut().expect("connected above");
            let result = f(client);
            if client.is_closed() {
                *guard = None;
            }
            result
        })
    }

    /// Runs one statement that must change exactly one row, else `missing`.
    fn change_one(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
        missing: StoreError,
    ) -> Result<(), StoreError> {
        match self.with(|c| Ok(c.execute(sql, params)?))? {
            0 => Err(missing),
            _ => Ok(()),
        }
    }
}

fn unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn app_row(r: &Row) -> Application {
    Application {
        id: r.get(0),
        name: r.get(1),
        enabled: r.get(2),
        created_at: r.get(3),
    }
}

fn admin_row(r: &Row) -> Admin {
    Admin {
        id: r.get(0),
        name: r.get(1),
        role: r.get(2),
        mac: r.get(3),
        created_at: r.get(4),
        disabled_at: r.get(5),
    }
}

fn key_row(r: &Row) -> KeyRecord {
    KeyRecord {
        id: r.get(0),
        app_id: r.get(1),
        mac: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
        revoked_at: r.get(5),
    }
}

impl Store for PgStore {
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.with(|c| {
            // One consistent view across the four tables.
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut s = Snapshot::default();
            for r in tx.query(sql::APPS, &[])? {
                let a = app_row(&r);
                s.apps.insert(a.id.clone(), a);
            }
            for r in tx.query(sql::ACTIVE_KEYS, &[])? {
                let k = key_row(&r);
                s.keys.insert(k.id.clone(), k);
            }
            for r in tx.query(sql::REVOCATIONS, &[])? {
                s.add_revocation(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            }
            for r in tx.query(sql::KILL_SWITCHES, &[])? {
                s.kill_switches.insert(r.get(0), r.get(1));
            }
            for r in tx.query(sql::CERT_APPS, &[])? {
                s.cert_apps.insert(r.get(0), r.get(1));
            }
            tx.commit()?;
            Ok(s)
        })
    }

    fn create_admin(&self, a: &Admin) -> Result<(), StoreError> {
        self.with(|c| {
            match c.execute(
                sql::CREATE_ADMIN,
                &[
                    &a.id,
                    &a.name,
                    &a.role,
                    &a.mac,
                    &a.created_at,
                    &a.disabled_at,
                ],
            ) {
                Ok(_) => Ok(()),
                Err(e) if unique_violation(&e) => Err(StoreError::AdminExists(a.name.clone())),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn admin(&self, id: &str) -> Result<Option<Admin>, StoreError> {
        self.with(|c| Ok(c.query_opt(sql::ADMIN, &[&id])?.map(|r| admin_row(&r))))
    }

    fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        self.with(|c| Ok(c.query(sql::ADMINS, &[])?.iter().map(admin_row).collect()))
    }

    fn set_kill_switch(
        &self,
        target: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(sql::SET_KILL_SWITCH, &[&target, &reason, &actor, &now])?;
            Ok(())
        })
    }

    fn clear_kill_switch(&self, target: &str) -> Result<(), StoreError> {
        self.change_one(
            sql::CLEAR_KILL_SWITCH,
            &[&target],
            StoreError::NoSuchKillSwitch(target.to_owned()),
        )
    }

    fn append_audit(&self, entry: &str, chain: ChainMac<'_>) -> Result<i64, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])?;
            let (prev_seq, prev_mac): (i64, Vec<u8>) = tx
                .query_opt(sql::AUDIT_HEAD_ROW, &[])?
                .map_or((0, Vec::new()), |r| (r.get(0), r.get(1)));
            let seq = prev_seq + 1;
            let mac = chain(&prev_mac, seq, entry);
            tx.execute(sql::APPEND_AUDIT, &[&seq, &entry, &mac])?;
            tx.execute(sql::SET_AUDIT_HEAD, &[&encode_head(seq, &mac)])?;
            tx.commit()?;
            Ok(seq)
        })
    }

    fn audit_rows(&self) -> Result<AuditLog, StoreError> {
        self.with(|c| {
            let rows = c
                .query(sql::AUDIT_ROWS, &[])?
                .iter()
                .map(|r| AuditRow {
                    seq: r.get(0),
                    entry: r.get(1),
                    mac: r.get(2),
                })
                .collect();
            let head: Option<Vec<u8>> = c.query_opt(sql::AUDIT_HEAD, &[])?.map(|r| r.get(0));
            Ok((rows, head.as_deref().and_then(decode_head)))
        })
    }

    fn changes(&self) -> Result<Box<dyn ChangeFeed>, StoreError> {
        Ok(Box::new(PgFeed {
            connector: self.connector.clone(),
            client: None,
        }))
    }

    fn pepper_check(&self, check: &[u8]) -> Result<(), StoreError> {
        let stored: Vec<u8> = self.with(|c| {
            c.execute(sql::SET_PEPPER_CHECK, &[&check])?;
            Ok(c.query_one(sql::PEPPER_CHECK, &[])?.get(0))
        })?;
        same_check(&stored, check)
    }

    fn create_app(&self, name: &str, now: i64) -> Result<Application, StoreError> {
        let app = Application {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            enabled: true,
            created_at: now,
        };
        self.with(|c| {
            match c.execute(
                "INSERT INTO applications (id, name, enabled, created_at) VALUES ($1, $2, TRUE, $3)",
                &[&app.id, &app.name, &app.created_at],
            ) {
                Ok(_) => Ok(()),
                Err(e) if unique_violation(&e) => Err(StoreError::AppExists(name.to_owned())),
                Err(e) => Err(e.into()),
            }
        })?;
        Ok(app)
    }

    fn set_app_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        self.change_one(
            sql::SET_APP_ENABLED,
            &[&enabled, &name],
            StoreError::NoSuchApp(name.to_owned()),
        )
    }

    fn apps(&self) -> Result<Vec<Application>, StoreError> {
        self.with(|c| {
            Ok(c.query(sql::APPS_BY_NAME, &[])?
                .iter()
                .map(app_row)
                .collect())
        })
    }

    fn app_by_name(&self, name: &str) -> Result<Application, StoreError> {
        self.with(|c| Ok(c.query_opt(sql::APP_BY_NAME, &[&name])?))?
            .map(|r| app_row(&r))
            .ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))
    }

    fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                sql::INSERT_KEY,
                &[
                    &k.id,
                    &k.app_id,
                    &k.mac,
                    &k.created_at,
                    &k.expires_at,
                    &k.revoked_at,
                ],
            )?;
            Ok(())
        })
    }

    fn keys(&self, app_id: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT id, app_id, mac, created_at, expires_at, revoked_at FROM api_keys
                 WHERE $1::TEXT IS NULL OR app_id = $1 ORDER BY created_at",
                &[&app_id],
            )?
            .iter()
            .map(key_row)
            .collect())
        })
    }

    fn revoke_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.change_one(
            sql::REVOKE_KEY,
            &[&now, &id],
            StoreError::NoSuchKey(id.to_owned()),
        )
    }

    fn expire_keys(&self, app_id: &str, at: i64, except: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(sql::EXPIRE_KEYS, &[&at, &app_id, &except])?;
            Ok(())
        })
    }

    fn revoke_token(&self, r: &Revocation, now: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                sql::REVOKE_TOKEN,
                &[
                    &r.issuer,
                    &r.jti,
                    &r.subject,
                    &r.revoked_before,
                    &r.expires_at,
                    &now,
                ],
            )?;
            Ok(())
        })
    }

    fn purge_revocations(&self, now: i64) -> Result<usize, StoreError> {
        self.with(|c| Ok(c.execute(sql::PURGE_REVOCATIONS, &[&now])? as usize))
    }

    fn bind_certificate(&self, app: &str, san: &str, now: i64) -> Result<(), StoreError> {
        let app = self.app_by_name(app)?;
        self.with(
            |c| match c.execute(sql::BIND_CERT, &[&san, &app.id, &now]) {
                Ok(_) => Ok(()),
                Err(e) if unique_violation(&e) => Err(StoreError::SanBound(san.to_owned())),
                Err(e) => Err(e.into()),
            },
        )
    }

    fn unbind_certificate(&self, san: &str) -> Result<(), StoreError> {
        self.change_one(
            sql::UNBIND_CERT,
            &[&san],
            StoreError::NoSuchBinding(san.to_owned()),
        )
    }

    fn certificate_bindings(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|c| {
            Ok(c.query(sql::CERT_BINDINGS, &[])?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }
}

/// A connection that LISTENs on [`CHANNEL`]; used on the refresher's own
/// thread (never a tokio worker).
struct PgFeed {
    connector: Connector,
    client: Option<Client>,
}

impl ChangeFeed for PgFeed {
    fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let mut c = self.connector.connect()?;
            c.batch_execute("LISTEN portcullis_store")?;
            self.client = Some(c);
            // Whatever happened while not listening is unknown: re-read.
            return Ok(true);
        }
        let client = self.client.as_mut().expect("connected above");
        let mut notifications = client.notifications();
        let first = notifications.timeout_iter(timeout).next();
        let outcome = match first {
            Ok(Some(_)) => {
                // Several commits in a row need one re-read.
                while let Ok(Some(_)) = notifications.iter().next() {}
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        drop(notifications);
        outcome.map_err(|e| {
            self.client = None;
            e.into()
        })
    }
}
