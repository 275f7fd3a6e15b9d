//! Portcullis configuration: YAML schema → validated model, with errors that name the field.
//!
//! Two layers (STYLE.md §4): [`schema`] is what users write (serde,
//! `deny_unknown_fields`, secure defaults); [`model`] is what the gateway
//! runs on. [`parse`] goes from one to the other and reports *every*
//! problem it finds with the field path and the reason; it never panics.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

mod files;
pub mod json_schema;
pub mod model;
pub mod reference;
pub mod schema;
mod validate;
mod weakenings;

pub use model::*;
pub use weakenings::Weakening;

use http::HeaderName;
use schema::{RawConfig, RawMode};
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a config, located by its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid YAML or does not fit the schema: every field
    /// that does not, at once.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Schema(Vec<FieldError>),
    /// The file fits the schema but describes an invalid gateway.
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

impl LoadError {
    /// Every field error this load produced (one for schema errors).
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            LoadError::Io { path, source } => vec![FieldError {
                path: path.display().to_string(),
                message: source.to_string(),
            }],
            LoadError::Schema(v) | LoadError::Invalid(v) => v.clone(),
        }
    }
}

/// Reads and validates a config file; relative paths in it are resolved
/// against the file's directory.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    parse(&text, &base).map_err(|e| match e {
        // With other problems, the missing files too, in the same run.
        LoadError::Schema(mut errors) | LoadError::Invalid(mut errors) => {
            if let Ok(value) = yaml_serde::from_str::<serde_json::Value>(&text) {
                for m in files::missing(&value, &base) {
                    if !errors.iter().any(|known| known.path == m.path) {
                        errors.push(m);
                    }
                }
            }
            LoadError::Invalid(errors)
        }
        io @ LoadError::Io { .. } => io,
    })
}

/// Parses and validates config text; `base_dir` resolves relative paths.
pub fn parse(text: &str, base_dir: &Path) -> Result<Config, LoadError> {
    // The schema first, for every misfit at once; YAML that does not parse
    // at all is reported by `typed` with its line and column.
    let Ok(mut value) = yaml_serde::from_str::<serde_json::Value>(text) else {
        return Validator::default().config(&typed(text)?, base_dir);
    };
    let mut errors = json_schema::todo_errors(&value);
    errors.extend(json_schema::schema_errors(&value));
    if errors.is_empty() {
        return Validator::default().config(&typed(text)?, base_dir);
    }
    // The rest of the file is judged too, without its unknown fields, so
    // one run of `check` lists every problem.
    json_schema::drop_unknown_fields(&mut value);
    let Ok(raw) = serde_json::from_value::<RawConfig>(value) else {
        return Err(LoadError::Schema(errors));
    };
    if let Err(e) = Validator::default().config(&raw, base_dir) {
        for more in e.field_errors() {
            // One error per field: a TODO's own message says the most.
            if !errors.iter().any(|known| known.path == more.path) {
                errors.push(more);
            }
        }
    }
    Err(LoadError::Invalid(errors))
}

fn typed(text: &str) -> Result<RawConfig, LoadError> {
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // yaml_serde already prefixes some messages with the path.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map_or_else(|| message.clone(), str::to_owned);
        LoadError::Schema(vec![FieldError {
            path: if path == "." {
                "(top level)".into()
            } else {
                path
            },
            message,
        }])
    })
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn config(mut self, raw: &RawConfig, base_dir: &Path) -> Result<Config, LoadError> {
        let mode = match raw.mode {
            RawMode::Production => Mode::Production,
            RawMode::Dev => Mode::Dev,
        };
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_owned()
            } else {
                base_dir.join(p)
            }
        };

        let listeners = self.listeners(raw, mode, &resolve);
        let limits = self.limits(&raw.limits);
        let correlation_header = match &raw.correlation.header {
            None => HeaderName::from_static("x-correlation-id"),
            Some(h) => self.header_name("correlation.header", h),
        };
        let mut request_remove_headers: Vec<HeaderName> = raw
            .request
            .remove_headers
            .iter()
            .enumerate()
            .map(|(i, h)| self.header_name(&format!("request.remove_headers[{i}]"), h))
            .collect();
        let response_remove_headers = raw
            .response
            .remove_headers
            .iter()
            .enumerate()
            .map(|(i, h)| self.header_name(&format!("response.remove_headers[{i}]"), h))
            .collect();
        let events = self.events((&raw.events, raw.access_log.as_ref()), &resolve);

        let upstreams: Vec<_> = (raw.upstreams.iter())
            .filter_map(|(name, u)| self.upstream(name, u, &resolve))
            .collect();
        let postgres = raw
            .shared_state
            .postgres
            .as_ref()
            .map(|p| self.postgres(p, &resolve));
        if postgres.is_some() && raw.identity.is_none() {
            self.err(
                "shared_state.postgres",
                "the shared store holds applications, keys and revocations: add an `identity` section",
            );
        }
        let identity = raw.identity.as_ref().map(|i| Identity {
            postgres: postgres.clone(),
            ..self.identity(i, &resolve)
        });
        let context_token = self.context_token(raw, identity.as_ref(), &resolve);
        let redis = raw
            .shared_state
            .redis
            .as_ref()
            .and_then(|r| self.redis(r, &resolve));
        let anomalies = self.anomalies(&raw.anomalies);
        let admin = raw
            .admin
            .as_ref()
            .and_then(|a| self.admin(a, raw, &listeners, &resolve));
        // A client must never be able to hand a backend its own context token.
        request_remove_headers.push(context_token.as_ref().map_or(
            HeaderName::from_static(portcullis_jose::context::DEFAULT_HEADER),
            |c| c.header.clone(),
        ));
        let health = self.health(raw.health.as_ref(), &listeners, admin.as_ref());
        let (worker_threads, shutdown_grace) = self.runtime(&raw.runtime);
        let sensitive = self.sensitive(&raw.sensitive_data);
        let apis = self.apis(raw, &upstreams, identity.as_ref(), &sensitive, &resolve);
        self.protected_routes_have_identity(&apis, identity.as_ref());
        let trace = self.trace(&raw.trace_context, &resolve);

        if self.errors.is_empty() {
            Ok(Config {
                mode,
                base_dir: base_dir.to_owned(),
                worker_threads,
                shutdown_grace,
                health,
                listeners,
                limits,
                correlation_header,
                trace,
                request_remove_headers,
                response_remove_headers,
                events,
                identity,
                context_token,
                redis,
                anomalies,
                admin,
                upstreams,
                apis,
                sensitive,
            })
        } else {
            Err(LoadError::Invalid(self.errors))
        }
    }

    fn header_name(&mut self, path: &str, value: &str) -> HeaderName {
        HeaderName::from_bytes(value.as_bytes()).unwrap_or_else(|_| {
            self.err(path, format!("`{value}` is not a valid HTTP header name"));
            HeaderName::from_static("x-invalid")
        })
    }
}

