//! Stage 10 for WebSocket routes (AUTHZ-05, OPS-03, INPUT-08): the
//! handshake passes every stage a request does (kill switch, credentials,
//! scopes, rate limits, contract), then the `Origin` allowlist; only then
//! does the gateway open a socket of its own to the backend and answer 101.
//!
//! After the handshake the gateway relays messages, not bytes ([`Relay`]):
//! each is reassembled within `max_message_bytes` (1009 beyond), client
//! frames must be masked, the client is pinged every `ping_interval` and
//! closed when it stops answering, and a socket with no message either way
//! for `idle_timeout` is closed. AUTHZ-05 holds for the life of the socket:
//! every time the identity snapshot changes, and at the token's expiry, the
//! handshake's decision is made again (kill switches, the application, the
//! token's revocation); a socket that would now be refused is closed with
//! 1008 within [`RECHECK_EVERY`] of the store's change reaching the
//! gateway. The connection's client certificate is re-checked on every
//! look (TLS-10): revoked by a reloaded CRL, or expired, it closes the
//! socket too. Events: `websocket-opened`, `websocket-closed`, and
//! `websocket-closed-by-policy` (Medium); refused handshakes raise the
//! rejection's event like any request.
//!
//! The socket holds the route's concurrency slot and the connection's
//! place under the listener's caps until it closes.

use crate::GatewayBody;
use crate::events::{EventSink, SecurityEvent};
use crate::identity::IdentityState;
use crate::pipeline::call::Call;
use crate::pipeline::forward;
use crate::pipeline::route::Target;
use crate::pipeline::routes::{PathMatch, RouteInfo};
use crate::pipeline::throttle::Admitted;
use crate::pipeline::upstream::Outgoing;
use crate::rejection::{Rejection, Severity};
use crate::tls::clientauth::PeerCert;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use portcullis_config::{AuthPolicy, Protected, WebSocket};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

/// How often an open socket looks at the identity snapshot.
pub const RECHECK_EVERY: Duration = Duration::from_millis(250);

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a valid client handshake offered (RFC 6455 §4.2.1).
#[derive(Debug)]
pub struct Offer {
    key: HeaderValue,
    protocols: Option<HeaderValue>,
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Checks the client's handshake and its `Origin` against the route's list.
pub fn offer(parts: &Parts, socket: &WebSocket) -> Result<Offer, Rejection> {
    use Rejection::WebSocketHandshake as Refused;
    if parts.version != http::Version::HTTP_11 {
        return Err(Refused("open it over HTTP/1.1"));
    }
    let h = &parts.headers;
    if !has_token(h, &header::UPGRADE, "websocket") || !has_token(h, &header::CONNECTION, "upgrade")
    {
        return Err(Refused(
            "send `Connection: Upgrade` and `Upgrade: websocket`",
        ));
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Refused("send `Sec-WebSocket-Version: 13`"));
    }
    let mut keys = h.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) if is_key(k.as_bytes()) => k.clone(),
        _ => {
            return Err(Refused(
                "send one `Sec-WebSocket-Key` of 16 random bytes in base64",
            ));
        }
    };
    if let Some(origin) = h.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| socket.origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
        if !allowed {
            return Err(Rejection::WebSocketOrigin);
        }
    }
    let mut protocols = h.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
    let protocols = match (protocols.next(), protocols.next()) {
        (None, _) => None,
        (Some(p), None) if p.to_str().is_ok() => Some(p.clone()),
        _ => {
            return Err(Refused(
                "list the subprotocols in one `Sec-WebSocket-Protocol` header",
            ));
        }
    };
    Ok(Offer { key, protocols })
}

