//! Config review: what a Portcullis config enforces, ID by ID (evidence
//! level "configured"), and every weakened default it contains.

use crate::model::{Evidence, Finding, Location, Outcome};
use portcullis_config::{AdminListen, AuthPolicy, Config, ListenerKind, UpstreamScheme};

/// The checklist ID a weakened default works against, and whether it is
/// a failure (the control is off) or partial (the control is weakened).
fn weakening_id(path: &str) -> Option<(&'static str, Outcome, bool)> {
    let table: [(&str, &str, Outcome, bool); 17] = [
        (".tls.min_version", "TLS-05", Outcome::Partial, false),
        (".client_auth.crls", "TLS-01", Outcome::Fail, false),
        (".allow_stale_crl", "TLS-01", Outcome::Partial, false),
        ("].plaintext", "TLS-05", Outcome::Fail, true),
        ("].environment", "CONTRACT-03", Outcome::Partial, false),
        ("sensitive_data.", "DATA-01", Outcome::Partial, false),
        (
            "postgres.dangerous_plaintext",
            "TLS-04",
            Outcome::Fail,
            true,
        ),
        ("redis.dangerous_plaintext", "TLS-04", Outcome::Fail, true),
        ("redis.on_failure", "INPUT-08", Outcome::Partial, false),
        ("anomalies.enabled", "OPS-02", Outcome::Fail, false),
        ("context_token.enabled", "AUTHN-09", Outcome::Fail, false),
        (
            "dangerous_plaintext_upstream",
            "TLS-04",
            Outcome::Fail,
            true,
        ),
        (".crls", "TLS-01", Outcome::Partial, false),
        ("cors.allowed_origins", "OUTPUT-11", Outcome::Fail, false),
        ("].openapi", "INPUT-04", Outcome::Partial, false),
        ("contract.allow_pii", "OUTPUT-10", Outcome::Partial, false),
        (
            "strip_undeclared_responses",
            "OUTPUT-13",
            Outcome::Partial,
            false,
        ),
    ];
    if path == "mode" {
        return Some(("TLS-02", Outcome::Fail, false));
    }
    if path.ends_with("public_operations") || path.ends_with("].auth") {
        return Some(("AUTHN-06", Outcome::Partial, false));
    }
    table
        .iter()
        .find(|(p, ..)| path.contains(p))
        .map(|(_, id, o, c)| (*id, *o, *c))
}

struct Review<'a> {
    file: &'a str,
    findings: Vec<Finding>,
}

impl Review<'_> {
    fn add(&mut self, id: &'static str, outcome: Outcome, field: &str, message: &str) {
        self.findings.push(Finding::new(
            id,
            "config",
            outcome,
            Evidence::Configured,
            message,
            Location::Config {
                file: self.file.to_owned(),
                field: field.to_owned(),
            },
        ));
    }

    fn pass(&mut self, id: &'static str, field: &str, message: &str) {
        self.add(id, Outcome::Pass, field, message);
    }
}

/// What `check` says of the config's certificate files, under the ID each
/// message names (`… (TLS-08)`); an expired certificate fails TLS-10, the
/// rest weaken their control.
pub fn certificates(file: &str, found: Vec<portcullis_config::Weakening>) -> Vec<Finding> {
    let catalog = crate::catalog();
    found
        .into_iter()
        .filter_map(|w| {
            let named = w
                .message
                .rsplit_once('(')
                .and_then(|(_, tail)| tail.strip_suffix(')'))
                .and_then(|id| catalog.control.iter().find(|c| c.id == id))
                .map(|c| c.id.as_str());
            let expired = w.message.contains("has expired");
            let id = named.or(expired.then_some("TLS-10"))?;
            let outcome = if expired {
                Outcome::Fail
            } else {
                Outcome::Partial
            };
            Some(weakened(file, "config.certificate", id, outcome, w))
        })
        .collect()
}

/// A finding at the config field a weakening names.
fn weakened(
    file: &str,
    rule: &'static str,
    id: &'static str,
    outcome: Outcome,
    w: portcullis_config::Weakening,
) -> Finding {
    Finding::new(
        id,
        rule,
        outcome,
        Evidence::Configured,
        w.message,
        Location::Config {
            file: file.to_owned(),
            field: w.path,
        },
    )
}

/// Reviews `config` (read from `file`).
pub fn review(file: &str, config: &Config) -> Vec<Finding> {
    let mut r = Review {
        file,
        findings: Vec::new(),
    };
    r.weakened_defaults(config);
    let https = r.transport(config);
    r.identity(config, &https);
    r.routes(config);
    r.operations(config);
    r.findings
}