/// Why a path template is invalid, if it is. Segments are literals of
/// unreserved characters or, when `params` is set, a whole-segment `{name}`.
/// `localhost`, a loopback IP address, or (PostgreSQL) a unix socket directory.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_matches(['[', ']']);
    host == "localhost"
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn template_problem(path: &str, params: bool) -> Option<String> {
    if path.is_empty() {
        return params.then(|| "must not be empty".to_owned());
    }
    if !path.starts_with('/') {
        return Some("must start with /".into());
    }
    if path == "/" {
        return None;
    }
    for seg in path[1..].split('/') {
        if seg.is_empty() {
            return Some("empty segment (`//` or trailing `/`)".into());
        }
        if seg == "." || seg == ".." {
            return Some("`.` and `..` segments are not allowed".into());
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if !params {
                return Some("parameters are not allowed here".into());
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Some(format!(
                    "parameter `{seg}` must be {{name}} with letters, digits or _"
                ));
            }
        } else if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Some(format!(
                "segment `{seg}` may only hold letters, digits, - . _ ~ or be a whole {{param}}"
            ));
        }
    }
    None
}

/// The template with parameter names erased, so `/a/{x}` and `/a/{y}` collide.
fn shape_of(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn rustls_name_ok(name: &str) -> Result<(), ()> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok { Ok(()) } else { Err(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MINIMAL: &str = r#"
listeners:
  - name: public
    bind: 127.0.0.1:8443
    tls: { cert: gw.pem, key: gw.key }
upstreams:
  orders: { url: "https://127.0.0.1:9443/base", ca: ca.pem }
apis:
  - name: orders
    upstream: orders
    routes:
      - { path: /orders, methods: [GET, POST], auth: public }
      - { path: "/orders/{id}", methods: [GET], auth: public }
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, Path::new("/etc/portcullis")) {
            Ok(_) => vec![],
            Err(e) => e.field_errors().iter().map(ToString::to_string).collect(),
        }
    }

    fn demo_config(contract: &str, extra: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("orders.yaml"),
            include_str!("../../portcullis/demo/orders-openapi.yaml"),
        )
        .unwrap();
        let text = format!(
            "{}identity:\n  data_dir: id\n  issuers: [{{ issuer: 'https://i', audiences: [a], jwks_file: j.json }}]\n",
            MINIMAL.replace(
                "    routes:\n      - { path: /orders, methods: [GET, POST], auth: public }\n      - { path: \"/orders/{id}\", methods: [GET], auth: public }\n",
                &format!("    openapi: orders.yaml\n    contract: {{ {contract} }}\n{extra}"),
            )
        );
        (dir, text)
    }

    #[test]
    fn routes_and_security_come_from_the_openapi_document() {
        let (dir, text) = demo_config("public_operations: [getHealth], allow_pii: [getOrder]", "");
        let c = parse(&text, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let routes = &c.apis[0].routes;
        let by_id = |id: &str| {
            routes
                .iter()
                .find(|r| r.operation.as_ref().is_some_and(|o| o.id == id))
                .unwrap()
        };
        assert_eq!(routes.len(), 5);
        assert_eq!(by_id("getHealth").auth, AuthPolicy::Public);
        let AuthPolicy::Protected(p) = &by_id("createOrder").auth else {
            panic!()
        };
        assert!(p.api_key && p.token);
        assert_eq!(p.scopes, ["orders:write"]);
        assert!(by_id("getOrder").allow_pii);
        assert_eq!(
            by_id("debugState").environments.as_deref(),
            Some(&["dev".to_owned()][..])
        );
        let weak: Vec<_> = c.weakenings().into_iter().map(|w| w.path).collect();
        assert!(
            weak.contains(&"apis[0].contract.public_operations".to_owned()),
            "{weak:?}"
        );
        assert!(
            weak.contains(&"apis[0].contract.allow_pii".to_owned()),
            "{weak:?}"
        );
    }

    #[test]
    fn contract_problems_are_reported_with_config_path_and_json_pointer() {
        // AUTHN-06: an operation without security needs the explicit opt-out.
        let (dir, text) = demo_config("", "");
        let errs: Vec<String> = parse(&text, dir.path())
            .unwrap_err()
            .field_errors()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("apis[0].openapi#/paths/~1health/get/security: operation `getHealth` has no security requirement"),
            "{errs:?}"
        );
        let (dir, text) = demo_config("public_operations: [getHealth, nope]", "");
        let errs = parse(&text, dir.path()).unwrap_err().field_errors();
        assert_eq!(errs[0].path, "apis[0].contract.public_operations[1]");
        let (dir, text) = demo_config(
            "public_operations: [getHealth]",
            "    routes: [{ path: /x, methods: [GET], auth: public }]\n",
        );
        let errs = parse(&text, dir.path()).unwrap_err().field_errors();
        assert_eq!(errs[0].path, "apis[0].routes");
        let (dir, text) = demo_config("public_operations: [getHealth]", "");
        std::fs::write(dir.path().join("orders.yaml"), "openapi: 3.1.0\npaths:\n  /a:\n    get:\n      responses: {'200': {$ref: 'http://evil.example/x'}}\n").unwrap();
        let errs = parse(&text, dir.path()).unwrap_err().field_errors();
        assert_eq!(
            errs[0].path,
            "apis[0].openapi#/paths/~1a/get/responses/200/$ref"
        );
    }

    #[test]
    fn minimal_config_is_valid_with_secure_defaults() {
        let c = parse(MINIMAL, Path::new("/etc/portcullis")).unwrap();
        assert_eq!(c.mode, Mode::Production);
        let ListenerKind::Tls(t) = &c.listeners[0].kind else {
            panic!()
        };
        assert!(!t.allow_tls12, "TLS 1.3 only by default");
        assert_eq!(t.key, Path::new("/etc/portcullis/gw.key"));
        assert_eq!(c.upstreams[0].base_path, "/base");
        assert_eq!(c.upstreams[0].server_name, "127.0.0.1");
        assert_eq!(c.correlation_header, "x-correlation-id");
    }

    #[test]
    fn route_without_auth_policy_is_refused_with_its_path() {
        // AUTHN-06: deny by default, no implicit public route.
        let text = MINIMAL.replace(
            ", auth: public }\n      - { path: \"/orders/{id}\"",
            " }\n      - { path: \"/orders/{id}\"",
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("apis[0].routes[0].auth: required"),
            "{errs:?}"
        );
    }

    #[test]
    fn every_problem_of_a_file_is_reported_in_one_run() {
        let text = MINIMAL
            .replace("https://127.0.0.1:9443/base", "http://10.0.0.9:9080/base")
            .replace("upstream: orders\n", "upstream: orders\n    colour: blue\n")
            .replace(
                ", auth: public }\n      - { path: \"/orders/{id}\"",
                " }\n      - { path: \"/orders/{id}\"",
            );
        let errs = errors(&text);
        for (path, why) in [
            ("apis[0].routes[0].auth", "required"),
            ("apis[0].colour", "unknown field"),
            ("upstreams.orders", "dangerous_plaintext"),
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(path) && e.contains(why)),
                "{path}: {errs:#?}"
            );
        }
    }

    #[test]
    fn unknown_field_is_an_error_with_path() {
        let text = MINIMAL.replace("upstream: orders\n", "upstream: orders\n    colour: blue\n");
        let errs = errors(&text);
        assert!(errs[0].starts_with("apis[0].colour"), "{errs:?}");
        assert!(errs[0].contains("unknown field `colour`"), "{errs:?}");
    }

    #[test]
    fn plaintext_upstream_needs_dangerous_opt_in() {
        let text = MINIMAL.replace("https://127.0.0.1:9443/base", "http://127.0.0.1:9443");
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("upstreams.orders.url") && e.contains("plaintext")),
            "{errs:?}"
        );
        let ok = text.replace("ca: ca.pem", "dangerous_plaintext_upstream: true");
        let c = parse(&ok, Path::new("/")).unwrap();
        assert!(
            c.weakenings()
                .iter()
                .any(|w| w.path == "upstreams.orders.dangerous_plaintext_upstream")
        );
    }

    #[test]
    fn https_upstream_needs_explicit_trust_anchors() {
        let errs = errors(&MINIMAL.replace(", ca: ca.pem", ""));
        assert_eq!(
            errs,
            vec![
                "upstreams.orders.ca: missing: trust anchors for upstream TLS must be explicit (a PEM bundle)"
            ]
        );
    }

    #[test]
    fn plaintext_listener_serving_needs_dev_mode() {
        let text = MINIMAL.replace(
            "    tls: { cert: gw.pem, key: gw.key }\n",
            "    tls: { cert: gw.pem, key: gw.key }\n  - name: plain\n    bind: 127.0.0.1:8080\n    plaintext: dangerous_serve\n",
        );
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.starts_with("listeners[1].plaintext")),
            "{errs:?}"
        );
        let c = parse(&format!("mode: dev\n{text}"), Path::new("/")).unwrap();
        let paths: Vec<_> = c.weakenings().into_iter().map(|w| w.path).collect();
        assert!(paths.contains(&"mode".to_string()));
        assert!(paths.contains(&"listeners[1].plaintext".to_string()));
    }

    /// Issue 16: every new connection, body-rate, host and staleness setting
    /// is validated, and `check` reports each one that is weakened.
    #[test]
    fn hardening_settings_are_validated_and_reported_when_weakened() {
        let hosted = MINIMAL.replace(
            "    tls: { cert: gw.pem, key: gw.key }\n",
            "    hosts: [api.example, 127.0.0.1]\n    tls: { cert: gw.pem, key: gw.key }\n",
        );
        let c = parse(&hosted, Path::new("/")).unwrap();
        assert_eq!(c.listeners[0].hosts, ["api.example", "127.0.0.1"]);
        let paths: Vec<_> = c.weakenings().into_iter().map(|w| w.path).collect();
        assert!(
            !paths
                .iter()
                .any(|p| p.starts_with("limits.") || p == "listeners[0].hosts"),
            "{paths:?}"
        );
        let weak = format!(
            "{hosted}limits:\n  idle_timeout_ms: 600000\n  max_connection_age_ms: 86400000\n  write_timeout_ms: 120000\n  max_connections_per_client: 100000\n  header_read_timeout_ms: 60000\n  min_body_bytes_per_s: 0\n  body_rate_grace_ms: 60000\n  client_ipv6_prefix: 128\nidentity: {{ data_dir: d, max_staleness_s: 3600 }}\n"
        );
        let c = parse(&weak, Path::new("/")).unwrap();
        let paths: Vec<_> = c.weakenings().into_iter().map(|w| w.path).collect();
        for p in [
            "limits.idle_timeout_ms",
            "limits.max_connection_age_ms",
            "limits.write_timeout_ms",
            "limits.max_connections_per_client",
            "limits.header_read_timeout_ms",
            "limits.min_body_bytes_per_s",
            "limits.body_rate_grace_ms",
            "limits.client_ipv6_prefix",
            "identity.max_staleness_s",
        ] {
            assert!(paths.iter().any(|x| x == p), "{p} not reported: {paths:?}");
        }
        let bad = format!(
            "{MINIMAL}limits:\n  idle_timeout_ms: 0\n  write_timeout_ms: 0\n  max_connections_per_client: 0\n  client_ipv6_prefix: 0\nidentity: {{ data_dir: d, max_staleness_s: 0 }}\n"
        )
        .replace("    tls: { cert", "    hosts: [\"evil.example;x\"]\n    tls: { cert");
        let errs = errors(&bad);
        for p in [
            "limits.idle_timeout_ms",
            "limits.write_timeout_ms",
            "limits.max_connections_per_client",
            "limits.client_ipv6_prefix",
            "identity.max_staleness_s",
            "listeners[0].hosts[0]",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(p)), "{p}: {errs:?}");
        }
    }

    #[test]
    fn weakenings_list_public_routes_and_tls12() {
        let text = MINIMAL.replace("key: gw.key }", "key: gw.key, min_version: \"1.2\" }");
        let c = parse(&text, Path::new("/")).unwrap();
        let paths: Vec<_> = c.weakenings().into_iter().map(|w| w.path).collect();
        assert_eq!(
            paths,
            vec![
                "listeners[0].tls.min_version",
                "listeners[0].hosts",
                "context_token.enabled",
                "upstreams.orders.crls",
                "apis[0].openapi",
                "apis[0].routes[0].auth",
                "apis[0].routes[1].auth"
            ]
        );
    }

    #[test]
    fn remote_event_sinks_need_a_spool_and_tls_off_loopback() {
        let errs = errors(&format!(
            "{MINIMAL}events: {{ syslog: {{ address: '127.0.0.1:514' }} }}\n"
        ));
        assert!(
            errs.iter().any(|e| e.starts_with("events.spool")),
            "{errs:?}"
        );
        let errs = errors(&format!(
            "{MINIMAL}events: {{ spool: {{ dir: s }}, syslog: {{ address: 'siem.internal:6514' }}, http: {{ url: 'http://siem.internal/in' }} }}\n"
        ));
        assert!(
            errs.iter().any(|e| e.starts_with("events.syslog.ca")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("events.http.url")),
            "{errs:?}"
        );
        let errs = errors(&format!(
            "{MINIMAL}events: {{ spool: {{ dir: s }}, http: {{ url: 'https://siem.internal/in' }} }}\n"
        ));
        assert!(
            errs.iter().any(|e| e.starts_with("events.http.ca")),
            "{errs:?}"
        );
        let c = parse(
            &format!("{MINIMAL}events: {{ spool: {{ dir: s, max_mb: 8 }}, syslog: {{ address: 'siem.internal:6514', ca: ca.pem }} }}\n"),
            Path::new("/etc/pc"),
        )
        .unwrap();
        assert_eq!(c.events.spool.unwrap().max_bytes, 8 * 1024 * 1024);
        assert_eq!(c.events.syslog.unwrap().host, "siem.internal");
    }

    #[test]
    fn the_admin_plane_is_local_and_never_on_a_data_plane_port() {
        let identity = "identity: { data_dir: id }\n";
        let errs = errors(&format!("{MINIMAL}admin: {{ bind: '127.0.0.1:9444' }}\n"));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("admin:") && e.contains("identity")),
            "{errs:?}"
        );
        let errs = errors(&format!(
            "{MINIMAL}{identity}admin: {{ bind: '0.0.0.0:9444' }}\n"
        ));
        assert!(errs.iter().any(|e| e.starts_with("admin.bind")), "{errs:?}");
        let data_port = parse(MINIMAL, Path::new("/")).unwrap().listeners[0]
            .bind
            .port();
        let errs = errors(&format!(
            "{MINIMAL}{identity}admin: {{ bind: '127.0.0.1:{data_port}' }}\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("admin.bind") && e.contains("data-plane")),
            "{errs:?}"
        );
        let errs = errors(&format!(
            "{MINIMAL}{identity}admin: {{ bind: '127.0.0.1:9444', unix: a.sock }}\n"
        ));
        assert!(errs.iter().any(|e| e.starts_with("admin:")), "{errs:?}");
        let c = parse(
            &format!("{MINIMAL}{identity}admin: {{ unix: run/admin.sock }}\n"),
            Path::new("/srv"),
        )
        .unwrap();
        assert_eq!(
            c.admin,
            Some(AdminListen::Unix("/srv/run/admin.sock".into()))
        );
        // Off loopback: only with mutual TLS (OPS-05).
        let tls = |mode: &str| {
            format!(
                "{MINIMAL}{identity}admin: {{ bind: '0.0.0.0:9444', tls: {{ cert: a.pem, key: a.key, client_auth: {{ mode: {mode}, ca: admins.pem }} }} }}\n"
            )
        };
        let errs = errors(&tls("optional"));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("admin.tls.client_auth") && e.contains("required")),
            "{errs:?}"
        );
        let c = parse(&tls("required"), Path::new("/srv")).unwrap();
        let Some(AdminListen::MutualTls { addr, tls }) = c.admin else {
            panic!("{:?}", c.admin)
        };
        assert_eq!(addr.to_string(), "0.0.0.0:9444");
        assert_eq!(
            tls.client_auth.map(|a| a.ca),
            Some("/srv/admins.pem".into())
        );
    }

    /// The probes' listener may bind anywhere but never shares a port with
    /// the data or admin plane; the shutdown grace is bounded; the trace
    /// context starts traces unless turned off.
    #[test]
    fn health_listener_shutdown_grace_and_trace_context_are_validated() {
        let c = parse(MINIMAL, Path::new("/")).unwrap();
        assert_eq!(c.health, None);
        assert_eq!(c.shutdown_grace, std::time::Duration::from_secs(10));
        assert!(c.trace.start && c.trace.otlp.is_none());
        let data_port = c.listeners[0].bind.port();
        let c = parse(
            &format!("{MINIMAL}health: {{ bind: '0.0.0.0:8081' }}\nruntime: {{ shutdown_grace_s: 30 }}\ntrace_context: {{ start: false }}\n"),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(c.health, Some("0.0.0.0:8081".parse().unwrap()));
        assert_eq!(c.shutdown_grace, std::time::Duration::from_secs(30));
        assert!(!c.trace.start);
        for (yaml, field, why) in [
            (
                "health: { bind: 'localhost' }".to_owned(),
                "health.bind",
                "not an address",
            ),
            (
                format!("health: {{ bind: '0.0.0.0:{data_port}' }}"),
                "health.bind",
                "data-plane",
            ),
            (
                "runtime: { shutdown_grace_s: 601 }".to_owned(),
                "runtime.shutdown_grace_s",
                "at most 600",
            ),
            (
                "trace_context: { otlp: { endpoint: 'http://10.0.0.9:4318/v1/traces' } }"
                    .to_owned(),
                "trace_context.otlp.endpoint",
                "loopback only",
            ),
            (
                "trace_context: { otlp: { endpoint: 'https://collector:4318/v1/traces' } }"
                    .to_owned(),
                "trace_context.otlp.ca",
                "explicit",
            ),
            (
                "trace_context: { otlp: { endpoint: 'http://127.0.0.1:4318', service_name: '' } }"
                    .to_owned(),
                "trace_context.otlp.service_name",
                "1 to 128",
            ),
            (
                "health: { bind: '0.0.0.0:8081', path: /x }".to_owned(),
                "health",
                "unknown field",
            ),
        ] {
            let errs = errors(&format!("{MINIMAL}{yaml}\n"));
            assert!(
                errs.iter().any(|e| e.contains(field) && e.contains(why)),
                "{yaml}: {errs:?}"
            );
        }
    }

    /// An upstream's targets share its scheme, path and TLS identity; the
    /// pool settings are bounded, and every mistake is named by its field.
    #[test]
    fn upstream_targets_and_pool_settings_are_validated() {
        let pool = |fields: &str| {
            MINIMAL.replace(
                r#"orders: { url: "https://127.0.0.1:9443/base", ca: ca.pem }"#,
                &format!("orders: {{ ca: ca.pem, {fields} }}"),
            )
        };
        let c = parse(
            &pool("targets: [\"https://10.0.0.1:9443/base\", \"https://10.0.0.2:9443/base\"], server_name: orders.internal, balance: least_outstanding, health_check: { path: /healthz }"),
            Path::new("/"),
        )
        .unwrap();
        let u = &c.upstreams[0];
        assert_eq!(u.targets.len(), 2);
        assert_eq!(u.base_path, "/base");
        assert_eq!(u.balance, Balance::LeastOutstanding);
        let h = u.health_check.as_ref().unwrap();
        assert_eq!(
            (h.path.as_str(), h.healthy_threshold, h.unhealthy_threshold),
            ("/healthz", 2, 3)
        );
        assert_eq!(u.outlier.consecutive_failures, 5);
        assert_eq!(u.retries.attempts, 1);
        assert_eq!(u.retries.per_try_timeout, u.request_timeout);
        for (fields, field, why) in [
            (
                "url: \"https://a:1\", targets: [\"https://b:1\"]",
                "orders.targets",
                "not both",
            ),
            (
                "targets: [\"https://a:1/x\", \"https://a:2/y\"]",
                "orders.targets[1]",
                "scheme and path",
            ),
            (
                "targets: [\"https://a:1\", \"https://a:1\"]",
                "orders.targets[1]",
                "listed twice",
            ),
            (
                "targets: [\"https://a:1\", \"https://b:1\"]",
                "orders.server_name",
                "one TLS identity",
            ),
            (
                "url: \"https://a:1\", health_check: { path: healthz }",
                "health_check.path",
                "absolute path",
            ),
            (
                "url: \"https://a:1\", health_check: { path: /h, interval_ms: 100, timeout_ms: 100 }",
                "health_check.timeout_ms",
                "shorter",
            ),
            (
                "url: \"https://a:1\", health_check: { path: /h, expect_status: 500 }",
                "health_check.expect_status",
                "2xx",
            ),
            (
                "url: \"https://a:1\", retries: { attempts: 6 }",
                "retries.attempts",
                "at most 5",
            ),
            (
                "url: \"https://a:1\", retries: { per_try_timeout_ms: 40000 }",
                "retries.per_try_timeout_ms",
                "request_timeout_ms",
            ),
            (
                "url: \"https://a:1\", outlier_detection: { max_ejected_percent: 101 }",
                "max_ejected_percent",
                "percentage",
            ),
            (
                "url: \"https://a:1\", max_requests_per_target: 0",
                "orders.max_requests_per_target",
                "1 to 1000000",
            ),
            (
                "url: \"https://a:1\", balance: consistent_hash",
                "orders.hash_header",
                "missing",
            ),
            (
                "url: \"https://a:1\", hash_header: x-tenant",
                "orders.hash_header",
                "only with",
            ),
            (
                "url: \"https://a:1\", balance: random",
                "balance",
                "is not one of",
            ),
            ("server_name: x", "orders.url", "missing"),
        ] {
            let errs = errors(&pool(fields));
            assert!(
                errs.iter().any(|e| e.contains(field) && e.contains(why)),
                "{fields}: {errs:?}"
            );
        }
    }

    /// A WebSocket route names a GET route; its origins, message size,
    /// idle timeout and ping interval are bounded and named when wrong.
    #[test]
    fn websocket_routes_are_validated() {
        let ws = |fields: &str| format!("{MINIMAL}    websockets:\n      {fields}\n");
        let c = parse(
            &ws("\"/orders/{id}\": { origins: ['HTTPS://App.Example'] }"),
            Path::new("/"),
        )
        .unwrap();
        let route = &c.apis[0].routes[1];
        let socket = route.websocket.as_ref().unwrap();
        assert_eq!(socket.origins, ["https://app.example"]);
        assert_eq!(socket.max_message_bytes, 64 * 1024);
        assert_eq!(
            (socket.idle_timeout, socket.ping_interval),
            (Duration::from_secs(60), Duration::from_secs(20))
        );
        assert!(c.apis[0].routes[0].websocket.is_none());
        for (fields, field, why) in [
            ("/nowhere: {}", "websockets./nowhere", "no such route"),
            (
                "/orders: { origins: ['https://a.example/path'] }",
                "websockets./orders.origins[0]",
                "not an origin",
            ),
            (
                "/orders: { max_message_bytes: 0 }",
                "max_message_bytes",
                "16 MiB",
            ),
            (
                "/orders: { idle_timeout_s: 10, ping_interval_s: 10 }",
                "ping_interval_s",
                "under `idle_timeout_s`",
            ),
            (
                "/orders: { idle_timeout_s: 0 }",
                "idle_timeout_s",
                "1 to 3600",
            ),
            ("/orders: { origin: [] }", "websockets", "unknown field"),
        ] {
            let errs = errors(&ws(fields));
            assert!(
                errs.iter().any(|e| e.contains(field) && e.contains(why)),
                "{fields}: {errs:?}"
            );
        }
        let post_only = MINIMAL.replace("methods: [GET, POST]", "methods: [POST]");
        let errs = errors(&format!(
            "{post_only}    websockets:\n      /orders: {{}}\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.contains("websockets./orders") && e.contains("GET")),
            "{errs:?}"
        );
    }

    #[test]
    fn grpc_apis_take_hand_written_routes_only() {
        let grpc = MINIMAL.replace(
            "    upstream: orders\n",
            "    upstream: orders\n    grpc: true\n",
        );
        assert!(parse(&grpc, Path::new("/")).unwrap().apis[0].grpc);
        let streaming = MINIMAL.replace(
            "    upstream: orders\n",
            "    upstream: orders\n    request_streaming: {}\n",
        );
        let c = parse(&streaming, Path::new("/")).unwrap();
        assert_eq!(c.apis[0].stream_bodies_up_to, Some(64 << 20));
        assert!(
            c.weakenings()
                .iter()
                .any(|w| w.path == "apis[0].request_streaming"),
            "check reports streamed bodies"
        );
        let otlp = format!(
            "{MINIMAL}trace_context: {{ otlp: {{ endpoint: 'http://10.0.0.9:4318/v1/traces', dangerous_plaintext: true }} }}\n"
        );
        let c = parse(&otlp, Path::new("/")).unwrap();
        assert!(
            c.weakenings()
                .iter()
                .any(|w| w.path == "trace_context.otlp.endpoint"),
            "check reports plaintext span export"
        );
        let errs = errors(&streaming.replace("{}", "{ max_body_bytes: 0 }"));
        assert!(
            errs.iter()
                .any(|e| e.contains("request_streaming.max_body_bytes")),
            "{errs:?}"
        );
        let with_document = grpc.replace(
            "    grpc: true\n",
            "    grpc: true\n    openapi: orders.yaml\n",
        );
        let errs = errors(&with_document);
        assert!(
            errs.iter()
                .any(|e| e.contains("apis[0].grpc") && e.contains("hand-written routes")),
            "{errs:?}"
        );
    }

    #[test]
    fn shared_postgres_needs_identity_and_tls_off_loopback() {
        let pg = |fields: &str| {
            format!("shared_state: {{ postgres: {{ dbname: gw, user: gw, {fields} }} }}\n")
        };
        let errs = errors(&format!("{MINIMAL}{}", pg("host: 127.0.0.1")));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("shared_state.postgres:") && e.contains("identity")),
            "{errs:?}"
        );
        let identity = "identity: { data_dir: id }\n";
        let errs = errors(&format!(
            "{MINIMAL}{identity}{}",
            pg("host: db.internal, resync_s: 0")
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("shared_state.postgres.ca")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("shared_state.postgres.resync_s")),
            "{errs:?}"
        );
        let c = parse(
            &format!("{MINIMAL}{identity}{}", pg("host: db.internal, ca: ca.pem")),
            Path::new("/etc/pc"),
        )
        .unwrap();
        let p = c.identity.unwrap().postgres.unwrap();
        assert_eq!(p.ca.as_deref(), Some(Path::new("/etc/pc/ca.pem")));
        assert!(!p.plaintext_remote);
        let c = parse(
            &format!(
                "{MINIMAL}{identity}{}",
                pg("host: db.internal, dangerous_plaintext: true")
            ),
            Path::new("/"),
        )
        .unwrap();
        assert!(
            c.weakenings()
                .iter()
                .any(|w| w.path == "shared_state.postgres.dangerous_plaintext")
        );
    }

    #[test]
    fn shared_redis_needs_tls_off_loopback_and_explicit_anchors() {
        let with = |redis: &str| format!("{MINIMAL}shared_state: {{ redis: {redis} }}\n");
        let errs = errors(&with("{ url: 'redis://10.0.0.5:6379/0' }"));
        assert!(
            errs.iter().any(|e| e.starts_with("shared_state.redis.url")),
            "{errs:?}"
        );
        let errs = errors(&with("{ url: 'rediss://10.0.0.5:6380/0', timeout_ms: 0 }"));
        assert!(
            errs.iter().any(|e| e.starts_with("shared_state.redis.ca")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("shared_state.redis.timeout_ms")),
            "{errs:?}"
        );
        let c = parse(
            &with("{ url: 'redis://127.0.0.1:6379/0', on_failure: local }"),
            Path::new("/"),
        )
        .unwrap();
        let r = c.redis.as_ref().unwrap();
        assert!(r.fall_back_to_local && !r.plaintext_remote);
        assert!(
            c.weakenings()
                .iter()
                .any(|w| w.path == "shared_state.redis.on_failure")
        );
        let c = parse(
            &with("{ url: 'redis://10.0.0.5:6379/0', dangerous_plaintext: true }"),
            Path::new("/"),
        )
        .unwrap();
        assert!(c.redis.unwrap().plaintext_remote);
    }

    #[test]
    fn context_token_is_on_with_identity_and_its_limits_are_checked() {
        // AUTHN-12: with identity configured, context tokens are on by default.
        let with_identity = format!(
            "{MINIMAL}identity:\n  data_dir: /var/lib/pc\n  issuers: [{{ issuer: 'https://i', audiences: [a], jwks_file: j.json }}]\n"
        );
        let c = parse(&with_identity, Path::new("/")).unwrap();
        let ct = c.context_token.as_ref().unwrap();
        assert_eq!(ct.keys_dir, Path::new("/var/lib/pc/context-keys"));
        assert_eq!(ct.lifetime, Duration::from_secs(30));
        assert_eq!(c.upstreams[0].context_audience, "orders");
        // Client copies are always removed, whatever the setting.
        assert!(
            c.request_remove_headers
                .iter()
                .any(|h| h == "portcullis-context")
        );
        let off = parse(
            &format!("{with_identity}context_token: {{ enabled: false }}\n"),
            Path::new("/"),
        )
        .unwrap();
        assert!(off.context_token.is_none());
        assert!(
            off.request_remove_headers
                .iter()
                .any(|h| h == "portcullis-context")
        );
        assert!(
            off.weakenings()
                .iter()
                .any(|w| w.path == "context_token.enabled")
        );
        let errs = errors(&format!(
            "{MINIMAL}context_token: {{ lifetime_s: 300, overlap_s: 10, jwks_bind: '0.0.0.0:9901' }}\n"
        ));
        assert!(
            errs.iter().any(|e| e.starts_with("context_token.keys_dir")),
            "{errs:?}"
        );
        let errs = errors(&format!(
            "{MINIMAL}context_token: {{ keys_dir: k, lifetime_s: 300, overlap_s: 10, jwks_bind: '0.0.0.0:9901' }}\n"
        ));
        for field in [
            "context_token.lifetime_s",
            "context_token.overlap_s",
            "context_token.jwks_bind",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(field)),
                "{field}: {errs:?}"
            );
        }
    }

    #[test]
    fn cors_wildcard_with_credentials_is_refused() {
        // OUTPUT-11: never `*` with credentials.
        let text = MINIMAL.replace(
            "    upstream: orders\n",
            "    upstream: orders\n    cors: { allowed_origins: [\"*\"], allow_credentials: true }\n",
        );
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("apis[0].cors.allow_credentials")),
            "{errs:?}"
        );
    }

    #[test]
    fn bad_templates_methods_and_duplicates_are_all_reported() {
        let text = MINIMAL
            .replace(
                "path: /orders, methods: [GET, POST]",
                "path: /orders/../x, methods: [TRACE, GET]",
            )
            .replace(
                "\"/orders/{id}\", methods: [GET]",
                "\"/orders/{id}\", methods: [GET, get]",
            );
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.starts_with("apis[0].routes[0].path")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("apis[0].routes[0].methods[0]") && e.contains("TRACE")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("apis[0].routes[1].methods[1]") && e.contains("twice")),
            "{errs:?}"
        );
    }

    #[test]
    fn protected_routes_are_validated_against_identity() {
        let protected = MINIMAL.replace(
            "{ path: /orders, methods: [GET, POST], auth: public }",
            "{ path: /orders, methods: [GET, POST], auth: { token: true, scopes: [orders:read] } }",
        );
        let errs = errors(&protected);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("apis[0].routes[0].auth") && e.contains("identity")),
            "{errs:?}"
        );
        let with_identity = format!(
            "identity:\n  data_dir: id\n  issuers:\n    - {{ issuer: https://i.test, audiences: [a], jwks_file: j.json, algorithms: [HS256, none, ES256] }}\n{protected}"
        );
        let errs = errors(&with_identity);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("identity.issuers[0].algorithms[0]")
                    && e.contains("symmetric")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("identity.issuers[0].algorithms[1]")
                    && e.contains("unsigned")),
            "{errs:?}"
        );
        let ok = with_identity.replace("HS256, none, ES256", "ES256");
        let c = parse(&ok, Path::new("/etc/p")).unwrap();
        let id = c.identity.unwrap();
        assert_eq!(id.api_key_header, "x-api-key");
        assert_eq!(id.data_dir, Path::new("/etc/p/id"));
        let bad = ok.replace(
            "auth: { token: true, scopes: [orders:read] }",
            "auth: { scopes: [orders:read], apps: [web] }",
        );
        let errs = errors(&bad);
        assert!(
            errs.iter()
                .any(|e| e.contains("needs `api_key: true`, `token: true`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("apis[0].routes[0].auth.scopes")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("apis[0].routes[0].auth.apps")),
            "{errs:?}"
        );
        let url = ok.replace("jwks_file: j.json", "jwks_url: \"http://idp.test/jwks\"");
        let errs = errors(&url);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("identity.issuers[0].jwks_url") && e.contains("https")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("identity.issuers[0].jwks_ca")),
            "{errs:?}"
        );
        let both = ok.replace(
            "jwks_file: j.json",
            "jwks_file: j.json, jwks_url: \"https://idp.test/jwks\"",
        );
        assert!(errors(&both).iter().any(|e| e.contains("exactly one of")));
        let word = ok.replace(
            "auth: { token: true, scopes: [orders:read] }",
            "auth: anyone",
        );
        let errs = errors(&word);
        assert!(
            errs[0].starts_with("apis[0].routes[0].auth")
                && errs[0].contains("expected `public` or a map of settings"),
            "{errs:?}"
        );
    }

    #[test]
    fn invalid_yaml_reports_location() {
        let errs = errors("listeners: [\n");
        assert_eq!(errs.len(), 1);
    }
}
