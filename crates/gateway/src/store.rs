//! The store: applications, API key digests and token revocations (INPUT-10).
//!
//! Embedded default: one SQLite file in the identity data directory, with
//! versioned migrations and bound parameters only (no SQL is ever built from
//! input). The request path never touches it: it reads an in-memory
//! [`Snapshot`] that is rebuilt whenever the database changes, whoever
//! changed it (this process or the CLI). Behind the [`Store`] trait so a
//! PostgreSQL implementation can follow.

use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no application named `{0}`")]
    NoSuchApp(String),
    #[error("an application named `{0}` already exists")]
    AppExists(String),
    #[error("no API key with id `{0}`")]
    NoSuchKey(String),
    #[error("certificate name `{0}` is already bound to an application")]
    SanBound(String),
    #[error("no application is bound to certificate name `{0}`")]
    NoSuchBinding(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Public key id (the prefix embedded in the key), safe to show and log.
    pub id: String,
    pub app_id: String,
    /// HMAC-SHA256 of the whole key under the pepper.
    pub mac: Vec<u8>,
    pub created_at: i64,
    /// Unix seconds after which the key is no longer accepted.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A token revocation: one token (`jti`) or every token of a subject issued before a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub issuer: String,
    pub jti: Option<String>,
    pub subject: Option<String>,
    /// With `subject`: tokens with `iat` before this are revoked.
    pub revoked_before: Option<i64>,
    /// When the entry may be dropped (the covered tokens have expired).
    pub expires_at: i64,
}

/// Everything the request path needs, read in one go.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// By application id.
    pub apps: HashMap<String, Application>,
    /// By key id.
    pub keys: HashMap<String, KeyRecord>,
    /// `(issuer, jti)` → revoked.
    pub revoked_jti: HashMap<(String, String), i64>,
    /// `(issuer, subject)` → tokens issued before this time are revoked.
    pub revoked_before: HashMap<(String, String), i64>,
    /// Client certificate SAN (DNS name or URI) → application id.
    pub cert_apps: HashMap<String, String>,
}

