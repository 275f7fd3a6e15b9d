//! The admin API's endpoints (OPS-03, OPS-04, PROC-06): one table says,
//! for each method and path, which action the role check weighs, which
//! handler answers, and which account-change event a success raises; each
//! handler is one function. Every change goes to the audit log first.

use super::{AdminPlane, Answer, Caller, Role, create_admin, logged, problem};
use crate::State;
use crate::clock::now;
use crate::identity::apikeys;
use crate::reload::ReloadError;
use crate::store::audit_log::{self, AuditEntry};
use crate::store::{Store, StoreError};
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// What a request wants to do, for the role check and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Read,
    KillSwitch,
    ManageApps,
    ManageKeys,
    ManageAdmins,
    Reload,
}

impl Action {
    pub(super) fn allowed(self, role: Role) -> bool {
        match self {
            Self::Read => true,
            Self::KillSwitch | Self::Reload => role != Role::Viewer,
            Self::ManageApps | Self::ManageKeys | Self::ManageAdmins => role == Role::SecurityAdmin,
        }
    }

    pub(super) fn needs(self) -> &'static str {
        match self {
            Self::Read => "viewer",
            Self::KillSwitch | Self::Reload => "operator",
            _ => "security-admin",
        }
    }

    pub(super) fn verb(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::KillSwitch => "switch things off or on",
            Self::ManageApps => "manage applications",
            Self::ManageKeys => "manage API keys",
            Self::ManageAdmins => "manage administrators",
            Self::Reload => "reload the config",
        }
    }
}

/// Where the target of an account-change event comes from.
#[derive(Clone, Copy)]
pub(super) enum Subject {
    /// The path's parameter (`*`).
    Param,
    /// A member of the request body.
    Field(&'static str),
}

/// One endpoint: `path` below `/admin/v1/`, `*` standing for one
/// percent-decoded segment.
#[derive(Clone, Copy)]
pub(super) struct Endpoint {
    pub method: &'static str,
    pub path: &'static [&'static str],
    pub action: Action,
    pub handler: fn(&Request<'_>) -> Result<Answer, StoreError>,
    /// The account-change event a success raises, and its target.
    pub change: Option<(&'static str, Subject)>,
}

const fn endpoint(
    method: &'static str,
    path: &'static [&'static str],
    action: Action,
    handler: fn(&Request<'_>) -> Result<Answer, StoreError>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        action,
        handler,
        change: None,
    }
}

const fn changing(e: Endpoint, change: &'static str, subject: Subject) -> Endpoint {
    Endpoint {
        change: Some((change, subject)),
        ..e
    }
}

use Action::{KillSwitch, ManageAdmins, ManageApps, ManageKeys, Read, Reload};
use Subject::{Field, Param};

/// The route table of the admin API.
pub(super) const ENDPOINTS: &[Endpoint] = &[
    endpoint("GET", &["whoami"], Read, whoami),
    endpoint("GET", &["apps"], Read, apps),
    endpoint("GET", &["metrics"], Read, metrics),
    endpoint("GET", &["inventory"], Read, inventory),
    endpoint("GET", &["kill-switches"], Read, kill_switches),
    endpoint("GET", &["admins"], Read, admins),
    endpoint("GET", &["audit-log"], Read, audit_entries),
    endpoint("GET", &["keys"], Read, keys),
    endpoint("GET", &["certs"], Read, certs),
    endpoint("POST", &["kill-switches"], KillSwitch, switch_off),
    endpoint("POST", &["kill-switches-clear"], KillSwitch, switch_on),
    changing(
        endpoint("POST", &["apps", "*", "disable"], KillSwitch, app_disable),
        "app.disable",
        Param,
    ),
    changing(
        endpoint("POST", &["apps", "*", "enable"], KillSwitch, app_enable),
        "app.enable",
        Param,
    ),
    changing(
        endpoint("POST", &["apps"], ManageApps, app_create),
        "app.create",
        Field("name"),
    ),
    changing(
        endpoint("POST", &["apps", "*", "certs"], ManageApps, cert_bind),
        "app.bind-cert",
        Param,
    ),
    changing(
        endpoint("POST", &["certs-unbind"], ManageApps, cert_unbind),
        "app.unbind-cert",
        Field("san"),
    ),
    changing(
        endpoint("POST", &["apps", "*", "keys"], ManageKeys, key_issue),
        "key.issue",
        Param,
    ),
    changing(
        endpoint(
            "POST",
            &["apps", "*", "keys-rotate"],
            ManageKeys,
            key_rotate,
        ),
        "key.rotate",
        Param,
    ),
    changing(
        endpoint("DELETE", &["keys", "*"], ManageKeys, key_revoke),
        "key.revoke",
        Param,
    ),
    changing(
        endpoint("POST", &["admins"], ManageAdmins, admin_create),
        "admin.create",
        Field("name"),
    ),
    endpoint("POST", &["reload"], Reload, reload),
];

/// The endpoint for `method` and `segments`, and its parameter.
pub(super) fn find<'s>(method: &str, segments: &[&'s str]) -> Option<(&'static Endpoint, &'s str)> {
    ENDPOINTS.iter().find_map(|e| {
        if e.method != method || e.path.len() != segments.len() {
            return None;
        }
        let mut param = "";
        for (pattern, segment) in e.path.iter().zip(segments) {
            match *pattern {
                "*" => param = segment,
                literal if literal == *segment => {}
                _ => return None,
            }
        }
        Some((e, param))
    })
}

