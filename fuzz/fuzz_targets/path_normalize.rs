//! Path normalisation: never panics; whatever it accepts has no dot
//! segments, no backslash, no NUL, no ';', and re-encodes to a path it accepts
//! again with the same meaning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_gateway::pipeline::path::{encode_for_upstream, normalize};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    if let Ok(decoded) = normalize(raw) {
        assert!(decoded.starts_with('/'));
        assert!(!decoded.contains('\\') && !decoded.contains('\0'));
        // No path parameters: `..;` must not reach a Java backend.
        assert!(!decoded.contains(';'));
        assert!(!decoded.split('/').any(|s| s == "." || s == ".."));
        let forwarded = encode_for_upstream(&decoded);
        // Re-encoding can lengthen a path past the limit (`[` → `%5B`);
        // within it, the forwarded path means exactly what was routed.
        if forwarded.len() <= portcullis_gateway::pipeline::path::MAX_PATH_BYTES {
            assert_eq!(normalize(&forwarded).as_deref(), Ok(decoded.as_str()));
        }
    }
});
