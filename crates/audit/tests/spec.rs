//! Static checks of a contract: each planted problem is found under its
//! ID with a pointer and line, and a clean document passes them all.

use portcullis_audit::model::{Location, Outcome};
use portcullis_audit::spec;

const WEAK: &str = r#"openapi: 3.0.3
info: { title: weak, version: "1" }
servers:
  - url: http://api.example.com
paths:
  /users/{password}:
    get:
      parameters:
        - name: password
          in: path
          required: true
          schema: { type: string }
        - name: X-Trace
          in: header
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  secret_answer: { type: string }
  /users:
    post:
      security:
        - oauth: []
      requestBody:
        content:
          "*/*": {}
          application/json:
            schema:
              type: object
              properties:
                avatar: { type: string, format: binary }
      responses:
        "201": { description: created }
        "429": { description: slow down }
    delete:
      responses:
        "204": { description: gone }
components:
  securitySchemes:
    key: { type: apiKey, in: query, name: api_key }
    basic: { type: http, scheme: basic }
    oauth:
      type: oauth2
      flows:
        implicit:
          authorizationUrl: https://login.example.com/authorize
          scopes: { users:write: write }
  schemas:
    User:
      type: object
      properties:
        name: { type: string }
        age: { type: integer }
        tags: { type: array, items: { type: string, maxLength: 8, pattern: "^[a-z]+$" } }
"#;

fn findings(text: &str) -> Vec<portcullis_audit::model::Finding> {
    let root = spec::parse(text).unwrap();
    spec::Spec::new("weak.yaml", text, &root).run()
}

#[test]
fn every_planted_problem_is_found_with_its_pointer_and_line() {
    let found = findings(WEAK);
    let has = |id: &str, rule: &str, pointer: &str| {
        found.iter().any(|f| {
            f.id == id
                && f.rule == rule
                && f.outcome != Outcome::Pass
                && matches!(&f.location, Location::Spec { pointer: p, line: Some(_), .. } if p == pointer)
        })
    };
    for (id, rule, pointer) in [
        (
            "AUTHN-06",
            "spec.operation-unsecured",
            "/paths/~1users~1{password}/get",
        ),
        (
            "AUTHN-06",
            "spec.operation-unsecured",
            "/paths/~1users/delete",
        ),
        (
            "AUTHN-04",
            "spec.api-key-not-in-header",
            "/components/securitySchemes/key/in",
        ),
        (
            "AUTHN-07",
            "spec.http-auth-not-bearer",
            "/components/securitySchemes/basic/scheme",
        ),
        (
            "AUTHN-07",
            "spec.oauth-flow-deprecated",
            "/components/securitySchemes/oauth/flows/implicit",
        ),
        (
            "AUTHZ-02",
            "spec.operation-without-scopes",
            "/paths/~1users/post/security",
        ),
        (
            "DATA-01",
            "spec.sensitive-in-url",
            "/paths/~1users~1{password}/get/parameters/0",
        ),
        (
            "INPUT-09",
            "spec.header-without-schema",
            "/paths/~1users~1{password}/get/parameters/1",
        ),
        (
            "INPUT-01",
            "spec.wildcard-media-type",
            "/paths/~1users/post/requestBody/content/*~1*",
        ),
        (
            "INPUT-04",
            "spec.body-without-schema",
            "/paths/~1users/post/requestBody/content/*~1*",
        ),
        (
            "INPUT-06",
            "spec.open-object",
            "/paths/~1users/post/requestBody/content/application~1json/schema",
        ),
        (
            "INPUT-07",
            "spec.binary-in-json",
            "/paths/~1users/post/requestBody/content/application~1json/schema/properties/avatar",
        ),
        (
            "INPUT-08",
            "spec.429-without-retry-after",
            "/paths/~1users/post/responses/429",
        ),
        (
            "OUTPUT-01",
            "spec.no-error-responses",
            "/paths/~1users/delete/responses",
        ),
        (
            "OUTPUT-13",
            "spec.secret-in-response",
            "/paths/~1users~1{password}/get/responses/200/content/application~1json/schema/properties/secret_answer",
        ),
        (
            "CONTRACT-01",
            "spec.unbounded-string",
            "/components/schemas/User/properties/name",
        ),
        (
            "CONTRACT-01",
            "spec.unbounded-number",
            "/components/schemas/User/properties/age",
        ),
        (
            "CONTRACT-01",
            "spec.unbounded-array",
            "/components/schemas/User/properties/tags",
        ),
        (
            "CONTRACT-01",
            "spec.undescribed",
            "/components/schemas/User",
        ),
        (
            "CONTRACT-02",
            "spec.no-classification",
            "/components/schemas",
        ),
        (
            "CONTRACT-03",
            "spec.server-environment-unmarked",
            "/servers/0",
        ),
        ("TLS-05", "spec.plaintext-server", "/servers/0/url"),
    ] {
        assert!(
            has(id, rule, pointer),
            "{id} {rule} at {pointer} not found in {found:#?}"
        );
    }
    // An unauthenticated write and a plaintext server are critical.
    assert!(
        found
            .iter()
            .any(|f| f.critical && f.rule == "spec.operation-unsecured")
    );
    assert!(
        found
            .iter()
            .any(|f| f.critical && f.rule == "spec.plaintext-server")
    );
    // Lines point at the place: `password` parameter is on line 9.
    let line = found
        .iter()
        .find(|f| f.id == "DATA-01")
        .and_then(|f| match &f.location {
            Location::Spec { line, .. } => *line,
            _ => None,
        });
    assert_eq!(line, Some(9));
}

