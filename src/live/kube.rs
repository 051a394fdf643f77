//! [`ClusterApi`] on kube: discovery of only the API groups a plan needs (one broken
//! aggregated API, say metrics-server, must not fail every plan), `DynamicObject` for
//! every kind, server-side apply with field manager `flotilla`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    Api, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_group};
use kube::{Client, Config};
use serde_json::Value;

use super::{
    ClusterApi, EvictionOutcome, LiveError, LiveResult, NodeState, NodeTaint, ObjectRef, PdbState,
    PodState, Selection, Timeouts, with_retries, within,
};

pub const FIELD_MANAGER: &str = "flotilla";

type Resources = Vec<(ApiResource, ApiCapabilities)>;

pub struct KubeCluster {
    client: Client,
    /// The resources of each discovered group version (`apps/v1`, `v1`), each queried
    /// at most once.
    group_versions: Mutex<HashMap<String, Resources>>,
    /// Kind → the API version that serves it, for deletions that name only a kind.
    kinds: Mutex<HashMap<String, Option<String>>>,
    timeouts: Timeouts,
}

/// How to reach one cluster's API server.
pub struct Endpoint {
    /// The cluster's `api_server_url`, or an override.
    pub url: String,
    /// A kubeconfig context for credentials (named after the cluster by default).
    pub context: Option<String>,
    /// The context was named explicitly, so it must exist.
    pub context_required: bool,
    pub timeouts: Timeouts,
}

impl KubeCluster {
    /// Connect to `endpoint`. With a kubeconfig context of that name, its credentials
    /// (and TLS settings) are used, and the endpoint URL still wins (for tunnels and
    /// port-forwards). Without one the connection is anonymous, unless the context was
    /// asked for explicitly (`--kube-context`): then its absence is an error.
    pub async fn connect(endpoint: &Endpoint) -> LiveResult<KubeCluster> {
        let url: http::Uri = endpoint.url.parse().map_err(|e| LiveError {
            operation: format!("connect to {}", endpoint.url),
            message: format!("not a URL: {e}"),
            retryable: false,
        })?;
        let from_kubeconfig = match (&endpoint.context, Kubeconfig::read()) {
            (Some(context), Ok(kubeconfig))
                if kubeconfig.contexts.iter().any(|c| &c.name == context) =>
            {
                let options = KubeConfigOptions {
                    context: Some(context.clone()),
                    ..Default::default()
                };
                Some(
                    Config::from_custom_kubeconfig(kubeconfig, &options)
                        .await
                        .map_err(|e| LiveError {
                            operation: format!("kubeconfig context {context}"),
                            message: e.to_string(),
                            retryable: false,
                        })?,
                )
            }
            (Some(context), kubeconfig) if endpoint.context_required => {
                let why = match kubeconfig {
                    Ok(_) => "the kubeconfig has no such context".to_string(),
                    Err(e) => format!("cannot read the kubeconfig: {e}"),
                };
                return Err(LiveError {
                    operation: format!("kubeconfig context {context}"),
                    message: why,
                    retryable: false,
                });
            }
            _ => None,
        };
        let mut config = from_kubeconfig.unwrap_or_else(|| Config::new(url.clone()));
        config.cluster_url = url;
        // kube's own retry layer waits up to 1,000 s between up to 15 attempts on 429,
        // 503 and 504: a plan would hang for many minutes on one broken API. Retries
        // are `with_retries`' job (a few attempts, backoff with jitter).
        config.default_retry = false;
        config.connect_timeout = Some(endpoint.timeouts.connect);
        config.read_timeout = Some(endpoint.timeouts.read);
        config.write_timeout = Some(endpoint.timeouts.read);
        let client = Client::try_from(config).map_err(|e| LiveError {
            operation: format!("connect to {}", endpoint.url),
            message: e.to_string(),
            retryable: false,
        })?;
        Ok(KubeCluster {
            client,
            group_versions: Mutex::new(HashMap::new()),
            kinds: Mutex::new(HashMap::new()),
            timeouts: endpoint.timeouts,
        })
    }

