//! The simulated Kubernetes side of one cluster: nodes that join as their instances
//! boot, pods their controllers keep re-creating and the scheduler places,
//! PodDisruptionBudgets judged as the Eviction API does, and a plain object store for
//! manifests, locks and blocks.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SimCluster, SimWorld, ZONE_LABEL, rfc3339};
use crate::live::{
    ClusterApi, EvictionOutcome, LiveError, LiveResult, NodeState, NodeTaint, ObjectRef, PdbState,
    PodState, Selection,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// A controller and its pod template, as much as scheduling and draining need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    pub kind: WorkloadKind,
    /// Ignored for DaemonSets (one pod per node).
    #[serde(default)]
    pub replicas: u32,
    /// Pod labels; default `app: <name>`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Node pool the pods are pinned to (a node selector); any pool when absent.
    #[serde(default)]
    pub pool: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdbSpec {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub min_available: Option<Budget>,
    #[serde(default)]
    pub max_unavailable: Option<Budget>,
}

/// A budget's `minAvailable` or `maxUnavailable`: a number of pods, or a share of the
/// pods the budget covers written `"N%"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Pods(i32),
    Percent(u32),
}

impl From<i32> for Budget {
    fn from(pods: i32) -> Budget {
        Budget::Pods(pods)
    }
}

impl Budget {
    /// Pods out of `expected`; a share rounds up, as the disruption controller does
    /// for both fields.
    pub fn of(self, expected: i32) -> i32 {
        match self {
            Budget::Pods(n) => n,
            Budget::Percent(p) => (expected.max(0) as u64 * u64::from(p)).div_ceil(100) as i32,
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Pods(n) => write!(f, "{n}"),
            Budget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Budget::Pods(n) => serializer.serialize_i32(*n),
            Budget::Percent(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Budget, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Pods(i32),
            Text(String),
        }
        let percent = |text: &str| -> Option<u32> {
            let digits = text.trim().strip_suffix('%')?;
            digits.parse().ok().filter(|p| *p <= 100)
        };
        match Written::deserialize(deserializer)? {
            Written::Pods(n) if n >= 0 => Ok(Budget::Pods(n)),
            Written::Pods(n) => Err(serde::de::Error::custom(format!(
                "a budget cannot be negative, got {n}"
            ))),
            Written::Text(text) => percent(&text).map(Budget::Percent).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "a budget is a number of pods or a percentage like \"25%\" (0–100), got \"{text}\""
                ))
            }),
        }
    }
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// Owning workload's name; the node's name for mirror pods.
    pub owner: String,
    pub kind: Option<WorkloadKind>,
    pub labels: BTreeMap<String, String>,
    pub node: Option<String>,
    pub created_ms: i64,
    /// Ready from then on (while its node is Ready); `None` while Pending.
    pub ready_ms: Option<i64>,
}

impl Pod {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub region: String,
    /// Shared with the callers of `nodes`, copied when patched while they hold them.
    pub nodes: BTreeMap<String, Arc<NodeState>>,
    /// By `namespace/name`; changed only through `add_pod` and `remove_pod`, which keep
    /// `index` in step.
    pods: BTreeMap<String, Pod>,
    pub workloads: Vec<WorkloadSpec>,
    pub pdbs: Vec<PdbSpec>,
    /// Other objects (manifests, locks, blocks) by [`object_key`].
    pub objects: BTreeMap<String, Value>,
    /// StatefulSet pod → the zone its volume lives in.
    pub volume_zones: BTreeMap<String, String>,
    resource_version: u64,
    next_pod: u64,
    #[serde(skip)]
    changes: Changes,
    #[serde(skip)]
    index: PodIndex,
}

/// What changed since the controllers and the scheduler last acted: the world settles
/// after every call, and what they do then is proportional to this, not to the size
/// of the cluster. Bookkeeping, not state: two clusters that differ only here are
/// equal.
#[derive(Clone, Debug, Default)]
struct Changes {
    /// Whether the controllers have looked at the whole cluster since it was created or
    /// loaded, or a workload was added; until then they look at everything.
    seen_whole: bool,
    /// Workloads `(namespace, name)` that lost a pod.
    workloads: BTreeSet<(String, String)>,
    /// Nodes that joined, changed, or lost a DaemonSet or mirror pod.
    nodes: BTreeSet<String>,
    /// A pod left a node: room for a Pending one.
    room: bool,
    /// The world's count of terminated instances when this cluster's nodes were last
    /// matched to live ones: none can have left while it stays the same.
    departures_seen: Option<u64>,
}

