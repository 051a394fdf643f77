//! Apply: execute a [`Plan`] against the world. Per cluster, in this order: account
//! guard → block check → lock → stacks (etcd, control plane, node pools) through change
//! sets → `pre_apply` deletions → manifests by server-side apply → `post_apply`
//! deletions → node pool rolls → removed pools. Clusters go in channel order, a few at
//! a time, and the fleet stops at the first failed cluster.
//!
//! Nothing here keeps state of its own: every step is re-read from the world, so an
//! apply that was killed and is run again continues where the world says it is.

mod guard;
pub mod local;
pub(crate) mod nodes;
pub mod roll;
mod stacks;
pub mod status;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::live::template::check_sizes;
use crate::live::{ChangeSetKind, Clock, Cloud, ClusterApi, LiveError};
use crate::model::Cluster;
use crate::plan::{ClusterPlan, Connector, StackAction, Step};
use crate::render::Artifacts;

pub use crate::live::account::{Accounts, GuardedAccounts};
pub use guard::{Block, LockPolicy, Rollout, clear_block, read_block, set_block};
pub use local::LocalWorldError;
pub use stacks::{StackChange, StackOutcome};

/// The doors to the world.
pub struct World<'a> {
    pub accounts: &'a dyn Accounts,
    pub connector: &'a dyn Connector,
    pub clock: &'a dyn Clock,
}

impl World<'_> {
    /// The cloud as the cluster's credentials see it, behind the account guard.
    pub fn cloud(&self, cluster: &Cluster) -> &dyn Cloud {
        self.accounts
            .cloud(&cluster.account, cluster.aws_role_arn.as_deref())
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Take ownership of fields other managers own (server-side apply `force`).
    pub force_conflicts: bool,
    pub lock: LockPolicy,
    /// Longest wait for one stack operation.
    pub stack_deadline: Duration,
    /// Longest wait for a new cluster's API server to answer.
    pub api_deadline: Duration,
    /// Clusters of one channel applied at the same time.
    pub concurrency: usize,
}

impl Options {
    pub fn new(holder: String) -> Options {
        Options {
            force_conflicts: false,
            lock: LockPolicy {
                holder,
                ttl: Duration::from_secs(15 * 60),
                wait: Duration::from_secs(60),
            },
            stack_deadline: Duration::from_secs(25 * 60),
            api_deadline: Duration::from_secs(15 * 60),
            concurrency: 4,
        }
    }
}

/// Where apply tells people what it is doing: progress bars and logs in the CLI.
pub trait Progress: Send + Sync {
    /// A step of a cluster starts.
    fn step(&self, cluster: &str, step: &str);
    /// `what` has been awaited since `since_ms` (world clock; simulated in a local world).
    fn waiting(&self, cluster: &str, what: &str, since_ms: i64, now_ms: i64);
    /// Something worth telling while a step runs (a node cordoned, a pod evicted).
    fn note(&self, cluster: &str, message: &str);
    /// A step finished.
    fn done(&self, cluster: &str, step: &str);
}

/// A step that failed, with what explains it (stack events, conflicting fields).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepError {
    pub message: String,
    pub details: Vec<String>,
}

impl StepError {
    pub fn new(message: String) -> StepError {
        StepError {
            message,
            details: Vec::new(),
        }
    }

    fn live(error: LiveError) -> StepError {
        StepError::new(error.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step done.
    Done,
    /// A step failed; later steps were not started.
    Failed,
    /// Refused before anything was changed (blocked, locked, wrong account).
    Refused,
    /// Not started: an earlier cluster failed.
    Skipped,
}

/// What apply did to one cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    pub outcome: Outcome,
    pub done: Vec<String>,
    pub failed: Option<String>,
    /// Explanations of the failure (stack events, conflicting fields).
    pub details: Vec<String>,
    pub not_started: Vec<String>,
}

impl ClusterReport {
    fn new(cluster: &str) -> ClusterReport {
        ClusterReport {
            cluster: cluster.to_string(),
            outcome: Outcome::Done,
            done: Vec::new(),
            failed: None,
            details: Vec::new(),
            not_started: Vec::new(),
        }
    }
}

/// One cluster to apply: its plan, its artifacts and its model.
pub struct Target<'a> {
    pub plan: &'a ClusterPlan,
    pub artifacts: &'a Artifacts,
    pub cluster: &'a Cluster,
}