    /// One call: retried with backoff on retryable errors, all attempts within the
    /// call deadline.
    async fn call<T, F, Fut>(&self, operation: &str, op: F) -> LiveResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = LiveResult<T>>,
    {
        let retried = with_retries(ATTEMPTS, BASE, op);
        within(self.timeouts.call, "Kubernetes", operation, retried).await
    }

    /// The resources of one group version (`apps/v1`, or `v1` for core); `Ok(None)` when
    /// the server does not serve it.
    async fn group_version(&self, api_version: &str) -> LiveResult<Option<Resources>> {
        if let Some(resources) = self.lock_groups().get(api_version) {
            return Ok(Some(resources.clone()));
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gv = GroupVersion::gv(group, version);
        let operation = format!("API discovery of {api_version}");
        let queried = self
            .call(&operation, || async {
                match pinned_group(&self.client, &gv).await {
                    Ok(group) => Ok(Some(group.recommended_resources())),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
                    Err(e) => Err(failure(operation.clone(), e)),
                }
            })
            .await?;
        if let Some(resources) = &queried {
            self.lock_groups()
                .insert(api_version.to_string(), resources.clone());
        }
        Ok(queried)
    }

    fn lock_groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Resources>> {
        self.group_versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> LiveResult<(ApiResource, ApiCapabilities)> {
        let served = self
            .group_version(api_version)
            .await?
            .and_then(|resources| resources.into_iter().find(|(r, _)| r.kind == kind));
        served.ok_or_else(|| LiveError {
            operation: format!("find {api_version} {kind}"),
            message: "the API server does not serve this kind (is its CRD installed?)".into(),
            retryable: false,
        })
    }

    /// The API version serving `kind` in the first group that has it: core first, then
    /// the groups alphabetically, each at its preferred version, so the choice does not
    /// vary between runs. A group that cannot be read before the kind is found is an
    /// error: it might be the one that serves it.
    async fn version_of_kind(&self, kind: &str) -> LiveResult<Option<String>> {
        if let Some(known) = self
            .kinds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(kind)
        {
            return Ok(known.clone());
        }
        let groups = self
            .call("API discovery", || async {
                self.client
                    .list_api_groups()
                    .await
                    .map_err(|e| failure("API discovery".into(), e))
            })
            .await?;
        let mut candidates = vec!["v1".to_string()];
        let mut named: Vec<_> = groups
            .groups
            .iter()
            .filter_map(|g| {
                let version = g.preferred_version.as_ref().or(g.versions.first())?;
                Some((g.name.clone(), version.group_version.clone()))
            })
            .collect();
        named.sort();
        candidates.extend(named.into_iter().map(|(_, gv)| gv));
        let mut found = None;
        for api_version in candidates {
            let served = self.group_version(&api_version).await?;
            if served.is_some_and(|resources| resources.iter().any(|(r, _)| r.kind == kind)) {
                found = Some(api_version);
                break;
            }
        }
        self.kinds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(kind.to_string(), found.clone());
        Ok(found)
    }

    /// An object's identity and the API serving it.
    async fn api_of(
        &self,
        object: &Value,
        verb: &str,
    ) -> LiveResult<(ObjectRef, Api<DynamicObject>)> {
        let reference = ObjectRef::of(object).ok_or_else(|| LiveError {
            operation: verb.to_string(),
            message: "object without apiVersion, kind or metadata.name".into(),
            retryable: false,
        })?;
        let api = self
            .api(
                &reference.api_version,
                &reference.kind,
                reference.namespace.as_deref(),
            )
            .await?;
        Ok((reference, api))
    }

    async fn api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> LiveResult<Api<DynamicObject>> {
        let (resource, caps) = self.resource(api_version, kind).await?;
        Ok(match (caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            (Scope::Namespaced, None) => {
                Api::default_namespaced_with(self.client.clone(), &resource)
            }
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &resource),
        })
    }
}

fn failure(operation: String, err: kube::Error) -> LiveError {
    let retryable = match &err {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    };
    LiveError {
        operation,
        message: error_chain(&err),
        retryable,
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

fn to_value(object: DynamicObject, api_version: &str, kind: &str) -> LiveResult<Value> {
    let mut value = serde_json::to_value(object).map_err(|e| LiveError {
        operation: format!("read {api_version} {kind}"),
        message: e.to_string(),
        retryable: false,
    })?;
    // DynamicObject leaves apiVersion/kind empty on list items.
    value["apiVersion"] = Value::String(api_version.to_string());
    value["kind"] = Value::String(kind.to_string());
    Ok(value)
}

const ATTEMPTS: u32 = 5;
const BASE: Duration = Duration::from_millis(200);

#[async_trait]
impl ClusterApi for KubeCluster {
    async fn get(&self, object: &ObjectRef) -> LiveResult<Option<Value>> {
        let api = self
            .api(
                &object.api_version,
                &object.kind,
                object.namespace.as_deref(),
            )
            .await?;
        let operation = format!("GET {object}");
        let found = self
            .call(&operation, || async {
                match api.get(&object.name).await {
                    Ok(o) => Ok(Some(o)),
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(failure(operation.clone(), e)),
                }
            })
            .await?;
        found
            .map(|o| to_value(o, &object.api_version, &object.kind))
            .transpose()
    }

    async fn dry_run_apply(&self, object: &Value) -> LiveResult<Value> {
        let (reference, api) = self.api_of(object, "dry-run apply").await?;
        let params = PatchParams::apply(FIELD_MANAGER).dry_run();
        let operation = format!("dry-run apply {reference}");
        let applied = self
            .call(&operation, || async {
                api.patch(&reference.name, &params, &Patch::Apply(object))
                    .await
                    .map_err(|e| failure(operation.clone(), e))
            })
            .await?;
        to_value(applied, &reference.api_version, &reference.kind)
    }

    async fn find(
        &self,
        kind: &str,
        namespace: Option<&str>,
        selection: &Selection,
    ) -> LiveResult<Vec<Value>> {
        let Some(api_version) = self.version_of_kind(kind).await? else {
            // The API does not serve the kind, so no object of it can exist.
            return Ok(Vec::new());
        };
        let api_version = api_version.as_str();
        let api = self.api(api_version, kind, namespace).await?;
        match selection {
            Selection::Name(name) => {
                let reference = ObjectRef {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    namespace: namespace.map(str::to_string),
                    name: name.clone(),
                };
                Ok(self.get(&reference).await?.into_iter().collect())
            }
            Selection::Labels(selector) => {
                let operation = format!("LIST {kind} {selector}");
                let list = self
                    .call(&operation, || async {
                        api.list(&ListParams::default().labels(selector))
                            .await
                            .map_err(|e| failure(operation.clone(), e))
                    })
                    .await?;
                list.items
                    .into_iter()
                    .map(|o| to_value(o, api_version, kind))
                    .collect()
            }
        }
    }

    async fn nodes(&self, label_selector: &str) -> LiveResult<Vec<Arc<NodeState>>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let operation = format!("LIST nodes {label_selector}");
        let list = self
            .call(&operation, || async {
                api.list(&ListParams::default().labels(label_selector))
                    .await
                    .map_err(|e| failure(operation.clone(), e))
            })
            .await?;
        let mut nodes: Vec<NodeState> = list.items.into_iter().map(node_state).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes.into_iter().map(Arc::new).collect())
    }

    async fn apply(&self, object: &Value, force: bool) -> LiveResult<Value> {
        let (reference, api) = self.api_of(object, "server-side apply").await?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if force {
            params = params.force();
        }
        let operation = format!("apply {reference}");
        let applied = self
            .call(&operation, || async {
                api.patch(&reference.name, &params, &Patch::Apply(object))
                    .await
                    .map_err(|e| match &e {
                        kube::Error::Api(status) if status.code == 409 => LiveError {
                            operation: operation.clone(),
                            message: conflict_message(status),
                            retryable: false,
                        },
                        _ => failure(operation.clone(), e),
                    })
            })
            .await?;
        to_value(applied, &reference.api_version, &reference.kind)
    }

    async fn create(&self, object: &Value) -> LiveResult<Option<Value>> {
        let (reference, api) = self.api_of(object, "create").await?;
        let operation = format!("create {reference}");
        let body = dynamic(object, &operation)?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let created = self
            .call(&operation, || async {
                match api.create(&params, &body).await {
                    Ok(o) => Ok(Some(o)),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
                    Err(e) => Err(failure(operation.clone(), e)),
                }
            })
            .await?;
        created
            .map(|o| to_value(o, &reference.api_version, &reference.kind))
            .transpose()
    }

    async fn replace(&self, object: &Value) -> LiveResult<Option<Value>> {
        let (reference, api) = self.api_of(object, "replace").await?;
        let operation = format!("replace {reference}");
        if object.pointer("/metadata/resourceVersion").is_none() {
            return Err(LiveError {
                operation,
                message: "no metadata.resourceVersion: a replace must name the version it replaces"
                    .into(),
                retryable: false,
            });
        }
        let body = dynamic(object, &operation)?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let replaced = self
            .call(&operation, || async {
                match api.replace(&reference.name, &params, &body).await {
                    Ok(o) => Ok(Some(o)),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
                    Err(e) => Err(failure(operation.clone(), e)),
                }
            })
            .await?;
        replaced
            .map(|o| to_value(o, &reference.api_version, &reference.kind))
            .transpose()
    }

    async fn delete(
        &self,
        object: &ObjectRef,
        propagation_policy: Option<&str>,
        grace_period_seconds: Option<i64>,
    ) -> LiveResult<bool> {
        let operation = format!("DELETE {object}");
        let invalid = |message: String| LiveError {
            operation: operation.clone(),
            message,
            retryable: false,
        };
        let propagation_policy = propagation_policy
            .map(|policy| match policy {
                "Orphan" => Ok(PropagationPolicy::Orphan),
                "Background" => Ok(PropagationPolicy::Background),
                "Foreground" => Ok(PropagationPolicy::Foreground),
                other => Err(invalid(format!(
                    "propagation policy `{other}` is not Orphan, Background or Foreground"
                ))),
            })
            .transpose()?;
        let grace_period_seconds = grace_period_seconds
            .map(|s| {
                u32::try_from(s).map_err(|_| invalid(format!("grace period {s} s is out of range")))
            })
            .transpose()?;
        let params = DeleteParams {
            propagation_policy,
            grace_period_seconds,
            ..DeleteParams::default()
        };
        let api = self
            .api(
                &object.api_version,
                &object.kind,
                object.namespace.as_deref(),
            )
            .await?;
        self.call(&operation, || async {
            match api.delete(&object.name, &params).await {
                Ok(_) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(failure(operation.clone(), e)),
            }
        })
        .await
    }

    async fn patch_node(&self, name: &str, patch: &Value) -> LiveResult<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let operation = format!("patch node {name}");
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        self.call(&operation, || async {
            api.patch(name, &params, &Patch::Merge(patch))
                .await
                .map_err(|e| failure(operation.clone(), e))
        })
        .await?;
        Ok(())
    }