impl Changes {
    fn none(&self) -> bool {
        self.seen_whole && self.workloads.is_empty() && self.nodes.is_empty() && !self.room
    }
}

impl PartialEq for Changes {
    fn eq(&self, _: &Changes) -> bool {
        true
    }
}

/// Pods looked up the ways the controllers, the scheduler, draining and budgets ask,
/// derived from `Cluster::pods` and `Cluster::pdbs` and kept up to date by every change
/// of them (rebuilt whole when a budget is added or the cluster is loaded). Like
/// [`Changes`], not part of the cluster's state.
#[derive(Clone, Debug, Default)]
struct PodIndex {
    built: bool,
    /// Pod keys by node.
    on_node: HashMap<String, BTreeSet<String>>,
    /// Pods without a node.
    pending: BTreeSet<String>,
    /// Deployment pods per `(namespace, owner)`.
    replicas: HashMap<(String, String), u32>,
    /// The pods each budget of `Cluster::pdbs` covers, in the same order.
    covered: Vec<BTreeSet<String>>,
}

impl PartialEq for PodIndex {
    fn eq(&self, _: &PodIndex) -> bool {
        true
    }
}

impl PodIndex {
    fn add(&mut self, key: &str, pod: &Pod, pdbs: &[PdbSpec]) {
        match &pod.node {
            Some(node) => {
                self.on_node
                    .entry(node.clone())
                    .or_default()
                    .insert(key.to_string());
            }
            None => {
                self.pending.insert(key.to_string());
            }
        }
        if pod.kind == Some(WorkloadKind::Deployment) {
            *self
                .replicas
                .entry((pod.namespace.clone(), pod.owner.clone()))
                .or_insert(0) += 1;
        }
        for (pdb, covered) in pdbs.iter().zip(&mut self.covered) {
            if covers(pdb, pod) {
                covered.insert(key.to_string());
            }
        }
    }

    fn remove(&mut self, key: &str, pod: &Pod) {
        match &pod.node {
            Some(node) => {
                if let Some(keys) = self.on_node.get_mut(node) {
                    keys.remove(key);
                }
            }
            None => {
                self.pending.remove(key);
            }
        }
        if pod.kind == Some(WorkloadKind::Deployment)
            && let Some(count) = self
                .replicas
                .get_mut(&(pod.namespace.clone(), pod.owner.clone()))
        {
            *count = count.saturating_sub(1);
        }
        for covered in &mut self.covered {
            covered.remove(key);
        }
    }

    fn placed(&mut self, key: &str, node: &str) {
        self.pending.remove(key);
        self.on_node
            .entry(node.to_string())
            .or_default()
            .insert(key.to_string());
    }

