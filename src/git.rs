//! Reading files from git objects (never from a checkout): config sets at a
//! channel's `config_ref`, and the fleet at a base revision for `diff --base`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::source::MemoryFs;

/// Why a repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("git {command}: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("`{rev}` is not a branch, tag or commit of the repository at {}", root.display())]
    UnknownRevision { rev: String, root: PathBuf },
    #[error("git cat-file: the process has no {0}")]
    NoPipe(&'static str),
    #[error("git cat-file: reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("git cat-file: unexpected answer `{answer}` for {path}")]
    UnexpectedAnswer { answer: String, path: String },
}

/// A git repository, driven through the `git` command.
#[derive(Clone, Debug)]
pub struct Repo {
    pub root: PathBuf,
}

impl Repo {
    /// The repository that contains `path`.
    pub fn discover(path: &Path) -> Result<Repo, GitError> {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let out = git(&dir, &["rev-parse", "--show-toplevel"])?;
        Ok(Repo {
            root: PathBuf::from(String::from_utf8_lossy(&out).trim()),
        })
    }

    /// The commit a ref names (branch, tag, commit, `HEAD~2`, …). Tries `origin/REF` too,
    /// so a fresh clone resolves channel branches it has only as remote-tracking refs.
    pub fn resolve(&self, rev: &str) -> Result<String, GitError> {
        let attempt = |r: &str| {
            git(
                &self.root,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{r}^{{commit}}"),
                ],
            )
        };
        match attempt(rev).or_else(|_| attempt(&format!("origin/{rev}"))) {
            Ok(out) => Ok(String::from_utf8_lossy(&out).trim().to_string()),
            Err(_) => Err(GitError::UnknownRevision {
                rev: rev.to_string(),
                root: self.root.clone(),
            }),
        }
    }

    /// The id of the tree at `path` (repository-relative; `""` for the root) in `commit`:
    /// it names everything below, so an equal id means equal content.
    pub fn tree_id(&self, commit: &str, path: &str) -> Result<String, GitError> {
        let out = git(
            &self.root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{commit}:{}", path.trim_matches('/')),
            ],
        )?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Files under `prefix` (repository-relative) at `commit` whose path passes `keep`,
    /// as (path relative to the repository root, bytes), sorted by path.
    pub fn read_tree(
        &self,
        commit: &str,
        prefix: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, Vec<u8>)>, GitError> {
        let mut args = vec!["ls-tree", "-r", "-z", "--name-only", commit];
        if !prefix.is_empty() {
            args.push("--");
            args.push(prefix);
        }
        let listing = git(&self.root, &args)?;
        let mut paths: Vec<String> = listing
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| keep(p))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        // One `cat-file --batch` process for all blobs.
        let mut child = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(GitError::Spawn)?;
        let mut stdin = child.stdin.take().ok_or(GitError::NoPipe("stdin"))?;
        let requests: String = paths.iter().map(|p| format!("{commit}:{p}\n")).collect();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(requests.as_bytes());
        });
        let stdout = child.stdout.take().ok_or(GitError::NoPipe("stdout"))?;
        let mut reader = BufReader::new(stdout);
        let mut files = Vec::with_capacity(paths.len());
        for path in &paths {
            let mut header = String::new();
            let read = |source| GitError::Read {
                path: path.clone(),
                source,
            };
            reader.read_line(&mut header).map_err(read)?;
            let size: usize = header
                .split_whitespace()
                .nth(2)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| GitError::UnexpectedAnswer {
                    answer: header.trim().to_string(),
                    path: path.clone(),
                })?;
            let mut content = vec![0; size + 1];
            reader.read_exact(&mut content).map_err(read)?;
            content.pop();
            files.push((path.clone(), content));
        }
        let _ = writer.join();
        let _ = child.wait();
        Ok(files)
    }

    /// The `.flt` files of the whole repository at `commit`, keyed by absolute path,
    /// so the front end can analyse an old revision of the fleet.
    pub fn flt_files_at(&self, commit: &str) -> Result<MemoryFs, GitError> {
        let mut fs = MemoryFs::new();
        for (path, bytes) in self.read_tree(commit, "", |p| p.ends_with(".flt"))? {
            fs.insert(self.root.join(path), bytes);
        }
        Ok(fs)
    }

    /// `path` (on disk) relative to the repository root, if it is inside.
    pub fn relative(&self, path: &Path) -> Option<PathBuf> {
        let absolute = std::fs::canonicalize(path).ok()?;
        let root = std::fs::canonicalize(&self.root).ok()?;
        absolute.strip_prefix(root).ok().map(Path::to_path_buf)
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(GitError::Failed {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
