//! Reading the live state a plan is computed from, and planning many clusters
//! concurrently. Any failed read fails the cluster: nothing is planned from a
//! partial view.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    ClusterFailure, ClusterPlan, ObservedDeletion, PLAN_VERSION, POOL_LABEL, Plan, StackAction,
    Step, compute, stacks_of,
};
use crate::live::kube::{Endpoint, KubeCluster};
use crate::live::template::{check_sizes, compact, template_source};
use crate::live::{
    Cloud, ClusterApi, LiveError, LiveResult, NodeState, ObjectRef, ParameterValue, Selection,
    Timeouts,
};
use crate::model::{Cluster, Fleet, LifecycleStatus};
use crate::render::{Artifacts, Deletions};

/// Live state relevant to one cluster's desired artifacts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Every desired stack by name, and the stacks of removed pools; `None` when
    /// CloudFormation says the stack does not exist.
    pub stacks: BTreeMap<String, Option<ObservedStack>>,
    /// Node pools that run but are no longer declared.
    pub removed_pools: Vec<RemovedPool>,
    pub objects: Vec<ObservedObject>,
    pub deletions: Vec<ObservedDeletion>,
    pub nodes: Vec<NodeState>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedStack {
    pub state: crate::live::StackState,
    pub template: Value,
}

/// A node pool found in AWS (its Auto Scaling group is tagged with the cluster and the
/// pool) whose stack exists but which the fleet no longer declares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemovedPool {
    pub name: String,
    pub stack: String,
    /// The Auto Scaling group's instances per availability zone: the nodes that go.
    pub instances_by_zone: BTreeMap<String, usize>,
}

/// A desired object with what the cluster holds and what applying it would give.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedObject {
    pub artifact: String,
    pub desired: Value,
    pub live: Option<Value>,
    pub dry_run: Option<Value>,
}

/// Opens a cluster's Kubernetes API.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, cluster: &str, api_server_url: &str)
    -> LiveResult<Box<dyn ClusterApi>>;
}

/// Connects with kube: the endpoint is the cluster's `api_server_url` unless
/// overridden, credentials come from the kubeconfig context named after the cluster.
#[derive(Default)]
pub struct KubeConnector {
    /// Cluster id → API server URL, replacing `api_server_url`.
    pub endpoints: BTreeMap<String, String>,
    /// Cluster id → kubeconfig context, replacing the cluster id as context name.
    pub contexts: BTreeMap<String, String>,
    pub timeouts: Timeouts,
}

#[async_trait]
impl Connector for KubeConnector {
    async fn connect(
        &self,
        cluster: &str,
        api_server_url: &str,
    ) -> LiveResult<Box<dyn ClusterApi>> {
        let explicit = self.contexts.get(cluster);
        let endpoint = Endpoint {
            url: self
                .endpoints
                .get(cluster)
                .cloned()
                .unwrap_or_else(|| api_server_url.to_string()),
            context: Some(explicit.cloned().unwrap_or_else(|| cluster.to_string())),
            context_required: explicit.is_some(),
            timeouts: self.timeouts,
        };
        Ok(Box::new(KubeCluster::connect(&endpoint).await?))
    }
}

/// One cluster to plan.
pub struct ClusterTarget<'a> {
    pub artifacts: &'a Artifacts,
    pub region: String,
    pub api_server_url: String,
    pub blocked: Option<String>,
    /// Shown next to the cluster id in the plan.
    pub registry_id: Option<String>,
    /// Where templates over CloudFormation's inline limit are uploaded.
    pub template_bucket: Option<String>,
}