#[test]
fn the_quickstart_contract_passes_the_checks_the_gateway_relies_on() {
    let text = include_str!("../../portcullis/demo/orders-openapi.yaml");
    let found = findings(text);
    for id in [
        "AUTHN-04",
        "AUTHN-06",
        "AUTHN-07",
        "AUTHZ-02",
        "DATA-01",
        "INPUT-01",
        "INPUT-04",
        "INPUT-07",
        "INPUT-08",
        "INPUT-09",
        "OUTPUT-01",
        "OUTPUT-13",
        "CONTRACT-02",
        "CONTRACT-03",
    ] {
        let bad: Vec<_> = found
            .iter()
            .filter(|f| f.id == id && f.outcome == Outcome::Fail)
            .collect();
        assert!(bad.is_empty(), "{id}: {bad:#?}");
        // Judged: a pass, or a partial (the public health check, the
        // operations no limit applies to).
        assert!(found.iter().any(|f| f.id == id), "{id} was not judged");
    }
}

/// A check with nothing to judge says nothing: without an OAuth scheme the
/// scope rules neither pass nor fail and the IDs are n/a; without an API
/// key anywhere AUTHN-04 fails instead of passing "where used".
#[test]
fn nothing_to_judge_is_not_a_pass() {
    const KEYLESS: &str = r#"
openapi: 3.0.3
info: { title: t, version: "1" }
components:
  securitySchemes:
    mtls: { type: mutualTLS }
security: [{ mtls: [] }]
paths:
  /things:
    get:
      responses: { "200": { description: ok } }
"#;
    let found = findings(KEYLESS);
    assert!(
        found.iter().any(|f| f.id == "AUTHN-04"
            && f.rule == "spec.no-api-key"
            && f.outcome == Outcome::Fail),
        "{found:#?}"
    );
    assert!(
        !found
            .iter()
            .any(|f| f.id == "AUTHN-04" && f.outcome == Outcome::Pass)
    );
    assert!(
        !found
            .iter()
            .any(|f| f.id == "AUTHZ-02" || f.id == "AUTHZ-11")
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyless.yaml");
    std::fs::write(&path, KEYLESS).unwrap();
    let report = portcullis_audit::run(
        &portcullis_audit::Options {
            spec: Some(path),
            ..Default::default()
        },
        None,
        Vec::new(),
        Vec::new(),
    )
    .unwrap();
    let verdict = |id: &str| report.controls.iter().find(|c| c.id == id).unwrap().verdict;
    assert_eq!(
        verdict("AUTHZ-02"),
        portcullis_audit::model::Verdict::NotApplicable
    );
    assert_eq!(
        verdict("AUTHZ-11"),
        portcullis_audit::model::Verdict::NotApplicable
    );
    assert_eq!(verdict("AUTHN-04"), portcullis_audit::model::Verdict::Fail);
}
