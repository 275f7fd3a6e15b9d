//! The CLI's way into a running gateway: its admin API. When a config
//! declares an admin plane, `apps`, `keys` and `inventory --traffic` go
//! through it, so they obey the administrator's role and land in the audit
//! log under the administrator's name (OPS-05, PROC-06).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use portcullis_config::{AdminListen, Config};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the admin token comes from.
pub const TOKEN_VAR: &str = "PORTCULLIS_ADMIN_TOKEN";

enum At {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A client of one gateway's admin API.
pub struct AdminApi {
    at: At,
    token: String,
}

impl AdminApi {
    /// The admin plane `config` declares, with the token from
    /// `PORTCULLIS_ADMIN_TOKEN`; `Ok(None)` when it declares none.
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        let at = match &config.admin {
            None => return Ok(None),
            Some(AdminListen::Tcp(addr)) => At::Tcp(*addr),
            Some(AdminListen::Unix(path)) => At::Unix(path.clone()),
            Some(AdminListen::MutualTls { addr, .. }) => {
                return Err(format!(
                    "the admin listener at {addr} is mutual TLS: call its API with your administrator certificate, e.g. `curl --cert admin.pem --key admin.key https://{addr}/admin/v1/apps`"
                ));
            }
        };
        let token = std::env::var(TOKEN_VAR).map_err(|_| {
            format!(
                "this config has an admin plane, so changes go through it: set {TOKEN_VAR} to your admin token (`portcullis admin create NAME --role …` makes one)"
            )
        })?;
        Ok(Some(Self { at, token }))
    }

    /// A `GET` whose answer is a JSON array.
    pub fn list(&self, path: &str) -> Result<Vec<Value>, String> {
        match self.call("GET", path, None)? {
            Value::Array(items) => Ok(items),
            other => Err(format!("unexpected answer from {path}: {other}")),
        }
    }

    /// One call; the JSON answer, or the problem's detail.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "portcullis-admin")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let (status, bytes) = rt.block_on(async {
            match &self.at {
                At::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("admin plane at {addr} unreachable: {e}"))?;
                    exchange(stream, request).await
                }
                At::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| {
                        format!("admin plane at {} unreachable: {e}", path.display())
                    })?;
                    exchange(stream, request).await
                }
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!(
                "the admin plane answered {status}: {}",
                value["detail"].as_str().map_or_else(
                    || String::from_utf8_lossy(&bytes).into_owned(),
                    str::to_owned
                )
            ))
        }
    }
}

async fn exchange<S>(
    stream: S,
    request: http::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("admin request failed: {e}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}
