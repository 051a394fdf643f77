//! The command line: parse arguments, call the library, print, pick an exit code.
//! One file per command group under `cli/`; each command is one function taking its
//! parsed arguments.

mod analyze;
mod apply;
mod compile;
mod error;
mod plan;
mod simulate;
mod status;
mod tools;
mod world;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::compile::ConfigSource;
use crate::diagnostic::{Diagnostic, render_all};
use crate::git::Repo;
use crate::model::Fleet;
use crate::source::SourceMap;
pub use error::{CliError, CliResult};

/// flotilla describes a fleet of Kubernetes clusters on AWS in a typed language,
/// checks it, and evaluates it to the full configuration of every cluster.
///
/// Start with `flotilla check examples/fleet`, then `flotilla eval examples/fleet
/// --cluster <id>` to see one cluster with every default filled in.
#[derive(Parser)]
#[command(name = "flotilla", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Check(analyze::CheckArgs),
    Eval(analyze::EvalArgs),
    Compile(compile::CompileArgs),
    Diff(compile::DiffArgs),
    Plan(plan::PlanArgs),
    /// Execute the plan: stacks through change sets, manifests by server-side apply,
    /// deletions, then rolling replacement of outdated nodes (PodDisruptionBudgets
    /// respected). Without --plan it plans, prints the plan and asks for confirmation.
    ///
    /// Exit 0 when every cluster is done, 1 when one failed or was refused (the summary
    /// says what failed, what was done and what was not started).
    Apply(apply::ApplyArgs),
    /// Per cluster and node pool: desired config hash, nodes (total, Ready, outdated),
    /// Auto Scaling group sizes, the apply in progress and the update block.
    ///
    /// `--format json` is stable: a list of {cluster, registry_id (only when imported
    /// under another id), region, blocked: {by, reason, at} |
    /// null, rollout: {holder, step, since, expires_at} | null, pools: [{name,
    /// desired_hash, nodes, ready, outdated, group: {min, desired, max} | null}], error}.
    Status(status::StatusArgs),
    /// Block a cluster's updates (recorded in the cluster; apply refuses it and a running
    /// rollout stops at its next safe point).
    Block(status::BlockArgs),
    /// Lift a cluster's update block.
    Unblock(status::UnblockArgs),
    /// Predict a cluster's rollout on a simulated world: waves per pool and zone,
    /// evictions held up by PodDisruptionBudgets and for how long, forced deletions, and
    /// the duration against its lower bound. Exit 1 when a roll would not finish.
    Simulate(simulate::SimulateArgs),
    Fmt(tools::FmtArgs),
    ImportRegistry(tools::ImportRegistryArgs),
    Explain(tools::ExplainArgs),
    /// Run the language server on stdin/stdout (for editors).
    Lsp,
}

impl Command {
    /// The fleet of a command whose output may show secrets' redacted forms.
    fn fleet_with_secrets_shown(&self) -> Option<&Path> {
        match self {
            Command::Eval(args) => Some(&args.path),
            Command::Compile(args) => Some(&args.path),
            Command::Diff(args) => Some(&args.path),
            Command::Plan(args) => Some(&args.path),
            Command::Apply(args) => Some(&args.path),
            _ => None,
        }
    }
}

/// Run the command line; returns the process exit code.
pub fn run() -> i32 {
    // Usage errors exit 1, like every other error: 2 means "differences" or "changes".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    if let Some(fleet) = cli.command.fleet_with_secrets_shown() {
        // Secrets' redacted forms are keyed per repository (issue 11 item 7).
        match crate::redact::key_for_fleet(fleet) {
            Ok(key) => crate::redact::use_key(key),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "error: {e}");
                return 1;
            }
        }
    }
    let result = match cli.command {
        Command::Check(args) => analyze::check(args),
        Command::Eval(args) => analyze::eval(args),
        Command::Compile(args) => compile::compile(args),
        Command::Diff(args) => compile::diff(args),
        Command::Plan(args) => plan::plan(args),
        Command::Apply(args) => apply::apply_command(args),
        Command::Status(args) => status::status_command(args),
        Command::Block(args) => status::block_command(args),
        Command::Unblock(args) => status::unblock_command(args),
        Command::Simulate(args) => simulate::simulate_command(args),
        Command::Fmt(args) => tools::fmt(args),
        Command::ImportRegistry(args) => tools::import_registry(args),
        Command::Explain(args) => tools::explain(args),
        Command::Lsp => Ok(crate::lsp::run_stdio()),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            error.exit_code()
        }
    }
}

