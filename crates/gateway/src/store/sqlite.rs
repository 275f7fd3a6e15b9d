//! The embedded store on SQLite (INPUT-10): one file in the identity data
//! directory, versioned migrations, bound parameters only.

use crate::store::model::{
    Admin, Application, AuditLog, AuditRow, ChainMac, ChangeFeed, KeyRecord, Revocation, Snapshot,
    Store, StoreError, decode_head, encode_head, same_check,
};
use crate::store::sql::{self, Dialect};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// A shared statement in SQLite's dialect.
fn dialect(stmt: &'static str) -> std::borrow::Cow<'static, str> {
    Dialect::Sqlite.render(stmt)
}

/// Migrations, applied in order; the database's `user_version` is the count applied.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE applications (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        enabled INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES applications(id),
        mac BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER
    );
    CREATE TABLE token_revocations (
        issuer TEXT NOT NULL,
        jti TEXT,
        subject TEXT,
        revoked_before INTEGER,
        expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX token_revocations_jti ON token_revocations(issuer, jti) WHERE jti IS NOT NULL;",
    // Certificate-bound applications: a client certificate SAN names one application.
    "CREATE TABLE app_certificates (
        san TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES applications(id),
        created_at INTEGER NOT NULL
    );",
    // Facts about the store itself (the pepper check value).
    "CREATE TABLE store_meta (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );",
    // The control plane: administrators, kill switches, the audit log.
    "CREATE TABLE admins (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        mac BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        disabled_at INTEGER
    );
    CREATE TABLE kill_switches (
        target TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        entry TEXT NOT NULL,
        mac BLOB NOT NULL
    );",
];

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `portcullis.db` in `dir` and migrates it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("portcullis.db");
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// Every table the request path needs, read on `c` (inside one transaction).
    fn read_snapshot(c: &Connection) -> Result<Snapshot, StoreError> {
        let mut s = Snapshot::default();
        let mut q = c.prepare(&dialect(sql::APPS))?;
        for a in q.query_map([], app_row)? {
            let a = a?;
            s.apps.insert(a.id.clone(), a);
        }
        let mut q = c.prepare(&dialect(sql::ACTIVE_KEYS))?;
        for k in q.query_map([], key_row)? {
            let k = k?;
            s.keys.insert(k.id.clone(), k);
        }
        let mut q = c.prepare(&dialect(sql::REVOCATIONS))?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut q = c.prepare(&dialect(sql::KILL_SWITCHES))?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (target, reason) = row?;
            s.kill_switches.insert(target, reason);
        }
        let mut q = c.prepare(&dialect(sql::CERT_APPS))?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (san, app) = row?;
            s.cert_apps.insert(san, app);
        }
        for row in rows {
            let (issuer, jti, subject, before, expires) = row?;
            s.add_revocation(issuer, jti, subject, before, expires);
        }
        Ok(s)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn)
    }
}

