//! The command line: parse arguments, call the library, print, pick an exit code.

mod apply;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::analysis::{Analysis, analyze};
use crate::compile::{Compilation, ConfigSource, compile, write_output};
use crate::diagnostic::explain;
use crate::diagnostic::{render_all, to_json};
use crate::git::Repo;
use crate::plan::KubeConnector;
use crate::source::{DiskFs, FileSystem};

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
    /// Parse and type-check the fleet and run every `check`. Exit 0 when clean, 1 on errors.
    Check {
        /// A .flt file or a directory of them (searched recursively).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// `text` (rustc-style, for people) or `json` (one object per line, for editors and CI).
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
        format: DiagnosticFormat,
    },
    /// Print the evaluated fleet: every cluster with all defaults filled in.
    Eval {
        /// A .flt file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Print only this cluster (repeatable).
        #[arg(long = "cluster", value_name = "ID")]
        clusters: Vec<String>,
        #[arg(long, value_enum, default_value_t = DataFormat::Yaml)]
        format: DataFormat,
    },
    /// Compile clusters into CloudFormation templates, userdata and Kubernetes manifests.
    ///
    /// Each cluster uses the config set at its channel's `config_ref` (read from git),
    /// unless --config-set gives a directory. Writes DIR/<cluster>/… atomically: on any
    /// error nothing is written and an existing DIR is left as it was.
    Compile {
        /// A .flt file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Output directory (created; replaced as a whole unless --cluster is given).
        #[arg(long)]
        out: PathBuf,
        /// Compile only this cluster (repeatable); other clusters' output is kept.
        #[arg(long = "cluster", value_name = "ID")]
        clusters: Vec<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Compile the fleet at two revisions and show what changes in every cluster's artifacts.
    ///
    /// Exit 0 when nothing differs, 2 when something does, 1 on errors. Node pools whose
    /// config hash changes (their nodes will be replaced) are listed first.
    Diff {
        /// A .flt file or a directory of them, inside a git repository.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// The revision to compare against (branch, tag, commit).
        #[arg(long)]
        base: String,
        /// The revision to compare; the work tree when omitted.
        #[arg(long)]
        head: Option<String>,
        /// `text` (coloured on a terminal), `markdown` (for a pull-request comment) or `json`.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Compare the compiled fleet with live CloudFormation and Kubernetes state and print
    /// the ordered changes: stacks (with CloudFormation's change-set view), manifests
    /// (field-level, from a server-side dry-run apply), deletions, and node pool rolls.
    ///
    /// Exit 0 on success (with --detailed-exitcode: 0 no changes, 2 changes), 1 on errors,
    /// including any cluster whose live state could not be read.
    Plan {
        /// A .flt file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Plan only this cluster (repeatable).
        #[arg(long = "cluster", value_name = "ID")]
        clusters: Vec<String>,
        /// Also save the plan as JSON here (for review and for apply).
        #[arg(long)]
        out: Option<PathBuf>,
        /// `text` (coloured on a terminal), `markdown` (a pull-request comment) or `json`.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// Exit 2 when the plan has changes.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Send every AWS call here (e.g. a local emulator); `AWS_ENDPOINT_URL` works too.
        #[arg(long, value_name = "URL")]
        aws_endpoint_url: Option<String>,
        /// Reach a cluster's API server at URL instead of its `api_server_url` (repeatable).
        #[arg(long = "kube-endpoint", value_name = "ID=URL")]
        kube_endpoints: Vec<String>,
        /// Use kubeconfig context CTX for a cluster instead of the context named after it.
        #[arg(long = "kube-context", value_name = "ID=CTX")]
        kube_contexts: Vec<String>,
        /// Clusters observed at the same time.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[command(flatten)]
        config: ConfigArgs,
    },
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
    /// `--format json` is stable: a list of {cluster, region, blocked: {by, reason, at} |
    /// null, rollout: {holder, step, since, expires_at} | null, pools: [{name,
    /// desired_hash, nodes, ready, outdated, group: {min, desired, max} | null}], error}.
    Status(apply::StatusArgs),
    /// Block a cluster's updates (recorded in the cluster; apply refuses it and a running
    /// rollout stops at its next safe point).
    Block(apply::BlockArgs),
    /// Lift a cluster's update block.
    Unblock(apply::UnblockArgs),
    /// Rewrite .flt files in the canonical layout (comments are kept).
    Fmt {
        /// A .flt file or a directory of them.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Do not write; list files that are not formatted and exit 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Turn a cluster registry in the reference system's YAML format into .flt source.
    ImportRegistry {
        /// The registry file (`clusters:` list).
        file: PathBuf,
        /// Write the source here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Import path of the channel declarations, written as the first line.
        #[arg(long, default_value = "../../channels")]
        channels_import: String,
        /// Channel for production clusters.
        #[arg(long, default_value = "stable")]
        production_channel: String,
        /// Channel for test clusters.
        #[arg(long, default_value = "beta")]
        test_channel: String,
    },
    /// Explain an error code, e.g. `flotilla explain E0201`.
    Explain { code: String },
    /// Run the language server on stdin/stdout (for editors).
    Lsp,
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
    fn source(&self, fleet: &Path) -> Result<ConfigSource, String> {
        match &self.config_set {
            Some(dir) => Ok(ConfigSource::Dir(dir.clone())),
            None => {
                if !fleet.exists() {
                    return Err(format!("{} does not exist", fleet.display()));
                }
                // A path inside the repository, written with `/`: `./stdlib/config/` too.
                let mut parts = Vec::new();
                for component in Path::new(&self.config_path).components() {
                    match component {
                        std::path::Component::Normal(part) => parts.push(part.to_string_lossy()),
                        std::path::Component::CurDir => {}
                        _ => {
                            return Err(format!(
                                "--config-path `{}` must be a relative path inside the repository, without `..`",
                                self.config_path
                            ));
                        }
                    }
                }
                let repo = Repo::discover(fleet).map_err(|e| {
                    format!("channels pin config sets by git ref, but {} is not in a git repository ({e}); pass --config-set DIR", fleet.display())
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

#[derive(Clone, Copy, ValueEnum)]
enum DiagnosticFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum DataFormat {
    Yaml,
    Json,
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
    match execute(cli.command) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "error: {message}");
            1
        }
    }
}

fn execute(command: Command) -> Result<i32, String> {
    match command {
        Command::Check { path, format } => {
            let analysis = analyze(&DiskFs, &path);
            report(&analysis, format)?;
            Ok(i32::from(analysis.has_errors()))
        }
        Command::Eval {
            path,
            clusters,
            format,
        } => {
            let analysis = analyze(&DiskFs, &path);
            report(&analysis, DiagnosticFormat::Text)?;
            let Some(fleet) = analysis.model.as_ref().filter(|_| !analysis.has_errors()) else {
                return Ok(1);
            };
            let value = if clusters.is_empty() {
                serde_json::to_value(fleet).map_err(|e| e.to_string())?
            } else {
                let mut selected = Vec::new();
                for id in &clusters {
                    match fleet.cluster(id) {
                        Some(c) => selected.push(c),
                        None => {
                            let known: Vec<&str> = fleet.cluster_ids().collect();
                            return Err(format!(
                                "no cluster `{id}` in {}; clusters: {}",
                                path.display(),
                                known.join(", ")
                            ));
                        }
                    }
                }
                if selected.len() == 1 {
                    serde_json::to_value(selected[0]).map_err(|e| e.to_string())?
                } else {
                    serde_json::to_value(&selected).map_err(|e| e.to_string())?
                }
            };
            let text = match format {
                DataFormat::Json => {
                    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())? + "\n"
                }
                DataFormat::Yaml => serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())?,
            };
            write_stdout(&text)?;
            Ok(0)
        }
        Command::Compile {
            path,
            out,
            clusters,
            config,
        } => {
            let source = config.source(&path)?;
            let compilation = compile(&DiskFs, &path, &source, &clusters);
            print_diagnostics(&compilation.sources, &compilation.diagnostics);
            if compilation.has_errors() {
                let _ = writeln!(
                    std::io::stderr(),
                    "nothing written: {} is unchanged",
                    out.display()
                );
                return Ok(1);
            }
            write_output(&out, &compilation.artifacts, clusters.is_empty())?;
            let mut summary = String::new();
            for a in &compilation.artifacts {
                summary.push_str(&format!(
                    "{}  channel {} ({})  {} files
",
                    a.cluster,
                    a.summary.channel,
                    a.summary.config_set,
                    a.files.len()
                ));
                for p in &a.summary.node_pools {
                    summary.push_str(&format!(
                        "  node pool {:<24} config hash {}
",
                        p.name, p.config_hash
                    ));
                }
            }
            summary.push_str(&format!(
                "compiled {} cluster{} into {}\n",
                compilation.artifacts.len(),
                if compilation.artifacts.len() == 1 {
                    ""
                } else {
                    "s"
                },
                out.display()
            ));
            write_stdout(&summary)?;
            Ok(0)
        }
        Command::Diff {
            path,
            base,
            head,
            format,
            config,
        } => {
            let source = config.source(&path)?;
            let repo = Repo::discover(&path)?;
            let at_revision = |rev: &str| -> Result<Compilation, String> {
                let commit = repo.resolve(rev)?;
                let fs = repo.flt_files_at(&commit)?;
                let relative = repo.relative(&path).ok_or_else(|| {
                    format!(
                        "{} is not inside the repository at {}",
                        path.display(),
                        repo.root.display()
                    )
                })?;
                let fleet = repo.root.join(relative);
                if fs.read(&fleet).is_none() && fs.flt_files(&fleet).is_empty() {
                    let _ = writeln!(
                        std::io::stderr(),
                        "note: {} has no fleet at {rev}; its clusters count as added",
                        path.display()
                    );
                    return Ok(Compilation::empty());
                }
                // Channels pinned to `HEAD` read the config set as of this revision.
                let source = match &source {
                    ConfigSource::Git { repo, path, .. } => ConfigSource::Git {
                        repo: repo.clone(),
                        path: path.clone(),
                        head: Some(commit),
                    },
                    dir => dir.clone(),
                };
                Ok(compile(&fs, &fleet, &source, &[]))
            };
            let base_compilation = at_revision(&base)?;
            let head_compilation = match &head {
                Some(rev) => at_revision(rev)?,
                None => compile(&DiskFs, &path, &source, &[]),
            };
            let head_label = head.clone().unwrap_or_else(|| "work tree".to_string());
            for (label, c) in [(&base, &base_compilation), (&head_label, &head_compilation)] {
                if c.has_errors() {
                    print_diagnostics(&c.sources, &c.diagnostics);
                    return Err(format!("the fleet at {label} does not compile"));
                }
            }
            let result = crate::diff::diff(
                &base,
                &base_compilation.artifacts,
                &head_label,
                &head_compilation.artifacts,
            );
            let text = match format {
                DiffFormat::Text => crate::diff::to_text(
                    &result,
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                ),
                DiffFormat::Markdown => crate::diff::to_markdown(&result),
                DiffFormat::Json => {
                    serde_json::to_string_pretty(&result).map_err(|e| e.to_string())? + "\n"
                }
            };
            write_stdout(&text)?;
            Ok(if result.is_empty() { 0 } else { 2 })
        }
        Command::Plan {
            path,
            clusters,
            out,
            format,
            detailed_exitcode,
            aws_endpoint_url,
            kube_endpoints,
            kube_contexts,
            concurrency,
            config,
        } => {
            let source = config.source(&path)?;
            let compilation = compile(&DiskFs, &path, &source, &clusters);
            print_diagnostics(&compilation.sources, &compilation.diagnostics);
            let (Some(fleet), false) = (compilation.fleet.as_ref(), compilation.has_errors())
            else {
                return Ok(1);
            };
            let connector = KubeConnector {
                endpoints: pairs(&kube_endpoints, "--kube-endpoint", fleet)?,
                contexts: pairs(&kube_contexts, "--kube-context", fleet)?,
            };
            let (targets, retired) = crate::plan::plan_targets(fleet, &compilation.artifacts);
            for (id, status) in retired {
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping {id}: lifecycle status {status}"
                );
            }
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|e| format!("cannot start the async runtime: {e}"))?;
            let cloud = crate::live::aws::AwsCloud::new(aws_endpoint_url);
            let progress = std::io::stderr().is_terminal();
            let plan = runtime.block_on(crate::plan::plan_fleet(
                &targets,
                &cloud,
                &connector,
                concurrency,
                progress,
            ));
            let json = serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())? + "\n";
            if let Some(out) = &out {
                write_atomically(out, &json)?;
            }
            let text = match format {
                DiffFormat::Text => crate::plan::to_text(
                    &plan,
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                ),
                DiffFormat::Markdown => crate::plan::to_markdown(&plan),
                DiffFormat::Json => json,
            };
            write_stdout(&text)?;
            Ok(if !plan.failures.is_empty() {
                1
            } else if detailed_exitcode && plan.has_changes() {
                2
            } else {
                0
            })
        }
        Command::Apply(args) => apply::apply_command(args),
        Command::Status(args) => apply::status_command(args),
        Command::Block(args) => apply::block_command(args),
        Command::Unblock(args) => apply::unblock_command(args),
        Command::Fmt { path, check } => fmt(&path, check),
        Command::ImportRegistry {
            file,
            out,
            channels_import,
            production_channel,
            test_channel,
        } => {
            let yaml = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let options = crate::registry::ImportOptions {
                channels_import,
                production_channel,
                test_channel,
            };
            let source = crate::registry::import(&yaml, &options)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            match out {
                Some(out) => std::fs::write(&out, source)
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?,
                None => write_stdout(&source)?,
            }
            Ok(0)
        }
        Command::Lsp => Ok(crate::lsp::run_stdio()),
        Command::Explain { code } => match explain(&code.to_uppercase()) {
            Some(text) => {
                write_stdout(&format!("{}: {text}\n", code.to_uppercase()))?;
                Ok(0)
            }
            None => Err(format!("unknown error code `{code}`")),
        },
    }
}

