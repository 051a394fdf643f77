//! Predicting a rollout: the rolling engine run against a copy of a world, summarised
//! as waves per pool and zone, evictions PodDisruptionBudgets held up and for how
//! long, forced deletions, and the duration against its lower bound.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{HASH_LABEL, POOL_LABEL, SimHandle, SimWorld};
use crate::apply::roll::{NeverStop, RollContext, RollEvent, RollSpec, roll_pool};
use crate::model::Cluster;
use crate::render::PoolSummary;

/// One pool to roll.
#[derive(Clone, Debug)]
pub struct PlannedRoll {
    pub cluster: String,
    pub region: String,
    pub spec: RollSpec,
}

/// Apply the stack updates of `cluster`'s pools to `world` (its instances launch with
/// the new config hash from now on) and return the rolls that follow, one per pool that
/// has Auto Scaling groups in the world; a pool without any is created, not rolled.
pub fn updated_pools(
    world: &mut SimWorld,
    cluster: &Cluster,
    pools: &[PoolSummary],
) -> Vec<PlannedRoll> {
    let mut rolls = Vec::new();
    for pool in pools {
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
                            .any(|(k, v)| k == POOL_LABEL && v == &pool.name)
                    })
                    .map(|g| g.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        if groups.is_empty() {
            continue;
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
    rolls
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    pub pools: Vec<PoolPrediction>,
    pub duration_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolPrediction {
    pub cluster: String,
    pub pool: String,
    pub outdated: usize,
    pub surge: u32,
    /// Nodes cordoned together, per zone.
    pub waves: Vec<Wave>,
    pub blocked_evictions: Vec<BlockedEviction>,
    /// Pods deleted after `force_terminate_after`.
    pub forced_deletions: Vec<String>,
    pub duration_seconds: u64,
    /// ceil(outdated / surge) × node boot time.
    pub lower_bound_seconds: u64,
    /// Why the roll would not finish, if it would not.
    pub failure: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Wave {
    pub zone: String,
    /// Seconds after the pool's roll started.
    pub at_seconds: u64,
    pub nodes: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockedEviction {
    pub pod: String,
    /// How long the budget held it (until evicted, forced or the end).
    pub seconds: u64,
}

/// Run `rolls` in order on a copy of `world`; the world itself is not touched.
pub async fn predict(world: &SimWorld, rolls: &[PlannedRoll]) -> Prediction {
    let mut copy = world.clone();
    copy.faults.kill_after_mutations = None;
    let boot_seconds = copy.settings.boot_seconds;
    let sim = SimHandle::new(copy);
    let started = sim.with(|w| w.now_ms);
    let mut pools = Vec::new();
    for roll in rolls {
        let outdated = sim.with(|w| {
            w.nodes(&roll.cluster)
                .iter()
                .filter(|n| n.labels.get(POOL_LABEL) == Some(&roll.spec.pool))
                .filter(|n| n.labels.get(HASH_LABEL) != Some(&roll.spec.config_hash))
                .count()
        });
        let api = sim.cluster(&roll.cluster);
        let events = std::sync::Mutex::new(Vec::new());
        let record = |event: &RollEvent| {
            let now = sim.with(|w| w.now_ms);
            events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((now, event.clone()));
        };
        let ctx = RollContext {
            cloud: &sim,
            api: &api,
            clock: &sim,
            region: &roll.region,
            cluster: &roll.cluster,
            progress: &record,
            stop: &NeverStop,
        };
        let pool_started = sim.with(|w| w.now_ms);
        let outcome = roll_pool(&ctx, &roll.spec).await;
        let finished = sim.with(|w| w.now_ms);
        let events = events.into_inner().unwrap_or_else(|p| p.into_inner());
        let surge = roll.spec.max_surge.max(1) as u64;
        pools.push(PoolPrediction {
            cluster: roll.cluster.clone(),
            pool: roll.spec.pool.clone(),
            outdated,
            surge: roll.spec.max_surge,
            waves: waves(&events, pool_started),
            blocked_evictions: blocked(&events, finished),
            forced_deletions: events
                .iter()
                .filter_map(|(_, e)| match e {
                    RollEvent::ForcedDeletion { pod, .. } => Some(pod.clone()),
                    _ => None,
                })
                .collect(),
            duration_seconds: seconds(finished - pool_started),
            lower_bound_seconds: (outdated as u64).div_ceil(surge) * boot_seconds,
            failure: outcome.err().map(|e| e.to_string()),
        });
    }
    let finished = sim.with(|w| w.now_ms);
    Prediction {
        pools,
        duration_seconds: seconds(finished - started),
    }
}

fn seconds(ms: i64) -> u64 {
    (ms.max(0) / 1000) as u64
}

/// Cordons at the same moment in the same zone make one wave.
fn waves(events: &[(i64, RollEvent)], started: i64) -> Vec<Wave> {
    let mut waves: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for (at, event) in events {
        if let RollEvent::Cordoned { zone, .. } = event {
            *waves.entry((*at, zone.clone())).or_insert(0) += 1;
        }
    }
    waves
        .into_iter()
        .map(|((at, zone), nodes)| Wave {
            zone,
            at_seconds: seconds(at - started),
            nodes,
        })
        .collect()
}

fn blocked(events: &[(i64, RollEvent)], end: i64) -> Vec<BlockedEviction> {
    let mut since: BTreeMap<&str, i64> = BTreeMap::new();
    let mut out = Vec::new();
    for (at, event) in events {
        match event {
            RollEvent::EvictionBlocked { pod, .. } => {
                since.entry(pod).or_insert(*at);
            }
            RollEvent::Evicted { pod, .. } | RollEvent::ForcedDeletion { pod, .. } => {
                if let Some(first) = since.remove(pod.as_str()) {
                    out.push(BlockedEviction {
                        pod: pod.clone(),
                        seconds: seconds(at - first),
                    });
                }
            }
            _ => {}
        }
    }
    out.extend(since.into_iter().map(|(pod, first)| BlockedEviction {
        pod: pod.to_string(),
        seconds: seconds(end - first),
    }));
    out
}

fn duration(seconds: u64) -> String {
    match seconds {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

impl Prediction {
    /// The human rendering.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for p in &self.pools {
            let _ = writeln!(
                out,
                "{} / {}: {} outdated node(s), surge {}",
                p.cluster, p.pool, p.outdated, p.surge
            );
            for w in &p.waves {
                let _ = writeln!(
                    out,
                    "  wave at +{}: {} node(s) in {}",
                    duration(w.at_seconds),
                    w.nodes,
                    w.zone
                );
            }
            let longest = p.blocked_evictions.iter().map(|b| b.seconds).max();
            if let Some(longest) = longest {
                let _ = writeln!(
                    out,
                    "  {} eviction(s) held by PodDisruptionBudgets, longest {}",
                    p.blocked_evictions.len(),
                    duration(longest)
                );
            }
            for pod in &p.forced_deletions {
                let _ = writeln!(
                    out,
                    "  FORCED deletion of {pod} after force_terminate_after"
                );
            }
            let _ = writeln!(
                out,
                "  duration {} (lower bound {}: ceil({} / {}) × node boot time)",
                duration(p.duration_seconds),
                duration(p.lower_bound_seconds),
                p.outdated,
                p.surge.max(1)
            );
            if let Some(failure) = &p.failure {
                let _ = writeln!(out, "  would FAIL: {failure}");
            }
        }
        let _ = writeln!(out, "total {}", duration(self.duration_seconds));
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