    async fn pods_on_node(&self, node: &str) -> LiveResult<Vec<PodState>> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let operation = format!("LIST pods on node {node}");
        let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let list = self
            .call(&operation, || async {
                api.list(&params)
                    .await
                    .map_err(|e| failure(operation.clone(), e))
            })
            .await?;
        Ok(list.items.into_iter().map(pod_state).collect())
    }

    async fn pdbs(&self) -> LiveResult<Vec<PdbState>> {
        let api: Api<PodDisruptionBudget> = Api::all(self.client.clone());
        let operation = "LIST poddisruptionbudgets";
        let list = self
            .call(operation, || async {
                api.list(&ListParams::default())
                    .await
                    .map_err(|e| failure(operation.into(), e))
            })
            .await?;
        Ok(list.items.into_iter().map(pdb_state).collect())
    }

    async fn evict(&self, namespace: &str, pod: &str) -> LiveResult<EvictionOutcome> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let operation = format!("evict pod {namespace}/{pod}");
        // A 429 is the budget's answer, not throttling: it goes back to the caller,
        // whose backoff decides when to ask again.
        self.call(&operation, || async {
            match api.evict(pod, &EvictParams::default()).await {
                Ok(_) => Ok(EvictionOutcome::Evicted),
                Err(kube::Error::Api(status)) if status.code == 429 => {
                    Ok(EvictionOutcome::Blocked(status.message.clone()))
                }
                Err(e) if is_not_found(&e) => Ok(EvictionOutcome::Gone),
                Err(e) => Err(failure(operation.clone(), e)),
            }
        })
        .await
    }

    async fn delete_pod(&self, namespace: &str, pod: &str) -> LiveResult<bool> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let operation = format!("DELETE pod {namespace}/{pod}");
        self.call(&operation, || async {
            match api.delete(pod, &DeleteParams::default()).await {
                Ok(_) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(failure(operation.clone(), e)),
            }
        })
        .await
    }
}

