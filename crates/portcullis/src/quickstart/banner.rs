//! What the quickstart prints, for a person: the demo's secrets go once
//! into a mode-0600 env file (`source portcullis-data/quickstart.env`), and
//! the commands name them as `$API_KEY`, `$TOKEN`, `$CA`…, grouped into
//! what works, what is refused and why, and what an operator does. The
//! expanded commands stay in `quickstart.json` for scripts.

use super::{DEMO_APP, Facts};
use portcullis_gateway::files::write_private;
use std::path::Path;

/// The demo's values a command may name, as shell variables.
pub(super) type Vars = Vec<(&'static str, String)>;

pub(super) fn vars(f: &Facts) -> Vars {
    vec![
        ("GATEWAY", f.gateway_url.clone()),
        ("CA", f.ca_cert.display().to_string()),
        ("API_KEY", f.api_key.clone()),
        ("TOKEN", f.token.clone()),
        ("TOKEN_READ_ONLY", f.token_without_write_scope.clone()),
        ("TOKEN_TO_REVOKE", f.token_to_revoke.clone()),
        ("CLIENT_CERT", f.client_cert.display().to_string()),
        ("CLIENT_KEY", f.client_key.display().to_string()),
        ("ADMIN", f.admin_url.clone()),
        ("OPERATOR_TOKEN", f.operator_token.clone()),
    ]
}

/// `export NAME='value'` lines; written mode 0600.
pub(super) fn write_env(path: &Path, vars: &Vars) -> std::io::Result<()> {
    let mut text = String::from(
        "# Written by `portcullis quickstart`: the demo's key, tokens and paths.\n# source this file, then paste the printed commands.\n",
    );
    for (name, value) in vars {
        text.push_str(&format!("export {name}='{value}'\n"));
    }
    write_private(path, text.as_bytes())
}

/// `command` with every value of `vars` replaced by its variable: a
/// single-quoted word that names one becomes double-quoted (with `"`, `$`,
/// `` ` `` and `\` escaped), a bare value becomes `"$NAME"`.
pub(super) fn shell_form(command: &str, vars: &Vars) -> String {
    const START: char = '\u{1}';
    const END: char = '\u{2}';
    let mut by_length: Vec<&(&str, String)> = vars.iter().filter(|(_, v)| !v.is_empty()).collect();
    by_length.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut marked = command.to_owned();
    for (name, value) in by_length {
        marked = marked.replace(value.as_str(), &format!("{START}{name}{END}"));
    }
    let expand = |segment: &str| {
        let mut out = String::new();
        let mut chars = segment.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                START => {
                    let name: String = chars.by_ref().take_while(|d| *d != END).collect();
                    let glued = chars
                        .peek()
                        .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_');
                    out.push_str(&if glued {
                        format!("${{{name}}}")
                    } else {
                        format!("${name}")
                    });
                }
                '"' | '$' | '`' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        out
    };
    let mut out = String::new();
    let mut chars = marked.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let segment: String = chars.by_ref().take_while(|d| *d != '\'').collect();
                if segment.contains(START) {
                    out.push_str(&format!("\"{}\"", expand(&segment)));
                } else {
                    out.push_str(&format!("'{segment}'"));
                }
            }
            START => {
                let name: String = chars.by_ref().take_while(|d| *d != END).collect();
                out.push_str(&format!("\"${name}\""));
            }
            _ => out.push(c),
        }
    }
    out
}

fn command(what: &str, expect: &str, line: &str, vars: &Vars) {
    println!("  # {what} ({expect})");
    println!("  {}", shell_form(line, vars));
}

pub(super) fn print(facts: &Facts, json_path: &Path, env_path: &Path, vars: &Vars) {
    println!("Portcullis quickstart is running.");
    println!();
    println!(
        "  gateway      {}  (TLS 1.3, HTTP/1.1 and HTTP/2)",
        facts.gateway_url
    );
    println!(
        "  backend      {}  (demo orders API, mutual TLS, behind the gateway)",
        facts.backend_url
    );
    println!("  config       {}", facts.config.display());
    println!("  events       {}", facts.events_file.display());
    println!(
        "  [DEVELOPMENT] {} is a throwaway CA; the demo token issuer is for this demo only.",
        facts.ca_cert.display()
    );
    println!();
    println!("First, in your shell (the demo's key, tokens and CA; mode 0600):");
    println!("  source {}", env_path.display());
    println!(
        "  (every command below, expanded, is in {})",
        json_path.display()
    );
    println!();
    println!("What works:");
    // The self-service revocation is printed beside the refusal it causes.
    let (works, refused): (Vec<_>, Vec<_>) = facts
        .examples
        .iter()
        .partition(|e| e.expected_status < 300 && !e.path.starts_with("/oauth2/"));
    let example = |e: &super::Example| {
        command(
            e.name,
            &format!("expect {}", e.expected_status),
            &e.curl,
            vars,
        );
    };
    works.into_iter().for_each(example);
    if let Some(ws) = &facts.websocket_echo {
        println!(
            "  # WebSocket {}: at start the quickstart sent {:?} and got back {:?};",
            ws.url, ws.sent, ws.received
        );
        command(
            "its handshake with curl (curl cannot type frames, any WebSocket client can)",
            "expect 101",
            &ws.curl_handshake,
            vars,
        );
    }
    println!();
    println!("Refused, and why:");
    refused.into_iter().for_each(example);
    command(
        "a burst of 400 calls meets the demo app's limit on listOrders",
        "expect some 429 with Retry-After",
        &facts.rate_limit_burst,
        vars,
    );
    command(
        "straight to the backend, with a client certificate but without the gateway's context token",
        "expect 401 from its guard",
        &facts.direct_backend_call,
        vars,
    );
    println!();
    println!("Operator actions (admin plane on {}):", facts.admin_url);
    for step in &facts.kill_switch_demo {
        command(
            step.what,
            &format!("expect {}", step.expected_status),
            &step.curl,
            vars,
        );
    }
    println!("  # who did it and why, in the hash-chained audit log");
    println!(
        "  portcullis admin --config {} audit-log show",
        facts.config.display()
    );
    println!("  # the config and its weakened defaults");
    println!("  portcullis check --config {}", facts.config.display());
    println!("  # fresh tokens for {DEMO_APP}'s user");
    println!("  {}", facts.mint_token_command);
    println!();
    println!("Stop with Ctrl-C.");
}

#[cfg(test)]
mod tests {
    use super::shell_form;

    #[test]
    fn values_become_variables_and_quoting_follows() {
        let vars = vec![
            ("CA", "/d/ca.pem".to_owned()),
            ("TOKEN", "eyJ.abc".to_owned()),
            ("GATEWAY", "https://127.0.0.1:8443".to_owned()),
        ];
        assert_eq!(
            shell_form(
                "curl --cacert /d/ca.pem -H 'Authorization: Bearer eyJ.abc' -d '{\"a\":1}' 'https://127.0.0.1:8443/v1/x?y=$z'",
                &vars
            ),
            "curl --cacert \"$CA\" -H \"Authorization: Bearer $TOKEN\" -d '{\"a\":1}' \"$GATEWAY/v1/x?y=\\$z\""
        );
        assert_eq!(
            shell_form("echo 'eyJ.abcdef'", &vars),
            "echo \"${TOKEN}def\""
        );
    }
}
