//! The plan: what will change in each cluster, in order. A [`Plan`] is data —
//! versioned JSON that can be printed, saved, reviewed and later applied. Computing it
//! is split in two: [`observe`] reads live state through the [`crate::live`] traits,
//! [`compute`] is a pure function from desired artifacts and observed state to steps.

mod observe;
mod output;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::live::{LiveError, NodeState, ObjectRef, ResourceChange};
use crate::render::{Artifacts, DeletionEntry};

pub use observe::{
    ClusterTarget, Connector, KubeConnector, Observed, ObservedObject, ObservedStack, observe,
    plan_fleet, plan_targets,
};
pub use output::{to_markdown, to_text};

/// Why a plan could not be computed from the compiled artifacts.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the compiled stack template {artifact} is not JSON: {source}")]
    Template {
        artifact: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the plan's fingerprint cannot be serialised: {0}")]
    Fingerprint(#[source] serde_json::Error),
}

/// Why a saved plan (`plan --out`) cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("not a flotilla plan: {0}")]
    NotAPlan(#[source] serde_json::Error),
    #[error("a version {0} plan; this flotilla reads version {PLAN_VERSION}")]
    Version(u32),
}

/// Version of the plan's JSON format.
pub const PLAN_VERSION: u32 = 1;

/// Node label holding a node's config hash (set by userdata).
pub const HASH_LABEL: &str = "flotilla.io/config-hash";
/// Node label naming a node's pool.
pub const POOL_LABEL: &str = "flotilla.io/node-pool";
/// Node label of the availability zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub clusters: Vec<ClusterPlan>,
    /// Clusters whose live state could not be read: nothing is planned for them.
    pub failures: Vec<ClusterFailure>,
}

impl Plan {
    /// A plan saved by `plan --out`, refused if this flotilla writes another version.
    pub fn from_saved(text: &str) -> Result<Plan, SavedPlanError> {
        let plan: Plan = serde_json::from_str(text).map_err(SavedPlanError::NotAPlan)?;
        if plan.version != PLAN_VERSION {
            return Err(SavedPlanError::Version(plan.version));
        }
        Ok(plan)
    }

