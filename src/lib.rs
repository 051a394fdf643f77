//! flotilla: typed fleet definitions for Kubernetes clusters on AWS.
//!
//! The pipeline, one module per stage: [`syntax`] (parse) → [`resolve`] (modules,
//! imports) → [`types`] (check) → [`eval`] (the evaluated [`eval::Fleet`]) →
//! [`model`] (the typed [`model::Fleet`], the edge between the front end and the rest) →
//! [`render`] (one cluster's artifacts from a config set) → [`compile`] (the whole
//! fleet, in parallel, written atomically).
#![forbid(unsafe_code)]
// A panic is never the answer to bad input: failures are errors or diagnostics. Tests
// may unwrap; an `#[allow]` elsewhere carries the proof that it cannot fail.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Diagnostics travel in `Err` through the front end; they are the cold path and
// boxing every one would only add noise.
#![allow(clippy::result_large_err)]

pub mod analysis;
pub mod apply;
pub mod builtins;
pub mod cli;
pub mod codes;
pub mod compile;
pub mod diagnostic;
pub mod diff;
mod digest;
mod dns;
pub mod eval;
pub mod format;
pub mod git;
pub mod live;
pub mod lsp;
pub mod model;
pub mod plan;
pub mod redact;
pub mod registry;
pub mod render;
pub mod resolve;
pub mod sim;
pub mod source;
pub mod span;
pub mod syntax;
pub mod types;
mod units;

/// The integration tests' scratch directories, for unit tests that need files on disk.
#[cfg(test)]
#[path = "../tests/support/files.rs"]
mod test_files;