fn print_diagnostics(
    sources: &crate::source::SourceMap,
    diagnostics: &[crate::diagnostic::Diagnostic],
) {
    if !diagnostics.is_empty() {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let _ = std::io::stderr().write_all(render_all(sources, diagnostics, color).as_bytes());
    }
}

fn report(analysis: &Analysis, format: DiagnosticFormat) -> Result<(), String> {
    let sources = &analysis.program.sources;
    match format {
        DiagnosticFormat::Text => {
            if !analysis.diagnostics.is_empty() {
                let color =
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                let text = render_all(sources, &analysis.diagnostics, color);
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
        }
        DiagnosticFormat::Json => {
            let mut text = String::new();
            for d in &analysis.diagnostics {
                text.push_str(
                    &serde_json::to_string(&to_json(sources, d)).map_err(|e| e.to_string())?,
                );
                text.push('\n');
            }
            write_stdout(&text)?;
        }
    }
    Ok(())
}

/// Format every file, even after one fails (unreadable, not UTF-8, a syntax error): each
/// failure is reported with its file and position, and the exit code is 1 at the end.
fn fmt(path: &Path, check: bool) -> Result<i32, String> {
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
        if let Err(problem) = fmt_file(&file, check, &mut unformatted) {
            let _ = std::io::stderr().write_all(problem.as_bytes());
            failed = true;
        }
    }
    for f in &unformatted {
        write_stdout(&format!("{f}\n"))?;
    }
    Ok(i32::from(failed || !unformatted.is_empty()))
}