    pub fn has_changes(&self) -> bool {
        self.clusters.iter().any(|c| !c.steps.is_empty())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterFailure {
    pub cluster: String,
    pub error: LiveError,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterPlan {
    pub cluster: String,
    /// The cluster's id in the registry it was imported from, when not `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_id: Option<String>,
    pub region: String,
    /// The control-plane stack does not exist: everything is created and the API
    /// server (which cannot exist yet) was not contacted.
    pub creation: bool,
    /// `config_items.cluster_update_block`: apply refuses this cluster.
    pub blocked: Option<String>,
    pub steps: Vec<Step>,
    pub fingerprint: Fingerprint,
}

/// One change, in the order apply performs them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    Stack(StackStep),
    Manifest(ManifestStep),
    Delete(DeleteStep),
    Roll(RollStep),
    RemovePool(RemovePoolStep),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackStep {
    pub stack: String,
    /// `etcd`, `control-plane` or `node-pool/<name>`.
    pub role: String,
    pub action: StackAction,
    /// The artifact holding the template (`cloudformation/….json`).
    pub artifact: String,
    /// CloudFormation's change-set view (updates only).
    pub changes: Vec<ResourceChange>,
    /// Updates only: the launch templates' user data, decoded, as a line diff of the
    /// live template against the desired one (CloudFormation's view names only the
    /// launch template). Empty when no user data changed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_data_diff: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackAction {
    Create,
    Update,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestStep {
    pub object: ObjectRef,
    pub action: ManifestAction,
    pub artifact: String,
    /// Field-level differences between the live object and the dry-run result.
    pub changes: Vec<FieldChange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestAction {
    Create,
    Update,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Dotted path, list indices in brackets: `spec.template.spec.containers[0].image`.
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteStep {
    /// `pre_apply` or `post_apply`.
    pub phase: String,
    pub object: ObjectRef,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollStep {
    pub node_pool: String,
    pub desired_hash: String,
    /// Nodes of the pool whose config hash differs from the desired one.
    pub outdated: usize,
    pub nodes: usize,
    /// Outdated nodes per availability zone (volumes are per zone, so rolls are too).
    pub outdated_by_zone: BTreeMap<String, usize>,
}

/// A node pool that is no longer declared but still runs: its nodes are drained
/// (through the Eviction API, like a roll) and then its stack is deleted. Planned only
/// for a pool whose Auto Scaling group carries the cluster's `flotilla.io/cluster` tag
/// and whose stack exists, so nothing flotilla did not create is ever removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemovePoolStep {
    pub node_pool: String,
    pub stack: String,
    /// Instances of the pool's Auto Scaling group, whose pods must move.
    pub nodes: usize,
    pub nodes_by_zone: BTreeMap<String, usize>,
}

/// What the plan was computed from; apply refuses a plan whose fingerprint no longer
/// matches the live state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Stack name → `id@last-updated`, or `absent`.
    pub stacks: BTreeMap<String, String>,
    /// Object → resourceVersion, or `absent`.
    pub objects: BTreeMap<String, String>,
    /// Node → config hash label.
    pub nodes: BTreeMap<String, String>,
    /// SHA-256 over the desired artifacts the steps were computed for.
    pub desired: String,
    /// SHA-256 over the above.
    pub digest: String,
}

/// The stacks of a cluster: name, role and artifact path, in apply order.
pub fn stacks_of(desired: &Artifacts) -> Vec<(String, String, String)> {
    let id = &desired.cluster;
    let mut out = vec![
        (
            format!("{id}-etcd"),
            "etcd".to_string(),
            "cloudformation/etcd.json".to_string(),
        ),
        (
            id.clone(),
            "control-plane".to_string(),
            "cloudformation/cluster.json".to_string(),
        ),
    ];
    for pool in &desired.summary.node_pools {
        out.push((
            format!("{id}-node-pool-{}", pool.name),
            format!("node-pool/{}", pool.name),
            format!("cloudformation/node-pool-{}.json", pool.name),
        ));
    }
    out.retain(|(_, _, artifact)| desired.files.contains_key(artifact));
    out
}

/// Pure: the steps that take `observed` to `desired`. Stack updates are listed with
/// no resource changes; [`observe`]'s caller fills them in from change sets.
pub fn compute(
    region: &str,
    blocked: Option<String>,
    desired: &Artifacts,
    observed: &Observed,
) -> Result<ClusterPlan, PlanError> {
    let control_plane = &desired.cluster;
    let creation = matches!(observed.stacks.get(control_plane), Some(None) | None);
    let mut stack_steps = Vec::new();
    for (name, role, artifact) in stacks_of(desired) {
        let (action, user_data_diff) = match observed.stacks.get(&name) {
            Some(Some(live)) => {
                let text = desired.files.get(&artifact).map_or("", String::as_str);
                let wanted: Value =
                    serde_json::from_str(text).map_err(|source| PlanError::Template {
                        artifact: artifact.clone(),
                        source,
                    })?;
                if live.template == wanted {
                    continue;
                }
                (
                    StackAction::Update,
                    crate::diff::user_data_diff(&live.template, &wanted),
                )
            }
            _ => (StackAction::Create, String::new()),
        };
        stack_steps.push(Step::Stack(StackStep {
            stack: name,
            role,
            action,
            artifact,
            changes: Vec::new(),
            user_data_diff,
        }));
    }

    let mut manifest_steps = Vec::new();
    for object in &observed.objects {
        let Some(reference) = ObjectRef::of(&object.desired) else {
            continue;
        };
        match &object.live {
            None => manifest_steps.push(Step::Manifest(ManifestStep {
                object: reference,
                action: ManifestAction::Create,
                artifact: object.artifact.clone(),
                changes: Vec::new(),
            })),
            Some(live) => {
                let after = object.dry_run.as_ref().unwrap_or(&object.desired);
                let mut changes = Vec::new();
                field_changes(
                    &comparable(live),
                    &comparable(after),
                    String::new(),
                    &mut changes,
                );
                if reference.kind == "Secret" {
                    redact_secret_changes(&mut changes);
                }
                if !changes.is_empty() {
                    manifest_steps.push(Step::Manifest(ManifestStep {
                        object: reference,
                        action: ManifestAction::Update,
                        artifact: object.artifact.clone(),
                        changes,
                    }));
                }
            }
        }
    }

    let delete = |phase: &str| -> Vec<Step> {
        observed
            .deletions
            .iter()
            .filter(|d| d.phase == phase)
            .flat_map(|d| {
                d.found.iter().map(|(object, _)| {
                    Step::Delete(DeleteStep {
                        phase: phase.to_string(),
                        object: object.clone(),
                        propagation_policy: d.entry.propagation_policy.clone(),
                        grace_period_seconds: d.entry.grace_period_seconds,
                    })
                })
            })
            .collect()
    };

    let mut rolls = Vec::new();
    for pool in &desired.summary.node_pools {
        let stack = format!("{}-node-pool-{}", desired.cluster, pool.name);
        if !matches!(observed.stacks.get(&stack), Some(Some(_))) {
            continue; // a new pool's nodes start with the desired hash
        }
        let nodes: Vec<&NodeState> = observed
            .nodes
            .iter()
            .filter(|n| n.labels.get(POOL_LABEL) == Some(&pool.name))
            .collect();
        let mut by_zone = BTreeMap::new();
        let mut outdated = 0;
        for node in &nodes {
            if node.labels.get(HASH_LABEL) != Some(&pool.config_hash) {
                outdated += 1;
                *by_zone.entry(zone_of(node)).or_insert(0) += 1;
            }
        }
        if outdated > 0 {
            rolls.push(Step::Roll(RollStep {
                node_pool: pool.name.clone(),
                desired_hash: pool.config_hash.clone(),
                outdated,
                nodes: nodes.len(),
                outdated_by_zone: by_zone,
            }));
        }
    }

    // Last: the remaining pools have their new nodes before these are drained.
    let removals = observed.removed_pools.iter().map(|removed| {
        Step::RemovePool(RemovePoolStep {
            node_pool: removed.name.clone(),
            stack: removed.stack.clone(),
            nodes: removed.instances_by_zone.values().sum(),
            nodes_by_zone: removed.instances_by_zone.clone(),
        })
    });

    let mut steps = delete("pre_apply");
    steps.extend(stack_steps);
    steps.extend(manifest_steps);
    steps.extend(delete("post_apply"));
    steps.extend(rolls);
    steps.extend(removals);
    Ok(ClusterPlan {
        cluster: desired.cluster.clone(),
        registry_id: None,
        region: region.to_string(),
        creation,
        blocked,
        steps,
        fingerprint: fingerprint(observed, &desired_digest(desired))?,
    })
}

fn zone_of(node: &NodeState) -> String {
    node.labels
        .get(ZONE_LABEL)
        .cloned()
        .unwrap_or_else(|| "unknown".into())
}

/// Fields the server owns or that change on every write: not part of a diff.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for field in [
                "managedFields",
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "selfLink",
            ] {
                meta.remove(field);
            }
            if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
                if annotations.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    object
}

/// Leaf-level differences between two JSON values.
fn field_changes(before: &Value, after: &Value, path: String, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => field_changes(x, y, child, out),
                    (x, y) => out.push(FieldChange {
                        path: child,
                        before: x.cloned(),
                        after: y.cloned(),
                    }),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                field_changes(x, y, format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(FieldChange {
            path,
            before: Some(a.clone()),
            after: Some(b.clone()),
        }),
        _ => {}
    }
}

/// A Secret's data is shown only as a digest, so a change is visible but not its value.
fn redact_secret_changes(changes: &mut [FieldChange]) {
    let redact = |v: &mut Option<Value>| {
        if let Some(value) = v {
            // Keyed like a `secret(…)`'s redacted form, so the digest cannot test guesses.
            let shown = match crate::redact::secret_digest(&value.to_string()) {
                Some(digest) => format!("<redacted hmac-sha256:{digest}>"),
                None => "<redacted>".to_string(),
            };
            *value = Value::String(shown);
        }
    };
    for change in changes {
        if change.path.starts_with("data") || change.path.starts_with("stringData") {
            redact(&mut change.before);
            redact(&mut change.after);
        }
    }
}

fn fingerprint(observed: &Observed, desired: &str) -> Result<Fingerprint, PlanError> {
    let stacks: BTreeMap<String, String> = observed
        .stacks
        .iter()
        .map(|(name, state)| {
            let value = match state {
                Some(s) => format!("{}@{} {}", s.state.id, s.state.last_updated, s.state.status),
                None => "absent".into(),
            };
            (name.clone(), value)
        })
        .collect();
    let mut objects = BTreeMap::new();
    for o in &observed.objects {
        if let Some(reference) = ObjectRef::of(&o.desired) {
            let version = o
                .live
                .as_ref()
                .and_then(|l| l.pointer("/metadata/resourceVersion"))
                .and_then(Value::as_str)
                .unwrap_or("absent");
            objects.insert(object_key(&reference), version.to_string());
        }
    }
    for d in &observed.deletions {
        if d.found.is_empty() {
            // A deletion that matched nothing: an object appearing later changes the plan.
            let e = &d.entry;
            let selection = e.name.as_deref().or(e.selector.as_deref()).unwrap_or("");
            let key = format!(
                "deletion {} {}/{selection}",
                e.kind,
                e.namespace.as_deref().unwrap_or("")
            );
            objects.insert(key, "absent".into());
        }
        for (reference, version) in &d.found {
            objects.insert(object_key(reference), version.clone());
        }
    }
    let nodes: BTreeMap<String, String> = observed
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                n.labels.get(HASH_LABEL).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let text = serde_json::to_string(&(&stacks, &objects, &nodes, desired))
        .map_err(PlanError::Fingerprint)?;
    let digest = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Fingerprint {
        stacks,
        objects,
        nodes,
        desired: desired.to_string(),
        digest,
    })
}

/// What moved between a saved plan and a fresh one (the live state now, the artifacts
/// compiled now), one line per difference; empty when the saved plan still holds.
pub fn what_moved(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for old in &saved.clusters {
        let Some(new) = fresh.clusters.iter().find(|c| c.cluster == old.cluster) else {
            out.push(format!("{}: not planned now", old.cluster));
            continue;
        };
        out.extend(cluster_moved(old, new));
    }
    out
}

fn cluster_moved(old: &ClusterPlan, new: &ClusterPlan) -> Vec<String> {
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

/// An object's identity with its API version, so kinds of different groups differ.
fn object_key(reference: &ObjectRef) -> String {
    format!("{} {reference}", reference.api_version)
}

/// SHA-256 over every desired artifact (path and content), so apply can tell that it
/// is about to apply exactly what was reviewed.
fn desired_digest(desired: &Artifacts) -> String {
    let mut hasher = Sha256::new();
    for (path, text) in &desired.files {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Objects named by one deletions entry that exist (with their resourceVersions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedDeletion {
    pub phase: String,
    pub entry: DeletionEntry,
    pub found: Vec<(ObjectRef, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::StackState;
    use crate::render::{PoolSummary, Summary};
    use serde_json::json;

    fn desired() -> Artifacts {
        let mut files = BTreeMap::new();
        files.insert(
            "cloudformation/etcd.json".into(),
            r#"{"Resources":{"A":{"Type":"X"}}}"#.into(),
        );
        files.insert(
            "cloudformation/cluster.json".into(),
            r#"{"Resources":{"B":{"Type":"X"}}}"#.into(),
        );
        files.insert(
            "cloudformation/node-pool-w.json".into(),
            r#"{"Resources":{"C":{"Type":"X"}}}"#.into(),
        );
        Artifacts {
            cluster: "c1".into(),
            files,
            summary: Summary {
                cluster: "c1".into(),
                node_pools: vec![PoolSummary {
                    name: "w".into(),
                    config_hash: "new".into(),
                    min_size: 1,
                    max_size: 5,
                }],
                ..Summary::default()
            },
        }
    }

    fn live_stack(name: &str, template: Value) -> Option<ObservedStack> {
        Some(ObservedStack {
            state: StackState {
                name: name.into(),
                id: format!("arn:{name}"),
                status: "CREATE_COMPLETE".into(),
                last_updated: "2026-11-01T00:00:00Z".into(),
                parameters: Vec::new(),
                tags: Vec::new(),
            },
            template,
        })
    }

    fn existing() -> Observed {
        let mut o = Observed::default();
        o.stacks.insert(
            "c1-etcd".into(),
            live_stack("c1-etcd", json!({"Resources":{"A":{"Type":"X"}}})),
        );
        o.stacks.insert(
            "c1".into(),
            live_stack("c1", json!({"Resources":{"B":{"Type":"X"}}})),
        );
        o.stacks.insert(
            "c1-node-pool-w".into(),
            live_stack("c1-node-pool-w", json!({"Resources":{"C":{"Type":"X"}}})),
        );
        o
    }

    fn node(name: &str, hash: &str, zone: &str) -> NodeState {
        let labels = [(POOL_LABEL, "w"), (HASH_LABEL, hash), (ZONE_LABEL, zone)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NodeState {
            name: name.into(),
            labels,
            ready: true,
            unschedulable: false,
            ..Default::default()
        }
    }

    #[test]
    fn absent_stacks_plan_a_full_creation() {
        let mut observed = Observed::default();
        for (name, _, _) in stacks_of(&desired()) {
            observed.stacks.insert(name, None);
        }
        let plan = compute("eu-central-1", None, &desired(), &observed).unwrap();
        assert!(plan.creation);
        let actions: Vec<_> = plan
            .steps
            .iter()
            .map(|s| match s {
                Step::Stack(s) => (s.stack.as_str(), s.action),
                other => panic!("unexpected step {other:?}"),
            })
            .collect();
        assert_eq!(
            actions,
            [
                ("c1-etcd", StackAction::Create),
                ("c1", StackAction::Create),
                ("c1-node-pool-w", StackAction::Create)
            ]
        );
    }

    #[test]
    fn matching_state_plans_nothing() {
        let mut observed = existing();
        observed.nodes = vec![node("n1", "new", "a"), node("n2", "new", "b")];
        let plan = compute("eu-central-1", None, &desired(), &observed).unwrap();
        assert!(!plan.creation);
        assert_eq!(plan.steps, Vec::new());
    }

    #[test]
    fn outdated_nodes_are_counted_per_zone() {
        let mut observed = existing();
        observed.nodes = vec![
            node("n1", "old", "a"),
            node("n2", "old", "b"),
            node("n3", "old", "b"),
            node("n4", "new", "a"),
        ];
        let plan = compute("eu-central-1", None, &desired(), &observed).unwrap();
        let [Step::Roll(roll)] = plan.steps.as_slice() else {
            panic!("{:?}", plan.steps)
        };
        assert_eq!((roll.outdated, roll.nodes), (3, 4));
        assert_eq!(
            roll.outdated_by_zone,
            BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)])
        );
    }

    #[test]
    fn changed_template_plans_an_update_and_server_fields_are_ignored() {
        let mut observed = existing();
        observed.stacks.insert(
            "c1-node-pool-w".into(),
            live_stack("c1-node-pool-w", json!({"Resources":{"C":{"Type":"Y"}}})),
        );
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system","resourceVersion":"7","uid":"u","managedFields":[]},"data":{"a":"1","b":"2"}});
        let dry_run = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system","resourceVersion":"7","uid":"u","managedFields":[{"manager":"flotilla"}]},"data":{"a":"1","b":"3"}});
        observed.objects.push(ObservedObject {
            artifact: "manifests/x/x.yaml".into(),
            desired: json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system"},"data":{"a":"1","b":"3"}}),
            live: Some(live),
            dry_run: Some(dry_run),
        });
        let plan = compute("eu-central-1", None, &desired(), &observed).unwrap();
        assert!(
            matches!(&plan.steps[0], Step::Stack(s) if s.stack == "c1-node-pool-w" && s.action == StackAction::Update)
        );
        let Step::Manifest(m) = &plan.steps[1] else {
            panic!()
        };
        assert_eq!(
            m.changes,
            vec![FieldChange {
                path: "data.b".into(),
                before: Some(json!("2")),
                after: Some(json!("3")),
            }]
        );
        assert_eq!(plan.steps.len(), 2);
    }

    #[test]
    fn a_stack_update_shows_the_user_data_decoded_line_by_line() {
        use base64::Engine as _;
        let template = |userdata: &str| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(userdata);
            json!({"Resources":{"LaunchTemplate":{"Type":"AWS::EC2::LaunchTemplate","Properties":{"LaunchTemplateData":{"UserData": encoded}}}}})
        };
        let mut observed = existing();
        observed.stacks.insert(
            "c1-node-pool-w".into(),
            live_stack(
                "c1-node-pool-w",
                template("#cloud-config\nlabels: team=checkout\nend: 1\n"),
            ),
        );
        let mut wanted = desired();
        wanted.files.insert(
            "cloudformation/node-pool-w.json".into(),
            template("#cloud-config\nlabels: team=payments\nend: 1\n").to_string(),
        );
        let plan = compute("eu-central-1", None, &wanted, &observed).unwrap();
        let Step::Stack(step) = &plan.steps[0] else {
            panic!("{:?}", plan.steps)
        };
        let changed: Vec<&str> = step
            .user_data_diff
            .lines()
            .filter(|l| !l.starts_with("---") && !l.starts_with("+++"))
            .filter(|l| l.starts_with('-') || l.starts_with('+'))
            .collect();
        assert_eq!(
            changed,
            ["-labels: team=checkout", "+labels: team=payments"]
        );
        assert!(step.user_data_diff.contains("LaunchTemplate UserData"));
        // A stack whose user data did not change has none to show.
        observed.stacks.insert(
            "c1-node-pool-w".into(),
            live_stack("c1-node-pool-w", json!({"Resources":{"C":{"Type":"Y"}}})),
        );
        let plan = compute("eu-central-1", None, &desired(), &observed).unwrap();
        assert!(matches!(&plan.steps[0], Step::Stack(s) if s.user_data_diff.is_empty()));
    }

    #[test]
    fn secret_data_is_redacted_in_field_changes() {
        let mut observed = existing();
        let secret = |v: &str| json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"default"},"data":{"token": v}});
        observed.objects.push(ObservedObject {
            artifact: "manifests/s/s.yaml".into(),
            desired: secret("bmV3"),
            live: Some(secret("b2xkLXNlY3JldA==")),
            dry_run: Some(secret("bmV3")),
        });
        let plan = compute("eu-central-1", None, &desired(), &observed).unwrap();
        let text = serde_json::to_string(&plan).unwrap();
        assert!(
            !text.contains("b2xkLXNlY3JldA==") && !text.contains("bmV3"),
            "{text}"
        );
        assert!(text.contains("<redacted"));
    }

    #[test]
    fn only_listed_objects_that_exist_are_deleted() {
        let mut observed = existing();
        let entry = DeletionEntry {
            kind: "Deployment".into(),
            namespace: Some("kube-system".into()),
            name: Some("kube-dns".into()),
            ..DeletionEntry::default()
        };
        let kube_dns = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("kube-system".into()),
            name: "kube-dns".into(),
        };
        observed.deletions.push(ObservedDeletion {
            phase: "pre_apply".into(),
            entry: entry.clone(),
            found: vec![(kube_dns.clone(), "12".into())],
        });
        observed.deletions.push(ObservedDeletion {
            phase: "post_apply".into(),
            entry,
            found: Vec::new(),
        });
        let plan = compute("eu-central-1", None, &desired(), &observed).unwrap();
        assert_eq!(plan.steps.len(), 1);
        assert!(
            matches!(&plan.steps[0], Step::Delete(d) if d.object == kube_dns && d.phase == "pre_apply")
        );
        assert_eq!(
            plan.fingerprint
                .objects
                .get(&object_key(&kube_dns))
                .map(String::as_str),
            Some("12")
        );
        assert!(
            plan.fingerprint
                .objects
                .iter()
                .any(|(key, version)| key.starts_with("deletion ") && version == "absent"),
            "a deletion that matched nothing is part of the fingerprint: {:?}",
            plan.fingerprint.objects
        );
    }

