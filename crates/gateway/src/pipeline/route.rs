//! Stage 3, route (AUTHZ-10, AUTHN-06, DATA-01, AUTHN-04): one well-formed
//! host this listener serves, the normalised path, what the URL may not
//! carry, then the API and route, or the CORS preflight answered here.

use crate::GatewayBody;
use crate::identity::IdentityState;
use crate::pipeline::call::Call;
use crate::pipeline::routes::{OwnEndpoint, PathMatch, RouteInfo};
use crate::pipeline::{content, hardening, host, path};
use crate::rejection::Rejection;
use http::Response;
use http_body_util::{Either, Full};

/// What the request addresses, checked.
pub struct Target<'a> {
    pub host: &'a str,
    pub path: String,
}

/// The route the request selected, or the preflight answer.
pub enum Selected<'t> {
    Route(PathMatch<'t>, &'t RouteInfo),
    Preflight(Response<GatewayBody>),
    /// One of the gateway's own endpoints (self-service revocation).
    Own(OwnEndpoint),
}

/// The host, the path, and what the URL carries.
pub fn target<'a>(call: &Call<'a>) -> Result<Target<'a>, Rejection> {
    let (state, conn, parts) = (call.state, call.conn, call.parts);
    let host = host::from_request(parts)?;
    if !host::served(host, &conn.hosts) {
        return Err(Rejection::MisdirectedHost);
    }
    let path = path::normalize(parts.uri.path())?;
    // Credentials first (AUTHN-04, the more precise answer), then DATA-01.
    if state.identity.is_some() {
        IdentityState::refuse_query_credentials(parts.uri.query())?;
    }
    content::sensitive_url(&path, parts.uri.query(), &state.sensitive)?;
    Ok(Target { host, path })
}

/// The gateway's own endpoint, or the API and route (deny by default), or
/// the CORS preflight's answer.
pub fn select<'a: 't, 't>(
    call: &mut Call<'a>,
    target: &'t Target<'a>,
) -> Result<Selected<'t>, Rejection> {
    let (state, conn, parts) = (call.state, call.conn, call.parts);
    if let Some(endpoint) = state.routes.own(&target.path) {
        return Ok(Selected::Own(endpoint));
    }
    let matched = state.routes.lookup(target.host, &target.path)?;
    call.decided.api = Some(matched.api_index);
    if let Some(cors) = &matched.api.cors
        && hardening::is_preflight(&parts.method, &parts.headers)
    {
        call.decided.preflight = true;
        let response =
            hardening::preflight(cors, matched.group, &parts.headers, &conn.environment)?;
        return Ok(Selected::Preflight(
            response.map(|()| Either::Left(Full::default())),
        ));
    }
    let route = matched.group.route(&parts.method, &conn.environment)?;
    call.decided.operation = Some(route.operation.clone());
    call.decided.route = Some(route.index);
    call.decided.redact_path = route.contract.as_ref().is_some_and(|op| op.classified_path);
    Ok(Selected::Route(matched, route))
}
