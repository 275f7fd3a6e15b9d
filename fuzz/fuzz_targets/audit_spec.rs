//! The assessor's contract checks: an arbitrary (untrusted) document never
//! panics; it is refused or yields findings, each located in the document.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(root) = portcullis_audit::spec::parse(text) else { return };
    for f in portcullis_audit::spec::Spec::new("fuzz.yaml", text, &root).run() {
        assert!(!f.id.is_empty());
    }
});
