//! `plan`: compile, observe live state, print the ordered changes.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{
    CliError, CliResult, ConfigArgs, ReportFormat, colour, print_diagnostics, write_stdout,
};
use crate::compile::compile;
use crate::plan::plan_targets;
use crate::source::DiskFs;

/// Compare the compiled fleet with live CloudFormation and Kubernetes state and print
/// the ordered changes: stacks (with CloudFormation's change-set view), manifests
/// (field-level, from a server-side dry-run apply), deletions, and node pool rolls.
///
/// Exit 0 on success (with --detailed-exitcode: 0 no changes, 2 changes), 1 on errors,
/// including any cluster whose live state could not be read.
#[derive(clap::Args)]
pub(super) struct PlanArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub(super) path: PathBuf,
    /// Plan only this cluster (repeatable).
    #[arg(long = "cluster", value_name = "ID")]
    clusters: Vec<String>,
    /// Also save the plan as JSON here (for review and for apply).
    #[arg(long)]
    out: Option<PathBuf>,
    /// `text` (coloured on a terminal), `markdown` (a pull-request comment) or `json`.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Exit 2 when the plan has changes.
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    endpoints: super::world::Endpoints,
    /// Clusters observed at the same time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[command(flatten)]
    config: ConfigArgs,
}

pub(super) fn plan(args: PlanArgs) -> CliResult<i32> {
    let source = args.config.source(&args.path)?;
    let compilation = compile(&DiskFs, &args.path, &source, &args.clusters);
    print_diagnostics(&compilation.sources, &compilation.diagnostics);
    let (Some(fleet), false) = (compilation.fleet.as_ref(), compilation.has_errors()) else {
        return Ok(1);
    };
    let (targets, retired) = plan_targets(fleet, &compilation.artifacts);
    for (id, status) in retired {
        let _ = writeln!(
            std::io::stderr(),
            "skipping {id}: lifecycle status {status}"
        );
    }
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    let backend = super::world::Backend::open(&args.endpoints, fleet, &args.path)?;
    let plan = runtime.block_on(backend.plan(fleet, &targets, args.concurrency));
    backend.save()?;
    let json = serde_json::to_string_pretty(&plan).map_err(|source| CliError::Json {
        what: "plan",
        source,
    })? + "\n";
    if let Some(out) = &args.out {
        write_atomically(out, &json)?;
    }
    let text = match args.format {
        ReportFormat::Text => crate::plan::to_text(&plan, colour(&std::io::stdout())),
        ReportFormat::Markdown => crate::plan::to_markdown(&plan),
        ReportFormat::Json => json,
    };
    write_stdout(&text)?;
    Ok(if !plan.failures.is_empty() {
        1
    } else if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}

/// Write `text` to `path` through a temporary file in the same directory, so a reader
/// (apply, reading a saved plan) never sees half of it.
fn write_atomically(path: &Path, text: &str) -> CliResult<()> {
    let name = path
        .file_name()
        .ok_or_else(|| CliError::NotAFileName(path.to_path_buf()))?;
    let temporary = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    written.map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        CliError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}