    fn replicas(&self, namespace: &str, owner: &str) -> u32 {
        self.replicas
            .get(&(namespace.to_string(), owner.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn load(&self, node: &str) -> usize {
        self.on_node.get(node).map_or(0, BTreeSet::len)
    }
}

fn covers(pdb: &PdbSpec, pod: &Pod) -> bool {
    pod.namespace == pdb.namespace && matches(&pdb.selector, &pod.labels)
}

impl Cluster {
    pub fn new(region: &str) -> Cluster {
        Cluster {
            region: region.to_string(),
            ..Cluster::default()
        }
    }

    /// The pods, by `namespace/name`.
    pub fn pods(&self) -> &BTreeMap<String, Pod> {
        &self.pods
    }

    /// A new workload: the controllers look at everything once more.
    pub(super) fn add_workload(&mut self, workload: WorkloadSpec) {
        self.workloads.push(workload);
        self.changes.seen_whole = false;
    }

    /// A new budget: which pods each budget covers is worked out again.
    pub(super) fn add_pdb(&mut self, pdb: PdbSpec) {
        self.pdbs.push(pdb);
        self.index.built = false;
    }

    fn build_index(&mut self) {
        if self.index.built {
            return;
        }
        let mut index = PodIndex {
            built: true,
            covered: vec![BTreeSet::new(); self.pdbs.len()],
            ..PodIndex::default()
        };
        for (key, pod) in &self.pods {
            index.add(key, pod, &self.pdbs);
        }
        self.index = index;
    }

    fn add_pod(&mut self, pod: Pod) {
        self.build_index();
        let key = pod.key();
        self.index.add(&key, &pod, &self.pdbs);
        if let Some(replaced) = self.pods.insert(key.clone(), pod) {
            self.index.remove(&key, &replaced);
        }
    }

    /// Remove a pod; its controller is told, and the scheduler that there is room.
    fn remove_pod(&mut self, key: &str) -> Option<Pod> {
        self.build_index();
        let pod = self.pods.remove(key)?;
        self.index.remove(key, &pod);
        match (pod.kind, &pod.node) {
            (Some(WorkloadKind::DaemonSet) | None, Some(node)) => {
                self.changes.nodes.insert(node.clone());
            }
            _ => {
                self.changes
                    .workloads
                    .insert((pod.namespace.clone(), pod.owner.clone()));
            }
        }
        self.changes.room |= pod.node.is_some();
        Some(pod)
    }

    /// A node's labels, taints or schedulability changed.
    fn node_changed(&mut self, name: &str) {
        self.changes.nodes.insert(name.to_string());
    }

    fn pod_ready(&self, pod: &Pod, now: i64) -> bool {
        pod.ready_ms.is_some_and(|t| t <= now)
            && pod
                .node
                .as_ref()
                .and_then(|n| self.nodes.get(n))
                .is_some_and(|n| n.ready)
    }

    /// A PDB's status as the disruption controller computes it, from every pod.
    pub fn pdb_state(&self, pdb: &PdbSpec, now: i64) -> PdbState {
        let covered = self.pods.values().filter(|p| covers(pdb, p));
        self.budget_status(pdb, covered, now)
    }

    /// The `i`th budget's status, from the pods the index says it covers.
    fn indexed_pdb_state(&self, i: usize, now: i64) -> PdbState {
        let covered = self.index.covered[i]
            .iter()
            .filter_map(|key| self.pods.get(key));
        self.budget_status(&self.pdbs[i], covered, now)
    }

    fn budget_status<'p>(
        &self,
        pdb: &PdbSpec,
        covered: impl Iterator<Item = &'p Pod>,
        now: i64,
    ) -> PdbState {
        let (mut expected, mut healthy) = (0, 0);
        for pod in covered {
            expected += 1;
            healthy += i32::from(self.pod_ready(pod, now));
        }
        let desired = match (pdb.min_available, pdb.max_unavailable) {
            (Some(min), _) => min.of(expected),
            (None, Some(max)) => (expected - max.of(expected)).max(0),
            (None, None) => expected,
        };
        PdbState {
            namespace: pdb.namespace.clone(),
            name: pdb.name.clone(),
            match_labels: pdb.selector.clone(),
            disruptions_allowed: (healthy - desired).max(0),
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: expected,
        }
    }

    fn pod_state(&self, pod: &Pod, now: i64) -> PodState {
        let owner_kind = match pod.kind {
            Some(WorkloadKind::Deployment) => "ReplicaSet",
            Some(WorkloadKind::StatefulSet) => "StatefulSet",
            Some(WorkloadKind::DaemonSet) => "DaemonSet",
            None => "Node",
        };
        PodState {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            node: pod.node.clone().unwrap_or_default(),
            labels: pod.labels.clone(),
            owner_kind: Some(owner_kind.to_string()),
            mirror: pod.kind.is_none(),
            ready: self.pod_ready(pod, now),
            finished: false,
            created: rfc3339(pod.created_ms),
        }
    }
}

fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn workload_labels(w: &WorkloadSpec) -> BTreeMap<String, String> {
    if w.labels.is_empty() {
        BTreeMap::from([("app".to_string(), w.name.clone())])
    } else {
        w.labels.clone()
    }
}

/// Nodes follow instances; controllers and the scheduler follow nodes, each acting on
/// what changed since they last did.
pub(super) fn settle(world: &mut SimWorld) {
    let now = world.now_ms;
    let SimWorld {
        regions,
        clusters,
        settings,
        fleet,
        ..
    } = world;
    let counts = (fleet.launches, fleet.departures);
    let matched = fleet
        .matched
        .is_some_and(|(seen, next_boot)| seen == counts && next_boot.is_none_or(|t| now < t));
    if !matched {
        let mut booted: BTreeMap<&str, Vec<&super::Instance>> = BTreeMap::new();
        let mut next_boot: Option<i64> = None;
        for (region, r) in regions.iter() {
            for i in r.instances.values().filter(|i| !i.terminated) {
                if !i.booted(now) {
                    next_boot = Some(next_boot.map_or(i.boot_done_ms, |t| t.min(i.boot_done_ms)));
                    continue;
                }
                if !clusters.contains_key(&i.cluster) {
                    clusters.insert(i.cluster.clone(), Cluster::new(region));
                }
                booted.entry(i.cluster.as_str()).or_default().push(i);
            }
        }
        for (id, cluster) in clusters.iter_mut() {
            let instances = booted
                .get(id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            join_and_leave(cluster, instances, fleet.departures);
        }
        fleet.matched = Some((counts, next_boot));
    }
    for cluster in clusters.values_mut() {
        if cluster.changes.none() {
            continue;
        }
        let departures_seen = cluster.changes.departures_seen;
        let changes = std::mem::replace(
            &mut cluster.changes,
            Changes {
                seen_whole: true,
                departures_seen,
                ..Changes::default()
            },
        );
        cluster.build_index();
        run_controllers(cluster, &changes, settings, now);
        schedule(cluster, settings, now);
    }
}

fn join_and_leave(cluster: &mut Cluster, instances: &[&super::Instance], departures: u64) {
    // Runs whenever an instance was launched, terminated or finished booting: when
    // none was terminated, nobody can have left, and that costs no look at each node.
    let mut left = Vec::new();
    if cluster.changes.departures_seen != Some(departures) {
        cluster.changes.departures_seen = Some(departures);
        let live: HashSet<&str> = instances.iter().map(|i| i.id.as_str()).collect();
        cluster.nodes.retain(|name, node| {
            let stays = node.instance_id().is_some_and(|id| live.contains(id));
            if !stays {
                left.push(name.clone());
            }
            stays
        });
    }
    // Every node left is a distinct live instance's: as many nodes as instances means
    // every instance has joined.
    let joining = cluster.nodes.len() < instances.len();
    for instance in instances.iter().filter(|_| joining) {
        let name = instance.node_name();
        let Entry::Vacant(entry) = cluster.nodes.entry(name.clone()) else {
            continue;
        };
        let mut labels = instance.node_labels.clone();
        labels.insert(ZONE_LABEL.to_string(), instance.zone.clone());
        labels.insert("kubernetes.io/hostname".to_string(), name.clone());
        entry.insert(Arc::new(NodeState {
            name: name.clone(),
            labels,
            annotations: BTreeMap::new(),
            taints: Vec::new(),
            ready: !instance.never_ready,
            unschedulable: false,
            provider_id: format!("aws:///{}/{}", instance.zone, instance.id),
            created: rfc3339(instance.boot_done_ms),
        }));
        cluster.node_changed(&name);
    }
    if !left.is_empty() {
        // Pods of nodes that left are gone with them.
        cluster.build_index();
        for node in left {
            for key in cluster.index.on_node.remove(&node).unwrap_or_default() {
                cluster.remove_pod(&key);
            }
        }
    }
}

/// Re-create the pods workloads and nodes lost, and the ones new nodes run: on the
/// nodes and workloads in `changes`, or all of them when the controllers have not
/// looked at the whole cluster yet.
fn run_controllers(cluster: &mut Cluster, changes: &Changes, settings: &super::Settings, now: i64) {
    let startup = settings.pod_startup_seconds as i64 * 1000;
    let mut created: Vec<Pod> = Vec::new();
    let mut create = |namespace: &str,
                      name: String,
                      owner: &str,
                      kind,
                      labels: &BTreeMap<String, String>,
                      node: Option<&String>| {
        created.push(Pod {
            namespace: namespace.to_string(),
            name,
            owner: owner.to_string(),
            kind,
            labels: labels.clone(),
            node: node.cloned(),
            created_ms: now,
            // Pods placed on a node from creation (DaemonSet, mirror) start right away.
            ready_ms: node.map(|_| now + startup),
        })
    };
    let Cluster {
        nodes,
        pods,
        workloads,
        index,
        next_pod,
        ..
    } = &mut *cluster;
    let whole = !changes.seen_whole;
    let nodes: Vec<&NodeState> = if whole {
        nodes.values().map(Arc::as_ref).collect()
    } else {
        changes
            .nodes
            .iter()
            .filter_map(|n| nodes.get(n))
            .map(Arc::as_ref)
            .collect()
    };
    let changed = |w: &WorkloadSpec| {
        whole
            || changes
                .workloads
                .iter()
                .any(|(namespace, name)| *namespace == w.namespace && *name == w.name)
    };
    // Whether a node runs a pod of this kind, namespace and owner (any owner: mirror pods).
    let runs = |node: &str, kind: Option<WorkloadKind>, namespace: &str, owner: Option<&str>| {
        index.on_node.get(node).is_some_and(|keys| {
            keys.iter().filter_map(|key| pods.get(key)).any(|p| {
                p.kind == kind
                    && p.namespace == namespace
                    && owner.is_none_or(|owner| p.owner == owner)
            })
        })
    };
    let mirror_labels = BTreeMap::from([("component".to_string(), "static-proxy".to_string())]);
    for node in nodes.iter().filter(|_| settings.mirror_pods) {
        if !runs(&node.name, None, "kube-system", None) {
            create(
                "kube-system",
                format!("static-proxy-{}", node.name),
                &node.name,
                None,
                &mirror_labels,
                Some(&node.name),
            );
        }
    }
    for w in workloads.iter() {
        let look = match w.kind {
            WorkloadKind::DaemonSet => !nodes.is_empty(),
            WorkloadKind::StatefulSet | WorkloadKind::Deployment => changed(w),
        };
        if !look {
            continue;
        }
        let labels = workload_labels(w);
        match w.kind {
            WorkloadKind::DaemonSet => {
                for node in &nodes {
                    let fits = w
                        .pool
                        .as_ref()
                        .is_none_or(|p| node.labels.get(super::POOL_LABEL) == Some(p));
                    if fits && !runs(&node.name, Some(w.kind), &w.namespace, Some(&w.name)) {
                        create(
                            &w.namespace,
                            format!("{}-{}", w.name, node.name),
                            &w.name,
                            Some(w.kind),
                            &labels,
                            Some(&node.name),
                        );
                    }
                }
            }
            WorkloadKind::StatefulSet => {
                for ordinal in 0..w.replicas {
                    let name = format!("{}-{ordinal}", w.name);
                    if !pods.contains_key(&format!("{}/{name}", w.namespace)) {
                        create(&w.namespace, name, &w.name, Some(w.kind), &labels, None);
                    }
                }
            }
            WorkloadKind::Deployment => {
                for _ in index.replicas(&w.namespace, &w.name)..w.replicas {
                    *next_pod += 1;
                    let name = format!("{}-{:05x}", w.name, next_pod);
                    create(&w.namespace, name, &w.name, Some(w.kind), &labels, None);
                }
            }
        }
    }
    for p in created {
        cluster.add_pod(p);
    }
}

/// Place Pending pods: Ready, schedulable nodes of their pool with room; a
/// StatefulSet pod only in its volume's zone; untainted nodes before
/// `PreferNoSchedule` ones, then the least loaded.
fn schedule(cluster: &mut Cluster, settings: &super::Settings, now: i64) {
    if cluster.index.pending.is_empty() {
        return;
    }
    // What it needs of the nodes is read once, borrowed, and the placements are
    // written after the search.
    struct Candidate<'a> {
        name: &'a str,
        pool: Option<&'a String>,
        zone: Option<&'a String>,
        avoided: bool,
        load: usize,
    }
    let mut candidates: Vec<Candidate> = cluster
        .nodes
        .values()
        .filter(|n| n.ready && !n.unschedulable)
        .filter(|n| {
            !n.taints
                .iter()
                .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        })
        .map(|n| Candidate {
            name: &n.name,
            pool: n.labels.get(super::POOL_LABEL),
            zone: n.labels.get(ZONE_LABEL),
            avoided: n.taints.iter().any(|t| t.effect == "PreferNoSchedule"),
            load: cluster.index.load(&n.name),
        })
        .collect();
    let pools: HashMap<(&str, &str), Option<&String>> = cluster
        .workloads
        .iter()
        .map(|w| ((w.namespace.as_str(), w.name.as_str()), w.pool.as_ref()))
        .collect();
    let mut placed: Vec<(String, String, Option<String>)> = Vec::new();
    for key in &cluster.index.pending {
        let Some(p) = cluster.pods.get(key) else {
            continue;
        };
        let pool = pools
            .get(&(p.namespace.as_str(), p.owner.as_str()))
            .copied()
            .flatten();
        let zone = cluster.volume_zones.get(key);
        let best = candidates
            .iter_mut()
            .filter(|c| pool.is_none_or(|p| c.pool == Some(p)))
            .filter(|c| zone.is_none_or(|z| c.zone == Some(z)))
            .filter(|c| c.load < settings.pods_per_node)
            .min_by_key(|c| (c.avoided, c.load, c.name));
        let Some(best) = best else {
            continue;
        };
        best.load += 1;
        let new_zone = (p.kind == Some(WorkloadKind::StatefulSet) && zone.is_none())
            .then(|| best.zone.cloned().unwrap_or_default());
        placed.push((key.clone(), best.name.to_string(), new_zone));
    }
    for (key, node, new_zone) in placed {
        if let Some(zone) = new_zone {
            cluster.volume_zones.insert(key.clone(), zone);
        }
        if let Some(p) = cluster.pods.get_mut(&key) {
            p.node = Some(node.clone());
            p.ready_ms = Some(now + settings.pod_startup_seconds as i64 * 1000);
            cluster.index.placed(&key, &node);
        }
    }
}

/// `apiVersion/kind/namespace/name`.
fn object_key(r: &ObjectRef) -> String {
    format!(
        "{}/{}/{}/{}",
        r.api_version,
        r.kind,
        r.namespace.as_deref().unwrap_or(""),
        r.name
    )
}

fn not_found(operation: String, what: &str) -> LiveError {
    LiveError {
        operation,
        message: format!("404 Not Found: {what}"),
        retryable: false,
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn node_object(node: &NodeState) -> Value {
    json!({
        "metadata": { "labels": node.labels, "annotations": node.annotations },
        "spec": { "unschedulable": node.unschedulable, "taints": node.taints.iter().map(|t| json!({
            "key": t.key, "value": t.value, "effect": t.effect,
        })).collect::<Vec<_>>() },
    })
}

fn apply_node_object(node: &mut NodeState, object: &Value) -> Result<(), String> {
    let strings = |pointer: &str| -> Result<BTreeMap<String, String>, String> {
        match object.pointer(pointer) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{pointer}: {e}")),
        }
    };
    node.labels = strings("/metadata/labels")?;
    node.annotations = strings("/metadata/annotations")?;
    node.unschedulable = object
        .pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    node.taints = match object.pointer("/spec/taints") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(taints)) => taints
            .iter()
            .map(|t| {
                Ok(NodeTaint {
                    key: t
                        .get("key")
                        .and_then(Value::as_str)
                        .ok_or("a taint without key")?
                        .to_string(),
                    value: t.get("value").and_then(Value::as_str).map(str::to_string),
                    effect: t
                        .get("effect")
                        .and_then(Value::as_str)
                        .ok_or("a taint without effect")?
                        .to_string(),
                })
            })
            .collect::<Result<_, &str>>()?,
        Some(_) => return Err("spec.taints must be a list".into()),
    };
    Ok(())
}

/// Does `labels` satisfy a selector of `k=v`, `k!=v`, `k` and `!k` terms?
fn selects(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels.get(k.trim()).map(String::as_str) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                let v = v.trim_start_matches('=');
                labels.get(k.trim()).map(String::as_str) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                !labels.contains_key(k.trim())
            } else {
                labels.contains_key(term)
            }
        })
}