fn node_state(node: Node) -> NodeState {
    let meta = node.metadata;
    let spec = node.spec.unwrap_or_default();
    let conditions = node.status.and_then(|s| s.conditions).unwrap_or_default();
    NodeState {
        name: meta.name.unwrap_or_default(),
        labels: meta.labels.unwrap_or_default(),
        annotations: meta.annotations.unwrap_or_default(),
        taints: spec
            .taints
            .unwrap_or_default()
            .into_iter()
            .map(|t| NodeTaint {
                key: t.key,
                value: t.value,
                effect: t.effect,
            })
            .collect(),
        ready: condition_true(conditions.iter().map(|c| (&c.type_, &c.status)), "Ready"),
        unschedulable: spec.unschedulable.unwrap_or(false),
        provider_id: spec.provider_id.unwrap_or_default(),
        created: meta
            .creation_timestamp
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    }
}

/// A 409 from server-side apply: which fields, owned by which managers.
fn conflict_message(status: &kube::core::Status) -> String {
    let causes: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .map(|c| match c.field.as_str() {
            "" => c.message.clone(),
            field => format!("{field} ({})", c.message),
        })
        .collect();
    let what = match causes.as_slice() {
        [] => status.message.clone(),
        causes => format!("fields owned by other managers: {}", causes.join("; ")),
    };
    format!("{what}; apply with force to take them over")
}

