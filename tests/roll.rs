//! The rolling engine against the simulated world: a whole roll, what it promises at
//! every moment, crash and resume after every mutating call, generated worlds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flotilla::apply::roll::{
    CapacityType, DRAIN_STARTED, RollContext, RollError, RollEvent, RollReport, RollSpec,
    StopSignal, drain_pool, roll_pool,
};
use flotilla::apply::{Block, clear_block, read_block, set_block};
use flotilla::live::{Clock, ClusterApi, GroupSize, LiveResult};
use flotilla::sim::{
    Budget, PdbSpec, PoolDescription, SimHandle, SimWorld, WorkloadKind, WorkloadSpec,
};
use proptest::prelude::*;

const REGION: &str = "eu-central-1";
const CLUSTER: &str = "kube-1";
const GROUP: &str = "kube-1-workers";
const HASH: &str = "flotilla.io/config-hash";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn workload(name: &str, kind: WorkloadKind, replicas: u32) -> WorkloadSpec {
    WorkloadSpec {
        namespace: "default".into(),
        name: name.into(),
        kind,
        replicas,
        labels: BTreeMap::new(),
        pool: Some("workers".into()),
    }
}

fn pdb(app: &str, min_available: Option<Budget>, max_unavailable: Option<Budget>) -> PdbSpec {
    PdbSpec {
        namespace: "default".into(),
        name: app.into(),
        selector: BTreeMap::from([("app".to_string(), app.to_string())]),
        min_available,
        max_unavailable,
    }
}

/// A pool of `size` nodes over `zones` zones running `workloads`, whose launch
/// template has just changed to hash `new`.
fn world(size: i32, zones: usize, workloads: Vec<WorkloadSpec>, pdbs: Vec<PdbSpec>) -> SimWorld {
    let mut world = SimWorld::new(11, 1_767_225_600_000);
    // Room for every pod: what is Pending is so because of zones and cordons.
    world.settings.pods_per_node = 200;
    world.add_group(
        REGION,
        &PoolDescription {
            name: "workers".into(),
            size,
            min: Some(size.min(1)),
            max: Some(size + 2),
            zones,
            config_hash: "old".into(),
        },
        CLUSTER,
    );
    for w in workloads {
        world.add_workload(CLUSTER, w);
    }
    for p in pdbs {
        world.add_pdb(CLUSTER, p);
    }
    // Pods have been running for a while (forced deletion looks at their age).
    world.advance_to(world.now_ms + 4 * 24 * 3600 * 1000);
    world.change_pool_config(REGION, GROUP, "new");
    world
}

fn spec() -> RollSpec {
    let mut spec = RollSpec::new("workers", "new", Duration::from_secs(8 * 3600));
    spec.min_pod_age_for_force = Duration::from_secs(3600);
    spec.force_delete_interval = Duration::from_secs(60);
    spec
}

/// Gives up after a simulated month: a roll that never ends fails the test.
struct Deadline {
    clock: SimHandle,
    at_ms: i64,
}

#[async_trait]
impl StopSignal for Deadline {
    async fn stop_reason(&self) -> LiveResult<Option<String>> {
        Ok((self.clock.now_ms() > self.at_ms).then(|| "a simulated month passed".to_string()))
    }
}

async fn run(sim: &SimHandle, spec: &RollSpec) -> Result<RollReport, RollError> {
    let api = sim.cluster(CLUSTER);
    let stop = Deadline {
        clock: sim.clone(),
        at_ms: sim.now_ms() + 30 * 24 * 3600 * 1000,
    };
    let ctx = RollContext {
        cloud: sim,
        api: &api,
        clock: sim,
        region: REGION,
        cluster: CLUSTER,
        progress: &|_| {},
        stop: &stop,
    };
    roll_pool(&ctx, spec).await
}

/// A scheduled pod as one moment saw it.
struct Placed {
    node: String,
    ready: bool,
    kind: Option<WorkloadKind>,
    namespace: String,
    labels: BTreeMap<String, String>,
}

