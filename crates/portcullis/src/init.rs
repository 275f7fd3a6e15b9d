//! `portcullis init --openapi FILE`: a commented config for the user's own
//! API, written from its OpenAPI document (AUTHN-06: operations without a
//! security requirement are listed as public on purpose, and reported).
//! What the document cannot say (certificates, the token issuer, the
//! upstream's trust anchors) is written as a `TODO: …` value, which `check`
//! refuses with the text saying what to fill in.

use portcullis_contract::{Contract, Security};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `init` learnt from the document.
struct Survey {
    name: String,
    title: String,
    base_path: Option<String>,
    server: Option<String>,
    api_key_header: Option<String>,
    public: Vec<String>,
    by_key: usize,
    by_token: usize,
    classified: Vec<(String, &'static str)>,
}

pub fn main(openapi: &Path, upstream: Option<&str>, out: &Path) -> ExitCode {
    if out.exists() {
        eprintln!(
            "{} exists: init never overwrites a config (choose another -o)",
            out.display()
        );
        return ExitCode::from(2);
    }
    let survey = match survey(openapi) {
        Ok(s) => s,
        Err(problems) => {
            eprintln!(
                "{}: not a document the gateway can enforce:",
                openapi.display()
            );
            for p in problems {
                eprintln!("  {p}");
            }
            return ExitCode::from(2);
        }
    };
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let doc = relative(openapi, &dir);
    let text = config_text(&survey, &doc, upstream);
    let schema = dir.join(crate::quickstart::SCHEMA_FILE);
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| crate::quickstart::write_schema(&schema))
        .and_then(|()| std::fs::write(out, &text));
    if let Err(e) = written {
        eprintln!("cannot write {}: {e}", out.display());
        return ExitCode::from(1);
    }
    print_summary(&survey, out, &text);
    ExitCode::SUCCESS
}

fn survey(openapi: &Path) -> Result<Survey, Vec<String>> {
    let text = std::fs::read_to_string(openapi).map_err(|e| vec![e.to_string()])?;
    let doc: Value = yaml_serde::from_str(&text).map_err(|e| vec![e.to_string()])?;
    let api_key_header = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .find(|s| s["type"] == "apiKey" && s["in"] == "header")
        .and_then(|s| s["name"].as_str())
        .map(str::to_owned);
    let options = portcullis_contract::Options {
        api_key_header: api_key_header.clone(),
        ..portcullis_contract::Options::default()
    };
    let contract: Contract = portcullis_contract::compile(&text, &options)
        .map_err(|errs| errs.into_iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let server = doc.pointer("/servers/0/url").and_then(Value::as_str);
    let base_path = server
        .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].trim_end_matches('/')))
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    let mut s = Survey {
        name: slug(&contract.title),
        title: contract.title.clone(),
        base_path,
        server: server.map(str::to_owned),
        api_key_header,
        public: Vec::new(),
        by_key: 0,
        by_token: 0,
        classified: Vec::new(),
    };
    for op in &contract.operations {
        match &op.security {
            Security::None => s.public.push(op.id.clone()),
            Security::Required { api_key, token, .. } => {
                s.by_key += usize::from(*api_key);
                s.by_token += usize::from(*token);
            }
        }
        if let Some(c) = op.classification {
            s.classified.push((op.id.clone(), c.as_str()));
        }
    }
    Ok(s)
}

