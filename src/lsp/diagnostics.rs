//! The front end's diagnostics as protocol diagnostics, grouped by file.

use std::collections::HashMap;
use std::path::PathBuf;

use lsp_types::{DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString};

use super::paths::StdlibCache;
use super::workspace::{Workspace, range};
use crate::diagnostic::{Diagnostic, Label, Severity};
use crate::resolve::Program;

pub(crate) type FileDiagnostics = HashMap<PathBuf, Vec<lsp_types::Diagnostic>>;

/// Every diagnostic of every analysis, by the file it points at. Stdlib files are left
/// out: users cannot fix them, and their editors do not show them.
pub(crate) fn collect(workspace: &Workspace, stdlib: &mut StdlibCache) -> FileDiagnostics {
    let mut out = FileDiagnostics::new();
    for root in workspace.analyses() {
        let program = &root.analysis.program;
        for diagnostic in &root.analysis.diagnostics {
            let Some(primary) = &diagnostic.primary else {
                continue;
            };
            let path = &program.sources.get(primary.file).path;
            if StdlibCache::is_stdlib(path) {
                continue;
            }
            let converted = convert(program, diagnostic, primary, stdlib);
            // Two roots may load the same file.
            let list = out.entry(path.clone()).or_default();
            if !list.contains(&converted) {
                list.push(converted);
            }
        }
    }
    out
}

fn convert(
    program: &Program,
    diagnostic: &Diagnostic,
    primary: &Label,
    stdlib: &mut StdlibCache,
) -> lsp_types::Diagnostic {
    let mut message = diagnostic.message.clone();
    if !primary.message.is_empty() {
        message.push('\n');
        message.push_str(&primary.message);
    }
    if let Some(help) = &diagnostic.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let related: Vec<DiagnosticRelatedInformation> = diagnostic
        .secondary
        .iter()
        .filter_map(|label| {
            let file = program.sources.get(label.file);
            Some(DiagnosticRelatedInformation {
                location: Location::new(stdlib.uri(&file.path)?, range(file, label.span)),
                message: label.message.clone(),
            })
        })
        .collect();
    lsp_types::Diagnostic {
        range: range(program.sources.get(primary.file), primary.span),
        severity: Some(match diagnostic.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(diagnostic.code.to_string())),
        source: Some("flotilla".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}
