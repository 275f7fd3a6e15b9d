//! `portcullis apps`, `keys`, `admins` and `audit-log`: the store's
//! applications, API keys and operators, locally (a store file) or through
//! a running gateway's admin plane; every change is audited with its actor
//! and reason.

use crate::{AdminAction, AppsAction, AuditLogAction, KeysAction, load_config, remote};
use portcullis_gateway::identity::apikeys;
use portcullis_gateway::store::pepper::Pepper;
use portcullis_gateway::store::{Store, StoreError};
use std::path::Path;
use std::process::ExitCode;

/// The admin plane of the config at `path`, when it declares one: then
/// `apps` and `keys` go through it (roles, audit log under the
/// administrator's name) and never write the store behind its back.
pub(super) fn admin_api(path: &Path) -> Result<Option<remote::AdminApi>, ExitCode> {
    let config = load_config(path)?;
    remote::AdminApi::from_config(&config).map_err(|e| {
        eprintln!("{}: {e}", path.display());
        ExitCode::from(2)
    })
}

pub(super) fn outcome(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// A name as one path segment.
pub(super) fn segment(name: &str) -> String {
    use std::fmt::Write;
    name.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// A change the admin API takes only with a reason (it goes to the audit log).
pub(super) fn call_with_reason(
    api: &remote::AdminApi,
    method: &str,
    path: &str,
    reason: Option<String>,
) -> Result<(), String> {
    let reason = reason.ok_or("say why with --reason \"…\" (it goes to the audit log)")?;
    api.call(method, path, Some(&serde_json::json!({ "reason": reason })))
        .map(|_| ())
}

pub(super) fn apps_remote(api: &remote::AdminApi, action: AppsAction) -> Result<(), String> {
    use serde_json::json;
    match action {
        AppsAction::Create { name } => {
            api.call("POST", "/admin/v1/apps", Some(&json!({ "name": name })))?;
            println!("created application {name}");
        }
        AppsAction::List => {
            for a in api.list("/admin/v1/apps")? {
                let state = if a["enabled"] == true {
                    "enabled"
                } else {
                    "disabled"
                };
                println!("{}\t{state}", a["name"].as_str().unwrap_or("?"));
            }
        }
        AppsAction::Disable { name, reason } => {
            let path = format!("/admin/v1/apps/{}/disable", segment(&name));
            call_with_reason(api, "POST", &path, reason)?;
            println!("disabled {name}: refused from the next request, on every instance");
        }
        AppsAction::Enable { name, reason } => {
            let path = format!("/admin/v1/apps/{}/enable", segment(&name));
            call_with_reason(api, "POST", &path, reason)?;
            println!("enabled {name}");
        }
        AppsAction::BindCert { name, san } => {
            api.call(
                "POST",
                &format!("/admin/v1/apps/{}/certs", segment(&name)),
                Some(&json!({ "san": san })),
            )?;
            println!("client certificates naming {san} now identify {name}");
        }
        AppsAction::UnbindCert { san } => {
            api.call(
                "POST",
                "/admin/v1/certs-unbind",
                Some(&json!({ "san": san })),
            )?;
            println!("{san} no longer identifies an application");
        }
        AppsAction::Certs => {
            for b in api.list("/admin/v1/certs")? {
                println!(
                    "{}\t{}",
                    b["san"].as_str().unwrap_or("?"),
                    b["app"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}

pub(super) fn keys_remote(api: &remote::AdminApi, action: KeysAction) -> Result<(), String> {
    use serde_json::json;
    match action {
        KeysAction::Issue { ref app } | KeysAction::Rotate { ref app, .. } => {
            let (path, body, note) = match &action {
                KeysAction::Rotate { overlap_s, .. } => (
                    format!("/admin/v1/apps/{}/keys-rotate", segment(app)),
                    Some(json!({ "overlap_s": overlap_s })),
                    format!("older keys stay valid for {overlap_s} s. Shown once"),
                ),
                _ => (
                    format!("/admin/v1/apps/{}/keys", segment(app)),
                    None,
                    "shown once, store it now".to_owned(),
                ),
            };
            let k = api.call("POST", &path, body.as_ref())?;
            println!(
                "key id {} for {app}; {note}:",
                k["id"].as_str().unwrap_or("?")
            );
            println!("{}", k["key"].as_str().unwrap_or(""));
        }
        KeysAction::Revoke { id, reason } => {
            let path = format!("/admin/v1/keys/{}", segment(&id));
            call_with_reason(api, "DELETE", &path, reason)?;
            println!("revoked key {id}");
        }
        KeysAction::List { app } => {
            let path = match &app {
                Some(a) => format!("/admin/v1/keys?app={}", segment(a)),
                None => "/admin/v1/keys".to_owned(),
            };
            let now = portcullis_gateway::clock::now();
            for k in api.list(&path)? {
                print_key(
                    k["id"].as_str().unwrap_or("?"),
                    k["app"].as_str().unwrap_or("?"),
                    (k["revoked_at"].as_i64(), k["expires_at"].as_i64()),
                    now,
                );
            }
        }
    }
    Ok(())
}

/// Opens the store named by a config's identity section and runs `f`.
pub(super) fn admin(
    path: &Path,
    f: impl FnOnce(&dyn Store, &Pepper) -> Result<(), StoreError>,
) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(identity) = config.identity else {
        eprintln!(
            "{}: no `identity` section: applications and keys live in identity.data_dir",
            path.display()
        );
        return ExitCode::from(1);
    };
    let opened = std::fs::create_dir_all(&identity.data_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| Pepper::load_or_create(&identity.data_dir).map_err(|e| e.to_string()))
        .and_then(|p| {
            portcullis_gateway::store::open(&identity, &p)
                .map(|s| (s, p))
                .map_err(|e| e.to_string())
        });
    let (store, pepper) = match opened {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    match f(store.as_ref(), &pepper) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Who changes the store from this machine's CLI, for the audit log.
pub(super) fn local_actor() -> String {
    format!(
        "local:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// Audits a CLI change (before making it), then makes it.
pub(super) fn audited<T>(
    store: &dyn Store,
    pepper: &Pepper,
    action: &str,
    target: &str,
    change: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let entry = portcullis_gateway::store::audit_log::AuditEntry {
        at: portcullis_gateway::clock::now(),
        actor: local_actor(),
        role: "local-store".into(),
        action: action.to_owned(),
        target: target.to_owned(),
        before: None,
        after: None,
        reason: None,
        correlation_id: uuid::Uuid::now_v7().to_string(),
    };
    portcullis_gateway::admin::logged(store, pepper, entry, change)
}

pub(super) fn admins(path: &Path, action: AdminAction) -> ExitCode {
    use portcullis_gateway::admin::{Role, create_admin};
    if let AdminAction::Create { role, .. } = &action
        && Role::parse(role).is_none()
    {
        eprintln!("--role: `{role}` is not one of viewer, operator, security-admin");
        return ExitCode::from(2);
    }
    admin(path, |store, pepper| match action {
        AdminAction::Create { name, role } => {
            let role = Role::parse(&role).expect("checked above");
            let token = create_admin(
                store,
                pepper,
                &name,
                role,
                (&local_actor(), "local-store"),
                &uuid::Uuid::now_v7().to_string(),
            )?;
            println!(
                "administrator {name} ({}); token shown once, store it now:",
                role.as_str()
            );
            println!("{token}");
            Ok(())
        }
        AdminAction::List => {
            for a in store.admins()? {
                println!("{}\t{}", a.name, a.role);
            }
            Ok(())
        }
        AdminAction::AuditLog(AuditLogAction::Show) => {
            for (seq, e) in portcullis_gateway::store::audit_log::entries(store)? {
                println!("{}", serde_json::json!({ "seq": seq, "entry": e }));
            }
            Ok(())
        }
        AdminAction::AuditLog(AuditLogAction::Verify) => {
            match portcullis_gateway::store::audit_log::verify(store, pepper)? {
                Ok(n) => {
                    println!("audit log intact: {n} entries");
                    Ok(())
                }
                Err(b) => Err(StoreError::AuditBroken(b.to_string())),
            }
        }
    })
}

pub(super) fn apps(
    store: &dyn Store,
    pepper: &Pepper,
    action: AppsAction,
) -> Result<(), StoreError> {
    let now = portcullis_gateway::clock::now();
    match action {
        AppsAction::Create { name } => {
            let app = audited(store, pepper, "app.create", &name, || {
                store.create_app(&name, now)
            })?;
            println!("created application {} ({})", app.name, app.id);
        }
        AppsAction::List => {
            for a in store.apps()? {
                println!(
                    "{}\t{}\t{}",
                    a.name,
                    if a.enabled { "enabled" } else { "disabled" },
                    a.id
                );
            }
        }
        AppsAction::Disable { name, .. } => {
            audited(store, pepper, "app.disable", &name, || {
                store.set_app_enabled(&name, false)
            })?;
            println!("disabled {name}: its keys are refused from the next request");
        }
        AppsAction::Enable { name, .. } => {
            audited(store, pepper, "app.enable", &name, || {
                store.set_app_enabled(&name, true)
            })?;
            println!("enabled {name}");
        }
        AppsAction::BindCert { name, san } => {
            // DNS names are compared in lower case, URIs exactly.
            let san = if san.contains(':') {
                san
            } else {
                san.to_ascii_lowercase()
            };
            audited(store, pepper, "app.bind-cert", &san, || {
                store.bind_certificate(&name, &san, now)
            })?;
            println!("client certificates naming {san} now identify {name}");
        }
        AppsAction::UnbindCert { san } => {
            audited(store, pepper, "app.unbind-cert", &san, || {
                store.unbind_certificate(&san)
            })?;
            println!("{san} no longer identifies an application");
        }
        AppsAction::Certs => {
            for (san, app) in store.certificate_bindings()? {
                println!("{san}\t{app}");
            }
        }
    }
    Ok(())
}

pub(super) fn keys(
    store: &dyn Store,
    pepper: &Pepper,
    action: KeysAction,
) -> Result<(), StoreError> {
    let now = portcullis_gateway::clock::now();
    match action {
        KeysAction::Issue { app } => {
            let (id, key) = audited(store, pepper, "key.issue", &app, || {
                apikeys::issue(store, pepper, &app, now)
            })?;
            println!("key id {id} for {app}; shown once, store it now:");
            println!("{key}");
        }
        KeysAction::Rotate { app, overlap_s } => {
            let (id, key) = audited(store, pepper, "key.rotate", &app, || {
                apikeys::rotate(store, pepper, &app, overlap_s, now)
            })?;
            println!("key id {id} for {app}; older keys stay valid for {overlap_s} s. Shown once:");
            println!("{key}");
        }
        KeysAction::Revoke { id, .. } => {
            audited(store, pepper, "key.revoke", &id, || {
                store.revoke_key(&id, now)
            })?;
            println!("revoked key {id}");
        }
        KeysAction::List { app } => {
            let app_id = app
                .map(|a| store.app_by_name(&a))
                .transpose()?
                .map(|a| a.id);
            let names: std::collections::HashMap<String, String> =
                store.apps()?.into_iter().map(|a| (a.id, a.name)).collect();
            for k in store.keys(app_id.as_deref())? {
                print_key(
                    &k.id,
                    names.get(&k.app_id).map_or("?", String::as_str),
                    (k.revoked_at, k.expires_at),
                    now,
                );
            }
        }
    }
    Ok(())
}

/// One line of `keys list`: id, application, state.
pub(super) fn print_key(
    id: &str,
    app: &str,
    (revoked_at, expires_at): (Option<i64>, Option<i64>),
    now: i64,
) {
    let state = match (revoked_at, expires_at) {
        (Some(_), _) => "revoked".to_owned(),
        (None, Some(e)) if e <= now => "expired".to_owned(),
        (None, Some(e)) => format!("expires in {} s", e - now),
        (None, None) => "active".to_owned(),
    };
    println!("{id}\t{app}\t{state}");
}
