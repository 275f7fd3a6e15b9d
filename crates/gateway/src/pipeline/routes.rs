//! The route table: host + base path select an API, the path template and
//! method select a route. Deny by default (AUTHN-06, AUTHZ-10): what no
//! route declares is 404, a declared path with another method is 405 with
//! `Allow`, and nothing is ever passed through unmatched.

use crate::pipeline::throttle::RouteLimits;
use crate::rejection::Rejection;
use http::{HeaderValue, Method};
use portcullis_config::{Api, AuthPolicy, Config, Cors};
use portcullis_contract::Operation;
use std::sync::Arc;

/// One mounted API with its compiled router.
#[derive(Debug)]
pub struct MountedApi {
    pub name: String,
    /// Its kill-switch target: `api:<name>` (OPS-03).
    pub kill_key: String,
    hosts: Vec<String>,
    base_path: String,
    pub upstream: usize,
    pub cors: Option<Cors>,
    /// Cap applications whose usage is anomalous (OPS-02).
    pub tighten_on_anomaly: bool,
    /// gRPC calls stream through (`grpc.rs`).
    pub grpc: bool,
    /// Bodies nothing reads stream, up to this many bytes (`stream.rs`).
    pub stream_bodies_up_to: Option<u64>,
    router: matchit::Router<usize>,
    groups: Vec<RouteGroup>,
}

/// All routes sharing one path template.
#[derive(Debug)]
pub struct RouteGroup {
    pub template: String,
    /// Its kill-switch target: `route:<api>:<template>` (OPS-03).
    pub kill_key: String,
    routes: Vec<(Method, RouteInfo)>,
    allow: HeaderValue,
    /// No route of the group is restricted to environments.
    all_served: bool,
}

/// What the pipeline needs to know about the matched route.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// `METHOD /base/template`, used in events and logs.
    pub operation: Arc<str>,
    /// Its position in [`RouteTable::operations`] (traffic counters).
    pub index: usize,
    pub auth: AuthPolicy,
    /// The compiled contract operation, when the API has a document.
    pub contract: Option<Arc<Operation>>,
    /// Environments served; `None` = all (CONTRACT-03).
    environments: Option<Vec<String>>,
    pub allow_pii: bool,
    /// Stage 8: the route's rate limits and concurrency cap.
    pub limits: Arc<RouteLimits>,
    /// The route accepts WebSocket connections (only its GET).
    pub websocket: Option<Arc<portcullis_config::WebSocket>>,
}

impl RouteInfo {
    fn served_in(&self, environment: &str) -> bool {
        self.environments
            .as_ref()
            .is_none_or(|e| e.iter().any(|x| x == environment))
    }
}

/// A path matched to an API and a route group; the method is checked next.
#[derive(Debug)]
pub struct PathMatch<'a> {
    pub api_index: usize,
    pub api: &'a MountedApi,
    pub group: &'a RouteGroup,
    /// The decoded path below the API's base path (starts with `/`).
    pub remainder: &'a str,
    /// Values of the template's parameters.
    pub params: matchit::Params<'a, 'a>,
}

impl RouteGroup {
    /// The route for `method` on a listener serving `environment`. Routes
    /// of other environments do not exist there: 404 when none is left,
    /// and they are not listed in `Allow` (CONTRACT-03).
    pub fn route(&self, method: &Method, environment: &str) -> Result<&RouteInfo, Rejection> {
        if let Some((_, r)) = self.routes.iter().find(|(m, _)| m == method)
            && r.served_in(environment)
        {
            return Ok(r);
        }
        if self.all_served {
            return Err(Rejection::MethodNotAllowed {
                allow: self.allow.clone(),
            });
        }
        let served: Vec<&str> = self
            .routes
            .iter()
            .filter(|(_, r)| r.served_in(environment))
            .map(|(m, _)| m.as_str())
            .collect();
        if served.is_empty() {
            return Err(Rejection::UnknownRoute);
        }
        Err(Rejection::MethodNotAllowed {
            allow: allow_header(served),
        })
    }

    pub fn allow_header(&self) -> &HeaderValue {
        &self.allow
    }
}

