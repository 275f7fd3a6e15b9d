//! The contract compiled from the quickstart's demo document, checked
//! operation by operation.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use portcullis_contract::{
    Classification, Operation, Options, ResponsePlan, Security, UnknownProperties, Violation,
    compile,
};
use std::sync::Arc;

const DEMO: &str = include_str!("../../portcullis/demo/orders-openapi.yaml");

fn demo_with(options: &Options) -> Vec<Arc<Operation>> {
    compile(DEMO, options)
        .expect("demo document compiles")
        .operations
}

/// One operation of a document written in a test.
fn operation_of(doc: &str, id: &str) -> Arc<Operation> {
    compile(doc, &Options::default())
        .expect("compiles")
        .operations
        .into_iter()
        .find(|o| o.id == id)
        .unwrap()
}

fn op(id: &str) -> Arc<Operation> {
    demo_with(&Options::default())
        .into_iter()
        .find(|o| o.id == id)
        .unwrap()
}

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h
}

fn invalid(v: Result<impl std::fmt::Debug, Violation>) -> Vec<(String, String)> {
    match v {
        Err(Violation::Invalid(issues)) => issues
            .into_iter()
            .map(|i| (format!("{}:{}", i.location.as_str(), i.pointer), i.reason))
            .collect(),
        other => panic!("expected 400 issues, got {other:?}"),
    }
}

#[test]
fn operations_security_environments_and_labels_come_from_the_document() {
    let ops = demo_with(&Options {
        api_key_header: Some("x-api-key".into()),
        ..Options::default()
    });
    let ids: Vec<_> = ops
        .iter()
        .map(|o| (o.method.as_str(), o.path.as_str(), o.id.as_str()))
        .collect();
    assert!(ids.contains(&("POST", "/orders", "createOrder")), "{ids:?}");
    let get = |id: &str| ops.iter().find(|o| o.id == id).unwrap();
    // AUTHZ-02 / AUTHZ-11: scopes per method + path, document default inherited.
    assert_eq!(
        get("listOrders").security,
        Security::Required {
            api_key: true,
            token: true,
            scopes: vec!["orders:read".into()]
        }
    );
    assert_eq!(
        get("createOrder").security,
        Security::Required {
            api_key: true,
            token: true,
            scopes: vec!["orders:write".into()]
        }
    );
    // AUTHN-06: `security: []` compiles to no requirement; the config must opt out.
    assert_eq!(get("getHealth").security, Security::None);
    assert_eq!(get("debugState").environments, Some(vec!["dev".to_owned()]));
    // The document's only server is marked `production`.
    assert_eq!(
        get("listOrders").environments,
        Some(vec!["production".to_owned()])
    );
    // CONTRACT-02: labels reach the operation.
    assert_eq!(get("getOrder").classification, Some(Classification::Secret));
    assert_eq!(get("getHealth").classification, None);
    assert_eq!(get("getOrder").owner.as_deref(), Some("orders-team"));
}

