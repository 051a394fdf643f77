//! `check` and `eval`: the front end and the model, without templates.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use serde::Serialize;

use super::{CliError, CliResult, colour, write_stdout, write_stdout_with};
use crate::analysis::{Analysis, Keep, analyze_keeping};
use crate::diagnostic::{render_all, to_json};
use crate::source::DiskFs;

/// Parse and type-check the fleet and run every `check`. Exit 0 when clean, 1 on errors.
#[derive(clap::Args)]
pub(super) struct CheckArgs {
    /// A .flt file or a directory of them (searched recursively).
    #[arg(default_value = ".")]
    path: PathBuf,
    /// `text` (rustc-style, for people) or `json` (one object per line, for editors and CI).
    #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
    format: DiagnosticFormat,
}

/// Print the evaluated fleet: every cluster with all defaults filled in.
#[derive(clap::Args)]
pub(super) struct EvalArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub(super) path: PathBuf,
    /// Print only this cluster (repeatable).
    #[arg(long = "cluster", value_name = "ID")]
    clusters: Vec<String>,
    #[arg(long, value_enum, default_value_t = DataFormat::Yaml)]
    format: DataFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiagnosticFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum DataFormat {
    Yaml,
    Json,
}

pub(super) fn check(args: CheckArgs) -> CliResult<i32> {
    let analysis = analyze_keeping(&DiskFs, &args.path, Keep::Diagnostics);
    report(&analysis, args.format)?;
    Ok(i32::from(analysis.has_errors()))
}

pub(super) fn eval(args: EvalArgs) -> CliResult<i32> {
    // What is printed is the model; each cluster's evaluated data goes once it is read.
    let analysis = analyze_keeping(&DiskFs, &args.path, Keep::Model);
    report(&analysis, DiagnosticFormat::Text)?;
    let Some(fleet) = analysis.model.as_ref().filter(|_| !analysis.has_errors()) else {
        return Ok(1);
    };
    if args.clusters.is_empty() {
        print_data(fleet, args.format)?;
        return Ok(0);
    }
    let mut selected = Vec::new();
    for id in &args.clusters {
        let cluster = fleet.cluster(id).ok_or_else(|| CliError::UnknownCluster {
            id: id.clone(),
            path: args.path.clone(),
            known: fleet.cluster_ids().map(str::to_string).collect(),
        })?;
        selected.push(cluster);
    }
    match selected.as_slice() {
        [one] => print_data(one, args.format)?,
        all => print_data(&all, args.format)?,
    }
    Ok(0)
}

fn print_data(value: &impl Serialize, format: DataFormat) -> CliResult<()> {
    let json = |source| CliError::Json {
        what: "evaluated fleet",
        source,
    };
    match format {
        // Written as it is serialised: for a large fleet the text is the size of the
        // model again.
        DataFormat::Json => write_stdout_with(|out| {
            serde_json::to_writer_pretty(&mut *out, value).map_err(|e| {
                match e.io_error_kind() {
                    Some(_) => CliError::Stdout(e.into()),
                    None => json(e),
                }
            })?;
            out.write_all(b"\n").map_err(CliError::Stdout)
        }),
        DataFormat::Yaml => {
            let value = serde_json::to_value(value).map_err(json)?;
            let text = serde_yaml_ng::to_string(&value).map_err(|source| CliError::Yaml {
                what: "evaluated fleet",
                source,
            })?;
            write_stdout(&text)
        }
    }
}

fn report(analysis: &Analysis, format: DiagnosticFormat) -> CliResult<()> {
    let sources = &analysis.program.sources;
    match format {
        DiagnosticFormat::Text => {
            if !analysis.diagnostics.is_empty() {
                let text = render_all(sources, &analysis.diagnostics, colour(&std::io::stderr()));
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
        }
        DiagnosticFormat::Json => {
            let mut text = String::new();
            for d in &analysis.diagnostics {
                let json = serde_json::to_string(&to_json(sources, d)).map_err(|source| {
                    CliError::Json {
                        what: "diagnostic",
                        source,
                    }
                })?;
                text.push_str(&json);
                text.push('\n');
            }
            write_stdout(&text)?;
        }
    }
    Ok(())
}