fn placed(w: &SimWorld) -> BTreeMap<String, Placed> {
    let Some(c) = w.cluster(CLUSTER) else {
        return BTreeMap::new();
    };
    c.pods()
        .iter()
        .filter_map(|(key, p)| {
            let node = p.node.clone()?;
            let ready = p.ready_ms.is_some_and(|t| t <= w.now_ms)
                && c.nodes.get(&node).is_some_and(|n| n.ready);
            Some((
                key.clone(),
                Placed {
                    node,
                    ready,
                    kind: p.kind,
                    namespace: p.namespace.clone(),
                    labels: p.labels.clone(),
                },
            ))
        })
        .collect()
}

/// What a pod that is gone since the last change did to its budgets: a Ready pod
/// taken from a node that is still there (evicted or deleted) may leave a budget
/// short only once its node's drain has run `force_terminate_after`; a node may
/// leave only without the pods of Deployments and StatefulSets.
fn disruption_violations(
    w: &SimWorld,
    before: &BTreeMap<String, Placed>,
    now: &BTreeMap<String, Placed>,
    force_after_ms: i64,
) -> Vec<String> {
    let Some(c) = w.cluster(CLUSTER) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (key, pod) in before.iter().filter(|(k, _)| !now.contains_key(*k)) {
        let Some(node) = c.nodes.get(&pod.node) else {
            if matches!(
                pod.kind,
                Some(WorkloadKind::Deployment | WorkloadKind::StatefulSet)
            ) {
                found.push(format!("node {} left with pod {key} on it", pod.node));
            }
            continue;
        };
        if !pod.ready {
            continue;
        }
        let drain_started = node
            .annotations
            .get(DRAIN_STARTED)
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.as_millisecond());
        let past_deadline = drain_started.is_some_and(|t| w.now_ms >= t + force_after_ms);
        for budget in c.pdbs.iter().filter(|b| {
            b.namespace == pod.namespace
                && b.selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
        }) {
            let state = c.pdb_state(budget, w.now_ms);
            if state.current_healthy < state.desired_healthy && !past_deadline {
                found.push(format!(
                    "{key} left {} with {} of {} healthy at {}, drain started {drain_started:?}",
                    budget.name, state.current_healthy, state.desired_healthy, w.now_ms
                ));
            }
        }
    }
    found
}

/// Watches the world after every change for what the roll promises at every moment:
/// Ready schedulable nodes never under desired − max_unavailable, the group never
/// above max + surge, no budget broken by a disruption before the deadline.
fn guard(world: &mut SimWorld, spec: &RollSpec) -> Arc<Mutex<Vec<String>>> {
    let violations = Arc::new(Mutex::new(Vec::new()));
    let group = world.group(REGION, GROUP).unwrap().clone();
    let floor = group.desired - spec.max_unavailable as i32;
    let ceiling = group.max + spec.max_surge as i32;
    let force_after_ms = spec.force_terminate_after.as_millis() as i64;
    let seen = violations.clone();
    let last = Mutex::new(placed(world));
    world.observe(move |w| {
        let mut seen = seen.lock().unwrap();
        let mut last = last.lock().unwrap();
        let now = placed(w);
        seen.extend(disruption_violations(w, &last, &now, force_after_ms));
        *last = now;
        let Some(g) = w.group(REGION, GROUP) else {
            return seen.push("the group disappeared".into());
        };
        if g.max > ceiling || g.instances.len() as i32 > ceiling {
            seen.push(format!(
                "group above max + surge: max {} instances {}",
                g.max,
                g.instances.len()
            ));
        }
        let serving = w
            .nodes(CLUSTER)
            .iter()
            .filter(|n| n.ready && !n.unschedulable)
            .filter(|n| {
                n.instance_id()
                    .is_some_and(|id| g.instances.iter().any(|i| i == id))
            })
            .count() as i32;
        if serving < floor {
            seen.push(format!(
                "{serving} Ready schedulable nodes, promised {floor} at {}",
                w.now_ms
            ));
        }
    });
    violations
}