/// 16 bytes in base64 (RFC 6455 §4.1): 22 characters and `==`.
fn is_key(key: &[u8]) -> bool {
    use base64::Engine;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

/// Stage 10 of a WebSocket route: the backend's handshake, then 101 to the
/// client; the relay runs on the connection once hyper hands it over.
pub async fn open(
    call: &mut Call<'_>,
    (target, matched, route): (&Target<'_>, &PathMatch<'_>, &RouteInfo),
    socket: &Arc<WebSocket>,
    query: Option<&str>,
    admitted: Admitted,
) -> Result<Response<GatewayBody>, Rejection> {
    let offer = offer(call.parts, socket)?;
    let client = call
        .upgrade
        .take()
        .ok_or(Rejection::WebSocketHandshake("open it over HTTP/1.1"))?;
    let upstream = &call.state.upstreams[matched.api.upstream];
    let path_and_query = upstream.path_and_query(matched.remainder, query)?;
    let mut headers = forward::upstream_headers(call, target, matched, route)?;
    let key = generate_key();
    let put = |h: &mut HeaderMap, name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(&mut headers, header::CONNECTION, "upgrade");
    put(&mut headers, header::UPGRADE, "websocket");
    put(&mut headers, header::SEC_WEBSOCKET_VERSION, "13");
    put(&mut headers, header::SEC_WEBSOCKET_KEY, &key);
    if let Some(p) = &offer.protocols {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, p.clone());
    }
    let answer = upstream
        .send_upgrade(Outgoing {
            method: Method::GET,
            path_and_query,
            headers,
            body: Bytes::new(),
            report_served: false,
            affinity: upstream.affinity(&call.parts.headers),
        })
        .await?;
    let protocol = accepted(&answer, &key, offer.protocols.as_ref())?;
    let backend = hyper::upgrade::on(answer);

    let ctx = call.event_context();
    let closed = [
        SecurityEvent::finding("websocket-closed", Severity::Informational, "", 101, &ctx),
        SecurityEvent::finding(
            "websocket-closed-by-policy",
            Severity::Medium,
            "",
            101,
            &ctx,
        ),
    ];
    call.state.events.emit(SecurityEvent::finding(
        "websocket-opened",
        Severity::Informational,
        "WebSocket opened",
        101,
        &ctx,
    ));
    let standing = Standing {
        identity: call.state.identity.clone(),
        kill: (matched.api.kill_key.clone(), matched.group.kill_key.clone()),
        policy: match &route.auth {
            AuthPolicy::Public => None,
            AuthPolicy::Protected(p) => Some(p.clone()),
        },
        headers: call.parts.headers.clone(),
        peer: call.conn.client_cert.get().cloned(),
        tls: call.conn.tls_listener.clone(),
        expires_at: call
            .decided
            .claims
            .as_ref()
            .and_then(|c| c.token.as_ref())
            .map(|t| t.expires_at),
        seen: None,
    };
    let relay = Relay {
        client,
        backend,
        limits: socket.clone(),
        standing,
        events: call.state.events.clone(),
        closed,
        _admitted: admitted,
    };
    *call
        .conn
        .relay
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(relay);

    let mut response = Response::new(Either::Left(Full::default()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    put(
        h,
        header::SEC_WEBSOCKET_ACCEPT,
        &derive_accept_key(offer.key.as_bytes()),
    );
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    Ok(response)
}

/// The backend's answer must accept the handshake the gateway sent: 101,
/// the accept key of our key, a subprotocol the client offered, and no
/// extension (none was offered: frames are read, so none may change them).
fn accepted(
    answer: &Response<hyper::body::Incoming>,
    key: &str,
    offered: Option<&HeaderValue>,
) -> Result<Option<HeaderValue>, Rejection> {
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(Rejection::UpstreamContract(
            "the backend did not accept the WebSocket handshake",
        ));
    }
    let h = answer.headers();
    let accept = h
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .map(HeaderValue::as_bytes);
    if accept != Some(derive_accept_key(key.as_bytes()).as_bytes())
        || !has_token(h, &header::UPGRADE, "websocket")
        || h.contains_key(header::SEC_WEBSOCKET_EXTENSIONS)
    {
        return Err(Rejection::UpstreamContract(
            "the backend's WebSocket handshake answer is not valid",
        ));
    }
    let Some(chosen) = h.get(header::SEC_WEBSOCKET_PROTOCOL) else {
        return Ok(None);
    };
    let chosen_ok = chosen.to_str().is_ok_and(|c| {
        offered
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o.split(',').any(|p| p.trim() == c))
    });
    if !chosen_ok {
        return Err(Rejection::UpstreamContract(
            "the backend chose a WebSocket subprotocol the client did not offer",
        ));
    }
    Ok(Some(chosen.clone()))
}

