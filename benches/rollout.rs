//! Rollout benchmark: 20 clusters × 100 outdated nodes (3 zones, surge 10) with
//! Deployments under `maxUnavailable: 4` budgets (10% of 40 replicas), a StatefulSet
//! and a DaemonSet, each rolled by the engine against the simulator. Prints the
//! engine's CPU time (the simulator's work included; wall time beside it) and the
//! simulated duration against the lower bound ceil(outdated / surge) × node boot time.
//! Run with `cargo bench --bench rollout`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla::apply::roll::{NeverStop, RollContext, RollSpec, roll_pool};
use flotilla::sim::{PdbSpec, PoolDescription, SimHandle, SimWorld, WorkloadKind, WorkloadSpec};

const CLUSTERS: usize = 20;
const NODES: i32 = 100;
const SURGE: u32 = 10;
const REGION: &str = "eu-central-1";

fn world(cluster: &str) -> SimWorld {
    let mut world = SimWorld::new(7, 1_767_225_600_000);
    world.add_group(
        REGION,
        &PoolDescription {
            name: "workers".into(),
            size: NODES,
            min: Some(NODES),
            max: Some(NODES + 20),
            zones: 3,
            config_hash: "old".into(),
        },
        cluster,
    );
    let workload = |name: &str, kind, replicas| WorkloadSpec {
        namespace: "default".into(),
        name: name.into(),
        kind,
        replicas,
        labels: BTreeMap::new(),
        pool: None,
    };
    for i in 0..8 {
        let name = format!("service-{i}");
        world.add_workload(cluster, workload(&name, WorkloadKind::Deployment, 40));
        world.add_pdb(
            cluster,
            PdbSpec {
                namespace: "default".into(),
                name: name.clone(),
                selector: BTreeMap::from([("app".to_string(), name)]),
                min_available: None,
                max_unavailable: Some(4.into()),
            },
        );
    }
    world.add_workload(cluster, workload("db", WorkloadKind::StatefulSet, 6));
    world.add_workload(cluster, workload("agent", WorkloadKind::DaemonSet, 0));
    world.advance_to(world.now_ms + 3600 * 1000);
    world.change_pool_config(REGION, &format!("{cluster}-workers"), "new");
    world
}

/// CPU time this thread has used, from the scheduler's own accounting (Linux); the
/// wall clock elsewhere, where on a shared machine it counts other processes' work too.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanoseconds))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut spec = RollSpec::new("workers", "new", Duration::from_secs(8 * 3600));
    spec.max_surge = SURGE;
    let boot = world("probe").settings.boot_seconds;
    let lower_bound = (NODES as u64).div_ceil(SURGE as u64) * boot;
    let mut cpu = Duration::ZERO;
    let mut wall = Duration::ZERO;
    let mut durations = Vec::new();
    let mut replaced = 0;
    let mut calls = flotilla::sim::Stats::default();
    for c in 0..CLUSTERS {
        let id = format!("cluster-{c:02}");
        let sim = SimHandle::new(world(&id));
        let api = sim.cluster(&id);
        let ctx = RollContext {
            cloud: &sim,
            api: &api,
            clock: &sim,
            region: REGION,
            cluster: &id,
            progress: &|_| {},
            stop: &NeverStop,
        };
        let (started, started_cpu) = (Instant::now(), thread_cpu());
        let report = runtime.block_on(roll_pool(&ctx, &spec)).expect("roll");
        wall += started.elapsed();
        cpu += match (started_cpu, thread_cpu()) {
            (Some(before), Some(after)) => after - before,
            _ => started.elapsed(),
        };
        replaced += report.replaced.len();
        sim.with(|w| {
            calls.mutations += w.stats.mutations;
            calls.evictions += w.stats.evictions;
            calls.evictions_blocked += w.stats.evictions_blocked;
        });
        durations.push(((report.finished_ms - report.started_ms) / 1000) as u64);
    }
    let mean = durations.iter().sum::<u64>() as f64 / durations.len() as f64;
    let worst = *durations.iter().max().unwrap_or(&0);
    println!(
        "| clusters | nodes replaced | engine + simulator CPU (wall) | simulated per cluster (mean / worst) | lower bound | worst / bound |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {CLUSTERS} | {replaced} | {:.0} ms ({:.0} ms) | {:.0} s / {worst} s | {lower_bound} s | {:.3} |",
        cpu.as_secs_f64() * 1000.0,
        wall.as_secs_f64() * 1000.0,
        mean,
        worst as f64 / lower_bound as f64
    );
    println!(
        "\nsimulator: {} mutating calls, {} evictions, {} refused by a budget",
        calls.mutations, calls.evictions, calls.evictions_blocked
    );
}