fn assert_rolled(sim: &SimHandle, original: GroupSize) {
    sim.with(|w| {
        let g = w.group(REGION, GROUP).unwrap();
        assert_eq!(
            GroupSize {
                min: g.min,
                max: g.max,
                desired: g.desired
            },
            original,
            "sizes restored"
        );
        assert!(
            g.tags
                .iter()
                .all(|(k, _)| !k.starts_with("flotilla.io/roll-")),
            "{:?}",
            g.tags
        );
        let nodes = w.nodes(CLUSTER);
        assert_eq!(nodes.len() as i32, original.desired);
        assert!(
            nodes
                .iter()
                .all(|n| n.labels[HASH] == "new" && n.ready && !n.unschedulable)
        );
    });
}

fn forced_after_deadline(report: &RollReport, spec: &RollSpec) {
    for (at, event) in &report.events {
        if let RollEvent::ForcedDeletion {
            drain_started_ms,
            pod,
            ..
        } = event
        {
            let waited = at - drain_started_ms;
            assert!(
                waited >= spec.force_terminate_after.as_millis() as i64,
                "{pod} forced after {waited} ms of drain"
            );
        }
    }
}

#[test]
fn a_pool_rolls_zone_by_zone_within_its_budgets() {
    let mut w = world(
        6,
        3,
        vec![
            workload("web", WorkloadKind::Deployment, 12),
            workload("db", WorkloadKind::StatefulSet, 3),
            workload("logs", WorkloadKind::DaemonSet, 0),
        ],
        vec![
            pdb("web", None, Some(1.into())),
            pdb("db", Some(2.into()), None),
        ],
    );
    let spec = spec();
    let violations = guard(&mut w, &spec);
    let launched_before = w.stats.launched;
    let sim = SimHandle::new(w);
    let report = block_on(run(&sim, &spec)).unwrap();
    assert!(
        violations.lock().unwrap().is_empty(),
        "{:?}",
        violations.lock().unwrap()
    );
    assert_rolled(
        &sim,
        GroupSize {
            min: 1,
            max: 8,
            desired: 6,
        },
    );
    assert_eq!(
        sim.with(|w| w.stats.launched) - launched_before,
        6,
        "one new instance per old"
    );
    assert_eq!(report.replaced.len(), 6);
    assert_eq!(
        sim.with(|w| w.stats.forced_deletions),
        0,
        "budgets allow everything in time"
    );
    // Zone by zone: the zones of cordoned nodes, in order, never go back.
    let zones: Vec<&str> = report
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            RollEvent::Cordoned { zone, .. } => Some(zone.as_str()),
            _ => None,
        })
        .collect();
    let mut sorted = zones.clone();
    sorted.sort();
    assert_eq!(zones, sorted);
    assert_eq!(zones.len(), 6);
    // Marked first: every old node is marked before the first cordon.
    let first_cordon = report
        .events
        .iter()
        .position(|(_, e)| matches!(e, RollEvent::Cordoned { .. }))
        .unwrap();
    let marks = report.events[..first_cordon]
        .iter()
        .filter(|(_, e)| matches!(e, RollEvent::Marked { .. }))
        .count();
    assert_eq!(marks, 6);
    // Each pod moved once: evicted pods avoid the marked nodes (DaemonSet and mirror
    // pods are never evicted).
    assert_eq!(sim.with(|w| w.stats.evictions), 12 + 3);
    // Running again finds nothing to do and changes nothing.
    let mutations = sim.with(|w| w.stats.mutations);
    let again = block_on(run(&sim, &spec)).unwrap();
    assert!(again.replaced.is_empty());
    assert_eq!(sim.with(|w| w.stats.mutations), mutations);
}

