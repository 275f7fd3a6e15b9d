//! Fetching an issuer's JWKS over HTTPS (AUTHN-08: key rotation without restart).
//!
//! HTTPS only, verified against the configured trust anchors; bounded in
//! time (5 s) and size (1 MiB). Refreshed periodically, and on a token with
//! an unknown `kid` — single-flight and at most once per configured
//! interval (default 10 s), so a flood of made-up `kid`s cannot flood the
//! JWKS server. A failed fetch keeps the last good keys.

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use jsonwebtoken::jwk::JwkSet;

use super::keyset::KeySet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 1024 * 1024;

pub struct JwksFetcher {
    url: Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    pub refresh: Duration,
    min_refetch: Duration,
    /// When the last fetch was attempted; the lock makes fetches single-flight.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for JwksFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksFetcher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl JwksFetcher {
    pub fn new(
        url: Uri,
        ca: &Path,
        refresh: Duration,
        min_refetch: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            url,
            client: crate::tls::https_client(ca, FETCH_TIMEOUT)?,
            refresh,
            min_refetch,
            last_attempt: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        })
    }

    /// How many fetches were attempted (for tests and metrics).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let request = http::Request::get(self.url.clone())
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?
        .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))
    }

    /// Fetches into `keys`. With `force` (the periodic refresh) always;
    /// otherwise (an unknown `kid`) only if no fetch was attempted within
    /// the minimum refetch interval. Concurrent callers wait for one fetch.
    pub async fn refresh(&self, issuer: &str, keys: &ArcSwap<KeySet>, force: bool) {
        let mut last = self.last_attempt.lock().await;
        if !force && last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                keys.store(Arc::new(KeySet::from(set)));
                tracing::info!(issuer, "JWKS fetched");
            }
            Err(e) => {
                tracing::error!(issuer, error = %e, "JWKS fetch failed; keeping the last good keys");
            }
        }
    }
}