#[test]
fn undeclared_body_properties_are_stripped_and_values_kept_exact() {
    let body = Bytes::from_static(br#"{"item":"book","quantity":2,"is_admin":true,"price":0.1}"#);
    let out = op("createOrder").check_body(&json_headers(), body).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, serde_json::json!({"item":"book","quantity":2}));
    // Nothing to strip: the bytes pass untouched.
    let body = Bytes::from_static(br#"{ "item": "book", "quantity": 2 }"#);
    assert_eq!(
        op("createOrder")
            .check_body(&json_headers(), body.clone())
            .unwrap(),
        body
    );
}

#[test]
fn reject_mode_names_each_undeclared_property() {
    let ops = demo_with(&Options {
        unknown_properties: UnknownProperties::Reject,
        ..Options::default()
    });
    let create = ops.iter().find(|o| o.id == "createOrder").unwrap();
    let body = Bytes::from_static(br#"{"item":"book","quantity":2,"is_admin":true}"#);
    assert_eq!(
        invalid(create.check_body(&json_headers(), body)),
        vec![("body:/is_admin".into(), "is not declared".into())]
    );
}

#[test]
fn schema_errors_point_at_fields_without_echoing_values() {
    let body = Bytes::from_static(
        br#"{"item":"<script>SECRET-VALUE","quantity":"many","receipt_pdf":"not base64!"}"#,
    );
    let issues = invalid(op("createOrder").check_body(&json_headers(), body));
    let pointers: Vec<&str> = issues.iter().map(|(p, _)| p.as_str()).collect();
    assert!(pointers.contains(&"body:/item"), "{issues:?}");
    assert!(pointers.contains(&"body:/quantity"), "{issues:?}");
    assert!(pointers.contains(&"body:/receipt_pdf"), "{issues:?}");
    let text = format!("{issues:?}");
    assert!(
        !text.contains("SECRET-VALUE") && !text.contains("many") && !text.contains("not base64")
    );
    // Missing required property: pointer names it.
    let issues = invalid(
        op("createOrder").check_body(&json_headers(), Bytes::from_static(br#"{"item":"book"}"#)),
    );
    assert_eq!(
        issues,
        vec![("body:/quantity".into(), "is required".into())]
    );
    // format: byte accepts real base64 (INPUT-07).
    let ok = Bytes::from_static(br#"{"item":"book","quantity":1,"receipt_pdf":"JVBERi0xLjQK"}"#);
    assert!(op("createOrder").check_body(&json_headers(), ok).is_ok());
}

#[test]
fn syntax_limits_and_duplicate_keys_are_400() {
    let create = op("createOrder");
    let dup = Bytes::from_static(br#"{"item":"book","quantity":1,"quantity":100}"#);
    assert_eq!(
        invalid(create.check_body(&json_headers(), dup)),
        vec![("body:".into(), "an object repeats a key".into())]
    );
    let bomb = Bytes::from("[".repeat(10_000));
    assert!(
        invalid(create.check_body(&json_headers(), bomb))[0]
            .1
            .contains("nested deeper")
    );
    let broken = Bytes::from_static(b"{\"item\":");
    assert!(
        invalid(create.check_body(&json_headers(), broken))[0]
            .1
            .contains("not valid JSON")
    );
    let empty = Bytes::new();
    assert_eq!(
        invalid(create.check_body(&json_headers(), empty)),
        vec![("body:".into(), "a request body is required".into())]
    );
}

#[test]
fn media_types_are_checked_and_scripts_refused() {
    let create = op("createOrder");
    let body = Bytes::from_static(br#"{"item":"book","quantity":1}"#);
    for ct in [
        "text/plain",
        "application/javascript",
        "application/xml",
        "*/*",
    ] {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_str(ct).unwrap());
        assert!(
            matches!(create.check_body(&h, body.clone()), Err(Violation::UnsupportedMediaType { ref allowed }) if allowed == "application/json"),
            "{ct}"
        );
    }
    assert!(matches!(
        create.check_body(&HeaderMap::new(), body.clone()),
        Err(Violation::UnsupportedMediaType { .. })
    ));
    let mut h = json_headers();
    h.insert("content-encoding", HeaderValue::from_static("gzip"));
    assert!(matches!(
        create.check_body(&h, body.clone()),
        Err(Violation::UnsupportedMediaType { .. })
    ));
    // An operation without a request body takes none.
    assert!(
        matches!(op("listOrders").check_body(&json_headers(), body), Err(Violation::UnsupportedMediaType { ref allowed }) if allowed.is_empty())
    );
}

#[test]
fn accept_must_be_satisfiable() {
    let list = op("listOrders");
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static("application/xml"));
    assert!(matches!(
        list.check_accept(&h),
        Err(Violation::NotAcceptable { .. })
    ));
    h.insert(
        "accept",
        HeaderValue::from_static("application/json, */*;q=0.1"),
    );
    assert!(list.check_accept(&h).is_ok());
    assert!(list.check_accept(&HeaderMap::new()).is_ok());
}

/// A header parameter value that is not visible ASCII is refused, not
/// validated as "" and forwarded raw (a parser differential, issue 16 item 10).
#[test]
fn non_ascii_header_parameters_are_refused() {
    let create = op("createOrder");
    let mut h = HeaderMap::new();
    h.insert(
        "idempotency-key",
        http::HeaderValue::from_bytes(b"abcd\xe9efgh").unwrap(),
    );
    assert_eq!(
        invalid(create.check_params(&[], None, &h)),
        vec![("header:/Idempotency-Key".into(), "is not ASCII text".into())]
    );
    h.insert(
        "idempotency-key",
        http::HeaderValue::from_static("abcd-efgh"),
    );
    assert!(create.check_params(&[], None, &h).is_ok());
}

#[test]
fn parameters_are_validated_and_undeclared_query_stripped() {
    let list = op("listOrders");
    let h = HeaderMap::new();
    let out = list
        .check_params(&[], Some("limit=5&debug=1&x=%20"), &h)
        .unwrap();
    assert_eq!(out.query.as_deref(), Some("limit=5"));
    assert_eq!(out.stripped, 2);
    assert!(
        list.check_params(&[], Some("limit=5"), &h)
            .unwrap()
            .query
            .is_none()
    );
    assert_eq!(
        invalid(list.check_params(&[], Some("limit=abc"), &h)),
        vec![("query:/limit".into(), "must be an integer".into())]
    );
    assert_eq!(
        invalid(list.check_params(&[], Some("limit=500"), &h)),
        vec![("query:/limit".into(), "must be at most 100".into())]
    );
    // HTTP parameter pollution: a scalar given twice.
    assert_eq!(
        invalid(list.check_params(&[], Some("limit=1&limit=2"), &h)),
        vec![("query:/limit".into(), "is given more than once".into())]
    );
    let get = op("getOrder");
    assert!(get.check_params(&[("id", "42")], None, &h).is_ok());
    assert_eq!(
        invalid(get.check_params(&[("id", "abc")], None, &h))[0].0,
        "path:/id"
    );
    // Header parameters (INPUT-09).
    let create = op("createOrder");
    let mut h = HeaderMap::new();
    h.insert("idempotency-key", HeaderValue::from_static("no"));
    assert_eq!(
        invalid(create.check_params(&[], None, &h))[0].0,
        "header:/Idempotency-Key"
    );
    assert!(create.declares_header(&"idempotency-key".parse().unwrap()));
    assert!(!create.declares_header(&"x-internal-debug".parse().unwrap()));
    assert!(create.declares_header(&"accept".parse().unwrap()));
}

#[test]
fn responses_lose_secrets_and_undeclared_fields_and_redact_pii() {
    let get = op("getOrder");
    let ResponsePlan::Inspect {
        json: true,
        spec: Some(spec),
    } = get.response_plan(200, Some("application/json"))
    else {
        panic!("a JSON response with a schema is inspected");
    };
    let body = br#"{"id":"1","item":"book","quantity":1,"customer_email":"alice@example.com","cost_price_cents":700,"db_row":{"pk":9}}"#;
    let out = get.filter_response(spec, body, false).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.body.unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id":"1","item":"book","quantity":1,"customer_email":"[redacted]"})
    );
    assert_eq!(
        (
            out.walk.removed_secret,
            out.walk.redacted_pii,
            out.walk.stripped
        ),
        (1, 1, 1)
    );
    // A route allowed to see personal data still never sees secrets.
    let out = get.filter_response(spec, body, true).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.body.unwrap()).unwrap();
    assert_eq!(v["customer_email"], "alice@example.com");
    assert!(v.get("cost_price_cents").is_none());
    // Lists: each item is filtered through the $ref.
    let list = op("listOrders");
    let ResponsePlan::Inspect {
        spec: Some(spec), ..
    } = list.response_plan(200, Some("application/json"))
    else {
        panic!()
    };
    let out = list
        .filter_response(
            spec,
            br#"{"orders":[{"id":"1","item":"a","quantity":1,"cost_price_cents":5}]}"#,
            false,
        )
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.body.unwrap()).contains("cost_price"));
    // An operation whose responses carry classified fields refuses what it
    // does not declare (issue 16 item 12): binary, untyped, other statuses.
    for (status, media) in [
        (200, Some("image/png")),
        (200, None),
        (206, Some("application/json")),
    ] {
        assert!(
            matches!(get.response_plan(status, media), ResponsePlan::Undeclared),
            "{status} {media:?}"
        );
    }
    // Elsewhere binary responses stream; unknown types are inspected as text.
    let health = op("getHealth");
    assert!(matches!(
        health.response_plan(200, Some("image/png")),
        ResponsePlan::Stream
    ));
    assert!(matches!(
        health.response_plan(200, None),
        ResponsePlan::Inspect {
            json: false,
            spec: None
        }
    ));
}

fn errors_of(doc: &str) -> Vec<String> {
    compile(
        doc,
        &Options {
            api_key_header: Some("x-api-key".into()),
            ..Options::default()
        },
    )
    .err()
    .unwrap_or_default()
    .into_iter()
    .map(|e| e.to_string())
    .collect()
}

const HEAD: &str = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n";

#[test]
fn load_errors_carry_json_pointers() {
    let remote = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      responses:\n        '200': {{ $ref: 'https://evil.example/r.yaml' }}\n"
    );
    assert_eq!(
        errors_of(&remote),
        vec![
            "#/paths/~1a/get/responses/200/$ref: remote references are refused: only local `#/...` references are resolved (nothing is fetched at load)"
        ]
    );
    let query_key = format!(
        "{HEAD}components:\n  securitySchemes:\n    k: {{type: apiKey, in: query, name: key}}\npaths:\n  /a:\n    get:\n      security: [{{k: []}}]\n      responses: {{'200': {{description: ok}}}}\n"
    );
    assert!(
        errors_of(&query_key)[0].starts_with(
            "#/components/securitySchemes/k/in: API keys are accepted in a header only"
        )
    );
    let implicit = format!(
        "{HEAD}components:\n  securitySchemes:\n    o: {{type: oauth2, flows: {{implicit: {{authorizationUrl: 'https://x', scopes: {{}}}}}}}}\npaths: {{}}\n"
    );
    assert!(
        errors_of(&implicit)[0]
            .contains("/flows/implicit: the OAuth 2 `implicit` flow is not accepted")
    );
    let password_in_url = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      parameters: [{{name: password, in: query, schema: {{type: string}}}}]\n      responses: {{'200': {{description: ok}}}}\n"
    );
    assert!(
        errors_of(&password_in_url)[0]
            .starts_with("#/paths/~1a/get/parameters/0/name: `password` marks sensitive data")
    );
    let script = format!(
        "{HEAD}paths:\n  /a:\n    post:\n      requestBody: {{content: {{text/javascript: {{}}}}}}\n      responses: {{'200': {{description: ok}}}}\n"
    );
    assert!(
        errors_of(&script)[0]
            .contains("/requestBody/content/text~1javascript: `text/javascript` is an executable")
    );
    let binary = format!(
        "{HEAD}paths:\n  /a:\n    post:\n      requestBody: {{content: {{application/json: {{schema: {{type: object, properties: {{f: {{type: string, format: binary}}}}}}}}}}}}\n      responses: {{'200': {{description: ok}}}}\n"
    );
    assert!(
        errors_of(&binary)[0].contains("/properties/f/format: `format: binary` inside a JSON body")
    );
    let bad_label = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      responses: {{'200': {{description: ok, content: {{application/json: {{schema: {{type: object, properties: {{f: {{type: string, x-classification: topsecret}}}}}}}}}}}}}}\n"
    );
    assert!(
        errors_of(&bad_label)[0]
            .contains("/properties/f/x-classification: `topsecret` is not a classification")
    );
}

