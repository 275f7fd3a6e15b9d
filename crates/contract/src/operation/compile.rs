//! Compiling an OpenAPI document into operations: security, environments,
//! parameters, bodies and responses, each with its validator; every error
//! with its JSON pointer.

use super::{
    Arc, BodySpec, Classification, Contract, ContractError, Document, HeaderName, Kind, Location,
    METHODS, MediaRange, Method, Operation, Options, Param, ResponseSpec, Security, Shapes,
    StatusKey, Value, Version, deref, escape, resolve_ref,
};

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
pub(super) fn compile_operation(
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
pub(super) fn operation_params(
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
pub(super) fn request_bodies(
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
pub(super) fn operation_responses(
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
pub(super) fn operation_environments(
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

pub(super) fn environments(
    v: Option<&Value>,
    ptr: &str,
) -> Result<Option<Vec<String>>, ContractError> {
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
pub(super) fn scheme_kind(
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

pub(super) fn security(
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

pub(super) fn validator(
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
pub(super) fn is_base64(s: &str) -> bool {
    use base64::Engine;
    s.len() % 4 == 0 && base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

pub(super) fn body_spec(
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
pub(super) fn binary_in_json(
    doc: &Document,
    v: &Value,
    at: &str,
    depth: usize,
) -> Result<(), ContractError> {
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

pub(super) fn kind_of(doc: &Document, schema: &Value) -> (Kind, Option<Kind>) {
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

pub(super) fn param(
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

pub(super) fn status_key(code: &str) -> Option<StatusKey> {
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
