//! The commit the binary is built from, for `portcullis --version` and the
//! `portcullis_build_info` metric: `PORTCULLIS_COMMIT` when set (container
//! builds have no `.git`), else `git rev-parse`, else `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PORTCULLIS_COMMIT");
    let commit = std::env::var("PORTCULLIS_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PORTCULLIS_COMMIT={commit}");
}

fn git() -> Option<String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let git_dir = Path::new(&manifest).join("../../.git");
    let head = git_dir.join("HEAD");
    // Rebuild when the commit changes; only name files that exist, or
    // cargo would run this script on every build.
    if head.is_file() {
        println!("cargo:rerun-if-changed={}", head.display());
        let reference = std::fs::read_to_string(&head).ok()?;
        if let Some(r) = reference.strip_prefix("ref: ") {
            for file in [git_dir.join(r.trim()), git_dir.join("packed-refs")] {
                if file.is_file() {
                    println!("cargo:rerun-if-changed={}", file.display());
                }
            }
        }
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(&manifest)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}
