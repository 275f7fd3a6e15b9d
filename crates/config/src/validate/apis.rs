//! Validation of APIs and their routes: contract operations, limits,
//! rate-limit keys, CORS. AUTHN-06: an operation is public only when the
//! document says so (`security: []`) and the config lists it.

use crate::schema::{RawAuthPolicy, RawConfig};
use crate::{
    AllowedOrigins, Api, AuthPolicy, Cors, Identity, LimitKey, Protected, RateLimit, Route,
    SensitiveData, Upstream, Validator, schema, shape_of, template_problem,
};
use http::HeaderName;
use http::HeaderValue;
use http::Method;
use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

impl Validator {
    /// Compiles an API's OpenAPI document into routes (AUTHN-06, AUTHZ-02, AUTHZ-11).
    pub(crate) fn contract_routes(
        &mut self,
        p: &str,
        file: &Path,
        raw: &schema::RawContract,
        identity: Option<&Identity>,
        sensitive: &SensitiveData,
    ) -> Vec<Route> {
        let at = format!("{p}.openapi");
        if raw.max_json_depth == 0 || raw.max_json_depth > 100 {
            self.err(format!("{p}.contract.max_json_depth"), "must be 1 to 100");
        }
        if raw.max_json_string_bytes == 0 {
            self.err(
                format!("{p}.contract.max_json_string_bytes"),
                "must be greater than 0",
            );
        }
        let options = portcullis_contract::Options {
            unknown_properties: match raw.unknown_properties {
                schema::RawUnknownProperties::Strip => {
                    portcullis_contract::UnknownProperties::Strip
                }
                schema::RawUnknownProperties::Reject => {
                    portcullis_contract::UnknownProperties::Reject
                }
            },
            json: portcullis_contract::JsonLimits {
                max_depth: raw.max_json_depth.clamp(1, 100),
                max_string_bytes: raw.max_json_string_bytes,
            },
            api_key_header: identity.map(|i| i.api_key_header.as_str().to_owned()),
            strip_responses: raw.strip_undeclared_responses,
            validate_responses: raw.validate_responses,
            sensitive_names: sensitive.names.clone(),
        };
        let contract = match portcullis_contract::load(file, &options) {
            Ok(c) => c,
            Err(errors) => {
                for e in errors {
                    self.err(format!("{at}#{}", e.pointer), e.message);
                }
                return Vec::new();
            }
        };
        let known = |id: &str| contract.operations.iter().any(|o| o.id == id);
        for (list, name) in [
            (&raw.public_operations, "public_operations"),
            (&raw.allow_pii, "allow_pii"),
        ] {
            for (i, id) in list.iter().enumerate() {
                if !known(id) {
                    self.err(
                        format!("{p}.contract.{name}[{i}]"),
                        format!("no operation `{id}` in {}", file.display()),
                    );
                }
            }
        }
        let mut out = Vec::new();
        for op in &contract.operations {
            if let Some(problem) = template_problem(&op.path, true) {
                self.err(format!("{at}#{}", op.pointer), problem);
                continue;
            }
            let listed_public = raw.public_operations.iter().any(|id| *id == op.id);
            let auth = match &op.security {
                portcullis_contract::Security::None if listed_public => AuthPolicy::Public,
                portcullis_contract::Security::None => {
                    self.err(
                        format!("{at}#{}/security", op.pointer),
                        format!("operation `{}` has no security requirement: declare one, or list it in {p}.contract.public_operations to make it public on purpose", op.id),
                    );
                    continue;
                }
                portcullis_contract::Security::Required { .. } if listed_public => {
                    self.err(
                        format!("{p}.contract.public_operations"),
                        format!("operation `{}` has a security requirement; remove it from public_operations", op.id),
                    );
                    continue;
                }
                portcullis_contract::Security::Required {
                    api_key,
                    token,
                    scopes,
                } => AuthPolicy::Protected(Protected {
                    api_key: *api_key,
                    token: *token,
                    scopes: scopes.clone(),
                    apps: Vec::new(),
                    issuers: Vec::new(),
                    bind_token_to_application: false,
                }),
            };
            out.push(Route {
                path: op.path.clone(),
                methods: vec![op.method.clone()],
                auth,
                environments: op.environments.clone(),
                allow_pii: raw.allow_pii.iter().any(|id| *id == op.id),
                operation: Some(op.clone()),
                rate_limits: Vec::new(),
                concurrency: None,
                websocket: None,
            });
        }
        out
    }