/// Storage of identity data.
pub trait Store: Send + Sync {
    fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// A number that changes whenever any connection changed the data.
    fn version(&self) -> Result<i64, StoreError>;
    fn create_app(&self, name: &str, now: i64) -> Result<Application, StoreError>;
    fn set_app_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError>;
    fn apps(&self) -> Result<Vec<Application>, StoreError>;
    fn app_by_name(&self, name: &str) -> Result<Application, StoreError>;
    fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    fn keys(&self, app_id: Option<&str>) -> Result<Vec<KeyRecord>, StoreError>;
    fn revoke_key(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// Sets the expiry of every live key of an application (rotation overlap).
    fn expire_keys(&self, app_id: &str, at: i64, except: &str) -> Result<(), StoreError>;
    fn revoke_token(&self, r: &Revocation, now: i64) -> Result<(), StoreError>;
    /// Drops revocations whose tokens have all expired.
    fn purge_revocations(&self, now: i64) -> Result<usize, StoreError>;
    /// Client certificates whose SAN is `san` identify application `app`.
    fn bind_certificate(&self, app: &str, san: &str, now: i64) -> Result<(), StoreError>;
    fn unbind_certificate(&self, san: &str) -> Result<(), StoreError>;
    /// `(san, application name)`, by SAN.
    fn certificate_bindings(&self) -> Result<Vec<(String, String)>, StoreError>;
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
];

/// The embedded SQLite store.
pub struct SqliteStore {
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
        let conn = Connection::open(dir.join("portcullis.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
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
            conn: Mutex::new(conn),
        })
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

const KEY_COLUMNS: &str = "id, app_id, mac, created_at, expires_at, revoked_at";

impl Store for SqliteStore {
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.with(|c| {
            let mut s = Snapshot::default();
            let mut q = c.prepare("SELECT id, name, enabled, created_at FROM applications")?;
            for a in q.query_map([], app_row)? {
                let a = a?;
                s.apps.insert(a.id.clone(), a);
            }
            let mut q = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
            ))?;
            for k in q.query_map([], key_row)? {
                let k = k?;
                s.keys.insert(k.id.clone(), k);
            }
            let mut q = c.prepare(
                "SELECT issuer, jti, subject, revoked_before, expires_at FROM token_revocations",
            )?;
            let rows = q.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            let mut q = c.prepare("SELECT san, app_id FROM app_certificates")?;
            for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                let (san, app) = row?;
                s.cert_apps.insert(san, app);
            }
            for row in rows {
                let (issuer, jti, subject, before, expires) = row?;
                if let Some(jti) = jti {
                    s.revoked_jti.insert((issuer.clone(), jti), expires);
                }
                if let (Some(subject), Some(before)) = (subject, before) {
                    let e = s.revoked_before.entry((issuer, subject)).or_insert(before);
                    *e = (*e).max(before);
                }
            }
            Ok(s)
        })
    }

    fn bind_certificate(&self, app: &str, san: &str, now: i64) -> Result<(), StoreError> {
        let app = self.app_by_name(app)?;
        self.with(|c| {
            match c.execute(
                "INSERT INTO app_certificates (san, app_id, created_at) VALUES (?1, ?2, ?3)",
                params![san, app.id, now],
            ) {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::SanBound(san.to_owned()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn unbind_certificate(&self, san: &str) -> Result<(), StoreError> {
        self.with(|c| {
            if c.execute("DELETE FROM app_certificates WHERE san = ?1", params![san])? == 0 {
                Err(StoreError::NoSuchBinding(san.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    fn certificate_bindings(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|c| {
            let mut q = c.prepare(
                "SELECT b.san, a.name FROM app_certificates b JOIN applications a ON a.id = b.app_id ORDER BY b.san",
            )?;
            Ok(q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?)
        })
    }

    fn version(&self) -> Result<i64, StoreError> {
        self.with(|c| Ok(c.pragma_query_value(None, "data_version", |r| r.get(0))?))
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
                "UPDATE applications SET enabled = ?1 WHERE name = ?2",
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
            let mut q =
                c.prepare("SELECT id, name, enabled, created_at FROM applications ORDER BY name")?;
            Ok(q.query_map([], app_row)?.collect::<Result<_, _>>()?)
        })
    }

    fn app_by_name(&self, name: &str) -> Result<Application, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, name, enabled, created_at FROM applications WHERE name = ?1",
                params![name],
                app_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))
        })
    }

    fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO api_keys (id, app_id, mac, created_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.id, k.app_id, k.mac, k.created_at, k.expires_at, k.revoked_at],
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
            let n = c.execute(
                "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![now, id],
            )?;
            if n == 0 {
                Err(StoreError::NoSuchKey(id.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    fn expire_keys(&self, app_id: &str, at: i64, except: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE api_keys SET expires_at = ?1 WHERE app_id = ?2 AND id != ?3 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > ?1)",
                params![at, app_id, except],
            )?;
            Ok(())
        })
    }

    fn revoke_token(&self, r: &Revocation, now: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO token_revocations (issuer, jti, subject, revoked_before, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (issuer, jti) WHERE jti IS NOT NULL DO NOTHING",
                params![r.issuer, r.jti, r.subject, r.revoked_before, r.expires_at, now],
            )?;
            Ok(())
        })
    }

    fn purge_revocations(&self, now: i64) -> Result<usize, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM token_revocations WHERE expires_at < ?1",
                params![now],
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_round_trips_with_bound_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        // A hostile name is data, never SQL (INPUT-10).
        let name = "x'); DROP TABLE applications; --";
        let app = s.create_app(name, 1).unwrap();
        assert!(matches!(
            s.create_app(name, 2),
            Err(StoreError::AppExists(_))
        ));
        assert_eq!(s.app_by_name(name).unwrap(), app);
        s.insert_key(&KeyRecord {
            id: "k1".into(),
            app_id: app.id.clone(),
            mac: vec![1, 2],
            created_at: 1,
            expires_at: None,
            revoked_at: None,
        })
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.keys["k1"].mac, vec![1, 2]);
        s.revoke_key("k1", 5).unwrap();
        assert!(s.snapshot().unwrap().keys.is_empty());
        // Revoking the same token twice is idempotent.
        let revocation = Revocation {
            issuer: "i".into(),
            jti: Some("j".into()),
            subject: None,
            revoked_before: None,
            expires_at: 10,
        };
        for _ in 0..2 {
            s.revoke_token(&revocation, 1).unwrap();
        }
        assert_eq!(s.snapshot().unwrap().revoked_jti.len(), 1);
        assert_eq!(s.purge_revocations(11).unwrap(), 1);
        // Reopening keeps data and does not re-run migrations.
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.apps().unwrap().len(), 1);
    }

    #[test]
    fn store_code_uses_bound_parameters_only() {
        // INPUT-10: every statement is a literal; input reaches SQL only as ?N parameters.
        let src = include_str!("store.rs");
        for (n, line) in src.lines().enumerate() {
            let l = line.trim();
            if l.starts_with("//") {
                continue;
            }
            let builds_sql = l.contains("format!(")
                && (l.contains("SELECT")
                    || l.contains("INSERT")
                    || l.contains("UPDATE")
                    || l.contains("DELETE"));
            let interpolates_input = builds_sql && l.replace("{KEY_COLUMNS}", "").contains('{');
            assert!(
                !interpolates_input,
                "line {}: SQL built with interpolation: {l}",
                n + 1
            );
        }
    }
}
