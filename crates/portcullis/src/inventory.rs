//! `portcullis inventory` (CONTRACT-03): every route the config serves, with
//! its API, environment, authentication, scopes, data classification and
//! owner, as JSON, CSV or a Markdown table. With `--traffic` it asks the
//! running gateway's admin plane (token in `PORTCULLIS_ADMIN_TOKEN`) for
//! each route's volume and last-seen time since start, and lists the shadow
//! endpoints: paths clients asked for that no route declares.

use portcullis_config::{AuthPolicy, Config};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
    Markdown,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub api: String,
    pub operation_id: Option<String>,
    pub method: String,
    pub path: String,
    /// `all`, or the environments the route is served in.
    pub environment: String,
    /// `public`, `api_key`, `token` or `api_key+token`.
    pub authentication: String,
    pub scopes: Vec<String>,
    /// Highest `x-classification` on anything the operation takes or returns.
    pub classification: Option<String>,
    pub owner: Option<String>,
    /// `openapi` (validated against the document) or `config` (routes by hand).
    pub source: String,
    /// With `--traffic`: what the running instance has served.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Seen>,
}

/// A route's traffic since the instance started.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Seen {
    pub requests: u64,
    /// Unix seconds of the last request; `None` if there was none.
    pub last_seen: Option<u64>,
}

/// What the admin plane's `GET /admin/v1/inventory` answers.
#[derive(Debug, serde::Deserialize, Serialize)]
pub struct Traffic {
    pub routes: Vec<RouteTraffic>,
    pub shadow_endpoints: Vec<Shadow>,
    pub shadow_not_kept: u64,
}

#[derive(Debug, serde::Deserialize, Serialize)]
pub struct RouteTraffic {
    pub operation: String,
    pub requests: u64,
    pub last_seen: Option<u64>,
}

#[derive(Debug, serde::Deserialize, Serialize)]
pub struct Shadow {
    pub path: String,
    pub requests: u64,
}

/// Joins a running instance's traffic to the rows.
pub fn join(rows: &mut [Row], traffic: &Traffic) {
    for r in rows {
        let op = format!("{} {}", r.method, r.path);
        let seen = traffic.routes.iter().find(|t| t.operation == op);
        r.traffic = Some(Seen {
            requests: seen.map_or(0, |t| t.requests),
            last_seen: seen.and_then(|t| t.last_seen),
        });
    }
}

/// The shadow endpoints, after the routes, in the same format.
pub fn render_shadow(traffic: &Traffic, format: Format) -> String {
    match format {
        Format::Json => unreachable!("JSON renders rows and traffic together"),
        Format::Csv => {
            use std::fmt::Write;
            traffic
                .shadow_endpoints
                .iter()
                .fold(String::new(), |mut out, s| {
                    let _ = writeln!(out, "shadow,{},{}", csv_cell(&s.path), s.requests);
                    out
                })
        }
        Format::Markdown => {
            let mut out = String::from(
                "\nShadow endpoints (asked for, declared by no route):\n\n| path | requests |\n|---|---|\n",
            );
            for s in &traffic.shadow_endpoints {
                out.push_str(&format!(
                    "| {} | {} |\n",
                    s.path.replace('|', "\\|"),
                    s.requests
                ));
            }
            if traffic.shadow_not_kept > 0 {
                out.push_str(&format!(
                    "\n({} more requests for paths not kept)\n",
                    traffic.shadow_not_kept
                ));
            }
            out
        }
    }
}

/// RFC 4180 quoting; a leading formula character is neutralised so a
/// spreadsheet never evaluates a cell.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn rows(config: &Config) -> Vec<Row> {
    let mut out = Vec::new();
    for api in &config.apis {
        for route in &api.routes {
            let op = route.operation.as_deref();
            let (authentication, scopes) = match &route.auth {
                AuthPolicy::Public => ("public".to_owned(), Vec::new()),
                AuthPolicy::Protected(p) => {
                    let mut parts = Vec::new();
                    if p.api_key {
                        parts.push("api_key");
                    }
                    if p.token {
                        parts.push("token");
                    }
                    (parts.join("+"), p.scopes.clone())
                }
            };
            for method in &route.methods {
                out.push(Row {
                    api: api.name.clone(),
                    operation_id: op.map(|o| o.id.clone()),
                    method: method.to_string(),
                    path: format!("{}{}", api.base_path, route.path),
                    environment: route
                        .environments
                        .as_ref()
                        .map_or_else(|| "all".to_owned(), |e| e.join(",")),
                    authentication: authentication.clone(),
                    scopes: scopes.clone(),
                    classification: op
                        .and_then(|o| o.classification)
                        .map(|c| c.as_str().to_owned()),
                    owner: api
                        .owner
                        .clone()
                        .or_else(|| op.and_then(|o| o.owner.clone())),
                    source: if op.is_some() { "openapi" } else { "config" }.to_owned(),
                    traffic: None,
                });
            }
        }
    }
    out
}

const HEAD: [&str; 10] = [
    "api",
    "operation_id",
    "method",
    "path",
    "environment",
    "authentication",
    "scopes",
    "classification",
    "owner",
    "source",
];

pub fn render(rows: &[Row], format: Format) -> String {
    let traffic = rows.first().is_some_and(|r| r.traffic.is_some());
    let head: Vec<&str> = HEAD
        .iter()
        .copied()
        .chain(
            traffic
                .then_some(["requests", "last_seen"])
                .into_iter()
                .flatten(),
        )
        .collect();
    let cells = |r: &Row| {
        let mut c = vec![
            r.api.clone(),
            r.operation_id.clone().unwrap_or_default(),
            r.method.clone(),
            r.path.clone(),
            r.environment.clone(),
            r.authentication.clone(),
            r.scopes.join(" "),
            r.classification.clone().unwrap_or_default(),
            r.owner.clone().unwrap_or_default(),
            r.source.clone(),
        ];
        if let Some(seen) = r.traffic {
            c.push(seen.requests.to_string());
            c.push(
                seen.last_seen
                    .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "never".into()),
            );
        }
        c
    };
    match format {
        Format::Json => serde_json::to_string_pretty(rows).expect("rows serialise") + "\n",
        Format::Csv => {
            let quote = csv_cell;
            let mut out = head.join(",") + "\n";
            for r in rows {
                out.push_str(
                    &cells(r)
                        .iter()
                        .map(|c| quote(c))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                out.push('\n');
            }
            out
        }
        Format::Markdown => {
            let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
            let mut out = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
            for r in rows {
                out.push_str(&format!(
                    "| {} |\n",
                    cells(r)
                        .iter()
                        .map(|c| esc(c))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
            }
            out
        }
    }
}
