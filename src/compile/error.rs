//! What compiling at a git revision, rendering a cluster again, or writing the output
//! directory fails with.

use std::path::PathBuf;

use super::output::OUTPUT_MARKER;
use crate::git::GitError;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(
        "cannot write output to {}: name the output directory itself (e.g. `out/`), not `.`, `..` or a root",
        .0.display()
    )]
    UnnamedOutput(PathBuf),
    #[error("refusing to write into {}: it is not a directory", .0.display())]
    OutputNotADirectory(PathBuf),
    #[error(
        "refusing to write into {}: it exists and was not written by flotilla (no {OUTPUT_MARKER} file); choose an empty or new directory",
        .0.display()
    )]
    ForeignOutput(PathBuf),
    /// Reading, creating or writing a file or directory of the output.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {} from {}: {source}", path.display(), stored.display())]
    Link {
        path: PathBuf,
        stored: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move {} aside: {source}", .path.display())]
    MoveAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move output into {}: {source}", .path.display())]
    MoveInto {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cluster id `{0}` cannot be a directory name")]
    ClusterDirectoryName(String),
    #[error("artifact path `{path}` of cluster {cluster} leaves its directory")]
    ArtifactPath { path: String, cluster: String },
    #[error("{0}")]
    Summary(#[source] serde_json::Error),
    #[error("cluster {0} cannot be rendered again")]
    NotRenderable(String),
    /// A cache entry failed its check and the cluster, rendered again, now fails.
    #[error("cluster {cluster} no longer renders: {problem}")]
    NoLongerRenders { cluster: String, problem: String },
    #[error("{} is not inside the repository at {}", path.display(), root.display())]
    OutsideRepository { path: PathBuf, root: PathBuf },
    #[error(transparent)]
    Git(#[from] GitError),
}

impl CompileError {
    pub(super) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        CompileError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
