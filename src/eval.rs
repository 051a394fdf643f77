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
    let Evaluated {
        channels,
        mut clusters,
        diagnostics,
    } = evaluate_each(program, checked, |data| data);
    clusters.sort_by_key(|c| sort_key(c, "id"));
    (Fleet { channels, clusters }, diagnostics)
}

/// What [`evaluate_each`] gives: the channels, and what `then` made of each cluster.
pub struct Evaluated<T> {
    /// Sorted by name.
    pub channels: Vec<Data>,
    /// In declaration order; a cluster that failed to evaluate is left out.
    pub clusters: Vec<T>,
    /// Channels' and clusters' evaluation errors, in that order.
    pub diagnostics: Vec<Diagnostic>,
}

/// As [`evaluate`], but each cluster's data goes through `then` on the thread that
/// evaluated it, and only what `then` returns is kept: a caller that wants a
/// cluster's model or its diagnostics does not hold the whole fleet's data.
pub fn evaluate_each<T: Send>(
    program: &Program,
    checked: &Checked,
    then: impl Fn(Data) -> T + Sync,
) -> Evaluated<T> {
    let evaluator = interp::Evaluator::new(program, checked);
    let mut diagnostics = Vec::new();
    let mut channels = Vec::new();
    for index in 0..checked.decls.channels.len() {
        match evaluator.channel(ChannelId(index as u32)) {
            Ok(data) => channels.push(data),
            Err(d) => diagnostics.push(d),
        }
    }
    channels.sort_by_key(|c| sort_key(c, "name"));
    let mut decls = Vec::new();
    for module in program.module_ids() {
        let m = program.module(module);
        if m.is_std {
            continue;
        }
        for item in &m.ast.items {
            if let Item::Cluster(decl) = item {
                decls.push((module, decl));
            }
        }
    }
    // Clusters evaluate independently of each other: each run of them gets an
    // evaluator of its own (values are reference-counted per thread).
    let results = in_runs(&decls, |run| {
        let evaluator = interp::Evaluator::new(program, checked);
        run.iter()
            .map(|(module, decl)| evaluator.cluster(*module, decl).map(&then))
            .collect()
    });
    let mut clusters = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(kept) => clusters.push(kept),
            Err(d) => diagnostics.push(d),
        }
    }
    Evaluated {
        channels,
        clusters,
        diagnostics,
    }
}

/// The text of a record's `field` (its name or id), by which channels and clusters are
/// sorted; empty when there is none.
pub fn sort_key(data: &Data, field: &str) -> String {
    data.get(field)
        .and_then(Data::as_str)
        .unwrap_or("")
        .to_string()
}

/// `each` over `items` split into runs of consecutive items, one run per core, each on a
/// thread of its own; the results come back in the order of `items`. Few items are
/// done here: below [`ITEMS_PER_THREAD`] a thread costs more than it saves.
pub(crate) fn in_runs<T: Sync, R: Send>(
    items: &[T],
    each: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let threads = cores.min(items.len() / ITEMS_PER_THREAD).max(1);
    if threads == 1 {
        return each(items);
    }
    let each = &each;
    std::thread::scope(|scope| {
        let runs: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|run| {
                std::thread::Builder::new()
                    .name("flotilla-run".into())
                    // Evaluation recurses over expression trees, as on the analysis thread.
                    .stack_size(crate::analysis::ANALYSIS_STACK)
                    .spawn_scoped(scope, move || each(run))
                    // Without a thread, the run is done here.
                    .map_err(|_| run)
            })
            .collect();
        runs.into_iter()
            .flat_map(|run| match run {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(run) => each(run),
            })
            .collect()
    })
}

const ITEMS_PER_THREAD: usize = 8;
