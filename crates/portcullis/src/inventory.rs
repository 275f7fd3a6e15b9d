//! `portcullis inventory` (CONTRACT-03): every route the config serves, with
//! its API, environment, authentication, scopes, data classification and
//! owner, as JSON, CSV or a Markdown table. Traffic (last seen, volume,
//! shadow endpoints) joins it with the control plane.

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
    let cells = |r: &Row| {
        [
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
        ]
    };
    match format {
        Format::Json => serde_json::to_string_pretty(rows).expect("rows serialise") + "\n",
        Format::Csv => {
            let quote = |s: &str| {
                // RFC 4180 quoting; a leading formula character is neutralised
                // so a spreadsheet never evaluates a cell.
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
            };
            let mut out = HEAD.join(",") + "\n";
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
            let mut out = format!("| {} |\n|{}\n", HEAD.join(" | "), "---|".repeat(HEAD.len()));
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
