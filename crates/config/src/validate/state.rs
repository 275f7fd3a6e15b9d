//! Validation of the context token, anomaly detection, event sinks,
//! shared state (PostgreSQL, Redis) and sensitive-data patterns.

use crate::schema::RawConfig;
use crate::{
    AccessLog, Anomalies, Collector, ContextToken, Events, Identity, Postgres, Redis,
    SensitiveData, Spool, Syslog, Validator, is_loopback_host, schema,
};
use http::HeaderName;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

impl Validator {
    pub(crate) fn context_token(
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

    pub(crate) fn anomalies(&mut self, a: &schema::RawAnomalies) -> Option<Anomalies> {
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

    pub(crate) fn events(
        &mut self,
        (e, access): (&schema::RawEvents, Option<&schema::RawAccessLog>),
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Events {
        let access_log = access.map(|a| {
            if !a.stdout && a.file.is_none() {
                self.err("access_log", "give `file`, `stdout: true`, or both");
            }
            AccessLog {
                stdout: a.stdout,
                file: a.file.as_deref().map(resolve),
                file_max_bytes: a.file_max_mb.max(1).saturating_mul(1024 * 1024),
                file_keep: a.file_keep,
            }
        });
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
            let url = self.collector_url(
                ("events.http.url", "events.http.ca"),
                &c.url,
                c.ca.is_some(),
                c.dangerous_plaintext,
            )?;
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
            access_log,
        }
    }

    pub(crate) fn postgres(
        &mut self,
        r: &schema::RawPostgres,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Postgres {
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

    pub(crate) fn redis(
        &mut self,
        r: &schema::RawRedis,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<Redis> {
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

    pub(crate) fn sensitive(&mut self, raw: &schema::RawSensitiveData) -> SensitiveData {
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
}

impl Validator {
    /// A collector's URL: `https://` with explicit trust anchors, or
    /// `http://` on loopback (elsewhere only with `dangerous_plaintext`).
    fn collector_url(
        &mut self,
        (url_path, ca_path): (&str, &str),
        url: &str,
        has_ca: bool,
        dangerous_plaintext: bool,
    ) -> Option<http::Uri> {
        let Ok(url) = url.parse::<http::Uri>() else {
            self.err(url_path, "not a URL");
            return None;
        };
        let loopback = is_loopback_host(url.host().unwrap_or(""));
        match url.scheme_str() {
            Some("https") if !has_ca => self.err(
                ca_path,
                "missing: trust anchors for the collector must be explicit (a PEM bundle)",
            ),
            Some("http") if !loopback && !dangerous_plaintext => self.err(
                url_path,
                "plaintext collectors are accepted on loopback only: use https:// (or set dangerous_plaintext: true)",
            ),
            Some("https" | "http") => {}
            _ => self.err(url_path, "must start with https:// or http://"),
        }
        Some(url)
    }

    /// `trace_context`: whether to start traces, and where spans go.
    pub(crate) fn trace(
        &mut self,
        t: &schema::RawTraceContext,
        resolve: &dyn Fn(&str) -> std::path::PathBuf,
    ) -> crate::Trace {
        let otlp = t.otlp.as_ref().and_then(|o| {
            let endpoint = self.collector_url(
                ("trace_context.otlp.endpoint", "trace_context.otlp.ca"),
                &o.endpoint,
                o.ca.is_some(),
                o.dangerous_plaintext,
            )?;
            let service_name = o
                .service_name
                .clone()
                .unwrap_or_else(|| "portcullis".into());
            if service_name.is_empty() || service_name.len() > 128 {
                self.err(
                    "trace_context.otlp.service_name",
                    "must be 1 to 128 characters",
                );
            }
            Some(crate::Otlp {
                endpoint,
                ca: o.ca.as_deref().map(resolve),
                service_name,
            })
        });
        crate::Trace {
            start: t.start,
            otlp,
        }
    }
}
