//! The quickstart's live traffic: a server-sent event stream and a
//! WebSocket echo, both through the gateway on a second API (`live`)
//! whose routes need the demo app's key and a token with `orders:read`.

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The demo backend's event stream: two status changes of one order.
pub(super) const ORDER_EVENTS: &str = "event: status\ndata: {\"id\":\"1001\",\"status\":\"packed\"}\n\nevent: status\ndata: {\"id\":\"1001\",\"status\":\"shipped\"}\n\n";

/// The Origin the demo's WebSocket route allows.
pub(super) const APP_ORIGIN: &str = "https://app.example.com";

/// What the quickstart did through the WebSocket route when it started.
#[derive(Serialize)]
pub(super) struct WebSocketEcho {
    pub(super) url: String,
    pub(super) sent: String,
    pub(super) received: String,
    /// The handshake with curl: `101 Switching Protocols` (curl cannot
    /// then type frames; any WebSocket client can, with these headers).
    pub(super) curl_handshake: String,
}

/// Opens the demo WebSocket through the gateway, sends one message and
/// returns the echo.
pub(super) async fn websocket_echo(
    addr: SocketAddr,
    ca: &Path,
    (api_key, token): (&str, &str),
) -> anyhow::Result<WebSocketEcho> {
    let url = format!("wss://localhost:{}/v1/live/echo", addr.port());
    let tls = portcullis_gateway::tls::client_config(ca).map_err(anyhow::Error::msg)?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(rustls_pki_types::ServerName::try_from("localhost")?, tcp)
        .await?;
    let mut request = url.as_str().into_client_request()?;
    let h = request.headers_mut();
    h.insert("x-api-key", api_key.parse()?);
    h.insert("authorization", format!("Bearer {token}").parse()?);
    h.insert("origin", APP_ORIGIN.parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .context("WebSocket handshake through the gateway")?;
    let sent = "hello through the gateway".to_owned();
    ws.send(Message::text(sent.clone())).await?;
    let received = match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(m))) => m.into_text()?.to_string(),
        _ => anyhow::bail!("no echo through the gateway within 5 s"),
    };
    let _ = ws.close(None).await;
    let curl_handshake = format!(
        "curl -sS -i --http1.1 --max-time 2 --cacert {} -H 'X-API-Key: {api_key}' -H 'Authorization: Bearer {token}' -H 'Origin: {APP_ORIGIN}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' 'https://127.0.0.1:{}/v1/live/echo'",
        ca.display(),
        addr.port()
    );
    Ok(WebSocketEcho {
        url,
        sent,
        received,
        curl_handshake,
    })
}