impl SimCluster {
    /// Run `f` on this cluster after the call gate; a cluster that does not exist
    /// answers as an unreachable API server would.
    fn call<R>(
        &self,
        operation: &str,
        mutating: bool,
        f: impl FnOnce(&mut Cluster, i64) -> LiveResult<R>,
    ) -> LiveResult<R> {
        let mut world = self.world.lock();
        world.admit(operation)?;
        let now = world.now_ms;
        let cluster = world
            .clusters
            .get_mut(&self.cluster)
            .ok_or_else(|| LiveError {
                operation: operation.to_string(),
                message: format!(
                    "cluster {} has no API server (connection refused)",
                    self.cluster
                ),
                retryable: true,
            })?;
        let result = f(cluster, now)?;
        if mutating {
            world.mutated();
        }
        Ok(result)
    }
}

fn stamp(cluster: &mut Cluster, object: &Value) -> Value {
    cluster.resource_version += 1;
    let mut object = object.clone();
    merge_patch(
        &mut object,
        &json!({ "metadata": { "resourceVersion": cluster.resource_version.to_string() } }),
    );
    object
}

fn reference(operation: &str, object: &Value) -> LiveResult<ObjectRef> {
    ObjectRef::of(object).ok_or_else(|| LiveError {
        operation: operation.to_string(),
        message: "422 Unprocessable Entity: apiVersion, kind and metadata.name are required".into(),
        retryable: false,
    })
}

