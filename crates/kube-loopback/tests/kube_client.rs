//! The real kube client (kube 5, k8s-openapi 0.29) against the loopback API server.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, EvictParams, GroupVersionKind, ListParams,
    Patch, PatchParams, PostParams,
};
use kube::core::response::Status;
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt};
use kube_loopback::{Failure, LoopbackApi, ResourceType};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn started() -> (LoopbackApi, Client) {
    let server = LoopbackApi::start().expect("server starts");
    let client = server.client().expect("client builds");
    (server, client)
}

/// The `Status` of an API error, or a panic naming what came back instead.
fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": data,
    }))
    .expect("valid ConfigMap")
}

fn config_map_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
}

fn dynamic_config_map(name: &str, data: Value) -> DynamicObject {
    DynamicObject::new(name, &config_map_resource())
        .within("default")
        .data(json!({ "data": data }))
}

fn pod(name: &str, labels: Value, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}
        ]},
    })
}

/// A raw request through kube's client, for what kube's typed API does not send.
async fn raw(
    client: &Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &str,
) -> Result<Value, kube::Error> {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("Content-Type", content_type)
        .body(body.as_bytes().to_vec())
        .expect("valid request");
    client.request::<Value>(request).await
}

#[tokio::test]
async fn discovery_finds_builtin_resources_and_subresources() -> TestResult {
    let (_server, client) = started();
    let version = client.apiserver_version().await?;
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "35")
    );

    let discovery = Discovery::new(client.clone()).run().await?;
    let (deployments, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("deployments are discovered");
    assert_eq!(deployments.plural, "deployments");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.supports_operation(verbs::PATCH));
    let (_, pod_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
        .expect("pods are discovered");
    let subresources: Vec<&str> = pod_caps
        .subresources
        .iter()
        .map(|(r, _)| r.plural.as_str())
        .collect();
    assert_eq!(subresources, ["status", "eviction"]);
    let (nodes, node_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Node"))
        .expect("nodes are discovered");
    assert_eq!(
        (nodes.plural.as_str(), node_caps.scope),
        ("nodes", Scope::Cluster)
    );
    for group in [
        "apps",
        "batch",
        "policy",
        "rbac.authorization.k8s.io",
        "scheduling.k8s.io",
        "networking.k8s.io",
        "storage.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "coordination.k8s.io",
        "autoscaling",
    ] {
        assert!(discovery.has_group(group), "{group} is served");
    }
    Ok(())
}

#[tokio::test]
async fn aggregated_discovery_serves_the_same_resources() -> TestResult {
    let (_server, client) = started();
    let legacy = Discovery::new(client.clone()).run().await?;
    let aggregated = Discovery::new(client).run_aggregated().await?;
    let names = |d: &Discovery| -> Vec<String> {
        let mut names: Vec<String> = d
            .groups()
            .flat_map(|g| g.recommended_resources())
            .map(|(r, _)| format!("{}/{}", r.api_version, r.plural))
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&legacy), names(&aggregated));
    assert!(names(&aggregated).contains(&"policy/v1/poddisruptionbudgets".to_string()));
    Ok(())
}