fn config_text(s: &Survey, doc: &str, upstream: Option<&str>) -> String {
    let mut t = crate::quickstart::modeline();
    let _ = write!(
        t,
        "# Written by `portcullis init` from {doc} ({title}).\n\
         # Every default is the secure one. Fill in each TODO, then\n\
         #   portcullis check --config THIS_FILE   (refuses the file while a TODO is left)\n\
         #   portcullis run --config THIS_FILE\n\
         # Every field: docs/config.md, or `portcullis schema`.\n\
         listeners:\n  - name: public\n\
         \x20   # 0.0.0.0:8443 to serve other machines.\n\
         \x20   bind: 127.0.0.1:8443\n    tls:\n\
         \x20     cert: \"TODO: the PEM certificate chain this gateway serves, leaf first\"\n\
         \x20     key: \"TODO: its PEM private key (mode 0600: others may not read it)\"\n",
        title = s.title
    );
    if s.by_key + s.by_token > 0 {
        t.push_str(
            "identity:\n  # Applications and the digests of their API keys (`portcullis apps`, `portcullis keys`).\n  data_dir: portcullis-identity\n",
        );
        if let Some(h) = &s.api_key_header {
            let _ = writeln!(
                t,
                "  # The header the document's apiKey scheme names.\n  api_key_header: {h}"
            );
        }
    }
    if s.by_token > 0 {
        t.push_str(
            "  issuers:\n\
             \x20   - issuer: \"TODO: the exact `iss` of the tokens your identity provider issues\"\n\
             \x20     audiences: [\"TODO: the `aud` those tokens carry for this API\"]\n\
             \x20     jwks_url: \"TODO: the https:// address of the issuer's JWKS\"\n\
             \x20     jwks_ca: \"TODO: PEM bundle of the CAs that issue the JWKS server's certificate\"\n",
        );
    }
    let url = upstream.map_or_else(
        || "\"TODO: the https:// address of the service behind the gateway\"".to_owned(),
        str::to_owned,
    );
    let _ = write!(
        t,
        "upstreams:\n  {name}:\n    url: {url}\n\
         \x20   ca: \"TODO: PEM bundle of the CAs that issue the service's certificate\"\n\
         apis:\n  - name: {name}\n",
        name = s.name
    );
    if let Some(b) = &s.base_path {
        let _ = writeln!(
            t,
            "    # From the document's first server ({}).\n    base_path: {b}",
            s.server.as_deref().unwrap_or_default()
        );
    }
    let _ = writeln!(
        t,
        "    upstream: {name}\n    # Routes, security requirements, schemas and classifications come from the document.\n    openapi: {doc}",
        name = s.name
    );
    if !s.public.is_empty() {
        let _ = writeln!(
            t,
            "    contract:\n      # These operations declare no security requirement: anyone may call them.\n      # Remove one to refuse it until the document protects it (AUTHN-06).\n      public_operations: [{}]",
            s.public.join(", ")
        );
    }
    for (id, class) in &s.classified {
        let _ = writeln!(t, "    # {id}: classified `{class}` in the document.");
    }
    t.push_str(
        "    # Placeholders: each client 600 requests a minute, 100 at once. Tune them\n\
         \x20   # to your traffic; add `route_limits` for single operations.\n\
         \x20   rate_limits:\n      - { per: client, requests: 600, per_seconds: 60, burst: 100 }\n",
    );
    t
}

fn print_summary(s: &Survey, out: &Path, text: &str) {
    println!("wrote {}", out.display());
    println!(
        "  operations: {} need an API key, {} a bearer token",
        s.by_key, s.by_token
    );
    if !s.public.is_empty() {
        println!(
            "  public (no security requirement): {}",
            s.public.join(", ")
        );
    }
    for (id, class) in &s.classified {
        println!("  classified: {id} ({class})");
    }
    let todos: Vec<&str> = text.lines().filter(|l| l.contains("\"TODO:")).collect();
    println!(
        "fill in {} TODO(s), then `portcullis check --config {}`:",
        todos.len(),
        out.display()
    );
    for l in todos {
        println!("  {}", l.trim().trim_start_matches("- "));
    }
}

/// The API's name in the config: the title, lower case, words joined by `-`.
fn slug(title: &str) -> String {
    let words: Vec<String> = title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() {
        "api".into()
    } else {
        words.join("-")
    }
}

/// `doc` as the config should name it: relative to the config's directory
/// when both are under it, absolute otherwise.
fn relative(doc: &Path, dir: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (doc, dir) = (abs(doc), abs(dir));
    doc.strip_prefix(&dir)
        .map_or_else(|_| doc.display().to_string(), |r| r.display().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn titles_become_names() {
        assert_eq!(super::slug("Demo orders API"), "demo-orders-api");
        assert_eq!(super::slug("  "), "api");
    }
}
