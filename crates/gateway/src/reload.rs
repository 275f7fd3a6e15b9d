//! Live reload (PROC-06, TLS-01): a new config, asked for with SIGHUP or
//! `POST /admin/v1/reload`, is validated completely (parsed, every
//! certificate, key, CRL, JWKS file and OpenAPI document read, every route
//! compiled) before anything changes; then the request state is swapped in
//! one step. Requests in flight finish on the config they started with. An
//! invalid config is refused with the messages of `portcullis check` and
//! the running config stays.
//!
//! What a reload keeps: the event sink and its spool, the store, the
//! limiters' state (a limit whose definition is unchanged keeps its
//! buckets, so a reload is no way around a limit), the context-token keys,
//! usage baselines and traffic counters. What it cannot change without a
//! restart (sockets, the store, the event sinks, connection limits) is
//! refused with the fields named.

use crate::events::SecurityEvent;
use crate::rejection::Severity;
use crate::tls::clientauth::TlsListener;
use crate::{Live, PreparedKind, build_state, prepare_admin_tls, prepare_listeners};
use portcullis_config::{AdminListen, Config, ListenerKind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The same messages as `portcullis check`.
    #[error("the new config is invalid; the running config stays: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error(
        "these fields changed and need a restart; the running config stays: {}",
        .0.join(", ")
    )]
    RestartNeeded(Vec<String>),
}

impl ReloadError {
    /// Each message on its own, as `check` prints them.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Self::Invalid(m) => m.clone(),
            Self::RestartNeeded(fields) => fields
                .iter()
                .map(|f| format!("{f}: changing this needs a restart"))
                .collect(),
        }
    }
}

/// Reloads the config file a gateway was started from.
pub struct Reloader {
    source: PathBuf,
    live: Live,
    /// The config in force; held for the whole reload, so one at a time.
    current: Mutex<Config>,
    /// The TLS listeners by index: a reload replaces what they hand to new
    /// handshakes (certificate, key, client CA, CRLs).
    tls: Vec<Option<Arc<TlsListener>>>,
    /// The admin listener's mutual TLS, replaced the same way.
    admin_tls: Option<Arc<TlsListener>>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The sections of the config a reload changed, for the log and the audit.
pub type Changed = Vec<&'static str>;

fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Fields that the running process cannot take over.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut fields = Vec::new();
    let mut check = |field: &str, same: bool| {
        if !same {
            fields.push(field.to_owned());
        }
    };
    check("mode", old.mode == new.mode);
    check("worker_threads", old.worker_threads == new.worker_threads);
    check("limits", same(&old.limits, &new.limits));
    check("events", same(&old.events, &new.events));
    check("redis", same(&old.redis, &new.redis));
    // The admin listener's address and kind; its certificates reload.
    check(
        "admin",
        match (&old.admin, &new.admin) {
            (
                Some(AdminListen::MutualTls { addr: a, .. }),
                Some(AdminListen::MutualTls { addr: b, .. }),
            ) => a == b,
            (a, b) => a == b,
        },
    );
    check(
        "context_token",
        same(&old.context_token, &new.context_token),
    );
    match (&old.identity, &new.identity) {
        (Some(a), Some(b)) => {
            check("identity.data_dir", a.data_dir == b.data_dir);
            check("shared_state.postgres", same(&a.postgres, &b.postgres));
        }
        (a, b) => check("identity", a.is_some() == b.is_some()),
    }
    if old.listeners.len() == new.listeners.len() {
        for (i, (a, b)) in old.listeners.iter().zip(&new.listeners).enumerate() {
            check(&format!("listeners[{i}].name"), a.name == b.name);
            check(&format!("listeners[{i}].bind"), a.bind == b.bind);
            check(
                &format!("listeners[{i}].environment"),
                a.environment == b.environment,
            );
            let same_kind = match (&a.kind, &b.kind) {
                (ListenerKind::Tls(_), ListenerKind::Tls(_))
                | (ListenerKind::DangerousPlaintext, ListenerKind::DangerousPlaintext) => true,
                (
                    ListenerKind::Redirect { https_port: x },
                    ListenerKind::Redirect { https_port: y },
                ) => x == y,
                _ => false,
            };
            check(&format!("listeners[{i}]"), same_kind);
        }
    } else {
        check("listeners", false);
    }
    fields
}

