//! The quickstart's example calls: each a `curl` line for people and a
//! record in `quickstart.json` for scripts (and the quickstart's own audit).

use portcullis_gateway::dev::pki::IssuedFiles;
use serde::Serialize;
use std::path::{Path, PathBuf};

use super::DEMO_APP;

#[derive(Serialize)]
pub(super) struct Example {
    pub(super) name: &'static str,
    method: &'static str,
    pub(super) path: &'static str,
    headers: Vec<[String; 2]>,
    body: Option<&'static str>,
    /// `Content-Type` of `body`.
    content_type: &'static str,
    pub(super) expected_status: u16,
    /// Text the response body contains (a pointer, a redaction mark).
    expect_in_body: Option<&'static str>,
    /// `[certificate, key]` files presented as the TLS client certificate.
    client_certificate: Option<[PathBuf; 2]>,
    pub(super) curl: String,
    /// `curl` naming the demo's secrets as variables of `quickstart.env`.
    pub(super) shell: String,
}

/// One printed command and the status it gives.
#[derive(Serialize)]
pub(super) struct Step {
    pub(super) what: &'static str,
    pub(super) curl: String,
    /// `curl` naming the demo's secrets as variables of `quickstart.env`.
    pub(super) shell: String,
    pub(super) expected_status: u16,
}

const JSON: &str = "application/json";

/// What the example calls are made of.
pub(super) struct Calls<'a> {
    pub(super) base: &'a str,
    pub(super) ca_path: &'a Path,
    pub(super) demo_client: &'a IssuedFiles,
    pub(super) api_key: &'a str,
    pub(super) token: &'a str,
    pub(super) token_read_only: &'a str,
    pub(super) token_to_revoke: &'a str,
}

/// ` --cert <file> --key <file>` for `curl`.
pub(super) fn cert_args(files: &IssuedFiles) -> String {
    format!(
        " --cert {} --key {}",
        files.cert.display(),
        files.key.display()
    )
}