/// What the handshake was allowed on, decided again while the socket is open.
struct Standing {
    identity: Option<Arc<IdentityState>>,
    /// The API's and the route's kill-switch keys.
    kill: (String, String),
    policy: Option<Protected>,
    headers: HeaderMap,
    peer: Option<PeerCert>,
    /// The TLS listener, whose client-certificate policy and CRLs the
    /// connection's certificate is re-checked against.
    tls: Option<Arc<crate::tls::clientauth::TlsListener>>,
    /// The token's `exp`, when a token was presented.
    expires_at: Option<i64>,
    /// The snapshot the last decision was made on.
    seen: Option<Arc<crate::store::Snapshot>>,
}

impl Standing {
    /// `None` while the socket may stay open; why not otherwise (internal
    /// detail, for the event only).
    async fn withdrawn(&mut self) -> Option<String> {
        if let Some(tls) = &self.tls
            && tls.has_client_auth()
            && let Err(r) = tls.recheck(self.peer.as_ref(), crate::clock::now())
        {
            return Some(r.to_string());
        }
        let Some(identity) = &self.identity else {
            // A protected route without identity was refused at the
            // handshake; should one ever be open, it closes (fail closed).
            return self
                .policy
                .as_ref()
                .map(|_| "protected route without identity".to_owned());
        };
        if self.expires_at.is_some_and(|e| e <= crate::clock::now()) {
            return Some("the token expired".into());
        }
        if self.policy.is_some()
            && let Err(r) = identity.current()
        {
            return Some(r.to_string());
        }
        let snapshot = identity.snapshot();
        if self
            .seen
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &snapshot))
        {
            return None;
        }
        self.seen = Some(snapshot);
        if let Err(r) = identity.switched_off(&self.kill.0, &self.kill.1) {
            return Some(r.to_string());
        }
        if let Some(policy) = &self.policy
            && let Err(r) = identity
                .authenticate(policy, &self.headers, self.peer.as_ref())
                .await
        {
            return Some(r.to_string());
        }
        None
    }
}