fn allow_header(mut methods: Vec<&str>) -> HeaderValue {
    methods.sort_unstable();
    methods.dedup();
    HeaderValue::from_str(&methods.join(", ")).expect("method names are valid header text")
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RouteTableError {
    pub path: String,
    pub message: String,
}

/// The gateway's own endpoints on the data plane, registered in the route
/// table beside the APIs' routes (when the config has identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnEndpoint {
    /// A caller revokes the token it presents (AUTHZ-07).
    Revoke,
    /// A caller revokes every token of its subject.
    RevokeAll,
}

#[derive(Debug)]
pub struct RouteTable {
    /// The gateway's own endpoints by exact path; they come before any API.
    own: Vec<(String, OwnEndpoint)>,
    apis: Vec<MountedApi>,
    /// Indices into `apis`, most specific first: host-bound before any-host,
    /// longer base path before shorter.
    order: Vec<usize>,
}

impl RouteTable {
    /// Compiles every API's routes; `limits[api][route]` are the throttle
    /// limits of each route (from [`crate::pipeline::throttle::Throttle::build`]).
    pub fn build(
        config: &Config,
        limits: &[Vec<Arc<RouteLimits>>],
    ) -> Result<Self, RouteTableError> {
        let mut apis = Vec::new();
        for (a, api) in config.apis.iter().enumerate() {
            apis.push(mount(a, api, limits.get(a).map_or(&[][..], Vec::as_slice))?);
        }
        for (index, route) in apis
            .iter_mut()
            .flat_map(|a| a.groups.iter_mut())
            .flat_map(|g| g.routes.iter_mut())
            .enumerate()
        {
            route.1.index = index;
        }
        let mut order: Vec<usize> = (0..apis.len()).collect();
        order.sort_by_key(|&i| {
            let api: &MountedApi = &apis[i];
            (api.hosts.is_empty(), std::cmp::Reverse(api.base_path.len()))
        });
        let own = config.identity.iter().flat_map(|i| {
            [
                (i.revocation_path.clone(), OwnEndpoint::Revoke),
                (i.revoke_all_path.clone(), OwnEndpoint::RevokeAll),
            ]
        });
        Ok(Self {
            own: own.collect(),
            apis,
            order,
        })
    }

    /// The gateway's own endpoint at this normalised path, if one is.
    pub fn own(&self, path: &str) -> Option<OwnEndpoint> {
        self.own.iter().find(|(p, _)| p == path).map(|&(_, e)| e)
    }

    /// `(api, operation)` of every route, by [`RouteInfo::index`].
    pub fn operations(&self) -> Vec<(String, String)> {
        self.apis
            .iter()
            .flat_map(|a| {
                a.groups
                    .iter()
                    .flat_map(|g| g.routes.iter())
                    .map(|(_, r)| (a.name.clone(), r.operation.to_string()))
            })
            .collect()
    }

    /// Every target a kill switch can name.
    pub fn kill_targets(&self) -> Vec<String> {
        self.apis
            .iter()
            .flat_map(|a| {
                std::iter::once(a.kill_key.clone())
                    .chain(a.groups.iter().map(|g| g.kill_key.clone()))
            })
            .collect()
    }

    pub fn api(&self, index: usize) -> &MountedApi {
        &self.apis[index]
    }

    /// Finds the route group for a host and a normalised path.
    pub fn lookup<'a>(&'a self, host: &str, path: &'a str) -> Result<PathMatch<'a>, Rejection> {
        for &i in &self.order {
            let api = &self.apis[i];
            if !api.hosts.is_empty() && !api.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                continue;
            }
            let Some(rest) = path.strip_prefix(api.base_path.as_str()) else {
                continue;
            };
            let remainder = match rest {
                "" => "/",
                r if r.starts_with('/') => r,
                _ => continue, // `/v10` is not below `/v1`
            };
            // The most specific mount for this host decides: no fall-through.
            let matched = api
                .router
                .at(remainder)
                .map_err(|_| Rejection::UnknownRoute)?;
            return Ok(PathMatch {
                api_index: i,
                api,
                group: &api.groups[*matched.value],
                remainder,
                params: matched.params,
            });
        }
        Err(Rejection::UnknownRoute)
    }
}