#[tokio::test]
async fn typed_config_map_lifecycle() -> TestResult {
    let (server, client) = started();
    let maps: Api<ConfigMap> = Api::default_namespaced(client);

    let created = maps
        .create(
            &PostParams::default(),
            &config_map("settings", json!({"a": "1"})),
        )
        .await?;
    let version = created.resource_version().expect("resourceVersion is set");
    assert!(created.uid().is_some());
    assert_eq!(
        created.metadata.creation_timestamp.map(|t| t.0.to_string()),
        Some("2026-01-01T00:00:00Z".into())
    );

    let status = status_of(
        maps.create(&PostParams::default(), &config_map("settings", json!({})))
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut fetched = maps.get("settings").await?;
    assert_eq!(
        fetched
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("1")
    );
    fetched.data = Some([("a".to_string(), "2".to_string())].into());
    let replaced = maps
        .replace("settings", &PostParams::default(), &fetched)
        .await?;
    assert_ne!(replaced.resource_version(), Some(version.clone()));

    // `fetched` still carries the old resourceVersion.
    let status = status_of(
        maps.replace("settings", &PostParams::default(), &fetched)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );

    assert_eq!(maps.list(&ListParams::default()).await?.items.len(), 1);
    let deleted = maps.delete("settings", &DeleteParams::default()).await?;
    assert!(deleted.is_right(), "ConfigMap deletes answer with a Status");
    let status = status_of(maps.get("settings").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "configmaps \"settings\" not found");
    assert!(maps.get_opt("settings").await?.is_none());
    assert!(
        server
            .get("v1", "ConfigMap", Some("default"), "settings")
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn invalid_objects_and_missing_namespaces_are_rejected() -> TestResult {
    let (_server, client) = started();
    let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let status = status_of(
        maps.create(&PostParams::default(), &config_map("Bad_Name", json!({})))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
        "{}",
        status.message
    );
    let causes = status.details.expect("details").causes;
    assert_eq!(causes[0].field, "metadata.name");

    let nameless: ConfigMap = serde_json::from_value(json!({"metadata": {}}))?;
    let status = status_of(maps.create(&PostParams::default(), &nameless).await);
    assert_eq!(status.code, 422);
    assert!(status.message.contains("name or generateName is required"));

    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "run-"}}))?;
    let created = maps.create(&PostParams::default(), &generated).await?;
    assert!(created.name_any().starts_with("run-") && created.name_any().len() == 9);

    let elsewhere: Api<ConfigMap> = Api::namespaced(client, "missing");
    let status = status_of(
        elsewhere
            .create(&PostParams::default(), &config_map("a", json!({})))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "namespaces \"missing\" not found");
    Ok(())
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() -> TestResult {
    let (server, client) = started();
    server
        .insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}))?;
    server.insert(pod("web-1", json!({"app": "web", "tier": "front"}), true))?;
    server.insert(pod("api-1", json!({"app": "api", "tier": "db"}), true))?;
    let mut elsewhere = pod("web-2", json!({"app": "web"}), true);
    elsewhere["metadata"]["namespace"] = json!("apps");
    elsewhere["spec"]["nodeName"] = json!("node-2");
    server.insert(elsewhere)?;

    let names = |list: kube::core::ObjectList<Pod>| -> Vec<String> {
        list.items.iter().map(ResourceExt::name_any).collect()
    };
    let all: Api<Pod> = Api::all(client.clone());
    let default: Api<Pod> = Api::default_namespaced(client);
    // Lists come out in namespace, then name order, like etcd keys.
    assert_eq!(
        names(all.list(&ListParams::default()).await?),
        ["web-2", "api-1", "web-1"]
    );
    assert_eq!(
        names(all.list(&ListParams::default().labels("app=web")).await?),
        ["web-2", "web-1"]
    );
    assert_eq!(
        names(
            default
                .list(&ListParams::default().labels("app in (web,api),tier!=db"))
                .await?
        ),
        ["web-1"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier,!legacy"))
                .await?
        ),
        ["api-1", "web-1"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier notin (db)"))
                .await?
        ),
        ["web-2", "web-1"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("spec.nodeName=node-2"))
                .await?
        ),
        ["web-2"]
    );
    assert_eq!(
        names(
            all.list(
                &ListParams::default().fields("metadata.namespace=default,metadata.name!=api-1")
            )
            .await?
        ),
        ["web-1"]
    );

    let status = status_of(
        all.list(&ListParams::default().fields("spec.image=nginx"))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    let status = status_of(all.list(&ListParams::default().labels("app in (web")).await);
    assert_eq!(status.code, 400);

    let page = all.list(&ListParams::default().limit(2)).await?;
    assert_eq!(names(page.clone()), ["web-2", "api-1"]);
    let token = page.metadata.continue_.expect("a continue token");
    let rest = all
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await?;
    assert_eq!(names(rest), ["web-1"]);

    let metadata = all
        .list_metadata(&ListParams::default().labels("app=api"))
        .await?;
    assert_eq!(
        metadata
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>(),
        ["api-1"]
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_creates_updates_and_dry_runs() -> TestResult {
    let (server, client) = started();
    let maps: Api<DynamicObject> = Api::namespaced_with(client, "default", &config_map_resource());
    let apply = PatchParams::apply("flotilla");

    let preview = maps
        .patch(
            "plan",
            &apply.clone().dry_run(),
            &Patch::Apply(dynamic_config_map("plan", json!({"k": "v"}))),
        )
        .await?;
    assert_eq!(preview.data["data"], json!({"k": "v"}));
    assert_eq!(
        preview.metadata.resource_version, None,
        "a dry-run create has no resourceVersion"
    );
    assert!(
        server
            .get("v1", "ConfigMap", Some("default"), "plan")
            .is_none(),
        "dry run stores nothing"
    );

    let created = maps
        .patch(
            "plan",
            &apply,
            &Patch::Apply(dynamic_config_map("plan", json!({"k": "v", "old": "x"}))),
        )
        .await?;
    let version = created.resource_version();
    let managed = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("flotilla"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    assert_eq!(managed[0].fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(
        managed[0].fields_v1.as_ref().map(|f| f.0.clone()),
        Some(json!({"f:data": {"f:k": {}, "f:old": {}}}))
    );

    let again = maps
        .patch(
            "plan",
            &apply,
            &Patch::Apply(dynamic_config_map("plan", json!({"k": "v", "old": "x"}))),
        )
        .await?;
    assert_eq!(
        again.resource_version(),
        version,
        "an identical apply changes nothing"
    );

    let preview = maps
        .patch(
            "plan",
            &apply.clone().dry_run(),
            &Patch::Apply(dynamic_config_map("plan", json!({"k": "w"}))),
        )
        .await?;
    assert_eq!(
        preview.data["data"],
        json!({"k": "w"}),
        "fields no longer applied are removed"
    );
    assert_eq!(
        preview.resource_version(),
        version,
        "a dry run keeps the resourceVersion"
    );
    let stored = server
        .get("v1", "ConfigMap", Some("default"), "plan")
        .expect("stored");
    assert_eq!(stored["data"], json!({"k": "v", "old": "x"}));

    let updated = maps
        .patch(
            "plan",
            &apply,
            &Patch::Apply(dynamic_config_map("plan", json!({"k": "w"}))),
        )
        .await?;
    assert_eq!(updated.data["data"], json!({"k": "w"}));
    assert_ne!(updated.resource_version(), version);
    Ok(())
}

#[tokio::test]
async fn apply_conflicts_between_managers_unless_forced() -> TestResult {
    let (_server, client) = started();
    let maps: Api<DynamicObject> = Api::namespaced_with(client, "default", &config_map_resource());
    maps.patch(
        "shared",
        &PatchParams::apply("flotilla"),
        &Patch::Apply(dynamic_config_map("shared", json!({"key": "a"}))),
    )
    .await?;

    let other = PatchParams::apply("kubectl");
    let same_value = maps
        .patch(
            "shared",
            &other,
            &Patch::Apply(dynamic_config_map("shared", json!({"key": "a"}))),
        )
        .await?;
    assert_eq!(
        same_value.metadata.managed_fields.map(|m| m.len()),
        Some(2),
        "equal values are co-owned"
    );

    let status = status_of(
        maps.patch(
            "shared",
            &other,
            &Patch::Apply(dynamic_config_map("shared", json!({"key": "b"}))),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"flotilla\" using v1: .data.key"
    );
    let causes = status.details.expect("details").causes;
    assert_eq!(
        (causes[0].reason.as_str(), causes[0].field.as_str()),
        ("FieldManagerConflict", ".data.key")
    );

    let forced = maps
        .patch(
            "shared",
            &other.force(),
            &Patch::Apply(dynamic_config_map("shared", json!({"key": "b"}))),
        )
        .await?;
    assert_eq!(forced.data["data"], json!({"key": "b"}));
    let owners: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(
        owners,
        ["kubectl"],
        "force moves the field; flotilla owned nothing else"
    );
    Ok(())
}

#[tokio::test]
async fn created_objects_conflict_with_apply_like_kubectl_create() -> TestResult {
    let (_server, client) = started();
    let typed: Api<ConfigMap> = Api::default_namespaced(client.clone());
    typed
        .create(
            &PostParams {
                field_manager: Some("kubectl-create".into()),
                ..Default::default()
            },
            &config_map("made", json!({"key": "a"})),
        )
        .await?;
    let maps: Api<DynamicObject> = Api::namespaced_with(client, "default", &config_map_resource());
    let status = status_of(
        maps.patch(
            "made",
            &PatchParams::apply("flotilla"),
            &Patch::Apply(dynamic_config_map("made", json!({"key": "b"}))),
        )
        .await,
    );
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("\"kubectl-create\""),
        "{}",
        status.message
    );
    Ok(())
}

#[tokio::test]
async fn apply_needs_a_field_manager() -> TestResult {
    let (_server, client) = started();
    // kube refuses to send this, so send it raw.
    let result = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x",
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n",
    )
    .await;
    let status = status_of(result);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("fieldManager: Required value"),
        "{}",
        status.message
    );

    let created = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x?fieldManager=yaml",
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n",
    )
    .await?;
    assert_eq!(created["data"], json!({"a": "b"}));
    Ok(())
}

#[tokio::test]
async fn merge_strategic_and_json_patches() -> TestResult {
    let (_server, client) = started();
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web", "old": "x"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "app", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy:1"}]}}},
    }))?;
    let created = deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    assert_eq!(created.metadata.generation, Some(1));

    let merged = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"old": null}}})),
        )
        .await?;
    assert_eq!(merged.labels().get("old"), None);
    assert_eq!(
        merged.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );

    let strategic = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "nginx:2"}]}}}})),
        )
        .await?;
    let images: Vec<String> = strategic
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers.into_iter().filter_map(|c| c.image).collect())
        .unwrap_or_default();
    assert_eq!(images, ["nginx:2", "envoy:1"], "containers merge by name");
    assert_eq!(strategic.metadata.generation, Some(2));

    let patched = raw(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/json-patch+json",
        r#"[{"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/tier", "value": "front"}]"#,
    )
    .await?;
    assert_eq!(
        (
            patched["spec"]["replicas"].clone(),
            patched["metadata"]["labels"]["tier"].clone()
        ),
        (json!(3), json!("front"))
    );
    let failed = raw(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/json-patch+json",
        r#"[{"op": "test", "path": "/spec/replicas", "value": 1}]"#,
    )
    .await;
    assert_eq!(status_of(failed).code, 422);
    Ok(())
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status() -> TestResult {
    let (_server, client) = started();
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let with_status = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 2}, "spec": {"replicas": 9}})),
        )
        .await?;
    assert_eq!(
        with_status.status.as_ref().and_then(|s| s.ready_replicas),
        Some(2)
    );
    assert_eq!(
        with_status.spec.as_ref().and_then(|s| s.replicas),
        None,
        "status writes ignore spec"
    );

    let mut fetched = deployments.get("web").await?;
    fetched.status = None;
    if let Some(spec) = fetched.spec.as_mut() {
        spec.replicas = Some(4);
    }
    let replaced = deployments
        .replace("web", &PostParams::default(), &fetched)
        .await?;
    assert_eq!(replaced.spec.and_then(|s| s.replicas), Some(4));
    assert_eq!(
        replaced.status.and_then(|s| s.ready_replicas),
        Some(2),
        "main writes keep status"
    );
    Ok(())
}