/// An object as kube's dynamic type, for create and replace.
fn dynamic(object: &Value, operation: &str) -> LiveResult<DynamicObject> {
    serde_json::from_value(object.clone()).map_err(|e| LiveError {
        operation: operation.to_string(),
        message: format!("not a Kubernetes object: {e}"),
        retryable: false,
    })
}

fn pod_state(pod: Pod) -> PodState {
    let meta = pod.metadata;
    let status = pod.status.unwrap_or_default();
    let annotations = meta.annotations.unwrap_or_default();
    let phase = status.phase.unwrap_or_default();
    PodState {
        namespace: meta.namespace.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        node: pod.spec.and_then(|s| s.node_name).unwrap_or_default(),
        labels: meta.labels.unwrap_or_default(),
        owner_kind: meta
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| o.kind),
        mirror: annotations.contains_key("kubernetes.io/config.mirror"),
        ready: condition_true(
            status
                .conditions
                .iter()
                .flatten()
                .map(|c| (&c.type_, &c.status)),
            "Ready",
        ),
        finished: phase == "Succeeded" || phase == "Failed",
        created: meta
            .creation_timestamp
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    }
}

fn pdb_state(pdb: PodDisruptionBudget) -> PdbState {
    let status = pdb.status.unwrap_or_default();
    PdbState {
        namespace: pdb.metadata.namespace.unwrap_or_default(),
        name: pdb.metadata.name.unwrap_or_default(),
        match_labels: pdb
            .spec
            .and_then(|s| s.selector)
            .and_then(|s| s.match_labels)
            .unwrap_or_default(),
        disruptions_allowed: status.disruptions_allowed,
        current_healthy: status.current_healthy,
        desired_healthy: status.desired_healthy,
        expected_pods: status.expected_pods,
    }
}

fn condition_true<'a>(
    mut conditions: impl Iterator<Item = (&'a String, &'a String)>,
    kind: &str,
) -> bool {
    conditions.any(|(t, s)| t == kind && s == "True")
}
