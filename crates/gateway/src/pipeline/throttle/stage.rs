//! Stage 8 as the pipeline runs it (INPUT-08, OPS-02): the rate limits
//! that apply to this caller and route, then the usage baselines. The
//! concurrency slot is taken after stage 9 and held until the upstream has
//! answered.

use crate::events::SecurityEvent;
use crate::pipeline::call::Call;
use crate::pipeline::routes::{PathMatch, RouteInfo};
use crate::pipeline::throttle::Admitted;
use crate::rejection::{Rejection, Severity};

/// Stage 8: admitted (with the `RateLimit` headers to send), or 429.
pub async fn admit(
    call: &Call<'_>,
    matched: &PathMatch<'_>,
    route: &RouteInfo,
) -> Result<Admitted, Rejection> {
    let (state, conn) = (call.state, call.conn);
    let claims = call.decided.claims.as_ref();
    let admitted = state
        .throttle
        .admit(&route.limits, claims, conn.remote.ip(), &route.operation)
        .await?;
    // Usage baselines per application × route (OPS-02).
    if let (Some(detector), Some(app)) = (
        &state.anomaly,
        claims.and_then(|c| c.application.as_deref()),
    ) && let Some(what) = detector.stage(
        app,
        &route.operation,
        conn.remote.ip(),
        matched.api.tighten_on_anomaly,
    )? {
        state.events.emit(SecurityEvent::finding(
            "usage-anomaly",
            Severity::High,
            &what,
            0,
            &call.event_context(),
        ));
    }
    Ok(admitted)
}
