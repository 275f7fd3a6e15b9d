//! Stages 4 to 7 (OPS-03, AUTHN-05, AUTHZ-05, AUTHZ-09): the kill switch,
//! then application, token and authorization, decided on every request
//! before the body is read; the decisions themselves live in `identity/`.

use crate::pipeline::call::Call;
use crate::pipeline::routes::{PathMatch, RouteInfo};
use crate::rejection::Rejection;
use portcullis_config::AuthPolicy;

/// Stages 4 to 7, in order.
pub async fn check(
    call: &mut Call<'_>,
    matched: &PathMatch<'_>,
    route: &RouteInfo,
) -> Result<(), Rejection> {
    let (state, conn) = (call.state, call.conn);
    // 4. kill switch: an API or route an operator switched off (OPS-03).
    if let Some(identity) = &state.identity {
        identity.switched_off(&matched.api.kill_key, &matched.group.kill_key)?;
    }
    // 5. application, 6. token, 7. authorization, per request (AUTHZ-05).
    match &route.auth {
        AuthPolicy::Public => {}
        AuthPolicy::Protected(policy) => {
            // Config validation guarantees identity for protected routes; fail closed anyway.
            let identity = state.identity.as_ref().ok_or_else(|| {
                Rejection::StoreUnavailable("protected route without identity".into())
            })?;
            let peer = conn.client_cert.get();
            state.throttle.before_authentication(conn.remote.ip())?;
            let claims = identity
                .authenticate(policy, &call.parts.headers, peer)
                .await;
            call.decided.claims = Some(call.counted(claims)?);
        }
    }
    Ok(())
}