#[test]
fn an_unsatisfiable_budget_is_forced_only_after_the_deadline_one_pod_at_a_time() {
    let mut w = world(
        2,
        1,
        vec![workload("web", WorkloadKind::Deployment, 3)],
        vec![pdb("web", Some(5.into()), None)],
    );
    let spec = spec();
    let violations = guard(&mut w, &spec);
    let sim = SimHandle::new(w);
    let start = sim.now_ms();
    let report = block_on(run(&sim, &spec)).unwrap();
    assert!(
        violations.lock().unwrap().is_empty(),
        "{:?}",
        violations.lock().unwrap()
    );
    assert_rolled(
        &sim,
        GroupSize {
            min: 1,
            max: 4,
            desired: 2,
        },
    );
    forced_after_deadline(&report, &spec);
    let forced: Vec<i64> = report
        .events
        .iter()
        .filter_map(|(at, e)| matches!(e, RollEvent::ForcedDeletion { .. }).then_some(*at))
        .collect();
    assert_eq!(forced.len() as u64, sim.with(|w| w.stats.forced_deletions));
    assert!(!forced.is_empty());
    for pair in forced.windows(2) {
        assert!(
            pair[1] - pair[0] >= 60_000,
            "forced deletions at least a minute apart"
        );
    }
    assert!(report.finished_ms - start >= 8 * 3600 * 1000);
    assert!(
        report
            .events
            .iter()
            .any(|(_, e)| matches!(e, RollEvent::EvictionBlocked { .. }))
    );
}

#[test]
fn a_spot_pool_without_surge_capacity_falls_back_to_one_node_at_a_time() {
    let mut w = world(
        4,
        2,
        vec![workload("web", WorkloadKind::Deployment, 4)],
        Vec::new(),
    );
    // The market has no instance beyond the pool's size.
    w.faults.capacity_limits.insert(GROUP.into(), 4);
    let mut spec = spec();
    spec.capacity = CapacityType::Spot;
    spec.max_unavailable = 1;
    let violations = guard(&mut w, &spec);
    let sim = SimHandle::new(w);
    let report = block_on(run(&sim, &spec)).unwrap();
    assert!(
        violations.lock().unwrap().is_empty(),
        "{:?}",
        violations.lock().unwrap()
    );
    assert_rolled(
        &sim,
        GroupSize {
            min: 1,
            max: 6,
            desired: 4,
        },
    );
    assert!(
        report
            .events
            .iter()
            .any(|(_, e)| matches!(e, RollEvent::SpotFallback { .. }))
    );

    // With no unavailability allowed, that is impossible, and it says so.
    let mut w = world(2, 1, Vec::new(), Vec::new());
    w.faults.capacity_limits.insert(GROUP.into(), 2);
    let mut strict = self::spec();
    strict.capacity = CapacityType::Spot;
    let sim = SimHandle::new(w);
    let error = block_on(run(&sim, &strict)).unwrap_err();
    assert!(matches!(error, RollError::Impossible(_)), "{error}");
}

#[test]
fn nodes_that_never_become_ready_time_out_without_losing_capacity() {
    let mut w = world(3, 1, Vec::new(), Vec::new());
    w.faults.never_ready_rate = 1.0;
    let spec = spec();
    let violations = guard(&mut w, &spec);
    let sim = SimHandle::new(w);
    let error = block_on(run(&sim, &spec)).unwrap_err();
    assert!(matches!(error, RollError::Timeout { .. }), "{error}");
    assert!(
        violations.lock().unwrap().is_empty(),
        "{:?}",
        violations.lock().unwrap()
    );
    let old_ready = sim.with(|w| {
        w.nodes(CLUSTER)
            .iter()
            .filter(|n| n.labels[HASH] == "old" && n.ready)
            .count()
    });
    assert_eq!(
        old_ready, 3,
        "no old node was drained for a replacement that never came"
    );
}

