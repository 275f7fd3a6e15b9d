//! Operations compiled from the document, and the checks the gateway runs
//! on each request and response of one (INPUT-04, INPUT-05, INPUT-06:
//! undeclared query parameters and headers, INPUT-07).

use crate::document::escape;
use crate::document::{Document, Version, deref, resolve_ref};
use crate::media::{self, MediaRange};
use crate::shape::{ShapeId, Shapes, Undeclared, WalkOutcome};
use crate::{Classification, Contract, ContractError, Options, Security, UnknownProperties, json};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, header};
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;
use std::sync::Arc;

/// Where in the request an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
    Header,
    Body,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Body => "body",
        }
    }
}

/// One thing wrong with a request: where, and why. Never the value (OUTPUT-05).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub location: Location,
    /// JSON pointer: into the body, or `/<name>` for a parameter.
    pub pointer: String,
    pub reason: String,
}

impl Issue {
    pub fn new(location: Location, pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            location,
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// Why a request does not meet the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// 415: the body's media type is not one the operation declares.
    UnsupportedMediaType { allowed: String },
    /// 406: nothing the client accepts is something the operation returns.
    NotAcceptable { available: String },
    /// 400: the listed issues.
    Invalid(Vec<Issue>),
}

/// Parameters passed: the query string to forward, rebuilt only when
/// something undeclared was stripped.
#[derive(Debug, Default)]
pub struct ParamOutcome {
    pub query: Option<String>,
    pub stripped: usize,
}

/// How the gateway handles one upstream response.
#[derive(Debug)]
pub enum ResponsePlan<'a> {
    /// Not inspectable (binary) and nothing to enforce: streamed through.
    Stream,
    /// The operation's declared responses carry classified fields, and this
    /// answer matches no declared status and media type with a schema: it
    /// cannot be filtered, so it must not pass (OUTPUT-10).
    Undeclared,
    /// Buffer and inspect; `spec` when the contract declares a JSON schema.
    Inspect {
        json: bool,
        spec: Option<&'a ResponseSpec>,
    },
}

/// What filtering a response did.
#[derive(Debug, Default)]
pub struct ResponseOutcome {
    /// The body to send when it changed.
    pub body: Option<Bytes>,
    pub walk: WalkOutcome,
}

/// A JSON response that does not meet its declared schema.
#[derive(Debug)]
pub enum ResponseViolation {
    NotJson,
    Invalid(Vec<Issue>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Any,
}

#[derive(Debug)]
struct Param {
    name: String,
    location: Location,
    required: bool,
    kind: Kind,
    /// `Some(kind)` for arrays: the item kind.
    array_of: Option<Kind>,
    /// Arrays in one value separated by commas (`explode: false`).
    comma_separated: bool,
    header: Option<HeaderName>,
    validator: Option<jsonschema::Validator>,
}

#[derive(Debug)]
struct BodySpec {
    json: bool,
    shape: Option<ShapeId>,
    validator: Option<jsonschema::Validator>,
}

/// A declared response body: its shape and validator.
#[derive(Debug)]
pub struct ResponseSpec {
    shape: Option<ShapeId>,
    validator: Option<jsonschema::Validator>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusKey {
    Exact(u16),
    Range(u16),
    Default,
}

/// One operation of the contract, compiled.
#[derive(Debug)]
pub struct Operation {
    /// `operationId`, or `METHOD /path` when the document gives none.
    pub id: String,
    pub method: Method,
    /// The path template as written in the document.
    pub path: String,
    /// JSON pointer of the operation object.
    pub pointer: String,
    pub security: Security,
    /// Environments this operation is served in; `None` = all.
    pub environments: Option<Vec<String>>,
    pub owner: Option<String>,
    /// The highest label on anything the operation takes or returns.
    pub classification: Option<Classification>,
    /// Whether a path parameter is labelled `pii` or `secret` (events then
    /// show the template, not the path).
    pub classified_path: bool,
    /// Whether a declared response schema reaches a field classified above
    /// `public`: answers outside the declared ones are then refused.
    classified_responses: bool,
    params: Vec<Param>,
    bodies: Vec<(MediaRange, BodySpec)>,
    body_required: bool,
    responses: Vec<(StatusKey, Vec<(MediaRange, ResponseSpec)>)>,
    response_media: Vec<MediaRange>,
    shapes: Arc<Shapes>,
    unknown: UnknownProperties,
    json_limits: json::JsonLimits,
    strip_responses: bool,
    validate_responses: bool,
}

const METHODS: [(&str, Method); 7] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
    ("patch", Method::PATCH),
];

/// Headers any operation may receive without declaring them.
const STANDARD_HEADERS: [&str; 15] = [
    "accept",
    "accept-language",
    "authorization",
    "cache-control",
    "content-language",
    "content-type",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "origin",
    "prefer",
    "range",
    "user-agent",
];

mod compile;
pub(crate) use compile::compile_all;

const MAX_ISSUES: usize = 20;

fn coerce(kind: Kind, raw: &str) -> Result<Value, &'static str> {
    match kind {
        Kind::String | Kind::Any => Ok(Value::String(raw.to_owned())),
        Kind::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "must be an integer"),
        Kind::Number => raw
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or("must be a number"),
        Kind::Boolean => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("must be true or false"),
        },
    }
}