fn changed(old: &Config, new: &Config) -> Changed {
    [
        ("listeners", same(&old.listeners, &new.listeners)),
        ("apis", same(&old.apis, &new.apis)),
        ("upstreams", same(&old.upstreams, &new.upstreams)),
        ("identity", same(&old.identity, &new.identity)),
        ("anomalies", same(&old.anomalies, &new.anomalies)),
        ("sensitive_data", same(&old.sensitive, &new.sensitive)),
        (
            "headers",
            same(&old.correlation_header, &new.correlation_header)
                && same(&old.request_remove_headers, &new.request_remove_headers)
                && same(&old.response_remove_headers, &new.response_remove_headers),
        ),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(name, _)| name)
    .collect()
}

impl Reloader {
    pub(crate) fn new(
        source: PathBuf,
        live: Live,
        config: Config,
        tls: Vec<Option<Arc<TlsListener>>>,
        admin_tls: Option<Arc<TlsListener>>,
    ) -> Self {
        Self {
            source,
            live,
            current: Mutex::new(config),
            tls,
            admin_tls,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// The config file reloads read.
    pub fn source(&self) -> &std::path::Path {
        &self.source
    }

    /// Reads, validates and swaps in the config file. Blocking (it reads
    /// files): call it off the runtime's workers.
    pub fn reload(&self) -> Result<Changed, ReloadError> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let events = self.live.load().events.clone();
        let outcome = self.try_reload(&current);
        match outcome {
            Ok((config, changed)) => {
                tracing::info!(source = %self.source.display(), ?changed, "config reloaded");
                events.emit(SecurityEvent::operational(
                    "config-reloaded",
                    Severity::Informational,
                    &format!(
                        "{} reloaded; changed: {}",
                        self.source.display(),
                        if changed.is_empty() {
                            "nothing".to_owned()
                        } else {
                            changed.join(", ")
                        }
                    ),
                ));
                *current = config;
                Ok(changed)
            }
            Err(e) => {
                tracing::error!(source = %self.source.display(), error = %e, "config reload refused");
                events.emit(SecurityEvent::operational(
                    "config-reload-refused",
                    Severity::Medium,
                    &e.to_string(),
                ));
                Err(e)
            }
        }
    }

    fn try_reload(&self, current: &Config) -> Result<(Config, Changed), ReloadError> {
        let config = portcullis_config::load(&self.source).map_err(|e| {
            ReloadError::Invalid(e.field_errors().iter().map(ToString::to_string).collect())
        })?;
        let restart = needs_restart(current, &config);
        if !restart.is_empty() {
            return Err(ReloadError::RestartNeeded(restart));
        }
        let invalid = |e: crate::BuildError| ReloadError::Invalid(vec![e.to_string()]);
        // Everything is read and checked before anything is swapped.
        let listeners = prepare_listeners(&config).map_err(invalid)?;
        let admin_tls = prepare_admin_tls(&config).map_err(invalid)?;
        let previous = self.live.load_full();
        let state = Arc::new(build_state(&config, Some(&previous)).map_err(invalid)?);
        for (kept, new) in self.tls.iter().zip(&listeners) {
            if let (Some(kept), PreparedKind::Tls(new)) = (kept, &new.kind) {
                kept.replace_with(new);
            }
        }
        if let (Some(kept), Some(new)) = (&self.admin_tls, &admin_tls) {
            kept.replace_with(new);
        }
        {
            let _in_runtime = self.runtime.enter();
            if let Some(identity) = &state.identity {
                identity.spawn_jwks_refresh();
            }
            for upstream in &state.upstreams {
                upstream.spawn_health_checks();
            }
        }
        self.live.store(state);
        let changed = changed(current, &config);
        Ok((config, changed))
    }
}

/// Reloads on every SIGHUP until shutdown.
pub(crate) async fn on_hangup(
    reloader: Arc<Reloader>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; reload through the admin API only");
        return;
    };
    loop {
        tokio::select! {
            Some(()) = hangup.recv() => {}
            _ = shutdown.changed() => return,
        }
        let r = reloader.clone();
        // The outcome is logged and raised as an event by `reload`.
        let _ = tokio::task::spawn_blocking(move || r.reload()).await;
    }
}
