//! `apply`: compile, plan (or check the saved plan), confirm, call [`crate::apply`],
//! report.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::ValueEnum;

use super::world::{Backend, Endpoints, compile_fleet, runtime, targets, who};
use super::{CliError, CliResult, ConfigArgs, OutputFormat, write_stdout};
use crate::apply::{self, ClusterReport, Options, Outcome, Progress, Target, rfc3339};
use crate::live::Clock;
use crate::model::Fleet;
use crate::plan::{ClusterTarget, Plan};

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Apply only this cluster (repeatable).
    #[arg(long = "cluster", value_name = "ID")]
    pub clusters: Vec<String>,
    /// Apply this saved plan (`plan --out`); refused if the live state or the compiled
    /// artifacts moved since it was made.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Take ownership of manifest fields that other field managers own.
    #[arg(long)]
    pub force_conflicts: bool,
    /// `text` (a summary table) or `json` (one report per cluster).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Logs on standard error as `text` or `json` lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Clusters of one channel applied at the same time.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// How long to wait for another apply's lock on a cluster before refusing.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub lock_wait: u64,
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn apply_command(args: ApplyArgs) -> CliResult<i32> {
    init_logs(args.log_format);
    let Some((fleet, compilation)) = compile_fleet(&args.path, &args.clusters, &args.config)?
    else {
        return Ok(1);
    };
    let fleet = &fleet;
    let mut targets = targets(fleet, &compilation);
    let saved: Option<Plan> = match &args.plan {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|source| CliError::Read {
                path: file.clone(),
                source,
            })?;
            let plan = Plan::from_saved(&text).map_err(|source| CliError::SavedPlan {
                path: file.clone(),
                source,
            })?;
            // The saved plan decides which clusters are applied.
            let named: Vec<&str> = plan.clusters.iter().map(|c| c.cluster.as_str()).collect();
            for id in &named {
                if !targets.iter().any(|t| t.artifacts.cluster == *id) {
                    return Err(CliError::PlanForUnknownCluster(id.to_string()));
                }
            }
            targets.retain(|t| named.contains(&t.artifacts.cluster.as_str()));
            Some(plan)
        }
        None => None,
    };
    let backend = Backend::open(&args.endpoints, fleet, &args.path)?;
    let code = apply_with(&args, fleet, &targets, saved, &backend);
    // The world moved (time, and in a local world what the calls did) whatever happened.
    backend.save()?;
    code
}

/// Plan (or check the saved plan), confirm, apply, report: the exit code.
fn apply_with(
    args: &ApplyArgs,
    fleet: &Fleet,
    targets: &[ClusterTarget<'_>],
    saved: Option<Plan>,
    backend: &Backend,
) -> CliResult<i32> {
    let runtime = runtime()?;
    let fresh = runtime.block_on(backend.plan(fleet, targets, args.concurrency.max(1) * 2));
    // A cluster whose plan failed (another account's credentials, a read that failed)
    // is refused in its turn; the others go on.
    let refused: Vec<apply::Refusal> = fresh
        .failures
        .iter()
        .filter_map(|failure| {
            Some(apply::Refusal {
                cluster: fleet.cluster(&failure.cluster)?,
                reason: format!("not applied: {}", failure.error),
            })
        })
        .collect();
    for refusal in &refused {
        let _ = writeln!(
            std::io::stderr(),
            "error: {}: {}",
            refusal.cluster.id,
            refusal.reason
        );
    }
    let plan = match saved {
        Some(mut saved) => {
            saved
                .clusters
                .retain(|c| !refused.iter().any(|r| r.cluster.id == c.cluster));
            let moved = crate::plan::what_moved(&saved, &fresh);
            if !moved.is_empty() {
                let mut message = String::from("the saved plan is stale; nothing was applied:\n");
                for line in moved {
                    message.push_str(&format!("  {line}\n"));
                }
                message.push_str("plan again and review the new plan");
                let _ = writeln!(std::io::stderr(), "error: {message}");
                return Ok(1);
            }
            saved
        }
        None => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            if matches!(args.format, OutputFormat::Text) {
                write_stdout(&crate::plan::to_text(&fresh, color))?;
            }
            fresh
        }
    };
    if !plan.has_changes() && refused.is_empty() {
        if matches!(args.format, OutputFormat::Json) {
            write_stdout("[]\n")?;
        }
        let _ = writeln!(std::io::stderr(), "nothing to apply");
        return Ok(0);
    }
    if plan.has_changes() && !args.auto_approve && !confirm(&plan)? {
        return Ok(1);
    }
    let mut options = Options::new(who());
    options.force_conflicts = args.force_conflicts;
    options.concurrency = args.concurrency;
    options.lock.wait = Duration::from_secs(args.lock_wait);
    let work: Vec<Target> = plan
        .clusters
        .iter()
        .filter(|c| !c.steps.is_empty())
        .filter_map(|c| {
            Some(Target {
                plan: c,
                artifacts: targets
                    .iter()
                    .find(|t| t.artifacts.cluster == c.cluster)?
                    .artifacts,
                cluster: fleet.cluster(&c.cluster)?,
            })
        })
        .collect();
    let progress = CliProgress::new(backend.world().clock);
    let reports = runtime.block_on(apply::apply_fleet(
        &work,
        &refused,
        &backend.world(),
        &options,
        &progress,
    ));
    progress.finish();
    match args.format {
        OutputFormat::Text => write_stdout(&summary(&reports))?,
        OutputFormat::Json => write_stdout(
            &(serde_json::to_string_pretty(&reports).map_err(|source| CliError::Json {
                what: "apply report",
                source,
            })? + "\n"),
        )?,
    }
    Ok(i32::from(
        reports.iter().any(|r| r.outcome != Outcome::Done),
    ))
}

