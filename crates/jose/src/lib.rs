//! JOSE pieces shared by the gateway and the backend `guard`: nested JWE
//! (decrypting client tokens, encrypting context tokens) and the claims of
//! the gateway-signed context token that backends verify.

#![forbid(unsafe_code)]

pub mod context;
pub mod jwe;
