//! JOSE pieces shared by the gateway and the backend `guard`: nested JWE
//! (decrypting client tokens, encrypting context tokens) and the claims of
//! the gateway-signed context token that backends verify.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]
#![forbid(unsafe_code)]

pub mod context;
pub mod jwe;