    pub(crate) fn apis(
        &mut self,
        raw: &RawConfig,
        upstreams: &[Upstream],
        identity: Option<&Identity>,
        sensitive: &SensitiveData,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Vec<Api> {
        let mut mounts = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut out = Vec::new();
        if raw.apis.is_empty() {
            self.err("apis", "at least one API is required");
        }
        for (a, api) in raw.apis.iter().enumerate() {
            let p = format!("apis[{a}]");
            if !names.insert(api.name.clone()) {
                self.err(
                    format!("{p}.name"),
                    format!("duplicate API name `{}`", api.name),
                );
            }
            let base_path = match api.base_path.as_deref() {
                None | Some("/") => String::new(),
                Some(b) => {
                    let trimmed = b.trim_end_matches('/');
                    if !b.starts_with('/') || template_problem(trimmed, false).is_some() {
                        self.err(
                            format!("{p}.base_path"),
                            "must be a literal path like /v1 (letters, digits, . _ ~ -)",
                        );
                    }
                    trimmed.to_owned()
                }
            };
            let mut hosts: Vec<String> = api.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
            hosts.sort();
            for h in &hosts {
                if h.is_empty() || h.contains([':', '/', ' ']) {
                    self.err(
                        format!("{p}.hosts"),
                        format!("`{h}` is not a host name (no port)"),
                    );
                }
            }
            if !mounts.insert((hosts.clone(), base_path.clone())) {
                self.err(
                    format!("{p}.base_path"),
                    "another API is mounted at the same hosts and base path",
                );
            }
            let upstream = upstreams.iter().position(|u| u.name == api.upstream);
            if upstream.is_none() {
                self.err(
                    format!("{p}.upstream"),
                    format!("no upstream named `{}` in `upstreams`", api.upstream),
                );
            }
            let cors = api
                .cors
                .as_ref()
                .map(|c| self.cors(&format!("{p}.cors"), c));
            let openapi = api.openapi.as_deref().map(resolve);
            let routes = match &openapi {
                Some(_) if !api.routes.is_empty() => {
                    self.err(
                        format!("{p}.routes"),
                        "give either `openapi` (routes come from the document) or `routes`, not both",
                    );
                    Vec::new()
                }
                Some(file) => self.contract_routes(&p, file, &api.contract, identity, sensitive),
                None => self.routes(&p, &api.routes),
            };
            let mut routes = routes;
            let rate_limits = self.limits_for(&p, api, &mut routes);
            if api.grpc && api.openapi.is_some() {
                self.err(
                    format!("{p}.grpc"),
                    "an OpenAPI document cannot judge protobuf messages: a gRPC API takes hand-written routes (`routes`), e.g. `{ path: /pkg.Service/Method, methods: [POST], auth: ... }`",
                );
            }
            self.websockets(&p, api, &mut routes);
            self.token_binding(&p, api, identity, &mut routes);
            out.push(Api {
                name: api.name.clone(),
                hosts,
                base_path,
                upstream: upstream.unwrap_or(0),
                cors,
                routes,
                openapi,
                owner: api.owner.clone(),
                rate_limits,
                tighten_on_anomaly: api.tighten_on_anomaly,
                grpc: api.grpc,
                stream_bodies_up_to: api.request_streaming.as_ref().map(|r| {
                    if r.max_body_bytes == 0 {
                        self.err(
                            format!("{p}.request_streaming.max_body_bytes"),
                            "must be at least 1",
                        );
                    }
                    r.max_body_bytes
                }),
            });
        }
        out
    }

    /// Validates `rate_limits` and `route_limits` and attaches the latter to
    /// their routes; returns the API-wide limits. A limit keyed by
    /// application or subject needs every route it covers to establish one.
    pub(crate) fn limits_for(
        &mut self,
        p: &str,
        api: &schema::RawApi,
        routes: &mut [Route],
    ) -> Vec<RateLimit> {
        let api_limits: Vec<RateLimit> = api
            .rate_limits
            .iter()
            .enumerate()
            .map(|(i, l)| self.rate_limit(&format!("{p}.rate_limits[{i}]"), l))
            .collect();
        for (i, l) in api_limits.iter().enumerate() {
            for route in routes.iter() {
                self.limit_key_available(&format!("{p}.rate_limits[{i}].per"), l.per, route);
            }
        }
        for (name, raw) in &api.route_limits {
            let rp = format!("{p}.route_limits.{name}");
            let Some(route) = self.named_route(&rp, name, routes) else {
                continue;
            };
            for (i, l) in raw.rate_limits.iter().enumerate() {
                let lp = format!("{rp}.rate_limits[{i}]");
                let limit = self.rate_limit(&lp, l);
                self.limit_key_available(&format!("{lp}.per"), limit.per, route);
                route.rate_limits.push(limit);
            }
            if raw.concurrency == Some(0) {
                self.err(format!("{rp}.concurrency"), "must be at least 1");
            }
            route.concurrency = raw.concurrency;
        }
        api_limits
    }

    /// The route a per-route setting names: an `operationId` of the
    /// document, or the `path` of a hand-written route.
    pub(crate) fn named_route<'r>(
        &mut self,
        p: &str,
        name: &str,
        routes: &'r mut [Route],
    ) -> Option<&'r mut Route> {
        let found = routes.iter_mut().find(|r| {
            r.operation
                .as_ref()
                .map_or(r.path == name, |op| op.id == name)
        });
        if found.is_none() {
            self.err(
                p,
                "no such route: name an `operationId` of the document, or the `path` of a hand-written route",
            );
        }
        found
    }

    pub(crate) fn rate_limit(&mut self, p: &str, l: &schema::RawRateLimit) -> RateLimit {
        if l.requests == 0 {
            self.err(format!("{p}.requests"), "must be at least 1");
        }
        if l.per_seconds == 0 || l.per_seconds > 86_400 {
            self.err(format!("{p}.per_seconds"), "must be 1 to 86400 seconds");
        }
        let burst = l.burst.unwrap_or(l.requests);
        if burst == 0 {
            self.err(format!("{p}.burst"), "must be at least 1");
        }
        RateLimit {
            per: match l.per {
                schema::RawLimitKey::Application => LimitKey::Application,
                schema::RawLimitKey::Subject => LimitKey::Subject,
                schema::RawLimitKey::Route => LimitKey::Route,
                schema::RawLimitKey::Client => LimitKey::Client,
            },
            requests: l.requests.max(1),
            period: Duration::from_secs(l.per_seconds.max(1)),
            burst: burst.max(1),
        }
    }

    pub(crate) fn limit_key_available(&mut self, p: &str, key: LimitKey, route: &Route) {
        let (needed, has) = match (key, &route.auth) {
            (LimitKey::Application, AuthPolicy::Protected(pr)) => ("an API key", pr.api_key),
            (LimitKey::Subject, AuthPolicy::Protected(pr)) => ("a bearer token", pr.token),
            (LimitKey::Application, AuthPolicy::Public) => ("an API key", false),
            (LimitKey::Subject, AuthPolicy::Public) => ("a bearer token", false),
            (LimitKey::Route | LimitKey::Client, _) => return,
        };
        if !has {
            self.err(
                p,
                format!(
                    "keyed by {} but `{}` does not require {needed}: use `client` or `route` there",
                    key.as_str(),
                    route.path
                ),
            );
        }
    }

    /// A hand-written route's `auth`; absent is an error, never a default.
    fn route_auth(&mut self, rp: &str, auth: Option<&RawAuthPolicy>) -> AuthPolicy {
        match auth {
            None => {
                self.err(format!("{rp}.auth"), crate::json_schema::REQUIRED);
                AuthPolicy::Public
            }
            Some(RawAuthPolicy::Public) => AuthPolicy::Public,
            Some(RawAuthPolicy::Protected(p)) => {
                if !p.api_key && !p.token {
                    self.err(
                        format!("{rp}.auth"),
                        "a protected route needs `api_key: true`, `token: true` or both (or write `public`)",
                    );
                }
                if !p.scopes.is_empty() && !p.token {
                    self.err(
                        format!("{rp}.auth.scopes"),
                        "scopes are checked on tokens: set `token: true`",
                    );
                }
                if !p.apps.is_empty() && !p.api_key {
                    self.err(
                        format!("{rp}.auth.apps"),
                        "applications are identified by API key: set `api_key: true`",
                    );
                }
                for (i, sc) in p.scopes.iter().enumerate() {
                    if sc.is_empty()
                        || !sc
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                    {
                        self.err(format!("{rp}.auth.scopes[{i}]"), "a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)");
                    }
                }
                AuthPolicy::Protected(Protected {
                    api_key: p.api_key,
                    token: p.token,
                    scopes: p.scopes.clone(),
                    apps: p.apps.clone(),
                    issuers: Vec::new(),
                    bind_token_to_application: false,
                })
            }
        }
    }

    pub(crate) fn routes(&mut self, p: &str, raw: &[schema::RawRoute]) -> Vec<Route> {
        if raw.is_empty() {
            self.err(
                format!("{p}.routes"),
                "an API needs `openapi` (its document; recommended) or at least one route",
            );
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (r, route) in raw.iter().enumerate() {
            let rp = format!("{p}.routes[{r}]");
            if let Some(problem) = template_problem(&route.path, true) {
                self.err(format!("{rp}.path"), problem);
            }
            if route.methods.is_empty() {
                self.err(format!("{rp}.methods"), "at least one method is required");
            }
            let mut methods = Vec::new();
            for (m, name) in route.methods.iter().enumerate() {
                let upper = name.to_ascii_uppercase();
                let method = match upper.as_str() {
                    "GET" => Method::GET,
                    "HEAD" => Method::HEAD,
                    "POST" => Method::POST,
                    "PUT" => Method::PUT,
                    "PATCH" => Method::PATCH,
                    "DELETE" => Method::DELETE,
                    "OPTIONS" => Method::OPTIONS,
                    _ => {
                        self.err(
                            format!("{rp}.methods[{m}]"),
                            format!(
                                "`{name}` is not allowed: use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS (TRACE and CONNECT are never routed)"
                            ),
                        );
                        continue;
                    }
                };
                if !seen.insert((shape_of(&route.path), upper.clone())) {
                    self.err(
                        format!("{rp}.methods[{m}]"),
                        format!("{upper} {} is declared twice", route.path),
                    );
                }
                methods.push(method);
            }
            let auth = self.route_auth(&rp, route.auth.as_ref());
            out.push(Route {
                path: route.path.clone(),
                methods,
                auth,
                operation: None,
                environments: None,
                allow_pii: false,
                rate_limits: Vec::new(),
                concurrency: None,
                websocket: None,
            });
        }
        out
    }

    pub(crate) fn cors(&mut self, p: &str, c: &schema::RawCors) -> Cors {
        let origins = if c.allowed_origins.iter().any(|o| o == "*") {
            if c.allowed_origins.len() > 1 {
                self.err(
                    format!("{p}.allowed_origins"),
                    "`*` cannot be combined with other origins",
                );
            }
            if c.allow_credentials {
                self.err(
                    format!("{p}.allow_credentials"),
                    "credentials cannot be allowed for any origin (`*`): list the origins",
                );
            }
            AllowedOrigins::Any
        } else {
            let mut list = Vec::new();
            for (i, o) in c.allowed_origins.iter().enumerate() {
                let ok = is_origin(o);
                match HeaderValue::from_str(o) {
                    Ok(v) if ok => list.push(v),
                    _ => self.err(
                        format!("{p}.allowed_origins[{i}]"),
                        format!("`{o}` is not an origin like https://app.example.com"),
                    ),
                }
            }
            if list.is_empty() && c.allowed_origins.is_empty() {
                self.err(
                    format!("{p}.allowed_origins"),
                    "list at least one origin, or remove `cors`",
                );
            }
            AllowedOrigins::List(list)
        };
        let names = |v: &mut Self, field: &str, list: &[String]| -> Vec<HeaderName> {
            list.iter()
                .enumerate()
                .map(|(i, h)| v.header_name(&format!("{p}.{field}[{i}]"), h))
                .collect()
        };
        Cors {
            origins,
            allow_credentials: c.allow_credentials,
            allowed_headers: names(self, "allowed_headers", &c.allowed_headers),
            expose_headers: names(self, "expose_headers", &c.expose_headers),
            max_age_s: c.max_age_s,
        }
    }
}

