//! What users write for a route that accepts WebSocket connections.

use super::defaults;
use serde::Deserialize;

/// A WebSocket route: the handshake passes every stage a request does;
/// the frames that follow are relayed within these limits.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebSocket {
    /// Browser origins allowed to open a socket (`https://app.example`).
    /// A handshake whose `Origin` is not listed is refused; one without
    /// `Origin` comes from a non-browser client and is judged by its
    /// credentials alone.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Largest message, in either direction, after reassembly of its frames.
    #[serde(default = "defaults::ws_max_message_bytes")]
    pub max_message_bytes: usize,
    /// A socket with no message either way for this long is closed.
    #[serde(default = "defaults::ws_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// The gateway pings the client this often; under `idle_timeout_s`.
    #[serde(default = "defaults::ws_ping_interval_s")]
    pub ping_interval_s: u64,
}