fn mount(a: usize, api: &Api, limits: &[Arc<RouteLimits>]) -> Result<MountedApi, RouteTableError> {
    let mut router = matchit::Router::new();
    let mut groups: Vec<RouteGroup> = Vec::new();
    for (r, route) in api.routes.iter().enumerate() {
        let index = if let Some(i) = groups.iter().position(|g| g.template == route.path) {
            i
        } else {
            router
                .insert(route.path.clone(), groups.len())
                .map_err(|e| RouteTableError {
                    path: format!("apis[{a}].routes[{r}].path"),
                    message: format!("conflicts with another route: {e}"),
                })?;
            groups.push(RouteGroup {
                template: route.path.clone(),
                kill_key: format!("route:{}:{}", api.name, route.path),
                routes: Vec::new(),
                allow: HeaderValue::from_static(""),
                all_served: true,
            });
            groups.len() - 1
        };
        for m in &route.methods {
            groups[index].routes.push((
                m.clone(),
                RouteInfo {
                    operation: format!("{m} {}{}", api.base_path, route.path).into(),
                    index: 0,
                    auth: route.auth.clone(),
                    contract: route.operation.clone(),
                    environments: route.environments.clone(),
                    allow_pii: route.allow_pii,
                    limits: limits.get(r).cloned().unwrap_or_default(),
                    websocket: route
                        .websocket
                        .clone()
                        .filter(|_| *m == http::Method::GET)
                        .map(Arc::new),
                },
            ));
        }
    }
    for g in &mut groups {
        g.allow = allow_header(g.routes.iter().map(|(m, _)| m.as_str()).collect());
        g.all_served = g.routes.iter().all(|(_, r)| r.environments.is_none());
    }
    Ok(MountedApi {
        name: api.name.clone(),
        kill_key: format!("api:{}", api.name),
        hosts: api.hosts.clone(),
        base_path: api.base_path.clone(),
        upstream: api.upstream,
        cors: api.cors.clone(),
        tighten_on_anomaly: api.tighten_on_anomaly,
        grpc: api.grpc,
        stream_bodies_up_to: api.stream_bodies_up_to,
        router,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn table() -> RouteTable {
        let text = r#"
listeners: [{ name: l, bind: "127.0.0.1:0", tls: { cert: c, key: k } }]
upstreams: { u: { url: "https://127.0.0.1:1", ca: ca } }
apis:
  - name: v1
    base_path: /v1
    upstream: u
    routes:
      - { path: /orders, methods: [GET, POST], auth: public }
      - { path: "/orders/{id}", methods: [GET, DELETE], auth: public }
  - name: admin-host
    hosts: [admin.example]
    base_path: /v1
    upstream: u
    routes:
      - { path: /status, methods: [GET], auth: public }
  - name: root
    upstream: u
    routes:
      - { path: /, methods: [GET], auth: public }
"#;
        RouteTable::build(
            &portcullis_config::parse(text, Path::new("/")).unwrap(),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn matches_templates_and_methods() {
        let t = table();
        let m = t.lookup("api.example", "/v1/orders/42").unwrap();
        assert_eq!(m.api.name, "v1");
        assert_eq!(m.group.template, "/orders/{id}");
        assert_eq!(m.remainder, "/orders/42");
        assert_eq!(
            &*m.group.route(&Method::GET, "production").unwrap().operation,
            "GET /v1/orders/{id}"
        );
        let Err(Rejection::MethodNotAllowed { allow }) = m.group.route(&Method::PUT, "production")
        else {
            panic!()
        };
        assert_eq!(allow, "DELETE, GET");
    }

    #[test]
    fn unknown_paths_are_not_found_and_never_fall_through() {
        let t = table();
        for p in ["/v1/nothing", "/v1/orders/42/x", "/v10/orders", "/other"] {
            assert!(
                matches!(t.lookup("api.example", p), Err(Rejection::UnknownRoute)),
                "{p}"
            );
        }
        // The host-bound API shadows the any-host one at the same base path.
        assert!(matches!(
            t.lookup("ADMIN.example", "/v1/orders"),
            Err(Rejection::UnknownRoute)
        ));
        assert_eq!(
            t.lookup("admin.example", "/v1/status").unwrap().api.name,
            "admin-host"
        );
        assert_eq!(t.lookup("x", "/").unwrap().api.name, "root");
    }
}
