//! flotilla: typed fleet definitions for Kubernetes clusters on AWS.
//!
//! The pipeline, one module per stage: [`syntax`] (parse) → [`resolve`] (modules,
//! imports) → [`types`] (check) → [`eval`] (the evaluated [`eval::Fleet`]).
#![forbid(unsafe_code)]

pub mod analysis;
pub mod cli;
mod codes;
pub mod diagnostic;
pub mod eval;
pub mod format;
pub mod lsp;
pub mod registry;
pub mod resolve;
pub mod source;
pub mod span;
pub mod syntax;
pub mod types;
