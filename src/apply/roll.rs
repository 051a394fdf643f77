//! Rolling node replacement of one node pool, as the reference system does it: mark
//! every outdated node, surge the Auto Scaling group, and once new nodes are Ready
//! cordon outdated ones zone by zone, evict their pods through the Eviction API (never
//! bypassing a PodDisruptionBudget before the pool's `force_terminate_after`), and
//! terminate their instances, decrementing the group; finally restore the sizes.
//!
//! Crash safety: the engine keeps no progress of its own. Every tick re-reads the
//! world and derives what to do from it: marks and drain start times on the nodes, the
//! original sizes and the surge in tags on the group, the desired capacity from the
//! number of outdated nodes left. Killed at any point and started again, it continues
//! with no second surge and no lost capacity. Every failed read is an error: nothing is
//! ever scaled down or deleted because something looked absent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::live::{
    AutoScalingGroupState, Clock, Cloud, ClusterApi, EvictionOutcome, GroupSize, LiveError,
    LiveResult, NodeState, PodState,
};
use crate::plan::{HASH_LABEL, POOL_LABEL, ZONE_LABEL};

/// Node label saying a node is to be replaced, and its value.
pub const LIFECYCLE_LABEL: &str = "flotilla.io/lifecycle-status";
pub const DECOMMISSION_PENDING: &str = "decommission-pending";
/// `PreferNoSchedule` taint on marked nodes, so evicted pods avoid them.
pub const DECOMMISSION_TAINT: &str = "flotilla.io/decommission-pending";
/// Node annotation: when its drain started (RFC 3339).
pub const DRAIN_STARTED: &str = "flotilla.io/drain-started";
/// Group tag: `min,max,desired` before the roll surged it.
pub const ORIGINAL_SIZE_TAG: &str = "flotilla.io/roll-original-size";
/// Group tag: the surge in force (0 after a spot pool gave up waiting for capacity).
pub const SURGE_TAG: &str = "flotilla.io/roll-surge";
/// Group tag: when the last pod was force-deleted (RFC 3339).
pub const LAST_FORCED_TAG: &str = "flotilla.io/roll-last-forced-deletion";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    OnDemand,
    Spot,
}

/// How to roll one pool: plain data, filled from the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollSpec {
    pub pool: String,
    /// The config hash every node must end up with.
    pub config_hash: String,
    pub max_surge: u32,
    pub max_unavailable: u32,
    /// Evict through the Eviction API (honouring PDBs); otherwise delete pods directly.
    pub respect_pdbs: bool,
    /// After a node's drain has run this long, blocked pods may be deleted.
    pub force_terminate_after: Duration,
    /// A pod younger than this is never force-deleted.
    pub min_pod_age_for_force: Duration,
    /// At least this long between two forced deletions in the pool.
    pub force_delete_interval: Duration,
    pub capacity: CapacityType,
    /// Longest wait for new nodes to become Ready.
    pub node_timeout: Duration,
    /// Spot pools: longest wait for surge capacity before rolling one node at a time.
    pub spot_surge_wait: Duration,
    /// Time between two looks at the world.
    pub poll_interval: Duration,
}

impl RollSpec {
    /// The reference system's defaults (surge 3, 15 minutes for nodes, forced
    /// deletion of pods older than 72 h, 5 minutes apart).
    pub fn new(pool: &str, config_hash: &str, force_terminate_after: Duration) -> RollSpec {
        RollSpec {
            pool: pool.to_string(),
            config_hash: config_hash.to_string(),
            max_surge: 3,
            max_unavailable: 0,
            respect_pdbs: true,
            force_terminate_after,
            min_pod_age_for_force: Duration::from_secs(72 * 3600),
            force_delete_interval: Duration::from_secs(300),
            capacity: CapacityType::OnDemand,
            node_timeout: Duration::from_secs(15 * 60),
            spot_surge_wait: Duration::from_secs(10 * 60),
            poll_interval: Duration::from_secs(10),
        }
    }
}

