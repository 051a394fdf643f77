//! The world description file for `flotilla simulate --world FILE` (YAML or JSON).
//!
//! ```yaml
//! seed: 7                        # everything random derives from it
//! start: 2026-01-01T00:00:00Z    # simulated start time (RFC 3339)
//! settings:
//!   account: "123456789012"      # what STS answers
//!   boot_seconds: 240            # instance launch → InService and node Ready
//!   stack_seconds: 60            # one stack create/update/delete
//!   pod_startup_seconds: 20      # a scheduled pod → Ready
//!   pods_per_node: 110
//!   mirror_pods: true            # one static pod per node
//! faults:
//!   api_error_rate: 0.02         # share of calls failing with 5xx/throttling/timeout
//!   slow_node_rate: 0.1          # share of launches booting slow_factor times slower
//!   slow_factor: 3
//!   never_ready_rate: 0          # share of launches whose node never becomes Ready
//!   rollback_updates: [kube-1-node-pool-workers]   # stack names, or "*"
//!   capacity_limits: { kube-1-spot: 4 }            # max live instances of a group
//! regions:
//!   eu-central-1: [eu-central-1a, eu-central-1b, eu-central-1c]
//! clusters:
//!   kube-1:
//!     region: eu-central-1
//!     pools:                     # groups running before the simulation starts
//!       - { name: workers, size: 6, max: 9, zones: 3, config_hash: old }
//!     workloads:                 # kind: Deployment | StatefulSet | DaemonSet
//!       - { name: web, kind: Deployment, replicas: 12, pool: workers }
//!       - { name: db, kind: StatefulSet, replicas: 3 }
//!     pdbs:                      # min_available or max_unavailable: pods or "N%"
//!       - { name: web, selector: { app: web }, max_unavailable: 1 }
//!       - { name: db, selector: { app: db }, min_available: "50%" }
//! ```
//! Every field is optional. Workloads are labelled `app: <name>` unless `labels` says
//! otherwise and live in namespace `default` unless `namespace` says otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Faults, PdbSpec, Settings, SimWorld, WorkloadSpec};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldDescription {
    pub seed: u64,
    pub start: Option<String>,
    pub settings: Settings,
    pub faults: Faults,
    /// Region → availability zones (1–3); a region not listed has zones a, b and c.
    pub regions: BTreeMap<String, Vec<String>>,
    pub clusters: BTreeMap<String, ClusterDescription>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterDescription {
    pub region: String,
    pub pools: Vec<PoolDescription>,
    pub workloads: Vec<WorkloadSpec>,
    pub pdbs: Vec<PdbSpec>,
}

/// A node pool that runs before the simulation starts; its group is named
/// `<cluster>-<name>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolDescription {
    pub name: String,
    pub size: i32,
    /// Default: `size`.
    pub min: Option<i32>,
    pub max: Option<i32>,
    pub zones: usize,
    pub config_hash: String,
}

impl Default for PoolDescription {
    fn default() -> Self {
        PoolDescription {
            name: "workers".into(),
            size: 3,
            min: None,
            max: None,
            zones: 3,
            config_hash: "initial".into(),
        }
    }
}

/// A description that could not be read, with where.
#[derive(Clone, Debug, PartialEq)]
pub struct DescriptionError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for DescriptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n  hint: the world description's fields are documented in `flotilla::sim::WorldDescription`",
            self.path, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for DescriptionError {}

impl WorldDescription {
    /// Read a description (YAML, or JSON, which YAML reads too).
    pub fn parse(path: &str, text: &str) -> Result<WorldDescription, DescriptionError> {
        let at = |line: usize, column: usize, message: String| DescriptionError {
            path: path.to_string(),
            line,
            column,
            message,
        };
        let description: WorldDescription = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            at(line, column, e.to_string())
        })?;
        description.start_ms().map_err(|m| at(1, 1, m))?;
        for (id, cluster) in &description.clusters {
            if cluster.region.is_empty() {
                return Err(at(1, 1, format!("cluster `{id}` has no `region`")));
            }
            for pool in &cluster.pools {
                let max = pool.max.unwrap_or(pool.size);
                let min = pool.min.unwrap_or(pool.size);
                if !(0 <= min && min <= pool.size && pool.size <= max) {
                    return Err(at(
                        1,
                        1,
                        format!(
                            "pool `{}` of cluster `{id}`: sizes must satisfy 0 <= min <= size <= max (min {min}, size {}, max {max})",
                            pool.name, pool.size
                        ),
                    ));
                }
            }
        }
        Ok(description)
    }

    fn start_ms(&self) -> Result<i64, String> {
        match &self.start {
            None => Ok(DEFAULT_START_MS),
            Some(text) => text
                .parse::<k8s_openapi::jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|e| format!("`start` is not an RFC 3339 time: {e}")),
        }
    }

    /// The world the description describes, at its start time.
    pub fn build(&self) -> SimWorld {
        let mut world = SimWorld::new(self.seed, self.start_ms().unwrap_or(DEFAULT_START_MS));
        world.settings = self.settings.clone();
        for (region, zones) in &self.regions {
            world.region_mut(region).zones = zones.clone();
        }
        for (id, cluster) in &self.clusters {
            world
                .clusters
                .entry(id.clone())
                .or_insert_with(|| super::cluster::Cluster::new(&cluster.region));
            for pool in &cluster.pools {
                world.add_group(&cluster.region, pool, id);
            }
            for workload in &cluster.workloads {
                world.add_workload(id, workload.clone());
            }
            for pdb in &cluster.pdbs {
                world.add_pdb(id, pdb.clone());
            }
        }
        // Faults apply from the start of the simulation, not to building the world.
        world.faults = self.faults.clone();
        world
    }
}

/// 2026-01-01T00:00:00Z.
const DEFAULT_START_MS: i64 = 1_767_225_600_000;
