//! The tamper-evident audit log (PROC-06): every admin action is one entry
//! (who, role, what, target, before/after, reason, time, correlation id),
//! appended to the store with a MAC that chains it to the entry before.
//!
//! The chain MAC is HMAC-SHA256 under a key derived from the pepper, so
//! someone who can write the database but does not hold `pepper.key` cannot
//! re-chain an edited log. [`verify`] walks the chain and names the first
//! entry that was edited, removed or moved, and whether entries were cut
//! off the end (the store records the head: last `seq` and MAC).

use crate::store::model::{Store, StoreError};
use crate::store::pepper::Pepper;
use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

/// One admin action. Field order is the canonical JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Administrator name (or `local:<user>` for setup from the CLI).
    pub actor: String,
    pub role: String,
    /// e.g. `app.disable`, `kill-switch.set`, `admin.create`; a refused
    /// attempt is `denied:<action>`.
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub correlation_id: String,
}

fn chain_key(pepper: &Pepper) -> hmac::Key {
    pepper.derive("portcullis audit chain v1")
}

fn chain_mac(key: &hmac::Key, prev: &[u8], seq: i64, entry: &str) -> Vec<u8> {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    ctx.update(entry.as_bytes());
    ctx.sign().as_ref().to_vec()
}

/// Appends `entry`; its `seq`.
pub fn append(store: &dyn Store, pepper: &Pepper, entry: &AuditEntry) -> Result<i64, StoreError> {
    let key = chain_key(pepper);
    let text = serde_json::to_string(entry).expect("an audit entry serialises");
    store.append_audit(&text, &|prev, seq, e| chain_mac(&key, prev, seq, e))
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    #[error("entry {0} is missing (removed)")]
    Missing(i64),
    #[error(
        "entry {0} does not match its chain: edited, or entries were removed or reordered at this point"
    )]
    Mismatch(i64),
    #[error("entry {0} is not a valid audit entry")]
    Unreadable(i64),
    #[error(
        "the log ends at entry {found} but {recorded} were recorded: entries were removed from the end"
    )]
    Truncated { found: i64, recorded: i64 },
    #[error("the recorded head does not match the last entry")]
    HeadMismatch,
}

/// Checks the whole chain; the number of entries when intact.
pub fn verify(store: &dyn Store, pepper: &Pepper) -> Result<Result<usize, Break>, StoreError> {
    let key = chain_key(pepper);
    let (rows, head) = store.audit_rows()?;
    let mut prev: Vec<u8> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let expected = i as i64 + 1;
        if row.seq != expected {
            return Ok(Err(Break::Missing(expected)));
        }
        let mac = chain_mac(&key, &prev, row.seq, &row.entry);
        if aws_lc_rs::constant_time::verify_slices_are_equal(&mac, &row.mac).is_err() {
            return Ok(Err(Break::Mismatch(row.seq)));
        }
        if serde_json::from_str::<AuditEntry>(&row.entry).is_err() {
            return Ok(Err(Break::Unreadable(row.seq)));
        }
        prev = mac;
    }
    let found = rows.len() as i64;
    match head {
        None if found == 0 => Ok(Ok(0)),
        None => Ok(Err(Break::HeadMismatch)),
        Some((recorded, _)) if recorded > found => Ok(Err(Break::Truncated { found, recorded })),
        Some((recorded, mac)) if recorded == found && mac == prev => Ok(Ok(rows.len())),
        Some(_) => Ok(Err(Break::HeadMismatch)),
    }
}

/// Every entry, by `seq` (for the admin API and the CLI).
pub fn entries(store: &dyn Store) -> Result<Vec<(i64, serde_json::Value)>, StoreError> {
    Ok(store
        .audit_rows()?
        .0
        .into_iter()
        .map(|r| {
            (
                r.seq,
                serde_json::from_str(&r.entry).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect())
}