/// An accepted socket, waiting for hyper to hand over the client's
/// connection; run by the connection's task ([`Relay::run`]).
pub struct Relay {
    client: OnUpgrade,
    backend: OnUpgrade,
    limits: Arc<WebSocket>,
    standing: Standing,
    events: EventSink,
    /// `websocket-closed` and `websocket-closed-by-policy`, with this
    /// socket's context; the message is filled in at close.
    closed: [SecurityEvent; 2],
    _admitted: Admitted,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why a socket ended.
#[derive(Debug)]
enum End {
    /// One side sent a close frame (forwarded to the other).
    Closed {
        by: &'static str,
        code: u16,
    },
    /// One side's connection ended or broke without a close frame.
    Dropped(&'static str),
    TooBig(&'static str),
    Idle,
    Unanswered,
    Policy(String),
    Shutdown,
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

impl Relay {
    /// Relays messages until one side closes, a limit ends the socket, the
    /// caller's access is withdrawn, or the gateway shuts down.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let opened = Instant::now();
        let (client, backend) = match tokio::try_join!(self.client, self.backend) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade did not complete");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.limits.max_message_bytes))
            .max_frame_size(Some(self.limits.max_message_bytes))
            .accept_unmasked_frames(false);
        let mut c = Socket::from_raw_socket(TokioIo::new(client), Role::Server, Some(config)).await;
        let mut b =
            Socket::from_raw_socket(TokioIo::new(backend), Role::Client, Some(config)).await;
        let (mut up, mut down) = (0u64, 0u64);
        let mut ping = tokio::time::interval_at(
            Instant::now() + self.limits.ping_interval,
            self.limits.ping_interval,
        );
        let mut recheck = tokio::time::interval(RECHECK_EVERY);
        let mut awaiting_pong = false;
        let mut last_message = Instant::now();
        let idle = self.limits.idle_timeout;
        let end = loop {
            tokio::select! {
                m = c.next() => match relayed(m, "client", &mut b, idle).await {
                    Ok(Some(true)) => { up += 1; last_message = Instant::now(); }
                    Ok(Some(false)) => awaiting_pong = false,
                    Ok(None) => {}
                    Err(end) => break end,
                },
                m = b.next() => match relayed(m, "backend", &mut c, idle).await {
                    Ok(Some(true)) => { down += 1; last_message = Instant::now(); }
                    Ok(_) => {}
                    Err(end) => break end,
                },
                _ = ping.tick() => {
                    if awaiting_pong {
                        break End::Unanswered;
                    }
                    awaiting_pong = true;
                    if send(&mut c, Message::Ping(Bytes::new()), idle).await.is_err() {
                        break End::Dropped("client");
                    }
                }
                _ = recheck.tick() => {
                    if let Some(why) = self.standing.withdrawn().await {
                        break End::Policy(why);
                    }
                }
                () = tokio::time::sleep_until(last_message + idle) => break End::Idle,
                _ = shutdown.changed() => break End::Shutdown,
            }
        };
        let (to_client, to_backend) = close_frames(&end);
        tokio::join!(close(&mut c, to_client), close(&mut b, to_backend));
        let seconds = opened.elapsed().as_secs();
        let (event, message) = match &end {
            End::Policy(why) => (
                1,
                format!(
                    "WebSocket closed (1008): access withdrawn: {why}; open {seconds} s, {up} messages up, {down} down"
                ),
            ),
            end => (
                0,
                format!(
                    "WebSocket closed: {}; open {seconds} s, {up} messages up, {down} down",
                    describe(end)
                ),
            ),
        };
        let mut e = self.closed[event].clone();
        e.message = message;
        self.events.emit(e);
    }
}

/// Handles one item read from `from`: a data message is sent on to `to`
/// (`Some(true)`), a pong noted (`Some(false)`); pings are answered by the
/// socket itself. A close, an error or the end of the stream ends the relay.
async fn relayed(
    item: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    from: &'static str,
    to: &mut Socket,
    timeout: Duration,
) -> Result<Option<bool>, End> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    match item {
        Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
            send(to, m, timeout)
                .await
                .map_err(|()| End::Dropped(other(from)))?;
            Ok(Some(true))
        }
        Some(Ok(Message::Pong(_))) => Ok(Some(false)),
        Some(Ok(Message::Ping(_) | Message::Frame(_))) => Ok(None),
        Some(Ok(Message::Close(frame))) => Err(End::Closed {
            by: from,
            code: frame.map_or(1005, |f| u16::from(f.code)),
        }),
        Some(Err(Error::Capacity(
            CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders,
        ))) => Err(End::TooBig(from)),
        Some(Err(_)) | None => Err(End::Dropped(from)),
    }
}

fn other(side: &'static str) -> &'static str {
    if side == "client" {
        "backend"
    } else {
        "client"
    }
}

/// Sends one message within `timeout` (a peer that stops reading does not
/// hold the socket forever).
async fn send(to: &mut Socket, m: Message, timeout: Duration) -> Result<(), ()> {
    match tokio::time::timeout(timeout, to.send(m)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// The close frames each side gets for an end: `None` when that side is
/// gone or closed first (its close is answered by the socket itself).
fn close_frames(end: &End) -> (Option<CloseFrame>, Option<CloseFrame>) {
    let frame = |code: CloseCode, reason: &'static str| {
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    };
    match end {
        End::Closed { by: "client", code } => (None, frame(CloseCode::from(*code), "")),
        End::Closed { code, .. } => (frame(CloseCode::from(*code), ""), None),
        End::Dropped("client") => (None, frame(CloseCode::Away, "client gone")),
        End::Dropped(_) => (frame(CloseCode::Error, "backend gone"), None),
        End::TooBig(_) => (
            frame(CloseCode::Size, "message too big"),
            frame(CloseCode::Size, "message too big"),
        ),
        End::Idle => (
            frame(CloseCode::Normal, "idle"),
            frame(CloseCode::Away, "idle"),
        ),
        End::Unanswered => (
            frame(CloseCode::Away, "ping not answered"),
            frame(CloseCode::Away, "client gone"),
        ),
        End::Policy(_) => (
            frame(CloseCode::Policy, "access withdrawn"),
            frame(CloseCode::Away, "access withdrawn"),
        ),
        End::Shutdown => (
            frame(CloseCode::Away, "shutting down"),
            frame(CloseCode::Away, "shutting down"),
        ),
    }
}

fn describe(end: &End) -> String {
    match end {
        End::Closed { by, code } => format!("closed by the {by} ({code})"),
        End::Dropped(side) => format!("the {side}'s connection ended without a close"),
        End::TooBig(side) => format!("the {side} sent a message over max_message_bytes (1009)"),
        End::Idle => "no message either way within idle_timeout_s".into(),
        End::Unanswered => "the client did not answer a ping".into(),
        End::Policy(why) => why.clone(),
        End::Shutdown => "the gateway is shutting down (1001)".into(),
    }
}

/// Sends `frame` (when there is one) and waits briefly for the peer's
/// close, so that the closing handshake completes where it can.
async fn close(socket: &mut Socket, frame: Option<CloseFrame>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if let Some(frame) = frame {
            let _ = socket.close(Some(frame)).await;
        }
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method("GET").uri("/ws");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn socket(origins: &[&str]) -> WebSocket {
        WebSocket {
            origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            max_message_bytes: 1024,
            idle_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
        }
    }

    const GOOD: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn a_valid_handshake_is_offered_and_each_missing_piece_refused() {
        assert!(offer(&parts(&GOOD), &socket(&[])).is_ok());
        for (skip, (name, _)) in GOOD.iter().enumerate() {
            let partial: Vec<_> = GOOD
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, h)| *h)
                .collect();
            assert!(
                matches!(
                    offer(&parts(&partial), &socket(&[])),
                    Err(Rejection::WebSocketHandshake(_))
                ),
                "without {name}"
            );
        }
        let mut short_key = GOOD.to_vec();
        short_key[3] = ("sec-websocket-key", "c2hvcnQ=");
        assert!(offer(&parts(&short_key), &socket(&[])).is_err());
    }

    #[test]
    fn origins_must_be_listed_and_no_origin_is_judged_by_credentials() {
        let listed = socket(&["https://app.example"]);
        let with = |o: &str| {
            let mut h = GOOD.to_vec();
            h.push(("origin", o));
            offer(&parts(&h), &listed)
        };
        assert!(with("https://app.example").is_ok());
        assert!(matches!(
            with("https://evil.example"),
            Err(Rejection::WebSocketOrigin)
        ));
        assert!(matches!(with("null"), Err(Rejection::WebSocketOrigin)));
        assert!(offer(&parts(&GOOD), &listed).is_ok());
    }

    /// Fail closed: a socket on a protected route with no identity to
    /// decide on is withdrawn; one on a public route stays.
    #[tokio::test]
    async fn without_identity_only_a_public_socket_stays() {
        let standing = |policy: Option<Protected>| Standing {
            identity: None,
            kill: (String::new(), String::new()),
            policy,
            headers: HeaderMap::new(),
            peer: None,
            tls: None,
            expires_at: None,
            seen: None,
        };
        assert_eq!(standing(None).withdrawn().await, None);
        let protected = Protected {
            api_key: true,
            token: false,
            scopes: Vec::new(),
            apps: Vec::new(),
            issuers: Vec::new(),
            bind_token_to_application: false,
        };
        assert!(standing(Some(protected)).withdrawn().await.is_some());
    }

    #[test]
    fn the_rfc_sample_key_derives_the_rfc_accept() {
        // RFC 6455 §1.3.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