/// What the engine tells whoever watches (progress bars, logs, reports).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RollEvent {
    Marked {
        node: String,
    },
    Resized {
        group: String,
        size: GroupSize,
    },
    Waiting {
        what: String,
        since_ms: i64,
    },
    SpotFallback {
        group: String,
    },
    Cordoned {
        node: String,
        zone: String,
    },
    EvictionBlocked {
        pod: String,
        node: String,
        reason: String,
    },
    Evicted {
        pod: String,
        node: String,
    },
    ForcedDeletion {
        pod: String,
        node: String,
        drain_started_ms: i64,
    },
    Terminated {
        node: String,
        instance: String,
        zone: String,
    },
    Restored {
        group: String,
        size: GroupSize,
    },
}

impl std::fmt::Display for RollEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollEvent::Marked { node } => write!(f, "marked {node} for replacement"),
            RollEvent::Resized { group, size } => write!(
                f,
                "{group}: min {} / desired {} / max {}",
                size.min, size.desired, size.max
            ),
            RollEvent::Waiting { what, since_ms } => {
                write!(f, "waiting for {what} since {}", rfc3339(*since_ms))
            }
            RollEvent::SpotFallback { group } => write!(
                f,
                "{group}: no spot capacity for the surge; replacing one node at a time"
            ),
            RollEvent::Cordoned { node, zone } => write!(f, "cordoned {node} ({zone})"),
            RollEvent::EvictionBlocked { pod, reason, .. } => {
                write!(f, "eviction of {pod} blocked: {reason}")
            }
            RollEvent::Evicted { pod, node } => write!(f, "evicted {pod} from {node}"),
            RollEvent::ForcedDeletion { pod, node, .. } => write!(
                f,
                "FORCED DELETION of pod {pod} on {node}: its drain passed force_terminate_after"
            ),
            RollEvent::Terminated { node, instance, .. } => {
                write!(f, "terminated {instance} ({node})")
            }
            RollEvent::Restored { group, size } => write!(
                f,
                "restored {group} to min {} / desired {} / max {}",
                size.min, size.desired, size.max
            ),
        }
    }
}

/// Asked at every safe point: a reason to stop (a block set on the cluster), if any.
#[async_trait]
pub trait StopSignal: Send + Sync {
    async fn stop_reason(&self) -> LiveResult<Option<String>>;
}

/// Never stops.
pub struct NeverStop;

#[async_trait]
impl StopSignal for NeverStop {
    async fn stop_reason(&self) -> LiveResult<Option<String>> {
        Ok(None)
    }
}

/// Everything the engine talks to.
pub struct RollContext<'a> {
    pub cloud: &'a dyn Cloud,
    pub api: &'a dyn ClusterApi,
    pub clock: &'a dyn Clock,
    pub region: &'a str,
    pub cluster: &'a str,
    pub progress: &'a (dyn Fn(&RollEvent) + Send + Sync),
    pub stop: &'a dyn StopSignal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RollError {
    /// A call failed (after retries).
    Live(LiveError),
    /// Stopped at a safe point; running again continues.
    Stopped(String),
    /// Waited longer than allowed.
    Timeout { what: String, since_ms: i64 },
    /// The spec cannot be honoured by this pool.
    Impossible(String),
}

impl From<LiveError> for RollError {
    fn from(e: LiveError) -> Self {
        RollError::Live(e)
    }
}

impl std::fmt::Display for RollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollError::Live(e) => write!(f, "{e}"),
            RollError::Stopped(reason) => write!(f, "stopped: {reason}"),
            RollError::Timeout { what, since_ms } => {
                write!(
                    f,
                    "timed out waiting for {what} (since {})",
                    rfc3339(*since_ms)
                )
            }
            RollError::Impossible(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for RollError {}

/// A node replaced, and when its drain ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replaced {
    pub node: String,
    pub zone: String,
    pub cordoned_ms: i64,
    pub terminated_ms: i64,
}

/// What a roll did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RollReport {
    pub pool: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub replaced: Vec<Replaced>,
    /// Every event, in order.
    pub events: Vec<(i64, RollEvent)>,
}

fn rfc3339(ms: i64) -> String {
    crate::sim::rfc3339(ms)
}

fn parse_time(text: &str) -> Option<i64> {
    text.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn tag<'g>(group: &'g AutoScalingGroupState, key: &str) -> Option<&'g str> {
    group
        .tags
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Attempts of one call on retryable errors (throttling, 5xx, timeouts).
const ATTEMPTS: u32 = 8;