#[async_trait]
impl ClusterApi for SimCluster {
    async fn get(&self, object: &ObjectRef) -> LiveResult<Option<Value>> {
        self.call(&format!("GET {object}"), false, |c, _| {
            Ok(c.objects.get(&object_key(object)).cloned())
        })
    }

    async fn dry_run_apply(&self, object: &Value) -> LiveResult<Value> {
        self.call("dry-run apply", false, |c, _| {
            let r = reference("dry-run apply", object)?;
            let mut result = c
                .objects
                .get(&object_key(&r))
                .cloned()
                .unwrap_or(Value::Null);
            merge_patch(&mut result, object);
            Ok(result)
        })
    }

    async fn find(
        &self,
        kind: &str,
        namespace: Option<&str>,
        selection: &Selection,
    ) -> LiveResult<Vec<Value>> {
        self.call(&format!("LIST {kind}"), false, |c, _| {
            Ok(c.objects
                .values()
                .filter(|o| {
                    let Some(r) = ObjectRef::of(o) else {
                        return false;
                    };
                    let labels: BTreeMap<String, String> = o
                        .pointer("/metadata/labels")
                        .and_then(|l| serde_json::from_value(l.clone()).ok())
                        .unwrap_or_default();
                    r.kind == kind
                        && namespace.is_none_or(|ns| r.namespace.as_deref() == Some(ns))
                        && match selection {
                            Selection::Name(name) => &r.name == name,
                            Selection::Labels(selector) => selects(selector, &labels),
                        }
                })
                .cloned()
                .collect())
        })
    }

