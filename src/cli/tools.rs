//! Commands around the language: `fmt`, `import-registry`, `explain`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CliError, CliResult, print_diagnostics, write_stdout};
use crate::codes::Code;
use crate::diagnostic::render_all;
use crate::source::{DiskFs, FileSystem};

/// Rewrite .flt files in the canonical layout (comments are kept).
#[derive(clap::Args)]
pub(super) struct FmtArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Do not write; list files that are not formatted and exit 1 if there are any.
    #[arg(long)]
    check: bool,
}

/// Turn a cluster registry in the reference system's YAML format into .flt source.
#[derive(clap::Args)]
pub(super) struct ImportRegistryArgs {
    /// The registry file (`clusters:` list).
    file: PathBuf,
    /// Write the source here instead of standard output (never over an existing file
    /// unless `--force`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Let `--out` replace an existing file.
    #[arg(long, requires = "out")]
    force: bool,
    /// Import path of the channel declarations, written as the first line.
    #[arg(long, default_value = "../../channels")]
    channels_import: String,
    /// Channel for production clusters.
    #[arg(long, default_value = "stable")]
    production_channel: String,
    /// Channel for test clusters.
    #[arg(long, default_value = "beta")]
    test_channel: String,
}

/// Write `text` to `path`; an existing file is replaced only with `force` (checked by
/// the create itself, so a file appearing meanwhile is not overwritten either).
fn write_new(path: &std::path::Path, text: &str, force: bool) -> CliResult<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let cannot = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AlreadyExists => CliError::Exists(path.to_path_buf()),
        _ => CliError::Write {
            path: path.to_path_buf(),
            source,
        },
    };
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(cannot)
}

/// Explain an error code, e.g. `flotilla explain E0201`.
#[derive(clap::Args)]
pub(super) struct ExplainArgs {
    code: String,
}

pub(super) fn import_registry(args: ImportRegistryArgs) -> CliResult<i32> {
    let file = &args.file;
    let yaml = std::fs::read_to_string(file).map_err(|source| CliError::Read {
        path: file.clone(),
        source,
    })?;
    let options = crate::registry::ImportOptions {
        channels_import: args.channels_import,
        production_channel: args.production_channel,
        test_channel: args.test_channel,
    };
    let source = crate::registry::import(&yaml, &options).map_err(|source| CliError::Registry {
        file: file.clone(),
        source,
    })?;
    match args.out {
        Some(out) => write_new(&out, &source, args.force)?,
        None => write_stdout(&source)?,
    }
    Ok(0)
}

pub(super) fn explain(args: ExplainArgs) -> CliResult<i32> {
    match Code::parse(&args.code) {
        Some(code) => {
            write_stdout(&format!("{code}: {}\n", code.explanation()))?;
            Ok(0)
        }
        None => Err(CliError::UnknownCode(args.code)),
    }
}

/// Format every file, even after one fails (unreadable, not UTF-8, a syntax error): each
/// failure is reported with its file and position, and the exit code is 1 at the end.
pub(super) fn fmt(args: FmtArgs) -> CliResult<i32> {
    let (path, check) = (args.path.as_path(), args.check);
    let files = if DiskFs.is_dir(path) {
        DiskFs.flt_files(path)
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        print_diagnostics(
            &crate::source::SourceMap::default(),
            &[crate::resolve::no_flt_files(path)],
        );
        return Ok(1);
    }
    let mut unformatted = Vec::new();
    let mut failed = false;
    for file in files {
        if let Err(failure) = fmt_file(&file, check, &mut unformatted) {
            let report = match failure {
                FmtFailure::Io(error) => format!("error: {error}\n"),
                FmtFailure::Diagnostics(rendered) => rendered,
            };
            let _ = std::io::stderr().write_all(report.as_bytes());
            failed = true;
        }
    }
    for f in &unformatted {
        write_stdout(&format!("{f}\n"))?;
    }
    Ok(i32::from(failed || !unformatted.is_empty()))
}

/// Why one file was not formatted; `fmt` reports it and goes on with the next file.
enum FmtFailure {
    Io(CliError),
    /// The file's diagnostics (not UTF-8, a syntax error), rendered.
    Diagnostics(String),
}

/// Format one file, or with `check` note it in `unformatted` if it is not formatted.
fn fmt_file(file: &Path, check: bool, unformatted: &mut Vec<String>) -> Result<(), FmtFailure> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|source| {
        FmtFailure::Io(CliError::Read {
            path: file.to_path_buf(),
            source,
        })
    })?;
    let mut sources = crate::source::SourceMap::default();
    let (id, not_utf8) =
        crate::resolve::add_source(&mut sources, name.clone(), file.to_path_buf(), bytes);
    let diagnostics = match not_utf8 {
        Some(diagnostic) => vec![diagnostic],
        None => match crate::format::format_source(id, &sources.get(id).text) {
            Ok(formatted) if formatted == sources.get(id).text => return Ok(()),
            Ok(_) if check => {
                unformatted.push(name);
                return Ok(());
            }
            Ok(formatted) => {
                return std::fs::write(file, formatted).map_err(|source| {
                    FmtFailure::Io(CliError::Write {
                        path: file.to_path_buf(),
                        source,
                    })
                });
            }
            Err(diagnostics) => diagnostics,
        },
    };
    Err(FmtFailure::Diagnostics(render_all(
        &sources,
        &diagnostics,
        false,
    )))
}