#[test]
fn openapi_30_nullable_and_recursive_schemas_work() {
    let doc = format!(
        "{HEAD}paths:\n  /n:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: {{ $ref: '#/components/schemas/Node' }}\n      responses: {{'200': {{description: ok}}}}\ncomponents:\n  schemas:\n    Node:\n      type: object\n      properties:\n        name: {{ type: string, nullable: true, maxLength: 4 }}\n        child: {{ $ref: '#/components/schemas/Node' }}\n"
    );
    let c = compile(&doc, &Options::default()).unwrap();
    let op = &c.operations[0];
    let body = Bytes::from_static(br#"{"name":null,"child":{"name":"ab","x":1,"child":{"y":2}}}"#);
    let out = op.check_body(&json_headers(), body).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"name":null,"child":{"name":"ab","child":{}}})
    );
    let long = Bytes::from_static(br#"{"child":{"name":"abcde"}}"#);
    assert_eq!(
        invalid(op.check_body(&json_headers(), long)),
        vec![(
            "body:/child/name".into(),
            "must be at most 4 characters long".into()
        )]
    );
    assert_eq!(op.method, Method::POST);
}

#[test]
fn servers_marked_non_production_make_their_operations_non_production() {
    let doc = format!(
        "{HEAD}servers:\n  - {{ url: 'https://staging.example', x-environment: staging }}\n  - {{ url: 'https://dev.example', x-environment: dev }}\npaths:\n  /a:\n    get:\n      responses: {{'200': {{description: ok}}}}\n  /b:\n    servers: [{{ url: 'https://api.example' }}]\n    get:\n      responses: {{'200': {{description: ok}}}}\n  /c:\n    get:\n      x-environment: production\n      responses: {{'200': {{description: ok}}}}\n"
    );
    let c = compile(&doc, &Options::default()).unwrap();
    let env = |path: &str| {
        c.operations
            .iter()
            .find(|o| o.path == path)
            .unwrap()
            .environments
            .clone()
    };
    assert_eq!(
        env("/a"),
        Some(vec!["dev".to_owned(), "staging".to_owned()])
    );
    // An unmarked server means the operation is not restricted.
    assert_eq!(env("/b"), None);
    // The operation's own mark wins.
    assert_eq!(env("/c"), Some(vec!["production".to_owned()]));
}

