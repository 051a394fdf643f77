//! The analyses the server keeps: one per root (a workspace folder, or the directory
//! of a document opened outside every folder), each the front end's [`Analysis`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lsp_types::{Position, Range};

use super::documents::{Documents, OverlayFs};
use super::paths::StdlibCache;
use super::scan::ScanLimits;
use crate::analysis::{Analysis, analyze_with};
use crate::resolve::{Parsed, Parses};
use crate::source::{FileId, SourceFile};
use crate::span::Span;
use crate::syntax::Reparser;

/// What changed since the last analysis.
#[derive(Default)]
pub(crate) struct Stale {
    everything: bool,
    paths: HashSet<PathBuf>,
}

impl Stale {
    pub(crate) fn path(&mut self, path: PathBuf) {
        self.paths.insert(path);
    }

    pub(crate) fn everything(&mut self) {
        self.everything = true;
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.everything && self.paths.is_empty()
    }

    pub(crate) fn contains(&self, path: &Path) -> bool {
        self.everything || self.paths.contains(path)
    }
}

pub(crate) struct RootAnalysis {
    pub root: PathBuf,
    pub analysis: Analysis,
}

#[derive(Default)]
pub(crate) struct Workspace {
    folders: Vec<PathBuf>,
    analyses: Vec<RootAnalysis>,
    limits: ScanLimits,
    /// Directories whose bounded walk was already reported to the user.
    reported: HashSet<PathBuf>,
    /// Each open document's last parse, which the next parses only what an edit changed.
    reparsers: Mutex<HashMap<PathBuf, Reparser>>,
}

impl Workspace {
    pub(crate) fn set_limits(&mut self, limits: ScanLimits) {
        self.limits = limits;
    }

    pub(crate) fn limits(&self) -> ScanLimits {
        self.limits
    }

    pub(crate) fn set_folders(&mut self, folders: Vec<PathBuf>) {
        self.folders = folders;
    }

    pub(crate) fn folders(&self) -> &[PathBuf] {
        &self.folders
    }

    /// Bring the analyses up to date: re-analyse the roots that contain or load a stale
    /// path, analyse new roots, forget roots no open document needs any more. Returns
    /// what the user should be told about walks a bound stopped (once per directory).
    pub(crate) fn update(
        &mut self,
        documents: &Documents,
        stdlib: &StdlibCache,
        stale: &Stale,
    ) -> Vec<String> {
        let fs = OverlayFs::new(documents, self.limits);
        let reparsers = self.reparsers.get_mut().unwrap_or_else(|p| p.into_inner());
        reparsers.retain(|path, _| documents.get(path).is_some());
        let parses = OpenDocuments {
            documents,
            reparsers: &self.reparsers,
        };
        let mut previous = std::mem::take(&mut self.analyses);
        for root in self.roots(documents, stdlib) {
            let kept = previous
                .iter()
                .position(|a| a.root == root)
                .map(|i| previous.swap_remove(i));
            let analysis = match kept {
                Some(kept) if !affects(stale, &kept) => kept.analysis,
                kept => {
                    // The old trees are the reparsers' too: once the old analysis is
                    // gone, a reparser changes its tree in place rather than copying it.
                    drop(kept);
                    analyze_with(&fs, &root, &parses)
                }
            };
            self.analyses.push(RootAnalysis { root, analysis });
        }
        let mut notes = Vec::new();
        for (dir, bound) in fs.bounded() {
            if self.reported.insert(dir.clone()) {
                notes.push(format!(
                    "flotilla: stopped reading {} after {bound}: only the files read and \
                     the open documents are analysed. Open a smaller folder (the fleet's \
                     directory), or list what to skip in a .gitignore or .ignore file.",
                    dir.display()
                ));
            }
        }
        notes
    }

    /// Workspace folders first, then the directories of documents outside them.
    fn roots(&self, documents: &Documents, stdlib: &StdlibCache) -> Vec<PathBuf> {
        let mut roots = self.folders.clone();
        let mut outside: Vec<PathBuf> = documents
            .paths()
            .filter(|p| !stdlib.contains(p) && !self.folders.iter().any(|f| p.starts_with(f)))
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        // Shallow directories first, so a nested one already covered is skipped.
        outside.sort_by_key(|d| (d.components().count(), d.clone()));
        for dir in outside {
            if !roots.iter().any(|r| dir.starts_with(r)) {
                roots.push(dir);
            }
        }
        roots
    }

    pub(crate) fn analyses(&self) -> impl Iterator<Item = &RootAnalysis> {
        self.analyses.iter()
    }

    /// The analysis that contains `path` (a front-end path), and the file's id in it.
    pub(crate) fn locate(&self, path: &Path) -> Option<(&Analysis, FileId)> {
        self.analyses.iter().find_map(|a| {
            a.analysis
                .program
                .sources
                .find(path)
                .map(|file| (&a.analysis, file))
        })
    }
}

/// Open documents are parsed by their reparsers; files on disk by the loader.
struct OpenDocuments<'a> {
    documents: &'a Documents,
    reparsers: &'a Mutex<HashMap<PathBuf, Reparser>>,
}

impl Parses for OpenDocuments<'_> {
    fn parse(&self, file: FileId, path: &Path, text: &str) -> Option<Parsed> {
        self.documents.get(path)?;
        let mut reparsers = self.reparsers.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            reparsers
                .entry(path.to_path_buf())
                .or_default()
                .parse(file, text),
        )
    }
}

fn affects(stale: &Stale, analysis: &RootAnalysis) -> bool {
    stale.everything
        || stale.paths.iter().any(|p| {
            p.starts_with(&analysis.root) || analysis.analysis.program.sources.find(p).is_some()
        })
}

/// A span as a protocol range (0-based lines, UTF-16 columns).
pub(crate) fn range(file: &SourceFile, span: Span) -> Range {
    let position = |offset: u32| {
        let p = file.lines.position(&file.text, offset as usize);
        Position::new(p.line - 1, p.utf16_column)
    };
    Range::new(position(span.start), position(span.end))
}

/// A protocol position as a byte offset (clamped to the text).
pub(crate) fn offset(file: &SourceFile, position: Position) -> usize {
    file.lines.offset_of_utf16(
        &file.text,
        position.line as usize,
        position.character as usize,
    )
}
