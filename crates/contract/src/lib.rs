//! API contracts from OpenAPI 3.0/3.1 (INPUT-01…07, INPUT-09, INPUT-13,
//! OUTPUT-05, OUTPUT-10, OUTPUT-13, AUTHZ-02, AUTHZ-11, CONTRACT-02, CONTRACT-03).
//!
//! A document is loaded and compiled once: operations with their path
//! templates, security requirements, environments and owners; parameters
//! and bodies with precompiled JSON Schema validators; and shapes that say
//! which properties exist and how they are classified. Nothing is
//! interpreted per request: the gateway calls the checks on
//! [`Operation`] with the request's parts.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]
#![forbid(unsafe_code)]

mod document;
pub mod json;
pub mod media;
mod operation;
pub mod sensitive;
mod shape;

pub use document::Version;
pub use json::{JsonError, JsonLimits};
pub use operation::{
    Issue, Location, Operation, ParamOutcome, ResponseOutcome, ResponsePlan, ResponseViolation,
    Violation,
};
pub use shape::REDACTED;

use std::path::Path;
use std::sync::Arc;

/// A problem in the document, located by a JSON pointer into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("#{pointer}: {message}")]
pub struct ContractError {
    pub pointer: String,
    pub message: String,
}

impl ContractError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// Data classification labels (`x-classification`), lowest to highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Classification {
    Public,
    Internal,
    Pii,
    Secret,
}

impl Classification {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "internal" => Some(Self::Internal),
            "pii" => Some(Self::Pii),
            "secret" => Some(Self::Secret),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Pii => "pii",
            Self::Secret => "secret",
        }
    }
}

/// What undeclared body properties and query parameters get (INPUT-06).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownProperties {
    /// Removed before the upstream sees the request (default).
    Strip,
    /// The request is refused with 400 and a pointer to each.
    Reject,
}

/// Settings that shape how a document is compiled.
#[derive(Debug, Clone)]
pub struct Options {
    pub unknown_properties: UnknownProperties,
    pub json: JsonLimits,
    /// The header the gateway reads API keys from; `apiKey` schemes must name it.
    pub api_key_header: Option<String>,
    /// Strip response properties the response schema does not declare.
    pub strip_responses: bool,
    /// Validate JSON responses against their schema (502 on mismatch).
    pub validate_responses: bool,
    /// Sensitive parameter names (lower case) refused in URLs (DATA-01).
    pub sensitive_names: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            unknown_properties: UnknownProperties::Strip,
            json: JsonLimits::default(),
            api_key_header: None,
            strip_responses: true,
            validate_responses: false,
            sensitive_names: sensitive::DEFAULT_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// An operation's security requirement, from its `security` (or the
/// document's). AND within a requirement; alternatives must agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// No requirement (`security: []`, `[{}]`, or none declared): the
    /// config must opt out explicitly (AUTHN-06).
    None,
    Required {
        api_key: bool,
        token: bool,
        scopes: Vec<String>,
    },
}

/// A compiled contract.
#[derive(Debug)]
pub struct Contract {
    pub version: Version,
    pub title: String,
    pub operations: Vec<Arc<Operation>>,
}

/// Loads and compiles the document at `path`. Every problem found is
/// returned, each with its pointer.
pub fn load(path: &Path, options: &Options) -> Result<Contract, Vec<ContractError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ContractError::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        )]
    })?;
    compile(&text, options)
}

/// Compiles a document given as text (YAML or JSON).
pub fn compile(text: &str, options: &Options) -> Result<Contract, Vec<ContractError>> {
    let doc = document::Document::parse(text).map_err(|e| vec![e])?;
    operation::compile_all(&doc, options)
}
