//! RFC 7662 token introspection for opaque bearer tokens (AUTHN-02).
//!
//! The gateway authenticates to the authorization server with HTTP Basic
//! (client id + a secret read from a 0600 file), over HTTPS verified against
//! the configured anchors, bounded in time and size. Active answers are never
//! cached (AUTHZ-05): an inactive, expired, foreign or unanswered token is
//! refused, and so is one whose answer lacks `exp`. Refusals are remembered
//! for a few seconds (a negative cache cannot grant anything), and at most
//! [`MAX_IN_FLIGHT`] introspections run at once, so a flood of unknown
//! tokens cannot trip the authorization server's own limits and lock every
//! user out.

use crate::identity::tokens::{TokenError, VerifiedToken};
use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use portcullis_config::Introspection;
use serde::Deserialize;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Introspection calls in flight at once; others wait up to a second, then fail closed.
pub const MAX_IN_FLIGHT: usize = 32;
/// How long an inactive or refused token is answered from memory.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Refused tokens remembered at once (by SHA-256 digest, never the token).
const NEGATIVE_ENTRIES: usize = 16_384;

pub struct Introspector {
    config: Introspection,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    authorization: HeaderValue,
    in_flight: tokio::sync::Semaphore,
    refused:
        std::sync::Mutex<std::collections::HashMap<[u8; 32], (std::time::Instant, TokenError)>>,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    active: bool,
    scope: Option<String>,
    client_id: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    iss: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    jti: Option<String>,
    cnf: Option<crate::identity::tokens::Confirmation>,
}

impl Introspector {
    pub fn new(config: &Introspection) -> Result<Self, String> {
        // The client secret is a key: the same permission rule applies (TLS-07).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&config.client_secret_file)
                .map_err(|e| format!("{}: {}", config.client_secret_file.display(), e.kind()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} is readable by group or others: run `chmod 600` on it",
                    config.client_secret_file.display()
                ));
            }
        }
        // Every copy the gateway makes is wiped when dropped; the one left is
        // the header value itself, which `http` cannot wipe.
        let secret = zeroize::Zeroizing::new(
            std::fs::read_to_string(&config.client_secret_file)
                .map_err(|e| format!("{}: {}", config.client_secret_file.display(), e.kind()))?,
        );
        let pair = zeroize::Zeroizing::new(format!("{}:{}", config.client_id, secret.trim()));
        let credentials =
            zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pair));
        let basic = zeroize::Zeroizing::new(format!("Basic {}", &*credentials));
        let mut authorization =
            HeaderValue::from_str(&basic).map_err(|_| "client secret is not text".to_owned())?;
        authorization.set_sensitive(true);
        Ok(Self {
            config: config.clone(),
            client: crate::tls::https_client(&config.ca, TIMEOUT)?,
            authorization,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            refused: std::sync::Mutex::default(),
        })
    }

    /// Asks the authorization server about `token`; refuses on any doubt.
    /// A token refused in the last [`NEGATIVE_TTL`] is refused again without
    /// asking; an active answer is never reused.
    pub async fn introspect(
        &self,
        token: &str,
        now: i64,
        skew_s: i64,
        max_lifetime_s: i64,
    ) -> Result<VerifiedToken, TokenError> {
        let digest: [u8; 32] =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
                .as_ref()
                .try_into()
                .unwrap_or([0; 32]);
        if let Some((at, why)) = self.refused_lock().get(&digest)
            && at.elapsed() < NEGATIVE_TTL
        {
            return Err(why.clone());
        }
        let Ok(Ok(_permit)) =
            tokio::time::timeout(Duration::from_secs(1), self.in_flight.acquire()).await
        else {
            return Err(TokenError::Invalid(
                "introspection unavailable: too many in flight".into(),
            ));
        };
        let answer = self.ask(token, now, skew_s, max_lifetime_s).await;
        // Only the server's own verdicts are remembered, not its outages.
        if let Err(why) = &answer
            && !matches!(why, TokenError::Invalid(_))
        {
            let mut refused = self.refused_lock();
            if refused.len() >= NEGATIVE_ENTRIES {
                refused.retain(|_, (at, _)| at.elapsed() < NEGATIVE_TTL);
                if refused.len() >= NEGATIVE_ENTRIES {
                    refused.clear();
                }
            }
            refused.insert(digest, (std::time::Instant::now(), why.clone()));
        }
        answer
    }

    fn refused_lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<[u8; 32], (std::time::Instant, TokenError)>,
    > {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn ask(
        &self,
        token: &str,
        now: i64,
        skew_s: i64,
        max_lifetime_s: i64,
    ) -> Result<VerifiedToken, TokenError> {
        let body = format!(
            "token={}&token_type_hint=access_token",
            percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
        );
        let request = http::Request::post(self.config.url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| TokenError::Invalid("introspection request".into()))?;
        let unavailable =
            |why: String| TokenError::Invalid(format!("introspection unavailable: {why}"));
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| unavailable("timed out".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        let bytes = tokio::time::timeout(
            TIMEOUT,
            Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect(),
        )
        .await
        .map_err(|_| unavailable("timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?
        .to_bytes();
        let a: Answer =
            serde_json::from_slice(&bytes).map_err(|_| unavailable("answer is not JSON".into()))?;
        if !a.active {
            return Err(TokenError::Claim("inactive (introspection)"));
        }
        let exp = a
            .exp
            .ok_or(TokenError::Claim("introspection answer without `exp`"))?;
        if exp + skew_s <= now {
            return Err(TokenError::Claim("expired (introspection)"));
        }
        if exp - now > max_lifetime_s + skew_s {
            return Err(TokenError::Claim(
                "lifetime longer than this gateway accepts",
            ));
        }
        if a.iss.as_ref().is_some_and(|i| *i != self.config.issuer) {
            return Err(TokenError::UnknownIssuer);
        }
        let audience: Vec<String> = match a.aud {
            Some(serde_json::Value::String(s)) => vec![s],
            Some(serde_json::Value::Array(v)) => v
                .into_iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => vec![],
        };
        if !self.config.audiences.is_empty()
            && !audience.iter().any(|a| self.config.audiences.contains(a))
        {
            return Err(TokenError::Claim("audience not accepted (introspection)"));
        }
        let token_id = a.jti.unwrap_or_else(|| {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
            format!(
                "sha256:{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
            )
        });
        Ok(VerifiedToken {
            issuer: self.config.issuer.clone(),
            subject: a.sub,
            audience,
            scopes: a
                .scope
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            expires_at: exp,
            issued_at: a.iat,
            token_id,
            client_id: a.client_id,
            cert_thumbprint: crate::identity::tokens::Confirmation::thumbprint(a.cnf)?,
        })
    }
}
