//! The store: applications, API key digests and token revocations (INPUT-10).
//!
//! Embedded default: one SQLite file in the identity data directory, with
//! versioned migrations and bound parameters only (no SQL is ever built from
//! input). The request path never touches it: it reads an in-memory
//! [`Snapshot`] that is rebuilt whenever the database changes, whoever
//! changed it (this process, the CLI, or another instance). Behind the
//! [`Store`] trait: [`crate::store::postgres`] is the PostgreSQL implementation that
//! several instances share.

pub mod audit_log;
pub mod model;
pub mod pepper;
pub mod postgres;
pub mod sql;
pub mod sqlite;

pub use model::*;
pub use sqlite::SqliteStore;

use crate::store::pepper::Pepper;
use portcullis_config::Identity;
use std::sync::Arc;

/// Opens the store an identity section names (SQLite in `data_dir`, or the
/// shared PostgreSQL) and checks it was set up with this pepper.
pub fn open(identity: &Identity, pepper: &Pepper) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match &identity.postgres {
        Some(pg) => Arc::new(postgres::PgStore::open(pg)?),
        None => Arc::new(SqliteStore::open(&identity.data_dir)?),
    };
    store.pepper_check(&pepper_fingerprint(pepper))?;
    Ok(store)
}