#[tokio::test]
async fn eviction_honours_pod_disruption_budgets() -> TestResult {
    let (server, client) = started();
    server.insert(pod("web-1", json!({"app": "web"}), true))?;
    server.insert(pod("web-2", json!({"app": "web"}), true))?;
    let budgets: Api<PodDisruptionBudget> = Api::default_namespaced(client.clone());
    let budget: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web-pdb"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))?;
    budgets.create(&PostParams::default(), &budget).await?;
    let status = budgets
        .get("web-pdb")
        .await?
        .status
        .expect("status is computed");
    assert_eq!(
        (
            status.current_healthy,
            status.desired_healthy,
            status.disruptions_allowed,
            status.expected_pods
        ),
        (2, 2, 0, 2)
    );

    let pods: Api<Pod> = Api::default_namespaced(client);
    let blocked = status_of(pods.evict("web-1", &EvictParams::default()).await);
    assert_eq!(
        (blocked.code, blocked.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(
        blocked.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &blocked.details.expect("details").causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(
        cause.message,
        "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
    );
    assert!(pods.get_opt("web-1").await?.is_some());

    server.insert(pod("web-3", json!({"app": "web"}), true))?;
    let evicted = pods.evict("web-1", &EvictParams::default()).await?;
    assert_eq!((evicted.code, evicted.is_success()), (201, true));
    assert!(pods.get_opt("web-1").await?.is_none());
    let status = budgets.get("web-pdb").await?.status.expect("status");
    assert_eq!((status.current_healthy, status.disruptions_allowed), (2, 0));

    // An unready pod may go while the budget is met, as with the default IfHealthyBudget policy.
    server.insert(pod("web-4", json!({"app": "web"}), false))?;
    pods.evict("web-4", &EvictParams::default()).await?;

    let missing = status_of(pods.evict("nope", &EvictParams::default()).await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    Ok(())
}

#[tokio::test]
async fn percentage_budgets_count_the_replicas_controllers_want() -> TestResult {
    let (server, client) = started();
    let deployment = server.insert(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "db", "namespace": "default"}, "spec": {"replicas": 4}}))?;
    let replica_set = server.insert(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "db-1", "namespace": "default", "ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "Deployment", "name": "db", "uid": deployment["metadata"]["uid"], "controller": true}]},
        "spec": {"replicas": 4}}))?;
    for name in ["a", "b", "c", "d"] {
        let mut owned = pod(name, json!({"app": "db"}), true);
        owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "db-1", "uid": replica_set["metadata"]["uid"], "controller": true}]);
        server.insert(owned)?;
    }
    server.insert(pod("lonely", json!({"app": "other"}), true))?;
    server.insert(pod("stray", json!({"app": "stray"}), true))?;
    for (name, app) in [("db", "db"), ("stray", "stray")] {
        server.insert(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": app}}},
        }))?;
    }
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.evict("a", &EvictParams::default()).await?;
    // The ReplicaSet still wants 4: 3 healthy of 4 expected leaves no room.
    assert_eq!(
        status_of(pods.evict("b", &EvictParams::default()).await).code,
        429
    );
    pods.evict("lonely", &EvictParams::default()).await?;

    // A pod without a controller makes a maxUnavailable budget fail safe.
    assert_eq!(
        status_of(pods.evict("stray", &EvictParams::default()).await).code,
        429
    );
    let budgets: Api<PodDisruptionBudget> = Api::default_namespaced(client);
    let stray = budgets.get("stray").await?.status.expect("status");
    assert_eq!(stray.disruptions_allowed, 0);
    let condition = &stray.conditions.unwrap_or_default()[0];
    assert_eq!(
        (condition.reason.as_str(), condition.message.as_str()),
        ("SyncFailed", "found no controllers for pod \"stray\"")
    );
    Ok(())
}

