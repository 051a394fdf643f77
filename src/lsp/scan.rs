//! The workspace scan: which `.flt` files on disk belong to a root, read within bounds.
//!
//! An editor may open the language server on a huge directory (a home directory, or
//! `/`): walking all of it before answering left the server unresponsive for most of a
//! minute and took gigabytes. The walk therefore skips directories that never hold a
//! fleet (hidden ones such as `.git` and `.flotilla`, `target`, `node_modules`) and
//! what `.gitignore` and `.ignore` files exclude, goes breadth first (files near the
//! root are kept when a bound is hit), and stops at [`ScanLimits`]. Open documents are
//! not part of the walk: they are always analysed, whatever the bounds.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Directory names never walked, besides hidden ones.
const SKIPPED_DIRS: [&str; 2] = ["target", "node_modules"];

/// Ignore files read in every walked directory.
const IGNORE_FILES: [&str; 2] = [".gitignore", ".ignore"];

/// How much of the disk one scan may look at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ScanLimits {
    /// `.flt` files listed.
    pub files: usize,
    /// Total size of the listed `.flt` files.
    pub bytes: u64,
    /// Directory entries looked at (files of any kind and directories).
    pub entries: usize,
}

impl Default for ScanLimits {
    fn default() -> ScanLimits {
        ScanLimits {
            files: 2_000,
            bytes: 32 * 1024 * 1024,
            entries: 100_000,
        }
    }
}

/// Which bound stopped a scan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Bound {
    Files(usize),
    Bytes(u64),
    Entries(usize),
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Files(n) => write!(f, "{n} .flt files"),
            Bound::Bytes(n) => write!(f, "{} MiB of .flt files", n / (1024 * 1024)),
            Bound::Entries(n) => write!(f, "{n} directory entries"),
        }
    }
}

/// The `.flt` files a scan found (sorted), and the bound that stopped it early, if any.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub files: Vec<PathBuf>,
    pub stopped_at: Option<Bound>,
}

/// `.flt` files under `root`, breadth first, within `limits`. Symlinked directories are
/// not followed (a link to `..` or `/` would make the walk endless); symlinked `.flt`
/// files are listed.
pub(crate) fn scan(root: &Path, limits: &ScanLimits) -> Scan {
    let mut found = Scan::default();
    let mut bytes = 0u64;
    let mut entries_seen = 0usize;
    let mut queue = VecDeque::from([(root.to_path_buf(), Rc::new(Vec::<Rule>::new()))]);
    'walk: while let Some((dir, inherited)) = queue.pop_front() {
        let rules = rules_for(&dir, &inherited);
        let Ok(entries) = std::fs::read_dir(on_disk(&dir)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            entries_seen += 1;
            if entries_seen > limits.entries {
                found.stopped_at = Some(Bound::Entries(limits.entries));
                break 'walk;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let path = dir.join(name);
            if kind.is_dir() {
                let skipped = name.starts_with('.') || SKIPPED_DIRS.contains(&name);
                if !skipped && !ignored(&rules, root, &path, true) {
                    queue.push_back((path, Rc::clone(&rules)));
                }
                continue;
            }
            if !name.ends_with(".flt") || name.starts_with('.') {
                continue;
            }
            let Ok(metadata) = std::fs::metadata(on_disk(&path)) else {
                continue;
            };
            if !metadata.is_file() || ignored(&rules, root, &path, false) {
                continue;
            }
            if found.files.len() == limits.files {
                found.stopped_at = Some(Bound::Files(limits.files));
                break 'walk;
            }
            if bytes + metadata.len() > limits.bytes {
                found.stopped_at = Some(Bound::Bytes(limits.bytes));
                break 'walk;
            }
            bytes += metadata.len();
            found.files.push(path);
        }
    }
    found.files.sort();
    found
}