/// Retry retryable failures with exponential backoff on the (possibly virtual) clock.
async fn retry<T, F, Fut>(clock: &dyn Clock, mut op: F) -> LiveResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = LiveResult<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.retryable && attempt + 1 < ATTEMPTS => {
                let wait = Duration::from_millis(500u64 << attempt.min(6));
                clock.sleep(wait).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The pool's world as one tick sees it.
struct View {
    group: AutoScalingGroupState,
    /// Nodes of the group's live instances.
    nodes: Vec<Arc<NodeState>>,
}

impl View {
    fn outdated<'v>(&'v self, hash: &'v str) -> impl Iterator<Item = &'v NodeState> + 'v {
        self.nodes
            .iter()
            .map(Arc::as_ref)
            .filter(move |n| n.labels.get(HASH_LABEL).map(String::as_str) != Some(hash))
    }

    /// Instances without a Ready node: launching or booting.
    fn not_ready(&self) -> usize {
        let ready: BTreeSet<&str> = self
            .nodes
            .iter()
            .filter(|n| n.ready)
            .filter_map(|n| n.instance_id())
            .collect();
        self.group
            .instances
            .iter()
            .filter(|i| !ready.contains(i.id.as_str()))
            .count()
    }
}

/// Progress a tick made, for the waits the engine bounds.
#[derive(Default)]
struct Timers {
    waiting_since: Option<(String, i64)>,
    shortfall_since: Option<i64>,
    /// Pod → (first blocked, next attempt, attempts).
    blocked: BTreeMap<String, (i64, i64, u32)>,
}

/// Replace outdated nodes (a roll), or drain every node and leave the instances to
/// the stack deletion (a removed pool).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replace,
    Remove,
}

struct Roll<'c, 'a> {
    ctx: &'c RollContext<'a>,
    spec: &'c RollSpec,
    mode: Mode,
    report: RollReport,
    timers: Timers,
    /// Changes made to the world so far.
    changes: u64,
    /// The group's instances when this run first looked at it: any other instance was
    /// launched during the roll, so it must come up with the new config hash.
    initial_instances: Option<BTreeSet<String>>,
}

/// Looks in a row that may follow each other without a poll interval between them.
const MAX_LOOKS_WITHOUT_PAUSE: u32 = 16;

/// Replace every node of `spec.pool` whose config hash differs from `spec.config_hash`.
pub async fn roll_pool(ctx: &RollContext<'_>, spec: &RollSpec) -> Result<RollReport, RollError> {
    if spec.max_surge == 0 && spec.max_unavailable == 0 {
        return Err(RollError::Impossible(format!(
            "pool {}: max_surge and max_unavailable are both 0, so no node can ever be replaced",
            spec.pool
        )));
    }
    run(ctx, spec, Mode::Replace).await
}

/// Drain every node of a pool that is being removed, one node at a time, with the
/// same eviction and forced-deletion rules as a roll, without terminating anything:
/// the caller deletes the pool's stack afterwards. `config_hash`, surge and
/// unavailability of `spec` are not used.
pub async fn drain_pool(ctx: &RollContext<'_>, spec: &RollSpec) -> Result<RollReport, RollError> {
    run(ctx, spec, Mode::Remove).await
}

async fn run(ctx: &RollContext<'_>, spec: &RollSpec, mode: Mode) -> Result<RollReport, RollError> {
    let mut roll = Roll {
        ctx,
        spec,
        mode,
        report: RollReport {
            pool: spec.pool.clone(),
            started_ms: ctx.clock.now_ms(),
            ..RollReport::default()
        },
        timers: Timers::default(),
        changes: 0,
        initial_instances: None,
    };
    let groups = roll.groups().await?;
    for group in groups {
        roll.timers = Timers::default();
        roll.initial_instances = None;
        let mut looks_without_pause = 0;
        loop {
            let changes = roll.changes;
            let done = match mode {
                Mode::Replace => roll.tick(&group).await?,
                Mode::Remove => roll.drain_tick(&group).await?,
            };
            if done {
                break;
            }
            // A look that changed the world is followed by another at once: a cordon
            // calls for evictions, an emptied node for its termination, a termination
            // for the launch of its replacement. Waiting a poll interval between each
            // of them would add up to most of a minute per wave. Only when a look
            // changes nothing is there something to wait for. The bound keeps a
            // world that answers every change with another (eventual consistency)
            // from spinning.
            if roll.changes > changes && looks_without_pause < MAX_LOOKS_WITHOUT_PAUSE {
                looks_without_pause += 1;
                continue;
            }
            looks_without_pause = 0;
            ctx.clock.sleep(spec.poll_interval).await;
        }
    }
    roll.report.finished_ms = ctx.clock.now_ms();
    Ok(roll.report)
}

