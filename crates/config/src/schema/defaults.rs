//! Secure defaults, each one reasoned in `docs/defaults.md`.

pub fn anomaly_interval_s() -> u64 {
    10
}
pub fn anomaly_warmup() -> u32 {
    6
}
pub fn anomaly_factor() -> f64 {
    5.0
}
pub fn event_file_max_mb() -> u64 {
    100
}
pub fn event_file_keep() -> u32 {
    5
}
pub fn spool_max_mb() -> u64 {
    64
}
pub fn collector_batch() -> usize {
    100
}
pub fn postgres_port() -> u16 {
    5432
}
pub fn postgres_connect_timeout_ms() -> u64 {
    2000
}
pub fn postgres_resync_s() -> u64 {
    30
}
pub fn redis_timeout_ms() -> u64 {
    100
}
pub fn context_lifetime_s() -> u64 {
    30
}
pub fn context_rotate_after_s() -> u64 {
    7 * 24 * 3600
}
pub fn context_overlap_s() -> u64 {
    3600
}
pub fn header_read_timeout_ms() -> u64 {
    10_000
}
pub fn tls_handshake_timeout_ms() -> u64 {
    10_000
}
pub fn max_header_bytes() -> usize {
    16 * 1024
}
pub fn max_body_bytes() -> usize {
    1024 * 1024
}
pub fn max_connections() -> usize {
    10_000
}
pub fn h2_max_concurrent_streams() -> u32 {
    100
}
pub fn h2_max_pending_reset_streams() -> usize {
    20
}
pub fn h2_max_local_error_reset_streams() -> usize {
    64
}
pub fn body_read_timeout_ms() -> u64 {
    30_000
}
pub fn connect_timeout_ms() -> u64 {
    2_000
}
pub fn request_timeout_ms() -> u64 {
    30_000
}
pub fn pool_idle_timeout_ms() -> u64 {
    60_000
}
pub fn pool_max_idle_per_host() -> usize {
    64
}
pub fn cors_max_age_s() -> u32 {
    600
}
pub fn clock_skew_s() -> u64 {
    60
}
pub fn max_staleness_s() -> u64 {
    60
}
pub fn jwks_refresh_s() -> u64 {
    300
}
pub fn jwks_refetch_interval_s() -> u64 {
    10
}
pub fn max_token_bytes() -> usize {
    8192
}
pub fn verified_token_cache() -> usize {
    4096
}
pub fn yes() -> bool {
    true
}
pub fn max_json_depth() -> usize {
    32
}
pub fn max_json_string_bytes() -> usize {
    64 * 1024
}
pub fn max_response_bytes() -> usize {
    8 * 1024 * 1024
}
pub fn idle_timeout_ms() -> u64 {
    60_000
}
pub fn max_connection_age_ms() -> u64 {
    3_600_000
}
pub fn write_timeout_ms() -> u64 {
    30_000
}
pub fn max_connections_per_client() -> usize {
    512
}
pub fn client_ipv6_prefix() -> u8 {
    64
}
pub fn min_body_bytes_per_s() -> u64 {
    1024
}
pub fn body_rate_grace_ms() -> u64 {
    5_000
}
pub fn max_buffered_bytes() -> usize {
    512 * 1024 * 1024
}
pub fn auth_failures_per_minute() -> u32 {
    120
}
pub fn shutdown_grace_s() -> u64 {
    10
}
pub fn health_interval_ms() -> u64 {
    5_000
}
pub fn health_timeout_ms() -> u64 {
    1_000
}
pub fn healthy_threshold() -> u32 {
    2
}
pub fn unhealthy_threshold() -> u32 {
    3
}
pub fn expect_status() -> u16 {
    200
}
pub fn outlier_failures() -> u32 {
    5
}
pub fn ejection_ms() -> u64 {
    30_000
}
pub fn max_ejection_ms() -> u64 {
    300_000
}
pub fn max_ejected_percent() -> u8 {
    50
}
pub fn retry_attempts() -> u32 {
    1
}
pub fn retry_budget_percent() -> u8 {
    20
}
pub fn ws_max_message_bytes() -> usize {
    64 * 1024
}
pub fn ws_idle_timeout_s() -> u64 {
    60
}
pub fn ws_ping_interval_s() -> u64 {
    20
}
pub fn max_requests_per_target() -> usize {
    1024
}
pub fn max_streamed_body_bytes() -> u64 {
    64 * 1024 * 1024
}