/// Where templates come from.
#[derive(clap::Args)]
struct ConfigArgs {
    /// Use this config set directory for every cluster instead of the channels' git refs.
    #[arg(long, value_name = "DIR")]
    config_set: Option<PathBuf>,
    /// Where the config set lives inside the repository, for channels' git refs.
    #[arg(long, value_name = "PATH", default_value = "stdlib/config")]
    config_path: String,
}

impl ConfigArgs {
    fn source(&self, fleet: &Path) -> CliResult<ConfigSource> {
        match &self.config_set {
            Some(dir) => Ok(ConfigSource::Dir(dir.clone())),
            None => {
                if !fleet.exists() {
                    return Err(CliError::NoSuchPath(fleet.to_path_buf()));
                }
                // A path inside the repository, written with `/`: `./stdlib/config/` too.
                let mut parts = Vec::new();
                for component in Path::new(&self.config_path).components() {
                    match component {
                        std::path::Component::Normal(part) => parts.push(part.to_string_lossy()),
                        std::path::Component::CurDir => {}
                        _ => {
                            return Err(CliError::ConfigPath(self.config_path.clone()));
                        }
                    }
                }
                let repo = Repo::discover(fleet).map_err(|source| CliError::NotInRepository {
                    fleet: fleet.to_path_buf(),
                    source,
                })?;
                Ok(ConfigSource::Git {
                    repo,
                    path: parts.join("/"),
                    head: None,
                })
            }
        }
    }
}

/// `text` (a summary table) or `json`, for apply, status and simulate.
#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

/// `text` (coloured on a terminal), `markdown` (a pull-request comment) or `json`.
#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Markdown,
    Json,
}

/// Whether to colour what goes to `stream`: a terminal, unless `NO_COLOR` is set.
fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn print_diagnostics(sources: &SourceMap, diagnostics: &[Diagnostic]) {
    if !diagnostics.is_empty() {
        let text = render_all(sources, diagnostics, colour(&std::io::stderr()));
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// `ID=VALUE` arguments by cluster id. Every id must be a cluster of the fleet and
/// appear once: a typo must not silently leave a cluster on its default endpoint.
fn pairs(
    args: &[String],
    flag: &'static str,
    fleet: &Fleet,
) -> CliResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        let (id, value) = a.split_once('=').ok_or_else(|| CliError::NotAPair {
            flag,
            argument: a.clone(),
        })?;
        if fleet.cluster(id).is_none() {
            return Err(CliError::PairForUnknownCluster {
                flag,
                id: id.to_string(),
            });
        }
        if out.insert(id.to_string(), value.to_string()).is_some() {
            return Err(CliError::PairTwice {
                flag,
                id: id.to_string(),
            });
        }
    }
    Ok(out)
}

/// Write to stdout; a closed pipe (`flotilla eval | head`) is not an error.
fn write_stdout(text: &str) -> CliResult<()> {
    write_stdout_with(|out| out.write_all(text.as_bytes()).map_err(CliError::Stdout))
}

/// Write to stdout through `write`, buffered, for output too large to build first; a
/// closed pipe is not an error here either.
fn write_stdout_with(write: impl FnOnce(&mut dyn Write) -> CliResult<()>) -> CliResult<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = write(&mut out).and_then(|()| out.flush().map_err(CliError::Stdout));
    match written {
        Err(CliError::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
