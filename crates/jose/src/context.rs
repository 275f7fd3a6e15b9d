//! The gateway context token: what the gateway tells a backend about a
//! request it has authenticated (DESIGN.md "Identity forwarded to
//! backends"; AUTHN-09/12, AUTHZ-03/04/06, DATA-05).
//!
//! A compact JWS, `alg: EdDSA`, `typ: portcullis-context+jwt`, signed with
//! the gateway's own key (published as a JWKS), minted per upstream request:
//! audience = that backend, lifetime at most [`MAX_LIFETIME_S`], bound to
//! the request's correlation id. Optionally encrypted to the backend
//! (nested JWE, `cty: JWT`).

use serde::{Deserialize, Serialize};

/// Request header carrying the token unless configured otherwise.
pub const DEFAULT_HEADER: &str = "portcullis-context";
/// JWS `typ` of a context token; a token of another type is refused.
pub const TYP: &str = "portcullis-context+jwt";
/// Longest lifetime a context token may have, in seconds.
pub const MAX_LIFETIME_S: i64 = 30;

/// RFC 8705 confirmation: the client certificate the caller presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// The claims of a context token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextClaims {
    /// The gateway (configured issuer name).
    pub iss: String,
    /// The one backend this token is for.
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token, for replay detection.
    pub jti: String,
    /// The request's correlation id; the backend compares it with the
    /// correlation header of the request carrying the token.
    pub correlation_id: String,
    /// How the caller was authenticated: `api_key`, `bearer`, `mtls`; empty
    /// for a public operation.
    #[serde(default)]
    pub amr: Vec<String>,
    /// The calling application, when one was identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The end user (`sub` of the verified bearer token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Issuer of the verified bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_iss: Option<String>,
    /// `client_id` of the verified bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Granted scopes of the verified bearer token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The operation the gateway matched (OpenAPI `operationId` or route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The client certificate presented to the gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}