fn app_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Application> {
    Ok(Application {
        id: r.get(0)?,
        name: r.get(1)?,
        enabled: r.get::<_, i64>(2)? != 0,
        created_at: r.get(3)?,
    })
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        id: r.get(0)?,
        app_id: r.get(1)?,
        mac: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

fn admin_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Admin> {
    Ok(Admin {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        mac: r.get(3)?,
        created_at: r.get(4)?,
        disabled_at: r.get(5)?,
    })
}

const KEY_COLUMNS: &str = "id, app_id, mac, created_at, expires_at, revoked_at";

impl Store for SqliteStore {
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.with(|conn| {
            // One read transaction: every table is read as of one moment
            // (as PostgreSQL's REPEATABLE READ snapshot), so a key and the
            // application it belongs to never come from different writes.
            let tx = conn.unchecked_transaction()?;
            let s = Self::read_snapshot(&tx)?;
            tx.commit()?;
            Ok(s)
        })
    }

    fn bind_certificate(&self, app: &str, san: &str, now: i64) -> Result<(), StoreError> {
        let app = self.app_by_name(app)?;
        self.with(
            |c| match c.execute(&dialect(sql::BIND_CERT), params![san, app.id, now]) {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::SanBound(san.to_owned()))
                }
                Err(e) => Err(e.into()),
            },
        )
    }

    fn unbind_certificate(&self, san: &str) -> Result<(), StoreError> {
        self.with(|c| {
            if c.execute(&dialect(sql::UNBIND_CERT), params![san])? == 0 {
                Err(StoreError::NoSuchBinding(san.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    fn certificate_bindings(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|c| {
            let mut q = c.prepare(&dialect(sql::CERT_BINDINGS))?;
            Ok(q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?)
        })
    }

    fn create_admin(&self, a: &Admin) -> Result<(), StoreError> {
        self.with(|c| {
            match c.execute(
                &dialect(sql::CREATE_ADMIN),
                params![a.id, a.name, a.role, a.mac, a.created_at, a.disabled_at],
            ) {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::AdminExists(a.name.clone()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn admin(&self, id: &str) -> Result<Option<Admin>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(&dialect(sql::ADMIN), params![id], admin_row)
                .optional()?)
        })
    }

    fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        self.with(|c| {
            let mut q = c.prepare(&dialect(sql::ADMINS))?;
            Ok(q.query_map([], admin_row)?.collect::<Result<_, _>>()?)
        })
    }

    fn set_kill_switch(
        &self,
        target: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                &dialect(sql::SET_KILL_SWITCH),
                params![target, reason, actor, now],
            )?;
            Ok(())
        })
    }

    fn clear_kill_switch(&self, target: &str) -> Result<(), StoreError> {
        self.with(|c| {
            if c.execute(&dialect(sql::CLEAR_KILL_SWITCH), params![target])? == 0 {
                Err(StoreError::NoSuchKillSwitch(target.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    fn append_audit(&self, entry: &str, chain: ChainMac<'_>) -> Result<i64, StoreError> {
        self.with(|c| {
            // IMMEDIATE: the write lock first, so no other appender reads the same head.
            c.execute_batch("BEGIN IMMEDIATE")?;
            let appended = (|| {
                let (prev_seq, prev_mac): (i64, Vec<u8>) = c
                    .query_row(&dialect(sql::AUDIT_HEAD_ROW), [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?
                    .unwrap_or((0, Vec::new()));
                let seq = prev_seq + 1;
                let mac = chain(&prev_mac, seq, entry);
                c.execute(&dialect(sql::APPEND_AUDIT), params![seq, entry, mac])?;
                c.execute(
                    &dialect(sql::SET_AUDIT_HEAD),
                    params![encode_head(seq, &mac)],
                )?;
                Ok::<_, rusqlite::Error>(seq)
            })();
            match appended {
                Ok(seq) => {
                    c.execute_batch("COMMIT")?;
                    Ok(seq)
                }
                Err(e) => {
                    let _ = c.execute_batch("ROLLBACK");
                    Err(e.into())
                }
            }
        })
    }

    fn audit_rows(&self) -> Result<AuditLog, StoreError> {
        self.with(|c| {
            let mut q = c.prepare(&dialect(sql::AUDIT_ROWS))?;
            let rows = q
                .query_map([], |r| {
                    Ok(AuditRow {
                        seq: r.get(0)?,
                        entry: r.get(1)?,
                        mac: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let head: Option<Vec<u8>> = c
                .query_row(&dialect(sql::AUDIT_HEAD), [], |r| r.get(0))
                .optional()?;
            Ok((rows, head.as_deref().and_then(decode_head)))
        })
    }

    fn changes(&self) -> Result<Box<dyn ChangeFeed>, StoreError> {
        // `data_version` changes when *another* connection commits: the feed
        // has its own, so this process's writes count too.
        let conn = Connection::open(&self.path)?;
        let version = conn.pragma_query_value(None, "data_version", |r| r.get(0))?;
        Ok(Box::new(SqliteFeed { conn, version }))
    }

    fn pepper_check(&self, check: &[u8]) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(&dialect(sql::SET_PEPPER_CHECK), params![check])?;
            let stored: Vec<u8> = c.query_row(&dialect(sql::PEPPER_CHECK), [], |r| r.get(0))?;
            same_check(&stored, check)
        })
    }

    fn create_app(&self, name: &str, now: i64) -> Result<Application, StoreError> {
        self.with(|c| {
            let app = Application {
                id: uuid::Uuid::now_v7().to_string(),
                name: name.to_owned(),
                enabled: true,
                created_at: now,
            };
            match c.execute(
                "INSERT INTO applications (id, name, enabled, created_at) VALUES (?1, ?2, 1, ?3)",
                params![app.id, app.name, app.created_at],
            ) {
                Ok(_) => Ok(app),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::AppExists(name.to_owned()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn set_app_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c.execute(
                &dialect(sql::SET_APP_ENABLED),
                params![i64::from(enabled), name],
            )?;
            if n == 0 {
                Err(StoreError::NoSuchApp(name.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    fn apps(&self) -> Result<Vec<Application>, StoreError> {
        self.with(|c| {
            let mut q = c.prepare(&dialect(sql::APPS_BY_NAME))?;
            Ok(q.query_map([], app_row)?.collect::<Result<_, _>>()?)
        })
    }

    fn app_by_name(&self, name: &str) -> Result<Application, StoreError> {
        self.with(|c| {
            c.query_row(&dialect(sql::APP_BY_NAME), params![name], app_row)
                .optional()?
                .ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))
        })
    }

    fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                &dialect(sql::INSERT_KEY),
                params![
                    k.id,
                    k.app_id,
                    k.mac,
                    k.created_at,
                    k.expires_at,
                    k.revoked_at
                ],
            )?;
            Ok(())
        })
    }

    fn keys(&self, app_id: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        self.with(|c| {
            let mut q = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE ?1 IS NULL OR app_id = ?1 ORDER BY created_at"
            ))?;
            Ok(q.query_map(params![app_id], key_row)?.collect::<Result<_, _>>()?)
        })
    }

    fn revoke_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c.execute(&dialect(sql::REVOKE_KEY), params![now, id])?;
            if n == 0 {
                Err(StoreError::NoSuchKey(id.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    fn expire_keys(&self, app_id: &str, at: i64, except: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(&dialect(sql::EXPIRE_KEYS), params![at, app_id, except])?;
            Ok(())
        })
    }

    fn revoke_token(&self, r: &Revocation, now: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                &dialect(sql::REVOKE_TOKEN),
                params![
                    r.issuer,
                    r.jti,
                    r.subject,
                    r.revoked_before,
                    r.expires_at,
                    now
                ],
            )?;
            Ok(())
        })
    }

    fn purge_revocations(&self, now: i64) -> Result<usize, StoreError> {
        self.with(|c| Ok(c.execute(&dialect(sql::PURGE_REVOCATIONS), params![now])?))
    }
}

struct SqliteFeed {
    conn: Connection,
    version: i64,
}

impl ChangeFeed for SqliteFeed {
    fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        std::thread::sleep(timeout);
        let v: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        Ok(std::mem::replace(&mut self.version, v) != v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_data_survives_reopening() {
        // The store contract itself is checked for SQLite and PostgreSQL
        // alike in tests/shared_store.rs.
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.create_app("a", 1).unwrap();
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.apps().unwrap().len(), 1);
        let version: i64 = s
            .with(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn store_code_uses_bound_parameters_only() {
        // INPUT-10: every statement is a literal; input reaches SQL only as
        // ?N / $N parameters.
        for (file, src) in [
            ("store/sqlite.rs", include_str!("sqlite.rs")),
            ("store/postgres.rs", include_str!("postgres.rs")),
            ("store/sql.rs", include_str!("sql.rs")),
        ] {
            // The code, not its tests (which hold examples of what is refused).
            let code = src.split("#[cfg(test)]").next().unwrap();
            assert!(code.contains("fn ") && code.contains("SELECT "), "{file}");
            let found = interpolated_sql(code);
            assert!(
                found.is_empty(),
                "{file}: SQL built by interpolation: {found:?}"
            );
        }
    }

    /// The scan sees a `format!` whole, however rustfmt breaks its lines.
    #[test]
    fn the_scan_sees_sql_across_lines() {
        let formatted = "let q = c.execute(\n    &format!(\n        \"DELETE FROM app_certificates WHERE san = '{san}'\",\n    ),\n    [],\n);";
        assert_eq!(interpolated_sql(formatted).len(), 1);
        let argument =
            "c.prepare(&format!(\n    \"SELECT * FROM keys WHERE id = '{}'\",\n    id\n))";
        assert_eq!(interpolated_sql(argument).len(), 1);
        let constant = "c.prepare(&format!(\n    \"SELECT {KEY_COLUMNS} FROM api_keys\"\n))";
        assert!(interpolated_sql(constant).is_empty());
        assert!(interpolated_sql("format!(\"{shown}: {e}\")").is_empty());
    }

    /// Every `format!` invocation (read to its closing parenthesis, across
    /// lines and past string literals) that holds SQL and interpolates
    /// anything but the `KEY_COLUMNS` constant.
    fn interpolated_sql(src: &str) -> Vec<String> {
        const SQL: [&str; 5] = ["SELECT ", "INSERT ", "UPDATE ", "DELETE ", " WHERE "];
        let mut found = Vec::new();
        let mut rest = src;
        while let Some(at) = rest.find("format!(") {
            let call = &rest[at + "format!(".len()..];
            let (mut depth, mut in_str, mut escaped, mut end) = (1usize, false, false, call.len());
            for (n, ch) in call.char_indices() {
                match (in_str, escaped, ch) {
                    (true, true, _) => escaped = false,
                    (true, false, '\\') => escaped = true,
                    (true, false, '"') | (false, _, '"') => in_str = !in_str,
                    (false, _, '(') => depth += 1,
                    (false, _, ')') => {
                        depth -= 1;
                        if depth == 0 {
                            end = n;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let args = &call[..end];
            let upper = args.to_ascii_uppercase();
            let is_sql = SQL.iter().any(|k| upper.contains(k));
            let is_comment = src[..src.len() - rest.len() + at]
                .rsplit('\n')
                .next()
                .is_some_and(|l| l.trim_start().starts_with("//"));
            if is_sql && !is_comment {
                let stripped = args.replace("{KEY_COLUMNS}", "");
                if stripped.contains('{') || stripped.contains(',') {
                    found.push(args.trim().to_owned());
                }
            }
            rest = &call[end.min(call.len())..];
        }
        found
    }
}
