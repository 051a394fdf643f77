//! `apply`, `status`, `block`, `unblock`: compile, pick the world (real endpoints or
//! the local simulated one), call [`crate::apply`], print.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::ValueEnum;

use super::{CliError, CliResult, ConfigArgs, pairs, print_diagnostics, write_stdout};
use crate::apply::local::{LocalAccounts, LocalWorld};
use crate::apply::{
    self, Accounts, Block, ClusterReport, Options, Outcome, Progress, SameCredentials, Target,
    World, rfc3339,
};
use crate::compile::{Compilation, compile};
use crate::live::aws::AwsCloud;
use crate::live::{Clock, SystemClock, Timeouts};
use crate::model::Fleet;
use crate::plan::{ClusterPlan, ClusterTarget, Connector, KubeConnector, Plan, plan_fleet};
use crate::sim::{PlannedRoll, WorldDescription, predict};
use crate::source::DiskFs;

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the clusters live.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum WorldKind {
    /// A simulated world kept under `.flotilla/` next to the fleet, on an accelerated
    /// clock: no cloud account needed.
    Local,
}

/// How to reach the clusters: shared by plan, apply, status, block and unblock.
#[derive(clap::Args)]
pub struct Endpoints {
    /// `local`: the simulated world under `.flotilla/` next to the fleet.
    #[arg(long, value_enum)]
    pub world: Option<WorldKind>,
    /// Send every AWS call here (e.g. a local emulator); `AWS_ENDPOINT_URL` works too.
    #[arg(long, value_name = "URL", value_parser = crate::live::aws::endpoint_url)]
    pub aws_endpoint_url: Option<String>,
    /// Fail a cluster when one AWS or Kubernetes call (retries included) has no answer
    /// after this many seconds [default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Reach a cluster's API server at URL instead of its `api_server_url` (repeatable).
    #[arg(long = "kube-endpoint", value_name = "ID=URL")]
    pub kube_endpoints: Vec<String>,
    /// Use kubeconfig context CTX for a cluster instead of the context named after it.
    #[arg(long = "kube-context", value_name = "ID=CTX")]
    pub kube_contexts: Vec<String>,
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

#[derive(clap::Args)]
pub struct StatusArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Show only this cluster (repeatable).
    #[arg(long = "cluster", value_name = "ID")]
    pub clusters: Vec<String>,
    /// `text` (a table per cluster) or `json` (stable: see `flotilla status --help`).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(clap::Args)]
pub struct BlockArgs {
    /// The cluster to block.
    pub cluster: String,
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Why (shown to everyone whose apply is refused).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(clap::Args)]
pub struct UnblockArgs {
    /// The cluster to unblock.
    pub cluster: String,
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The cluster whose rollout to predict.
    #[arg(long)]
    pub cluster: String,
    /// `local` (the world under `.flotilla/` next to the fleet) or a world description
    /// file (YAML or JSON; fields documented in `flotilla::sim::WorldDescription`).
    #[arg(long, value_name = "local|FILE", default_value = "local")]
    pub world: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Compile the fleet: its model and the compilation (whose `fleet` is taken out), or
/// `None` after reporting its diagnostics.
fn compile_fleet(
    path: &std::path::Path,
    clusters: &[String],
    config: &ConfigArgs,
) -> CliResult<Option<(Fleet, Compilation)>> {
    let source = config.source(path)?;
    let mut compilation = compile(&DiskFs, path, &source, clusters);
    print_diagnostics(&compilation.sources, &compilation.diagnostics);
    if compilation.has_errors() {
        return Ok(None);
    }
    Ok(compilation.fleet.take().map(|fleet| (fleet, compilation)))
}

/// Plan targets of every compiled cluster that is not being retired.
fn targets<'a>(fleet: &'a Fleet, compilation: &'a Compilation) -> Vec<ClusterTarget<'a>> {
    let (targets, retired) = crate::plan::plan_targets(fleet, &compilation.artifacts);
    for (id, status) in retired {
        let _ = writeln!(
            std::io::stderr(),
            "skipping {id}: lifecycle status {status}"
        );
    }
    targets
}

/// The world the commands act on: AWS and kube, or the local simulated world.
pub struct Backend {
    accounts: Box<dyn Accounts>,
    connector: Box<dyn Connector>,
    clock: Box<dyn Clock>,
    local: Option<LocalWorld>,
}

impl Backend {
    pub fn open(
        endpoints: &Endpoints,
        fleet: &Fleet,
        path: &std::path::Path,
    ) -> CliResult<Backend> {
        if endpoints.world == Some(WorldKind::Local) {
            let local = LocalWorld::open(path).map_err(CliError::LocalWorld)?;
            let accounts =
                LocalAccounts::new(&local, fleet.clusters.iter().map(|c| c.account.as_str()));
            return Ok(Backend {
                accounts: Box::new(accounts),
                connector: Box::new(local.connector()),
                clock: Box::new(local.clock()),
                local: Some(local),
            });
        }
        if endpoints.aws_endpoint_url.is_none() {
            crate::live::aws::check_endpoint_variable().map_err(CliError::Endpoint)?;
        }
        let timeouts = Timeouts::from_seconds(endpoints.timeout);
        Ok(Backend {
            accounts: Box::new(SameCredentials(Box::new(
                AwsCloud::new(endpoints.aws_endpoint_url.clone()).with_timeouts(timeouts),
            ))),
            connector: Box::new(KubeConnector {
                endpoints: pairs(&endpoints.kube_endpoints, "--kube-endpoint", fleet)?,
                contexts: pairs(&endpoints.kube_contexts, "--kube-context", fleet)?,
                timeouts,
            }),
            clock: Box::new(SystemClock),
            local: None,
        })
    }

