//! What the store holds (AUTHN-04, AUTHZ-05, OPS-03, PROC-06) and the one
//! trait both backends implement: the
//! records (applications, keys, revocations, admins, kill switches, audit
//! rows), the [`Snapshot`] the request path reads, the [`Store`] trait, and
//! the helpers both backends share (pepper check, audit-chain head).

use crate::store::pepper::Pepper;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("shared store (PostgreSQL): {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("shared store (PostgreSQL): {0}")]
    Setup(String),
    #[error(
        "the store was set up with another API key pepper: every instance sharing it needs the same `pepper.key` (copy it from the first instance's identity.data_dir)"
    )]
    PepperMismatch,
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
    #[error("an administrator named `{0}` already exists")]
    AdminExists(String),
    #[error("`{0}` is not switched off")]
    NoSuchKillSwitch(String),
    #[error("audit log broken: {0}")]
    AuditBroken(String),
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
    /// Switched-off APIs and operations (`api:<name>`, `op:<api>:<operation>`) → reason.
    pub kill_switches: HashMap<String, String>,
}

/// An administrator of the admin API (OPS-03): a role and the digest of
/// their token (`pcadm_<id>_<secret>`, HMAC under the pepper like API keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub id: String,
    pub name: String,
    pub role: String,
    pub mac: Vec<u8>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// One row of the hash-chained audit log (PROC-06).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    /// The entry as canonical JSON text.
    pub entry: String,
    /// HMAC over the previous row's MAC, `seq` and `entry`.
    pub mac: Vec<u8>,
}

/// Every audit row by `seq`, and the recorded head (last `seq` and its MAC).
pub type AuditLog = (Vec<AuditRow>, Option<(i64, Vec<u8>)>);

/// Computes a row's chain MAC from the previous MAC, its `seq` and entry.
pub type ChainMac<'a> = &'a (dyn Fn(&[u8], i64, &str) -> Vec<u8> + Sync);

impl Snapshot {
    /// Adds one `token_revocations` row.
    pub(crate) fn add_revocation(
        &mut self,
        issuer: String,
        jti: Option<String>,
        subject: Option<String>,
        before: Option<i64>,
        expires: i64,
    ) {
        if let Some(jti) = jti {
            self.revoked_jti.insert((issuer.clone(), jti), expires);
        }
        if let (Some(subject), Some(before)) = (subject, before) {
            let e = self
                .revoked_before
                .entry((issuer, subject))
                .or_insert(before);
            *e = (*e).max(before);
        }
    }
}

/// Tells the refresher that the store changed, whoever changed it.
pub trait ChangeFeed: Send {
    /// Waits up to `timeout`; `true` when something changed (or may have: a
    /// feed that reconnects answers `true`, since it may have missed news).
    fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError>;
}

/// The check value `pepper_check` records: a MAC of a fixed text, which
/// tells whether two peppers are the same without revealing either.
pub fn pepper_fingerprint(pepper: &Pepper) -> Vec<u8> {
    pepper.digest("portcullis store pepper check v1")
}

/// Compares two pepper check values (in constant time, as any MAC).
pub(crate) fn same_check(stored: &[u8], check: &[u8]) -> Result<(), StoreError> {
    aws_lc_rs::constant_time::verify_slices_are_equal(stored, check)
        .map_err(|_| StoreError::PepperMismatch)
}

/// Storage of identity data.
pub trait Store: Send + Sync {
    fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// A feed of changes made through any connection or instance.
    fn changes(&self) -> Result<Box<dyn ChangeFeed>, StoreError>;
    /// Records `check` (see [`pepper_fingerprint`]) on first use; refuses
    /// with [`StoreError::PepperMismatch`] when another was recorded.
    fn pepper_check(&self, check: &[u8]) -> Result<(), StoreError>;
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
    fn create_admin(&self, admin: &Admin) -> Result<(), StoreError>;
    fn admin(&self, id: &str) -> Result<Option<Admin>, StoreError>;
    fn admins(&self) -> Result<Vec<Admin>, StoreError>;
    /// Switches `target` off (or updates the reason); see [`Snapshot::kill_switches`].
    fn set_kill_switch(
        &self,
        target: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    fn clear_kill_switch(&self, target: &str) -> Result<(), StoreError>;
    /// Appends one entry to the audit log, atomically with respect to other
    /// appenders (any instance): its MAC chains to the previous row's.
    fn append_audit(&self, entry: &str, chain: ChainMac<'_>) -> Result<i64, StoreError>;
    /// Every audit row by `seq`, and the recorded head (last `seq` and MAC).
    fn audit_rows(&self) -> Result<AuditLog, StoreError>;
}

/// `store_meta.audit_head`: 8 bytes of `seq` (big-endian), then the MAC.
pub(crate) fn encode_head(seq: i64, mac: &[u8]) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.extend_from_slice(mac);
    v
}

pub(crate) fn decode_head(v: &[u8]) -> Option<(i64, Vec<u8>)> {
    let (seq, mac) = v.split_at_checked(8)?;
    Some((i64::from_be_bytes(seq.try_into().ok()?), mac.to_vec()))
}