/// Format one file, or with `check` note it in `unformatted` if it is not formatted.
/// `Err` is the report for standard error.
fn fmt_file(file: &Path, check: bool, unformatted: &mut Vec<String>) -> Result<(), String> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|e| format!("error: cannot read {name}: {e}\n"))?;
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
                return std::fs::write(file, formatted)
                    .map_err(|e| format!("error: cannot write {name}: {e}\n"));
            }
            Err(diagnostics) => diagnostics,
        },
    };
    Err(render_all(&sources, &diagnostics, false))
}

/// `ID=VALUE` arguments as a map.
/// `ID=VALUE` arguments by cluster id. Every id must be a cluster of the fleet and
/// appear once: a typo must not silently leave a cluster on its default endpoint.
fn pairs(
    args: &[String],
    flag: &str,
    fleet: &crate::model::Fleet,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for a in args {
        let (id, value) = a
            .split_once('=')
            .ok_or_else(|| format!("{flag} expects ID=VALUE, got `{a}`"))?;
        if fleet.cluster(id).is_none() {
            return Err(format!(
                "{flag} names `{id}`, which is not a cluster of the fleet"
            ));
        }
        if out.insert(id.to_string(), value.to_string()).is_some() {
            return Err(format!("{flag} gives `{id}` twice"));
        }
    }
    Ok(out)
}

/// Write `text` to `path` through a temporary file in the same directory, so a reader
/// (apply, reading a saved plan) never sees half of it.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", path.display()))?;
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
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Write to stdout; a closed pipe (`flotilla eval | head`) is not an error.
fn write_stdout(text: &str) -> Result<(), String> {
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}
