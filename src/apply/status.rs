//! `flotilla status`: what each cluster runs compared with what it should run. The
//! JSON form ([`ClusterStatus`]) is stable: integer `nodes`, `ready` and `outdated` per
//! pool, the Auto Scaling group's sizes, the rollout holding the lock, the block.

use std::fmt::Write as _;

use serde::Serialize;

use super::World;
use super::guard::{self, Block, Rollout};
use crate::live::LiveResult;
use crate::model::Cluster;
use crate::plan::{HASH_LABEL, POOL_LABEL};
use crate::render::Artifacts;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    /// The cluster's id in the registry it was imported from, when not `cluster`
    /// (left out of the JSON otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_id: Option<String>,
    pub region: String,
    /// `null` when the cluster is not blocked.
    pub blocked: Option<Block>,
    /// `null` when no apply holds the cluster.
    pub rollout: Option<Rollout>,
    pub pools: Vec<PoolStatus>,
    /// Why the status could not be read (the other fields are then empty).
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolStatus {
    pub name: String,
    pub desired_hash: String,
    /// Nodes registered for the pool.
    pub nodes: u32,
    pub ready: u32,
    /// Nodes whose config hash is not the desired one.
    pub outdated: u32,
    /// `null` when the pool's Auto Scaling group does not exist (yet).
    pub group: Option<GroupSizes>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GroupSizes {
    pub min: i32,
    pub desired: i32,
    pub max: i32,
}

/// Read one cluster's status. A cluster whose control plane does not exist has no
/// API server: its pools are shown without nodes.
pub async fn cluster_status(
    artifacts: &Artifacts,
    spec: &Cluster,
    world: &World<'_>,
) -> ClusterStatus {
    let mut status = ClusterStatus {
        cluster: spec.id.clone(),
        registry_id: spec.registry_id.clone(),
        region: spec.region.clone(),
        blocked: None,
        rollout: None,
        pools: Vec::new(),
        error: None,
    };
    if let Err(e) = read(artifacts, spec, world, &mut status).await {
        status.error = Some(e.to_string());
        status.pools.clear();
    }
    status
}

async fn read(
    artifacts: &Artifacts,
    spec: &Cluster,
    world: &World<'_>,
    status: &mut ClusterStatus,
) -> LiveResult<()> {
    // Guarded: the first read checks the account.
    let cloud = world.cloud(spec);
    let groups = cloud.auto_scaling_groups(&spec.region, &spec.id).await?;
    let exists = cloud
        .describe_stack(&spec.region, &spec.id)
        .await?
        .is_some();
    let mut nodes = Vec::new();
    if exists {
        let api = world
            .connector
            .connect(&spec.id, &spec.api_server_url)
            .await?;
        status.blocked = guard::read_block(api.as_ref()).await?;
        status.rollout = guard::read_rollout(api.as_ref(), world.clock.now_ms()).await?;
        nodes = api.nodes(POOL_LABEL).await?;
    }
    for pool in &artifacts.summary.node_pools {
        let mine: Vec<_> = nodes
            .iter()
            .filter(|n| n.labels.get(POOL_LABEL) == Some(&pool.name))
            .collect();
        // A pool has one group, or one per zone (worker-splitaz): their sizes add up.
        let group = groups
            .iter()
            .filter(|g| {
                g.tags
                    .iter()
                    .any(|(k, v)| k == POOL_LABEL && v == &pool.name)
            })
            .map(|g| GroupSizes {
                min: g.min_size,
                desired: g.desired_capacity,
                max: g.max_size,
            })
            .reduce(|total, g| GroupSizes {
                min: total.min + g.min,
                desired: total.desired + g.desired,
                max: total.max + g.max,
            });
        status.pools.push(PoolStatus {
            name: pool.name.clone(),
            desired_hash: pool.config_hash.clone(),
            nodes: mine.len() as u32,
            ready: mine.iter().filter(|n| n.ready).count() as u32,
            outdated: mine
                .iter()
                .filter(|n| n.labels.get(HASH_LABEL) != Some(&pool.config_hash))
                .count() as u32,
            group,
        });
    }
    Ok(())
}

/// A table per cluster, for people.
pub fn to_text(statuses: &[ClusterStatus]) -> String {
    let mut out = String::new();
    for s in statuses {
        let _ = match &s.registry_id {
            Some(id) => writeln!(out, "{} [registry {id}] ({})", s.cluster, s.region),
            None => writeln!(out, "{} ({})", s.cluster, s.region),
        };
        if let Some(error) = &s.error {
            let _ = writeln!(out, "  status unavailable: {error}");
            continue;
        }
        match &s.blocked {
            Some(block) => {
                let _ = writeln!(out, "  {block}");
            }
            None => {
                let _ = writeln!(out, "  not blocked");
            }
        }
        if let Some(r) = &s.rollout {
            let _ = writeln!(
                out,
                "  apply in progress: {} since {} (by {})",
                r.step, r.since, r.holder
            );
        }
        let _ = writeln!(
            out,
            "  {:<24} {:<34} {:>5} {:>5} {:>8}  group min/desired/max",
            "node pool", "config hash", "nodes", "ready", "outdated"
        );
        for p in &s.pools {
            let group = p.group.map_or("-".to_string(), |g| {
                format!("{}/{}/{}", g.min, g.desired, g.max)
            });
            let _ = writeln!(
                out,
                "  {:<24} {:<34} {:>5} {:>5} {:>8}  {group}",
                p.name, p.desired_hash, p.nodes, p.ready, p.outdated
            );
        }
    }
    out
}