    async fn nodes(&self, label_selector: &str) -> LiveResult<Vec<Arc<NodeState>>> {
        self.call("LIST nodes", false, |c, _| {
            Ok(c.nodes
                .values()
                .filter(|n| selects(label_selector, &n.labels))
                .cloned()
                .collect())
        })
    }

    async fn apply(&self, object: &Value, _force: bool) -> LiveResult<Value> {
        self.call("server-side apply", true, |c, _| {
            let key = object_key(&reference("server-side apply", object)?);
            let mut merged = c.objects.get(&key).cloned().unwrap_or(Value::Null);
            merge_patch(&mut merged, object);
            let stored = stamp(c, &merged);
            c.objects.insert(key, stored.clone());
            Ok(stored)
        })
    }

    async fn create(&self, object: &Value) -> LiveResult<Option<Value>> {
        self.call("create", true, |c, _| {
            let key = object_key(&reference("create", object)?);
            if c.objects.contains_key(&key) {
                return Ok(None);
            }
            let stored = stamp(c, object);
            c.objects.insert(key, stored.clone());
            Ok(Some(stored))
        })
    }

    async fn replace(&self, object: &Value) -> LiveResult<Option<Value>> {
        self.call("replace", true, |c, _| {
            let r = reference("replace", object)?;
            let key = object_key(&r);
            let version = |o: &Value| o.pointer("/metadata/resourceVersion").cloned();
            let current = c
                .objects
                .get(&key)
                .ok_or_else(|| not_found(format!("replace {r}"), &r.to_string()))?;
            if version(current) != version(object) {
                return Ok(None);
            }
            let stored = stamp(c, object);
            c.objects.insert(key, stored.clone());
            Ok(Some(stored))
        })
    }