    fn world(&self) -> World<'_> {
        World {
            accounts: self.accounts.as_ref(),
            connector: self.connector.as_ref(),
            clock: self.clock.as_ref(),
        }
    }

    /// Plan every target, each through its account's credentials.
    pub async fn plan(
        &self,
        fleet: &crate::model::Fleet,
        targets: &[ClusterTarget<'_>],
        concurrency: usize,
    ) -> Plan {
        let progress = std::io::stderr().is_terminal();
        let mut by_account: BTreeMap<&str, Vec<ClusterTarget>> = BTreeMap::new();
        for t in targets {
            if let Some(cluster) = fleet.cluster(&t.artifacts.cluster) {
                by_account
                    .entry(cluster.account.as_str())
                    .or_default()
                    .push(ClusterTarget::new(cluster, t.artifacts));
            }
        }
        let mut plan = Plan {
            version: crate::plan::PLAN_VERSION,
            ..Plan::default()
        };
        for (account, targets) in by_account {
            let part = plan_fleet(
                &targets,
                self.accounts.cloud(account),
                self.connector.as_ref(),
                concurrency,
                progress,
            )
            .await;
            plan.clusters.extend(part.clusters);
            plan.failures.extend(part.failures);
        }
        plan.clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        plan.failures.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        plan
    }

    /// Keep what changed: the local world's file (with the sample application in every
    /// cluster that has come up); nothing for the real world.
    pub fn save(&self) -> CliResult<()> {
        match &self.local {
            Some(local) => {
                local.seed_sample_apps();
                local.save().map_err(CliError::LocalWorld)
            }
            None => Ok(()),
        }
    }
}

fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(CliError::Runtime)
}

/// Who is applying, for the lock and for blocks: user, host and process.
fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host} (pid {})", std::process::id())
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
            let plan: Plan = serde_json::from_str(&text).map_err(|source| CliError::NotAPlan {
                path: file.clone(),
                source,
            })?;
            if plan.version != crate::plan::PLAN_VERSION {
                return Err(CliError::PlanVersion {
                    path: file.clone(),
                    found: plan.version,
                    expected: crate::plan::PLAN_VERSION,
                });
            }
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
    if !fresh.failures.is_empty() {
        for failure in &fresh.failures {
            let _ = writeln!(
                std::io::stderr(),
                "error: {}: {}",
                failure.cluster,
                failure.error
            );
        }
        let _ = writeln!(
            std::io::stderr(),
            "nothing was applied: the live state of {} cluster(s) could not be read",
            fresh.failures.len()
        );
        return Ok(1);
    }
    let plan = match saved {
        Some(saved) => {
            let moved = stale(&saved, &fresh);
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
    if !plan.has_changes() {
        if matches!(args.format, OutputFormat::Json) {
            write_stdout("[]\n")?;
        }
        let _ = writeln!(std::io::stderr(), "nothing to apply");
        return Ok(0);
    }
    if !args.auto_approve && !confirm(&plan)? {
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
    let progress = CliProgress::new(backend.clock.as_ref());
    let reports = runtime.block_on(apply::apply_fleet(
        &work,
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

/// What moved between a saved plan and the live state now, one line per difference.
fn stale(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for old in &saved.clusters {
        let Some(new) = fresh.clusters.iter().find(|c| c.cluster == old.cluster) else {
            out.push(format!("{}: not planned now", old.cluster));
            continue;
        };
        out.extend(moved(old, new));
    }
    out
}

fn moved(old: &ClusterPlan, new: &ClusterPlan) -> Vec<String> {
    let (a, b) = (&old.fingerprint, &new.fingerprint);
    if a.digest == b.digest {
        return Vec::new();
    }
    let id = &old.cluster;
    let mut out = Vec::new();
    if a.desired != b.desired {
        out.push(format!(
            "{id}: the compiled artifacts changed since the plan was made"
        ));
    }
    for (what, before, after) in [
        ("stack", &a.stacks, &b.stacks),
        ("object", &a.objects, &b.objects),
        ("node", &a.nodes, &b.nodes),
    ] {
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for key in keys {
            let (x, y) = (before.get(key), after.get(key));
            if x != y {
                let show = |v: Option<&String>| v.map_or("absent".to_string(), Clone::clone);
                out.push(format!(
                    "{id}: {what} {key}: was {}, is {}",
                    show(x),
                    show(y)
                ));
            }
        }
    }
    if out.is_empty() {
        out.push(format!("{id}: the live state changed"));
    }
    out
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

pub fn status_command(args: StatusArgs) -> CliResult<i32> {
    let Some((fleet, compilation)) = compile_fleet(&args.path, &args.clusters, &args.config)?
    else {
        return Ok(1);
    };
    let fleet = &fleet;
    let targets = targets(fleet, &compilation);
    let backend = Backend::open(&args.endpoints, fleet, &args.path)?;
    let world = backend.world();
    let statuses = runtime()?.block_on(async {
        let mut out = Vec::new();
        for target in &targets {
            if let Some(spec) = fleet.cluster(&target.artifacts.cluster) {
                out.push(apply::status::cluster_status(target.artifacts, spec, &world).await);
            }
        }
        out
    });
    backend.save()?;
    match args.format {
        OutputFormat::Text => write_stdout(&apply::status::to_text(&statuses))?,
        OutputFormat::Json => write_stdout(
            &(serde_json::to_string_pretty(&statuses).map_err(|source| CliError::Json {
                what: "status",
                source,
            })? + "\n"),
        )?,
    }
    Ok(i32::from(statuses.iter().any(|s| s.error.is_some())))
}

/// Block or unblock one cluster: `reason` set blocks it.
fn set_block(
    cluster: &str,
    path: &std::path::Path,
    endpoints: &Endpoints,
    config: &ConfigArgs,
    reason: Option<String>,
) -> CliResult<i32> {
    let Some((fleet, _)) = compile_fleet(path, &[cluster.to_string()], config)? else {
        return Ok(1);
    };
    let spec = fleet
        .cluster(cluster)
        .ok_or_else(|| unknown_cluster(cluster, path, &fleet))?;
    let backend = Backend::open(endpoints, &fleet, path)?;
    let world = backend.world();
    let message: Result<String, crate::live::LiveError> = runtime()?.block_on(async {
        apply::check_account(
            world.accounts.cloud(&spec.account),
            &spec.region,
            &spec.account,
        )
        .await?;
        let api = world
            .connector
            .connect(&spec.id, &spec.api_server_url)
            .await?;
        match reason {
            Some(reason) => {
                let block = Block {
                    by: who(),
                    reason,
                    at: rfc3339(world.clock.now_ms()),
                };
                apply::set_block(api.as_ref(), &block).await?;
                Ok(format!("{cluster}: {block}\n"))
            }
            None => Ok(if apply::clear_block(api.as_ref()).await? {
                format!("{cluster}: unblocked\n")
            } else {
                format!("{cluster}: was not blocked\n")
            }),
        }
    });
    backend.save()?;
    match message {
        Ok(text) => {
            write_stdout(&text)?;
            Ok(0)
        }
        Err(source) => Err(CliError::Cluster {
            cluster: cluster.to_string(),
            source,
        }),
    }
}

pub fn block_command(args: BlockArgs) -> CliResult<i32> {
    set_block(
        &args.cluster,
        &args.path,
        &args.endpoints,
        &args.config,
        Some(args.reason),
    )
}

pub fn unblock_command(args: UnblockArgs) -> CliResult<i32> {
    set_block(
        &args.cluster,
        &args.path,
        &args.endpoints,
        &args.config,
        None,
    )
}

fn unknown_cluster(id: &str, path: &std::path::Path, fleet: &Fleet) -> CliError {
    CliError::UnknownCluster {
        id: id.to_string(),
        path: path.to_path_buf(),
        known: fleet.cluster_ids().map(str::to_string).collect(),
    }
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

/// Predict the rollout of the cluster's outdated pools on a copy of a simulated world:
/// each pool's stack update is assumed done (new instances boot with the new config
/// hash), then the rolling engine runs with the pool's settings.
pub fn simulate_command(args: SimulateArgs) -> CliResult<i32> {
    let Some((fleet, compilation)) = compile_fleet(
        &args.path,
        std::slice::from_ref(&args.cluster),
        &args.config,
    )?
    else {
        return Ok(1);
    };
    let cluster = fleet
        .cluster(&args.cluster)
        .ok_or_else(|| unknown_cluster(&args.cluster, &args.path, &fleet))?;
    let artifacts = compilation
        .artifacts
        .iter()
        .find(|a| a.cluster == cluster.id)
        .ok_or_else(|| CliError::NotCompiled(cluster.id.clone()))?;
    let mut world = if args.world == "local" {
        LocalWorld::open(&args.path)
            .map_err(CliError::LocalWorld)?
            .handle()
            .snapshot()
    } else {
        let text = std::fs::read_to_string(&args.world).map_err(|source| CliError::Read {
            path: PathBuf::from(&args.world),
            source,
        })?;
        WorldDescription::parse(&args.world, &text)?.build()
    };
    let mut rolls = Vec::new();
    for pool in &artifacts.summary.node_pools {
        let Some(declared) = cluster.node_pools.iter().find(|p| p.name == pool.name) else {
            continue;
        };
        let groups: Vec<String> = world
            .regions
            .get(&cluster.region)
            .map(|region| {
                region
                    .groups
                    .values()
                    .filter(|g| g.cluster == cluster.id)
                    .filter(|g| {
                        g.tags
                            .iter()
                            .any(|(k, v)| k == crate::plan::POOL_LABEL && v == &pool.name)
                    })
                    .map(|g| g.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        if groups.is_empty() {
            continue; // a new pool: created, not rolled
        }
        for group in &groups {
            world.change_pool_config(&cluster.region, group, &pool.config_hash);
        }
        rolls.push(PlannedRoll {
            cluster: cluster.id.clone(),
            region: cluster.region.clone(),
            spec: crate::apply::nodes::roll_spec(declared, &pool.config_hash),
        });
    }
    if rolls.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "{}: the world has no node pool of this cluster to roll",
            cluster.id
        );
    }
    let prediction = runtime()?.block_on(predict(&world, &rolls));
    match args.format {
        OutputFormat::Text => write_stdout(&prediction.to_text())?,
        OutputFormat::Json => write_stdout(
            &(serde_json::to_string_pretty(&prediction).map_err(|source| CliError::Json {
                what: "prediction",
                source,
            })? + "\n"),
        )?,
    }
    Ok(i32::from(
        prediction.pools.iter().any(|p| p.failure.is_some()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Fingerprint;

    fn plan_with(fingerprint: Fingerprint) -> Plan {
        Plan {
            version: crate::plan::PLAN_VERSION,
            clusters: vec![ClusterPlan {
                cluster: "c1".into(),
                registry_id: None,
                region: "eu-central-1".into(),
                creation: false,
                blocked: None,
                steps: Vec::new(),
                fingerprint,
            }],
            failures: Vec::new(),
        }
    }

    #[test]
    fn a_stale_plan_says_what_moved() {
        let before = Fingerprint {
            stacks: BTreeMap::from([("c1".into(), "arn@t1 UPDATE_COMPLETE".into())]),
            nodes: BTreeMap::from([("n1".into(), "h1".into())]),
            desired: "d1".into(),
            digest: "x".into(),
            ..Fingerprint::default()
        };
        let mut after = before.clone();
        after
            .stacks
            .insert("c1".into(), "arn@t2 UPDATE_COMPLETE".into());
        after.nodes.remove("n1");
        after.desired = "d2".into();
        after.digest = "y".into();
        let lines = stale(&plan_with(before.clone()), &plan_with(after));
        assert_eq!(
            lines,
            [
                "c1: the compiled artifacts changed since the plan was made",
                "c1: stack c1: was arn@t1 UPDATE_COMPLETE, is arn@t2 UPDATE_COMPLETE",
                "c1: node n1: was h1, is absent",
            ]
        );
        assert!(stale(&plan_with(before.clone()), &plan_with(before)).is_empty());
    }
}