impl Roll<'_, '_> {
    fn emit(&mut self, event: RollEvent) {
        if !matches!(
            event,
            RollEvent::Waiting { .. } | RollEvent::EvictionBlocked { .. }
        ) {
            self.changes += 1;
        }
        (self.ctx.progress)(&event);
        self.report.events.push((self.ctx.clock.now_ms(), event));
    }

    /// The pool's Auto Scaling groups, by name.
    async fn groups(&self) -> Result<Vec<String>, RollError> {
        let ctx = self.ctx;
        let groups = retry(ctx.clock, || {
            ctx.cloud.auto_scaling_groups(ctx.region, ctx.cluster)
        })
        .await?;
        let mut names: Vec<String> = groups
            .iter()
            .filter(|g| tag(g, POOL_LABEL) == Some(self.spec.pool.as_str()))
            .map(|g| g.name.clone())
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(RollError::Impossible(format!(
                "pool {}: no Auto Scaling group tagged {POOL_LABEL}={} in cluster {}",
                self.spec.pool, self.spec.pool, ctx.cluster
            )));
        }
        Ok(names)
    }

    async fn view(&self, group: &str) -> Result<View, RollError> {
        let ctx = self.ctx;
        let groups = retry(ctx.clock, || {
            ctx.cloud.auto_scaling_groups(ctx.region, ctx.cluster)
        })
        .await?;
        let group = groups
            .into_iter()
            .find(|g| g.name == group)
            .ok_or_else(|| {
                RollError::Impossible(format!(
                    "Auto Scaling group {group} disappeared during the roll"
                ))
            })?;
        let selector = format!("{POOL_LABEL}={}", self.spec.pool);
        let nodes = retry(ctx.clock, || ctx.api.nodes(&selector)).await?;
        let live: BTreeSet<&str> = group.instances.iter().map(|i| i.id.as_str()).collect();
        let nodes = nodes
            .into_iter()
            .filter(|n| n.instance_id().is_some_and(|id| live.contains(id)))
            .collect();
        Ok(View { group, nodes })
    }

    /// One look at the world and the steps it calls for; `Ok(true)` when done.
    async fn tick(&mut self, group: &str) -> Result<bool, RollError> {
        let ctx = self.ctx;
        if let Some(reason) = retry(ctx.clock, || ctx.stop.stop_reason()).await? {
            return Err(RollError::Stopped(reason));
        }
        let now = ctx.clock.now_ms();
        let view = self.view(group).await?;
        let hash = self.spec.config_hash.clone();
        let mut outdated: Vec<&NodeState> = view.outdated(&hash).collect();
        // Zone by zone: volumes are zonal, and so is what a drain disturbs.
        outdated.sort_by(|a, b| (zone(a), &a.name).cmp(&(zone(b), &b.name)));
        self.launches_new_config(&view, &outdated)?;

        for node in outdated.iter().filter(|n| !is_marked(n)) {
            self.mark(node).await?;
        }

        let original = match tag(&view.group, ORIGINAL_SIZE_TAG) {
            Some(text) => parse_size(text).ok_or_else(|| {
                RollError::Impossible(format!(
                    "group {group}: tag {ORIGINAL_SIZE_TAG}={text} is not min,max,desired"
                ))
            })?,
            None if outdated.is_empty() => return Ok(true),
            None => self.begin(&view).await?,
        };
        let surge: i32 = tag(&view.group, SURGE_TAG)
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.spec.max_surge as i32);

        if outdated.is_empty() {
            return self.finish(&view, original).await;
        }

        let surge = self.spot_fallback(&view, surge, now).await?;
        let wanted = sizes_during_roll(original, surge, outdated.len() as i32);
        let current = GroupSize {
            min: view.group.min_size,
            max: view.group.max_size,
            desired: view.group.desired_capacity,
        };
        if wanted != current {
            retry(ctx.clock, || {
                ctx.cloud.set_group_size(ctx.region, group, &wanted)
            })
            .await?;
            self.emit(RollEvent::Resized {
                group: group.to_string(),
                size: wanted,
            });
        }
        self.bound_waits(&view, now)?;

        for node in outdated.iter().filter(|n| is_draining(n)) {
            self.drain(&view, node, now).await?;
        }

        // Capacity promise: Ready, schedulable nodes never below desired − max_unavailable.
        let floor = original.desired - self.spec.max_unavailable as i32;
        let serving = view
            .nodes
            .iter()
            .filter(|n| n.ready && !n.unschedulable)
            .count() as i32;
        let mut room = serving - floor;
        for node in outdated.iter().filter(|n| !n.unschedulable) {
            if room <= 0 {
                break;
            }
            // An unready outdated node serves nothing: draining it costs no capacity.
            if node.ready {
                room -= 1;
            }
            self.cordon(node, now).await?;
        }
        Ok(false)
    }

    /// An instance launched during the roll whose node has an old config hash means
    /// the group launches the old configuration (its launch template, or the version
    /// the group uses, was not updated): replacing it would launch another old one,
    /// forever. Stop before anything more is drained.
    fn launches_new_config(
        &mut self,
        view: &View,
        outdated: &[&NodeState],
    ) -> Result<(), RollError> {
        let initial = self
            .initial_instances
            .get_or_insert_with(|| view.group.instances.iter().map(|i| i.id.clone()).collect());
        let launched_old = outdated
            .iter()
            .find(|n| n.ready && n.instance_id().is_some_and(|id| !initial.contains(id)));
        match launched_old {
            None => Ok(()),
            Some(node) => Err(RollError::Impossible(format!(
                "group {} launched node {} during the roll with config hash {}, not {}: its new instances do not get the pool's new configuration, so replacing nodes would never end; check that the pool's stack updated the launch template and the version the group launches",
                view.group.name,
                node.name,
                node.labels.get(HASH_LABEL).map_or("(none)", String::as_str),
                self.spec.config_hash
            ))),
        }
    }

    /// One look at a removed pool: mark everything, drain one node at a time.
    async fn drain_tick(&mut self, group: &str) -> Result<bool, RollError> {
        let ctx = self.ctx;
        if let Some(reason) = retry(ctx.clock, || ctx.stop.stop_reason()).await? {
            return Err(RollError::Stopped(reason));
        }
        let now = ctx.clock.now_ms();
        let view = self.view(group).await?;
        for node in view.nodes.iter().filter(|n| !is_marked(n)) {
            self.mark(node).await?;
        }
        let mut busy = false;
        for node in view.nodes.iter().filter(|n| is_draining(n)) {
            busy |= !self.drain(&view, node, now).await?;
        }
        if busy {
            return Ok(false);
        }
        let mut rest: Vec<&NodeState> = view
            .nodes
            .iter()
            .map(Arc::as_ref)
            .filter(|n| !is_draining(n))
            .collect();
        rest.sort_by(|a, b| (zone(a), &a.name).cmp(&(zone(b), &b.name)));
        match rest.first() {
            Some(node) => {
                self.cordon(node, now).await?;
                Ok(false)
            }
            None => Ok(true),
        }
    }

    async fn mark(&mut self, node: &NodeState) -> Result<(), RollError> {
        let ctx = self.ctx;
        let mut taints: Vec<serde_json::Value> = node
            .taints
            .iter()
            .filter(|t| t.key != DECOMMISSION_TAINT)
            .map(|t| json!({ "key": t.key, "value": t.value, "effect": t.effect }))
            .collect();
        taints.push(
            json!({ "key": DECOMMISSION_TAINT, "value": "true", "effect": "PreferNoSchedule" }),
        );
        let patch = json!({
            "metadata": { "labels": { LIFECYCLE_LABEL: DECOMMISSION_PENDING } },
            "spec": { "taints": taints },
        });
        retry(ctx.clock, || ctx.api.patch_node(&node.name, &patch)).await?;
        self.emit(RollEvent::Marked {
            node: node.name.clone(),
        });
        Ok(())
    }

    /// Record the sizes to restore, then the surge: the tag comes first, so a crash in
    /// between leaves a world the next run reads correctly.
    async fn begin(&mut self, view: &View) -> Result<GroupSize, RollError> {
        let ctx = self.ctx;
        let original = GroupSize {
            min: view.group.min_size,
            max: view.group.max_size,
            desired: view.group.desired_capacity,
        };
        let tags = vec![
            (
                ORIGINAL_SIZE_TAG.to_string(),
                format!("{},{},{}", original.min, original.max, original.desired),
            ),
            (SURGE_TAG.to_string(), self.spec.max_surge.to_string()),
        ];
        retry(ctx.clock, || {
            ctx.cloud
                .set_group_tags(ctx.region, &view.group.name, &tags)
        })
        .await?;
        Ok(original)
    }

    /// Every node is new: once all are Ready, restore the sizes, then drop the tags.
    async fn finish(&mut self, view: &View, original: GroupSize) -> Result<bool, RollError> {
        let ctx = self.ctx;
        let group = view.group.name.as_str();
        let current = GroupSize {
            min: view.group.min_size,
            max: view.group.max_size,
            desired: view.group.desired_capacity,
        };
        if current != original {
            retry(ctx.clock, || {
                ctx.cloud.set_group_size(ctx.region, group, &original)
            })
            .await?;
            self.changes += 1;
            return Ok(false);
        }
        if view.not_ready() > 0 || view.group.instances.len() as i32 != original.desired {
            self.bound_waits(view, ctx.clock.now_ms())?;
            return Ok(false);
        }
        let keys = [ORIGINAL_SIZE_TAG, SURGE_TAG, LAST_FORCED_TAG].map(str::to_string);
        retry(ctx.clock, || {
            ctx.cloud.delete_group_tags(ctx.region, group, &keys)
        })
        .await?;
        self.emit(RollEvent::Restored {
            group: group.to_string(),
            size: original,
        });
        Ok(true)
    }

    /// Spot pools wait a bounded time for surge capacity, then roll without surge.
    async fn spot_fallback(&mut self, view: &View, surge: i32, now: i64) -> Result<i32, RollError> {
        let short = (view.group.instances.len() as i32) < view.group.desired_capacity;
        if !short {
            self.timers.shortfall_since = None;
            return Ok(surge);
        }
        let since = *self.timers.shortfall_since.get_or_insert(now);
        let waited = Duration::from_millis((now - since).max(0) as u64);
        if self.spec.capacity != CapacityType::Spot
            || surge == 0
            || waited < self.spec.spot_surge_wait
        {
            return Ok(surge);
        }
        if self.spec.max_unavailable == 0 {
            return Err(RollError::Impossible(format!(
                "spot pool {}: no capacity for the surge after {:?}, and max_unavailable 0 forbids replacing nodes without it",
                self.spec.pool, self.spec.spot_surge_wait
            )));
        }
        let ctx = self.ctx;
        let tags = vec![(SURGE_TAG.to_string(), "0".to_string())];
        retry(ctx.clock, || {
            ctx.cloud
                .set_group_tags(ctx.region, &view.group.name, &tags)
        })
        .await?;
        self.emit(RollEvent::SpotFallback {
            group: view.group.name.clone(),
        });
        self.timers.shortfall_since = None;
        Ok(0)
    }

    /// New nodes get `node_timeout` to become Ready (spot shortfalls are bounded by
    /// `spot_surge_wait` instead).
    fn bound_waits(&mut self, view: &View, now: i64) -> Result<(), RollError> {
        let missing =
            (view.group.desired_capacity - view.group.instances.len() as i32).max(0) as usize;
        let waiting = view.not_ready()
            + if self.spec.capacity == CapacityType::Spot {
                0
            } else {
                missing
            };
        if waiting == 0 {
            self.timers.waiting_since = None;
            return Ok(());
        }
        let what = format!("{waiting} new node(s) of {} to be Ready", view.group.name);
        let since = match &self.timers.waiting_since {
            Some((previous, since)) if *previous == what => *since,
            _ => {
                self.timers.waiting_since = Some((what.clone(), now));
                self.emit(RollEvent::Waiting {
                    what: what.clone(),
                    since_ms: now,
                });
                now
            }
        };
        if Duration::from_millis((now - since).max(0) as u64) > self.spec.node_timeout {
            return Err(RollError::Timeout {
                what,
                since_ms: since,
            });
        }
        Ok(())
    }

    async fn cordon(&mut self, node: &NodeState, now: i64) -> Result<(), RollError> {
        let ctx = self.ctx;
        let patch = json!({
            "metadata": { "annotations": { DRAIN_STARTED: rfc3339(now) } },
            "spec": { "unschedulable": true },
        });
        retry(ctx.clock, || ctx.api.patch_node(&node.name, &patch)).await?;
        self.emit(RollEvent::Cordoned {
            node: node.name.clone(),
            zone: zone_of(node),
        });
        Ok(())
    }

    /// One pass over a draining node: evict what can go, force what may, and (rolling)
    /// terminate the instance once only DaemonSet, mirror and finished pods are left.
    /// `Ok(true)` when the node is empty.
    async fn drain(&mut self, view: &View, node: &NodeState, now: i64) -> Result<bool, RollError> {
        let ctx = self.ctx;
        let started = node
            .annotations
            .get(DRAIN_STARTED)
            .and_then(|t| parse_time(t))
            .unwrap_or(now);
        let pods = retry(ctx.clock, || ctx.api.pods_on_node(&node.name)).await?;
        let evictable: Vec<&PodState> = pods.iter().filter(|p| needs_eviction(p)).collect();
        if evictable.is_empty() {
            if self.mode == Mode::Replace {
                self.terminate(node, started, now).await?;
            }
            return Ok(true);
        }
        let mut blocked = Vec::new();
        for pod in evictable {
            let key = format!("{}/{}", pod.namespace, pod.name);
            if self
                .timers
                .blocked
                .get(&key)
                .is_some_and(|(_, next, _)| *next > now)
            {
                blocked.push(pod);
                continue;
            }
            let outcome = if self.spec.respect_pdbs {
                retry(ctx.clock, || ctx.api.evict(&pod.namespace, &pod.name)).await?
            } else {
                retry(ctx.clock, || ctx.api.delete_pod(&pod.namespace, &pod.name)).await?;
                EvictionOutcome::Evicted
            };
            match outcome {
                EvictionOutcome::Evicted => {
                    self.timers.blocked.remove(&key);
                    self.emit(RollEvent::Evicted {
                        pod: key,
                        node: node.name.clone(),
                    });
                }
                EvictionOutcome::Gone => {
                    self.timers.blocked.remove(&key);
                }
                EvictionOutcome::Blocked(reason) => {
                    let entry = self
                        .timers
                        .blocked
                        .entry(key.clone())
                        .or_insert((now, now, 0));
                    entry.2 += 1;
                    // A budget usually allows the eviction as soon as the pod that
                    // replaced an evicted one is Ready, seconds later: ask again at
                    // the next look at first, then back off to half as long as the
                    // pod has been blocked, at most a minute.
                    entry.1 = now + ((now - entry.0) / 2).min(60_000);
                    if entry.2 == 1 {
                        self.emit(RollEvent::EvictionBlocked {
                            pod: key,
                            node: node.name.clone(),
                            reason,
                        });
                    }
                    blocked.push(pod);
                }
            }
        }
        let deadline = started + self.spec.force_terminate_after.as_millis() as i64;
        if !blocked.is_empty() && now >= deadline {
            self.force_one(view, node, &blocked, started, now).await?;
        }
        Ok(false)
    }

    /// Delete one blocked pod, when its budget's other pods are Ready, it is old
    /// enough, and the pool's last forced deletion is long enough ago.
    async fn force_one(
        &mut self,
        view: &View,
        node: &NodeState,
        blocked: &[&PodState],
        started: i64,
        now: i64,
    ) -> Result<(), RollError> {
        let ctx = self.ctx;
        let last = tag(&view.group, LAST_FORCED_TAG).and_then(parse_time);
        if last.is_some_and(|t| now - t < self.spec.force_delete_interval.as_millis() as i64) {
            return Ok(());
        }
        let pdbs = retry(ctx.clock, || ctx.api.pdbs()).await?;
        let min_age = self.spec.min_pod_age_for_force.as_millis() as i64;
        let chosen = blocked.iter().find(|pod| {
            let old_enough = parse_time(&pod.created).is_some_and(|c| now - c >= min_age);
            let siblings_ready = pdbs
                .iter()
                .filter(|b| {
                    b.namespace == pod.namespace
                        && !b.match_labels.is_empty()
                        && b.match_labels
                            .iter()
                            .all(|(k, v)| pod.labels.get(k) == Some(v))
                })
                .all(|b| b.current_healthy - i32::from(pod.ready) >= b.expected_pods - 1);
            old_enough && siblings_ready
        });
        let Some(pod) = chosen else { return Ok(()) };
        // The time goes on the group first: a crash after it only delays the next one.
        let tags = vec![(LAST_FORCED_TAG.to_string(), rfc3339(now))];
        retry(ctx.clock, || {
            ctx.cloud
                .set_group_tags(ctx.region, &view.group.name, &tags)
        })
        .await?;
        retry(ctx.clock, || ctx.api.delete_pod(&pod.namespace, &pod.name)).await?;
        self.emit(RollEvent::ForcedDeletion {
            pod: format!("{}/{}", pod.namespace, pod.name),
            node: node.name.clone(),
            drain_started_ms: started,
        });
        Ok(())
    }

    async fn terminate(
        &mut self,
        node: &NodeState,
        started: i64,
        now: i64,
    ) -> Result<(), RollError> {
        let ctx = self.ctx;
        let Some(instance) = node.instance_id() else {
            return Err(RollError::Impossible(format!(
                "node {} has no EC2 provider id",
                node.name
            )));
        };
        retry(ctx.clock, || {
            ctx.cloud.terminate_instance(ctx.region, instance, true)
        })
        .await?;
        let zone = zone_of(node);
        self.report.replaced.push(Replaced {
            node: node.name.clone(),
            zone: zone.clone(),
            cordoned_ms: started,
            terminated_ms: now,
        });
        self.emit(RollEvent::Terminated {
            node: node.name.clone(),
            instance: instance.to_string(),
            zone,
        });
        Ok(())
    }
}