/// What a handler sees of one authenticated, authorised request.
pub(super) struct Request<'a> {
    pub plane: &'a AdminPlane,
    pub caller: &'a Caller,
    /// The path's `*` segment, percent-decoded (empty when there is none).
    pub param: &'a str,
    pub input: &'a Value,
    pub query: Option<&'a str>,
    pub correlation_id: &'a str,
    pub store: Arc<dyn Store>,
    pub state: Arc<State>,
}

impl Request<'_> {
    /// A string member of the request body.
    pub(super) fn text(&self, field: &str) -> Option<String> {
        self.input
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The audit entry of this request for `action` on `target`.
    fn entry(&self, action: &str, target: &str) -> AuditEntry {
        AuditEntry {
            at: now(),
            actor: self.caller.name.clone(),
            role: self.caller.role.as_str().to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            before: None,
            after: None,
            reason: self.text("reason"),
            correlation_id: self.correlation_id.to_owned(),
        }
    }

    /// Logs `entry`, then makes the change (see [`logged`]).
    fn logged<T>(
        &self,
        entry: AuditEntry,
        change: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        logged(
            self.store.as_ref(),
            self.plane.identity.pepper(),
            entry,
            change,
        )
    }

    /// Appends an entry that records an outcome (never the change itself).
    fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        audit_log::append(self.store.as_ref(), self.plane.identity.pepper(), entry).map(|_| ())
    }
}

fn needs_reason() -> Answer {
    problem(
        StatusCode::BAD_REQUEST,
        "admin-reason",
        "Say why: send {\"reason\": \"…\"} (it goes to the audit log).",
    )
}

/// A handler's successful tail (handlers return `Result` for their `?`s).
#[allow(clippy::unnecessary_wraps)]
fn ok(body: Value) -> Result<Answer, StoreError> {
    Ok(Answer::Done(StatusCode::OK, body))
}

fn whoami(r: &Request<'_>) -> Result<Answer, StoreError> {
    ok(json!({ "name": r.caller.name, "role": r.caller.role.as_str() }))
}

fn apps(r: &Request<'_>) -> Result<Answer, StoreError> {
    let apps = r.store.apps()?;
    ok(Value::Array(
        apps.iter()
            .map(|a| json!({ "name": a.name, "enabled": a.enabled, "created_at": a.created_at }))
            .collect(),
    ))
}

fn metrics(r: &Request<'_>) -> Result<Answer, StoreError> {
    let snap = r.plane.identity.snapshot();
    let spool_depth = r
        .plane
        .spool
        .as_ref()
        .map_or(0, |(dir, sinks)| crate::events::spool::depth(dir, sinks));
    ok(Value::String(
        r.state.traffic.prometheus(&[
            (
                "portcullis_kill_switches",
                "APIs and routes switched off now.",
                snap.kill_switches.len() as f64,
            ),
            (
                "portcullis_applications_disabled",
                "Applications whose access is switched off.",
                snap.apps.values().filter(|a| !a.enabled).count() as f64,
            ),
            (
                "portcullis_event_spool_depth",
                "Security events in the spool not yet delivered to every remote sink.",
                spool_depth as f64,
            ),
        ]) + &crate::pipeline::upstream::prometheus(&r.state.upstreams)
            + &super::process::prometheus(),
    ))
}

fn inventory(r: &Request<'_>) -> Result<Answer, StoreError> {
    let (shadow, not_kept) = r.state.traffic.shadow_endpoints();
    ok(json!({
        "routes": r.state.traffic.routes(),
        "shadow_endpoints": shadow
            .into_iter()
            .map(|(path, requests)| json!({ "path": path, "requests": requests }))
            .collect::<Vec<_>>(),
        "shadow_not_kept": not_kept,
    }))
}

fn kill_switches(r: &Request<'_>) -> Result<Answer, StoreError> {
    ok(json!({
        "off": r.plane.identity.snapshot().kill_switches,
        "targets": r.state.routes.kill_targets(),
    }))
}

fn admins(r: &Request<'_>) -> Result<Answer, StoreError> {
    let admins = r.store.admins()?;
    ok(Value::Array(
        admins
            .iter()
            .map(|a| json!({ "name": a.name, "role": a.role, "created_at": a.created_at }))
            .collect(),
    ))
}