/// Ask on the terminal; refuse when nobody can answer.
fn confirm(plan: &Plan) -> CliResult<bool> {
    if !std::io::stdin().is_terminal() {
        let _ = writeln!(
            std::io::stderr(),
            "error: standard input is not a terminal, so nobody can confirm this plan; nothing was applied (pass --auto-approve to apply without asking)"
        );
        return Ok(false);
    }
    let clusters = plan.clusters.iter().filter(|c| !c.steps.is_empty()).count();
    eprint!("apply these changes to {clusters} cluster(s)? type `yes` to go on: ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::Stdin)?;
    if answer.trim() == "yes" {
        Ok(true)
    } else {
        let _ = writeln!(std::io::stderr(), "not confirmed; nothing was applied");
        Ok(false)
    }
}

/// One line per cluster, then what failed and what was not started.
fn summary(reports: &[ClusterReport]) -> String {
    let mut out = String::from("\n");
    out.push_str(&format!(
        "{:<36} {:<8} {:>5} {:>7}\n",
        "cluster", "result", "done", "pending"
    ));
    for r in reports {
        let outcome = match r.outcome {
            Outcome::Done => "done",
            Outcome::Failed => "FAILED",
            Outcome::Refused => "REFUSED",
            Outcome::Skipped => "skipped",
        };
        out.push_str(&format!(
            "{:<36} {:<8} {:>5} {:>7}\n",
            r.cluster,
            outcome,
            r.done.len(),
            r.not_started.len()
        ));
    }
    for r in reports.iter().filter(|r| r.failed.is_some()) {
        out.push_str(&format!(
            "\n{}: {}\n",
            r.cluster,
            r.failed.as_deref().unwrap_or("")
        ));
        for line in &r.details {
            out.push_str(&format!("    {line}\n"));
        }
        if !r.done.is_empty() {
            out.push_str(&format!("  done: {}\n", brief(&r.done)));
        }
        if !r.not_started.is_empty() {
            out.push_str(&format!("  not started: {}\n", brief(&r.not_started)));
        }
    }
    let skipped: Vec<&str> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .map(|r| r.cluster.as_str())
        .collect();
    if !skipped.is_empty() {
        out.push_str(&format!(
            "\nnot started, because an earlier cluster failed: {}\n",
            skipped.join(", ")
        ));
    }
    out
}

/// Steps in a line: every stack, deletion and node step by name, manifests counted.
fn brief(steps: &[String]) -> String {
    let manifests = steps.iter().filter(|s| s.starts_with("apply ")).count();
    let mut parts: Vec<String> = steps
        .iter()
        .filter(|s| !s.starts_with("apply "))
        .cloned()
        .collect();
    if manifests > 0 {
        parts.push(format!("apply {manifests} manifest object(s)"));
    }
    parts.join("; ")
}

/// Logs on standard error, as text or JSON lines; `RUST_LOG`-style filtering is not
/// needed: apply logs its own steps at info.
fn init_logs(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Progress on a terminal (a spinner per cluster, saying what is awaited since when in
/// world time) and a log line per step.
struct CliProgress<'a> {
    bars: Option<indicatif::MultiProgress>,
    clusters: Mutex<BTreeMap<String, indicatif::ProgressBar>>,
    clock: &'a dyn Clock,
}

impl<'a> CliProgress<'a> {
    fn new(clock: &'a dyn Clock) -> CliProgress<'a> {
        CliProgress {
            bars: std::io::stderr()
                .is_terminal()
                .then(indicatif::MultiProgress::new),
            clusters: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    fn bar(&self, cluster: &str) -> Option<indicatif::ProgressBar> {
        let bars = self.bars.as_ref()?;
        let mut clusters = self.clusters.lock().ok()?;
        Some(
            clusters
                .entry(cluster.to_string())
                .or_insert_with(|| {
                    let bar = bars.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {prefix:36} {msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(cluster.to_string());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                })
                .clone(),
        )
    }

    fn finish(&self) {
        if let Ok(clusters) = self.clusters.lock() {
            for bar in clusters.values() {
                bar.finish_and_clear();
            }
        }
    }
}

fn elapsed(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Progress for CliProgress<'_> {
    fn step(&self, cluster: &str, step: &str) {
        if step.starts_with("apply ") {
            tracing::debug!(cluster, step, at = %rfc3339(self.clock.now_ms()), "step started");
        } else {
            tracing::info!(cluster, step, at = %rfc3339(self.clock.now_ms()), "step started");
        }
        if let Some(bar) = self.bar(cluster) {
            bar.set_message(step.to_string());
        }
    }

    fn waiting(&self, cluster: &str, what: &str, since_ms: i64, now_ms: i64) {
        if let Some(bar) = self.bar(cluster) {
            bar.set_message(format!(
                "waiting for {what} since {} ({})",
                rfc3339(since_ms),
                elapsed(now_ms - since_ms)
            ));
        }
    }

    fn note(&self, cluster: &str, message: &str) {
        if message.starts_with("FORCED") {
            tracing::warn!(cluster, at = %rfc3339(self.clock.now_ms()), "{message}");
        } else {
            tracing::info!(cluster, at = %rfc3339(self.clock.now_ms()), "{message}");
        }
        if let Some(bar) = self.bar(cluster) {
            bar.set_message(message.to_string());
        }
    }

    fn done(&self, cluster: &str, step: &str) {
        if step.starts_with("apply ") {
            tracing::debug!(cluster, step, at = %rfc3339(self.clock.now_ms()), "step done");
        } else {
            tracing::info!(cluster, step, at = %rfc3339(self.clock.now_ms()), "step done");
        }
    }
}
