//! The simulated world: CloudFormation stacks, Auto Scaling groups, EC2 instances and
//! the Kubernetes clusters their nodes join, in memory, on a virtual clock. One
//! [`SimHandle`] implements [`Cloud`](crate::live::Cloud) and
//! [`Clock`](crate::live::Clock); [`SimHandle::cluster`] gives one cluster's
//! [`ClusterApi`](crate::live::ClusterApi). Sleeping on the clock advances the world,
//! so hours of rollout run in milliseconds.
//!
//! The whole world is plain data ([`SimWorld`], serde), so `--world local` can keep it
//! in a file between commands, and everything random in it comes from one seeded
//! generator: the same world and the same calls give the same result.

mod cloud;
mod cluster;
mod describe;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::live::{Clock, LiveError, LiveResult, NodeState, StackEvent};

pub use cloud::Stack;
pub use cluster::{Budget, Cluster, PdbSpec, Pod, WorkloadKind, WorkloadSpec};
pub use describe::{ClusterDescription, DescriptionError, PoolDescription, WorldDescription};
pub use report::{
    BlockedEviction, PlannedRoll, PoolPrediction, Prediction, Wave, predict, updated_pools,
};

/// Label and tag keys the simulated userdata and templates use (the compiled ones).
pub(crate) const CLUSTER_TAG: &str = "flotilla.io/cluster";
pub(crate) use crate::plan::{HASH_LABEL, POOL_LABEL, ZONE_LABEL};

/// Everything in the simulated world.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SimWorld {
    /// Simulated time, milliseconds since the Unix epoch.
    pub now_ms: i64,
    pub settings: Settings,
    pub faults: Faults,
    pub regions: BTreeMap<String, Region>,
    pub clusters: BTreeMap<String, Cluster>,
    pub stats: Stats,
    rng: u64,
    next_id: u64,
    #[serde(skip)]
    fleet: Fleet,
    /// Called after every change of the world (tests check invariants in it).
    #[serde(skip)]
    observer: Option<Observer>,
}

/// How long things take and how big they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The account `caller_account` answers.
    pub account: String,
    /// Launch of an instance until it is InService and its node Ready.
    pub boot_seconds: u64,
    /// A stack create, update, rollback or delete.
    pub stack_seconds: u64,
    /// A scheduled pod until it is Ready.
    pub pod_startup_seconds: u64,
    /// Pods a node holds (DaemonSet and mirror pods included).
    pub pods_per_node: usize,
    /// Every node runs one mirror (static) pod.
    pub mirror_pods: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            account: "123456789012".into(),
            boot_seconds: 240,
            stack_seconds: 60,
            pod_startup_seconds: 20,
            pods_per_node: 110,
            mirror_pods: true,
        }
    }
}

/// Injected faults. Rates are probabilities per call or per launch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// A call fails with a retryable 5xx, throttling or timeout error.
    pub api_error_rate: f64,
    /// A launched instance boots `slow_factor` times slower.
    pub slow_node_rate: f64,
    pub slow_factor: f64,
    /// A launched instance's node registers but never becomes Ready.
    pub never_ready_rate: f64,
    /// Stacks (by name, or `*` for all) whose updates fail and roll back.
    pub rollback_updates: BTreeSet<String>,
    /// Auto Scaling groups (by name) with a cap on live instances: the capacity the
    /// market has (spot), launches beyond it do not happen.
    pub capacity_limits: BTreeMap<String, usize>,
    /// After this many successful mutating calls every call fails, not retryable:
    /// the process was killed there.
    pub kill_after_mutations: Option<u64>,
}

/// What happened, for reports and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub mutations: u64,
    pub launched: u64,
    pub terminated: u64,
    pub evictions: u64,
    pub evictions_blocked: u64,
    pub forced_deletions: u64,
    pub injected_errors: u64,
    /// STS GetCallerIdentity calls: the account guard asks once per account and role.
    #[serde(default)]
    pub caller_identity_calls: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub zones: Vec<String>,
    pub stacks: BTreeMap<String, Stack>,
    pub groups: BTreeMap<String, Group>,
    pub instances: BTreeMap<String, Instance>,
    /// S3 objects by `BUCKET/KEY`: templates uploaded for change sets. Every bucket
    /// exists here.
    #[serde(default)]
    pub objects: BTreeMap<String, String>,
}

/// An Auto Scaling group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub cluster: String,
    /// The stack that declares it, if any.
    pub stack: Option<String>,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub tags: Vec<(String, String)>,
    pub zones: Vec<String>,
    /// Labels the launch template's userdata gives the kubelet; instances launched
    /// from now on register with them.
    pub node_labels: BTreeMap<String, String>,
    pub launch_template_version: u32,
    /// Live (not terminated) instances, in launch order.
    pub instances: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub group: String,
    pub cluster: String,
    pub zone: String,
    pub node_labels: BTreeMap<String, String>,
    pub launch_template_version: u32,
    pub launched_ms: i64,
    /// When the node registers Ready and the instance goes InService.
    pub boot_done_ms: i64,
    /// The node registers but never becomes Ready.
    pub never_ready: bool,
    pub terminated: bool,
}

