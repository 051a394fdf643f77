//! The simulated AWS side: CloudFormation stacks driven by change sets, the Auto
//! Scaling groups their templates declare, and the instances those groups launch.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CLUSTER_TAG, Group, HASH_LABEL, Instance, POOL_LABEL, SimHandle, SimWorld, event};
use crate::live::{
    AutoScalingGroupState, ChangeSetKind, ChangeSetRequest, ChangeSetView, Cloud, GroupInstance,
    GroupSize, InstanceState, LiveError, LiveResult, ParameterValue, PreparedChangeSet,
    ResourceChange, StackEvent, StackState, TemplateSource,
};

const ASG_TYPE: &str = "AWS::AutoScaling::AutoScalingGroup";
const LAUNCH_TEMPLATE_TYPE: &str = "AWS::EC2::LaunchTemplate";
const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    pub name: String,
    pub id: String,
    pub status: String,
    pub last_updated_ms: i64,
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub template: Value,
    /// Oldest first.
    pub events: Vec<StackEvent>,
    pub pending: Option<Pending>,
    pub change_sets: BTreeMap<String, ChangeSet>,
}

/// An operation under way, finishing at `done_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub done_ms: i64,
    pub operation: Operation,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Operation {
    Create {
        template: Value,
        parameters: Vec<(String, String)>,
    },
    Update {
        template: Value,
        parameters: Vec<(String, String)>,
        rolls_back: bool,
    },
    Delete,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub kind: ChangeSetKind,
    pub template: Value,
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

fn not_found(operation: String, what: &str) -> LiveError {
    LiveError {
        operation,
        message: format!("ValidationError: {what} does not exist"),
        retryable: false,
    }
}

fn validation(operation: String, message: String) -> LiveError {
    LiveError {
        operation,
        message: format!("ValidationError: {message}"),
        retryable: false,
    }
}

/// Finish due stack operations, then bring every group to its desired capacity.
pub(super) fn settle(world: &mut SimWorld) {
    let now = world.now_ms;
    let due: Vec<(String, String)> = world
        .regions
        .iter()
        .flat_map(|(region, r)| {
            r.stacks
                .values()
                .filter(|s| s.pending.as_ref().is_some_and(|p| p.done_ms <= now))
                .map(|s| (region.clone(), s.name.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    for (region, stack) in due {
        finish(world, &region, &stack);
    }
    let groups: Vec<(String, String)> = world
        .regions
        .iter()
        .flat_map(|(region, r)| r.groups.keys().map(|g| (region.clone(), g.clone())))
        .collect();
    for (region, group) in groups {
        launch_missing(world, &region, &group);
        terminate_excess(world, &region, &group);
    }
}

fn finish(world: &mut SimWorld, region: &str, name: &str) {
    let now = world.now_ms;
    let Some(stack) = world.region_mut(region).stacks.get_mut(name) else {
        return;
    };
    let Some(pending) = stack.pending.take() else {
        return;
    };
    stack.last_updated_ms = now;
    match pending.operation {
        Operation::Create {
            template,
            parameters,
        } => {
            stack.status = "CREATE_COMPLETE".into();
            stack.template = template.clone();
            stack.parameters = parameters.clone();
            resource_events(stack, now, "CREATE_COMPLETE");
            stack
                .events
                .push(event(now, name, STACK_TYPE, "CREATE_COMPLETE"));
            apply_template(world, region, name, &template, &parameters);
        }
        Operation::Update {
            rolls_back: true, ..
        } => {
            let failed = first_group(&stack.template).unwrap_or_else(|| name.to_string());
            let mut failure = event(now, &failed, ASG_TYPE, "UPDATE_FAILED");
            failure.reason = Some(
                "Resource handler returned message: \"Launch template validation failed (simulated fault)\""
                    .into(),
            );
            stack.events.push(failure);
            for status in ["UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"] {
                stack.events.push(event(now, name, STACK_TYPE, status));
            }
            stack.status = "UPDATE_ROLLBACK_COMPLETE".into();
        }
        Operation::Update {
            template,
            parameters,
            ..
        } => {
            stack.status = "UPDATE_COMPLETE".into();
            stack.template = template.clone();
            stack.parameters = parameters.clone();
            resource_events(stack, now, "UPDATE_COMPLETE");
            stack
                .events
                .push(event(now, name, STACK_TYPE, "UPDATE_COMPLETE"));
            apply_template(world, region, name, &template, &parameters);
        }
        Operation::Delete => {
            world.region_mut(region).stacks.remove(name);
            let owned: Vec<String> = world
                .region_mut(region)
                .groups
                .values()
                .filter(|g| g.stack.as_deref() == Some(name))
                .map(|g| g.name.clone())
                .collect();
            for group in owned {
                delete_group(world, region, &group);
            }
        }
    }
}

fn first_group(template: &Value) -> Option<String> {
    resources(template)
        .find(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ASG_TYPE))
        .map(|(id, _)| id.clone())
}

fn resources(template: &Value) -> impl Iterator<Item = (&String, &Value)> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

fn resource_events(stack: &mut Stack, now: i64, status: &str) {
    let done: Vec<StackEvent> = resources(&stack.template)
        .map(|(id, r)| {
            let kind = r.get("Type").and_then(Value::as_str).unwrap_or("");
            event(now, id, kind, status)
        })
        .collect();
    stack.events.extend(done);
}

fn delete_group(world: &mut SimWorld, region: &str, group: &str) {
    let Some(removed) = world.region_mut(region).groups.remove(group) else {
        return;
    };
    for id in removed.instances {
        if let Some(instance) = world.region_mut(region).instances.get_mut(&id) {
            instance.terminated = true;
            world.stats.terminated += 1;
            world.fleet.departures += 1;
        }
    }
}

/// A number in a template: CloudFormation accepts `3` and `"3"`.
fn number(value: Option<&Value>) -> Option<i32> {
    match value? {
        Value::Number(n) => n.as_i64().map(|n| n as i32),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The labels the kubelet gets from `--node-labels=` in the launch template's userdata.
fn userdata_labels(launch_template: Option<&Value>) -> BTreeMap<String, String> {
    let encoded = launch_template
        .and_then(|t| t.pointer("/Properties/LaunchTemplateData/UserData"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    decoded
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("--node-labels="))
        .flat_map(|list| list.split(','))
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Create, update and delete the Auto Scaling groups a stack's template declares.
fn apply_template(
    world: &mut SimWorld,
    region: &str,
    stack: &str,
    template: &Value,
    parameters: &[(String, String)],
) {
    let zones_wanted = parameters
        .iter()
        .find(|(k, _)| k == "SubnetIds")
        .map(|(_, v)| v.split(',').filter(|s| !s.is_empty()).count());
    let region_zones = world.region_mut(region).zones.clone();
    let zones: Vec<String> = region_zones
        .iter()
        .take(zones_wanted.unwrap_or(region_zones.len()).max(1))
        .cloned()
        .collect();
    let mut declared = Vec::new();
    for (logical_id, resource) in resources(template) {
        if resource.get("Type").and_then(Value::as_str) != Some(ASG_TYPE) {
            continue;
        }
        let properties = resource.get("Properties").cloned().unwrap_or(Value::Null);
        let name = properties
            .get("AutoScalingGroupName")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{stack}-{logical_id}"), str::to_string);
        let tags: Vec<(String, String)> = properties
            .get("Tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t.get("Key")?.as_str()?.to_string(),
                    t.get("Value")?.as_str()?.to_string(),
                ))
            })
            .collect();
        let tag = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let template_ref = properties
            .pointer("/LaunchTemplate/LaunchTemplateId/Ref")
            .or_else(|| {
                properties.pointer(
                    "/MixedInstancesPolicy/LaunchTemplate/LaunchTemplateSpecification/LaunchTemplateId/Ref",
                )
            })
            .and_then(Value::as_str)
            .and_then(|id| template.pointer(&format!("/Resources/{id}")))
            .filter(|r| r.get("Type").and_then(Value::as_str) == Some(LAUNCH_TEMPLATE_TYPE));
        let mut node_labels = userdata_labels(template_ref);
        for key in [POOL_LABEL, HASH_LABEL] {
            if let (false, Some(value)) = (node_labels.contains_key(key), tag(key)) {
                node_labels.insert(key.to_string(), value);
            }
        }
        // A group in one subnet of the list (`Fn::Select: [i, Ref: SubnetIds]`, one group
        // per zone) launches in that subnet's zone only.
        let group_zones: Vec<String> = match properties
            .pointer("/VPCZoneIdentifier/0/Fn::Select/0")
            .and_then(Value::as_u64)
        {
            Some(index) => zones.get(index as usize).cloned().into_iter().collect(),
            None => zones.clone(),
        };
        let min = number(properties.get("MinSize")).unwrap_or(0);
        let max = number(properties.get("MaxSize")).unwrap_or(min);
        let desired = number(properties.get("DesiredCapacity"));
        let groups = &mut world.region_mut(region).groups;
        match groups.get_mut(&name) {
            Some(group) => {
                group.min = min;
                group.max = max;
                // Without DesiredCapacity in the template, an update keeps the
                // group's current one, within the new bounds.
                group.desired = desired.unwrap_or(group.desired).clamp(min, max);
                for (key, value) in &tags {
                    super::set_tag(&mut group.tags, key, value);
                }
                if group.node_labels != node_labels {
                    group.node_labels = node_labels;
                    group.launch_template_version += 1;
                }
                group.zones = group_zones;
            }
            None => {
                let cluster = tag(CLUSTER_TAG).unwrap_or_default();
                let group = Group {
                    name: name.clone(),
                    cluster: cluster.clone(),
                    stack: Some(stack.to_string()),
                    min,
                    max,
                    desired: desired.unwrap_or(min).clamp(min, max),
                    tags: tags.clone(),
                    zones: group_zones,
                    node_labels,
                    launch_template_version: 1,
                    instances: Vec::new(),
                };
                groups.insert(name.clone(), group);
                // The API server answers once the cluster has machines.
                if !cluster.is_empty() {
                    world
                        .clusters
                        .entry(cluster)
                        .or_insert_with(|| super::Cluster::new(region));
                }
            }
        }
        declared.push(name);
    }
    let dropped: Vec<String> = world
        .region_mut(region)
        .groups
        .values()
        .filter(|g| g.stack.as_deref() == Some(stack) && !declared.contains(&g.name))
        .map(|g| g.name.clone())
        .collect();
    for group in dropped {
        delete_group(world, region, &group);
    }
}

fn live_per_zone(world: &SimWorld, region: &str, group: &Group) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = group.zones.iter().map(|z| (z.clone(), 0)).collect();
    if let Some(r) = world.regions.get(region) {
        for id in &group.instances {
            if let Some(i) = r.instances.get(id) {
                *counts.entry(i.zone.clone()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Launch instances until the group has its desired capacity (or the market's limit),
/// each in the zone with the fewest, as Auto Scaling balances them.
pub(super) fn launch_missing(world: &mut SimWorld, region: &str, name: &str) {
    let limit = world
        .faults
        .capacity_limits
        .get(name)
        .copied()
        .unwrap_or(usize::MAX);
    // Asked after every change of the world: a group that is complete is not cloned.
    let missing = |world: &SimWorld| {
        world.group(region, name).is_some_and(|group| {
            let live = group.instances.len();
            (live as i32) < group.desired && live < limit
        })
    };
    while missing(world) {
        let Some(group) = world.group(region, name).cloned() else {
            return;
        };
        let counts = live_per_zone(world, region, &group);
        let Some(zone) = group
            .zones
            .iter()
            .min_by_key(|z| counts.get(*z).copied().unwrap_or(0))
            .cloned()
        else {
            return;
        };
        let slow = world.chance(world.faults.slow_node_rate);
        let never_ready = world.chance(world.faults.never_ready_rate);
        let boot_ms = world.settings.boot_seconds as f64 * 1000.0;
        let boot_ms = if slow {
            boot_ms * world.faults.slow_factor.max(1.0)
        } else {
            boot_ms
        };
        let id = format!("i-{:017x}", world.fresh_id());
        let instance = Instance {
            id: id.clone(),
            group: name.to_string(),
            cluster: group.cluster.clone(),
            zone,
            node_labels: group.node_labels.clone(),
            launch_template_version: group.launch_template_version,
            launched_ms: world.now_ms,
            boot_done_ms: world.now_ms + boot_ms as i64,
            never_ready,
            terminated: false,
        };
        world.stats.launched += 1;
        world.fleet.launches += 1;
        let r = world.region_mut(region);
        r.instances.insert(id.clone(), instance);
        if let Some(g) = r.groups.get_mut(name) {
            g.instances.push(id);
        }
    }
}

/// Terminate instances above desired capacity as Auto Scaling's default policy does:
/// from the zone with the most, the oldest launch template first, then the oldest.
fn terminate_excess(world: &mut SimWorld, region: &str, name: &str) {
    let excess = |world: &SimWorld| {
        world
            .group(region, name)
            .is_some_and(|group| group.instances.len() as i32 > group.desired)
    };
    while excess(world) {
        let Some(group) = world.group(region, name).cloned() else {
            return;
        };
        let counts = live_per_zone(world, region, &group);
        let r = &world.regions[region];
        let victim = group
            .instances
            .iter()
            .filter_map(|id| r.instances.get(id))
            .min_by_key(|i| {
                (
                    std::cmp::Reverse(counts.get(&i.zone).copied().unwrap_or(0)),
                    i.launch_template_version,
                    i.launched_ms,
                )
            })
            .map(|i| i.id.clone());
        let Some(victim) = victim else { return };
        terminate(world, region, &victim);
    }
}

fn terminate(world: &mut SimWorld, region: &str, id: &str) {
    let r = world.region_mut(region);
    let Some(instance) = r.instances.get_mut(id) else {
        return;
    };
    instance.terminated = true;
    let group = instance.group.clone();
    if let Some(g) = r.groups.get_mut(&group) {
        g.instances.retain(|i| i != id);
    }
    world.stats.terminated += 1;
    world.fleet.departures += 1;
}

fn lifecycle(instance: &Instance, now: i64) -> &'static str {
    if instance.booted(now) {
        "InService"
    } else {
        "Pending"
    }
}

/// CloudFormation's view of replacing `old` by `new`: resources added, removed and
/// modified (a changed Auto Scaling group name replaces the group).
fn change_view(old: &Value, new: &Value) -> ChangeSetView {
    let old_resources: BTreeMap<&String, &Value> = resources(old).collect();
    let new_resources: BTreeMap<&String, &Value> = resources(new).collect();
    let kind = |r: &Value| {
        r.get("Type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut changes = Vec::new();
    for (id, resource) in &new_resources {
        let (action, replacement) = match old_resources.get(id) {
            None => ("Add", None),
            Some(before) if before == resource => continue,
            Some(before) => {
                let name = |r: &Value| r.pointer("/Properties/AutoScalingGroupName").cloned();
                let replaced = kind(before) != kind(resource) || name(before) != name(resource);
                ("Modify", Some(if replaced { "True" } else { "False" }))
            }
        };
        changes.push(ResourceChange {
            logical_id: id.to_string(),
            resource_type: kind(resource),
            action: action.into(),
            replacement: replacement.map(str::to_string),
        });
    }
    for (id, resource) in &old_resources {
        if !new_resources.contains_key(id) {
            changes.push(ResourceChange {
                logical_id: id.to_string(),
                resource_type: kind(resource),
                action: "Remove".into(),
                replacement: None,
            });
        }
    }
    ChangeSetView { changes }
}

/// Parameter values for an operation: `UsePrevious` from the stack's current ones.
fn resolve_parameters(
    operation: &str,
    previous: &[(String, String)],
    given: &[(String, ParameterValue)],
) -> LiveResult<Vec<(String, String)>> {
    given
        .iter()
        .map(|(key, value)| match value {
            ParameterValue::Value(v) => Ok((key.clone(), v.clone())),
            ParameterValue::UsePrevious => previous
                .iter()
                .find(|(k, _)| k == key)
                .cloned()
                .ok_or_else(|| {
                    validation(
                        operation.to_string(),
                        format!("parameter {key} has no previous value"),
                    )
                }),
        })
        .collect()
}

fn stack_state(stack: &Stack) -> StackState {
    StackState {
        name: stack.name.clone(),
        id: stack.id.clone(),
        status: stack.status.clone(),
        last_updated: super::rfc3339(stack.last_updated_ms),
        parameters: stack.parameters.clone(),
        tags: stack.tags.clone(),
    }
}

fn parse_template(operation: &str, body: &str) -> LiveResult<Value> {
    serde_json::from_str(body).map_err(|e| {
        validation(
            operation.to_string(),
            format!("Template format error: {e} (the simulator reads JSON templates)"),
        )
    })
}

/// The template a change set names: its body, or the uploaded object its URL points at
/// (read back from the simulated S3 of the region, as CloudFormation reads it).
fn read_template(
    world: &SimWorld,
    region: &str,
    operation: &str,
    template: &TemplateSource,
) -> LiveResult<Value> {
    match template {
        TemplateSource::Body(body) => parse_template(operation, body),
        TemplateSource::Url(url) => {
            let body = crate::live::template::parse_object_url(url)
                .and_then(|(bucket, key)| {
                    world.regions.get(region)?.objects.get(&format!("{bucket}/{key}"))
                })
                .ok_or_else(|| {
                    validation(
                        operation.to_string(),
                        format!("TemplateURL must reference a valid S3 object to which you have access: {url}"),
                    )
                })?;
            parse_template(operation, body)
        }
    }
}

#[async_trait]
impl Cloud for SimHandle {
    async fn describe_stack(&self, region: &str, name: &str) -> LiveResult<Option<StackState>> {
        let mut world = self.lock();
        world.admit(&format!("describe stack {name}"))?;
        Ok(world
            .regions
            .get(region)
            .and_then(|r| r.stacks.get(name))
            .map(stack_state))
    }

    async fn get_template(&self, region: &str, name: &str) -> LiveResult<Value> {
        let operation = format!("get template of stack {name}");
        let mut world = self.lock();
        world.admit(&operation)?;
        world
            .regions
            .get(region)
            .and_then(|r| r.stacks.get(name))
            .map(|s| s.template.clone())
            .ok_or_else(|| not_found(operation, &format!("Stack with id {name}")))
    }

    async fn preview_update(
        &self,
        region: &str,
        name: &str,
        template: &TemplateSource,
        _parameters: &[(String, ParameterValue)],
    ) -> LiveResult<ChangeSetView> {
        let operation = format!("preview update of stack {name}");
        let mut world = self.lock();
        world.admit(&operation)?;
        let new = read_template(&world, region, &operation, template)?;
        let stack = world
            .regions
            .get(region)
            .and_then(|r| r.stacks.get(name))
            .ok_or_else(|| not_found(operation, &format!("Stack [{name}]")))?;
        Ok(change_view(&stack.template, &new))
    }

    async fn auto_scaling_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<AutoScalingGroupState>> {
        let mut world = self.lock();
        world.admit(&format!("describe Auto Scaling groups of {cluster}"))?;
        let now = world.now_ms;
        let Some(r) = world.regions.get(region) else {
            return Ok(Vec::new());
        };
        Ok(r.groups
            .values()
            .filter(|g| g.tags.iter().any(|(k, v)| k == CLUSTER_TAG && v == cluster))
            .map(|g| AutoScalingGroupState {
                name: g.name.clone(),
                min_size: g.min,
                max_size: g.max,
                desired_capacity: g.desired,
                tags: g.tags.clone(),
                instances: g
                    .instances
                    .iter()
                    .filter_map(|id| r.instances.get(id))
                    .map(|i| GroupInstance {
                        id: i.id.clone(),
                        availability_zone: i.zone.clone(),
                        lifecycle_state: lifecycle(i, now).into(),
                        health_status: "Healthy".into(),
                        launch_template_version: Some(i.launch_template_version.to_string()),
                    })
                    .collect(),
            })
            .collect())
    }

    async fn instances(&self, region: &str, ids: &[String]) -> LiveResult<Vec<InstanceState>> {
        let mut world = self.lock();
        world.admit("describe instances")?;
        let now = world.now_ms;
        let Some(r) = world.regions.get(region) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| r.instances.get(id))
            .map(|i| InstanceState {
                id: i.id.clone(),
                state: match (i.terminated, i.booted(now)) {
                    (true, _) => "terminated",
                    (false, true) => "running",
                    (false, false) => "pending",
                }
                .into(),
                availability_zone: i.zone.clone(),
            })
            .collect())
    }

    async fn caller_account(&self, _region: &str) -> LiveResult<String> {
        let mut world = self.lock();
        world.admit("get caller identity")?;
        world.stats.caller_identity_calls += 1;
        Ok(world.settings.account.clone())
    }

    async fn put_template(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: &str,
    ) -> LiveResult<()> {
        let mut world = self.lock();
        world.admit(&format!("upload template to s3://{bucket}/{key}"))?;
        world
            .region_mut(region)
            .objects
            .insert(format!("{bucket}/{key}"), body.to_string());
        world.mutated();
        Ok(())
    }

    async fn create_change_set(
        &self,
        region: &str,
        request: &ChangeSetRequest,
    ) -> LiveResult<PreparedChangeSet> {
        let name = &request.stack;
        let operation = format!("create change set for stack {name}");
        let mut world = self.lock();
        world.admit(&operation)?;
        let template = read_template(&world, region, &operation, &request.template)?;
        let now = world.now_ms;
        let number = world.fresh_id();
        let stacks = &mut world.region_mut(region).stacks;
        let existing = stacks.get(name);
        let (previous_template, previous_parameters) = match (request.kind, existing) {
            (ChangeSetKind::Create, Some(s)) if s.status != "REVIEW_IN_PROGRESS" => {
                return Err(LiveError {
                    operation,
                    message: format!("AlreadyExistsException: Stack [{name}] already exists"),
                    retryable: false,
                });
            }
            (ChangeSetKind::Update, None) => {
                return Err(not_found(operation, &format!("Stack [{name}]")));
            }
            (ChangeSetKind::Update, Some(s))
                if s.pending.is_some() || s.status == "REVIEW_IN_PROGRESS" =>
            {
                return Err(validation(
                    operation,
                    format!(
                        "Stack:{} is in {} state and can not be updated.",
                        s.id, s.status
                    ),
                ));
            }
            (_, Some(s)) => (s.template.clone(), s.parameters.clone()),
            (_, None) => (Value::Null, Vec::new()),
        };
        let parameters = resolve_parameters(&operation, &previous_parameters, &request.parameters)?;
        let view = change_view(&previous_template, &template);
        let stack = stacks.entry(name.clone()).or_insert_with(|| Stack {
            name: name.clone(),
            id: format!("arn:aws:cloudformation:{region}:stack/{name}/{number}"),
            status: "REVIEW_IN_PROGRESS".into(),
            last_updated_ms: now,
            parameters: Vec::new(),
            tags: request.tags.clone(),
            template: Value::Null,
            events: vec![event(now, name, STACK_TYPE, "REVIEW_IN_PROGRESS")],
            pending: None,
            change_sets: BTreeMap::new(),
        });
        let empty = request.kind == ChangeSetKind::Update
            && view.changes.is_empty()
            && parameters == stack.parameters;
        let id = format!("{name}-change-set-{number}");
        if !empty {
            stack.change_sets.insert(
                id.clone(),
                ChangeSet {
                    kind: request.kind,
                    template,
                    parameters,
                    tags: request.tags.clone(),
                },
            );
        }
        world.mutated();
        Ok(PreparedChangeSet { id, empty, view })
    }

    async fn execute_change_set(
        &self,
        region: &str,
        stack: &str,
        change_set: &str,
    ) -> LiveResult<()> {
        let operation = format!("execute change set {change_set} of stack {stack}");
        let mut world = self.lock();
        world.admit(&operation)?;
        let done_ms = world.now_ms + world.settings.stack_seconds as i64 * 1000;
        let now = world.now_ms;
        let rollback = &world.faults.rollback_updates;
        let rolls_back = rollback.contains(stack) || rollback.contains("*");
        let s = world
            .region_mut(region)
            .stacks
            .get_mut(stack)
            .ok_or_else(|| not_found(operation.clone(), &format!("Stack [{stack}]")))?;
        let cs = s
            .change_sets
            .remove(change_set)
            .ok_or_else(|| not_found(operation.clone(), &format!("ChangeSet [{change_set}]")))?;
        if s.pending.is_some() {
            return Err(validation(
                operation,
                format!("Stack:{} is in {} state", s.id, s.status),
            ));
        }
        s.change_sets.clear();
        s.tags = cs.tags;
        let (status, operation) = match cs.kind {
            ChangeSetKind::Create => (
                "CREATE_IN_PROGRESS",
                Operation::Create {
                    template: cs.template,
                    parameters: cs.parameters,
                },
            ),
            ChangeSetKind::Update => (
                "UPDATE_IN_PROGRESS",
                Operation::Update {
                    template: cs.template,
                    parameters: cs.parameters,
                    rolls_back,
                },
            ),
        };
        s.status = status.into();
        s.events.push(event(now, stack, STACK_TYPE, status));
        s.pending = Some(Pending { done_ms, operation });
        world.mutated();
        Ok(())
    }

    async fn stack_events(
        &self,
        region: &str,
        stack: &str,
        limit: usize,
    ) -> LiveResult<Vec<StackEvent>> {
        let operation = format!("describe events of stack {stack}");
        let mut world = self.lock();
        world.admit(&operation)?;
        let s = world
            .regions
            .get(region)
            .and_then(|r| r.stacks.get(stack))
            .ok_or_else(|| not_found(operation, &format!("Stack [{stack}]")))?;
        Ok(s.events.iter().rev().take(limit).cloned().collect())
    }

    async fn delete_stack(&self, region: &str, stack: &str) -> LiveResult<()> {
        let mut world = self.lock();
        world.admit(&format!("delete stack {stack}"))?;
        let now = world.now_ms;
        let done_ms = now + world.settings.stack_seconds as i64 * 1000;
        if let Some(s) = world.region_mut(region).stacks.get_mut(stack)
            && !matches!(
                s.pending,
                Some(Pending {
                    operation: Operation::Delete,
                    ..
                })
            )
        {
            s.status = "DELETE_IN_PROGRESS".into();
            s.events
                .push(event(now, stack, STACK_TYPE, "DELETE_IN_PROGRESS"));
            s.pending = Some(Pending {
                done_ms,
                operation: Operation::Delete,
            });
        }
        world.mutated();
        Ok(())
    }

    async fn set_group_size(&self, region: &str, group: &str, size: &GroupSize) -> LiveResult<()> {
        let operation = format!("update Auto Scaling group {group}");
        let mut world = self.lock();
        world.admit(&operation)?;
        if !(0 <= size.min && size.min <= size.desired && size.desired <= size.max) {
            return Err(validation(
                operation,
                format!(
                    "Desired capacity:{} must be between the specified min size:{} and max size:{}",
                    size.desired, size.min, size.max
                ),
            ));
        }
        let g = world
            .region_mut(region)
            .groups
            .get_mut(group)
            .ok_or_else(|| not_found(operation, &format!("AutoScalingGroup name {group}")))?;
        g.min = size.min;
        g.max = size.max;
        g.desired = size.desired;
        world.mutated();
        Ok(())
    }

    async fn set_group_tags(
        &self,
        region: &str,
        group: &str,
        tags: &[(String, String)],
    ) -> LiveResult<()> {
        let operation = format!("tag Auto Scaling group {group}");
        let mut world = self.lock();
        world.admit(&operation)?;
        let g = world
            .region_mut(region)
            .groups
            .get_mut(group)
            .ok_or_else(|| not_found(operation, &format!("AutoScalingGroup name {group}")))?;
        for (key, value) in tags {
            super::set_tag(&mut g.tags, key, value);
        }
        world.mutated();
        Ok(())
    }

    async fn delete_group_tags(
        &self,
        region: &str,
        group: &str,
        keys: &[String],
    ) -> LiveResult<()> {
        let operation = format!("untag Auto Scaling group {group}");
        let mut world = self.lock();
        world.admit(&operation)?;
        let g = world
            .region_mut(region)
            .groups
            .get_mut(group)
            .ok_or_else(|| not_found(operation, &format!("AutoScalingGroup name {group}")))?;
        g.tags.retain(|(k, _)| !keys.contains(k));
        world.mutated();
        Ok(())
    }

    async fn terminate_instance(
        &self,
        region: &str,
        instance: &str,
        decrement: bool,
    ) -> LiveResult<()> {
        let operation = format!("terminate instance {instance}");
        let mut world = self.lock();
        world.admit(&operation)?;
        let group = world
            .regions
            .get(region)
            .and_then(|r| r.instances.get(instance))
            .filter(|i| !i.terminated)
            .map(|i| i.group.clone())
            .ok_or_else(|| {
                validation(
                    operation.clone(),
                    format!("Instance Id not found - No managed instance found for instance ID: {instance}"),
                )
            })?;
        if decrement {
            let g = world
                .region_mut(region)
                .groups
                .get_mut(&group)
                .ok_or_else(|| {
                    not_found(operation.clone(), &format!("AutoScalingGroup name {group}"))
                })?;
            if g.desired <= g.min {
                return Err(validation(
                    operation,
                    format!(
                        "Currently, desired capacity {} is at min size {}. Terminating instance without replacement will violate group's min size constraint.",
                        g.desired, g.min
                    ),
                ));
            }
            g.desired -= 1;
        }
        terminate(&mut world, region, instance);
        world.mutated();
        Ok(())
    }
}