#[test]
fn a_group_that_launches_the_old_config_stops_the_roll_before_anything_is_drained() {
    // The launch template never changed: the surge comes up with the old hash.
    let mut w = world(3, 1, Vec::new(), Vec::new());
    w.change_pool_config(REGION, GROUP, "old");
    let spec = spec();
    let violations = guard(&mut w, &spec);
    let sim = SimHandle::new(w);
    let error = block_on(run(&sim, &spec)).unwrap_err();
    match &error {
        RollError::Impossible(why) => assert!(
            why.contains(GROUP) && why.contains("config hash old, not new"),
            "{why}"
        ),
        other => panic!("{other}"),
    }
    assert!(
        violations.lock().unwrap().is_empty(),
        "{:?}",
        violations.lock().unwrap()
    );
    let (old, cordoned) = sim.with(|w| {
        let nodes = w.nodes(CLUSTER);
        (
            nodes.iter().filter(|n| n.labels[HASH] == "old").count(),
            nodes.iter().filter(|n| n.unschedulable).count(),
        )
    });
    // The three nodes and the surge, all old; none cordoned, none terminated.
    let surged = 3 + spec.max_surge as usize;
    assert_eq!(
        (old, cordoned),
        (surged, 0),
        "nothing drained or terminated"
    );
}

/// Stops when the cluster holds a block, as apply's stop signal does.
struct BlockStop<'a>(&'a dyn ClusterApi);

#[async_trait]
impl StopSignal for BlockStop<'_> {
    async fn stop_reason(&self) -> LiveResult<Option<String>> {
        Ok(read_block(self.0).await?.map(|b| b.reason))
    }
}

#[test]
fn a_block_set_while_rolling_stops_at_the_next_safe_point_and_an_unblocked_rerun_finishes() {
    let w = world(
        4,
        2,
        vec![workload("web", WorkloadKind::Deployment, 4)],
        Vec::new(),
    );
    let sim = SimHandle::new(w);
    let api = sim.cluster(CLUSTER);
    let events: Mutex<Vec<RollEvent>> = Mutex::new(Vec::new());
    // Someone blocks the cluster the moment the first node is cordoned.
    let progress = |event: &RollEvent| {
        let mut events = events.lock().unwrap();
        if matches!(event, RollEvent::Cordoned { .. })
            && !events
                .iter()
                .any(|e| matches!(e, RollEvent::Cordoned { .. }))
        {
            let block = Block {
                by: "carol".into(),
                reason: "incident 42".into(),
                at: "2026-01-01T00:00:00Z".into(),
            };
            futures::executor::block_on(set_block(&api, &block)).unwrap();
        }
        events.push(event.clone());
    };
    let ctx = RollContext {
        cloud: &sim,
        api: &api,
        clock: &sim,
        region: REGION,
        cluster: CLUSTER,
        progress: &progress,
        stop: &BlockStop(&api),
    };
    let error = block_on(roll_pool(&ctx, &spec())).unwrap_err();
    assert_eq!(error, RollError::Stopped("incident 42".into()));
    let events = events.lock().unwrap().clone();
    let first_cordon = events
        .iter()
        .position(|e| matches!(e, RollEvent::Cordoned { .. }))
        .unwrap();
    // The look that cordoned finishes its cordons; nothing is evicted or terminated
    // after the block.
    assert!(
        events[first_cordon..]
            .iter()
            .all(|e| matches!(e, RollEvent::Cordoned { .. })),
        "{events:?}"
    );
    let (cordoned, old) = sim.with(|w| {
        let nodes = w.nodes(CLUSTER);
        (
            nodes.iter().filter(|n| n.unschedulable).count(),
            nodes.iter().filter(|n| n.labels[HASH] == "old").count(),
        )
    });
    assert!(cordoned > 0, "stopped mid-roll");
    assert_eq!(old, 4, "no old node was terminated after the block");
    // Blocked, a rerun stops before changing anything.
    let mutations = sim.with(|w| w.stats.mutations);
    let again = block_on(roll_pool(&ctx, &spec())).unwrap_err();
    assert_eq!(again, RollError::Stopped("incident 42".into()));
    assert_eq!(sim.with(|w| w.stats.mutations), mutations);

    assert!(block_on(clear_block(&api)).unwrap());
    block_on(run(&sim, &spec())).unwrap();
    assert_rolled(
        &sim,
        GroupSize {
            min: 1,
            max: 6,
            desired: 4,
        },
    );
}

