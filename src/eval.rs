//! Evaluation: the checked program becomes the [`Fleet`], every cluster with all
//! defaults filled in and every `check` run.

mod data;
mod interp;

use serde::Serialize;

use crate::diagnostic::Diagnostic;
use crate::resolve::Program;
use crate::syntax::ast::Item;
use crate::types::{ChannelId, Checked};

pub use data::{Data, Quantity, Record, SecretValue, format_duration};

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

/// `number` `unit` as milliseconds; `None` if not whole or out of range.
pub fn parse_duration_ms(number: &str, unit: &str) -> Option<i64> {
    let factor: i128 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    i64::try_from(data::scale_decimal(number, factor)?).ok()
}

/// The builtin `is_dns_label`: an RFC 1035 label, a lower-case letter first, then
/// letters, digits and `-`, not ending in `-`, at most 63 characters. The stdlib checks
/// cluster ids and node pool names with it.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z'))
        && bytes.len() <= 63
        && !s.ends_with('-')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}
