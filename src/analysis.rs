//! The front end in one call: load → check → evaluate, collecting every diagnostic.
//! `check`, `eval`, the language server and later stages all start here.

use std::path::Path;

use crate::diagnostic::{Diagnostic, sort_diagnostics};
use crate::eval::{Fleet, evaluate};
use crate::model;
use crate::resolve::{Parses, Program, load_with};
use crate::source::FileSystem;
use crate::types::{Checked, check};

pub struct Analysis {
    pub program: Program,
    pub checked: Checked,
    /// `None` when parsing or checking found errors (evaluation needs a checked program).
    pub fleet: Option<Fleet>,
    /// The evaluated fleet as the typed model that later stages read (`None` with `fleet`).
    pub model: Option<model::Fleet>,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Analyse `path` (a `.flt` file or a directory of them).
pub fn analyze(fs: &dyn FileSystem, path: &Path) -> Analysis {
    analyze_with(fs, path, None)
}

/// [`analyze`], asking `parses` first for the tree of each of the user's files.
pub fn analyze_with(fs: &dyn FileSystem, path: &Path, parses: Option<&dyn Parses>) -> Analysis {
    // Checking and evaluation recurse over expression trees (bounded by the scanner's
    // limits); a dedicated thread gives them room that a test or editor thread lacks.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("flotilla-analysis".into())
            .stack_size(ANALYSIS_STACK)
            .spawn_scoped(scope, || analyze_here(fs, path, parses))
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .unwrap_or_else(|_| analyze_here(fs, path, parses))
    })
}

/// Also the stack of each thread that evaluates clusters (`crate::eval`).
pub(crate) const ANALYSIS_STACK: usize = 256 << 20;

fn analyze_here(fs: &dyn FileSystem, path: &Path, parses: Option<&dyn Parses>) -> Analysis {
    let program = load_with(fs, path, parses);
    let checked = check(&program);
    let mut diagnostics = program.diagnostics.clone();
    diagnostics.extend(checked.diagnostics.iter().cloned());
    let (fleet, model) = if diagnostics.iter().any(Diagnostic::is_error) {
        (None, None)
    } else {
        let (fleet, problems) = evaluate(&program, &checked);
        diagnostics.extend(problems);
        let (model, problems) = model::Fleet::from_evaluated(&program, &fleet);
        diagnostics.extend(problems);
        (Some(fleet), Some(model))
    };
    sort_diagnostics(&mut diagnostics);
    Analysis {
        program,
        checked,
        fleet,
        model,
        diagnostics,
    }
}