#[test]
fn a_removed_pool_is_drained_one_node_at_a_time_and_nothing_is_terminated() {
    let mut web = workload("web", WorkloadKind::Deployment, 3);
    web.pool = None;
    let mut w = world(3, 3, vec![web], vec![pdb("web", None, Some(1.into()))]);
    // The pool that stays, where the pods go.
    let system = PoolDescription {
        name: "system".into(),
        size: 2,
        ..PoolDescription::default()
    };
    w.add_group(REGION, &system, CLUSTER);
    let sim = SimHandle::new(w);
    let api = sim.cluster(CLUSTER);
    let stop = Deadline {
        clock: sim.clone(),
        at_ms: sim.now_ms() + 24 * 3600 * 1000,
    };
    let ctx = RollContext {
        cloud: &sim,
        api: &api,
        clock: &sim,
        region: REGION,
        cluster: CLUSTER,
        progress: &|_| {},
        stop: &stop,
    };
    let terminated = sim.with(|w| w.stats.terminated);
    let report = block_on(drain_pool(&ctx, &spec())).unwrap();
    assert!(report.replaced.is_empty());
    sim.with(|w| {
        assert_eq!(w.stats.terminated, terminated);
        let c = w.cluster(CLUSTER).unwrap();
        let workers: Vec<_> = c
            .nodes
            .values()
            .filter(|n| n.labels["flotilla.io/node-pool"] == "workers")
            .collect();
        assert_eq!(workers.len(), 3);
        assert!(workers.iter().all(|n| n.unschedulable));
        let web_on_workers = c
            .pods()
            .values()
            .filter(|p| p.owner == "web")
            .filter(|p| {
                p.node
                    .as_ref()
                    .is_none_or(|n| c.nodes[n].labels["flotilla.io/node-pool"] == "workers")
            })
            .count();
        assert_eq!(
            web_on_workers, 0,
            "every web pod moved to the pool that stays"
        );
    });
}

/// Every mutating call of a roll, one at a time, is where the process dies; a second
/// run reaches the same end with no extra instance.
#[test]
fn a_roll_killed_after_any_mutating_call_finishes_on_rerun_without_extra_instances() {
    let build = || {
        world(
            4,
            2,
            vec![
                workload("web", WorkloadKind::Deployment, 6),
                workload("db", WorkloadKind::StatefulSet, 2),
            ],
            vec![
                pdb("web", None, Some(1.into())),
                pdb("db", Some(1.into()), None),
            ],
        )
    };
    let mut spec = spec();
    spec.max_surge = 2;
    let sim = SimHandle::new(build());
    let before = sim.with(|w| (w.stats.mutations, w.stats.launched));
    block_on(run(&sim, &spec)).unwrap();
    let (mutations, launched) =
        sim.with(|w| (w.stats.mutations - before.0, w.stats.launched - before.1));
    assert!(mutations > 10, "{mutations}");
    for k in 1..mutations {
        let mut w = build();
        let start = w.stats.mutations;
        w.faults.kill_after_mutations = Some(start + k);
        let spec = spec.clone();
        let violations = guard(&mut w, &spec);
        let sim = SimHandle::new(w);
        let killed = block_on(run(&sim, &spec)).unwrap_err();
        assert!(killed.to_string().contains("killed"), "k={k}: {killed}");
        sim.with(|w| w.faults.kill_after_mutations = None);
        block_on(run(&sim, &spec)).unwrap_or_else(|e| panic!("k={k}: {e}"));
        assert_rolled(
            &sim,
            GroupSize {
                min: 1,
                max: 6,
                desired: 4,
            },
        );
        assert_eq!(
            sim.with(|w| w.stats.launched) - before.1,
            launched,
            "k={k}: instances launched"
        );
        assert!(
            violations.lock().unwrap().is_empty(),
            "k={k}: {:?}",
            violations.lock().unwrap()
        );
    }
}

#[derive(Debug, Clone)]
struct Case {
    size: i32,
    zones: usize,
    surge: u32,
    unavailable: u32,
    /// Replicas, and a budget: (`minAvailable` rather than `maxUnavailable`, value).
    deployments: Vec<(u32, Option<(bool, Budget)>)>,
    statefulset: u32,
    daemonset: bool,
    error_rate: f64,
    slow_rate: f64,
    never_ready: bool,
    seed: u64,
}

