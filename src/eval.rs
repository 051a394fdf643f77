//! Evaluation: the checked program becomes the [`Fleet`], every cluster with all
//! defaults filled in and every `check` run.

mod data;
mod interp;

use serde::Serialize;

use crate::diagnostic::Diagnostic;
use crate::resolve::Program;
use crate::syntax::ast::Item;
use crate::types::{ChannelId, Checked};

pub use crate::units::format_duration;
pub use data::{Data, Quantity, Record, SecretValue};

/// The evaluated fleet: channels and clusters, sorted by name and id.
#[derive(Clone, Debug, Serialize)]
pub struct Fleet {
    pub channels: Vec<Data>,
    pub clusters: Vec<Data>,
}

impl Fleet {
    pub fn cluster(&self, id: &str) -> Option<&Data> {
        self.clusters
            .iter()
            .find(|c| c.get("id").and_then(Data::as_str) == Some(id))
    }
}

/// Evaluate every channel and every cluster declared outside the stdlib. A cluster
/// that fails to evaluate is reported and left out; the others are still evaluated.
pub fn evaluate(program: &Program, checked: &Checked) -> (Fleet, Vec<Diagnostic>) {
    let evaluator = interp::Evaluator::new(program, checked);
    let mut diagnostics = Vec::new();
    let mut channels = Vec::new();
    for index in 0..checked.decls.channels.len() {
        match evaluator.channel(ChannelId(index as u32)) {
            Ok(data) => channels.push(data),
            Err(d) => diagnostics.push(d),
        }
    }
    let mut clusters = Vec::new();
    for module in program.module_ids() {
        let m = program.module(module);
        if m.is_std {
            continue;
        }
        for item in &m.ast.items {
            if let Item::Cluster(decl) = item {
                match evaluator.cluster(module, decl) {
                    Ok(data) => clusters.push(data),
                    Err(d) => diagnostics.push(d),
                }
            }
        }
    }
    let key = |d: &Data, field: &str| {
        d.get(field)
            .and_then(Data::as_str)
            .unwrap_or("")
            .to_string()
    };
    channels.sort_by_key(|c| key(c, "name"));
    clusters.sort_by_key(|c| key(c, "id"));
    (Fleet { channels, clusters }, diagnostics)
}