/// `scheme://host[:port]` with no path: what browsers send as `Origin`.
fn is_origin(o: &str) -> bool {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.contains('/'))
}

impl Validator {
    /// Validates `websockets` and attaches each to its route: a GET route;
    /// origins as browsers send them; limits within bounds.
    pub(crate) fn websockets(&mut self, p: &str, api: &schema::RawApi, routes: &mut [Route]) {
        for (name, raw) in &api.websockets {
            let wp = format!("{p}.websockets.{name}");
            let Some(route) = self.named_route(&wp, name, routes) else {
                continue;
            };
            if !route.methods.contains(&Method::GET) {
                self.err(
                    &wp,
                    "a WebSocket handshake is a GET: the route must allow GET",
                );
            }
            let mut origins = Vec::new();
            for (i, o) in raw.origins.iter().enumerate() {
                let lower = o.to_ascii_lowercase();
                if is_origin(&lower) && HeaderValue::from_str(o).is_ok() {
                    origins.push(lower);
                } else {
                    self.err(
                        format!("{wp}.origins[{i}]"),
                        format!("`{o}` is not an origin like https://app.example.com"),
                    );
                }
            }
            if !(1..=16 << 20).contains(&raw.max_message_bytes) {
                self.err(
                    format!("{wp}.max_message_bytes"),
                    "must be 1 byte to 16 MiB",
                );
            }
            if !(1..=3600).contains(&raw.idle_timeout_s) {
                self.err(format!("{wp}.idle_timeout_s"), "must be 1 to 3600 seconds");
            }
            if raw.ping_interval_s == 0 || raw.ping_interval_s >= raw.idle_timeout_s {
                self.err(
                    format!("{wp}.ping_interval_s"),
                    "must be at least 1 second and under `idle_timeout_s`, so that a live client is not taken for an idle one",
                );
            }
            route.websocket = Some(crate::WebSocket {
                origins,
                max_message_bytes: raw.max_message_bytes,
                idle_timeout: Duration::from_secs(raw.idle_timeout_s),
                ping_interval: Duration::from_secs(raw.ping_interval_s),
            });
        }
    }
}
