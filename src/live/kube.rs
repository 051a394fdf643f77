//! [`ClusterApi`] on kube: discovery of only the API groups a plan needs (one broken
//! aggregated API, say metrics-server, must not fail every plan), `DynamicObject` for
//! every kind, server-side apply with field manager `flotilla`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_group};
use kube::{Client, Config};
use serde_json::Value;

use super::{ClusterApi, LiveError, LiveResult, NodeState, ObjectRef, Selection, with_retries};

pub const FIELD_MANAGER: &str = "flotilla";

type Resources = Vec<(ApiResource, ApiCapabilities)>;

pub struct KubeCluster {
    client: Client,
    /// The resources of each discovered group version (`apps/v1`, `v1`), each queried
    /// at most once.
    group_versions: Mutex<HashMap<String, Resources>>,
    /// Kind → the API version that serves it, for deletions that name only a kind.
    kinds: Mutex<HashMap<String, Option<String>>>,
}

/// How to reach one cluster's API server.
pub struct Endpoint {
    /// The cluster's `api_server_url`, or an override.
    pub url: String,
    /// A kubeconfig context for credentials (named after the cluster by default).
    pub context: Option<String>,
    /// The context was named explicitly, so it must exist.
    pub context_required: bool,
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
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(30));
        let client = Client::try_from(config).map_err(|e| LiveError {
            operation: format!("connect to {}", endpoint.url),
            message: e.to_string(),
            retryable: false,
        })?;
        Ok(KubeCluster {
            client,
            group_versions: Mutex::new(HashMap::new()),
            kinds: Mutex::new(HashMap::new()),
        })
    }

    /// The resources of one group version (`apps/v1`, or `v1` for core); `Ok(None)` when
    /// the server does not serve it.
    async fn group_version(&self, api_version: &str) -> LiveResult<Option<Resources>> {
        if let Some(resources) = self.lock_groups().get(api_version) {
            return Ok(Some(resources.clone()));
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gv = GroupVersion::gv(group, version);
        let queried = with_retries(4, Duration::from_millis(200), || async {
            match pinned_group(&self.client, &gv).await {
                Ok(group) => Ok(Some(group.recommended_resources())),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
                Err(e) => Err(failure(format!("API discovery of {api_version}"), e)),
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
        let groups = with_retries(4, Duration::from_millis(200), || async {
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
        let found = with_retries(ATTEMPTS, BASE, || async {
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
        let reference = ObjectRef::of(object).ok_or_else(|| LiveError {
            operation: "server-side apply".into(),
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
        let params = PatchParams::apply(FIELD_MANAGER).dry_run();
        let operation = format!("dry-run apply {reference}");
        let applied = with_retries(ATTEMPTS, BASE, || async {
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
                let list = with_retries(ATTEMPTS, BASE, || async {
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

    async fn nodes(&self, label_selector: &str) -> LiveResult<Vec<NodeState>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let operation = format!("LIST nodes {label_selector}");
        let list = with_retries(ATTEMPTS, BASE, || async {
            api.list(&ListParams::default().labels(label_selector))
                .await
                .map_err(|e| failure(operation.clone(), e))
        })
        .await?;
        let mut nodes: Vec<NodeState> = list
            .items
            .into_iter()
            .map(|n| {
                let ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                NodeState {
                    name: n.metadata.name.clone().unwrap_or_default(),
                    labels: n.metadata.labels.clone().unwrap_or_default(),
                    ready,
                    unschedulable: n
                        .spec
                        .as_ref()
                        .and_then(|s| s.unschedulable)
                        .unwrap_or(false),
                    ..Default::default()
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    // Apply is not wired to this backend yet.
    async fn apply(&self, _: &Value, _: bool) -> LiveResult<Value> {
        Err(crate::live::unsupported("apply"))
    }
    async fn create(&self, _: &Value) -> LiveResult<Option<Value>> {
        Err(crate::live::unsupported("create"))
    }
    async fn replace(&self, _: &Value) -> LiveResult<Option<Value>> {
        Err(crate::live::unsupported("replace"))
    }
    async fn delete(&self, _: &ObjectRef, _: Option<&str>, _: Option<i64>) -> LiveResult<bool> {
        Err(crate::live::unsupported("delete"))
    }
    async fn patch_node(&self, _: &str, _: &Value) -> LiveResult<()> {
        Err(crate::live::unsupported("patch_node"))
    }
    async fn pods_on_node(&self, _: &str) -> LiveResult<Vec<crate::live::PodState>> {
        Err(crate::live::unsupported("pods_on_node"))
    }
    async fn pdbs(&self) -> LiveResult<Vec<crate::live::PdbState>> {
        Err(crate::live::unsupported("pdbs"))
    }
    async fn evict(&self, _: &str, _: &str) -> LiveResult<crate::live::EvictionOutcome> {
        Err(crate::live::unsupported("evict"))
    }
    async fn delete_pod(&self, _: &str, _: &str) -> LiveResult<bool> {
        Err(crate::live::unsupported("delete_pod"))
    }
}
