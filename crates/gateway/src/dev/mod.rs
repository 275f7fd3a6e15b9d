//! No checklist control: development-only material, out of the data plane's room: the
//! development PKI (`pki`) and the demo/recording backend (`backend`) that
//! the quickstart and the tests run. Nothing here is on a request's path.

pub mod backend;
pub mod pki;