impl<'a> ClusterTarget<'a> {
    pub fn new(cluster: &Cluster, artifacts: &'a Artifacts) -> ClusterTarget<'a> {
        ClusterTarget {
            artifacts,
            region: cluster.region.clone(),
            api_server_url: cluster.api_server_url.clone(),
            blocked: cluster.config_items.cluster_update_block.clone(),
            registry_id: cluster.registry_id.clone(),
            template_bucket: cluster.template_bucket.clone(),
        }
    }
}

/// What a plan covers: each compiled cluster of `fleet`, except those being retired,
/// which are listed apart (id and status) so the caller can say why they are left out.
pub fn plan_targets<'a>(
    fleet: &'a Fleet,
    compiled: &'a [Artifacts],
) -> (Vec<ClusterTarget<'a>>, Vec<(&'a str, LifecycleStatus)>) {
    let mut targets = Vec::new();
    let mut retired = Vec::new();
    for artifacts in compiled {
        let Some(cluster) = fleet.cluster(&artifacts.cluster) else {
            continue;
        };
        if cluster.lifecycle_status.is_retired() {
            retired.push((cluster.id.as_str(), cluster.lifecycle_status));
        } else {
            targets.push(ClusterTarget::new(cluster, artifacts));
        }
    }
    (targets, retired)
}

/// Objects in flight per cluster (gets and dry-run applies).
const OBJECT_CONCURRENCY: usize = 8;

pub async fn observe(
    target: &ClusterTarget<'_>,
    cloud: &dyn Cloud,
    connector: &dyn Connector,
) -> LiveResult<Observed> {
    let desired = target.artifacts;
    let region = target.region.as_str();
    let mut observed = Observed::default();
    for (name, _, _) in stacks_of(desired) {
        let state = match cloud.describe_stack(region, &name).await? {
            Some(state) if !stack_is_usable(&state)? => None,
            Some(state) => {
                let template = cloud.get_template(region, &name).await?;
                Some(ObservedStack { state, template })
            }
            None => None,
        };
        observed.stacks.insert(name, state);
    }
    observed.removed_pools = removed_pools(desired, region, cloud, &mut observed.stacks).await?;
    let objects = desired_objects(desired)?;
    if !matches!(observed.stacks.get(&desired.cluster), Some(Some(_))) {
        // A cluster being created has no API server to ask.
        observed.objects = objects
            .into_iter()
            .map(|(artifact, desired)| ObservedObject {
                artifact,
                desired,
                live: None,
                dry_run: None,
            })
            .collect();
        return Ok(observed);
    }

    let api = connector
        .connect(&desired.cluster, &target.api_server_url)
        .await?;
    let api = api.as_ref();
    observed.objects = futures::stream::iter(objects)
        .map(|(artifact, desired)| async move {
            let reference = ObjectRef::of(&desired).ok_or_else(|| invalid(&artifact))?;
            let live = api.get(&reference).await?;
            // Only an update is diffed against the server's dry run. A create is not:
            // its namespace or its CRD may be created by the same apply.
            let dry_run = match &live {
                Some(_) => Some(api.dry_run_apply(&desired).await?),
                None => None,
            };
            Ok::<_, LiveError>(ObservedObject {
                artifact,
                desired,
                live,
                dry_run,
            })
        })
        .buffered(OBJECT_CONCURRENCY)
        .try_collect()
        .await?;

    if let Some(text) = desired.files.get("deletions.yaml") {
        let deletions: Deletions = serde_yaml_ng::from_str(text).map_err(|e| LiveError {
            operation: format!("read {}/deletions.yaml", desired.cluster),
            message: e.to_string(),
            retryable: false,
        })?;
        for (phase, entries) in [
            ("pre_apply", &deletions.pre_apply),
            ("post_apply", &deletions.post_apply),
        ] {
            for entry in entries {
                let selection = match (&entry.name, &entry.selector, &entry.labels) {
                    (Some(name), _, _) => Selection::Name(name.clone()),
                    (_, Some(selector), _) => Selection::Labels(selector.clone()),
                    (_, _, Some(labels)) => Selection::Labels(
                        labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    _ => continue,
                };
                let found = api
                    .find(&entry.kind, entry.namespace.as_deref(), &selection)
                    .await?;
                let found = found
                    .into_iter()
                    .filter(|o| match entry.has_owner {
                        Some(wanted) => has_owner(o) == wanted,
                        None => true,
                    })
                    .filter_map(|o| {
                        let version = o
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        ObjectRef::of(&o).map(|r| (r, version))
                    })
                    .collect();
                observed.deletions.push(ObservedDeletion {
                    phase: phase.to_string(),
                    entry: entry.clone(),
                    found,
                });
            }
        }
    }

    if !desired.summary.node_pools.is_empty() || !observed.removed_pools.is_empty() {
        observed.nodes = (api.nodes(POOL_LABEL).await?)
            .into_iter()
            .map(std::sync::Arc::unwrap_or_clone)
            .collect();
    }
    Ok(observed)
}

/// Stack tag CloudFormation puts on the resources it creates.
const STACK_NAME_TAG: &str = "aws:cloudformation:stack-name";

/// Whether a stack can be compared and updated: `Ok(false)` for a stack that was only
/// reviewed, never created (`REVIEW_IN_PROGRESS`: creating it is still to do); an error
/// for every state in which CloudFormation would refuse or undo an update.
fn stack_is_usable(state: &crate::live::StackState) -> LiveResult<bool> {
    let problem = match state.status.as_str() {
        "CREATE_COMPLETE"
        | "UPDATE_COMPLETE"
        | "UPDATE_ROLLBACK_COMPLETE"
        | "IMPORT_COMPLETE"
        | "IMPORT_ROLLBACK_COMPLETE" => return Ok(true),
        "REVIEW_IN_PROGRESS" => return Ok(false),
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" => {
            "its creation failed and was rolled back; CloudFormation cannot update it: delete the stack, then plan again"
        }
        "UPDATE_ROLLBACK_FAILED" => {
            "an update failed and could not be rolled back; continue the rollback (ContinueUpdateRollback), then plan again"
        }
        "DELETE_FAILED" => "its deletion failed; finish or undo the deletion, then plan again",
        status if status.ends_with("_IN_PROGRESS") => {
            "an operation is running on it; plan again when it has finished"
        }
        _ => "flotilla does not know this stack status",
    };
    Err(LiveError {
        operation: format!("describe stack {}", state.name),
        message: format!("stack is {}: {problem}", state.status),
        retryable: false,
    })
}