#[tokio::test]
async fn injected_failures_reach_the_client() -> TestResult {
    let (server, client) = started();
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    server.fail_next("GET", "/api/v1/namespaces/default/configmaps", 500);
    let status = status_of(maps.list(&ListParams::default()).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    maps.list(&ListParams::default()).await?;

    server.add_failure(Failure::new(403).method("POST").message("no way"));
    let status = status_of(
        maps.create(&PostParams::default(), &config_map("a", json!({})))
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (403, "Forbidden", "no way")
    );
    server.clear_failures();
    maps.create(&PostParams::default(), &config_map("a", json!({})))
        .await?;
    Ok(())
}

#[tokio::test]
async fn kube_default_retries_ride_out_a_503() -> TestResult {
    let server = LoopbackApi::start()?;
    let retrying = Client::try_from(server.config())?;
    server.fail_next("GET", "/api/v1/namespaces", 503);
    let namespaces: Api<Namespace> = Api::all(retrying);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let codes: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(codes, [503, 200]);
    Ok(())
}

#[tokio::test]
async fn a_stopped_server_is_unreachable() -> TestResult {
    let (server, client) = started();
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    maps.list(&ListParams::default()).await?;
    server.stop();
    match maps.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => panic!("expected a connection error, got {status:?}"),
        Err(_) => {}
        Ok(list) => panic!("expected a connection error, got {list:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn watches_are_refused_clearly() -> TestResult {
    let (_server, client) = started();
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    let status = match maps.watch(&Default::default(), "0").await {
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("expected an API error, got {other:?}"),
        Ok(_) => panic!("watch should be refused"),
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (405, "MethodNotAllowed")
    );
    Ok(())
}

#[tokio::test]
async fn custom_resource_definitions_serve_their_kinds() -> TestResult {
    let (server, client) = started();
    let definitions: Api<CustomResourceDefinition> = Api::all(client.clone());
    let definition: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"kind": "PrometheusRule", "plural": "prometheusrules", "singular": "prometheusrule", "listKind": "PrometheusRuleList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    }))?;
    let created = definitions
        .create(&PostParams::default(), &definition)
        .await?;
    let established = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let discovery = Discovery::new(client.clone()).run().await?;
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PrometheusRule");
    let (resource, _) = discovery
        .resolve_gvk(&gvk)
        .expect("the CRD's kind is discovered");
    let rules: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let rule = DynamicObject::new("alerts", &resource).data(json!({"spec": {"groups": []}}));
    rules
        .patch(
            "alerts",
            &PatchParams::apply("flotilla"),
            &Patch::Apply(rule),
        )
        .await?;
    assert_eq!(rules.list(&ListParams::default()).await?.items.len(), 1);

    definitions
        .delete(
            "prometheusrules.monitoring.coreos.com",
            &DeleteParams::default(),
        )
        .await?;
    assert!(!server.serves("monitoring.coreos.com/v1", "PrometheusRule"));
    let status = status_of(rules.list(&ListParams::default()).await);
    assert_eq!(status.code, 404);
    Ok(())
}

#[tokio::test]
async fn registered_resources_are_served() -> TestResult {
    let (server, client) = started();
    server.register_resource(
        ResourceType::new(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            "servicemonitors",
            kube_loopback::Scope::Namespaced,
        )
        .short_names(&["smon"]),
    );
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
    ));
    let monitors: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &resource);
    let monitor = DynamicObject::new("web", &resource)
        .data(json!({"spec": {"endpoints": [{"port": "http"}]}}));
    monitors.create(&PostParams::default(), &monitor).await?;
    let stored = server
        .get(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            Some("default"),
            "web",
        )
        .expect("stored");
    assert_eq!(stored["spec"]["endpoints"][0]["port"], json!("http"));
    let discovery = Discovery::new(client).run().await?;
    assert!(discovery.has_group("monitoring.coreos.com"));
    Ok(())
}

