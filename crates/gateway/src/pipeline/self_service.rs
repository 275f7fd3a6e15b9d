//! The gateway's own endpoints on the data plane: self-service token
//! revocation (AUTHZ-07). They are registered in the route table
//! ([`crate::pipeline::routes::OwnEndpoint`]) and selected in stage 3 like
//! any route.

use crate::GatewayBody;
use crate::identity::IdentityState;
use crate::pipeline::call::Call;
use crate::pipeline::contract::read_body;
use crate::pipeline::routes::OwnEndpoint;
use crate::rejection::Rejection;
use bytes::Bytes;
use http::Response;
use http::header;
use http_body_util::{Either, Full};

/// Serves one of the gateway's own endpoints. A refused credential counts
/// against the client's pre-authentication budget.
pub async fn serve(
    call: &mut Call<'_>,
    endpoint: OwnEndpoint,
) -> Result<Response<GatewayBody>, Rejection> {
    // Registered only when the config has identity.
    let Some(identity) = call.state.identity.as_deref() else {
        return Err(Rejection::UnknownRoute);
    };
    let served = revoke(call, identity, endpoint == OwnEndpoint::RevokeAll).await;
    call.counted(served)
}

async fn revoke(
    call: &mut Call<'_>,
    identity: &IdentityState,
    all: bool,
) -> Result<Response<GatewayBody>, Rejection> {
    let (state, conn, parts) = (call.state, call.conn, call.parts);
    let limits = &state.limits;
    if parts.method != http::Method::POST {
        return Err(Rejection::MethodNotAllowed {
            allow: http::HeaderValue::from_static("POST"),
        });
    }
    IdentityState::refuse_query_credentials(parts.uri.query())?;
    let peer = conn.client_cert.get();
    state.throttle.before_authentication(conn.remote.ip())?;
    if all {
        identity.revoke_all(&parts.headers, peer).await?;
    } else {
        // Credentials first: an anonymous caller gets no body read.
        let caller = identity.revocation_caller(&parts.headers, peer).await?;
        let bytes = match call.body.take() {
            Some(b) => read_body(b, &parts.headers, limits, &mut call.buffered).await?,
            None => Bytes::new(),
        };
        identity.revoke(caller, &bytes).await?;
    }
    let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(b"{}"))));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
