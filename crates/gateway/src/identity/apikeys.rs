//! API keys (AUTHN-04): format, issue and rotation; digests under the
//! store's pepper ([`crate::store::pepper`]).
//!
//! A key looks like `pcsk_<id>_<secret>`: the `pcsk_` prefix lets secret
//! scanners find leaked keys, `<id>` (12 hex digits) is the public key id
//! used for lookup and logs, `<secret>` is 32 random bytes in hex. Only
//! HMAC-SHA256(pepper, key) is stored; the pepper is a 32-byte file created
//! with mode 0600 and refused when group or others can read it. Digests are
//! compared in constant time.

use crate::store::pepper::Pepper;

/// Recognisable prefix of every Portcullis API key.
pub const KEY_PREFIX: &str = "pcsk_";

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
    use crate::store::pepper::PepperError;

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
