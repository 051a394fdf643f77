//! flotilla: typed fleet definitions for Kubernetes clusters on AWS.
#![forbid(unsafe_code)]

pub mod diagnostic;
pub mod format;
pub mod source;
pub mod span;
pub mod syntax;
