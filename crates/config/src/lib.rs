//! Portcullis configuration: YAML schema → validated model, with errors that name the field.
//!
//! Two layers (STYLE.md §4): [`schema`] is what users write (serde,
//! `deny_unknown_fields`, secure defaults); [`model`] is what the gateway
//! runs on. [`parse`] goes from one to the other and reports *every*
//! problem it finds with the field path and the reason; it never panics.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

pub mod model;
pub mod schema;

pub use model::*;

use http::{HeaderName, HeaderValue, Method};
use schema::{RawAuthPolicy, RawConfig, RawMode, RawPlaintext};
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// The file is not valid YAML or does not fit the schema.
    #[error("{0}")]
    Schema(FieldError),
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
            LoadError::Schema(e) => vec![e.clone()],
            LoadError::Invalid(v) => v.clone(),
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
    parse(&text, &base)
}

/// Parses and validates config text; `base_dir` resolves relative paths.
pub fn parse(text: &str, base_dir: &Path) -> Result<Config, LoadError> {
    let de = yaml_serde::Deserializer::from_str(text);
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // yaml_serde already prefixes some messages with the path.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map_or_else(|| message.clone(), str::to_owned);
        LoadError::Schema(FieldError {
            path: if path == "." {
                "(top level)".into()
            } else {
                path
            },
            message,
        })
    })?;
    Validator::default().config(&raw, base_dir)
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
        let request_remove_headers: Vec<HeaderName> = raw
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
        let events = self.events(&raw.events, &resolve);

        let mut upstreams = Vec::new();
        for (name, u) in &raw.upstreams {
            if let Some(up) = self.upstream(name, u, &resolve) {
                upstreams.push(up);
            }
        }
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
        let mut request_remove_headers: Vec<HeaderName> = request_remove_headers;
        request_remove_headers.push(context_token.as_ref().map_or(
            HeaderName::from_static(portcullis_jose::context::DEFAULT_HEADER),
            |c| c.header.clone(),
        ));
        let sensitive = self.sensitive(&raw.sensitive_data);
        let apis = self.apis(raw, &upstreams, identity.as_ref(), &sensitive, &resolve);
        self.protected_routes_have_identity(&apis, identity.as_ref());

        if self.errors.is_empty() {
            Ok(Config {
                mode,
                base_dir: base_dir.to_owned(),
                worker_threads: (raw.runtime.worker_threads > 0)
                    .then_some(raw.runtime.worker_threads),
                listeners,
                limits,
                correlation_header,
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

    fn listeners(
        &mut self,
        raw: &RawConfig,
        mode: Mode,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Vec<Listener> {
        if raw.listeners.is_empty() {
            self.err("listeners", "at least one listener is required");
        }
        let mut names = BTreeSet::new();
        let mut out = Vec::new();
        for (i, l) in raw.listeners.iter().enumerate() {
            let p = format!("listeners[{i}]");
            if !names.insert(l.name.clone()) {
                self.err(
                    format!("{p}.name"),
                    format!("duplicate listener name `{}`", l.name),
                );
            }
            let Ok(bind) = l.bind.parse::<SocketAddr>() else {
                self.err(
                    format!("{p}.bind"),
                    format!("`{}` is not IP:port (e.g. 127.0.0.1:8443)", l.bind),
                );
                continue;
            };
            let kind = match (&l.tls, l.plaintext) {
                (Some(_), Some(_)) => {
                    self.err(&p, "set either `tls` or `plaintext`, not both");
                    continue;
                }
                (None, None) => {
                    self.err(
                        format!("{p}.tls"),
                        "missing: listeners serve TLS; a plain listener needs `plaintext: redirect`",
                    );
                    continue;
                }
                (Some(t), None) => {
                    ListenerKind::Tls(self.server_tls(&format!("{p}.tls"), t, &resolve))
                }
                (None, Some(RawPlaintext::Redirect)) => ListenerKind::Redirect {
                    https_port: l.redirect_https_port.unwrap_or(443),
                },
                (None, Some(RawPlaintext::DangerousServe)) => {
                    if mode != Mode::Dev {
                        self.err(
                            format!("{p}.plaintext"),
                            "`dangerous_serve` is only allowed with `mode: dev`; use `redirect` or TLS",
                        );
                    }
                    ListenerKind::DangerousPlaintext
                }
            };
            if l.redirect_https_port.is_some() && !matches!(kind, ListenerKind::Redirect { .. }) {
                self.err(
                    format!("{p}.redirect_https_port"),
                    "only meaningful with `plaintext: redirect`",
                );
            }
            let environment = l
                .environment
                .as_deref()
                .unwrap_or("production")
                .to_ascii_lowercase();
            if environment.is_empty()
                || !environment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                self.err(
                    format!("{p}.environment"),
                    "an environment name is letters, digits, `-` or `_`",
                );
            }
            let mut hosts = Vec::new();
            for (h, host) in l.hosts.iter().enumerate() {
                let valid = !host.is_empty()
                    && host.len() <= 253
                    && (host.parse::<std::net::Ipv6Addr>().is_ok()
                        || host.split('.').all(|label| {
                            !label.is_empty()
                                && label.len() <= 63
                                && label
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        }));
                if valid {
                    hosts.push(host.to_ascii_lowercase());
                } else {
                    self.err(
                        format!("{p}.hosts[{h}]"),
                        format!("`{host}` is not a host name or IP address (no port, no scheme)"),
                    );
                }
            }
            out.push(Listener {
                name: l.name.clone(),
                bind,
                kind,
                hosts,
                environment,
            });
        }
        out
    }

    fn limits(&mut self, l: &schema::RawLimits) -> Limits {
        let positive = |v: &mut Self, name: &str, value: u64| {
            if value == 0 {
                v.err(format!("limits.{name}"), "must be greater than 0");
            }
        };
        positive(self, "header_read_timeout_ms", l.header_read_timeout_ms);
        positive(self, "tls_handshake_timeout_ms", l.tls_handshake_timeout_ms);
        positive(self, "body_read_timeout_ms", l.body_read_timeout_ms);
        positive(self, "max_connections", l.max_connections as u64);
        positive(
            self,
            "h2_max_concurrent_streams",
            u64::from(l.h2_max_concurrent_streams),
        );
        if l.max_header_bytes < 8192 {
            self.err("limits.max_header_bytes", "must be at least 8192");
        }
        positive(self, "idle_timeout_ms", l.idle_timeout_ms);
        if l.max_buffered_bytes < l.max_body_bytes.max(l.max_response_bytes) {
            self.err(
                "limits.max_buffered_bytes",
                "must be at least max_body_bytes and max_response_bytes (one request must fit)",
            );
        }
        positive(self, "max_connection_age_ms", l.max_connection_age_ms);
        positive(self, "write_timeout_ms", l.write_timeout_ms);
        positive(
            self,
            "max_connections_per_client",
            l.max_connections_per_client as u64,
        );
        if !(1..=128).contains(&l.client_ipv6_prefix) {
            self.err("limits.client_ipv6_prefix", "must be 1 to 128 bits");
        }
        Limits {
            header_read_timeout: Duration::from_millis(l.header_read_timeout_ms),
            tls_handshake_timeout: Duration::from_millis(l.tls_handshake_timeout_ms),
            max_header_bytes: l.max_header_bytes,
            max_body_bytes: l.max_body_bytes,
            max_connections: l.max_connections,
            h2_max_concurrent_streams: l.h2_max_concurrent_streams,
            h2_max_pending_reset_streams: l.h2_max_pending_reset_streams,
            h2_max_local_error_reset_streams: l.h2_max_local_error_reset_streams,
            body_read_timeout: Duration::from_millis(l.body_read_timeout_ms),
            max_response_bytes: l.max_response_bytes,
            idle_timeout: Duration::from_millis(l.idle_timeout_ms),
            max_connection_age: Duration::from_millis(l.max_connection_age_ms),
            write_timeout: Duration::from_millis(l.write_timeout_ms),
            max_connections_per_client: l.max_connections_per_client,
            client_ipv6_prefix: l.client_ipv6_prefix,
            min_body_bytes_per_s: l.min_body_bytes_per_s,
            body_rate_grace: Duration::from_millis(l.body_rate_grace_ms),
            max_buffered_bytes: l.max_buffered_bytes,
            auth_failures_per_minute: l.auth_failures_per_minute,
        }
    }

    /// `https`, or `http` with the dangerous opt-in (TLS-04).
    fn upstream_scheme(
        &mut self,
        p: &str,
        u: &schema::RawUpstream,
        uri: &http::Uri,
    ) -> Option<UpstreamScheme> {
        Some(match uri.scheme_str() {
            Some("https") => {
                if u.dangerous_plaintext_upstream {
                    self.err(
                        format!("{p}.dangerous_plaintext_upstream"),
                        "set only for http:// upstreams",
                    );
                }
                UpstreamScheme::Https
            }
            Some("http") if u.dangerous_plaintext_upstream => UpstreamScheme::DangerousHttp,
            Some("http") => {
                self.err(
                    format!("{p}.url"),
                    "plaintext upstream refused: use https:// (or set dangerous_plaintext_upstream: true)",
                );
                return None;
            }
            _ => {
                self.err(format!("{p}.url"), "must start with https://");
                return None;
            }
        })
    }

    /// SPKI pins: the base64 SHA-256 of a SubjectPublicKeyInfo (TLS-06).
    fn spki_pins(&mut self, p: &str, pins: &[String]) -> Vec<[u8; 32]> {
        let mut spki_pins = Vec::new();
        for (i, pin) in pins.iter().enumerate() {
            use base64::Engine;
            let text = pin.strip_prefix("sha256/").unwrap_or(pin);
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) if bytes.len() == 32 => {
                    let mut a = [0u8; 32];
                    a.copy_from_slice(&bytes);
                    spki_pins.push(a);
                }
                _ => self.err(
                    format!("{p}.spki_pins[{i}]"),
                    "a pin is the base64 SHA-256 of the certificate's SubjectPublicKeyInfo (44 characters)",
                ),
            }
        }
        spki_pins
    }

    fn upstream(
        &mut self,
        name: &str,
        u: &schema::RawUpstream,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<Upstream> {
        let p = format!("upstreams.{name}");
        let Ok(uri) = u.url.parse::<http::Uri>() else {
            self.err(format!("{p}.url"), format!("`{}` is not a URL", u.url));
            return None;
        };
        let scheme = self.upstream_scheme(&p, u, &uri)?;
        let Some(authority) = uri.authority().cloned() else {
            self.err(format!("{p}.url"), "missing host");
            return None;
        };
        if uri.query().is_some() {
            self.err(format!("{p}.url"), "must not contain a query string");
        }
        let ca = u.ca.as_deref().map(resolve);
        if scheme == UpstreamScheme::Https && ca.is_none() {
            self.err(
                format!("{p}.ca"),
                "missing: trust anchors for upstream TLS must be explicit (a PEM bundle)",
            );
        }
        let server_name = u
            .server_name
            .clone()
            .unwrap_or_else(|| authority.host().trim_matches(['[', ']']).to_owned());
        if rustls_name_ok(&server_name).is_err() {
            self.err(
                format!("{p}.server_name"),
                format!("`{server_name}` is not a DNS name or IP address"),
            );
        }
        for (field, v) in [
            ("connect_timeout_ms", u.connect_timeout_ms),
            ("request_timeout_ms", u.request_timeout_ms),
        ] {
            if v == 0 {
                self.err(format!("{p}.{field}"), "must be greater than 0");
            }
        }
        let client_identity = match (&u.client_cert, &u.client_key) {
            (Some(c), Some(k)) => Some((resolve(c), resolve(k))),
            (None, None) => None,
            _ => {
                self.err(
                    format!("{p}.client_cert"),
                    "give both `client_cert` and `client_key`, or neither",
                );
                None
            }
        };
        let spki_pins = self.spki_pins(&p, &u.spki_pins);
        if scheme == UpstreamScheme::DangerousHttp
            && (client_identity.is_some() || !spki_pins.is_empty())
        {
            self.err(
                p.clone(),
                "client certificates and pins need an https upstream",
            );
        }
        if scheme == UpstreamScheme::DangerousHttp && !u.crls.is_empty() {
            self.err(format!("{p}.crls"), "CRLs need an https upstream");
        }
        let context_audience = u
            .context_audience
            .clone()
            .unwrap_or_else(|| name.to_owned());
        if context_audience.is_empty() {
            self.err(format!("{p}.context_audience"), "must not be empty");
        }
        Some(Upstream {
            name: name.to_owned(),
            scheme,
            client_identity,
            spki_pins,
            crls: u.crls.iter().map(|c| resolve(c)).collect(),
            context_audience,
            context_encrypt_to: u.context_encrypt_to.as_deref().map(resolve),
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            ca,
            server_name,
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            request_timeout: Duration::from_millis(u.request_timeout_ms),
            pool_idle_timeout: Duration::from_millis(u.pool_idle_timeout_ms),
            pool_max_idle_per_host: u.pool_max_idle_per_host,
        })
    }

    fn context_token(
        &mut self,
        raw: &RawConfig,
        identity: Option<&Identity>,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<ContextToken> {
        let default = schema::RawContextToken {
            enabled: true,
            header: None,
            issuer: None,
            keys_dir: None,
            lifetime_s: 30,
            rotate_after_s: 7 * 24 * 3600,
            overlap_s: 3600,
            jwks_bind: None,
        };
        let explicit = raw.context_token.is_some();
        let c = raw.context_token.as_ref().unwrap_or(&default);
        if !c.enabled {
            return None;
        }
        let p = "context_token";
        let keys_dir = match (&c.keys_dir, identity) {
            (Some(d), _) => resolve(d),
            (None, Some(i)) => i.data_dir.join("context-keys"),
            // Nowhere to keep a signing key: off, and `check` says so.
            (None, None) if !explicit => return None,
            (None, None) => {
                self.err(
                    format!("{p}.keys_dir"),
                    "missing: where the signing keys live (or configure `identity`, whose data_dir is the default)",
                );
                return None;
            }
        };
        if !(1..=portcullis_jose::context::MAX_LIFETIME_S as u64).contains(&c.lifetime_s) {
            self.err(format!("{p}.lifetime_s"), "must be 1 to 30 seconds");
        }
        if c.overlap_s < c.lifetime_s.max(60) {
            self.err(
                format!("{p}.overlap_s"),
                "must be at least 60 s and the token lifetime, so tokens signed by a replaced key still verify",
            );
        }
        if c.rotate_after_s <= c.overlap_s {
            self.err(
                format!("{p}.rotate_after_s"),
                "must be longer than overlap_s",
            );
        }
        let header = match &c.header {
            None => HeaderName::from_static(portcullis_jose::context::DEFAULT_HEADER),
            Some(h) => self.header_name(&format!("{p}.header"), h),
        };
        let jwks_bind = c.jwks_bind.as_ref().and_then(|b| match b.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Some(a),
            Ok(_) => {
                self.err(
                    format!("{p}.jwks_bind"),
                    "the JWKS is served over plain HTTP and only on a loopback address (never a public listener)",
                );
                None
            }
            Err(_) => {
                self.err(format!("{p}.jwks_bind"), format!("`{b}` is not IP:port"));
                None
            }
        });
        let issuer = c.issuer.clone().unwrap_or_else(|| "portcullis".into());
        if issuer.is_empty() {
            self.err(format!("{p}.issuer"), "must not be empty");
        }
        Some(ContextToken {
            header,
            issuer,
            keys_dir,
            lifetime: Duration::from_secs(c.lifetime_s),
            rotate_after: Duration::from_secs(c.rotate_after_s),
            overlap: Duration::from_secs(c.overlap_s),
            jwks_bind,
        })
    }

    fn anomalies(&mut self, a: &schema::RawAnomalies) -> Option<Anomalies> {
        if !a.enabled {
            return None;
        }
        if a.interval_s == 0 || a.interval_s > 3600 {
            self.err("anomalies.interval_s", "must be 1 to 3600 seconds");
        }
        if a.warmup_intervals < 3 {
            self.err("anomalies.warmup_intervals", "must be at least 3");
        }
        if !(a.factor >= 2.0 && a.factor <= 1000.0) {
            self.err("anomalies.factor", "must be 2 to 1000");
        }
        Some(Anomalies {
            interval: Duration::from_secs(a.interval_s.max(1)),
            warmup_intervals: a.warmup_intervals,
            factor: a.factor,
        })
    }

    fn events(&mut self, e: &schema::RawEvents, resolve: &dyn Fn(&str) -> PathBuf) -> Events {
        let spool = e.spool.as_ref().map(|s| {
            if s.max_mb == 0 {
                self.err("events.spool.max_mb", "must be at least 1");
            }
            Spool {
                dir: resolve(&s.dir),
                max_bytes: s.max_mb.saturating_mul(1024 * 1024),
            }
        });
        if spool.is_none() && (e.syslog.is_some() || e.http.is_some()) {
            self.err(
                "events.spool",
                "missing: remote sinks ship from a local spool so that no event is lost while they are down (add `spool: { dir: … }`)",
            );
        }
        let syslog = e.syslog.as_ref().and_then(|s| {
            let Some((host, port)) = s.address.rsplit_once(':') else {
                self.err("events.syslog.address", "not `host:port`");
                return None;
            };
            if port.parse::<u16>().is_err() || host.is_empty() {
                self.err("events.syslog.address", "not `host:port`");
                return None;
            }
            let host = host.trim_matches(['[', ']']).to_owned();
            if s.ca.is_none() && !is_loopback_host(&host) && !s.dangerous_plaintext {
                self.err(
                    "events.syslog.ca",
                    "missing: syslog off loopback goes over TLS with explicit trust anchors (or set dangerous_plaintext: true)",
                );
            }
            Some(Syslog {
                address: s.address.clone(),
                host,
                ca: s.ca.as_deref().map(resolve),
            })
        });
        let http = e.http.as_ref().and_then(|c| {
            let Ok(url) = c.url.parse::<http::Uri>() else {
                self.err("events.http.url", "not a URL");
                return None;
            };
            let loopback = is_loopback_host(url.host().unwrap_or(""));
            match url.scheme_str() {
                Some("https") if c.ca.is_none() => self.err(
                    "events.http.ca",
                    "missing: trust anchors for the collector must be explicit (a PEM bundle)",
                ),
                Some("http") if !loopback && !c.dangerous_plaintext => self.err(
                    "events.http.url",
                    "plaintext collectors are accepted on loopback only: use https:// (or set dangerous_plaintext: true)",
                ),
                Some("https" | "http") => {}
                _ => self.err("events.http.url", "must start with https:// or http://"),
            }
            if c.batch == 0 || c.batch > 10_000 {
                self.err("events.http.batch", "must be 1 to 10000");
            }
            Some(Collector {
                url,
                ca: c.ca.as_deref().map(resolve),
                batch: c.batch,
            })
        });
        if e.file_max_mb == 0 {
            self.err("events.file_max_mb", "must be at least 1");
        }
        Events {
            stdout: e.stdout,
            file: e.file.as_deref().map(resolve),
            file_max_bytes: e.file_max_mb.saturating_mul(1024 * 1024),
            file_keep: e.file_keep,
            spool,
            syslog,
            http,
        }
    }

    fn server_tls(
        &mut self,
        p: &str,
        t: &schema::RawServerTls,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> ServerTls {
        let allow_tls12 = match t.min_version.as_deref() {
            None | Some("1.3") => false,
            Some("1.2") => true,
            Some(v) => {
                self.err(
                    format!("{p}.min_version"),
                    format!("`{v}` is not supported: use \"1.3\" (default) or \"1.2\""),
                );
                false
            }
        };
        ServerTls {
            cert: resolve(&t.cert),
            key: resolve(&t.key),
            allow_tls12,
            client_auth: t.client_auth.as_ref().map(|c| ClientAuth {
                required: c.mode == schema::RawClientAuthMode::Required,
                ca: resolve(&c.ca),
                crls: c.crls.iter().map(|p| resolve(p)).collect(),
                allow_stale_crl: c.allow_stale_crl,
            }),
        }
    }

    fn admin(
        &mut self,
        a: &schema::RawAdmin,
        raw: &RawConfig,
        listeners: &[Listener],
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<AdminListen> {
        if raw.identity.is_none() {
            self.err(
                "admin",
                "the admin plane manages the store: add an `identity` section",
            );
        }
        match (&a.bind, &a.unix) {
            (Some(bind), None) => {
                let Ok(addr) = bind.parse::<SocketAddr>() else {
                    self.err("admin.bind", "not an address like 127.0.0.1:9444");
                    return None;
                };
                let tls = a
                    .tls
                    .as_ref()
                    .map(|t| self.server_tls("admin.tls", t, resolve));
                let mutual = tls
                    .as_ref()
                    .is_some_and(|t| t.client_auth.as_ref().is_some_and(|c| c.required));
                if tls.is_some() && !mutual {
                    self.err(
                        "admin.tls.client_auth",
                        "the admin listener's TLS is mutual: set `client_auth: { mode: required, ca: <the CA of administrators' certificates> }`",
                    );
                    return None;
                }
                if !addr.ip().is_loopback() && !mutual {
                    self.err(
                        "admin.bind",
                        "an admin listener off loopback requires mutual TLS: add `tls` with `client_auth: { mode: required, ca: … }`, or bind to loopback",
                    );
                    return None;
                }
                if addr.port() != 0 && listeners.iter().any(|l| l.bind.port() == addr.port()) {
                    self.err(
                        "admin.bind",
                        "never on a data-plane listener's port: choose another",
                    );
                    return None;
                }
                Some(match tls {
                    Some(tls) => AdminListen::MutualTls { addr, tls },
                    None => AdminListen::Tcp(addr),
                })
            }
            (None, Some(path)) if !path.is_empty() && a.tls.is_none() => {
                Some(AdminListen::Unix(resolve(path)))
            }
            _ => {
                self.err("admin", "set exactly one of `bind` (loopback) and `unix`");
                None
            }
        }
    }

    fn postgres(&mut self, r: &schema::RawPostgres, resolve: &dyn Fn(&str) -> PathBuf) -> Postgres {
        let p = "shared_state.postgres";
        for (field, value) in [("host", &r.host), ("dbname", &r.dbname), ("user", &r.user)] {
            if value.is_empty() {
                self.err(format!("{p}.{field}"), "must not be empty");
            }
        }
        let loopback = is_loopback_host(&r.host);
        let ca = r.ca.as_deref().map(resolve);
        if ca.is_none() && !loopback && !r.dangerous_plaintext {
            self.err(
                format!("{p}.ca"),
                "missing: PostgreSQL off loopback needs TLS with explicit trust anchors (a PEM bundle), or dangerous_plaintext: true",
            );
        }
        if r.connect_timeout_ms == 0 || r.connect_timeout_ms > 30_000 {
            self.err(format!("{p}.connect_timeout_ms"), "must be 1 to 30000 ms");
        }
        if r.resync_s == 0 || r.resync_s > 3600 {
            self.err(format!("{p}.resync_s"), "must be 1 to 3600 seconds");
        }
        Postgres {
            host: r.host.clone(),
            port: r.port,
            dbname: r.dbname.clone(),
            user: r.user.clone(),
            password_file: r.password_file.as_deref().map(resolve),
            ca: ca.clone(),
            connect_timeout: Duration::from_millis(r.connect_timeout_ms),
            resync: Duration::from_secs(r.resync_s),
            plaintext_remote: ca.is_none() && !loopback,
        }
    }

    fn redis(&mut self, r: &schema::RawRedis, resolve: &dyn Fn(&str) -> PathBuf) -> Option<Redis> {
        let p = "shared_state.redis";
        let Ok(uri) = r.url.parse::<http::Uri>() else {
            self.err(format!("{p}.url"), "not a URL like rediss://host:6380/0");
            return None;
        };
        let loopback = is_loopback_host(uri.host().unwrap_or(""));
        let ca = r.ca.as_deref().map(resolve);
        match uri.scheme_str() {
            Some("rediss") if ca.is_none() => self.err(
                format!("{p}.ca"),
                "missing: trust anchors for Redis TLS must be explicit (a PEM bundle)",
            ),
            Some("rediss") => {}
            Some("redis") if !loopback && !r.dangerous_plaintext => self.err(
                format!("{p}.url"),
                "plaintext Redis is accepted on loopback only: use rediss:// (or set dangerous_plaintext: true)",
            ),
            Some("redis") => {}
            _ => self.err(format!("{p}.url"), "must start with rediss:// or redis://"),
        }
        if r.timeout_ms == 0 || r.timeout_ms > 5000 {
            self.err(format!("{p}.timeout_ms"), "must be 1 to 5000 ms");
        }
        Some(Redis {
            url: r.url.clone(),
            ca,
            timeout: Duration::from_millis(r.timeout_ms),
            fall_back_to_local: r.on_failure == schema::RawOnFailure::Local,
            plaintext_remote: uri.scheme_str() == Some("redis") && !loopback,
        })
    }

    fn sensitive(&mut self, raw: &schema::RawSensitiveData) -> SensitiveData {
        let mut names: Vec<String> = raw.names.clone().unwrap_or_else(|| {
            portcullis_contract::sensitive::DEFAULT_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        });
        names.extend(raw.extra_names.iter().cloned());
        for (i, n) in names.iter_mut().enumerate() {
            *n = n.to_ascii_lowercase();
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric()) {
                self.err(
                    format!("sensitive_data.names[{i}]"),
                    "a name is letters and digits only (it is matched against the words of a parameter name)",
                );
            }
        }
        SensitiveData {
            names,
            patterns: portcullis_contract::sensitive::Patterns {
                email: raw.email,
                card: raw.card,
                national_id: raw.national_id,
                token: raw.token,
            },
        }
    }

    /// Compiles an API's OpenAPI document into routes (AUTHN-06, AUTHZ-02, AUTHZ-11).
    fn contract_routes(
        &mut self,
        p: &str,
        file: &Path,
        raw: &schema::RawContract,
        identity: Option<&Identity>,
        sensitive: &SensitiveData,
    ) -> Vec<Route> {
        let at = format!("{p}.openapi");
        if raw.max_json_depth == 0 || raw.max_json_depth > 100 {
            self.err(format!("{p}.contract.max_json_depth"), "must be 1 to 100");
        }
        if raw.max_json_string_bytes == 0 {
            self.err(
                format!("{p}.contract.max_json_string_bytes"),
                "must be greater than 0",
            );
        }
        let options = portcullis_contract::Options {
            unknown_properties: match raw.unknown_properties {
                schema::RawUnknownProperties::Strip => {
                    portcullis_contract::UnknownProperties::Strip
                }
                schema::RawUnknownProperties::Reject => {
                    portcullis_contract::UnknownProperties::Reject
                }
            },
            json: portcullis_contract::JsonLimits {
                max_depth: raw.max_json_depth.clamp(1, 100),
                max_string_bytes: raw.max_json_string_bytes,
            },
            api_key_header: identity.map(|i| i.api_key_header.as_str().to_owned()),
            strip_responses: raw.strip_undeclared_responses,
            validate_responses: raw.validate_responses,
            sensitive_names: sensitive.names.clone(),
        };
        let contract = match portcullis_contract::load(file, &options) {
            Ok(c) => c,
            Err(errors) => {
                for e in errors {
                    self.err(format!("{at}#{}", e.pointer), e.message);
                }
                return Vec::new();
            }
        };
        let known = |id: &str| contract.operations.iter().any(|o| o.id == id);
        for (list, name) in [
            (&raw.public_operations, "public_operations"),
            (&raw.allow_pii, "allow_pii"),
        ] {
            for (i, id) in list.iter().enumerate() {
                if !known(id) {
                    self.err(
                        format!("{p}.contract.{name}[{i}]"),
                        format!("no operation `{id}` in {}", file.display()),
                    );
                }
            }
        }
        let mut out = Vec::new();
        for op in &contract.operations {
            if let Some(problem) = template_problem(&op.path, true) {
                self.err(format!("{at}#{}", op.pointer), problem);
                continue;
            }
            let listed_public = raw.public_operations.iter().any(|id| *id == op.id);
            let auth = match &op.security {
                portcullis_contract::Security::None if listed_public => AuthPolicy::Public,
                portcullis_contract::Security::None => {
                    self.err(
                        format!("{at}#{}/security", op.pointer),
                        format!("operation `{}` has no security requirement: declare one, or list it in {p}.contract.public_operations to make it public on purpose", op.id),
                    );
                    continue;
                }
                portcullis_contract::Security::Required { .. } if listed_public => {
                    self.err(
                        format!("{p}.contract.public_operations"),
                        format!("operation `{}` has a security requirement; remove it from public_operations", op.id),
                    );
                    continue;
                }
                portcullis_contract::Security::Required {
                    api_key,
                    token,
                    scopes,
                } => AuthPolicy::Protected(Protected {
                    api_key: *api_key,
                    token: *token,
                    scopes: scopes.clone(),
                    apps: Vec::new(),
                    issuers: Vec::new(),
                    bind_token_to_application: false,
                }),
            };
            out.push(Route {
                path: op.path.clone(),
                methods: vec![op.method.clone()],
                auth,
                environments: op.environments.clone(),
                allow_pii: raw.allow_pii.iter().any(|id| *id == op.id),
                operation: Some(op.clone()),
                rate_limits: Vec::new(),
                concurrency: None,
            });
        }
        out
    }

    fn apis(
        &mut self,
        raw: &RawConfig,
        upstreams: &[Upstream],
        identity: Option<&Identity>,
        sensitive: &SensitiveData,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Vec<Api> {
        let mut mounts = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut out = Vec::new();
        if raw.apis.is_empty() {
            self.err("apis", "at least one API is required");
        }
        for (a, api) in raw.apis.iter().enumerate() {
            let p = format!("apis[{a}]");
            if !names.insert(api.name.clone()) {
                self.err(
                    format!("{p}.name"),
                    format!("duplicate API name `{}`", api.name),
                );
            }
            let base_path = match api.base_path.as_deref() {
                None | Some("/") => String::new(),
                Some(b) => {
                    let trimmed = b.trim_end_matches('/');
                    if !b.starts_with('/') || template_problem(trimmed, false).is_some() {
                        self.err(
                            format!("{p}.base_path"),
                            "must be a literal path like /v1 (letters, digits, . _ ~ -)",
                        );
                    }
                    trimmed.to_owned()
                }
            };
            let mut hosts: Vec<String> = api.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
            hosts.sort();
            for h in &hosts {
                if h.is_empty() || h.contains([':', '/', ' ']) {
                    self.err(
                        format!("{p}.hosts"),
                        format!("`{h}` is not a host name (no port)"),
                    );
                }
            }
            if !mounts.insert((hosts.clone(), base_path.clone())) {
                self.err(
                    format!("{p}.base_path"),
                    "another API is mounted at the same hosts and base path",
                );
            }
            let upstream = upstreams.iter().position(|u| u.name == api.upstream);
            if upstream.is_none() {
                self.err(
                    format!("{p}.upstream"),
                    format!("no upstream named `{}` in `upstreams`", api.upstream),
                );
            }
            let cors = api
                .cors
                .as_ref()
                .map(|c| self.cors(&format!("{p}.cors"), c));
            let openapi = api.openapi.as_deref().map(resolve);
            let routes = match &openapi {
                Some(_) if !api.routes.is_empty() => {
                    self.err(
                        format!("{p}.routes"),
                        "give either `openapi` (routes come from the document) or `routes`, not both",
                    );
                    Vec::new()
                }
                Some(file) => self.contract_routes(&p, file, &api.contract, identity, sensitive),
                None => self.routes(&p, &api.routes),
            };
            let mut routes = routes;
            let rate_limits = self.limits_for(&p, api, &mut routes);
            self.token_binding(&p, api, identity, &mut routes);
            out.push(Api {
                name: api.name.clone(),
                hosts,
                base_path,
                upstream: upstream.unwrap_or(0),
                cors,
                routes,
                openapi,
                owner: api.owner.clone(),
                rate_limits,
                tighten_on_anomaly: api.tighten_on_anomaly,
            });
        }
        out
    }

    /// Validates `rate_limits` and `route_limits` and attaches the latter to
    /// their routes; returns the API-wide limits. A limit keyed by
    /// application or subject needs every route it covers to establish one.
    fn limits_for(
        &mut self,
        p: &str,
        api: &schema::RawApi,
        routes: &mut [Route],
    ) -> Vec<RateLimit> {
        let api_limits: Vec<RateLimit> = api
            .rate_limits
            .iter()
            .enumerate()
            .map(|(i, l)| self.rate_limit(&format!("{p}.rate_limits[{i}]"), l))
            .collect();
        for (i, l) in api_limits.iter().enumerate() {
            for route in routes.iter() {
                self.limit_key_available(&format!("{p}.rate_limits[{i}].per"), l.per, route);
            }
        }
        for (name, raw) in &api.route_limits {
            let rp = format!("{p}.route_limits.{name}");
            let Some(route) = self.named_route(&rp, name, routes) else {
                continue;
            };
            for (i, l) in raw.rate_limits.iter().enumerate() {
                let lp = format!("{rp}.rate_limits[{i}]");
                let limit = self.rate_limit(&lp, l);
                self.limit_key_available(&format!("{lp}.per"), limit.per, route);
                route.rate_limits.push(limit);
            }
            if raw.concurrency == Some(0) {
                self.err(format!("{rp}.concurrency"), "must be at least 1");
            }
            route.concurrency = raw.concurrency;
        }
        api_limits
    }

    /// The route a per-route setting names: an `operationId` of the
    /// document, or the `path` of a hand-written route.
    fn named_route<'r>(
        &mut self,
        p: &str,
        name: &str,
        routes: &'r mut [Route],
    ) -> Option<&'r mut Route> {
        let found = routes.iter_mut().find(|r| {
            r.operation
                .as_ref()
                .map_or(r.path == name, |op| op.id == name)
        });
        if found.is_none() {
            self.err(
                p,
                "no such route: name an `operationId` of the document, or the `path` of a hand-written route",
            );
        }
        found
    }

    fn rate_limit(&mut self, p: &str, l: &schema::RawRateLimit) -> RateLimit {
        if l.requests == 0 {
            self.err(format!("{p}.requests"), "must be at least 1");
        }
        if l.per_seconds == 0 || l.per_seconds > 86_400 {
            self.err(format!("{p}.per_seconds"), "must be 1 to 86400 seconds");
        }
        let burst = l.burst.unwrap_or(l.requests);
        if burst == 0 {
            self.err(format!("{p}.burst"), "must be at least 1");
        }
        RateLimit {
            per: match l.per {
                schema::RawLimitKey::Application => LimitKey::Application,
                schema::RawLimitKey::Subject => LimitKey::Subject,
                schema::RawLimitKey::Route => LimitKey::Route,
                schema::RawLimitKey::Client => LimitKey::Client,
            },
            requests: l.requests.max(1),
            period: Duration::from_secs(l.per_seconds.max(1)),
            burst: burst.max(1),
        }
    }

    fn limit_key_available(&mut self, p: &str, key: LimitKey, route: &Route) {
        let (needed, has) = match (key, &route.auth) {
            (LimitKey::Application, AuthPolicy::Protected(pr)) => ("an API key", pr.api_key),
            (LimitKey::Subject, AuthPolicy::Protected(pr)) => ("a bearer token", pr.token),
            (LimitKey::Application, AuthPolicy::Public) => ("an API key", false),
            (LimitKey::Subject, AuthPolicy::Public) => ("a bearer token", false),
            (LimitKey::Route | LimitKey::Client, _) => return,
        };
        if !has {
            self.err(
                p,
                format!(
                    "keyed by {} but `{}` does not require {needed}: use `client` or `route` there",
                    key.as_str(),
                    route.path
                ),
            );
        }
    }

    fn routes(&mut self, p: &str, raw: &[schema::RawRoute]) -> Vec<Route> {
        if raw.is_empty() {
            self.err(
                format!("{p}.routes"),
                "an API needs `openapi` (its document; recommended) or at least one route",
            );
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (r, route) in raw.iter().enumerate() {
            let rp = format!("{p}.routes[{r}]");
            if let Some(problem) = template_problem(&route.path, true) {
                self.err(format!("{rp}.path"), problem);
            }
            if route.methods.is_empty() {
                self.err(format!("{rp}.methods"), "at least one method is required");
            }
            let mut methods = Vec::new();
            for (m, name) in route.methods.iter().enumerate() {
                let upper = name.to_ascii_uppercase();
                let method = match upper.as_str() {
                    "GET" => Method::GET,
                    "HEAD" => Method::HEAD,
                    "POST" => Method::POST,
                    "PUT" => Method::PUT,
                    "PATCH" => Method::PATCH,
                    "DELETE" => Method::DELETE,
                    "OPTIONS" => Method::OPTIONS,
                    _ => {
                        self.err(
                            format!("{rp}.methods[{m}]"),
                            format!(
                                "`{name}` is not allowed: use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS (TRACE and CONNECT are never routed)"
                            ),
                        );
                        continue;
                    }
                };
                if !seen.insert((shape_of(&route.path), upper.clone())) {
                    self.err(
                        format!("{rp}.methods[{m}]"),
                        format!("{upper} {} is declared twice", route.path),
                    );
                }
                methods.push(method);
            }
            let auth = match &route.auth {
                RawAuthPolicy::Public => AuthPolicy::Public,
                RawAuthPolicy::Protected(p) => {
                    if !p.api_key && !p.token {
                        self.err(
                            format!("{rp}.auth"),
                            "a protected route needs `api_key: true`, `token: true` or both (or write `public`)",
                        );
                    }
                    if !p.scopes.is_empty() && !p.token {
                        self.err(
                            format!("{rp}.auth.scopes"),
                            "scopes are checked on tokens: set `token: true`",
                        );
                    }
                    if !p.apps.is_empty() && !p.api_key {
                        self.err(
                            format!("{rp}.auth.apps"),
                            "applications are identified by API key: set `api_key: true`",
                        );
                    }
                    for (i, sc) in p.scopes.iter().enumerate() {
                        if sc.is_empty()
                            || !sc
                                .bytes()
                                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                        {
                            self.err(format!("{rp}.auth.scopes[{i}]"), "a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)");
                        }
                    }
                    AuthPolicy::Protected(Protected {
                        api_key: p.api_key,
                        token: p.token,
                        scopes: p.scopes.clone(),
                        apps: p.apps.clone(),
                        issuers: Vec::new(),
                        bind_token_to_application: false,
                    })
                }
            };
            out.push(Route {
                path: route.path.clone(),
                methods,
                auth,
                operation: None,
                environments: None,
                allow_pii: false,
                rate_limits: Vec::new(),
                concurrency: None,
            });
        }
        out
    }

    /// AUTHZ-02: which issuers' tokens an API accepts, and whether a token
    /// must belong to the application calling with it.
    fn token_binding(
        &mut self,
        p: &str,
        api: &schema::RawApi,
        identity: Option<&Identity>,
        routes: &mut [Route],
    ) {
        let configured: Vec<&str> = identity
            .map(|i| {
                i.issuers
                    .iter()
                    .map(|x| x.issuer.as_str())
                    .chain(i.introspection.as_ref().map(|x| x.issuer.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        for (n, iss) in api.token_issuers.iter().enumerate() {
            if !configured.contains(&iss.as_str()) {
                self.err(
                    format!("{p}.token_issuers[{n}]"),
                    format!("`{iss}` is not a configured issuer (identity.issuers[].issuer or identity.introspection.issuer)"),
                );
            }
        }
        let takes_tokens = routes
            .iter()
            .any(|r| matches!(&r.auth, AuthPolicy::Protected(x) if x.token));
        if takes_tokens && configured.len() > 1 && api.token_issuers.is_empty() {
            self.err(
                format!("{p}.token_issuers"),
                "required when more than one issuer is configured: name the issuers whose tokens this API accepts",
            );
        }
        for route in routes.iter_mut() {
            if let AuthPolicy::Protected(x) = &mut route.auth
                && x.token
            {
                x.issuers.clone_from(&api.token_issuers);
                x.bind_token_to_application = api.bind_token_to_application && x.api_key;
            }
        }
        for (name, list) in &api.route_token_issuers {
            let rp = format!("{p}.route_token_issuers.{name}");
            let allowed: &[String] = &api.token_issuers;
            if list.is_empty() {
                self.err(
                    &rp,
                    "name at least one issuer (leave the route out to accept the API's list)",
                );
            }
            for (n, iss) in list.iter().enumerate() {
                let within = if allowed.is_empty() {
                    configured.contains(&iss.as_str())
                } else {
                    allowed.contains(iss)
                };
                if !within {
                    self.err(
                        format!("{rp}[{n}]"),
                        format!("`{iss}` is not among the issuers this API accepts (apis[].token_issuers): a route may only narrow them"),
                    );
                }
            }
            let Some(route) = self.named_route(&rp, name, routes) else {
                continue;
            };
            match &mut route.auth {
                AuthPolicy::Protected(x) if x.token => x.issuers.clone_from(list),
                _ => self.err(&rp, "this route takes no token"),
            }
        }
        if api.bind_token_to_application && !takes_tokens {
            self.err(
                format!("{p}.bind_token_to_application"),
                "no route of this API takes a token",
            );
        }
    }

    fn identity(&mut self, i: &schema::RawIdentity, resolve: &dyn Fn(&str) -> PathBuf) -> Identity {
        let api_key_header = match &i.api_key_header {
            None => HeaderName::from_static("x-api-key"),
            Some(h) => self.header_name("identity.api_key_header", h),
        };
        if i.max_token_bytes < 256 {
            self.err("identity.max_token_bytes", "must be at least 256");
        }
        let mut issuers = Vec::new();
        for (n, is) in i.issuers.iter().enumerate() {
            let issuer = self.issuer(&format!("identity.issuers[{n}]"), is, &issuers, resolve);
            issuers.push(issuer);
        }
        let path = |v: &mut Self, field: &str, value: Option<&String>, default: &str| -> String {
            let p = value.map_or(default, String::as_str).to_owned();
            if template_problem(&p, false).is_some() || p == "/" {
                v.err(
                    format!("identity.{field}"),
                    "must be a literal path like /oauth2/revoke",
                );
            }
            p
        };
        let introspection = i
            .introspection
            .as_ref()
            .map(|x| self.introspection(x, resolve));
        if i.max_staleness_s == 0 {
            self.err("identity.max_staleness_s", "must be greater than 0");
        }
        Identity {
            introspection,
            data_dir: resolve(&i.data_dir),
            postgres: None,
            api_key_header,
            clock_skew: Duration::from_secs(i.clock_skew_s),
            max_staleness: Duration::from_secs(i.max_staleness_s),
            max_token_bytes: i.max_token_bytes,
            issuers,
            decryption_keys: i
                .decryption_keys
                .iter()
                .map(|k| (k.kid.clone(), resolve(&k.key)))
                .collect(),
            revocation_path: path(
                self,
                "revocation_path",
                i.revocation_path.as_ref(),
                "/oauth2/revoke",
            ),
            revoke_all_path: path(
                self,
                "revoke_all_path",
                i.revoke_all_path.as_ref(),
                "/oauth2/revoke-all",
            ),
        }
    }

    /// One token issuer: name, audiences, asymmetric algorithms only
    /// (AUTHN-07), where its keys come from.
    fn issuer(
        &mut self,
        p: &str,
        is: &schema::RawIssuer,
        earlier: &[Issuer],
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Issuer {
        if is.issuer.is_empty() {
            self.err(format!("{p}.issuer"), "must not be empty");
        }
        if is.audiences.is_empty() {
            self.err(
                format!("{p}.audiences"),
                "list at least one accepted audience",
            );
        }
        let algorithms: Vec<String> = if is.algorithms.is_empty() {
            DEFAULT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect()
        } else {
            is.algorithms.clone()
        };
        for (k, a) in algorithms.iter().enumerate() {
            if !ASYMMETRIC_ALGORITHMS.contains(&a.as_str()) {
                let why = if a.starts_with("HS") {
                    "symmetric (HMAC) algorithms are not accepted: a shared secret at the gateway can mint tokens"
                } else if a.eq_ignore_ascii_case("none") {
                    "unsigned tokens are never accepted"
                } else {
                    "unknown algorithm"
                };
                self.err(
                    format!("{p}.algorithms[{k}]"),
                    format!("`{a}`: {why}; use {}", ASYMMETRIC_ALGORITHMS.join(", ")),
                );
            }
        }
        if earlier.iter().any(|x| x.issuer == is.issuer) {
            self.err(format!("{p}.issuer"), "duplicate issuer");
        }
        let jwks = self.jwks_source(p, is, resolve);
        Issuer {
            issuer: is.issuer.clone(),
            audiences: is.audiences.clone(),
            jwks,
            algorithms,
            require_typ: is.require_typ.clone(),
        }
    }

    /// An issuer's keys: a file, or an https URL with explicit trust anchors.
    fn jwks_source(
        &mut self,
        p: &str,
        is: &schema::RawIssuer,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> JwksSource {
        match (&is.jwks_file, &is.jwks_url) {
            (Some(f), None) => JwksSource::File(resolve(f)),
            (None, Some(u)) => {
                let url = u
                    .parse::<http::Uri>()
                    .ok()
                    .filter(|u| u.scheme_str() == Some("https") && u.host().is_some());
                if url.is_none() {
                    self.err(
                        format!("{p}.jwks_url"),
                        format!(
                            "`{u}` is not an https:// URL (keys are never fetched in plaintext)"
                        ),
                    );
                }
                if is.jwks_ca.is_none() {
                    self.err(format!("{p}.jwks_ca"), "missing: trust anchors for the JWKS server must be explicit (a PEM bundle)");
                }
                if is.jwks_refresh_s < 10 {
                    self.err(format!("{p}.jwks_refresh_s"), "must be at least 10");
                }
                if is.jwks_refetch_interval_s < 1 {
                    self.err(format!("{p}.jwks_refetch_interval_s"), "must be at least 1");
                }
                JwksSource::Url {
                    url: url.unwrap_or_default(),
                    ca: resolve(is.jwks_ca.as_deref().unwrap_or("")),
                    refresh: Duration::from_secs(is.jwks_refresh_s),
                    min_refetch: Duration::from_secs(is.jwks_refetch_interval_s),
                }
            }
            _ => {
                self.err(
                    format!("{p}.jwks_file"),
                    "set exactly one of `jwks_file` and `jwks_url`",
                );
                JwksSource::File(PathBuf::new())
            }
        }
    }

    /// Token introspection (RFC 7662) over https only.
    fn introspection(
        &mut self,
        x: &schema::RawIntrospection,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Introspection {
        let url = x
            .url
            .parse::<http::Uri>()
            .ok()
            .filter(|u| u.scheme_str() == Some("https") && u.host().is_some());
        if url.is_none() {
            self.err(
                "identity.introspection.url",
                format!(
                    "`{}` is not an https:// URL (tokens are never sent in plaintext)",
                    x.url
                ),
            );
        }
        if x.client_id.is_empty() || x.client_id.contains(':') {
            self.err(
                "identity.introspection.client_id",
                "must be non-empty and contain no `:`",
            );
        }
        Introspection {
            url: url.unwrap_or_default(),
            ca: resolve(&x.ca),
            client_id: x.client_id.clone(),
            client_secret_file: resolve(&x.client_secret_file),
            issuer: x.issuer.clone(),
            audiences: x.audiences.clone(),
        }
    }

    fn protected_routes_have_identity(&mut self, apis: &[Api], identity: Option<&Identity>) {
        for (a, api) in apis.iter().enumerate() {
            for (r, route) in api.routes.iter().enumerate() {
                let AuthPolicy::Protected(p) = &route.auth else {
                    continue;
                };
                let at = match &route.operation {
                    Some(op) => format!("apis[{a}].openapi#{}/security", op.pointer),
                    None => format!("apis[{a}].routes[{r}].auth"),
                };
                match identity {
                    None => self.err(
                        at,
                        "protected routes need an `identity` section (data_dir, issuers)",
                    ),
                    Some(i) if p.token && i.issuers.is_empty() && i.introspection.is_none() => self.err(
                        format!("{at}.token"),
                        "tokens need at least one entry in identity.issuers (or identity.introspection)",
                    ),
                    Some(_) => {}
                }
            }
        }
    }

    fn cors(&mut self, p: &str, c: &schema::RawCors) -> Cors {
        let origins = if c.allowed_origins.iter().any(|o| o == "*") {
            if c.allowed_origins.len() > 1 {
                self.err(
                    format!("{p}.allowed_origins"),
                    "`*` cannot be combined with other origins",
                );
            }
            if c.allow_credentials {
                self.err(
                    format!("{p}.allow_credentials"),
                    "credentials cannot be allowed for any origin (`*`): list the origins",
                );
            }
            AllowedOrigins::Any
        } else {
            let mut list = Vec::new();
            for (i, o) in c.allowed_origins.iter().enumerate() {
                let ok = (o.starts_with("https://") || o.starts_with("http://"))
                    && !o
                        .trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .contains('/')
                    && o.len() > "https://".len() - 1;
                match HeaderValue::from_str(o) {
                    Ok(v) if ok => list.push(v),
                    _ => self.err(
                        format!("{p}.allowed_origins[{i}]"),
                        format!("`{o}` is not an origin like https://app.example.com"),
                    ),
                }
            }
            if list.is_empty() && c.allowed_origins.is_empty() {
                self.err(
                    format!("{p}.allowed_origins"),
                    "list at least one origin, or remove `cors`",
                );
            }
            AllowedOrigins::List(list)
        };
        let names = |v: &mut Self, field: &str, list: &[String]| -> Vec<HeaderName> {
            list.iter()
                .enumerate()
                .map(|(i, h)| v.header_name(&format!("{p}.{field}[{i}]"), h))
                .collect()
        };
        Cors {
            origins,
            allow_credentials: c.allow_credentials,
            allowed_headers: names(self, "allowed_headers", &c.allowed_headers),
            expose_headers: names(self, "expose_headers", &c.expose_headers),
            max_age_s: c.max_age_s,
        }
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
        assert!(errs[0].starts_with("apis[0].routes[0]"), "{errs:?}");
        assert!(errs[0].contains("missing field `auth`"), "{errs:?}");
    }

    #[test]
    fn unknown_field_is_an_error_with_path() {
        let text = MINIMAL.replace("upstream: orders\n", "upstream: orders\n    colour: blue\n");
        let errs = errors(&text);
        assert!(errs[0].starts_with("apis[0]"), "{errs:?}");
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
            errs[0].starts_with("apis[0].routes[0].auth") && errs[0].contains("not a policy"),
            "{errs:?}"
        );
    }

    #[test]
    fn invalid_yaml_reports_location() {
        let errs = errors("listeners: [\n");
        assert_eq!(errs.len(), 1);
    }
}