/// Pools of this cluster that exist in AWS but are not declared. A pool counts only when
/// its Auto Scaling group carries the cluster's tags and its stack exists; that stack is
/// added to `stacks`, so the plan's fingerprint covers it.
async fn removed_pools(
    desired: &Artifacts,
    region: &str,
    cloud: &dyn Cloud,
    stacks: &mut BTreeMap<String, Option<ObservedStack>>,
) -> LiveResult<Vec<RemovedPool>> {
    let tag = |tags: &[(String, String)], key: &str| {
        tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    let declared: Vec<&str> = desired
        .summary
        .node_pools
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let mut removed: Vec<RemovedPool> = Vec::new();
    for group in cloud.auto_scaling_groups(region, &desired.cluster).await? {
        let Some(name) = tag(&group.tags, POOL_LABEL) else {
            continue;
        };
        // Only a stack named the way flotilla names pool stacks: a group's tags alone
        // must never point a deletion at another stack.
        let stack = format!("{}-node-pool-{name}", desired.cluster);
        if declared.contains(&name.as_str()) || stacks.contains_key(&stack) {
            continue;
        }
        if let Some(tagged) = tag(&group.tags, STACK_NAME_TAG)
            && tagged != stack
        {
            continue;
        }
        // A group without a stack was not made by flotilla's stacks: not ours to remove.
        if let Some(state) = cloud.describe_stack(region, &stack).await? {
            stack_is_usable(&state)?;
            let template = Value::Null;
            stacks.insert(stack.clone(), Some(ObservedStack { state, template }));
            let mut instances_by_zone = BTreeMap::new();
            for instance in &group.instances {
                *instances_by_zone
                    .entry(instance.availability_zone.clone())
                    .or_insert(0) += 1;
            }
            removed.push(RemovedPool {
                name,
                stack,
                instances_by_zone,
            });
        }
    }
    removed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(removed)
}

fn has_owner(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| !owners.is_empty())
}