    async fn delete(
        &self,
        object: &ObjectRef,
        _propagation_policy: Option<&str>,
        _grace_period_seconds: Option<i64>,
    ) -> LiveResult<bool> {
        self.call(&format!("DELETE {object}"), true, |c, _| {
            Ok(c.objects.remove(&object_key(object)).is_some())
        })
    }

    async fn patch_node(&self, name: &str, patch: &Value) -> LiveResult<()> {
        let operation = format!("PATCH node {name}");
        self.call(&operation, true, |c, _| {
            let node = c
                .nodes
                .get_mut(name)
                .map(Arc::make_mut)
                .ok_or_else(|| not_found(operation.clone(), &format!("node {name}")))?;
            let mut object = node_object(node);
            merge_patch(&mut object, patch);
            apply_node_object(node, &object).map_err(|message| LiveError {
                operation: operation.clone(),
                message: format!("422 Unprocessable Entity: {message}"),
                retryable: false,
            })?;
            c.node_changed(name);
            Ok(())
        })
    }

    async fn pods_on_node(&self, node: &str) -> LiveResult<Vec<PodState>> {
        self.call(&format!("LIST pods on {node}"), false, |c, now| {
            c.build_index();
            Ok(c.index
                .on_node
                .get(node)
                .into_iter()
                .flatten()
                .filter_map(|key| c.pods.get(key))
                .map(|p| c.pod_state(p, now))
                .collect())
        })
    }

