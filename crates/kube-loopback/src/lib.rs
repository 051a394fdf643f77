#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod apply;
mod catalog;
mod discovery;
mod eviction;
mod faults;
mod fields;
mod patch;
mod router;
mod selectors;
mod server;
mod state;
mod status;
mod store;
mod validation;
mod verbs;

pub use catalog::{ResourceType, Scope};
pub use faults::Failure;
pub use server::{LoopbackApi, RecordedRequest, SeedError};
