//! Config parsing: arbitrary text never panics; it is either a config or a
//! list of field errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match portcullis_config::parse(text, std::path::Path::new("/")) {
        Ok(c) => {
            let _ = c.weakenings();
        }
        Err(e) => assert!(!e.field_errors().is_empty()),
    }
});
