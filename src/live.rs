//! Live state: the two doors to the outside world. [`Cloud`] is CloudFormation, Auto
//! Scaling and EC2; [`ClusterApi`] is one cluster's Kubernetes API. Real
//! implementations use the AWS SDK and kube; tests point them at moto and a loopback
//! API server.
//!
//! The rule that keeps reads safe: an answer of "absent" (`Ok(None)`, an empty list)
//! is only ever produced from a definite "not found" from the API. Timeouts,
//! throttling, 5xx and access denied are errors, never absence.

pub mod account;
pub mod aws;
pub mod kube;
pub mod template;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A failed call to AWS or Kubernetes, after retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveError {
    /// What was being done (`describe stack foo`, `GET apps/v1 Deployment kube-system/x`).
    pub operation: String,
    pub message: String,
    /// Throttling, 5xx or a connection problem: worth retrying.
    pub retryable: bool,
}

impl std::fmt::Display for LiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

impl std::error::Error for LiveError {}

pub type LiveResult<T> = Result<T, LiveError>;

/// A call this backend does not offer yet.
pub fn unsupported(operation: &str) -> LiveError {
    LiveError {
        operation: operation.to_string(),
        message: "not supported by this backend yet".to_string(),
        retryable: false,
    }
}

/// How long flotilla waits for AWS and Kubernetes. Every call has a connect and a read
/// timeout per attempt and an overall deadline that covers its retries; every wait (a
/// change set becoming ready, a stack settling) has its own deadline. The defaults fail
/// a plan against a silent endpoint within two minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Per attempt: sending the request and reading the whole answer.
    pub read: Duration,
    /// One call, all attempts and backoff included.
    pub call: Duration,
    /// One wait for the outside world to settle.
    pub wait: Duration,
}

impl Timeouts {
    /// Calls bounded by `call` (connect and read no longer than it), waits by the default
    /// or by `call` if that is longer.
    pub fn with_call_deadline(call: Duration) -> Timeouts {
        let defaults = Timeouts::default();
        Timeouts {
            connect: defaults.connect.min(call),
            read: defaults.read.min(call),
            call,
            wait: defaults.wait.max(call),
        }
    }
}

impl Timeouts {
    /// From a `--timeout SECONDS` flag: the call deadline when given, else the defaults.
    pub fn from_seconds(call: Option<u64>) -> Timeouts {
        call.map(|s| Timeouts::with_call_deadline(Duration::from_secs(s)))
            .unwrap_or_default()
    }
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(30),
            call: Duration::from_secs(60),
            wait: Duration::from_secs(30 * 60),
        }
    }
}

