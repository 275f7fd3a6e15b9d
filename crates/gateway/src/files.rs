//! Files that hold secrets (TLS-07): private keys, API-key peppers, the
//! quickstart's facts. Written readable by their owner only, whoever writes
//! them (the development PKI, the API-key store, the CLI).

use std::io::Write;
use std::path::Path;

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut f = options.open(path)?;
        // An existing file keeps its mode on open: tighten it explicitly.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(contents)
    }
}
