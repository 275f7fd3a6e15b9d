//! The shape of a security event (OPS-01), after OCSF: API Activity 6003,
//! Authentication 3002 for credential failures, Account Change 3001 for
//! admin changes. Fields are bounded; no header value, body or query
//! string is ever copied in.

use crate::rejection::{Rejection, Severity};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the pipeline knew about a request when it decided.
#[derive(Debug)]
pub struct EventContext<'a> {
    pub correlation_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
    pub client: SocketAddr,
    pub listener: &'a str,
    pub api: Option<&'a str>,
    pub operation: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct SecurityEvent {
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    pub class_uid: u32,
    pub class_name: String,
    pub category_uid: u32,
    pub activity_id: u32,
    pub type_uid: u32,
    pub severity_id: u8,
    pub severity: String,
    pub status_id: u8,
    pub status: String,
    /// Stable reason code (the rejection's problem type).
    pub status_code: String,
    /// Internal detail for operators; never sent to the client.
    pub message: String,
    pub metadata: Metadata,
    pub http_request: HttpRequest,
    pub http_response: HttpResponse,
    pub src_endpoint: Endpoint,
    pub api: Api,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Metadata {
    pub product: Product,
    pub version: String,
    pub correlation_uid: String,
    pub listener: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Product {
    pub name: String,
    pub vendor_name: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct HttpRequest {
    pub http_method: String,
    pub url: Url,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Url {
    pub hostname: String,
    /// Path only: query strings can carry secrets.
    pub path: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct HttpResponse {
    pub code: u16,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Api {
    pub service: Option<String>,
    pub operation: Option<String>,
}

/// Longest path or host copied into an event.
pub(super) const MAX_FIELD: usize = 256;

pub(super) fn bounded(s: &str) -> String {
    if s.len() <= MAX_FIELD {
        return s.to_owned();
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl SecurityEvent {
    pub fn rejection(r: &Rejection, ctx: &EventContext<'_>) -> Self {
        Self::new(
            r.code(),
            r.severity(),
            &r.to_string(),
            r.status().as_u16(),
            false,
            ctx,
        )
    }

    /// A notable decision that let the request through (e.g. personal data
    /// seen in a response): `status` is Success, the code says what was found.
    pub fn finding(
        code: &str,
        severity: Severity,
        message: &str,
        http_code: u16,
        ctx: &EventContext<'_>,
    ) -> Self {
        Self::new(code, severity, message, http_code, true, ctx)
    }

    /// Something the gateway itself did or failed to do, outside any
    /// request (key rotation, CRL reload, a shared store's outage).
    pub fn operational(code: &str, severity: Severity, message: &str) -> Self {
        let ctx = EventContext {
            correlation_id: "",
            method: "",
            path: "",
            host: "",
            client: SocketAddr::from(([0, 0, 0, 0], 0)),
            listener: "",
            api: None,
            operation: None,
        };
        Self::new(code, severity, message, 0, true, &ctx)
    }

    /// An administrator changed an application, key or administrator (OCSF
    /// Account Change, class 3001); `action` is the audit log's (`app.disable`).
    pub fn account_change(action: &str, actor: &str, target: &str, correlation_id: &str) -> Self {
        let ctx = EventContext {
            correlation_id,
            method: "",
            path: "",
            host: "",
            client: SocketAddr::from(([0, 0, 0, 0], 0)),
            listener: "admin",
            api: None,
            operation: None,
        };
        let mut e = Self::new(
            action,
            Severity::Informational,
            &format!("{actor}: {action} {target}"),
            0,
            true,
            &ctx,
        );
        let activity_id = match action.rsplit('.').next().unwrap_or("") {
            "create" | "issue" => 1,
            "enable" => 2,
            "disable" => 5,
            "revoke" => 6,
            _ => 99,
        };
        e.class_uid = 3001;
        e.class_name = "Account Change".into();
        e.category_uid = 3;
        e.activity_id = activity_id;
        e.type_uid = 3001 * 100 + activity_id;
        e
    }

    fn new(
        code: &str,
        severity: Severity,
        message: &str,
        http_code: u16,
        success: bool,
        ctx: &EventContext<'_>,
    ) -> Self {
        // Credential failures are OCSF Authentication (3002, activity Logon);
        // everything else about a request is API Activity (6003).
        let authentication = matches!(
            code,
            "missing-api-key"
                | "invalid-api-key"
                | "missing-token"
                | "invalid-token"
                | "client-certificate-refused"
                | "admin-unauthenticated"
        );
        let (class_uid, class_name, category_uid) = if authentication {
            (3002, "Authentication", 3)
        } else {
            (6003, "API Activity", 6)
        };
        let activity_id = match ctx.method {
            _ if authentication => 1,
            "POST" => 1,
            "GET" | "HEAD" => 2,
            "PUT" | "PATCH" => 3,
            "DELETE" => 4,
            _ => 99,
        };
        Self {
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            class_uid,
            class_name: class_name.into(),
            category_uid,
            activity_id,
            type_uid: class_uid * 100 + activity_id,
            severity_id: severity as u8,
            severity: severity.name().into(),
            status_id: if success { 1 } else { 2 },
            status: if success { "Success" } else { "Failure" }.into(),
            status_code: code.into(),
            message: bounded(message),
            metadata: Metadata {
                product: Product {
                    name: "Portcullis".into(),
                    vendor_name: "Portcullis".into(),
                },
                version: "1.1.0".into(),
                correlation_uid: ctx.correlation_id.to_owned(),
                listener: ctx.listener.to_owned(),
            },
            http_request: HttpRequest {
                http_method: bounded(ctx.method),
                url: Url {
                    hostname: bounded(ctx.host),
                    path: bounded(ctx.path),
                },
            },
            http_response: HttpResponse { code: http_code },
            src_endpoint: Endpoint {
                ip: ctx.client.ip().to_string(),
                port: ctx.client.port(),
            },
            api: Api {
                service: ctx.api.map(str::to_owned),
                operation: ctx.operation.map(str::to_owned),
            },
        }
    }
}