/// A cluster refused before its apply could start: its plan failed (credentials of
/// another account, live state that could not be read).
pub struct Refusal<'a> {
    pub cluster: &'a Cluster,
    pub reason: String,
}

/// A cluster of the fleet in its channel's turn.
enum Turn<'t, 'a> {
    Apply(&'t Target<'a>),
    Refuse(&'t Refusal<'a>),
}

impl Turn<'_, '_> {
    fn cluster(&self) -> &Cluster {
        match self {
            Turn::Apply(t) => t.cluster,
            Turn::Refuse(r) => r.cluster,
        }
    }
}

/// Apply every cluster of the plan: channel by channel (lowest order first), up to
/// `options.concurrency` clusters of a channel at once. A refused cluster fails in its
/// channel's turn like a failed one: the clusters of its channel are applied, those of
/// later channels are skipped.
pub async fn apply_fleet(
    targets: &[Target<'_>],
    refused: &[Refusal<'_>],
    world: &World<'_>,
    options: &Options,
    progress: &dyn Progress,
) -> Vec<ClusterReport> {
    let mut order: Vec<Turn> = targets
        .iter()
        .map(Turn::Apply)
        .chain(refused.iter().map(Turn::Refuse))
        .collect();
    order.sort_by(|a, b| {
        let (a, b) = (a.cluster(), b.cluster());
        (a.channel.order, &a.id).cmp(&(b.channel.order, &b.id))
    });
    let mut reports = Vec::new();
    let mut stopped = false;
    for channel in order.chunk_by(|a, b| a.cluster().channel.order == b.cluster().channel.order) {
        let applied = channel.iter().filter_map(|turn| match turn {
            Turn::Apply(target) => Some(*target),
            Turn::Refuse(_) => None,
        });
        let mut results: Vec<ClusterReport> = if stopped {
            applied.map(skipped).collect()
        } else {
            futures::stream::iter(applied)
                .map(|target| apply_cluster(target, world, options, progress))
                .buffered(options.concurrency.max(1))
                .collect()
                .await
        };
        results.extend(channel.iter().filter_map(|turn| match turn {
            Turn::Refuse(refusal) => Some(refused_report(refusal)),
            Turn::Apply(_) => None,
        }));
        results.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        stopped |= results.iter().any(|r| r.outcome != Outcome::Done);
        reports.extend(results);
    }
    reports
}

fn skipped(target: &Target) -> ClusterReport {
    let mut report = ClusterReport::new(&target.cluster.id);
    report.outcome = Outcome::Skipped;
    report.not_started = target.plan.steps.iter().map(describe).collect();
    report
}

fn refused_report(refusal: &Refusal) -> ClusterReport {
    let mut report = ClusterReport::new(&refusal.cluster.id);
    report.outcome = Outcome::Refused;
    report.failed = Some(refusal.reason.clone());
    report
}

/// A step in a few words, for progress and reports.
pub fn describe(step: &Step) -> String {
    match step {
        Step::Stack(s) => format!(
            "{} stack {}",
            match s.action {
                StackAction::Create => "create",
                StackAction::Update => "update",
            },
            s.stack
        ),
        Step::Manifest(m) => format!("apply {}", m.object),
        Step::Delete(d) => format!("delete {} ({})", d.object, d.phase.replace('_', "-")),
        Step::Roll(r) => format!(
            "roll node pool {} ({} of {} nodes)",
            r.node_pool, r.outdated, r.nodes
        ),
        Step::RemovePool(r) => format!("remove node pool {} ({} nodes)", r.node_pool, r.nodes),
    }
}

/// The order steps run in: stacks first (the API server may not exist before), then
/// deletions and manifests, then the nodes.
fn phase(step: &Step) -> u8 {
    match step {
        Step::Stack(_) => 0,
        Step::Delete(d) if d.phase == "pre_apply" => 1,
        Step::Manifest(_) => 2,
        Step::Delete(_) => 3,
        Step::Roll(_) => 4,
        Step::RemovePool(_) => 5,
    }
}

/// Everything one cluster's apply holds while it runs.
struct Run<'a> {
    target: &'a Target<'a>,
    world: &'a World<'a>,
    options: &'a Options,
    progress: &'a dyn Progress,
    api: Option<Box<dyn ClusterApi>>,
    lock: Option<guard::Lock>,
    parameters: Option<BTreeMap<String, String>>,
}

pub async fn apply_cluster(
    target: &Target<'_>,
    world: &World<'_>,
    options: &Options,
    progress: &dyn Progress,
) -> ClusterReport {
    let mut report = ClusterReport::new(&target.cluster.id);
    let mut steps: Vec<&Step> = target.plan.steps.iter().collect();
    steps.sort_by_key(|s| phase(s)); // stable: the plan's order within a phase
    let mut run = Run {
        target,
        world,
        options,
        progress,
        api: None,
        lock: None,
        parameters: None,
    };
    let refuse = |mut report: ClusterReport, why: String| {
        report.outcome = Outcome::Refused;
        report.failed = Some(why);
        report.not_started = steps.iter().map(|s| describe(s)).collect();
        report
    };
    if let Err(why) = run.admit().await {
        return refuse(report, why);
    }
    for (index, step) in steps.iter().enumerate() {
        let name = describe(step);
        progress.step(&target.cluster.id, &name);
        match run.execute(step, &name).await {
            Ok(()) => {
                progress.done(&target.cluster.id, &name);
                report.done.push(name);
            }
            Err(error) => {
                report.outcome = Outcome::Failed;
                report.failed = Some(format!("{name}: {}", error.message));
                report.details = error.details;
                report.not_started = steps[index + 1..].iter().map(|s| describe(s)).collect();
                break;
            }
        }
    }
    if report.outcome == Outcome::Done {
        let created = created_pools(&steps);
        if !created.is_empty() {
            let step = format!("wait for the nodes of {}", created.join(", "));
            progress.step(&target.cluster.id, &step);
            match run.wait_for_nodes(&created).await {
                Ok(()) => report.done.push(step),
                Err(error) => {
                    report.outcome = Outcome::Failed;
                    report.failed = Some(format!("{step}: {}", error.message));
                }
            }
        }
    }
    if let (Some(lock), Some(api)) = (run.lock.take(), run.api.as_deref())
        && let Err(e) = lock.release(api).await
    {
        report.details.push(format!(
            "the apply lock could not be released (it expires by itself): {e}"
        ));
    }
    report
}

/// Node pools whose stacks this apply creates.
fn created_pools(steps: &[&Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Stack(s) if s.action == StackAction::Create => {
                s.role.strip_prefix("node-pool/").map(str::to_string)
            }
            _ => None,
        })
        .collect()
}