/// Percent-decodes a query component (`+` is a space).
fn decode_component(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

fn media_list<'a>(it: impl Iterator<Item = &'a MediaRange>) -> String {
    it.map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The reason text for a validation error: what is wrong, never the value.
fn reason(kind: &ValidationErrorKind) -> String {
    use ValidationErrorKind as K;
    match kind {
        K::Type { kind } => match kind {
            jsonschema::error::TypeKind::Single(t) => format!("must be of type {t}"),
            jsonschema::error::TypeKind::Multiple(ts) => {
                let names: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
                format!("must be of type {}", names.join(" or "))
            }
        },
        K::Required { .. } => "is required".into(),
        K::AdditionalProperties { .. } | K::UnevaluatedProperties { .. } => {
            "is not declared".into()
        }
        K::MaxLength { limit } => format!("must be at most {limit} characters long"),
        K::MinLength { limit } => format!("must be at least {limit} characters long"),
        K::Maximum { limit } => format!("must be at most {limit}"),
        K::Minimum { limit } => format!("must be at least {limit}"),
        K::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        K::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        K::MaxItems { limit } => format!("must have at most {limit} items"),
        K::MinItems { limit } => format!("must have at least {limit} items"),
        K::MaxProperties { limit } => format!("must have at most {limit} properties"),
        K::MinProperties { limit } => format!("must have at least {limit} properties"),
        K::Pattern { .. } => "does not match the required pattern".into(),
        K::BacktrackLimitExceeded { .. } | K::RegexEngineFailure { .. } => {
            "could not be checked against its pattern; send a simpler value".into()
        }
        K::Format { format } if format == "byte" => "must be base64 (RFC 4648) with padding".into(),
        K::Format { format } => format!("must be a valid {format}"),
        K::Enum { .. } => "must be one of the allowed values".into(),
        K::Constant { .. } => "must be the fixed value the schema declares".into(),
        K::UniqueItems => "must not repeat items".into(),
        K::MultipleOf { .. } => "is not an allowed multiple".into(),
        K::OneOfMultipleValid { .. } => "matches more than one allowed form".into(),
        K::OneOfNotValid { .. } | K::AnyOf { .. } => "matches none of the allowed forms".into(),
        K::Not { .. } => "is a form that is not allowed".into(),
        K::FalseSchema => "is not allowed".into(),
        _ => "does not match the schema".into(),
    }
}

fn issues(
    validator: &jsonschema::Validator,
    value: &Value,
    location: Location,
    base: &str,
) -> Vec<Issue> {
    // The common case: valid, answered without building any error.
    if validator.is_valid(value) {
        return Vec::new();
    }
    validator
        .iter_errors(value)
        .take(MAX_ISSUES)
        .map(|e| {
            let mut pointer = format!("{base}{}", e.instance_path().as_str());
            if let ValidationErrorKind::Required { property } = e.kind()
                && let Some(p) = property.as_str()
            {
                pointer.push('/');
                pointer.push_str(&escape(p));
            }
            Issue::new(location, pointer, reason(e.kind()))
        })
        .collect()
}

/// The raw values a request gives for parameter `p`, decoded; what cannot
/// be decoded is an issue.
fn raw_values(
    p: &Param,
    path_params: &[(&str, &str)],
    decoded: &[(String, &str, &str)],
    headers: &HeaderMap,
    issues_found: &mut Vec<Issue>,
) -> Vec<String> {
    match p.location {
        Location::Path => path_params
            .iter()
            .filter(|(n, _)| *n == p.name)
            .map(|(_, v)| (*v).to_owned())
            .collect(),
        Location::Query => {
            let mut vals = Vec::new();
            for (name, _, v) in decoded {
                if *name == p.name {
                    match decode_component(v) {
                        Some(d) => vals.push(d),
                        None => issues_found.push(Issue::new(
                            Location::Query,
                            format!("/{}", escape(&p.name)),
                            "is not valid percent-encoded UTF-8",
                        )),
                    }
                }
            }
            vals
        }
        Location::Header => {
            let mut vals = Vec::new();
            for v in p.header.iter().flat_map(|h| headers.get_all(h)) {
                // A value that is not visible ASCII would be judged
                // as one thing here and read as another upstream.
                match v.to_str() {
                    Ok(text) => vals.push(text.to_owned()),
                    Err(_) => issues_found.push(Issue::new(
                        Location::Header,
                        format!("/{}", escape(&p.name)),
                        "is not ASCII text",
                    )),
                }
            }
            vals
        }
        Location::Body => Vec::new(),
    }
}

/// The raw values of parameter `p` as the JSON value its schema judges
/// (an array for array parameters); why not, otherwise.
fn typed_value(p: &Param, raw: &[String]) -> Result<Value, String> {
    if let Some(item) = p.array_of {
        let items: Vec<&str> = if p.comma_separated {
            raw.iter().flat_map(|r| r.split(',')).collect()
        } else {
            raw.iter().map(String::as_str).collect()
        };
        items
            .iter()
            .map(|i| coerce(item, i))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
            .map_err(|why| format!("items {why}"))
    } else if raw.len() > 1 {
        Err("is given more than once".to_owned())
    } else {
        coerce(p.kind, &raw[0]).map_err(str::to_owned)
    }
}

impl Operation {
    fn reach(&self, shapes: &Shapes) -> Option<Classification> {
        let bodies = self.bodies.iter().filter_map(|(_, b)| b.shape);
        let resps = self
            .responses
            .iter()
            .flat_map(|(_, m)| m.iter().filter_map(|(_, r)| r.shape));
        bodies
            .chain(resps)
            .map(|s| shapes.reachable_class(s))
            .max()
            .flatten()
    }

    /// Whether undeclared response properties are stripped.
    pub fn strips_responses(&self) -> bool {
        self.strip_responses
    }

    /// Whether the operation declares a header parameter of this name.
    pub fn declares_header(&self, name: &HeaderName) -> bool {
        STANDARD_HEADERS.contains(&name.as_str())
            || self.params.iter().any(|p| p.header.as_ref() == Some(name))
    }

    /// Path, query and header parameters against their schemas (INPUT-09);
    /// undeclared query parameters stripped or refused (INPUT-06).
    pub fn check_params(
        &self,
        path_params: &[(&str, &str)],
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<ParamOutcome, Violation> {
        let mut issues_found = Vec::new();
        let mut outcome = ParamOutcome::default();
        let pairs: Vec<(&str, &str)> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        let mut decoded: Vec<(String, &str, &str)> = Vec::with_capacity(pairs.len());
        for (k, v) in &pairs {
            let Some(name) = decode_component(k) else {
                issues_found.push(Issue::new(
                    Location::Query,
                    "",
                    "a parameter name is not valid percent-encoded UTF-8",
                ));
                continue;
            };
            decoded.push((name, k, v));
        }
        let mut kept = Vec::with_capacity(pairs.len());
        for (name, k, v) in &decoded {
            if self
                .params
                .iter()
                .any(|p| p.location == Location::Query && p.name == *name)
            {
                kept.push(
                    if v.is_empty() && !query.unwrap_or("").contains(&format!("{k}=")) {
                        (*k).to_owned()
                    } else {
                        format!("{k}={v}")
                    },
                );
            } else if self.unknown == UnknownProperties::Reject {
                issues_found.push(Issue::new(
                    Location::Query,
                    format!("/{}", escape(name)),
                    "is not a declared parameter",
                ));
            } else {
                outcome.stripped += 1;
            }
        }
        for p in &self.params {
            let raw = raw_values(p, path_params, &decoded, headers, &mut issues_found);
            let ptr = format!("/{}", escape(&p.name));
            if raw.is_empty() {
                if p.required {
                    issues_found.push(Issue::new(p.location, ptr, "is required"));
                }
                continue;
            }
            let value = match typed_value(p, &raw) {
                Ok(v) => v,
                Err(why) => {
                    issues_found.push(Issue::new(p.location, ptr, why));
                    continue;
                }
            };
            if let Some(v) = &p.validator {
                issues_found.extend(issues(v, &value, p.location, &ptr));
            }
        }
        if !issues_found.is_empty() {
            issues_found.truncate(MAX_ISSUES);
            return Err(Violation::Invalid(issues_found));
        }
        if outcome.stripped > 0 {
            outcome.query = Some(kept.join("&"));
        }
        Ok(outcome)
    }

    /// `Accept` must admit something the operation returns (INPUT-02).
    pub fn check_accept(&self, headers: &HeaderMap) -> Result<(), Violation> {
        if self.response_media.is_empty() {
            return Ok(());
        }
        for accept in headers.get_all(header::ACCEPT) {
            let ok = accept
                .to_str()
                .is_ok_and(|a| media::acceptable(a, &self.response_media));
            if !ok {
                return Err(Violation::NotAcceptable {
                    available: media_list(self.response_media.iter()),
                });
            }
        }
        Ok(())
    }

    /// Whether a non-empty body sent with these headers may stream to the
    /// upstream unread: its media type is declared, uncompressed and not
    /// JSON (nothing in it is judged). A media type the operation does not
    /// declare is refused as [`Self::check_body`] would.
    pub fn body_streams(&self, headers: &HeaderMap) -> Result<bool, Violation> {
        Ok(!self.body_media(headers)?.json)
    }

    /// The declared media a body with these headers is judged as.
    fn body_media(&self, headers: &HeaderMap) -> Result<&BodySpec, Violation> {
        let unsupported = || Violation::UnsupportedMediaType {
            allowed: media_list(self.bodies.iter().map(|(m, _)| m)),
        };
        if headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
        {
            return Err(unsupported());
        }
        let sent = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(MediaRange::parse)
            .filter(|m| m.kind != "*" && m.subtype != "*" && !m.is_executable())
            .ok_or_else(unsupported)?;
        media::best_match(&self.bodies, &sent).ok_or_else(unsupported)
    }

    /// The request body: media type (INPUT-01/02/13), JSON syntax under
    /// limits (INPUT-03), undeclared properties (INPUT-06) and schema
    /// (INPUT-04/07). Returns the body to forward.
    pub fn check_body(&self, headers: &HeaderMap, body: Bytes) -> Result<Bytes, Violation> {
        if body.is_empty() {
            if self.body_required {
                return Err(Violation::Invalid(vec![Issue::new(
                    Location::Body,
                    "",
                    "a request body is required",
                )]));
            }
            return Ok(body);
        }
        let spec = self.body_media(headers)?;
        if !spec.json {
            // Declared non-JSON media (text, binary, forms) pass as sent.
            return Ok(body);
        }
        let mut value = json::parse(&body, &self.json_limits).map_err(|e| {
            Violation::Invalid(vec![Issue::new(Location::Body, e.pointer(), e.reason())])
        })?;
        let mut walk = WalkOutcome::default();
        if let Some(shape) = spec.shape {
            let mode = match self.unknown {
                UnknownProperties::Strip => Undeclared::Strip,
                UnknownProperties::Reject => Undeclared::Report,
            };
            self.shapes.walk(shape, &mut value, mode, None, &mut walk);
            if !walk.undeclared.is_empty() {
                return Err(Violation::Invalid(
                    walk.undeclared
                        .into_iter()
                        .take(MAX_ISSUES)
                        .map(|p| Issue::new(Location::Body, p, "is not declared"))
                        .collect(),
                ));
            }
        }
        if let Some(v) = &spec.validator {
            let found = issues(v, &value, Location::Body, "");
            if !found.is_empty() {
                return Err(Violation::Invalid(found));
            }
        }
        if walk.changed() {
            return Ok(Bytes::from(
                serde_json::to_vec(&value).expect("a Value always serialises"),
            ));
        }
        Ok(body)
    }

    /// How to treat an upstream response with this status and media type.
    pub fn response_plan(&self, status: u16, content_type: Option<&str>) -> ResponsePlan<'_> {
        let media = content_type.and_then(MediaRange::parse);
        let declared = self
            .responses
            .iter()
            .find(|(k, _)| *k == StatusKey::Exact(status))
            .or_else(|| {
                self.responses
                    .iter()
                    .find(|(k, _)| *k == StatusKey::Range(status / 100))
            })
            .or_else(|| {
                self.responses
                    .iter()
                    .find(|(k, _)| *k == StatusKey::Default)
            });
        let spec = match (&media, declared) {
            (Some(m), Some((_, list))) => media::best_match(list, m).filter(|s| s.shape.is_some()),
            _ => None,
        };
        if self.classified_responses && spec.is_none() {
            return ResponsePlan::Undeclared;
        }
        match media {
            Some(m) if m.is_textual() => ResponsePlan::Inspect {
                json: m.is_json(),
                spec,
            },
            // No or unknown media type with a body: inspect as text, fail closed.
            None => ResponsePlan::Inspect {
                json: false,
                spec: None,
            },
            Some(_) => ResponsePlan::Stream,
        }
    }

    /// Strips undeclared properties and applies classification to a JSON
    /// response (OUTPUT-10, OUTPUT-13); validates it when configured.
    pub fn filter_response(
        &self,
        spec: &ResponseSpec,
        body: &[u8],
        allow_pii: bool,
    ) -> Result<ResponseOutcome, ResponseViolation> {
        let mut value: Value =
            serde_json::from_slice(body).map_err(|_| ResponseViolation::NotJson)?;
        let mut outcome = ResponseOutcome::default();
        if let Some(shape) = spec.shape {
            let mode = if self.strip_responses {
                Undeclared::Strip
            } else {
                Undeclared::Report
            };
            self.shapes
                .walk(shape, &mut value, mode, Some(allow_pii), &mut outcome.walk);
        }
        if self.validate_responses
            && let Some(v) = &spec.validator
        {
            // Validate what will be sent; redacted strings may not meet a format.
            let found: Vec<Issue> = issues(v, &value, Location::Body, "")
                .into_iter()
                .filter(|i| !i.reason.starts_with("must be a valid"))
                .collect();
            if !found.is_empty() {
                return Err(ResponseViolation::Invalid(found));
            }
        }
        if outcome.walk.changed() {
            outcome.body = Some(Bytes::from(
                serde_json::to_vec(&value).expect("a Value always serialises"),
            ));
        }
        Ok(outcome)
    }
}
