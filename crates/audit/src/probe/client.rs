//! The probes' HTTP client: TLS verification that reports instead of
//! refusing (unless strict), paced request bodies, one exchange per
//! connection.

use super::{
    Arc, BodyExt, Bytes, CertificateDer, ClientCert, Duration, Exchange, Limited, TokioIo,
};

/// Verifies the target's certificate like any client would. Unless
/// `strict`, a certificate that does not verify (self-signed, CA-flagged,
/// expired, for another name, no `--ca` given) is accepted so the HTTP plane
/// can still be judged, and the first reason is kept for the report; the
/// handshake signature is checked either way. The certificate itself is
/// judged by the TLS probes (TLS-02, TLS-09, TLS-10).
#[derive(Debug)]
pub(super) struct TargetVerifier {
    webpki: Result<Arc<rustls::client::WebPkiServerVerifier>, String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    strict: bool,
    unverified: std::sync::Mutex<Option<String>>,
}

impl TargetVerifier {
    pub(super) fn new(ca: Option<&str>, strict: bool) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = ca {
            use rustls::pki_types::pem::PemObject;
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots
                    .add(c.map_err(|e| format!("--ca: {e}"))?)
                    .map_err(|e| format!("--ca: {e}"))?;
            }
        }
        let webpki = if roots.is_empty() {
            Err("no trust anchors were given (--ca)".to_owned())
        } else {
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("--ca: {e}"))
        };
        Ok(Self {
            webpki,
            provider,
            strict,
            unverified: std::sync::Mutex::new(None),
        })
    }

    /// Why the target's certificate did not verify, if it did not.
    pub(super) fn unverified(&self) -> Option<String> {
        self.unverified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl rustls::client::danger::ServerCertVerifier for TargetVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verdict = match &self.webpki {
            Ok(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            Err(why) => Err(rustls::Error::General(why.clone())),
        };
        match verdict {
            Err(e) if !self.strict => {
                self.unverified
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert_with(|| e.to_string());
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    verify_handshake_signatures!(provider);
}

pub(super) fn tls_config(
    verifier: &Arc<TargetVerifier>,
    cert: Option<&ClientCert>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone());
    let mut c = match cert {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .map_err(|e| format!("--cert/--key: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// A request body sent in 64 KiB pieces, a few milliseconds apart. A
/// server that refuses a large body by its declared length answers and
/// closes while it is still being sent; a close with unread bytes resets
/// the connection, and the reset can destroy the answer before it is read.
/// So a body of more than one piece waits [`Paced::HEAD_START`] before its
/// first byte: such a server answers to the head alone and closes an empty
/// connection, and the answer is read before the write fails (a lost answer
/// is never counted as a refusal, so it must not be lost to a race).
pub(super) struct Paced {
    rest: Bytes,
    pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Paced {
    const PIECE: usize = 64 * 1024;
    const HEAD_START: Duration = Duration::from_millis(300);

    pub(super) fn new(body: Bytes) -> Self {
        let pause =
            (body.len() > Self::PIECE).then(|| Box::pin(tokio::time::sleep(Self::HEAD_START)));
        Self { rest: body, pause }
    }
}

impl hyper::body::Body for Paced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(Self::PIECE);
        let piece = self.rest.split_to(n);
        if !self.rest.is_empty() {
            self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(5))));
        }
        Poll::Ready(Some(Ok(hyper::body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.pause.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

pub(super) async fn exchange<S>(
    stream: S,
    request: http::Request<Paced>,
) -> Result<Exchange, String>
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
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, 1024 * 1024)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    Ok(Exchange {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Whether a failed exchange died because the server closed (or reset) the
/// connection while the request was still being written: the answer may
/// have been sent and lost.
pub(super) fn lost_to_a_close(error: &str) -> bool {
    [
        "writing a body",
        "reset",
        "broken pipe",
        "connection closed",
    ]
    .iter()
    .any(|m| error.to_ascii_lowercase().contains(m))
}