/// Seconds of a duration for messages ("within 30 s"), rounded up so a sub-second
/// bound never reads as 0.
pub fn seconds(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

/// Run one call under `deadline`; when it passes, the call fails as "`service` did not
/// answer" (retryable: the endpoint may come back).
pub async fn within<T>(
    deadline: Duration,
    service: &str,
    operation: &str,
    call: impl Future<Output = LiveResult<T>>,
) -> LiveResult<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(LiveError {
            operation: operation.to_string(),
            message: format!("{service} did not answer within {} s", seconds(deadline)),
            retryable: true,
        }),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackState {
    pub name: String,
    pub id: String,
    pub status: String,
    /// Last update (or creation) time, RFC 3339; part of the plan's fingerprint.
    pub last_updated: String,
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// CloudFormation's own view of an update, from a change set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSetView {
    pub changes: Vec<ResourceChange>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub logical_id: String,
    pub resource_type: String,
    /// Add, Modify, Remove, Import, Dynamic.
    pub action: String,
    /// True, False or Conditional (for Modify).
    pub replacement: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoScalingGroupState {
    pub name: String,
    pub min_size: i32,
    pub max_size: i32,
    pub desired_capacity: i32,
    pub tags: Vec<(String, String)>,
    pub instances: Vec<GroupInstance>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupInstance {
    pub id: String,
    pub availability_zone: String,
    pub lifecycle_state: String,
    pub health_status: String,
    pub launch_template_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    pub id: String,
    pub state: String,
    pub availability_zone: String,
}

/// A parameter value for a stack update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ParameterValue {
    UsePrevious,
    Value(String),
}

/// CloudFormation, Auto Scaling and EC2 in one region-aware handle.
#[async_trait]
pub trait Cloud: Send + Sync {
    /// `Ok(None)` only when CloudFormation says the stack does not exist.
    async fn describe_stack(&self, region: &str, name: &str) -> LiveResult<Option<StackState>>;
    /// The stack's current template as JSON.
    async fn get_template(&self, region: &str, name: &str) -> LiveResult<Value>;
    /// Create an UPDATE change set, wait for it, return its changes, delete it again.
    /// An update that changes nothing returns an empty view.
    async fn preview_update(
        &self,
        region: &str,
        name: &str,
        template: &TemplateSource,
        parameters: &[(String, ParameterValue)],
    ) -> LiveResult<ChangeSetView>;
    /// Auto Scaling groups tagged `flotilla.io/cluster=<cluster>`, with their instances.
    async fn auto_scaling_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<AutoScalingGroupState>>;
    async fn instances(&self, region: &str, ids: &[String]) -> LiveResult<Vec<InstanceState>>;

    // ---- Writes and the account guard (apply). ----

    /// The AWS account the caller's credentials belong to (STS GetCallerIdentity).
    async fn caller_account(&self, region: &str) -> LiveResult<String>;
    /// Store a template too large to send inline as object `key` of `bucket` (S3
    /// PutObject), where a change set's [`TemplateSource::Url`] then reads it.
    async fn put_template(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: &str,
    ) -> LiveResult<()>;
    /// Create a change set of `kind` (always passed explicitly), wait until it is
    /// ready and return it. A change set that contains no changes is deleted again and
    /// returned with `empty = true`.
    async fn create_change_set(
        &self,
        region: &str,
        request: &ChangeSetRequest,
    ) -> LiveResult<PreparedChangeSet>;
    /// Start executing a ready change set; the caller waits on [`Cloud::describe_stack`].
    async fn execute_change_set(
        &self,
        region: &str,
        stack: &str,
        change_set: &str,
    ) -> LiveResult<()>;
    /// The newest events of a stack, newest first, at most `limit`.
    async fn stack_events(
        &self,
        region: &str,
        stack: &str,
        limit: usize,
    ) -> LiveResult<Vec<StackEvent>>;
    /// Start deleting a stack; the caller waits on [`Cloud::describe_stack`].
    async fn delete_stack(&self, region: &str, stack: &str) -> LiveResult<()>;
    /// Set an Auto Scaling group's sizes (UpdateAutoScalingGroup).
    async fn set_group_size(&self, region: &str, group: &str, size: &GroupSize) -> LiveResult<()>;
    /// Create or overwrite tags on an Auto Scaling group (not propagated at launch).
    async fn set_group_tags(
        &self,
        region: &str,
        group: &str,
        tags: &[(String, String)],
    ) -> LiveResult<()>;
    /// Remove tags from an Auto Scaling group.
    async fn delete_group_tags(&self, region: &str, group: &str, keys: &[String])
    -> LiveResult<()>;
    /// Terminate one instance through its group, decrementing desired capacity when
    /// `decrement` (TerminateInstanceInAutoScalingGroup).
    async fn terminate_instance(
        &self,
        region: &str,
        instance: &str,
        decrement: bool,
    ) -> LiveResult<()>;
    /// Stack parameter values found by tag in the account: the network resources tagged
    /// `flotilla.io/cluster=<cluster>` (`VpcId`, `SubnetIds`, `PublicSubnetIds`), so
    /// stacks get them without prompts. Backends that cannot look them up say so.
    async fn tagged_parameters(
        &self,
        _region: &str,
        _cluster: &str,
    ) -> LiveResult<Vec<(String, String)>> {
        Err(unsupported("look up the cluster's network by tag"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSetKind {
    Create,
    Update,
}

/// A template as a change set takes it (see [`template::template_source`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TemplateSource {
    /// The body itself (JSON), at most [`template::INLINE_TEMPLATE_LIMIT`] bytes.
    Body(String),
    /// The `https://` S3 URL of an uploaded copy, for larger bodies.
    Url(String),
}

impl TemplateSource {
    /// The body or the URL: what names this template in a change set's name.
    pub fn text(&self) -> &str {
        match self {
            TemplateSource::Body(text) | TemplateSource::Url(text) => text,
        }
    }
}

/// Everything a change set for one stack needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeSetRequest {
    pub stack: String,
    pub kind: ChangeSetKind,
    pub template: TemplateSource,
    pub parameters: Vec<(String, ParameterValue)>,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreparedChangeSet {
    /// Change set name or ARN, for [`Cloud::execute_change_set`].
    pub id: String,
    pub empty: bool,
    pub view: ChangeSetView,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackEvent {
    /// RFC 3339.
    pub timestamp: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSize {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
}

/// Identity of a Kubernetes object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn of(object: &Value) -> Option<ObjectRef> {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        Some(ObjectRef {
            api_version: s(object.get("apiVersion"))?,
            kind: s(object.get("kind"))?,
            namespace: s(object.pointer("/metadata/namespace")),
            name: s(object.pointer("/metadata/name"))?,
        })
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub taints: Vec<NodeTaint>,
    pub ready: bool,
    pub unschedulable: bool,
    /// `aws:///<zone>/<instance-id>`; empty when the kubelet has not set it.
    pub provider_id: String,
    /// RFC 3339.
    pub created: String,
}

impl NodeState {
    /// The EC2 instance id from the provider id.
    pub fn instance_id(&self) -> Option<&str> {
        self.provider_id
            .rsplit('/')
            .next()
            .filter(|id| id.starts_with("i-"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTaint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

/// A pod, as much as draining needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Kind of the controlling owner (`ReplicaSet`, `StatefulSet`, `DaemonSet`, `Node`
    /// for mirror pods …), if any.
    pub owner_kind: Option<String>,
    /// Carries `kubernetes.io/config.mirror`: a static pod the kubelet manages.
    pub mirror: bool,
    pub ready: bool,
    /// Succeeded or Failed: nothing left to evict.
    pub finished: bool,
    /// RFC 3339.
    pub created: String,
}

/// A PodDisruptionBudget and what its status allows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PdbState {
    pub namespace: String,
    pub name: String,
    /// `spec.selector.matchLabels` (matchExpressions are not followed: such a PDB is
    /// treated as covering no pod for the forced-deletion check, never bypassed by
    /// eviction, which the API server judges).
    pub match_labels: std::collections::BTreeMap<String, String>,
    pub disruptions_allowed: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
}

/// What the Eviction API answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvictionOutcome {
    /// 200/201: the pod is being deleted.
    Evicted,
    /// 429: a PodDisruptionBudget does not allow it now; retry later.
    Blocked(String),
    /// 404: the pod is already gone.
    Gone,
}

/// How to find objects named in a deletions entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    Name(String),
    Labels(String),
}

/// One cluster's Kubernetes API.
#[async_trait]
pub trait ClusterApi: Send + Sync {
    /// `Ok(None)` only on a 404 from the API server.
    async fn get(&self, object: &ObjectRef) -> LiveResult<Option<Value>>;
    /// Server-side apply with field manager `flotilla` and `dryRun=All`: the object as
    /// it would be after applying.
    async fn dry_run_apply(&self, object: &Value) -> LiveResult<Value>;
    /// Objects of a kind (resolved through discovery, as deletion lists name only the
    /// kind) in a namespace or cluster-wide, matching a selection.
    async fn find(
        &self,
        kind: &str,
        namespace: Option<&str>,
        selection: &Selection,
    ) -> LiveResult<Vec<Value>>;
    /// Shared, not copied: the rolling engine looks at every node of a pool at each
    /// step, and a client that keeps its nodes (the simulator) hands out references.
    async fn nodes(&self, label_selector: &str) -> LiveResult<Vec<Arc<NodeState>>>;

    // ---- Writes (apply). ----

    /// Server-side apply with field manager `flotilla`; `force` takes ownership of
    /// fields other managers own. A conflict is an error naming the fields and managers.
    async fn apply(&self, object: &Value, force: bool) -> LiveResult<Value>;
    /// Create an object; `Ok(None)` when it already exists (409).
    async fn create(&self, object: &Value) -> LiveResult<Option<Value>>;
    /// Replace an object whose `metadata.resourceVersion` is set; `Ok(None)` when the
    /// object changed since (409): compare-and-swap, for locks and blocks.
    async fn replace(&self, object: &Value) -> LiveResult<Option<Value>>;
    /// Delete an object; `Ok(false)` when it was already gone.
    async fn delete(
        &self,
        object: &ObjectRef,
        propagation_policy: Option<&str>,
        grace_period_seconds: Option<i64>,
    ) -> LiveResult<bool>;
    /// JSON merge patch of a node (labels, annotations, taints, unschedulable).
    async fn patch_node(&self, name: &str, patch: &Value) -> LiveResult<()>;
    /// Pods scheduled on a node.
    async fn pods_on_node(&self, node: &str) -> LiveResult<Vec<PodState>>;
    /// Every PodDisruptionBudget of the cluster.
    async fn pdbs(&self) -> LiveResult<Vec<PdbState>>;
    /// Evict a pod through the Eviction API.
    async fn evict(&self, namespace: &str, pod: &str) -> LiveResult<EvictionOutcome>;
    /// Delete a pod directly, bypassing PodDisruptionBudgets (forced drain only).
    async fn delete_pod(&self, namespace: &str, pod: &str) -> LiveResult<bool>;
}

/// Time for everything that waits: the real clock, or the simulator's virtual one
/// (where sleeping advances the simulated world instead of the process).
#[async_trait]
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    async fn sleep(&self, duration: Duration);
}

/// The process's own clock.
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Retry `op` on retryable errors with exponential backoff and full jitter.
pub async fn with_retries<T, F, Fut>(attempts: u32, base: Duration, mut op: F) -> LiveResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = LiveResult<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.retryable && attempt + 1 < attempts => {
                let cap = base.saturating_mul(1 << attempt.min(10));
                let wait = rand::random_range(0..=cap.as_millis() as u64);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}
