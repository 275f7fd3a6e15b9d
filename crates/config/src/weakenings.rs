//! The weakened defaults of a config, which `check` lists (and the
//! assessor reads): every setting that lets a client or an operator do what
//! the secure default would not.

use crate::{AllowedOrigins, AuthPolicy, Config, ListenerKind, Mode, UpstreamScheme};
use http::Method;
use std::time::Duration;

/// The connection limits beyond which a setting lets one client hold the
/// gateway's resources for longer than the defaults do (`check` reports).
const WEAK_LIMITS: [(&str, u64); 6] = [
    ("body_rate_grace_ms", 5_000),
    ("header_read_timeout_ms", 10_000),
    ("idle_timeout_ms", 60_000),
    ("max_connection_age_ms", 3_600_000),
    ("write_timeout_ms", 30_000),
    ("max_connections_per_client", 512),
];

/// A setting that weakens a secure default; `check` lists every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakening {
    pub path: String,
    pub message: String,
}

impl Config {
    fn limit_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        let l = &self.limits;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let values = [
            millis(l.body_rate_grace),
            millis(l.header_read_timeout),
            millis(l.idle_timeout),
            millis(l.max_connection_age),
            millis(l.write_timeout),
            l.max_connections_per_client as u64,
        ];
        for ((name, default), value) in WEAK_LIMITS.iter().zip(values) {
            if value > *default {
                push(
                    format!("limits.{name}"),
                    &format!(
                        "{value} is above the default {default}: one client can hold connections longer or in greater numbers"
                    ),
                );
            }
        }
        if l.auth_failures_per_minute == 0 {
            push(
                "limits.auth_failures_per_minute".into(),
                "failed authentications are not limited per client: credential guessing and token floods cost the gateway (and introspection) nothing to send",
            );
        }
        if l.min_body_bytes_per_s == 0 {
            push(
                "limits.min_body_bytes_per_s".into(),
                "no minimum body rate: a client may trickle a body for the whole body_read_timeout",
            );
        }
        if l.client_ipv6_prefix > 64 {
            push(
                "limits.client_ipv6_prefix".into(),
                "IPv6 clients are told apart by more than their /64: one host with many addresses gets many connection and rate budgets",
            );
        }
    }

    /// Every weakened default in this config, in file order.
    pub fn weakenings(&self) -> Vec<Weakening> {
        let mut out = Vec::new();
        let mut push = |path: String, message: &str| {
            out.push(Weakening {
                path,
                message: message.to_owned(),
            });
        };
        self.limit_weakenings(&mut push);
        self.collector_weakenings(&mut push);
        if self.mode == Mode::Dev {
            push(
                "mode".into(),
                "dev mode: self-signed certificates and plaintext listeners are allowed",
            );
        }
        self.listener_weakenings(&mut push);
        for (name, on) in [
            ("email", self.sensitive.patterns.email),
            ("card", self.sensitive.patterns.card),
            ("national_id", self.sensitive.patterns.national_id),
            ("token", self.sensitive.patterns.token),
        ] {
            if !on {
                push(
                    format!("sensitive_data.{name}"),
                    "a sensitive value pattern is no longer refused in URLs",
                );
            }
        }
        self.shared_state_weakenings(&mut push);
        self.upstream_weakenings(&mut push);
        self.api_weakenings(&mut push);
        out
    }

    /// Listeners: TLS 1.2, revocation, plaintext, hosts, environments.
    fn listener_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        for (i, l) in self.listeners.iter().enumerate() {
            match &l.kind {
                ListenerKind::Tls(t) => {
                    if t.allow_tls12 {
                        push(
                            format!("listeners[{i}].tls.min_version"),
                            "TLS 1.2 accepted (ECDHE + AEAD suites only); the default is TLS 1.3 only",
                        );
                    }
                    if let Some(c) = &t.client_auth {
                        if c.crls.is_empty() {
                            push(
                                format!("listeners[{i}].tls.client_auth.crls"),
                                "client certificates are not checked for revocation (no CRL)",
                            );
                        }
                        if c.allow_stale_crl {
                            push(
                                format!("listeners[{i}].tls.client_auth.allow_stale_crl"),
                                "certificates are accepted while a CRL is out of date",
                            );
                        }
                    }
                }
                ListenerKind::DangerousPlaintext => push(
                    format!("listeners[{i}].plaintext"),
                    "plaintext HTTP listener serves APIs (dangerous_serve)",
                ),
                ListenerKind::Redirect { .. } => {}
            }
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.hosts.is_empty() && !matches!(l.kind, ListenerKind::Redirect { .. }) {
                push(
                    format!("listeners[{i}].hosts"),
                    "no host allowlist: requests for any Host are served (list the names this listener serves; others get 421)",
                );
            }
            if l.environment != "production" {
                push(
                    format!("listeners[{i}].environment"),
                    &format!(
                        "listener serves environment `{}`: operations marked for it are reachable here",
                        l.environment
                    ),
                );
            }
        }
    }

    /// Identity staleness, PostgreSQL and Redis, anomalies, the context token.
    fn shared_state_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        if self
            .identity
            .as_ref()
            .is_some_and(|i| i.max_staleness > Duration::from_secs(60))
        {
            push(
                "identity.max_staleness_s".into(),
                "above the default 60: revocations and disabled applications may go unseen for longer while the store is unreachable",
            );
        }
        if let Some(pg) = self.identity.as_ref().and_then(|i| i.postgres.as_ref())
            && pg.plaintext_remote
        {
            push(
                "shared_state.postgres.dangerous_plaintext".into(),
                "PostgreSQL reached without TLS over the network",
            );
        }
        if let Some(r) = &self.redis {
            if r.fall_back_to_local {
                push(
                    "shared_state.redis.on_failure".into(),
                    "while Redis is unreachable each instance applies only its own limits (the fleet may accept up to N× the limit)",
                );
            }
            if r.plaintext_remote {
                push(
                    "shared_state.redis.dangerous_plaintext".into(),
                    "Redis reached without TLS over the network",
                );
            }
        }
        if self.anomalies.is_none() {
            push(
                "anomalies.enabled".into(),
                "sudden changes in an application's usage raise no event",
            );
        }
        if self.context_token.is_none() {
            push(
                "context_token.enabled".into(),
                "backends receive no gateway-signed context token: they cannot verify that a request came through the gateway, nor its identity",
            );
        }
    }

    /// Upstreams: revocation and plaintext.
    fn upstream_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        for u in &self.upstreams {
            if u.scheme == UpstreamScheme::Https && u.crls.is_empty() {
                push(
                    format!("upstreams.{}.crls", u.name),
                    "the upstream's certificate is not checked for revocation (no CRL)",
                );
            }
            if u.scheme == UpstreamScheme::DangerousHttp {
                push(
                    format!("upstreams.{}.dangerous_plaintext_upstream", u.name),
                    "upstream reached over plaintext HTTP",
                );
            }
        }
    }

    /// Collectors reached in plaintext off loopback (`dangerous_plaintext`).
    fn collector_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        let plaintext = |u: &http::Uri| {
            u.scheme_str() == Some("http") && !crate::is_loopback_host(u.host().unwrap_or(""))
        };
        if let Some(c) = &self.events.http
            && plaintext(&c.url)
        {
            push(
                "events.http.url".into(),
                "security events go to the collector in plaintext",
            );
        }
        if let Some(o) = &self.trace.otlp
            && plaintext(&o.endpoint)
        {
            push(
                "trace_context.otlp.endpoint".into(),
                "spans (paths, API names, trace ids) go to the collector in plaintext",
            );
        }
    }

    /// APIs: CORS, contracts, personal data, public routes.
    fn api_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        for (a, api) in self.apis.iter().enumerate() {
            if let Some(c) = &api.cors
                && c.origins == AllowedOrigins::Any
            {
                push(
                    format!("apis[{a}].cors.allowed_origins"),
                    "CORS allows any origin (`*`)",
                );
            }
            if api.stream_bodies_up_to.is_some() {
                push(
                    format!("apis[{a}].request_streaming"),
                    "request bodies reach the backend before they are complete: one refused at its size or time limit may be partly seen",
                );
            }
            if api.openapi.is_none() {
                push(
                    format!("apis[{a}].openapi"),
                    "no OpenAPI document: request bodies, parameters and responses are not checked against a contract",
                );
            }
            for (r, route) in api.routes.iter().enumerate() {
                if let Some(op) = &route.operation {
                    if route.allow_pii {
                        push(
                            format!("apis[{a}].contract.allow_pii"),
                            &format!("`{}` returns personal data unredacted", op.id),
                        );
                    }
                    if !op.strips_responses() {
                        push(
                            format!("apis[{a}].contract.strip_undeclared_responses"),
                            &format!(
                                "`{}`: response properties the schema does not declare are passed through",
                                op.id
                            ),
                        );
                    }
                }
                if route.auth == AuthPolicy::Public {
                    push(
                        if route.operation.is_some() {
                            format!("apis[{a}].contract.public_operations")
                        } else {
                            format!("apis[{a}].routes[{r}].auth")
                        },
                        &format!(
                            "public route (no authentication): {} {}{}",
                            route
                                .methods
                                .iter()
                                .map(Method::as_str)
                                .collect::<Vec<_>>()
                                .join(","),
                            api.base_path,
                            route.path
                        ),
                    );
                }
            }
        }
    }
}
