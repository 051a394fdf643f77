//! `compile` and `diff`: the fleet's artifacts, and how they change between revisions.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{
    CliError, CliResult, ConfigArgs, ReportFormat, colour, print_diagnostics, write_stdout,
};
use crate::compile::{
    Cache, FleetOutput, Key, Revision, compile_with_cache, revision_for_diff, summary,
    write_fleet_output,
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
    /// Render every cluster, neither reading nor writing the compile cache
    /// (`.flotilla/cache` beside the fleet).
    #[arg(long)]
    no_cache: bool,
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
    /// Render every cluster at both revisions, neither reading nor writing the compile
    /// cache (`.flotilla/cache` beside the fleet).
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// The fleet's compile cache, unless `--no-cache`.
fn cache_for(fleet: &Path, no_cache: bool) -> Option<Cache> {
    (!no_cache).then(|| Cache::beside(fleet))
}

fn print_cache_notes(output: &FleetOutput) {
    for note in &output.cache_notes {
        let _ = writeln!(std::io::stderr(), "note: {note}");
    }
}

pub(super) fn compile(args: CompileArgs) -> CliResult<i32> {
    let source = args.config.source(&args.path)?;
    let cache = cache_for(&args.path, args.no_cache);
    let output = compile_with_cache(&DiskFs, &args.path, &source, &args.clusters, cache.as_ref());
    print_diagnostics(&output.sources, &output.diagnostics);
    print_cache_notes(&output);
    if output.has_errors() {
        let _ = writeln!(
            std::io::stderr(),
            "nothing written: {} is unchanged",
            args.out.display()
        );
        return Ok(1);
    }
    write_fleet_output(&args.out, &output, args.clusters.is_empty())?;
    write_stdout(&summary(&output, &args.out))?;
    Ok(0)
}

pub(super) fn diff(args: DiffArgs) -> CliResult<i32> {
    let source = args.config.source(&args.path)?;
    let repo = Repo::discover(&args.path)?;
    let cache = cache_for(&args.path, args.no_cache);
    let at_revision = |rev: &str| -> CliResult<Revision> {
        match revision_for_diff(&repo, rev, &args.path, &source, cache.as_ref())? {
            Some(revision) => Ok(revision),
            None => {
                let _ = writeln!(
                    std::io::stderr(),
                    "note: {} has no fleet at {rev}; its clusters count as added",
                    args.path.display()
                );
                Ok(Revision::Compiled(FleetOutput::empty()))
            }
        }
    };
    // The two revisions are independent: their front ends, each on one core, run side
    // by side.
    let (base, head) = std::thread::scope(|scope| {
        let head = scope.spawn(|| match &args.head {
            Some(rev) => at_revision(rev),
            None => Ok(Revision::Compiled(compile_with_cache(
                &DiskFs,
                &args.path,
                &source,
                &[],
                cache.as_ref(),
            ))),
        });
        let base = at_revision(&args.base);
        let head = head
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (base, head)
    });
    let (mut base, mut head) = (base?, head?);
    let head_label = args.head.clone().unwrap_or_else(|| "work tree".to_string());
    for (label, revision) in [(&args.base, &base), (&head_label, &head)] {
        if let Some(c) = revision.output().filter(|c| c.has_errors()) {
            print_cache_notes(c);
            print_diagnostics(&c.sources, &c.diagnostics);
            return Err(CliError::DoesNotCompile(label.clone()));
        }
    }
    // A cluster with the same cache key at both revisions has the same output: there is
    // nothing to read or compare.
    let head_keys: BTreeMap<&str, &Key> = head
        .keys()
        .into_iter()
        .filter_map(|(id, key)| Some((id, key?)))
        .collect();
    let same: BTreeSet<String> = base
        .keys()
        .into_iter()
        .filter(|(id, key)| matches!((key, head_keys.get(id)), (Some(base), Some(head)) if base == head))
        .map(|(id, _)| id.to_string())
        .collect();
    let same: BTreeSet<&str> = same.iter().map(String::as_str).collect();
    let base_artifacts = base.artifacts_except(&same)?;
    let head_artifacts = head.artifacts_except(&same)?;
    for revision in [&base, &head] {
        if let Some(output) = revision.output() {
            print_cache_notes(output);
        }
    }
    let result = crate::diff::diff(&args.base, &base_artifacts, &head_label, &head_artifacts);
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