fn invalid(artifact: &str) -> LiveError {
    LiveError {
        operation: format!("read {artifact}"),
        message: "an object without apiVersion, kind or metadata.name".into(),
        retryable: false,
    }
}

/// Every object of every manifest artifact, in apply order (folder, file, document).
fn desired_objects(desired: &Artifacts) -> LiveResult<Vec<(String, Value)>> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for (path, text) in desired.files.range("manifests/".to_string()..) {
        if !path.starts_with("manifests/") {
            break;
        }
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let value = Value::deserialize(document).map_err(|e| LiveError {
                operation: format!("read {}/{path}", desired.cluster),
                message: e.to_string(),
                retryable: false,
            })?;
            if !value.is_null() {
                out.push((path.clone(), value));
            }
        }
    }
    Ok(out)
}

/// Ask CloudFormation what each stack update would do.
async fn preview_updates(
    plan: &mut ClusterPlan,
    target: &ClusterTarget<'_>,
    observed: &Observed,
    cloud: &dyn Cloud,
) -> LiveResult<()> {
    for step in &mut plan.steps {
        let Step::Stack(stack) = step else { continue };
        if stack.action != StackAction::Update {
            continue;
        }
        let template = &target.artifacts.files[&stack.artifact];
        let wanted: Value = serde_json::from_str(template).unwrap_or(Value::Null);
        let live = observed.stacks.get(&stack.stack).and_then(Option::as_ref);
        let mut parameters = Vec::new();
        if let Some(Value::Object(declared)) = wanted.get("Parameters") {
            for (key, spec) in declared {
                let previous =
                    live.is_some_and(|l| l.state.parameters.iter().any(|(k, _)| k == key));
                if previous {
                    parameters.push((key.clone(), ParameterValue::UsePrevious));
                } else if spec.get("Default").is_none() {
                    return Err(LiveError {
                        operation: format!("plan update of stack {}", stack.stack),
                        message: format!(
                            "parameter `{key}` is new and has no Default, so the update has no value for it"
                        ),
                        retryable: false,
                    });
                }
            }
        }
        // A template over the inline limit is uploaded for the preview as apply would
        // upload it: the same digest key, so apply writes the same object again.
        let source = template_source(
            cloud,
            &target.region,
            &target.artifacts.cluster,
            &stack.stack,
            compact(template),
            target.template_bucket.as_deref(),
        )
        .await?;
        stack.changes = cloud
            .preview_update(&target.region, &stack.stack, &source, &parameters)
            .await?
            .changes;
    }
    Ok(())
}

async fn plan_cluster(
    target: &ClusterTarget<'_>,
    cloud: &dyn Cloud,
    connector: &dyn Connector,
) -> Result<ClusterPlan, ClusterFailure> {
    let fail = |error: LiveError| ClusterFailure {
        cluster: target.artifacts.cluster.clone(),
        error,
    };
    let artifacts = target.artifacts;
    check_sizes(
        stacks_of(artifacts).iter().filter_map(|(stack, _, path)| {
            Some((stack.as_str(), artifacts.files.get(path)?.as_str()))
        }),
        target.template_bucket.as_deref(),
    )
    .map_err(|message| {
        fail(LiveError {
            operation: "check the templates' sizes".into(),
            message,
            retryable: false,
        })
    })?;
    let observed = observe(target, cloud, connector).await.map_err(fail)?;
    let mut plan = compute(
        &target.region,
        target.blocked.clone(),
        target.artifacts,
        &observed,
    )
    .map_err(|e| {
        fail(LiveError {
            operation: "compute the plan".into(),
            message: e.to_string(),
            retryable: false,
        })
    })?;
    plan.registry_id = target.registry_id.clone();
    preview_updates(&mut plan, target, &observed, cloud)
        .await
        .map_err(fail)?;
    Ok(plan)
}