impl Calls<'_> {
    /// Every example, in the order they are printed and audited.
    pub(super) fn examples(&self) -> Vec<Example> {
        let mut all = self.served();
        all.extend(self.refused_identity());
        all.extend(self.refused_input());
        all.extend(self.revocation());
        all
    }

    fn key(&self) -> [String; 2] {
        ["X-API-Key".to_owned(), self.api_key.to_owned()]
    }

    fn bearer(t: &str) -> [String; 2] {
        ["Authorization".to_owned(), format!("Bearer {t}")]
    }

    fn both(&self) -> Vec<[String; 2]> {
        vec![self.key(), Self::bearer(self.token)]
    }

    fn example(
        &self,
        name: &'static str,
        method: &'static str,
        path: &'static str,
        headers: Vec<[String; 2]>,
        body: Option<(&'static str, &'static str)>,
        (expected_status, expect_in_body): (u16, Option<&'static str>),
    ) -> Example {
        let mut curl = format!("curl -sS -i --cacert {}", self.ca_path.display());
        if method != "GET" {
            curl.push_str(&format!(" -X {method}"));
        }
        for [k, v] in &headers {
            curl.push_str(&format!(" -H '{k}: {v}'"));
        }
        if let Some((content_type, b)) = body {
            curl.push_str(&format!(" -H 'Content-Type: {content_type}' -d '{b}'"));
        }
        if path.contains("..") {
            curl.push_str(" --path-as-is");
        }
        curl.push_str(&format!(" '{}{path}'", self.base));
        Example {
            name,
            method,
            path,
            headers,
            body: body.map(|(_, b)| b),
            content_type: body.map_or("", |(c, _)| c),
            expected_status,
            expect_in_body,
            client_certificate: None,
            curl,
            shell: String::new(),
        }
    }

    /// The same call, presenting the demo app's client certificate.
    fn with_client_certificate(&self, mut e: Example) -> Example {
        e.curl = e.curl.replacen(
            "curl -sS -i",
            &format!("curl -sS -i{}", cert_args(self.demo_client)),
            1,
        );
        e.client_certificate = Some([self.demo_client.cert.clone(), self.demo_client.key.clone()]);
        e
    }

    /// Calls the gateway serves.
    fn served(&self) -> Vec<Example> {
        vec![
            self.example(
                "good call",
                "GET",
                "/v1/orders?limit=10",
                self.both(),
                None,
                (200, Some("orders")),
            ),
            self.example(
                "create an order (undeclared fields are stripped before the backend)",
                "POST",
                "/v1/orders",
                self.both(),
                Some((JSON, r#"{"item":"book","quantity":1,"is_admin":true}"#)),
                (201, None),
            ),
            self.example(
                "read one order: the e-mail leaves redacted, the cost price never leaves",
                "GET",
                "/v1/orders/1001",
                self.both(),
                None,
                (200, Some("[redacted]")),
            ),
            self.with_client_certificate(self.example(
                "mTLS: the demo app's client certificate identifies it, no API key",
                "GET",
                "/v1/orders",
                vec![Self::bearer(self.token)],
                None,
                (200, Some("orders")),
            )),
            self.example(
                "server-sent events: passed on event by event, each one judged",
                "GET",
                "/v1/live/orders/1001/events",
                self.both(),
                None,
                (200, Some("event: status")),
            ),
            self.example(
                "public by explicit opt-out",
                "GET",
                "/v1/health",
                vec![],
                None,
                (200, Some("up")),
            ),
        ]
    }

    /// Calls refused for who makes them (401, 403).
    fn refused_identity(&self) -> Vec<Example> {
        vec![
            self.example(
                "no API key: 401",
                "GET",
                "/v1/orders",
                vec![Self::bearer(self.token)],
                None,
                (401, None),
            ),
            self.example(
                "bad token: 401",
                "GET",
                "/v1/orders",
                vec![self.key(), Self::bearer("not.a.token")],
                None,
                (401, None),
            ),
            self.example(
                "token without the write scope: 403",
                "POST",
                "/v1/orders",
                vec![self.key(), Self::bearer(self.token_read_only)],
                Some((JSON, r#"{"item":"book","quantity":1}"#)),
                (403, None),
            ),
        ]
    }

    /// Calls refused for what they send or where they go.
    fn refused_input(&self) -> Vec<Example> {
        vec![
            self.example(
                "wrong type in a strict schema: 400 naming the field",
                "POST",
                "/v1/orders",
                self.both(),
                Some((JSON, r#"{"item":"book","quantity":"two"}"#)),
                (400, Some("/quantity")),
            ),
            self.example(
                "wrong media type: 415",
                "POST",
                "/v1/orders",
                self.both(),
                Some(("application/x-www-form-urlencoded", "item=book&quantity=1")),
                (415, None),
            ),
            self.example(
                "personal data in the URL: 400",
                "GET",
                "/v1/orders?contact=alice@example.com",
                self.both(),
                None,
                (400, Some("sensitive-data-in-url")),
            ),
            self.example(
                "development-only operation on a production listener: 404",
                "GET",
                "/v1/debug/state",
                self.both(),
                None,
                (404, None),
            ),
            self.example(
                "unknown path: 404, nothing reaches the backend",
                "GET",
                "/v1/admin",
                vec![],
                None,
                (404, None),
            ),
            self.example(
                "undeclared method: 405 with Allow",
                "DELETE",
                "/v1/orders",
                vec![],
                None,
                (405, None),
            ),
            self.example(
                "path traversal: 400",
                "GET",
                "/v1/orders/../admin",
                vec![],
                None,
                (400, None),
            ),
        ]
    }

    /// A token revoked by its holder stops working at once.
    fn revocation(&self) -> Vec<Example> {
        vec![
            self.example(
                "revoke a token (self-service)",
                "POST",
                "/oauth2/revoke",
                vec![self.key(), Self::bearer(self.token_to_revoke)],
                None,
                (200, None),
            ),
            self.example(
                "...and retry with it: 401",
                "GET",
                "/v1/orders",
                vec![self.key(), Self::bearer(self.token_to_revoke)],
                None,
                (401, None),
            ),
        ]
    }
}

/// Disable the demo application, see its 403, enable it, see a 200.
pub(super) fn kill_switch_demo(
    admin: &str,
    operator: &str,
    ca: &Path,
    base: &str,
    api_key: &str,
    token: &str,
) -> Vec<Step> {
    let switch = |verb: &str| {
        format!(
            "curl -sS -i -X POST -H 'Authorization: Bearer {operator}' -H 'Content-Type: application/json' -d '{{\"reason\":\"quickstart demo\"}}' '{admin}/admin/v1/apps/{DEMO_APP}/{verb}'"
        )
    };
    let call = format!(
        "curl -sS -i --cacert {} -H 'X-API-Key: {api_key}' -H 'Authorization: Bearer {token}' '{base}/v1/orders/1001'",
        ca.display()
    );
    vec![
        Step {
            what: "an operator switches the demo application off",
            curl: switch("disable"),
            shell: String::new(),
            expected_status: 200,
        },
        Step {
            what: "its next request is refused",
            curl: call.clone(),
            shell: String::new(),
            expected_status: 403,
        },
        Step {
            what: "the operator switches it on again",
            curl: switch("enable"),
            shell: String::new(),
            expected_status: 200,
        },
        Step {
            what: "served again",
            curl: call,
            shell: String::new(),
            expected_status: 200,
        },
    ]
}
