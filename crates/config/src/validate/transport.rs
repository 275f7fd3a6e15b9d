//! Validation of listeners, connection limits, upstreams and the admin
//! plane: TLS everywhere unless a `dangerous_*` opt-in says otherwise.
//! TLS-04 (no plaintext upstream without the dangerous opt-in), OPS-05
//! (the admin plane on loopback, a unix socket or mutual TLS).

use crate::schema::{RawConfig, RawPlaintext};
use crate::{
    AdminListen, Balance, ClientAuth, HealthCheck, Limits, Listener, ListenerKind, Mode,
    OutlierDetection, Retries, ServerTls, Upstream, UpstreamScheme, Validator, rustls_name_ok,
    schema,
};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

impl Validator {
    pub(crate) fn listeners(
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

    pub(crate) fn limits(&mut self, l: &schema::RawLimits) -> Limits {
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
    pub(crate) fn upstream_scheme(
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
    pub(crate) fn spki_pins(&mut self, p: &str, pins: &[String]) -> Vec<[u8; 32]> {
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

    pub(crate) fn upstream(
        &mut self,
        name: &str,
        u: &schema::RawUpstream,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<Upstream> {
        let p = format!("upstreams.{name}");
        let (uri, targets) = self.upstream_targets(&p, u)?;
        let scheme = self.upstream_scheme(&p, u, &uri)?;
        let authority = targets[0].clone();
        let ca = u.ca.as_deref().map(resolve);
        if scheme == UpstreamScheme::Https && ca.is_none() {
            self.err(
                format!("{p}.ca"),
                "missing: trust anchors for upstream TLS must be explicit (a PEM bundle)",
            );
        }
        if u.server_name.is_none() && targets.iter().any(|t| t.host() != authority.host()) {
            self.err(
                format!("{p}.server_name"),
                "targets on several hosts share one TLS identity: name it (the name every target's certificate carries)",
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
            targets,
            balance: match u.balance {
                schema::RawBalance::RoundRobin => Balance::RoundRobin,
                schema::RawBalance::LeastOutstanding => Balance::LeastOutstanding,
                schema::RawBalance::ConsistentHash => Balance::ConsistentHash,
            },
            hash_header: self.hash_header(&p, u),
            health_check: u
                .health_check
                .as_ref()
                .and_then(|h| self.health_check(&p, h)),
            outlier: self.outlier(&p, &u.outlier_detection),
            retries: self.retries(&p, &u.retries, u.request_timeout_ms),
            max_requests_per_target: self.bounded(
                &format!("{p}.max_requests_per_target"),
                u.max_requests_per_target,
                1..=1_000_000,
            ),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            ca,
            server_name,
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            request_timeout: Duration::from_millis(u.request_timeout_ms),
            pool_idle_timeout: Duration::from_millis(u.pool_idle_timeout_ms),
            pool_max_idle_per_host: u.pool_max_idle_per_host,
        })
    }

    pub(crate) fn server_tls(
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

    pub(crate) fn admin(
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
}

impl Validator {
    /// Worker threads (`None`: one per core) and the shutdown grace.
    pub(crate) fn runtime(&mut self, r: &schema::RawRuntime) -> (Option<usize>, Duration) {
        if r.shutdown_grace_s > 600 {
            self.err("runtime.shutdown_grace_s", "at most 600 (seconds)");
        }
        (
            (r.worker_threads > 0).then_some(r.worker_threads),
            Duration::from_secs(r.shutdown_grace_s),
        )
    }

    /// The probes' listener: plain HTTP serving `/healthz` and `/readyz`
    /// only, so any address is allowed, but never a port another listener
    /// holds (a probe must not be answered by the data or admin plane).
    pub(crate) fn health(
        &mut self,
        h: Option<&schema::RawHealth>,
        listeners: &[Listener],
        admin: Option<&AdminListen>,
    ) -> Option<SocketAddr> {
        let h = h?;
        let Ok(addr) = h.bind.parse::<SocketAddr>() else {
            self.err("health.bind", "not an address like 0.0.0.0:8081");
            return None;
        };
        let admin_port = match admin {
            Some(AdminListen::Tcp(a) | AdminListen::MutualTls { addr: a, .. }) => Some(a.port()),
            _ => None,
        };
        let taken = listeners.iter().map(|l| l.bind.port()).chain(admin_port);
        if addr.port() != 0 && taken.into_iter().any(|p| p == addr.port()) {
            self.err(
                "health.bind",
                "never on a data-plane or admin listener's port: choose another",
            );
            return None;
        }
        Some(addr)
    }
}

/// Target pools: where an upstream's requests may go and what happens
/// when a target fails.
impl Validator {
    /// The first target's URL (scheme and path of all) and every target's
    /// authority: `url`, or `targets` of one scheme and one path.
    fn upstream_targets(
        &mut self,
        p: &str,
        u: &schema::RawUpstream,
    ) -> Option<(http::Uri, Vec<http::uri::Authority>)> {
        let (field, urls): (&str, Vec<&String>) = match (&u.url, u.targets.is_empty()) {
            (Some(url), true) => ("url", vec![url]),
            (None, false) => ("targets", u.targets.iter().collect()),
            (Some(_), false) => {
                self.err(format!("{p}.targets"), "give `url` or `targets`, not both");
                return None;
            }
            (None, true) => {
                self.err(
                    format!("{p}.url"),
                    "missing: the upstream's `url` (or its `targets`)",
                );
                return None;
            }
        };
        let mut first: Option<http::Uri> = None;
        let mut targets = Vec::new();
        for (i, url) in urls.into_iter().enumerate() {
            let at = if field == "url" {
                format!("{p}.url")
            } else {
                format!("{p}.targets[{i}]")
            };
            let Ok(uri) = url.parse::<http::Uri>() else {
                self.err(at, format!("`{url}` is not a URL"));
                continue;
            };
            let Some(authority) = uri.authority().cloned() else {
                self.err(at, "missing host");
                continue;
            };
            if uri.query().is_some() {
                self.err(at.clone(), "must not contain a query string");
            }
            if let Some(f) = &first
                && (f.scheme() != uri.scheme() || f.path() != uri.path())
            {
                self.err(at, "every target has the first one's scheme and path");
                continue;
            }
            if targets.contains(&authority) {
                self.err(at, format!("`{authority}` is listed twice"));
                continue;
            }
            targets.push(authority);
            first.get_or_insert(uri);
        }
        Some((first?, targets))
    }

    fn health_check(&mut self, p: &str, h: &schema::RawHealthCheck) -> Option<HealthCheck> {
        let p = format!("{p}.health_check");
        let path = match h.path.parse::<http::uri::PathAndQuery>() {
            Ok(path) if h.path.starts_with('/') => Some(path),
            _ => {
                self.err(format!("{p}.path"), "an absolute path such as /healthz");
                None
            }
        };
        let status = http::StatusCode::from_u16(h.expect_status)
            .ok()
            .filter(|s| s.is_success() || s.is_redirection());
        if status.is_none() {
            self.err(format!("{p}.expect_status"), "a 2xx or 3xx status");
        }
        for (field, v) in [
            ("interval_ms", h.interval_ms),
            ("timeout_ms", h.timeout_ms),
            ("healthy_threshold", u64::from(h.healthy_threshold)),
            ("unhealthy_threshold", u64::from(h.unhealthy_threshold)),
        ] {
            if v == 0 {
                self.err(format!("{p}.{field}"), "must be greater than 0");
            }
        }
        if h.timeout_ms >= h.interval_ms {
            self.err(
                format!("{p}.timeout_ms"),
                "must be shorter than interval_ms",
            );
        }
        Some(HealthCheck {
            path: path?,
            interval: Duration::from_millis(h.interval_ms),
            timeout: Duration::from_millis(h.timeout_ms),
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
            expect_status: status?,
        })
    }

    fn outlier(&mut self, p: &str, o: &schema::RawOutlierDetection) -> OutlierDetection {
        let p = format!("{p}.outlier_detection");
        if o.consecutive_failures > 0 && o.ejection_ms == 0 {
            self.err(format!("{p}.ejection_ms"), "must be greater than 0");
        }
        if o.max_ejection_ms < o.ejection_ms {
            self.err(
                format!("{p}.max_ejection_ms"),
                "must be at least ejection_ms",
            );
        }
        if o.max_ejected_percent > 100 {
            self.err(format!("{p}.max_ejected_percent"), "a percentage, 0 to 100");
        }
        OutlierDetection {
            consecutive_failures: o.consecutive_failures,
            ejection: Duration::from_millis(o.ejection_ms),
            max_ejection: Duration::from_millis(o.max_ejection_ms),
            max_ejected_percent: o.max_ejected_percent,
        }
    }

    fn retries(&mut self, p: &str, r: &schema::RawRetries, request_timeout_ms: u64) -> Retries {
        let p = format!("{p}.retries");
        if r.attempts > 5 {
            self.err(format!("{p}.attempts"), "at most 5");
        }
        if r.budget_percent > 100 {
            self.err(format!("{p}.budget_percent"), "a percentage, 0 to 100");
        }
        let per_try = r.per_try_timeout_ms.unwrap_or(request_timeout_ms);
        if per_try == 0 || per_try > request_timeout_ms {
            self.err(
                format!("{p}.per_try_timeout_ms"),
                "greater than 0 and at most the request_timeout_ms",
            );
        }
        Retries {
            attempts: r.attempts,
            budget_percent: r.budget_percent,
            per_try_timeout: Duration::from_millis(per_try),
        }
    }
}

impl Validator {
    /// `value` when it lies in `range`; an error naming `path` otherwise.
    fn bounded(
        &mut self,
        path: &str,
        value: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> usize {
        if !range.contains(&value) {
            self.err(
                path,
                format!("must be {} to {}", range.start(), range.end()),
            );
        }
        value
    }
}

impl Validator {
    /// `hash_header` goes with `balance: consistent_hash`, and only with it.
    fn hash_header(&mut self, p: &str, u: &schema::RawUpstream) -> Option<http::HeaderName> {
        let consistent = u.balance == schema::RawBalance::ConsistentHash;
        match &u.hash_header {
            Some(h) if consistent => Some(self.header_name(&format!("{p}.hash_header"), h)),
            Some(_) => {
                self.err(
                    format!("{p}.hash_header"),
                    "only with `balance: consistent_hash`",
                );
                None
            }
            None if consistent => {
                self.err(
                    format!("{p}.hash_header"),
                    "missing: `consistent_hash` picks the target by this header's value",
                );
                None
            }
            None => None,
        }
    }
}