/// The empty path is the current directory.
fn on_disk(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// One line of an ignore file, in the subset read here: names and paths with `*` and
/// `?`, a trailing `/` for directories only, a `/` before the end anchoring the pattern
/// to the ignore file's directory. Negations (`!`) are not read, so a file an ignore
/// file re-includes stays skipped: the scan errs on the side of reading less.
#[derive(Clone, Debug)]
struct Rule {
    /// Directory of the ignore file.
    base: PathBuf,
    pattern: String,
    anchored: bool,
    directories_only: bool,
}

/// The rules that apply inside `dir`: the inherited ones, then its own ignore files'.
fn rules_for(dir: &Path, inherited: &Rc<Vec<Rule>>) -> Rc<Vec<Rule>> {
    let mut own = Vec::new();
    for file in IGNORE_FILES {
        let Ok(text) = std::fs::read_to_string(on_disk(&dir.join(file))) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let directories_only = line.ends_with('/');
            let line = line.trim_end_matches('/');
            let line = line.strip_prefix("**/").unwrap_or(line);
            let anchored = line.contains('/');
            let pattern = line.trim_start_matches('/').to_string();
            if !pattern.is_empty() {
                own.push(Rule {
                    base: dir.to_path_buf(),
                    pattern,
                    anchored,
                    directories_only,
                });
            }
        }
    }
    if own.is_empty() {
        return Rc::clone(inherited);
    }
    let mut rules: Vec<Rule> = inherited.iter().cloned().collect();
    rules.extend(own);
    Rc::new(rules)
}

fn ignored(rules: &[Rule], root: &Path, path: &Path, is_dir: bool) -> bool {
    rules.iter().any(|rule| {
        if rule.directories_only && !is_dir {
            return false;
        }
        if rule.anchored {
            let base = if rule.base.starts_with(root) {
                &rule.base
            } else {
                root
            };
            path.strip_prefix(base)
                .ok()
                .and_then(Path::to_str)
                .is_some_and(|relative| wildcard(&rule.pattern, relative))
        } else {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|name| wildcard(&rule.pattern, name))
        }
    })
}

/// `*` matches any run of characters other than `/`, `?` one such character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Classic two-pointer matching with backtracking to the last `*`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if (c == '?' && text[t] != '/') || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) if text[star_t] != '/' => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                _ => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_files::TempDir;

    #[test]
    fn wildcards_stay_within_one_path_part() {
        assert!(wildcard("*.flt", "a.flt"));
        assert!(wildcard("gen-?", "gen-1"));
        assert!(wildcard("build", "build"));
        assert!(!wildcard("*.flt", "a.fltx"));
        assert!(!wildcard("*.flt", "dir/a.flt"));
        assert!(wildcard("dir/*.flt", "dir/a.flt"));
        assert!(!wildcard("gen-?", "gen-12"));
    }

    fn tree(name: &str, files: &[(&str, &str)]) -> TempDir {
        let dir = TempDir::new(&format!("scan-{name}"));
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn relative(root: &Path, scan: &Scan) -> Vec<String> {
        scan.files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn skipped_and_ignored_directories_are_not_walked() {
        let root = tree(
            "ignore",
            &[
                ("a.flt", ""),
                ("sub/b.flt", ""),
                ("sub/gen.flt", ""),
                ("sub/.gitignore", "gen.flt\n"),
                (".gitignore", "# comment\n/build/\nscratch-*\n"),
                ("build/c.flt", ""),
                ("x/build/d.flt", ""),
                ("scratch-1/e.flt", ""),
                (".git/f.flt", ""),
                ("target/g.flt", ""),
                ("node_modules/h.flt", ""),
                (".flotilla/i.flt", ""),
            ],
        );
        let found = scan(&root, &ScanLimits::default());
        assert_eq!(
            relative(&root, &found),
            ["a.flt", "sub/b.flt", "x/build/d.flt"]
        );
        assert_eq!(found.stopped_at, None);
    }

    #[test]
    fn a_bound_stops_the_walk_keeping_files_near_the_root() {
        let root = tree(
            "bound",
            &[
                ("deep/deeper/z.flt", "let z = 1\n"),
                ("b.flt", "let b = 1\n"),
                ("a.flt", "let a = 1\n"),
                ("deep/y.flt", "let y = 1\n"),
            ],
        );
        let limits = ScanLimits {
            files: 3,
            ..ScanLimits::default()
        };
        let found = scan(&root, &limits);
        assert_eq!(relative(&root, &found), ["a.flt", "b.flt", "deep/y.flt"]);
        assert_eq!(found.stopped_at, Some(Bound::Files(3)));

        let limits = ScanLimits {
            bytes: 25,
            ..ScanLimits::default()
        };
        let found = scan(&root, &limits);
        assert_eq!(relative(&root, &found), ["a.flt", "b.flt"]);
        assert_eq!(found.stopped_at, Some(Bound::Bytes(25)));

        let limits = ScanLimits {
            entries: 2,
            ..ScanLimits::default()
        };
        let found = scan(&root, &limits);
        assert_eq!(relative(&root, &found), ["a.flt", "b.flt"]);
        assert_eq!(found.stopped_at, Some(Bound::Entries(2)));
    }
}
