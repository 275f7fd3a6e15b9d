//! The wall clock, in Unix seconds: token lifetimes (AUTHN-02), client and
//! upstream certificate validity (TLS-10), context-token issuance and key
//! rotation (AUTHN-09), key revocation. One function, so the modules that
//! judge time import it from here rather than from each other.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Now, in whole seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
