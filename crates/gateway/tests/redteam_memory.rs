//! Red team, secrets in memory (issue 16 item 16): a process dump or a
//! core file must not hand over the API-key pepper or the introspection
//! client secret. Each test loads the secret the way the gateway does and
//! then reads this process's own memory through `/proc/self/mem` (no
//! unsafe code) looking for it.
//!
//! The tests know the secret only masked (XOR with a constant), so their
//! own copy never matches; the file's bytes live in the kernel's page cache,
//! not in this process. This binary holds only these tests, so no other
//! test's memory is searched.
#![cfg(target_os = "linux")]

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const MASK: u8 = 0xA5;

/// The file's contents, masked; the plain copy is wiped before returning.
fn masked(path: &Path) -> Vec<u8> {
    let plain = zeroize::Zeroizing::new(std::fs::read(path).unwrap());
    plain.iter().map(|b| b ^ MASK).collect()
}

/// Whether any readable, writable mapping of this process holds `masked`
/// unmasked. Compares on the fly so the plain pattern is never built.
fn in_memory(masked: &[u8]) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    let n = masked.len();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        // Heap, stacks and anonymous memory: where a freed buffer lingers.
        if !perms.starts_with("rw") || line.contains("[vvar") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut at = start;
        while at < end {
            let want = usize::try_from((end - at).min(chunk.len() as u64)).unwrap();
            if mem.seek(SeekFrom::Start(at)).is_err() {
                break;
            }
            let Ok(got) = mem.read(&mut chunk[..want]) else {
                break;
            };
            if got == 0 {
                break;
            }
            if chunk[..got]
                .windows(n)
                .any(|w| w.iter().zip(masked).all(|(a, b)| a ^ MASK == *b))
            {
                return true;
            }
            // Overlap so a secret across two chunks is still seen.
            at += (got.saturating_sub(n - 1)).max(1) as u64;
        }
    }
    false
}

/// A live copy is found: the search works, so a miss means something.
#[test]
fn the_search_finds_a_live_copy() {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).unwrap();
    let masked: Vec<u8> = secret.iter().map(|b| b ^ MASK).collect();
    let live = std::hint::black_box(Box::new(secret));
    zeroize::Zeroize::zeroize(&mut secret);
    assert!(in_memory(&masked[16..]));
    drop(live);
}

/// The pepper is read, turned into an HMAC key and the read buffer wiped:
/// once the `Pepper` is dropped nothing of it is left to find. glibc reuses
/// the first 16 bytes of a freed block for its free list, so the search
/// looks for the last 16.
#[test]
fn the_pepper_leaves_no_copy_behind() {
    let dir = tempfile::tempdir().unwrap();
    // Created (and its creation buffer wiped) first, then masked, then
    // loaded: a buffer freed after its read could be reused, and wiped, by
    // the test's own read.
    drop(portcullis_gateway::store::pepper::Pepper::load_or_create(dir.path()).unwrap());
    let pepper = masked(&dir.path().join("pepper.key"));
    drop(portcullis_gateway::store::pepper::Pepper::load_or_create(dir.path()).unwrap());
    assert_eq!(pepper.len(), 32);
    assert!(
        !in_memory(&pepper[16..]),
        "the pepper's bytes outlived the Pepper"
    );
}

/// The introspection client secret is kept only inside the (sensitive)
/// `Authorization` value, base64-encoded; every plain copy made on the way
/// is wiped, even while the introspector lives.
#[test]
fn the_introspection_secret_is_kept_only_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = portcullis_gateway::dev::pki::DevCa::new("memory test CA").unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let secret_file = dir.path().join("client-secret");
    let mut secret = [0u8; 24];
    aws_lc_rs::rand::fill(&mut secret).unwrap();
    let mut hex = zeroize::Zeroizing::new(String::with_capacity(48));
    for b in secret {
        std::fmt::Write::write_fmt(&mut *hex, format_args!("{b:02x}")).unwrap();
    }
    zeroize::Zeroize::zeroize(&mut secret);
    portcullis_gateway::files::write_private(&secret_file, hex.as_bytes()).unwrap();
    drop(hex);
    let config = portcullis_config::Introspection {
        url: "https://127.0.0.1:9/introspect".parse().unwrap(),
        ca: ca_file,
        client_id: "gateway".into(),
        client_secret_file: secret_file.clone(),
        issuer: "https://as.test".into(),
        audiences: vec!["orders-api".into()],
    };
    // Masked before the introspector reads it: a buffer freed after its
    // read could be reused, and wiped, by the test's own read.
    let secret = masked(&secret_file);
    assert_eq!(secret.len(), 48);
    let introspector =
        portcullis_gateway::identity::introspection::Introspector::new(&config).unwrap();
    assert!(
        !in_memory(&secret[16..]),
        "a plain copy of the client secret outlived its use"
    );
    drop(introspector);
}