/// Plan every target, `concurrency` clusters at a time, with a progress bar on a terminal.
pub async fn plan_fleet(
    targets: &[ClusterTarget<'_>],
    cloud: &dyn Cloud,
    connector: &dyn Connector,
    concurrency: usize,
    progress: bool,
) -> Plan {
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(targets.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "observing clusters {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let results: Vec<Result<ClusterPlan, ClusterFailure>> = futures::stream::iter(targets)
        .map(|target| {
            let bar = bar.clone();
            async move {
                let result = plan_cluster(target, cloud, connector).await;
                bar.inc(1);
                bar.set_message(target.artifacts.cluster.clone());
                result
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    let mut plan = Plan {
        version: PLAN_VERSION,
        ..Plan::default()
    };
    for result in results {
        match result {
            Ok(c) => plan.clusters.push(c),
            Err(f) => plan.failures.push(f),
        }
    }
    plan.clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    plan.failures.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{
        AutoScalingGroupState, ChangeSetView, GroupInstance, InstanceState, StackState,
    };
    use crate::render::{PoolSummary, Summary};

    fn stack(name: &str, status: &str) -> StackState {
        StackState {
            name: name.into(),
            id: format!("arn:{name}"),
            status: status.into(),
            last_updated: "2026-11-23T00:00:00Z".into(),
            parameters: Vec::new(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn only_settled_stacks_are_compared_and_failed_ones_stop_the_plan() {
        for status in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
        ] {
            assert_eq!(stack_is_usable(&stack("s", status)), Ok(true), "{status}");
        }
        // Reviewed but never created: still to be created.
        assert_eq!(
            stack_is_usable(&stack("s", "REVIEW_IN_PROGRESS")),
            Ok(false)
        );
        for status in [
            "ROLLBACK_COMPLETE",
            "ROLLBACK_FAILED",
            "UPDATE_ROLLBACK_FAILED",
            "DELETE_FAILED",
            "DELETE_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
            "CREATE_IN_PROGRESS",
        ] {
            let error = stack_is_usable(&stack("s", status)).unwrap_err();
            assert!(error.message.contains(status), "{error}");
            assert!(!error.retryable);
        }
    }

    /// Stacks and Auto Scaling groups as given; nothing else is asked for.
    struct Account {
        stacks: Vec<StackState>,
        groups: Vec<AutoScalingGroupState>,
    }

    #[async_trait]
    impl Cloud for Account {
        async fn describe_stack(&self, _: &str, name: &str) -> LiveResult<Option<StackState>> {
            Ok(self.stacks.iter().find(|s| s.name == name).cloned())
        }
        async fn get_template(&self, _: &str, _: &str) -> LiveResult<Value> {
            Ok(Value::Null)
        }
        async fn preview_update(
            &self,
            _: &str,
            _: &str,
            _: &crate::live::TemplateSource,
            _: &[(String, ParameterValue)],
        ) -> LiveResult<ChangeSetView> {
            unreachable!("removal planning previews nothing")
        }
        async fn auto_scaling_groups(
            &self,
            _: &str,
            _: &str,
        ) -> LiveResult<Vec<AutoScalingGroupState>> {
            Ok(self.groups.clone())
        }
        async fn instances(&self, _: &str, _: &[String]) -> LiveResult<Vec<InstanceState>> {
            Ok(Vec::new())
        }

        // Apply is not wired to this backend yet.
        async fn caller_account(&self, _: &str) -> LiveResult<String> {
            Err(crate::live::unsupported("caller_account"))
        }
        async fn put_template(&self, _: &str, _: &str, _: &str, _: &str) -> LiveResult<()> {
            Err(crate::live::unsupported("put_template"))
        }
        async fn create_change_set(
            &self,
            _: &str,
            _: &crate::live::ChangeSetRequest,
        ) -> LiveResult<crate::live::PreparedChangeSet> {
            Err(crate::live::unsupported("create_change_set"))
        }
        async fn execute_change_set(&self, _: &str, _: &str, _: &str) -> LiveResult<()> {
            Err(crate::live::unsupported("execute_change_set"))
        }
        async fn stack_events(
            &self,
            _: &str,
            _: &str,
            _: usize,
        ) -> LiveResult<Vec<crate::live::StackEvent>> {
            Err(crate::live::unsupported("stack_events"))
        }
        async fn delete_stack(&self, _: &str, _: &str) -> LiveResult<()> {
            Err(crate::live::unsupported("delete_stack"))
        }
        async fn set_group_size(
            &self,
            _: &str,
            _: &str,
            _: &crate::live::GroupSize,
        ) -> LiveResult<()> {
            Err(crate::live::unsupported("set_group_size"))
        }
        async fn set_group_tags(&self, _: &str, _: &str, _: &[(String, String)]) -> LiveResult<()> {
            Err(crate::live::unsupported("set_group_tags"))
        }
        async fn delete_group_tags(&self, _: &str, _: &str, _: &[String]) -> LiveResult<()> {
            Err(crate::live::unsupported("delete_group_tags"))
        }
        async fn terminate_instance(&self, _: &str, _: &str, _: bool) -> LiveResult<()> {
            Err(crate::live::unsupported("terminate_instance"))
        }
    }

    fn group(pool: &str, stack_tag: Option<&str>, zones: &[&str]) -> AutoScalingGroupState {
        let mut tags = vec![
            ("flotilla.io/cluster".to_string(), "prod-1".to_string()),
            (POOL_LABEL.to_string(), pool.to_string()),
        ];
        tags.extend(stack_tag.map(|s| (STACK_NAME_TAG.to_string(), s.to_string())));
        AutoScalingGroupState {
            name: format!("asg-{pool}"),
            min_size: 0,
            max_size: 10,
            desired_capacity: zones.len() as i32,
            tags,
            instances: zones
                .iter()
                .enumerate()
                .map(|(i, zone)| GroupInstance {
                    id: format!("i-{pool}-{i}"),
                    availability_zone: zone.to_string(),
                    lifecycle_state: "InService".into(),
                    health_status: "Healthy".into(),
                    launch_template_version: None,
                })
                .collect(),
        }
    }

    #[test]
    fn only_pools_with_a_flotilla_named_stack_are_removed() {
        let desired = Artifacts {
            cluster: "prod-1".into(),
            files: BTreeMap::new(),
            summary: Summary {
                node_pools: vec![PoolSummary {
                    name: "workers".into(),
                    ..PoolSummary::default()
                }],
                ..Summary::default()
            },
        };
        let account = Account {
            stacks: vec![
                stack("prod-1-node-pool-batch", "CREATE_COMPLETE"),
                stack("shared-network", "CREATE_COMPLETE"),
            ],
            groups: vec![
                group("workers", None, &["a"]),
                group("batch", Some("prod-1-node-pool-batch"), &["a", "a", "b"]),
                // Tags that point a deletion at a stack flotilla did not name.
                group("legacy", Some("shared-network"), &["a"]),
                // A group whose stack does not exist.
                group("orphan", None, &["a"]),
            ],
        };
        let mut stacks = BTreeMap::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let removed = runtime
            .block_on(removed_pools(
                &desired,
                "eu-central-1",
                &account,
                &mut stacks,
            ))
            .unwrap();
        assert_eq!(
            removed,
            [RemovedPool {
                name: "batch".into(),
                stack: "prod-1-node-pool-batch".into(),
                instances_by_zone: BTreeMap::from([("a".into(), 2), ("b".into(), 1)]),
            }]
        );
        assert_eq!(
            stacks.keys().collect::<Vec<_>>(),
            ["prod-1-node-pool-batch"],
            "the removed stack joins the fingerprint"
        );
    }
}
