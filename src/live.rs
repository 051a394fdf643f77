//! Live state: the two doors to the outside world. [`Cloud`] is CloudFormation, Auto
//! Scaling and EC2; [`ClusterApi`] is one cluster's Kubernetes API. Real
//! implementations use the AWS SDK and kube; tests point them at moto and a loopback
//! API server.
//!
//! The rule that keeps reads safe: an answer of "absent" (`Ok(None)`, an empty list)
//! is only ever produced from a definite "not found" from the API. Timeouts,
//! throttling, 5xx and access denied are errors, never absence.

pub mod aws;
pub mod kube;

use std::future::Future;
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

pub type LiveResult<T> = Result<T, LiveError>;

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
        template: &str,
        parameters: &[(String, ParameterValue)],
    ) -> LiveResult<ChangeSetView>;
    /// Auto Scaling groups tagged `flotilla.io/cluster=<cluster>`, with their instances.
    async fn auto_scaling_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<AutoScalingGroupState>>;
    async fn instances(&self, region: &str, ids: &[String]) -> LiveResult<Vec<InstanceState>>;
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub ready: bool,
    pub unschedulable: bool,
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
    async fn nodes(&self, label_selector: &str) -> LiveResult<Vec<NodeState>>;
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