impl Instance {
    fn booted(&self, now: i64) -> bool {
        now >= self.boot_done_ms
    }

    pub fn node_name(&self) -> String {
        format!("ip-{}.compute.internal", self.id.trim_start_matches("i-"))
    }
}

/// Instances launched and terminated since the world was made or loaded: a node joins
/// its cluster only when an instance boots and leaves only when one is terminated, so
/// settling matches nodes to instances only when these moved or a boot time passed.
#[derive(Clone, Copy, Debug, Default)]
struct Fleet {
    launches: u64,
    departures: u64,
    /// When nodes were last matched: `(launches, departures)` then, and the next time
    /// an instance launched by then finishes booting.
    matched: Option<((u64, u64), Option<i64>)>,
}

#[derive(Clone)]
struct Observer(Arc<dyn Fn(&SimWorld) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// RFC 3339 of a simulated time.
pub(crate) fn rfc3339(ms: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl SimWorld {
    /// An empty world at `now_ms`, randomness from `seed`.
    pub fn new(seed: u64, now_ms: i64) -> SimWorld {
        SimWorld {
            now_ms,
            rng: seed,
            ..SimWorld::default()
        }
    }

    /// Restart the world's random generator from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = seed;
    }

    /// Call `observer` after every change of the world (not serialised).
    pub fn observe(&mut self, observer: impl Fn(&SimWorld) + Send + Sync + 'static) {
        self.observer = Some(Observer(Arc::new(observer)));
    }

    /// A uniform number in [0, 1) from the world's seeded generator (splitmix64).
    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.random() < rate
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn region_mut(&mut self, region: &str) -> &mut Region {
        self.regions
            .entry(region.to_string())
            .or_insert_with(|| Region {
                zones: ["a", "b", "c"].map(|z| format!("{region}{z}")).to_vec(),
                ..Region::default()
            })
    }

    /// The gate every call passes: the kill switch, then injected API errors.
    fn admit(&mut self, operation: &str) -> LiveResult<()> {
        if self
            .faults
            .kill_after_mutations
            .is_some_and(|k| self.stats.mutations >= k)
        {
            return Err(LiveError {
                operation: operation.to_string(),
                message: "the process was killed (simulated)".into(),
                retryable: false,
            });
        }
        if self.chance(self.faults.api_error_rate) {
            self.stats.injected_errors += 1;
            let message = match self.stats.injected_errors % 3 {
                0 => "503 Service Unavailable (simulated)",
                1 => "Throttling: Rate exceeded (simulated)",
                _ => "operation timed out (simulated)",
            };
            return Err(LiveError {
                operation: operation.to_string(),
                message: message.into(),
                retryable: true,
            });
        }
        Ok(())
    }

    /// A mutating call succeeded: count it, let the world react, tell the observer.
    fn mutated(&mut self) {
        self.stats.mutations += 1;
        self.settle();
    }

    /// Bring the world up to date at the current time: stacks, groups, nodes, pods.
    fn settle(&mut self) {
        cloud::settle(self);
        cluster::settle(self);
        if let Some(observer) = self.observer.clone() {
            (observer.0)(self);
        }
    }

    /// Advance simulated time to `until`, stopping at every moment something happens.
    pub fn advance_to(&mut self, until: i64) {
        while let Some(next) = self.next_event().filter(|&t| t <= until) {
            self.now_ms = next.max(self.now_ms);
            self.settle();
        }
        self.now_ms = until.max(self.now_ms);
        self.settle();
    }

    /// The next moment after now at which the world changes by itself.
    fn next_event(&self) -> Option<i64> {
        let now = self.now_ms;
        let stacks = self
            .regions
            .values()
            .flat_map(|r| r.stacks.values())
            .filter_map(|s| s.pending.as_ref().map(|p| p.done_ms));
        let boots = self
            .regions
            .values()
            .flat_map(|r| r.instances.values())
            .filter(|i| !i.terminated)
            .map(|i| i.boot_done_ms);
        // Pods becoming Ready change nothing else: their readiness is read when asked.
        stacks.chain(boots).filter(|&t| t > now).min()
    }

    /// Create a group with `size` instances that have booted already: a pool that was
    /// there before the simulation starts.
    pub fn add_group(&mut self, region: &str, pool: &PoolDescription, cluster: &str) {
        let zones = {
            let region = self.region_mut(region);
            let wanted = pool.zones.clamp(1, region.zones.len().max(1));
            region
                .zones
                .iter()
                .take(wanted)
                .cloned()
                .collect::<Vec<_>>()
        };
        let name = format!("{cluster}-{}", pool.name);
        let node_labels = BTreeMap::from([
            (POOL_LABEL.to_string(), pool.name.clone()),
            (HASH_LABEL.to_string(), pool.config_hash.clone()),
        ]);
        let group = Group {
            name: name.clone(),
            cluster: cluster.to_string(),
            stack: None,
            min: pool.min.unwrap_or(pool.size),
            max: pool.max.unwrap_or(pool.size),
            desired: pool.size,
            tags: vec![
                (CLUSTER_TAG.to_string(), cluster.to_string()),
                (POOL_LABEL.to_string(), pool.name.clone()),
                (HASH_LABEL.to_string(), pool.config_hash.clone()),
            ],
            zones,
            node_labels,
            launch_template_version: 1,
            instances: Vec::new(),
        };
        self.region_mut(region).groups.insert(name.clone(), group);
        self.clusters
            .entry(cluster.to_string())
            .or_insert_with(|| Cluster::new(region));
        // Launched long enough ago to have booted.
        let now = self.now_ms;
        self.now_ms -= self.settings.boot_seconds as i64 * 1000;
        cloud::launch_missing(self, region, &name);
        self.now_ms = now;
        self.settle();
    }

    /// What a stack update that changes a pool's launch template does to its group:
    /// instances launched from now on boot with `config_hash`; running ones keep theirs.
    pub fn change_pool_config(&mut self, region: &str, group: &str, config_hash: &str) {
        if let Some(group) = self.region_mut(region).groups.get_mut(group) {
            group
                .node_labels
                .insert(HASH_LABEL.to_string(), config_hash.to_string());
            set_tag(&mut group.tags, HASH_LABEL, config_hash);
            group.launch_template_version += 1;
        }
    }

    pub fn group(&self, region: &str, group: &str) -> Option<&Group> {
        self.regions.get(region)?.groups.get(group)
    }

    /// The nodes of a cluster.
    pub fn nodes(&self, cluster: &str) -> Vec<&NodeState> {
        self.clusters
            .get(cluster)
            .map(|c| c.nodes.values().map(Arc::as_ref).collect())
            .unwrap_or_default()
    }

    pub fn cluster(&self, cluster: &str) -> Option<&Cluster> {
        self.clusters.get(cluster)
    }

    pub fn add_workload(&mut self, cluster: &str, workload: WorkloadSpec) {
        if let Some(c) = self.clusters.get_mut(cluster) {
            c.add_workload(workload);
        }
        self.settle();
    }

    pub fn add_pdb(&mut self, cluster: &str, pdb: PdbSpec) {
        if let Some(c) = self.clusters.get_mut(cluster) {
            c.add_pdb(pdb);
        }
        self.settle();
    }
}

pub(crate) fn set_tag(tags: &mut Vec<(String, String)>, key: &str, value: &str) {
    match tags.iter_mut().find(|(k, _)| k == key) {
        Some(tag) => tag.1 = value.to_string(),
        None => tags.push((key.to_string(), value.to_string())),
    }
}

fn event(ms: i64, logical_id: &str, resource_type: &str, status: &str) -> StackEvent {
    StackEvent {
        timestamp: rfc3339(ms),
        logical_id: logical_id.to_string(),
        resource_type: resource_type.to_string(),
        status: status.to_string(),
        reason: None,
    }
}

/// A shared handle on a world: the simulated AWS account and the clock.
#[derive(Clone, Debug)]
pub struct SimHandle(Arc<Mutex<SimWorld>>);

impl SimHandle {
    pub fn new(world: SimWorld) -> SimHandle {
        SimHandle(Arc::new(Mutex::new(world)))
    }

    /// One cluster's Kubernetes API.
    pub fn cluster(&self, cluster: &str) -> SimCluster {
        SimCluster {
            world: self.clone(),
            cluster: cluster.to_string(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimWorld> {
        // A panic elsewhere cannot leave the world half-changed in a way that matters
        // more than losing it: keep going with what is there.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Read or change the world directly (setup, tests, reports).
    pub fn with<R>(&self, f: impl FnOnce(&mut SimWorld) -> R) -> R {
        f(&mut self.lock())
    }

    /// A copy of the world as it is now.
    pub fn snapshot(&self) -> SimWorld {
        self.lock().clone()
    }
}

/// One simulated cluster's Kubernetes API.
#[derive(Clone, Debug)]
pub struct SimCluster {
    world: SimHandle,
    cluster: String,
}

/// The virtual clock: sleeping moves the world forward instead of the process.
#[async_trait]
impl Clock for SimHandle {
    fn now_ms(&self) -> i64 {
        self.lock().now_ms
    }

    async fn sleep(&self, duration: Duration) {
        let mut world = self.lock();
        let until = world.now_ms + duration.as_millis() as i64;
        world.advance_to(until);
    }
}

#[cfg(test)]
mod tests;
