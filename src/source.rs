//! Where source text comes from. The front end reads files only through [`FileSystem`],
//! so tests and the language server can feed it in-memory text.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::span::LineIndex;

/// Read-only access to `.flt` sources.
pub trait FileSystem: Send + Sync {
    /// The file's bytes, or `None` if it does not exist or is not a file.
    fn read(&self, path: &Path) -> Option<Vec<u8>>;
    fn is_dir(&self, path: &Path) -> bool;
    /// `.flt` files under `dir`, recursively, sorted by path.
    fn flt_files(&self, dir: &Path) -> Vec<PathBuf>;
}

/// The real disk. The empty path (what [`normalize`] makes of `sub/..`) is the current
/// directory.
pub struct DiskFs;

impl FileSystem for DiskFs {
    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let path = on_disk(path);
        if !path.is_file() {
            return None;
        }
        std::fs::read(path).ok()
    }

    fn is_dir(&self, path: &Path) -> bool {
        on_disk(path).is_dir()
    }

    /// `dir` itself is followed if it is a symlink; symlinked directories below it are
    /// not (a link to `..` or `/` would make the walk endless), symlinked `.flt` files
    /// are listed. A directory reached twice (a bind mount of its own parent) is
    /// walked once.
    fn flt_files(&self, dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Some(key) = dir_key(on_disk(&dir)) else {
                continue;
            };
            if !seen.insert(key) {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(on_disk(&dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let hidden = name
                    .to_str()
                    .is_some_and(|n| n.starts_with('.') || n == "target");
                if hidden {
                    continue;
                }
                // `dir.join` keeps the caller's form of the path (`""` stays relative).
                let path = dir.join(&name);
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let is_flt = path.extension().is_some_and(|e| e == "flt");
                if kind.is_dir() {
                    stack.push(path);
                } else if is_flt && (kind.is_file() || on_disk(&path).is_file()) {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }
}

/// The path to hand to the operating system: the empty path is the current directory.
fn on_disk(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// What identifies a directory however it is reached.
#[cfg(unix)]
fn dir_key(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn dir_key(dir: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(dir).ok()
}

/// Files held in memory, keyed by normalised path. Used by tests and the language
/// server (open editor buffers over the disk).
#[derive(Default, Clone)]
pub struct MemoryFs {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemoryFs {
    pub fn new() -> MemoryFs {
        MemoryFs::default()
    }

    pub fn insert(&mut self, path: impl AsRef<Path>, text: impl Into<Vec<u8>>) {
        self.files.insert(normalize(path.as_ref()), text.into());
    }

    pub fn remove(&mut self, path: &Path) {
        self.files.remove(&normalize(path));
    }
}

impl FileSystem for MemoryFs {
    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.files.get(&normalize(path)).cloned()
    }

    fn is_dir(&self, path: &Path) -> bool {
        let dir = normalize(path);
        self.files.keys().any(|p| p.starts_with(&dir) && *p != dir)
    }

    fn flt_files(&self, dir: &Path) -> Vec<PathBuf> {
        let dir = normalize(dir);
        self.files
            .keys()
            .filter(|p| p.starts_with(&dir) && p.extension().is_some_and(|e| e == "flt"))
            .cloned()
            .collect()
    }
}

/// Lexically normalise a path: drop `.`, fold `..` where possible.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                match last {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    Some(Component::RootDir) => {}
                    _ => out.push(".."),
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FileId(pub u32);

#[derive(Clone)]
pub struct SourceFile {
    /// The path as shown to users (relative where the user gave a relative path).
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    pub lines: LineIndex,
}

/// All files read in one run, so diagnostics can show their text.
#[derive(Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, name: String, path: PathBuf, text: String) -> FileId {
        let lines = LineIndex::new(&text);
        self.files.push(SourceFile {
            name,
            path,
            text,
            lines,
        });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        let path = normalize(path);
        self.files
            .iter()
            .position(|f| f.path == path)
            .map(|i| FileId(i as u32))
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_parent_directories() {
        assert_eq!(
            normalize(Path::new("a/./b/../c.flt")),
            PathBuf::from("a/c.flt")
        );
        assert_eq!(normalize(Path::new("../x/../y")), PathBuf::from("../y"));
    }
}
