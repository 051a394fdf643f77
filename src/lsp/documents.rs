//! Open editor buffers, and the file system the front end reads through: buffers
//! first, the disk for everything else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lsp_types::{TextDocumentContentChangeEvent, Uri};

use super::scan::{Bound, ScanLimits, scan};
use crate::source::{DiskFs, FileSystem, normalize};
use crate::span::LineIndex;

pub(crate) struct Document {
    /// As the client spelled it, so published diagnostics match its buffer.
    pub uri: Uri,
    pub version: i32,
    pub text: String,
}

/// Open documents by normalised path.
#[derive(Default)]
pub(crate) struct Documents {
    open: HashMap<PathBuf, Document>,
}

impl Documents {
    pub(crate) fn open(&mut self, path: PathBuf, document: Document) {
        self.open.insert(path, document);
    }

    pub(crate) fn close(&mut self, path: &Path) {
        self.open.remove(path);
    }

    pub(crate) fn get(&self, path: &Path) -> Option<&Document> {
        self.open.get(path)
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.open.keys()
    }

    /// Apply `didChange` edits in order. Ranges are in UTF-16 units, as the protocol says.
    pub(crate) fn change(
        &mut self,
        path: &Path,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
    ) -> Result<(), String> {
        let document = self
            .open
            .get_mut(path)
            .ok_or_else(|| format!("`{}` is not open", path.display()))?;
        for change in changes {
            match change.range {
                None => document.text = change.text,
                Some(range) => {
                    let lines = LineIndex::new(&document.text);
                    let offset = |p: lsp_types::Position| {
                        lines.offset_of_utf16(&document.text, p.line as usize, p.character as usize)
                    };
                    let (start, end) = (offset(range.start), offset(range.end));
                    if start > end {
                        return Err(format!("change range ends before it starts: {range:?}"));
                    }
                    document.text.replace_range(start..end, &change.text);
                }
            }
        }
        document.version = version;
        Ok(())
    }
}

/// The front end's view of the workspace: open buffers over the disk, whose
/// directories are walked within bounds ([`super::scan`]).
pub(crate) struct OverlayFs<'a> {
    documents: &'a Documents,
    limits: ScanLimits,
    /// Directories whose walk a bound stopped early, with that bound.
    bounded: Mutex<Vec<(PathBuf, Bound)>>,
}

impl<'a> OverlayFs<'a> {
    pub(crate) fn new(documents: &'a Documents, limits: ScanLimits) -> OverlayFs<'a> {
        OverlayFs {
            documents,
            limits,
            bounded: Mutex::new(Vec::new()),
        }
    }

    /// The directories whose walk stopped at a bound, and the bound.
    pub(crate) fn bounded(self) -> Vec<(PathBuf, Bound)> {
        self.bounded
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl FileSystem for OverlayFs<'_> {
    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        match self.documents.get(&normalize(path)) {
            Some(document) => Some(document.text.as_bytes().to_vec()),
            None => DiskFs.read(path),
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        let dir = normalize(path);
        DiskFs.is_dir(path)
            || self
                .documents
                .paths()
                .any(|p| p.starts_with(&dir) && *p != dir)
    }

    fn flt_files(&self, dir: &Path) -> Vec<PathBuf> {
        let root = normalize(dir);
        let scan = scan(dir, &self.limits);
        if let Some(bound) = scan.stopped_at {
            self.bounded
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((root.clone(), bound));
        }
        let mut files: Vec<PathBuf> = scan.files.iter().map(|p| normalize(p)).collect();
        // Open buffers (saved or not) are always part of the workspace, whatever the
        // bounds: they are what the user is looking at.
        files.extend(
            self.documents
                .paths()
                .filter(|p| p.starts_with(&root) && p.extension().is_some_and(|e| e == "flt"))
                .cloned(),
        );
        files.sort();
        files.dedup();
        files
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use lsp_types::{Position, Range};

    use super::*;

    fn edit(range: ((u32, u32), (u32, u32)), text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: Some(Range::new(
                Position::new(range.0.0, range.0.1),
                Position::new(range.1.0, range.1.1),
            )),
            range_length: None,
            text: text.into(),
        }
    }

    #[test]
    fn incremental_changes_count_utf16_units() {
        let mut documents = Documents::default();
        let path = PathBuf::from("/w/a.flt");
        documents.open(
            path.clone(),
            Document {
                uri: Uri::from_str("file:///w/a.flt").unwrap(),
                version: 1,
                text: "// 𝄞 é\nlet x = 1\n".into(),
            },
        );
        // `𝄞` is two UTF-16 units: column 7 is after `é`.
        documents
            .change(
                &path,
                2,
                vec![edit(((0, 7), (0, 7)), "!"), edit(((1, 8), (1, 9)), "22")],
            )
            .unwrap();
        let document = documents.get(&path).unwrap();
        assert_eq!(document.text, "// 𝄞 é!\nlet x = 22\n");
        assert_eq!(document.version, 2);
    }

    #[test]
    fn overlay_lists_unsaved_buffers() {
        let mut documents = Documents::default();
        let dir = std::env::temp_dir().join("flotilla-overlay-test-nonexistent");
        let path = dir.join("new.flt");
        documents.open(
            path.clone(),
            Document {
                uri: Uri::from_str("file:///x").unwrap(),
                version: 0,
                text: "let a = 1".into(),
            },
        );
        let fs = OverlayFs::new(&documents, ScanLimits::default());
        assert!(fs.is_dir(&dir));
        assert_eq!(fs.flt_files(&dir), vec![path.clone()]);
        assert_eq!(fs.read(&path).unwrap(), b"let a = 1");
    }
}
