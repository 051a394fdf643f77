//! The front end in one call: load → check → evaluate, collecting every diagnostic.
//! `check`, `eval`, the language server and later stages all start here.

use std::path::Path;

use crate::diagnostic::{Diagnostic, sort_diagnostics};
use crate::eval::{Evaluated, Fleet, evaluate, evaluate_each, sort_key};
use crate::model;
use crate::resolve::{Parses, Program, load_with};
use crate::source::FileSystem;
use crate::types::{Checked, check};

pub struct Analysis {
    pub program: Program,
    pub checked: Checked,
    /// `None` when parsing or checking found errors (evaluation needs a checked program),
    /// or when not kept ([`Keep`]).
    pub fleet: Option<Fleet>,
    /// The evaluated fleet as the typed model that later stages read (`None` as
    /// `fleet`, except that [`Keep::Model`] keeps it).
    pub model: Option<model::Fleet>,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// What an analysis keeps of the evaluated fleet once its diagnostics are known. The
/// diagnostics are the same whatever it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The evaluated data and the model (the language server reads both).
    Everything,
    /// The model only: each cluster's data is dropped once it is read.
    Model,
    /// Neither: each cluster is evaluated and read into the model for its diagnostics,
    /// then dropped, so memory grows with the cores rather than the fleet (`check`).
    Diagnostics,
}

/// Analyse `path` (a `.flt` file or a directory of them), keeping everything.
pub fn analyze(fs: &dyn FileSystem, path: &Path) -> Analysis {
    analyze_keeping(fs, path, Keep::Everything)
}

/// Analyse `path`, keeping of the evaluated fleet what `keep` says.
pub fn analyze_keeping(fs: &dyn FileSystem, path: &Path, keep: Keep) -> Analysis {
    on_own_thread(|| analyze_here(fs, path, keep, None))
}

/// [`analyze`], asking `parses` first for the tree of each of the user's files (the
/// language server's reparsed open documents).
pub fn analyze_with(fs: &dyn FileSystem, path: &Path, parses: &dyn Parses) -> Analysis {
    on_own_thread(|| analyze_here(fs, path, Keep::Everything, Some(parses)))
}

/// What [`analyze_each_cluster`] keeps of a fleet without errors.
pub struct EachCluster<T> {
    /// Sorted by name.
    pub channels: Vec<model::Channel>,
    /// What `each` made of every cluster's model, in the order of the clusters' ids.
    pub clusters: Vec<T>,
}

/// Analyse `path` as [`Keep::Model`] does, but give each cluster's model to `each` on
/// the thread that read it, keeping only what `each` returns: `eval` turns each
/// cluster into its text there, so the fleet's model is never held whole. The
/// analysis keeps no model; the clusters are `None` when it has errors.
pub fn analyze_each_cluster<T: Send>(
    fs: &dyn FileSystem,
    path: &Path,
    each: impl Fn(model::Cluster) -> T + Sync,
) -> (Analysis, Option<EachCluster<T>>) {
    on_own_thread(|| {
        let (program, checked, mut diagnostics) = front_end(fs, path, None);
        let clusters = if diagnostics.iter().any(Diagnostic::is_error) {
            None
        } else {
            let (read, problems) = evaluate_to_model(&program, &checked, &each);
            diagnostics.extend(problems);
            Some(read)
        };
        let analysis = finish(program, checked, diagnostics, None, None);
        let clusters = clusters.filter(|_| !analysis.has_errors());
        (analysis, clusters)
    })
}

/// `analyze` on a thread of its own. Checking and evaluation recurse over expression
/// trees (bounded by the scanner's limits); a dedicated thread gives them room that a
/// test or editor thread lacks.
fn on_own_thread<R: Send>(analyze: impl Fn() -> R + Sync) -> R {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("flotilla-analysis".into())
            .stack_size(ANALYSIS_STACK)
            .spawn_scoped(scope, &analyze)
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            // Without a thread, the analysis runs here.
            .unwrap_or_else(|_| analyze())
    })
}

/// Also the stack of each thread that evaluates clusters (`crate::eval`).
pub(crate) const ANALYSIS_STACK: usize = 256 << 20;

/// Load and check: the program, the checker's results, and both's diagnostics.
fn front_end(
    fs: &dyn FileSystem,
    path: &Path,
    parses: Option<&dyn Parses>,
) -> (Program, Checked, Vec<Diagnostic>) {
    let program = load_with(fs, path, parses);
    let checked = check(&program);
    let mut diagnostics = program.diagnostics.clone();
    diagnostics.extend(checked.diagnostics.iter().cloned());
    (program, checked, diagnostics)
}

fn finish(
    program: Program,
    checked: Checked,
    mut diagnostics: Vec<Diagnostic>,
    fleet: Option<Fleet>,
    model: Option<model::Fleet>,
) -> Analysis {
    sort_diagnostics(&mut diagnostics);
    Analysis {
        program,
        checked,
        fleet,
        model,
        diagnostics,
    }
}

fn analyze_here(
    fs: &dyn FileSystem,
    path: &Path,
    keep: Keep,
    parses: Option<&dyn Parses>,
) -> Analysis {
    let (program, checked, mut diagnostics) = front_end(fs, path, parses);
    let (fleet, model) = if diagnostics.iter().any(Diagnostic::is_error) {
        (None, None)
    } else if keep == Keep::Everything {
        let (fleet, problems) = evaluate(&program, &checked);
        diagnostics.extend(problems);
        let (model, problems) = model::Fleet::from_evaluated(&program, &fleet);
        diagnostics.extend(problems);
        (Some(fleet), Some(model))
    } else if keep == Keep::Model {
        let (read, problems) = evaluate_to_model(&program, &checked, &|cluster| cluster);
        diagnostics.extend(problems);
        let model = model::Fleet {
            channels: read.channels,
            clusters: read.clusters,
        };
        (None, Some(model))
    } else {
        let (_, problems) = evaluate_to_model(&program, &checked, &drop);
        diagnostics.extend(problems);
        (None, None)
    };
    finish(program, checked, diagnostics, fleet, model)
}

/// Each cluster evaluated and read into the model on the same thread, its data
/// dropped there and its model given to `each`. The model and the diagnostics are
/// those of `evaluate` then `model::Fleet::from_evaluated`, the diagnostics in the
/// same order: evaluation's, then the channels' model problems, then the clusters' in
/// the order of their ids.
fn evaluate_to_model<T: Send>(
    program: &Program,
    checked: &Checked,
    each: &(impl Fn(model::Cluster) -> T + Sync),
) -> (EachCluster<T>, Vec<Diagnostic>) {
    let reader = model::ClusterReader::new(program);
    let Evaluated {
        channels,
        mut clusters,
        mut diagnostics,
    } = evaluate_each(program, checked, |data| {
        (sort_key(&data, "id"), reader.read(&data).map(each))
    });
    let (channels, problems) = model::read_channels(&channels);
    diagnostics.extend(problems);
    clusters.sort_by(|(a, _), (b, _)| a.cmp(b));
    let mut kept = Vec::new();
    for (_, read) in clusters {
        match read {
            Ok(cluster) => kept.push(cluster),
            Err(d) => diagnostics.push(d),
        }
    }
    let read = EachCluster {
        channels,
        clusters: kept,
    };
    (read, diagnostics)
}
