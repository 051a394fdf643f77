//! What a command fails with. [`super::run`] turns it into the one-line message on
//! standard error and the exit code, in one place.

use std::path::PathBuf;

use crate::apply::LocalWorldError;
use crate::compile::CompileError;
use crate::git::GitError;
use crate::live::LiveError;
use crate::live::aws::EndpointError;
use crate::registry::RegistryError;

/// A command that could not do its work. Problems in the fleet itself are diagnostics,
/// printed as they are found; these are the rest: arguments, files, the world.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{} does not exist", .0.display())]
    NoSuchPath(PathBuf),
    #[error("--config-path `{0}` must be a relative path inside the repository, without `..`")]
    ConfigPath(String),
    #[error(
        "channels pin config sets by git ref, but {} is not in a git repository ({source}); pass --config-set DIR",
        fleet.display()
    )]
    NotInRepository {
        fleet: PathBuf,
        #[source]
        source: GitError,
    },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{flag} expects ID=VALUE, got `{argument}`")]
    NotAPair {
        flag: &'static str,
        argument: String,
    },
    #[error("{flag} names `{id}`, which is not a cluster of the fleet")]
    PairForUnknownCluster { flag: &'static str, id: String },
    #[error("{flag} gives `{id}` twice")]
    PairTwice { flag: &'static str, id: String },
    #[error("no cluster `{id}` in {}; clusters: {}", path.display(), known.join(", "))]
    UnknownCluster {
        id: String,
        path: PathBuf,
        known: Vec<String>,
    },
    #[error("unknown error code `{0}`")]
    UnknownCode(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists; pass --force to overwrite it", .0.display())]
    Exists(PathBuf),
    #[error("{} is not a file name", .0.display())]
    NotAFileName(PathBuf),
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("cannot read the answer from standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write the {what} as JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the {what} as YAML: {source}")]
    Yaml {
        what: &'static str,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{} is {source}", path.display())]
    SavedPlan {
        path: PathBuf,
        #[source]
        source: crate::plan::SavedPlanError,
    },
    #[error("the plan names cluster {0}, which the fleet no longer compiles")]
    PlanForUnknownCluster(String),
    #[error("the fleet at {0} does not compile")]
    DoesNotCompile(String),
    #[error("cluster `{0}` was not compiled")]
    NotCompiled(String),
    #[error("{cluster}: {source}")]
    Cluster {
        cluster: String,
        #[source]
        source: LiveError,
    },
    /// Compiling at a git revision, or writing the compiled output.
    #[error("{0}")]
    Compile(#[from] CompileError),
    /// `AWS_ENDPOINT_URL` is set to something that is not a URL.
    #[error("AWS_ENDPOINT_URL: {0}")]
    Endpoint(#[source] EndpointError),
    /// The local simulated world could not be opened or saved.
    #[error("{0}")]
    LocalWorld(#[from] LocalWorldError),
    #[error("{}: {source}", file.display())]
    Registry {
        file: PathBuf,
        #[source]
        source: RegistryError,
    },
    #[error(transparent)]
    WorldDescription(#[from] crate::sim::DescriptionError),
}

impl CliError {
    /// Every failure exits 1: 0 is success and 2 means "differences" (`diff`) or
    /// "changes" (`plan --detailed-exitcode`), so a script can tell them apart.
    pub fn exit_code(&self) -> i32 {
        1
    }
}

pub type CliResult<T> = Result<T, CliError>;
