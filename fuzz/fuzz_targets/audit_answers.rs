//! What the assessor reads from the servers it probes (untrusted bytes):
//! a ServerHello record, and answer texts scanned for card numbers and
//! internal hosts. Never panics; a card number found is digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_audit::{probe, tls_probe};

fuzz_target!(|data: &[u8]| {
    let _ = tls_probe::server_hello(data);
    let text = String::from_utf8_lossy(data);
    if let Some(card) = probe::card_number(&text) {
        assert!(card.bytes().all(|b| b.is_ascii_digit()));
    }
    let (own, rest) = text.split_at(text.char_indices().nth(8).map_or(0, |(i, _)| i));
    let _ = probe::internal_host(rest, own);
});
