//! What users write for identity: issuers, introspection, token
//! decryption keys.

use super::defaults;
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// Directory for the store (`portcullis.db`) and the key pepper; relative
    /// to the config file.
    pub data_dir: String,
    /// Header carrying the API key (default `X-API-Key`). Never the query string.
    pub api_key_header: Option<String>,
    /// Allowed clock skew for `exp`, `nbf` and `iat`, in seconds (default 60).
    #[serde(default = "defaults::clock_skew_s")]
    pub clock_skew_s: u64,
    /// Longest accepted bearer token, in bytes (default 8192).
    #[serde(default = "defaults::max_token_bytes")]
    pub max_token_bytes: usize,
    /// Tokens whose verified signature and claims are remembered, keyed by
    /// their SHA-256, until they expire or the issuer's keys change
    /// (default 4096; 0 turns the cache off). Revocation, scopes and kill
    /// switches are decided on every request either way.
    #[serde(default = "defaults::verified_token_cache")]
    pub verified_token_cache: usize,
    /// Trusted token issuers.
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
    /// The gateway's private keys (PKCS#8 PEM, mode 0600) for nested JWE
    /// tokens: RSA for RSA-OAEP-256, P-256 for ECDH-ES+A256KW.
    #[serde(default)]
    pub decryption_keys: Vec<RawDecryptionKey>,
    /// RFC 7662 introspection for opaque (non-JWT) tokens.
    pub introspection: Option<RawIntrospection>,
    /// Path of the self-service revocation endpoint (RFC 7009); default `/oauth2/revoke`.
    pub revocation_path: Option<String>,
    /// Path of the "revoke all my tokens" endpoint; default `/oauth2/revoke-all`.
    pub revoke_all_path: Option<String>,
    /// Longest time the gateway decides on a store snapshot it could not
    /// confirm current; past it protected routes answer 503 (default 60).
    #[serde(default = "defaults::max_staleness_s")]
    pub max_staleness_s: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIntrospection {
    /// `https://` endpoint of the authorization server.
    pub url: String,
    /// PEM trust anchors for the endpoint.
    pub ca: String,
    /// The gateway's client ID at the authorization server.
    pub client_id: String,
    /// File holding the client secret (mode 0600).
    pub client_secret_file: String,
    /// Issuer recorded for introspected tokens; a response naming another `iss` is refused.
    pub issuer: String,
    /// When set, the response's `aud` must contain one of these.
    #[serde(default)]
    pub audiences: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDecryptionKey {
    /// Matched against the JWE header's `kid` when both are present.
    pub kid: Option<String>,
    /// PKCS#8 PEM file of the private key (mode 0600).
    pub key: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; at least one.
    pub audiences: Vec<String>,
    /// A JWKS document on disk (re-read when it changes). Set this or `jwks_url`.
    pub jwks_file: Option<String>,
    /// A JWKS document over HTTPS, refreshed periodically and on an unknown `kid`.
    pub jwks_url: Option<String>,
    /// PEM trust anchors for `jwks_url` (required with it).
    pub jwks_ca: Option<String>,
    /// Seconds between JWKS refreshes (default 300).
    #[serde(default = "defaults::jwks_refresh_s")]
    pub jwks_refresh_s: u64,
    /// Fewest seconds between two fetches caused by an unknown `kid` (default 10).
    #[serde(default = "defaults::jwks_refetch_interval_s")]
    pub jwks_refetch_interval_s: u64,
    /// Allowed `alg` values; default EdDSA, ES256, ES384, PS256, RS256.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Require this `typ` header (e.g. `at+jwt`, RFC 9068).
    pub require_typ: Option<String>,
}