fn audit_entries(r: &Request<'_>) -> Result<Answer, StoreError> {
    let entries = audit_log::entries(r.store.as_ref())?;
    let verified = audit_log::verify(r.store.as_ref(), r.plane.identity.pepper())?;
    ok(json!({
        "intact": verified.is_ok(),
        "problem": verified.err().map(|b| b.to_string()),
        "entries": entries
            .into_iter()
            .map(|(seq, e)| json!({ "seq": seq, "entry": e }))
            .collect::<Vec<_>>(),
    }))
}

fn keys(r: &Request<'_>) -> Result<Answer, StoreError> {
    let app = r.query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("app="))
            .map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    });
    let app_id = app
        .map(|a| r.store.app_by_name(&a).map(|a| a.id))
        .transpose()?;
    let names: std::collections::HashMap<String, String> = r
        .store
        .apps()?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    let keys = r.store.keys(app_id.as_deref())?;
    ok(Value::Array(
        keys.into_iter()
            .map(|k| {
                json!({
                    "id": k.id,
                    "app": names.get(&k.app_id),
                    "created_at": k.created_at,
                    "expires_at": k.expires_at,
                    "revoked_at": k.revoked_at,
                })
            })
            .collect(),
    ))
}

fn certs(r: &Request<'_>) -> Result<Answer, StoreError> {
    let bindings = r.store.certificate_bindings()?;
    ok(Value::Array(
        bindings
            .into_iter()
            .map(|(san, app)| json!({ "san": san, "app": app }))
            .collect(),
    ))
}

fn switch_off(r: &Request<'_>) -> Result<Answer, StoreError> {
    let (Some(target), Some(reason)) = (r.text("target"), r.text("reason")) else {
        return Ok(needs_reason());
    };
    if !r.state.routes.kill_targets().contains(&target) {
        return Ok(problem(
            StatusCode::NOT_FOUND,
            "admin-not-found",
            "No such target: GET /admin/v1/kill-switches lists them (`api:<name>`, `route:<api>:<path>`).",
        ));
    }
    let mut e = r.entry("kill-switch.set", &target);
    e.after = Some(json!({ "off": true }));
    r.logged(e, || {
        r.store
            .set_kill_switch(&target, &reason, &r.caller.name, now())
    })?;
    ok(json!({ "target": target, "off": true }))
}

fn switch_on(r: &Request<'_>) -> Result<Answer, StoreError> {
    let (Some(target), Some(_)) = (r.text("target"), r.text("reason")) else {
        return Ok(needs_reason());
    };
    let mut e = r.entry("kill-switch.clear", &target);
    e.after = Some(json!({ "off": false }));
    r.logged(e, || r.store.clear_kill_switch(&target))?;
    ok(json!({ "target": target, "off": false }))
}

fn app_disable(r: &Request<'_>) -> Result<Answer, StoreError> {
    app_enabled(r, false)
}

fn app_enable(r: &Request<'_>) -> Result<Answer, StoreError> {
    app_enabled(r, true)
}

fn app_enabled(r: &Request<'_>, enable: bool) -> Result<Answer, StoreError> {
    if r.text("reason").is_none() {
        return Ok(needs_reason());
    }
    let name = r.param;
    let verb = if enable { "enable" } else { "disable" };
    let app = r.store.app_by_name(name)?;
    let mut e = r.entry(&format!("app.{verb}"), name);
    e.before = Some(json!({ "enabled": app.enabled }));
    e.after = Some(json!({ "enabled": enable }));
    r.logged(e, || r.store.set_app_enabled(name, enable))?;
    ok(json!({ "name": name, "enabled": enable }))
}

fn app_create(r: &Request<'_>) -> Result<Answer, StoreError> {
    let Some(name) = r.text("name").filter(|n| !n.is_empty()) else {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "admin-body",
            "Send {\"name\": \"…\"}.",
        ));
    };
    let mut e = r.entry("app.create", &name);
    e.after = Some(json!({ "name": name, "enabled": true }));
    r.logged(e, || r.store.create_app(&name, now()))?;
    Ok(Answer::Done(
        StatusCode::CREATED,
        json!({ "name": name, "enabled": true }),
    ))
}

fn cert_bind(r: &Request<'_>) -> Result<Answer, StoreError> {
    let Some(san) = r.text("san").filter(|s| !s.is_empty()) else {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "admin-body",
            "Send {\"san\": \"<DNS name or URI>\"}.",
        ));
    };
    let name = r.param;
    // DNS names are compared in lower case, URIs exactly.
    let san = if san.contains(':') {
        san
    } else {
        san.to_ascii_lowercase()
    };
    let mut e = r.entry("app.bind-cert", &san);
    e.after = Some(json!({ "app": name }));
    r.logged(e, || r.store.bind_certificate(name, &san, now()))?;
    ok(json!({ "san": san, "app": name }))
}