/// INPUT-13 where the document itself is lax: an operation declaring any
/// text (`text/*`) or anything (`*/*`) still never takes a script or a
/// shell program as its body, while plain text passes.
#[test]
fn scripts_are_refused_even_where_the_document_accepts_anything() {
    let doc = r#"
openapi: 3.1.0
info: { title: lax, version: "1" }
paths:
  /notes:
    post:
      operationId: postNote
      security: []
      requestBody:
        required: true
        content:
          text/*: { schema: { type: string } }
          "*/*": { schema: { type: string } }
      responses:
        "204": { description: stored }
"#;
    let post = operation_of(doc, "postNote");
    let with = |ct: &str| {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_str(ct).unwrap());
        post.check_body(&h, Bytes::from_static(b"alert(1)"))
    };
    assert!(with("text/plain").is_ok());
    for ct in [
        "text/javascript",
        "application/javascript",
        "application/x-sh",
        "text/vbscript",
    ] {
        assert!(
            matches!(with(ct), Err(Violation::UnsupportedMediaType { .. })),
            "{ct}"
        );
    }
}

/// INPUT-07: binary data inside JSON is padded base64 (`format: byte`):
/// unpadded or non-base64 text is a 400 naming the field.
#[test]
fn byte_fields_take_only_padded_base64() {
    let doc = r#"
openapi: 3.1.0
info: { title: files, version: "1" }
paths:
  /files:
    post:
      operationId: putFile
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                data: { type: string, format: byte, maxLength: 100 }
      responses:
        "204": { description: stored }
"#;
    let put = operation_of(doc, "putFile");
    let send = |data: &str| {
        put.check_body(
            &json_headers(),
            Bytes::from(format!(r#"{{"data":"{data}"}}"#)),
        )
    };
    assert!(send("aGk=").is_ok(), "padded base64 of `hi`");
    for bad in ["aGk", "not base64!", "aGk=="] {
        let found = invalid(send(bad));
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert_eq!(found[0].0, "body:/data", "{bad}");
        assert!(
            !found[0].1.contains(bad),
            "the reason never echoes the value"
        );
    }
}
