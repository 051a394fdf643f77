//! `compile` and `diff`: the fleet's artifacts, and how they change between revisions.

use std::io::Write;
use std::path::PathBuf;

use super::{
    CliError, CliResult, ConfigArgs, ReportFormat, colour, print_diagnostics, write_stdout,
};
use crate::compile::{
    Compilation, compile as compile_fleet, compile_at_revision, summary, write_output,
};
use crate::git::Repo;
use crate::source::DiskFs;

/// Compile clusters into CloudFormation templates, userdata and Kubernetes manifests.
///
/// Each cluster uses the config set at its channel's `config_ref` (read from git),
/// unless --config-set gives a directory. Writes DIR/<cluster>/… atomically: on any
/// error nothing is written and an existing DIR is left as it was.
#[derive(clap::Args)]
pub(super) struct CompileArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub(super) path: PathBuf,
    /// Output directory (created; replaced as a whole unless --cluster is given).
    #[arg(long)]
    out: PathBuf,
    /// Compile only this cluster (repeatable); other clusters' output is kept.
    #[arg(long = "cluster", value_name = "ID")]
    clusters: Vec<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Compile the fleet at two revisions and show what changes in every cluster's artifacts.
///
/// Exit 0 when nothing differs, 2 when something does, 1 on errors. Node pools whose
/// config hash changes (their nodes will be replaced) are listed first.
#[derive(clap::Args)]
pub(super) struct DiffArgs {
    /// A .flt file or a directory of them, inside a git repository.
    #[arg(default_value = ".")]
    pub(super) path: PathBuf,
    /// The revision to compare against (branch, tag, commit).
    #[arg(long)]
    base: String,
    /// The revision to compare; the work tree when omitted.
    #[arg(long)]
    head: Option<String>,
    /// `text` (coloured on a terminal), `markdown` (for a pull-request comment) or `json`.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    #[command(flatten)]
    config: ConfigArgs,
}

pub(super) fn compile(args: CompileArgs) -> CliResult<i32> {
    let source = args.config.source(&args.path)?;
    let compilation = compile_fleet(&DiskFs, &args.path, &source, &args.clusters);
    print_diagnostics(&compilation.sources, &compilation.diagnostics);
    if compilation.has_errors() {
        let _ = writeln!(
            std::io::stderr(),
            "nothing written: {} is unchanged",
            args.out.display()
        );
        return Ok(1);
    }
    write_output(&args.out, &compilation.artifacts, args.clusters.is_empty())
        .map_err(CliError::Compile)?;
    write_stdout(&summary(&compilation.artifacts, &args.out))?;
    Ok(0)
}

pub(super) fn diff(args: DiffArgs) -> CliResult<i32> {
    let source = args.config.source(&args.path)?;
    let repo = Repo::discover(&args.path)?;
    let at_revision = |rev: &str| -> CliResult<Compilation> {
        match compile_at_revision(&repo, rev, &args.path, &source).map_err(CliError::Compile)? {
            Some(compilation) => Ok(compilation),
            None => {
                let _ = writeln!(
                    std::io::stderr(),
                    "note: {} has no fleet at {rev}; its clusters count as added",
                    args.path.display()
                );
                Ok(Compilation::empty())
            }
        }
    };
    let base = at_revision(&args.base)?;
    let head = match &args.head {
        Some(rev) => at_revision(rev)?,
        None => compile_fleet(&DiskFs, &args.path, &source, &[]),
    };
    let head_label = args.head.clone().unwrap_or_else(|| "work tree".to_string());
    for (label, c) in [(&args.base, &base), (&head_label, &head)] {
        if c.has_errors() {
            print_diagnostics(&c.sources, &c.diagnostics);
            return Err(CliError::DoesNotCompile(label.clone()));
        }
    }
    let result = crate::diff::diff(&args.base, &base.artifacts, &head_label, &head.artifacts);
    let text = match args.format {
        ReportFormat::Text => crate::diff::to_text(&result, colour(&std::io::stdout())),
        ReportFormat::Markdown => crate::diff::to_markdown(&result),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&result).map_err(|source| CliError::Json {
                what: "diff",
                source,
            })? + "\n"
        }
    };
    write_stdout(&text)?;
    Ok(if result.is_empty() { 0 } else { 2 })
}
