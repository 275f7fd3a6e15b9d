//! Validation of identity: token binding, issuers and their keys,
//! introspection, and every protected route having an identity section.

use crate::{
    ASYMMETRIC_ALGORITHMS, Api, AuthPolicy, DEFAULT_ALGORITHMS, Identity, Introspection, Issuer,
    JwksSource, Route, Validator, schema, template_problem,
};
use http::HeaderName;
use std::path::PathBuf;
use std::time::Duration;

impl Validator {
    /// AUTHZ-02: which issuers' tokens an API accepts, and whether a token
    /// must belong to the application calling with it.
    pub(crate) fn token_binding(
        &mut self,
        p: &str,
        api: &schema::RawApi,
        identity: Option<&Identity>,
        routes: &mut [Route],
    ) {
        let configured: Vec<&str> = identity
            .map(|i| {
                i.issuers
                    .iter()
                    .map(|x| x.issuer.as_str())
                    .chain(i.introspection.as_ref().map(|x| x.issuer.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        for (n, iss) in api.token_issuers.iter().enumerate() {
            if !configured.contains(&iss.as_str()) {
                self.err(
                    format!("{p}.token_issuers[{n}]"),
                    format!("`{iss}` is not a configured issuer (identity.issuers[].issuer or identity.introspection.issuer)"),
                );
            }
        }
        let takes_tokens = routes
            .iter()
            .any(|r| matches!(&r.auth, AuthPolicy::Protected(x) if x.token));
        if takes_tokens && configured.len() > 1 && api.token_issuers.is_empty() {
            self.err(
                format!("{p}.token_issuers"),
                "required when more than one issuer is configured: name the issuers whose tokens this API accepts",
            );
        }
        for route in routes.iter_mut() {
            if let AuthPolicy::Protected(x) = &mut route.auth
                && x.token
            {
                x.issuers.clone_from(&api.token_issuers);
                x.bind_token_to_application = api.bind_token_to_application && x.api_key;
            }
        }
        for (name, list) in &api.route_token_issuers {
            let rp = format!("{p}.route_token_issuers.{name}");
            let allowed: &[String] = &api.token_issuers;
            if list.is_empty() {
                self.err(
                    &rp,
                    "name at least one issuer (leave the route out to accept the API's list)",
                );
            }
            for (n, iss) in list.iter().enumerate() {
                let within = if allowed.is_empty() {
                    configured.contains(&iss.as_str())
                } else {
                    allowed.contains(iss)
                };
                if !within {
                    self.err(
                        format!("{rp}[{n}]"),
                        format!("`{iss}` is not among the issuers this API accepts (apis[].token_issuers): a route may only narrow them"),
                    );
                }
            }
            let Some(route) = self.named_route(&rp, name, routes) else {
                continue;
            };
            match &mut route.auth {
                AuthPolicy::Protected(x) if x.token => x.issuers.clone_from(list),
                _ => self.err(&rp, "this route takes no token"),
            }
        }
        if api.bind_token_to_application && !takes_tokens {
            self.err(
                format!("{p}.bind_token_to_application"),
                "no route of this API takes a token",
            );
        }
    }

    pub(crate) fn identity(
        &mut self,
        i: &schema::RawIdentity,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Identity {
        let api_key_header = match &i.api_key_header {
            None => HeaderName::from_static("x-api-key"),
            Some(h) => self.header_name("identity.api_key_header", h),
        };
        if i.max_token_bytes < 256 {
            self.err("identity.max_token_bytes", "must be at least 256");
        }
        if i.verified_token_cache > 1_000_000 {
            self.err(
                "identity.verified_token_cache",
                "must be at most 1000000 tokens (each entry holds a token's claims)",
            );
        }
        let mut issuers = Vec::new();
        for (n, is) in i.issuers.iter().enumerate() {
            let issuer = self.issuer(&format!("identity.issuers[{n}]"), is, &issuers, resolve);
            issuers.push(issuer);
        }
        let path = |v: &mut Self, field: &str, value: Option<&String>, default: &str| -> String {
            let p = value.map_or(default, String::as_str).to_owned();
            if template_problem(&p, false).is_some() || p == "/" {
                v.err(
                    format!("identity.{field}"),
                    "must be a literal path like /oauth2/revoke",
                );
            }
            p
        };
        let introspection = i
            .introspection
            .as_ref()
            .map(|x| self.introspection(x, resolve));
        if i.max_staleness_s == 0 {
            self.err("identity.max_staleness_s", "must be greater than 0");
        }
        Identity {
            introspection,
            data_dir: resolve(&i.data_dir),
            postgres: None,
            api_key_header,
            clock_skew: Duration::from_secs(i.clock_skew_s),
            max_staleness: Duration::from_secs(i.max_staleness_s),
            max_token_bytes: i.max_token_bytes,
            verified_token_cache: i.verified_token_cache,
            issuers,
            decryption_keys: i
                .decryption_keys
                .iter()
                .map(|k| (k.kid.clone(), resolve(&k.key)))
                .collect(),
            revocation_path: path(
                self,
                "revocation_path",
                i.revocation_path.as_ref(),
                "/oauth2/revoke",
            ),
            revoke_all_path: path(
                self,
                "revoke_all_path",
                i.revoke_all_path.as_ref(),
                "/oauth2/revoke-all",
            ),
        }
    }

    /// One token issuer: name, audiences, asymmetric algorithms only
    /// (AUTHN-07), where its keys come from.
    pub(crate) fn issuer(
        &mut self,
        p: &str,
        is: &schema::RawIssuer,
        earlier: &[Issuer],
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Issuer {
        if is.issuer.is_empty() {
            self.err(format!("{p}.issuer"), "must not be empty");
        }
        if is.audiences.is_empty() {
            self.err(
                format!("{p}.audiences"),
                "list at least one accepted audience",
            );
        }
        let algorithms: Vec<String> = if is.algorithms.is_empty() {
            DEFAULT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect()
        } else {
            is.algorithms.clone()
        };
        for (k, a) in algorithms.iter().enumerate() {
            if !ASYMMETRIC_ALGORITHMS.contains(&a.as_str()) {
                let why = if a.starts_with("HS") {
                    "symmetric (HMAC) algorithms are not accepted: a shared secret at the gateway can mint tokens"
                } else if a.eq_ignore_ascii_case("none") {
                    "unsigned tokens are never accepted"
                } else {
                    "unknown algorithm"
                };
                self.err(
                    format!("{p}.algorithms[{k}]"),
                    format!("`{a}`: {why}; use {}", ASYMMETRIC_ALGORITHMS.join(", ")),
                );
            }
        }
        if earlier.iter().any(|x| x.issuer == is.issuer) {
            self.err(format!("{p}.issuer"), "duplicate issuer");
        }
        let jwks = self.jwks_source(p, is, resolve);
        Issuer {
            issuer: is.issuer.clone(),
            audiences: is.audiences.clone(),
            jwks,
            algorithms,
            require_typ: is.require_typ.clone(),
        }
    }

    /// An issuer's keys: a file, or an https URL with explicit trust anchors.
    pub(crate) fn jwks_source(
        &mut self,
        p: &str,
        is: &schema::RawIssuer,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> JwksSource {
        match (&is.jwks_file, &is.jwks_url) {
            (Some(f), None) => JwksSource::File(resolve(f)),
            (None, Some(u)) => {
                let url = u
                    .parse::<http::Uri>()
                    .ok()
                    .filter(|u| u.scheme_str() == Some("https") && u.host().is_some());
                if url.is_none() {
                    self.err(
                        format!("{p}.jwks_url"),
                        format!(
                            "`{u}` is not an https:// URL (keys are never fetched in plaintext)"
                        ),
                    );
                }
                if is.jwks_ca.is_none() {
                    self.err(format!("{p}.jwks_ca"), "missing: trust anchors for the JWKS server must be explicit (a PEM bundle)");
                }
                if is.jwks_refresh_s < 10 {
                    self.err(format!("{p}.jwks_refresh_s"), "must be at least 10");
                }
                if is.jwks_refetch_interval_s < 1 {
                    self.err(format!("{p}.jwks_refetch_interval_s"), "must be at least 1");
                }
                JwksSource::Url {
                    url: url.unwrap_or_default(),
                    ca: resolve(is.jwks_ca.as_deref().unwrap_or("")),
                    refresh: Duration::from_secs(is.jwks_refresh_s),
                    min_refetch: Duration::from_secs(is.jwks_refetch_interval_s),
                }
            }
            _ => {
                self.err(
                    format!("{p}.jwks_file"),
                    "set exactly one of `jwks_file` and `jwks_url`",
                );
                JwksSource::File(PathBuf::new())
            }
        }
    }

    /// Token introspection (RFC 7662) over https only.
    pub(crate) fn introspection(
        &mut self,
        x: &schema::RawIntrospection,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Introspection {
        let url = x
            .url
            .parse::<http::Uri>()
            .ok()
            .filter(|u| u.scheme_str() == Some("https") && u.host().is_some());
        if url.is_none() {
            self.err(
                "identity.introspection.url",
                format!(
                    "`{}` is not an https:// URL (tokens are never sent in plaintext)",
                    x.url
                ),
            );
        }
        if x.client_id.is_empty() || x.client_id.contains(':') {
            self.err(
                "identity.introspection.client_id",
                "must be non-empty and contain no `:`",
            );
        }
        Introspection {
            url: url.unwrap_or_default(),
            ca: resolve(&x.ca),
            client_id: x.client_id.clone(),
            client_secret_file: resolve(&x.client_secret_file),
            issuer: x.issuer.clone(),
            audiences: x.audiences.clone(),
        }
    }

    pub(crate) fn protected_routes_have_identity(
        &mut self,
        apis: &[Api],
        identity: Option<&Identity>,
    ) {
        for (a, api) in apis.iter().enumerate() {
            for (r, route) in api.routes.iter().enumerate() {
                let AuthPolicy::Protected(p) = &route.auth else {
                    continue;
                };
                let at = match &route.operation {
                    Some(op) => format!("apis[{a}].openapi#{}/security", op.pointer),
                    None => format!("apis[{a}].routes[{r}].auth"),
                };
                match identity {
                    None => self.err(
                        at,
                        "protected routes need an `identity` section (data_dir, issuers)",
                    ),
                    Some(i) if p.token && i.issuers.is_empty() && i.introspection.is_none() => self.err(
                        format!("{at}.token"),
                        "tokens need at least one entry in identity.issuers (or identity.introspection)",
                    ),
                    Some(_) => {}
                }
            }
        }
    }
}