/// Sizes while `outdated` nodes are left: total instances stay at original + surge
/// (one new instance launched per old one terminated) until the new ones alone reach
/// the original desired capacity. Derived from the world alone, so a restart computes
/// the same numbers: never a second surge.
fn sizes_during_roll(original: GroupSize, surge: i32, outdated: i32) -> GroupSize {
    let new_wanted = original
        .desired
        .min(original.desired + surge - outdated)
        .max(0);
    let desired = outdated + new_wanted;
    GroupSize {
        // Terminating with decrement must stay possible (desired − 1 ≥ min).
        min: original.min.min(desired - 1).max(0),
        max: original.max.max(desired),
        desired,
    }
}

fn parse_size(text: &str) -> Option<GroupSize> {
    let mut parts = text.split(',').map(|p| p.trim().parse::<i32>().ok());
    let size = GroupSize {
        min: parts.next()??,
        max: parts.next()??,
        desired: parts.next()??,
    };
    parts.next().is_none().then_some(size)
}

fn is_marked(node: &NodeState) -> bool {
    node.labels.get(LIFECYCLE_LABEL).map(String::as_str) == Some(DECOMMISSION_PENDING)
        && node.taints.iter().any(|t| t.key == DECOMMISSION_TAINT)
}

fn is_draining(node: &NodeState) -> bool {
    node.unschedulable && node.annotations.contains_key(DRAIN_STARTED)
}

fn zone(node: &NodeState) -> &str {
    node.labels.get(ZONE_LABEL).map_or("", String::as_str)
}

fn zone_of(node: &NodeState) -> String {
    zone(node).to_string()
}

/// DaemonSet and mirror pods stay (they die with the node); finished pods need nothing.
fn needs_eviction(pod: &PodState) -> bool {
    !pod.mirror && !pod.finished && pod.owner_kind.as_deref() != Some("DaemonSet")
}