    #[test]
    fn the_fingerprint_pins_the_desired_artifacts() {
        let observed = Observed::default();
        let before = compute("eu-central-1", None, &desired(), &observed)
            .unwrap()
            .fingerprint;
        let mut changed = desired();
        let first = changed.files.keys().next().unwrap().clone();
        changed.files.get_mut(&first).unwrap().push(' ');
        let after = compute("eu-central-1", None, &changed, &observed)
            .unwrap()
            .fingerprint;
        assert_eq!(before.desired.len(), 64);
        assert_ne!(before.desired, after.desired);
        assert_ne!(before.digest, after.digest);
    }

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
        let lines = what_moved(&plan_with(before.clone()), &plan_with(after));
        assert_eq!(
            lines,
            [
                "c1: the compiled artifacts changed since the plan was made",
                "c1: stack c1: was arn@t1 UPDATE_COMPLETE, is arn@t2 UPDATE_COMPLETE",
                "c1: node n1: was h1, is absent",
            ]
        );
        assert!(what_moved(&plan_with(before.clone()), &plan_with(before)).is_empty());
    }

    #[test]
    fn a_saved_plan_is_read_back_only_in_this_version() {
        let saved = serde_json::to_string(&plan_with(Fingerprint::default())).unwrap();
        assert_eq!(
            Plan::from_saved(&saved).unwrap(),
            plan_with(Fingerprint::default())
        );
        let older = saved.replace(
            &format!("\"version\":{PLAN_VERSION}"),
            &format!("\"version\":{}", PLAN_VERSION + 1),
        );
        assert_ne!(older, saved);
        assert_eq!(
            Plan::from_saved(&older).unwrap_err().to_string(),
            format!(
                "a version {} plan; this flotilla reads version {PLAN_VERSION}",
                PLAN_VERSION + 1
            )
        );
        assert!(matches!(
            Plan::from_saved("{\"clusters\": 3}"),
            Err(SavedPlanError::NotAPlan(_))
        ));
    }
}