impl Run<'_> {
    /// A created pool is done when its minimum number of nodes is Ready.
    async fn wait_for_nodes(&mut self, pools: &[String]) -> Result<(), StepError> {
        let cluster = self.target.cluster;
        let wanted: Vec<(&str, usize)> = cluster
            .node_pools
            .iter()
            .filter(|p| pools.contains(&p.name))
            .map(|p| (p.name.as_str(), p.min_size.max(0) as usize))
            .collect();
        let started = self.world.clock.now_ms();
        let mut pause = Duration::from_secs(10);
        loop {
            let nodes = self.api().await?.nodes(crate::plan::POOL_LABEL).await;
            let missing: Vec<String> = match &nodes {
                Ok(nodes) => wanted
                    .iter()
                    .filter_map(|(pool, min)| {
                        let ready = nodes
                            .iter()
                            .filter(|n| {
                                n.ready
                                    && n.labels.get(crate::plan::POOL_LABEL).map(String::as_str)
                                        == Some(*pool)
                            })
                            .count();
                        (ready < *min).then(|| format!("{pool} ({ready} of {min} Ready)"))
                    })
                    .collect(),
                Err(e) if e.retryable => vec![e.to_string()],
                Err(e) => return Err(StepError::live(e.clone())),
            };
            if missing.is_empty() {
                return Ok(());
            }
            let now = self.world.clock.now_ms();
            if now - started >= self.options.api_deadline.as_millis() as i64 {
                return Err(StepError::new(format!(
                    "nodes not Ready after {} s: {}",
                    self.options.api_deadline.as_secs(),
                    missing.join(", ")
                )));
            }
            let what = format!("nodes of {}", missing.join(", "));
            self.progress.waiting(&cluster.id, &what, started, now);
            self.world.clock.sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }

    fn cloud(&self) -> &dyn Cloud {
        self.world.cloud(self.target.cluster)
    }

    /// Template sizes, account guard, update block, lock — before anything is changed.
    /// A cluster that does not exist yet has no API server: its block and lock are
    /// checked once the control plane is up.
    async fn admit(&mut self) -> Result<(), String> {
        let spec = self.target.cluster;
        let files = &self.target.artifacts.files;
        check_sizes(
            self.target.plan.steps.iter().filter_map(|step| match step {
                Step::Stack(s) => Some((s.stack.as_str(), files.get(&s.artifact)?.as_str())),
                _ => None,
            }),
            spec.template_bucket.as_deref(),
        )?;
        self.world
            .accounts
            .check(&spec.account, spec.aws_role_arn.as_deref(), &spec.region)
            .await
            .map_err(|e| e.message)?;
        if let Some(reason) = &self.target.plan.blocked {
            return Err(format!(
                "updates are blocked by the config item cluster_update_block: {reason}"
            ));
        }
        if self.target.plan.creation || self.target.plan.steps.is_empty() {
            return Ok(());
        }
        self.connect_and_lock().await
    }

    async fn connect_and_lock(&mut self) -> Result<(), String> {
        let spec = self.target.cluster;
        let api = self
            .world
            .connector
            .connect(&spec.id, &spec.api_server_url)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(block) = read_block(api.as_ref()).await.map_err(|e| e.to_string())? {
            return Err(format!(
                "the cluster is {block}; `flotilla unblock {}` lifts it",
                spec.id
            ));
        }
        match guard::acquire(api.as_ref(), self.world.clock, &self.options.lock)
            .await
            .map_err(|e| e.to_string())?
        {
            Ok(lock) => self.lock = Some(lock),
            Err(held) => {
                return Err(format!(
                    "another apply holds the cluster's lock ({}, until {}); waited {} s",
                    held.holder,
                    held.expires_at,
                    self.options.lock.wait.as_secs()
                ));
            }
        }
        self.api = Some(api);
        Ok(())
    }

    /// The cluster's API, connecting (and locking) once the control plane exists. A new
    /// cluster's API server needs time to answer after its stack is complete.
    async fn api(&mut self) -> Result<&dyn ClusterApi, StepError> {
        if self.api.is_none() {
            let started = self.world.clock.now_ms();
            let mut pause = Duration::from_secs(5);
            loop {
                match self.connect_and_lock().await {
                    Ok(()) => break,
                    Err(e) => {
                        let now = self.world.clock.now_ms();
                        if now - started >= self.options.api_deadline.as_millis() as i64 {
                            return Err(StepError::new(format!(
                                "the API server did not become usable within {} s: {e}",
                                self.options.api_deadline.as_secs()
                            )));
                        }
                        self.progress.waiting(
                            &self.target.cluster.id,
                            "the API server",
                            started,
                            now,
                        );
                        self.world.clock.sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
        let api = self
            .api
            .as_deref()
            .ok_or_else(|| StepError::new("no API".into()))?;
        if let Some(lock) = self.lock.as_ref() {
            lock.keep_alive(api, self.world.clock)
                .await
                .map_err(StepError::live)?;
        }
        Ok(api)
    }

    /// Values for the stack parameters a real account needs and templates cannot
    /// default (VPC, subnets), looked up by tag once per cluster. A failed lookup leaves
    /// them unset: a stack that needs one then fails before anything is sent.
    /// A failed lookup fails the step with the read that failed: taken as "nothing
    /// tagged", it would surface later as a missing parameter, hiding the fault.
    async fn stack_parameters(&mut self) -> Result<BTreeMap<String, String>, StepError> {
        if self.parameters.is_none() {
            let cluster = self.target.cluster;
            let found = self
                .cloud()
                .tagged_parameters(&cluster.region, &cluster.id)
                .await
                .map_err(StepError::live)?;
            self.parameters = Some(found.into_iter().collect());
        }
        Ok(self.parameters.clone().unwrap_or_default())
    }

    /// The rolling engine's view of this cluster (after [`Run::api`] connected).
    fn nodes(&self) -> Result<nodes::NodeWork<'_>, StepError> {
        let cluster = self.target.cluster;
        Ok(nodes::NodeWork {
            cloud: self.cloud(),
            clock: self.world.clock,
            api: self
                .api
                .as_deref()
                .ok_or_else(|| StepError::new("not connected to the API server".into()))?,
            lock: self.lock.as_ref(),
            progress: self.progress,
            cluster,
        })
    }

    async fn execute(&mut self, step: &Step, name: &str) -> Result<(), StepError> {
        if let (Some(lock), Some(api)) = (self.lock.as_ref(), self.api.as_deref()) {
            lock.renew(api, self.world.clock, name)
                .await
                .map_err(StepError::live)?;
        }
        match step {
            Step::Stack(s) => {
                let artifacts = self.target.artifacts;
                let template = artifacts.files.get(&s.artifact).ok_or_else(|| {
                    StepError::new(format!(
                        "the plan names {}, which was not compiled",
                        s.artifact
                    ))
                })?;
                let parameters = self.stack_parameters().await?;
                let change = StackChange {
                    region: &self.target.cluster.region,
                    cluster: &self.target.cluster.id,
                    stack: &s.stack,
                    kind: match s.action {
                        StackAction::Create => ChangeSetKind::Create,
                        StackAction::Update => ChangeSetKind::Update,
                    },
                    template,
                    parameters: &parameters,
                    bucket: self.target.cluster.template_bucket.as_deref(),
                };
                stacks::apply_stack(
                    self.cloud(),
                    self.world.clock,
                    self.progress,
                    &change,
                    self.options.stack_deadline,
                )
                .await?;
                Ok(())
            }
            Step::Manifest(m) => {
                let desired = desired_object(self.target.artifacts, &m.artifact, &m.object)?;
                let force = self.options.force_conflicts;
                let clock = self.world.clock;
                let api = self.api().await?;
                // Server-side apply is idempotent: a throttled or timed-out call is
                // simply sent again.
                retried(clock, || api.apply(&desired, force)).await.map_err(|e| {
                    let mut error = StepError::live(e);
                    if !force && error.message.to_lowercase().contains("conflict") {
                        error.details.push(
                            "another field manager owns these fields; --force-conflicts makes flotilla take them over".into(),
                        );
                    }
                    error
                })?;
                Ok(())
            }
            Step::Delete(d) => {
                let clock = self.world.clock;
                let api = self.api().await?;
                retried(clock, || {
                    api.delete(
                        &d.object,
                        d.propagation_policy.as_deref(),
                        d.grace_period_seconds,
                    )
                })
                .await
                .map_err(StepError::live)?;
                Ok(())
            }
            Step::Roll(r) => {
                let cluster = self.target.cluster;
                let pool = cluster
                    .node_pools
                    .iter()
                    .find(|p| p.name == r.node_pool)
                    .ok_or_else(|| {
                        StepError::new(format!(
                            "the plan rolls node pool {}, which the fleet no longer declares",
                            r.node_pool
                        ))
                    })?;
                self.api().await?;
                self.nodes()?.roll(pool, r).await
            }
            Step::RemovePool(r) => {
                self.api().await?;
                let deadline = self.options.stack_deadline;
                self.nodes()?.remove(r, deadline).await
            }
        }
    }
}

/// Run an idempotent call again after a retryable failure (throttling, 5xx, timeout),
/// with backoff on the world's clock: 1 s doubling, five attempts.
async fn retried<T, F, Fut>(clock: &dyn Clock, mut call: F) -> crate::live::LiveResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::live::LiveResult<T>>,
{
    let mut pause = Duration::from_secs(1);
    for _ in 1..5 {
        match call().await {
            Err(e) if e.retryable => {
                clock.sleep(pause).await;
                pause *= 2;
            }
            result => return result,
        }
    }
    call().await
}

/// The object a manifest step names, from the artifact it came from.
fn desired_object(
    artifacts: &Artifacts,
    artifact: &str,
    object: &crate::live::ObjectRef,
) -> Result<Value, StepError> {
    use serde::Deserialize as _;
    let text = artifacts.files.get(artifact).ok_or_else(|| {
        StepError::new(format!("the plan names {artifact}, which was not compiled"))
    })?;
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value =
            Value::deserialize(document).map_err(|e| StepError::new(format!("{artifact}: {e}")))?;
        if crate::live::ObjectRef::of(&value).as_ref() == Some(object) {
            return Ok(value);
        }
    }
    Err(StepError::new(format!(
        "{artifact} no longer holds {object}: compile and plan again"
    )))
}

/// Milliseconds since the epoch as RFC 3339 (UTC, second precision).
pub fn rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_601_599_999), "2026-12-06T23:59:59Z");
    }
}
