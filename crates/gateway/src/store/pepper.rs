//! The pepper (AUTHN-04, PROC-06): the 32-byte secret that keys every
//! stored API-key digest and, derived, the audit chain's MAC. A file created
//! with mode 0600 and refused when group or others can read it (TLS-07's
//! rule for private keys); digests are compared in constant time.

use aws_lc_rs::hmac;
use std::path::Path;

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