fn cert_unbind(r: &Request<'_>) -> Result<Answer, StoreError> {
    let Some(san) = r.text("san") else {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "admin-body",
            "Send {\"san\": \"…\"}.",
        ));
    };
    r.logged(r.entry("app.unbind-cert", &san), || {
        r.store.unbind_certificate(&san)
    })?;
    ok(json!({ "san": san, "bound": false }))
}

fn key_issue(r: &Request<'_>) -> Result<Answer, StoreError> {
    let name = r.param;
    let pepper = r.plane.identity.pepper();
    r.store.app_by_name(name)?;
    let mut issued = None;
    r.logged(r.entry("key.issue", name), || {
        issued = Some(apikeys::issue(r.store.as_ref(), pepper, name, now())?);
        Ok(())
    })?;
    let (id, key) = issued.expect("issued above");
    // The id goes to the log afterwards; the key never does.
    let mut done = r.entry("key.issued", name);
    done.after = Some(json!({ "id": id }));
    r.record(&done)?;
    Ok(Answer::Done(
        StatusCode::CREATED,
        json!({ "id": id, "key": key }),
    ))
}

fn key_rotate(r: &Request<'_>) -> Result<Answer, StoreError> {
    let overlap_s = r
        .input
        .get("overlap_s")
        .and_then(Value::as_i64)
        .unwrap_or(86_400);
    if !(0..=30 * 86_400).contains(&overlap_s) {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "admin-body",
            "overlap_s is the seconds the older keys stay valid: 0 to 2592000.",
        ));
    }
    let name = r.param;
    let pepper = r.plane.identity.pepper();
    let mut e = r.entry("key.rotate", name);
    e.after = Some(json!({ "overlap_s": overlap_s }));
    let mut issued = None;
    r.logged(e, || {
        issued = Some(apikeys::rotate(
            r.store.as_ref(),
            pepper,
            name,
            overlap_s,
            now(),
        )?);
        Ok(())
    })?;
    let (id, key) = issued.expect("issued above");
    let mut done = r.entry("key.issued", name);
    done.after = Some(json!({ "id": id }));
    r.record(&done)?;
    Ok(Answer::Done(
        StatusCode::CREATED,
        json!({ "id": id, "key": key, "overlap_s": overlap_s }),
    ))
}

fn key_revoke(r: &Request<'_>) -> Result<Answer, StoreError> {
    if r.text("reason").is_none() {
        return Ok(needs_reason());
    }
    let id = r.param;
    let mut e = r.entry("key.revoke", id);
    e.after = Some(json!({ "revoked": true }));
    r.logged(e, || r.store.revoke_key(id, now()))?;
    ok(json!({ "id": id, "revoked": true }))
}

fn admin_create(r: &Request<'_>) -> Result<Answer, StoreError> {
    let (Some(name), Some(role)) = (
        r.text("name"),
        r.text("role").as_deref().and_then(Role::parse),
    ) else {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "admin-body",
            "Send {\"name\": \"…\", \"role\": \"viewer\" | \"operator\" | \"security-admin\"}.",
        ));
    };
    let token = create_admin(
        r.store.as_ref(),
        r.plane.identity.pepper(),
        &name,
        role,
        (&r.caller.name, r.caller.role.as_str()),
        r.correlation_id,
    )?;
    Ok(Answer::Done(
        StatusCode::CREATED,
        json!({ "name": name, "role": role.as_str(), "token": token }),
    ))
}

fn reload(r: &Request<'_>) -> Result<Answer, StoreError> {
    let Some(reloader) = &r.plane.reloader else {
        return Ok(problem(
            StatusCode::CONFLICT,
            "admin-reload-unavailable",
            "This gateway was not started from a config file; there is nothing to reload.",
        ));
    };
    let target = reloader.source().display().to_string();
    let mut outcome = None;
    r.logged(r.entry("config.reload", &target), || {
        outcome = Some(reloader.reload());
        Ok(())
    })?;
    match outcome.expect("set above") {
        Ok(changed) => {
            let mut done = r.entry("config.reloaded", &target);
            done.after = Some(json!({ "changed": changed }));
            r.record(&done)?;
            ok(json!({ "reloaded": target, "changed": changed }))
        }
        Err(e) => {
            let mut failed = r.entry("failed:config.reload", &target);
            failed.reason = Some(e.to_string());
            r.record(&failed)?;
            Ok(problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                match e {
                    ReloadError::Invalid(_) => "admin-invalid-config",
                    ReloadError::RestartNeeded(_) => "admin-restart-needed",
                },
                e.to_string(),
            )
            .with_errors(e.messages()))
        }
    }
}