impl Review<'_> {
    /// Each weakened default `check` lists, under the ID it weakens.
    fn weakened_defaults(&mut self, config: &Config) {
        for w in config.weakenings() {
            if let Some((id, outcome, critical)) = weakening_id(&w.path) {
                let mut f = weakened(self.file, "config.weakened-default", id, outcome, w);
                if critical && outcome == Outcome::Fail {
                    f = f.critical();
                }
                self.findings.push(f);
            }
        }
    }

    /// Listener and upstream TLS (TLS-02 … TLS-10); returns the HTTPS upstreams.
    fn transport<'c>(&mut self, config: &'c Config) -> Vec<&'c portcullis_config::Upstream> {
        let tls_listeners = config
            .listeners
            .iter()
            .filter(|l| matches!(l.kind, ListenerKind::Tls(_)))
            .count();
        if tls_listeners > 0 {
            self.pass("TLS-03", "listeners", "rustls offers TLS 1.3 suites (and TLS 1.2 ECDHE+AEAD when enabled) only: no export, CBC, RC4, 3DES or static-RSA suite exists");
            self.pass(
                "TLS-05",
                "listeners",
                "clients reach the gateway over TLS with forward-secret AEAD suites",
            );
            self.pass(
                "TLS-07",
                "listeners[].tls.key",
                "private keys readable by group or others are refused at start",
            );
            self.pass("TLS-10", "listeners", "certificate validity is checked at every handshake and, for client certificates, on every request");
        }
        if config.mode == portcullis_config::Mode::Production {
            self.pass(
                "TLS-02",
                "mode",
                "production mode refuses a self-signed leaf",
            );
        }
        let https: Vec<_> = config
            .upstreams
            .iter()
            .filter(|u| u.scheme == UpstreamScheme::Https)
            .collect();
        if !config.upstreams.is_empty() && https.len() == config.upstreams.len() {
            self.pass("TLS-09", "upstreams", "every upstream certificate is verified against its expected server name on every connection");
            self.pass(
                "TLS-08",
                "upstreams",
                "upstream identities are matched on their SAN",
            );
            self.pass("TLS-06", "upstreams", "upstream trust anchors are explicit per upstream (no system roots), optionally SPKI-pinned");
            for u in &https {
                if u.client_identity.is_some() {
                    self.pass(
                        "TLS-04",
                        &format!("upstreams.{}", u.name),
                        "mutual TLS to the backend, TLS 1.3",
                    );
                } else {
                    self.add("TLS-04", Outcome::Partial, &format!("upstreams.{}.client_cert", u.name), "TLS to the backend without a gateway client certificate: the backend cannot tell the gateway from any other caller");
                }
            }
        }
        https
    }

    /// Identity at the gateway and the context token backends receive.
    fn identity(&mut self, config: &Config, https: &[&portcullis_config::Upstream]) {
        if let Some(identity) = &config.identity {
            for id in [
                "AUTHN-01", "AUTHN-05", "AUTHN-03", "AUTHZ-05", "AUTHZ-09", "AUTHZ-07",
            ] {
                self.pass(id, "identity", "identity is decided at the gateway, per request, before the upstream sees anything");
            }
            if !identity.issuers.is_empty() || identity.introspection.is_some() {
                self.pass(
                    "AUTHN-02",
                    "identity.issuers",
                    "bearer tokens are validated at the gateway",
                );
                self.pass("AUTHN-13", "identity.issuers", "JWTs are verified against the issuer's keys, algorithm allowlist, audience and expiry");
            }
            if identity.decryption_keys.is_empty() {
                self.add(
                    "AUTHN-08",
                    Outcome::Partial,
                    "identity.decryption_keys",
                    "tokens are signed but not encrypted (no JWE decryption key)",
                );
            } else {
                self.pass(
                    "AUTHN-08",
                    "identity.decryption_keys",
                    "nested JWE tokens are decrypted and verified",
                );
            }
        }
        if config.context_token.is_some() {
            for id in ["AUTHN-09", "AUTHZ-04", "AUTHN-12", "AUTHZ-06"] {
                self.pass(
                    id,
                    "context_token",
                    "backends receive a gateway-signed context token with the verified claims",
                );
            }
            let encrypted = https.iter().all(|u| u.context_encrypt_to.is_some());
            if encrypted && !https.is_empty() {
                self.pass(
                    "DATA-05",
                    "upstreams[].context_encrypt_to",
                    "the context token is encrypted to each backend",
                );
            } else {
                self.add(
                    "DATA-05",
                    Outcome::Partial,
                    "upstreams[].context_encrypt_to",
                    "the context token travels signed inside TLS but not encrypted to the backend",
                );
            }
        }
        if https.iter().all(|u| u.client_identity.is_some())
            && !https.is_empty()
            && config.context_token.is_some()
        {
            self.pass(
                "AUTHN-10",
                "upstreams",
                "backends see the gateway's client certificate and its signed context",
            );
        }
    }

    /// Authentication, authorization, rate limits and CORS per route.
    fn routes(&mut self, config: &Config) {
        let routes: Vec<_> = config.apis.iter().flat_map(|a| a.routes.iter()).collect();
        if !routes.is_empty() {
            let api_keys = routes
                .iter()
                .filter(|r| matches!(r.auth, AuthPolicy::Protected(ref p) if p.api_key))
                .count();
            let protected = routes
                .iter()
                .filter(|r| r.auth != AuthPolicy::Public)
                .count();
            // Nothing protected proves nothing about keys: no finding then.
            if protected > 0 && api_keys == protected {
                self.pass("AUTHN-04", "apis[].routes[].auth", "every protected route requires the application's API key (header only; query credentials are refused)");
            } else if protected > 0 {
                self.add(
                    "AUTHN-04",
                    Outcome::Partial,
                    "apis[].routes[].auth",
                    "some protected routes do not require an API key",
                );
            }
            if routes.iter().all(|r| r.auth != AuthPolicy::Public) {
                self.pass(
                    "AUTHN-06",
                    "apis[].routes[].auth",
                    "every route requires authentication",
                );
                self.pass(
                    "AUTHZ-10",
                    "apis[].routes[].auth",
                    "every route authorizes its caller",
                );
            }
            self.pass(
                "AUTHZ-01",
                "apis[].routes[]",
                "routes are deny-by-default; each authorizes the calling application",
            );
            if config.apis.iter().any(|a| !a.rate_limits.is_empty())
                || routes.iter().any(|r| !r.rate_limits.is_empty())
            {
                self.pass(
                    "INPUT-08",
                    "apis[].rate_limits",
                    "rate limits are configured",
                );
            } else {
                self.add(
                    "INPUT-08",
                    Outcome::Fail,
                    "apis[].rate_limits",
                    "no rate limit anywhere: nothing stops one caller from taking all capacity",
                );
            }
            if config.apis.iter().all(|a| {
                !a.cors
                    .as_ref()
                    .is_some_and(|c| matches!(c.origins, portcullis_config::AllowedOrigins::Any))
            }) {
                self.pass(
                    "OUTPUT-11",
                    "apis[].cors",
                    "CORS answers only listed origins",
                );
            }
        }
    }

    /// Header hygiene, events, anomalies and the admin plane.
    fn operations(&mut self, config: &Config) {
        self.pass(
            "DATA-02",
            "request_remove_headers",
            "credentials and internal headers are removed before the upstream",
        );
        self.pass(
            "OUTPUT-06",
            "response_remove_headers",
            "platform and internal response headers are removed",
        );
        if config.events.syslog.is_some() || config.events.http.is_some() {
            self.pass(
                "OPS-01",
                "events",
                "security events are shipped to a central system",
            );
        } else {
            self.add("OPS-01", Outcome::Partial, "events", "security events stay on this host (file/stdout): ship them (`events.syslog` or `events.http`)");
        }
        if config.anomalies.is_some() {
            self.pass("OPS-02", "anomalies", "usage anomalies raise events");
        }
        match &config.admin {
            Some(a) => {
                self.pass(
                    "OPS-03",
                    "admin",
                    "kill switches through the role-based admin plane",
                );
                self.pass(
                    "OPS-04",
                    "admin",
                    "applications switched off through the role-based admin plane",
                );
                let isolated = matches!(a, AdminListen::Tcp(addr) if addr.ip().is_loopback())
                    || matches!(a, AdminListen::Unix(_) | AdminListen::MutualTls { .. });
                if isolated {
                    self.pass(
                        "OPS-05",
                        "admin",
                        "the admin plane is on its own listener: loopback, unix socket or mutual TLS",
                    );
                }
            }
            None => {
                self.add(
                    "OPS-03",
                    Outcome::Partial,
                    "admin",
                    "no admin plane: an API can only be switched off by editing the config",
                );
            }
        }
    }
}
