//! Scratch directories and directory snapshots shared by the integration tests (and, as
//! `test_files`, the unit tests of the library).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set to `1`, scratch directories are kept after their test, to look at what it wrote.
pub const KEEP_VARIABLE: &str = "FLOTILLA_KEEP_TEST_DIRS";

/// A fresh, empty directory under the system temp dir, removed with all it holds when
/// dropped: also when its test fails, since the panic unwinds through the drop. Without
/// this every run of the suite left its directories in `/tmp` for good.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// `flotilla-test-NAME-PID-N`: the process id and a per-process counter keep tests
    /// that run in parallel (and test binaries that run at once) apart.
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("flotilla-test-{name}-{}-{n}", std::process::id()));
        // A reused process id may meet what an older run left; start from nothing.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os(KEEP_VARIABLE).is_some_and(|v| v == "1") {
            eprintln!("{KEEP_VARIABLE}=1: kept {}", self.path.display());
            return;
        }
        let removed = std::fs::remove_dir_all(&self.path);
        // A directory that outlives its test is the leak this type exists to stop (most
        // likely a child process still writing into it), so it fails the test, unless the
        // test is failing already: a second panic would abort the run.
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
            && !std::thread::panicking()
        {
            panic!("removing {}: {e}", self.path.display());
        }
    }
}

/// Every file under `dir` by relative path, with its bytes.
#[allow(dead_code)] // not every test binary compares trees
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Runs `git -C dir ARGS` with a fixed identity and no signing; a failure fails the test.
#[allow(dead_code)] // not every test binary keeps a repository
pub fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=flotilla",
            "-c",
            "user.email=flotilla@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
