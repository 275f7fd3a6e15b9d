//! The gateway's own endpoint on the data plane: self-service token
//! revocation (AUTHZ-07), answered before route lookup.

use crate::GatewayBody;
use crate::identity::IdentityState;
use crate::pipeline::call::Call;
use crate::pipeline::contract::read_body;
use crate::pipeline::route::Target;
use crate::rejection::Rejection;
use bytes::Bytes;
use http::Response;
use http::header;
use http_body_util::{Either, Full};

/// The gateway's own endpoints: self-service token revocation (AUTHZ-07),
/// when the config has identity. A refused credential counts against the
/// client's pre-authentication budget.
pub async fn serve(
    call: &mut Call<'_>,
    target: &Target<'_>,
) -> Result<Option<Response<GatewayBody>>, Rejection> {
    let state = call.state;
    let Some(identity) = state.identity.as_deref() else {
        return Ok(None);
    };
    let served = revoke(call, identity, &target.path).await;
    call.counted(served)
}

async fn revoke(
    call: &mut Call<'_>,
    identity: &IdentityState,
    path: &str,
) -> Result<Option<Response<GatewayBody>>, Rejection> {
    let (state, conn, parts) = (call.state, call.conn, call.parts);
    let limits = &state.limits;
    let all = path == identity.config.revoke_all_path;
    if !all && path != identity.config.revocation_path {
        return Ok(None);
    }
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
    Ok(Some(r))
}
