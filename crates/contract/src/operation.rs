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

const MAX_ISSUES: usize = 20;

pub(crate) fn compile_all(
    doc: &Document,
    options: &Options,
) -> Result<Contract, Vec<ContractError>> {
    let mut errors = Vec::new();
    let mut shapes = Shapes::default();
    let mut ops = Vec::new();
    let root = &doc.root;
    let title = root
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let schemes = root
        .pointer("/components/securitySchemes")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(Value::Object(s)) = root.pointer("/components/securitySchemes") {
        for (name, scheme) in s {
            if let Err(e) = scheme_kind(doc, scheme, name, options) {
                errors.push(e);
            }
        }
    }
    let Some(Value::Object(paths)) = root.get("paths") else {
        return Err(vec![ContractError::new(
            "/paths",
            "the document declares no paths: there is nothing to route",
        )]);
    };
    for (template, item) in paths {
        let item_ptr = format!("/paths/{}", escape(template));
        let Ok((item, item_ptr)) = deref(doc, item, &item_ptr) else {
            errors.push(ContractError::new(
                &item_ptr,
                "path item reference does not resolve",
            ));
            continue;
        };
        if !template.starts_with('/') {
            errors.push(ContractError::new(&item_ptr, "paths start with `/`"));
            continue;
        }
        for key in ["trace", "connect"] {
            if item.get(key).is_some() {
                errors.push(ContractError::new(
                    format!("{item_ptr}/{key}"),
                    "TRACE and CONNECT are never routed; remove the operation",
                ));
            }
        }
        for (key, method) in &METHODS {
            let Some(op) = item.get(*key) else { continue };
            let ptr = format!("{item_ptr}/{key}");
            match compile_operation(
                doc,
                options,
                &mut shapes,
                &schemes,
                item,
                op,
                template,
                method,
                &ptr,
            ) {
                Ok(o) => ops.push(o),
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    for o in &ops {
        if !ids.insert(o.id.clone()) {
            errors.push(ContractError::new(
                format!("{}/operationId", o.pointer),
                format!("operationId `{}` is used twice", o.id),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    shapes.finish();
    let shapes = Arc::new(shapes);
    let operations = ops
        .into_iter()
        .map(|mut o| {
            o.classification = o.classification.max(o.reach(&shapes));
            o.classified_responses = o
                .responses
                .iter()
                .flat_map(|(_, m)| m.iter().filter_map(|(_, r)| r.shape))
                .filter_map(|s| shapes.reachable_class(s))
                .any(|c| c > Classification::Public);
            o.shapes = shapes.clone();
            Arc::new(o)
        })
        .collect();
    Ok(Contract {
        version: doc.version,
        title,
        operations,
    })
}

#[allow(clippy::too_many_arguments)]
fn compile_operation(
    doc: &Document,
    options: &Options,
    shapes: &mut Shapes,
    schemes: &Value,
    item: &Value,
    op: &Value,
    template: &str,
    method: &Method,
    ptr: &str,
) -> Result<Operation, Vec<ContractError>> {
    let mut errors = Vec::new();
    let root = &doc.root;
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .map_or_else(|| format!("{method} {template}"), str::to_owned);
    let security = match op.get("security").or_else(|| root.get("security")) {
        None => Ok(Security::None),
        Some(req) => security(doc, schemes, req, ptr, options),
    };
    let security = security.unwrap_or_else(|e| {
        errors.push(e);
        Security::None
    });
    let item_ptr = ptr.rsplit_once('/').map_or("", |(b, _)| b);
    let environments = operation_environments(root, item, op, item_ptr, ptr).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let owner = [
        op.get("x-owner"),
        root.get("x-owner"),
        root.pointer("/info/contact/name"),
        root.pointer("/info/contact/email"),
    ]
    .into_iter()
    .flatten()
    .find_map(Value::as_str)
    .map(str::to_owned);

    let (params, classification, classified_path) =
        operation_params(doc, options, item, op, ptr, &mut errors);
    let (bodies, body_required) = request_bodies(doc, shapes, op, ptr, &mut errors);
    let (responses, response_media) = operation_responses(doc, shapes, op, ptr, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Operation {
        id,
        method: method.clone(),
        path: template.to_owned(),
        pointer: ptr.to_owned(),
        security,
        environments,
        owner,
        classification,
        classified_path,
        classified_responses: false,
        params,
        bodies,
        body_required,
        responses,
        response_media,
        shapes: Arc::default(),
        unknown: options.unknown_properties,
        json_limits: options.json,
        strip_responses: options.strip_responses,
        validate_responses: options.validate_responses,
    })
}

/// An operation's parameters (path-item level, overridden by operation
/// level), compiled; with the highest classification among them and whether
/// a path parameter is personal or secret.
fn operation_params(
    doc: &Document,
    options: &Options,
    item: &Value,
    op: &Value,
    ptr: &str,
    errors: &mut Vec<ContractError>,
) -> (Vec<Param>, Option<Classification>, bool) {
    let mut raw_params: Vec<(Value, String)> = Vec::new();
    for (source, base) in [
        (item, ptr.rsplit_once('/').map_or("", |(b, _)| b)),
        (op, ptr),
    ] {
        if let Some(Value::Array(list)) = source.get("parameters") {
            for (i, p) in list.iter().enumerate() {
                match deref(doc, p, &format!("{base}/parameters/{i}")) {
                    Ok((p, at)) => {
                        let key = (p.get("name").cloned(), p.get("in").cloned());
                        raw_params
                            .retain(|(q, _)| (q.get("name").cloned(), q.get("in").cloned()) != key);
                        raw_params.push((p.clone(), at));
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    let mut params = Vec::new();
    let mut classification = None;
    let mut classified_path = false;
    for (p, at) in &raw_params {
        match param(doc, options, p, at) {
            Ok(Some((param, class))) => {
                classification = classification.max(class);
                if param.location == Location::Path
                    && class.is_some_and(|c| c >= Classification::Pii)
                {
                    classified_path = true;
                }
                params.push(param);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }

    (params, classification, classified_path)
}

/// An operation's request bodies by media type, and whether one is required.
fn request_bodies(
    doc: &Document,
    shapes: &mut Shapes,
    op: &Value,
    ptr: &str,
    errors: &mut Vec<ContractError>,
) -> (Vec<(MediaRange, BodySpec)>, bool) {
    let mut bodies = Vec::new();
    let mut body_required = false;
    if let Some(rb) = op.get("requestBody") {
        match deref(doc, rb, &format!("{ptr}/requestBody")) {
            Ok((rb, at)) => {
                body_required = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
                if let Some(Value::Object(content)) = rb.get("content") {
                    for (mt, media_obj) in content {
                        let mp = format!("{at}/content/{}", escape(mt));
                        let Some(range) = MediaRange::parse(mt) else {
                            errors.push(ContractError::new(mp, "not a media type"));
                            continue;
                        };
                        if range.is_executable() {
                            errors.push(ContractError::new(mp, format!("`{range}` is an executable or script media type; such bodies are never accepted (INPUT-13)")));
                            continue;
                        }
                        match body_spec(doc, shapes, media_obj, &mp, range.is_json()) {
                            Ok(spec) => bodies.push((range, spec)),
                            Err(e) => errors.push(e),
                        }
                    }
                }
                if bodies.is_empty() {
                    errors.push(ContractError::new(
                        format!("{at}/content"),
                        "a request body must declare at least one media type",
                    ));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (bodies, body_required)
}

type Responses = Vec<(StatusKey, Vec<(MediaRange, ResponseSpec)>)>;

/// An operation's responses by status and media type, and every media type
/// they use.
fn operation_responses(
    doc: &Document,
    shapes: &mut Shapes,
    op: &Value,
    ptr: &str,
    errors: &mut Vec<ContractError>,
) -> (Responses, Vec<MediaRange>) {
    let mut responses = Vec::new();
    let mut response_media: Vec<MediaRange> = Vec::new();
    match op.get("responses") {
        Some(Value::Object(rs)) => {
            for (code, r) in rs {
                let rp = format!("{ptr}/responses/{}", escape(code));
                let Some(key) = status_key(code) else {
                    errors.push(ContractError::new(
                        rp,
                        "not a status code, `1XX`-`5XX` or `default`",
                    ));
                    continue;
                };
                let (r, at) = match deref(doc, r, &rp) {
                    Ok(x) => x,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                let mut media = Vec::new();
                if let Some(Value::Object(content)) = r.get("content") {
                    for (mt, media_obj) in content {
                        let mp = format!("{at}/content/{}", escape(mt));
                        let Some(range) = MediaRange::parse(mt) else {
                            errors.push(ContractError::new(mp, "not a media type"));
                            continue;
                        };
                        match body_spec(doc, shapes, media_obj, &mp, range.is_json()) {
                            Ok(spec) => {
                                if !response_media.contains(&range) {
                                    response_media.push(range.clone());
                                }
                                media.push((
                                    range,
                                    ResponseSpec {
                                        shape: spec.shape,
                                        validator: spec.validator,
                                    },
                                ));
                            }
                            Err(e) => errors.push(e),
                        }
                    }
                }
                responses.push((key, media));
            }
        }
        _ => errors.push(ContractError::new(
            format!("{ptr}/responses"),
            "an operation must declare its responses",
        )),
    }
    (responses, response_media)
}

/// CONTRACT-03: `x-environment` on the operation, its path item or the
/// document, else the environments of the servers that apply to it when
/// every one of them is marked.
fn operation_environments(
    root: &Value,
    item: &Value,
    op: &Value,
    item_ptr: &str,
    ptr: &str,
) -> Result<Option<Vec<String>>, ContractError> {
    for (v, at) in [(op, ptr), (item, item_ptr), (root, "")] {
        if let Some(e) = environments(v.get("x-environment"), at)? {
            return Ok(Some(e));
        }
    }
    let servers = [(op, ptr), (item, item_ptr), (root, "")]
        .into_iter()
        .find_map(|(v, at)| {
            v.get("servers")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .map(|l| (l, at))
        });
    let Some((list, at)) = servers else {
        return Ok(None);
    };
    let mut all = Vec::new();
    for (i, server) in list.iter().enumerate() {
        match environments(server.get("x-environment"), &format!("{at}/servers/{i}"))? {
            Some(e) => all.extend(e),
            None => return Ok(None),
        }
    }
    all.sort();
    all.dedup();
    Ok(Some(all))
}

fn environments(v: Option<&Value>, ptr: &str) -> Result<Option<Vec<String>>, ContractError> {
    let bad = || {
        ContractError::new(
            format!("{ptr}/x-environment"),
            "must be an environment name or a list of them",
        )
    };
    match v {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(vec![s.to_ascii_lowercase()])),
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|e| {
                e.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// What a security scheme contributes: `(api_key, token)`.
fn scheme_kind(
    doc: &Document,
    scheme: &Value,
    name: &str,
    options: &Options,
) -> Result<(bool, bool), ContractError> {
    let at = format!("/components/securitySchemes/{}", escape(name));
    let (scheme, at) = deref(doc, scheme, &at)?;
    let s = |k: &str| scheme.get(k).and_then(Value::as_str).unwrap_or("");
    match s("type") {
        "apiKey" => {
            if s("in") != "header" {
                return Err(ContractError::new(
                    format!("{at}/in"),
                    "API keys are accepted in a header only, never in the query string or a cookie (AUTHN-04)",
                ));
            }
            if let Some(h) = &options.api_key_header
                && !h.eq_ignore_ascii_case(s("name"))
            {
                return Err(ContractError::new(
                    format!("{at}/name"),
                    format!(
                        "the gateway reads API keys from `{h}` (identity.api_key_header); name that header here"
                    ),
                ));
            }
            Ok((true, false))
        }
        "http" if s("scheme").eq_ignore_ascii_case("bearer") => Ok((false, true)),
        "http" => Err(ContractError::new(
            format!("{at}/scheme"),
            format!(
                "HTTP `{}` authentication is not accepted: use bearer tokens or API keys (AUTHN-07)",
                s("scheme")
            ),
        )),
        "oauth2" => {
            for bad in ["implicit", "password"] {
                if scheme.pointer(&format!("/flows/{bad}")).is_some() {
                    return Err(ContractError::new(
                        format!("{at}/flows/{bad}"),
                        format!(
                            "the OAuth 2 `{bad}` flow is not accepted (RFC 9700); use the authorization code flow with PKCE or client credentials (AUTHN-07)"
                        ),
                    ));
                }
            }
            Ok((false, true))
        }
        "openIdConnect" => Ok((false, true)),
        "mutualTLS" => Err(ContractError::new(
            format!("{at}/type"),
            "mutualTLS security schemes are not enforced yet; use bearer tokens or API keys",
        )),
        other => Err(ContractError::new(
            format!("{at}/type"),
            format!("unknown security scheme type `{other}`"),
        )),
    }
}

fn security(
    doc: &Document,
    schemes: &Value,
    req: &Value,
    ptr: &str,
    options: &Options,
) -> Result<Security, ContractError> {
    let at = format!("{ptr}/security");
    let Value::Array(alternatives) = req else {
        return Err(ContractError::new(
            at,
            "must be a list of security requirements",
        ));
    };
    let mut compiled: Vec<Security> = Vec::new();
    for (i, alt) in alternatives.iter().enumerate() {
        let Value::Object(map) = alt else {
            return Err(ContractError::new(
                format!("{at}/{i}"),
                "must be a map of scheme names to scopes",
            ));
        };
        if map.is_empty() {
            compiled.push(Security::None);
            continue;
        }
        let (mut api_key, mut token, mut scopes) = (false, false, Vec::new());
        for (name, sc) in map {
            let Some(scheme) = schemes.get(name) else {
                return Err(ContractError::new(
                    format!("{at}/{i}/{}", escape(name)),
                    format!("no security scheme `{name}` in #/components/securitySchemes"),
                ));
            };
            let (k, t) = scheme_kind(doc, scheme, name, options)?;
            api_key |= k;
            token |= t;
            for (j, s) in sc.as_array().into_iter().flatten().enumerate() {
                let Some(s) = s.as_str().filter(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                }) else {
                    return Err(ContractError::new(
                        format!("{at}/{i}/{}/{j}", escape(name)),
                        "a scope is printable ASCII without spaces, quotes or backslashes",
                    ));
                };
                if t && !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_owned());
                }
            }
        }
        scopes.sort();
        compiled.push(Security::Required {
            api_key,
            token,
            scopes,
        });
    }
    match compiled.split_first() {
        None => Ok(Security::None),
        Some((first, rest)) if rest.iter().all(|s| s == first) => Ok(first.clone()),
        Some(_) => Err(ContractError::new(
            at,
            "alternative security requirements are not supported: list one requirement (all of its schemes are required) per operation",
        )),
    }
}

fn validator(
    doc: &Document,
    schema: &Value,
    at: &str,
) -> Result<jsonschema::Validator, ContractError> {
    let draft = match doc.version {
        Version::V30 => jsonschema::Draft::Draft4,
        Version::V31 => jsonschema::Draft::Draft202012,
    };
    jsonschema::options()
        .with_draft(draft)
        .should_validate_formats(true)
        .with_format("byte", is_base64)
        .with_pattern_options(jsonschema::PatternOptions::fancy_regex().backtrack_limit(10_000))
        .offline()
        .build(&doc.validator_schema(schema))
        .map_err(|e| ContractError::new(at, format!("schema does not compile: {e}")))
}

/// `format: byte`: RFC 4648 base64 with padding (INPUT-07).
fn is_base64(s: &str) -> bool {
    use base64::Engine;
    s.len() % 4 == 0 && base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

fn body_spec(
    doc: &Document,
    shapes: &mut Shapes,
    media_obj: &Value,
    at: &str,
    json: bool,
) -> Result<BodySpec, ContractError> {
    let Some(schema) = media_obj.get("schema") else {
        return Ok(BodySpec {
            json,
            shape: None,
            validator: None,
        });
    };
    let sp = format!("{at}/schema");
    if json {
        binary_in_json(doc, schema, &sp, 0)?;
    }
    let shape = shapes.build(doc, schema, &sp)?;
    let validator = if json {
        Some(validator(doc, schema, &sp)?)
    } else {
        None
    };
    Ok(BodySpec {
        json,
        shape: Some(shape),
        validator,
    })
}

/// INPUT-07: binary inside JSON is base64 (`format: byte`), never `binary`.
fn binary_in_json(doc: &Document, v: &Value, at: &str, depth: usize) -> Result<(), ContractError> {
    if depth > 32 {
        return Ok(());
    }
    match v {
        Value::Object(map) => {
            if map.get("format").and_then(Value::as_str) == Some("binary") {
                return Err(ContractError::new(
                    format!("{at}/format"),
                    "`format: binary` inside a JSON body: encode binary data as base64 with `format: byte` (INPUT-07)",
                ));
            }
            for (k, child) in map {
                if k == "$ref" {
                    continue;
                }
                binary_in_json(doc, child, &format!("{at}/{}", escape(k)), depth + 1)?;
            }
            if let Some(Value::String(target)) = map.get("$ref") {
                let t = resolve_ref(doc, target, at)?;
                binary_in_json(doc, t, target.trim_start_matches('#'), depth + 1)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                binary_in_json(doc, child, &format!("{at}/{i}"), depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn kind_of(doc: &Document, schema: &Value) -> (Kind, Option<Kind>) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(t) => resolve_ref(doc, t, "").unwrap_or(schema),
        None => schema,
    };
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or(""),
        _ => "",
    };
    match ty {
        "string" => (Kind::String, None),
        "integer" => (Kind::Integer, None),
        "number" => (Kind::Number, None),
        "boolean" => (Kind::Boolean, None),
        "array" => (
            Kind::Any,
            Some(
                schema
                    .get("items")
                    .map_or(Kind::String, |i| kind_of(doc, i).0),
            ),
        ),
        _ => (Kind::Any, None),
    }
}

fn param(
    doc: &Document,
    options: &Options,
    p: &Value,
    at: &str,
) -> Result<Option<(Param, Option<Classification>)>, ContractError> {
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ContractError::new(format!("{at}/name"), "a parameter needs a name"))?;
    let location = match p.get("in").and_then(Value::as_str) {
        Some("path") => Location::Path,
        Some("query") => Location::Query,
        Some("header") => Location::Header,
        Some("cookie") => return Ok(None),
        _ => {
            return Err(ContractError::new(
                format!("{at}/in"),
                "must be path, query, header or cookie",
            ));
        }
    };
    if location == Location::Header
        && ["accept", "content-type", "authorization"].contains(&name.to_ascii_lowercase().as_str())
    {
        // OpenAPI: these are described elsewhere and ignored as parameters.
        return Ok(None);
    }
    if matches!(location, Location::Path | Location::Query)
        && crate::sensitive::is_sensitive_name(name, &options.sensitive_names)
    {
        return Err(ContractError::new(
            format!("{at}/name"),
            format!(
                "`{name}` marks sensitive data, which must not travel in a URL (DATA-01): move it to a header or the body"
            ),
        ));
    }
    if p.get("style").and_then(Value::as_str) == Some("deepObject") {
        return Err(ContractError::new(
            format!("{at}/style"),
            "deepObject parameters are not supported",
        ));
    }
    let schema = p.get("schema").cloned().unwrap_or(Value::Bool(true));
    let sp = format!("{at}/schema");
    let (kind, array_of) = kind_of(doc, &schema);
    let class_of = |v: Option<&Value>| v.and_then(Value::as_str).and_then(Classification::parse);
    let class = class_of(p.get("x-classification")).max(class_of(schema.get("x-classification")));
    let explode = p
        .get("explode")
        .and_then(Value::as_bool)
        .unwrap_or(location == Location::Query);
    let header = if location == Location::Header {
        Some(
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| ContractError::new(format!("{at}/name"), "not a valid header name"))?,
        )
    } else {
        None
    };
    Ok(Some((
        Param {
            name: name.to_owned(),
            location,
            required: location == Location::Path
                || p.get("required").and_then(Value::as_bool).unwrap_or(false),
            kind,
            array_of,
            comma_separated: array_of.is_some() && (!explode || location != Location::Query),
            header,
            validator: Some(validator(doc, &schema, &sp)?),
        },
        class,
    )))
}

fn status_key(code: &str) -> Option<StatusKey> {
    if code == "default" {
        return Some(StatusKey::Default);
    }
    let b = code.as_bytes();
    if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"XX") {
        return Some(StatusKey::Range(u16::from(b[0] - b'0')));
    }
    code.parse::<u16>()
        .ok()
        .filter(|c| (100..600).contains(c))
        .map(StatusKey::Exact)
}

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
        let spec = media::best_match(&self.bodies, &sent).ok_or_else(unsupported)?;
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