#[tokio::test]
async fn deletes_cascade_to_dependents_and_wait_for_finalizers() -> TestResult {
    let (server, client) = started();
    let owner = server.insert(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"}, "spec": {}}))?;
    let owner_ref = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
        "uid": owner["metadata"]["uid"], "controller": true}]);
    for name in ["web-a", "web-b"] {
        let mut owned = pod(name, json!({"app": "web"}), true);
        owned["metadata"]["ownerReferences"] = owner_ref.clone();
        server.insert(owned)?;
    }
    let replica_sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::default_namespaced(client.clone());
    replica_sets.delete("web", &DeleteParams::orphan()).await?;
    let orphans = server.list("v1", "Pod", Some("default"));
    assert_eq!(orphans.len(), 2);
    assert!(
        orphans
            .iter()
            .all(|p| p["metadata"]["ownerReferences"].is_null())
    );

    let owner = server.insert(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "api", "namespace": "default"}, "spec": {}}))?;
    let mut owned = pod("api-a", json!({"app": "api"}), true);
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "api", "uid": owner["metadata"]["uid"]}]);
    owned["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    server.insert(owned)?;
    replica_sets
        .delete("api", &DeleteParams::background())
        .await?;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let terminating = pods.get("api-a").await?;
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "finalizers hold the pod"
    );
    pods.patch(
        "api-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert!(
        pods.get_opt("api-a").await?.is_none(),
        "removing the last finalizer deletes"
    );

    let namespaces: Api<Namespace> = Api::all(client);
    let status = status_of(namespaces.delete("default", &DeleteParams::default()).await);
    assert_eq!(status.code, 403);
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "doomed"}}))?,
        )
        .await?;
    let mut inside = pod("x", json!({}), true);
    inside["metadata"]["namespace"] = json!("doomed");
    server.insert(inside)?;
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await?;
    assert!(server.list("v1", "Pod", Some("doomed")).is_empty());
    Ok(())
}

#[tokio::test]
async fn delete_collection_and_dry_run_delete() -> TestResult {
    let (server, client) = started();
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut map = config_map(name, json!({}));
        map.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        maps.create(&PostParams::default(), &map).await?;
    }
    let dry = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    maps.delete("c", &dry).await?;
    assert!(
        server
            .get("v1", "ConfigMap", Some("default"), "c")
            .is_some()
    );
    let deleted = maps
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=x"),
        )
        .await?;
    let names: Vec<String> = deleted
        .left()
        .map(|l| l.items.iter().map(ResourceExt::name_any).collect())
        .unwrap_or_default();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(server.list("v1", "ConfigMap", Some("default")).len(), 1);
    Ok(())
}

#[test]
fn synchronous_callers_get_status_bodies_over_plain_http() {
    use std::io::{Read, Write};
    let server = LoopbackApi::start().expect("server starts");
    let mut stream = std::net::TcpStream::connect(server.address()).expect("connects");
    write!(
        stream,
        "GET /apis/apps/v1/namespaces/default/deployments/none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a body");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let status: Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "deployments.apps \"none\" not found", "reason": "NotFound",
            "details": {"name": "none", "group": "apps", "kind": "deployments"}, "code": 404})
    );
}