    async fn pdbs(&self) -> LiveResult<Vec<PdbState>> {
        self.call("LIST poddisruptionbudgets", false, |c, now| {
            c.build_index();
            Ok((0..c.pdbs.len())
                .map(|i| c.indexed_pdb_state(i, now))
                .collect())
        })
    }

    async fn evict(&self, namespace: &str, pod: &str) -> LiveResult<EvictionOutcome> {
        let operation = format!("evict pod {namespace}/{pod}");
        let mut world = self.world.lock();
        world.admit(&operation)?;
        let now = world.now_ms;
        let Some(c) = world.clusters.get_mut(&self.cluster) else {
            return Err(not_found(operation, &format!("cluster {}", self.cluster)));
        };
        let key = format!("{namespace}/{pod}");
        c.build_index();
        let Some(p) = c.pods.get(&key) else {
            return Ok(EvictionOutcome::Gone);
        };
        let covering: Vec<PdbState> = (0..c.pdbs.len())
            .filter(|&i| c.index.covered[i].contains(&key))
            .map(|i| c.indexed_pdb_state(i, now))
            .collect();
        if covering.len() > 1 {
            return Err(LiveError {
                operation,
                message: "500 Internal Server Error: This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                retryable: false,
            });
        }
        let ready = c.pod_ready(p, now);
        if let Some(budget) = covering.first() {
            // A Ready pod needs an allowed disruption; an unready one only needs the
            // budget to be met already (the IfHealthyBudget policy).
            let allowed = if ready {
                budget.disruptions_allowed >= 1
            } else {
                budget.current_healthy >= budget.desired_healthy
            };
            if !allowed {
                world.stats.evictions_blocked += 1;
                return Ok(EvictionOutcome::Blocked(format!(
                    "Cannot evict pod as it would violate the pod's disruption budget {}/{} (needs {} healthy, has {})",
                    budget.namespace, budget.name, budget.desired_healthy, budget.current_healthy
                )));
            }
        }
        c.remove_pod(&key);
        world.stats.evictions += 1;
        world.mutated();
        Ok(EvictionOutcome::Evicted)
    }

    async fn delete_pod(&self, namespace: &str, pod: &str) -> LiveResult<bool> {
        let key = format!("{namespace}/{pod}");
        let removed = self.call(&format!("DELETE pod {key}"), true, |c, _| {
            Ok(c.remove_pod(&key).is_some())
        })?;
        if removed {
            self.world.with(|w| w.stats.forced_deletions += 1);
        }
        Ok(removed)
    }
}