/// Pods or a percentage; `minAvailable` of more pods than exist, or of 100%, cannot
/// be satisfied by evictions.
fn budget() -> impl Strategy<Value = Budget> {
    prop_oneof![
        (0..12i32).prop_map(Budget::Pods),
        (0..=100u32).prop_map(Budget::Percent),
    ]
}

fn cases() -> impl Strategy<Value = Case> {
    // Mostly small pools, some up to 200 nodes.
    let size = prop_oneof![9 => 1..12i32, 1 => 12..=200i32];
    (
        size,
        1..=3usize,
        1..=4u32,
        0..=2u32,
        prop::collection::vec(
            (0..30u32, prop::option::of((any::<bool>(), budget()))),
            0..3,
        ),
        0..4u32,
        any::<bool>(),
        prop_oneof![2 => Just(0.0), 1 => 0.0..0.05f64],
        prop_oneof![2 => Just(0.0), 1 => 0.0..0.3f64],
        prop::bool::weighted(0.05),
        any::<u64>(),
    )
        .prop_map(
            |(
                size,
                zones,
                surge,
                unavailable,
                deployments,
                statefulset,
                daemonset,
                error_rate,
                slow_rate,
                never_ready,
                seed,
            )| Case {
                size: size.max(zones as i32),
                zones,
                surge,
                unavailable,
                deployments,
                statefulset,
                daemonset,
                error_rate,
                slow_rate,
                never_ready,
                seed,
            },
        )
}

/// Generated worlds per run. Each runs a whole roll with a budget check after every
/// change, which in a debug build takes seconds for the largest worlds, so the suite
/// runs a sample; `PROPTEST_CASES=256 cargo test --release --test roll` runs the full
/// set (as recorded in the closing notes).
fn generated_world_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: generated_world_cases(), .. ProptestConfig::default() })]

    #[test]
    fn generated_worlds_roll_within_their_promises(case in cases()) {
        let mut workloads = Vec::new();
        let mut pdbs = Vec::new();
        for (i, (replicas, budget)) in case.deployments.iter().enumerate() {
            let name = format!("app{i}");
            workloads.push(workload(&name, WorkloadKind::Deployment, *replicas));
            // Some budgets ask for more than there is: unsatisfiable.
            match budget {
                Some((true, n)) => pdbs.push(pdb(&name, Some(*n), None)),
                Some((false, n)) => pdbs.push(pdb(&name, None, Some(*n))),
                None => {}
            }
        }
        if case.statefulset > 0 {
            workloads.push(workload("db", WorkloadKind::StatefulSet, case.statefulset.min(case.size as u32)));
            pdbs.push(pdb("db", None, Some(1.into())));
        }
        if case.daemonset {
            workloads.push(workload("agent", WorkloadKind::DaemonSet, 0));
        }
        let mut w = world(case.size, case.zones, workloads, pdbs);
        w.faults.api_error_rate = case.error_rate;
        w.faults.slow_node_rate = case.slow_rate;
        w.faults.slow_factor = 2.0;
        w.faults.never_ready_rate = if case.never_ready { 0.2 } else { 0.0 };
        w.reseed(case.seed);
        let mut spec = spec();
        spec.max_surge = case.surge;
        spec.max_unavailable = case.unavailable;
        let violations = guard(&mut w, &spec);
        let original = {
            let g = w.group(REGION, GROUP).unwrap();
            GroupSize { min: g.min, max: g.max, desired: g.desired }
        };
        let sim = SimHandle::new(w);
        let outcome = block_on(run(&sim, &spec));
        prop_assert!(violations.lock().unwrap().is_empty(), "{:?}", violations.lock().unwrap());
        match outcome {
            Ok(report) => {
                forced_after_deadline(&report, &spec);
                assert_rolled(&sim, original);
            }
            // A node that never becomes Ready stops the roll; nothing else may.
            Err(RollError::Timeout { .. }) if case.never_ready => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}
