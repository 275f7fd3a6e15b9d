//! API keys (AUTHN-04): format, digests and the pepper.
//!
//! A key looks like `pcsk_<id>_<secret>`: the `pcsk_` prefix lets secret
//! scanners find leaked keys, `<id>` (12 hex digits) is the public key id
//! used for lookup and logs, `<secret>` is 32 random bytes in hex. Only
//! HMAC-SHA256(pepper, key) is stored; the pepper is a 32-byte file created
//! with mode 0600 and refused when group or others can read it. Digests are
//! compared in constant time.

use aws_lc_rs::hmac;
use std::path::Path;

/// Recognisable prefix of every Portcullis API key.
pub const KEY_PREFIX: &str = "pcsk_";

/// The secret that keys the stored digests.
pub struct Pepper(hmac::Key);

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PepperError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("{path} must hold exactly 32 bytes")]
    Length { path: String },
}

impl Pepper {
    /// Reads `pepper.key` in `dir`, creating it (mode 0600) if absent.
    pub fn load_or_create(dir: &Path) -> Result<Self, PepperError> {
        let path = dir.join("pepper.key");
        let shown = path.display().to_string();
        let io = |e: std::io::Error| PepperError::Io {
            path: shown.clone(),
            reason: e.kind().to_string(),
        };
        if !path.exists() {
            std::fs::create_dir_all(dir).map_err(io)?;
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PepperError::Io {
                path: shown.clone(),
                reason: "no randomness".into(),
            })?;
            let written = crate::files::write_private(&path, &bytes);
            zeroize::Zeroize::zeroize(&mut bytes);
            written.map_err(io)?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(PepperError::Permissions { path: shown, mode });
            }
        }
        // Wiped when dropped; aws-lc wipes its own HMAC key state.
        let bytes = zeroize::Zeroizing::new(std::fs::read(&path).map_err(io)?);
        if bytes.len() != 32 {
            return Err(PepperError::Length { path: shown });
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// A key for another purpose derived from the pepper (e.g. the audit chain).
    pub fn derive(&self, purpose: &str) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.digest(purpose))
    }

    pub fn digest(&self, key: &str) -> Vec<u8> {
        hmac::sign(&self.0, key.as_bytes()).as_ref().to_vec()
    }

    /// Constant-time check of a presented key against a stored digest.
    pub fn verify(&self, key: &str, digest: &[u8]) -> bool {
        hmac::verify(&self.0, key.as_bytes(), digest).is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A fresh key: `(key id, full key)`. The full key is shown once and never stored.
pub fn generate() -> (String, String) {
    generate_with(KEY_PREFIX)
}

/// A fresh secret with another recognisable prefix (admin tokens: `pcadm_`).
pub fn generate_with(prefix: &str) -> (String, String) {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut id).expect("system randomness");
    aws_lc_rs::rand::fill(&mut secret).expect("system randomness");
    let id = hex(&id);
    let key = format!("{prefix}{id}_{}", hex(&secret));
    (id, key)
}

/// The key id of a well-formed key, or `None`.
pub fn key_id(key: &str) -> Option<&str> {
    key_id_with(KEY_PREFIX, key)
}

/// The id of a well-formed secret made by [`generate_with`] for `prefix`.
pub fn key_id_with<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id, 12) && hexish(secret, 64)).then_some(id)
}

/// Issues a key for an application: stores its digest, returns `(id, key)`.
/// The key is shown once; only the digest is kept.
pub fn issue(
    store: &dyn crate::store::Store,
    pepper: &Pepper,
    app: &str,
    now: i64,
) -> Result<(String, String), crate::store::StoreError> {
    let app = store.app_by_name(app)?;
    let (id, key) = generate();
    store.insert_key(&crate::store::KeyRecord {
        id: id.clone(),
        app_id: app.id,
        mac: pepper.digest(&key),
        created_at: now,
        expires_at: None,
        revoked_at: None,
    })?;
    Ok((id, key))
}

/// Issues a new key and lets the application's other keys live for `overlap_s` more seconds.
pub fn rotate(
    store: &dyn crate::store::Store,
    pepper: &Pepper,
    app: &str,
    overlap_s: i64,
    now: i64,
) -> Result<(String, String), crate::store::StoreError> {
    let (id, key) = issue(store, pepper, app, now)?;
    let app = store.app_by_name(app)?;
    store.expire_keys(&app.id, now + overlap_s, &id)?;
    Ok((id, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_round_trip_and_digests_verify_only_the_right_key() {
        let dir = tempfile::tempdir().unwrap();
        let pepper = Pepper::load_or_create(dir.path()).unwrap();
        let (id, key) = generate();
        assert_eq!(key_id(&key), Some(id.as_str()));
        assert!(key.starts_with("pcsk_"));
        let d = pepper.digest(&key);
        assert!(pepper.verify(&key, &d));
        let (_, other) = generate();
        assert!(!pepper.verify(&other, &d));
        assert!(key_id("pcsk_zz_1").is_none());
        // The same pepper is read back; a readable pepper is refused.
        let again = Pepper::load_or_create(dir.path()).unwrap();
        assert!(again.verify(&key, &d));
        std::fs::set_permissions(
            dir.path().join("pepper.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            Pepper::load_or_create(dir.path()),
            Err(PepperError::Permissions { .. })
        ));
    }
}
