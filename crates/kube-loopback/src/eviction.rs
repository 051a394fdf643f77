//! The Eviction API (`POST pods/{name}/eviction`) and the PodDisruptionBudget status the
//! disruption controller would keep, both following kube's `pkg/registry/core/pod/storage/eviction.go`
//! and `pkg/controller/disruption`.

use serde_json::{Value, json};

use crate::router::{ApiRequest, Reply, Target};
use crate::selectors::LabelSelector;
use crate::state::State;
use crate::status::{ApiError, Cause, success};
use crate::store::{ObjectKey, Store};
use crate::verbs::{DeleteOptions, delete_object, meta_str, object_key};

/// Ready condition True; a pod without conditions counts when Running.
fn is_healthy(pod: &Value) -> bool {
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return false;
    }
    match pod["status"]["conditions"].as_array() {
        Some(conditions) if !conditions.is_empty() => conditions
            .iter()
            .any(|c| c["type"] == json!("Ready") && c["status"] == json!("True")),
        _ => pod["status"]["phase"] == json!("Running"),
    }
}

/// policy/v1: a missing selector selects nothing, an empty one every pod in the namespace.
fn budget_selector(budget: &Value) -> LabelSelector {
    match &budget["spec"]["selector"] {
        Value::Null => LabelSelector::nothing(),
        selector => {
            LabelSelector::from_object(selector).unwrap_or_else(|_| LabelSelector::nothing())
        }
    }
}

fn pods_of<'a>(store: &'a Store, budget: &Value) -> Vec<&'a Value> {
    let namespace = meta_str(budget, "namespace").unwrap_or_default();
    let selector = budget_selector(budget);
    store
        .all()
        .filter(|(key, pod)| {
            key.group.is_empty()
                && key.plural == "pods"
                && key.namespace == namespace
                && selector.matches(pod)
        })
        .map(|(_, pod)| pod)
        .collect()
}

/// `minAvailable`/`maxUnavailable` as a count: an integer, or a percentage of `total` rounded up.
fn scaled(value: &Value, total: i64) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let percent: i64 = value.as_str()?.strip_suffix('%')?.parse().ok()?;
    Some(percent.saturating_mul(total).saturating_add(99) / 100)
}

struct Budget {
    expected: i64,
    current_healthy: i64,
    desired_healthy: i64,
    /// Why the expected count could not be worked out; such a budget allows no disruption.
    failure: Option<String>,
}

impl Budget {
    fn of(store: &Store, budget: &Value) -> Self {
        let pods = pods_of(store, budget);
        let current_healthy = pods.iter().filter(|p| is_healthy(p)).count() as i64;
        let spec = &budget["spec"];
        let integer_min_available =
            spec["maxUnavailable"].is_null() && spec["minAvailable"].is_i64();
        // As the disruption controller: an integer minAvailable counts the pods there are;
        // anything else needs the replicas their controllers ask for.
        let (expected, failure) = if integer_min_available
            || spec["minAvailable"].is_null() && spec["maxUnavailable"].is_null()
        {
            (pods.len() as i64, None)
        } else {
            match expected_scale(store, &pods) {
                Ok(scale) => (scale, None),
                Err(why) => (pods.len() as i64, Some(why)),
            }
        };
        let desired_healthy = if !spec["maxUnavailable"].is_null() {
            // An unreadable value blocks every disruption, the safe reading.
            scaled(&spec["maxUnavailable"], expected)
                .map_or(expected, |n| expected.saturating_sub(n))
        } else if !spec["minAvailable"].is_null() {
            scaled(&spec["minAvailable"], expected).unwrap_or(expected)
        } else {
            0
        };
        Budget {
            expected,
            current_healthy,
            desired_healthy: desired_healthy.max(0),
            failure,
        }
    }

    fn disruptions_allowed(&self) -> i64 {
        if self.failure.is_some() {
            return 0;
        }
        (self.current_healthy - self.desired_healthy).max(0)
    }
}

/// The summed `spec.replicas` of the controllers (ReplicaSet — or the Deployment owning it —,
/// StatefulSet, ReplicationController) of the pods, each counted once.
fn expected_scale(store: &Store, pods: &[&Value]) -> Result<i64, String> {
    let mut counted: Vec<String> = Vec::new();
    let mut total: i64 = 0;
    for pod in pods {
        let namespace = meta_str(pod, "namespace").unwrap_or_default();
        let pod_name = meta_str(pod, "name").unwrap_or_default();
        let no_controller = || format!("found no controllers for pod {pod_name:?}");
        let (kind, mut controller) =
            controller_of(store, pod, namespace).ok_or_else(no_controller)?;
        // A Deployment's ReplicaSet scales as the Deployment says.
        if kind == "ReplicaSet"
            && let Some(("Deployment", deployment)) = controller_of(store, controller, namespace)
        {
            controller = deployment;
        }
        let uid = meta_str(controller, "uid").unwrap_or_default().to_string();
        if !counted.contains(&uid) {
            let replicas = controller["spec"]["replicas"].as_i64().unwrap_or(1);
            total = total.saturating_add(replicas);
            counted.push(uid);
        }
    }
    Ok(total)
}

/// The object named by `ownerReferences[controller=true]`, if it is stored with that uid.
fn controller_of<'a>(
    store: &'a Store,
    object: &Value,
    namespace: &str,
) -> Option<(&'static str, &'a Value)> {
    let reference = object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == json!(true))?;
    let (kind, group, plural) = match reference["kind"].as_str()? {
        "ReplicaSet" => ("ReplicaSet", "apps", "replicasets"),
        "StatefulSet" => ("StatefulSet", "apps", "statefulsets"),
        "Deployment" => ("Deployment", "apps", "deployments"),
        "ReplicationController" => ("ReplicationController", "", "replicationcontrollers"),
        _ => return None,
    };
    let key = ObjectKey {
        group: group.into(),
        plural: plural.into(),
        namespace: namespace.into(),
        name: reference["name"].as_str()?.into(),
    };
    store
        .get(&key)
        .filter(|owner| owner["metadata"]["uid"] == reference["uid"])
        .map(|owner| (kind, owner))
}

/// The status the disruption controller would have written for this budget now.
pub(crate) fn budget_status(store: &Store, budget: &Value) -> Value {
    let computed = Budget::of(store, budget);
    let allowed = computed.disruptions_allowed();
    let generation = budget["metadata"]["generation"].clone();
    json!({
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": computed.current_healthy,
        "desiredHealthy": computed.desired_healthy,
        "expectedPods": computed.expected,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": if allowed > 0 { "True" } else { "False" },
            "reason": match (&computed.failure, allowed > 0) {
                (Some(_), _) => "SyncFailed",
                (None, true) => "SufficientPods",
                (None, false) => "InsufficientPods",
            },
            "message": computed.failure.clone().unwrap_or_default(),
            "observedGeneration": generation,
            "lastTransitionTime": store.now(),
        }],
    })
}

/// Evicts a pod unless that would break its PodDisruptionBudget (429 TooManyRequests).
pub(crate) fn evict(
    state: &mut State,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding Eviction: {e}")))?;
    if body["kind"].as_str().is_some_and(|kind| kind != "Eviction") {
        return Err(ApiError::bad_request(
            "the body of an eviction must be an Eviction",
        ));
    }
    if meta_str(&body, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    // kube-rs sends `delete_options`; the API defines `deleteOptions`.
    let delete_options = match (&body["deleteOptions"], &body["delete_options"]) {
        (Value::Null, options) | (options, _) => options,
    };
    let options = DeleteOptions::read(delete_options, &request.query)?;
    let key = object_key(target, name);
    let pod = state
        .store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&target.resource, name))?;
    options.check_preconditions(&target.resource, name, &pod)?;
    if may_ignore_budgets(&pod) {
        return Ok(evicted(state, &key, &options));
    }
    let budgets: Vec<Value> = state
        .store
        .all()
        .filter(|(k, _)| {
            k.group == "policy"
                && k.plural == "poddisruptionbudgets"
                && Some(k.namespace.as_str()) == target.namespace.as_deref()
        })
        .map(|(_, budget)| budget)
        .filter(|budget| budget_selector(budget).matches(&pod))
        .cloned()
        .collect();
    let budget = match budgets.as_slice() {
        [] => return Ok(evicted(state, &key, &options)),
        [budget] => budget,
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let computed = Budget::of(&state.store, budget);
    let unhealthy_may_go = match budget["spec"]["unhealthyPodEvictionPolicy"].as_str() {
        Some("AlwaysAllow") => true,
        _ => computed.current_healthy >= computed.desired_healthy && computed.desired_healthy > 0,
    };
    if (!is_healthy(&pod) && unhealthy_may_go) || computed.disruptions_allowed() > 0 {
        return Ok(evicted(state, &key, &options));
    }
    let budget_name = meta_str(budget, "name").unwrap_or_default();
    Err(ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    )
    .with_causes(vec![Cause {
        reason: "DisruptionBudget",
        message: format!(
            "The disruption budget {budget_name} needs {} healthy pods and has {} currently",
            computed.desired_healthy, computed.current_healthy
        ),
        field: String::new(),
    }]))
}

/// Pods that are done, not started, or already going need no budget check.
fn may_ignore_budgets(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Pending")
    ) || !pod["metadata"]["deletionTimestamp"].is_null()
}

fn evicted(state: &mut State, key: &ObjectKey, options: &DeleteOptions) -> Reply {
    // A pod with finalizers is only marked for deletion; the eviction is accepted either way.
    delete_object(state, key, options);
    Reply::json(201, success(201, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn store_with(pods: &[Value]) -> Store {
        let mut store = Store::new();
        for p in pods {
            let name = p["metadata"]["name"].as_str().unwrap();
            store.put(
                ObjectKey {
                    group: String::new(),
                    plural: "pods".into(),
                    namespace: "default".into(),
                    name: name.into(),
                },
                p.clone(),
            );
        }
        store
    }

    #[test]
    fn budgets_count_healthy_pods() {
        let store = store_with(&[pod("a", true), pod("b", true), pod("c", false)]);
        let budget = |spec: Value| json!({"metadata": {"namespace": "default", "generation": 1}, "spec": spec});
        let selector = json!({"matchLabels": {"app": "web"}});
        let min2 = budget_status(
            &store,
            &budget(json!({"minAvailable": 2, "selector": selector})),
        );
        assert_eq!(
            (
                min2["currentHealthy"].clone(),
                min2["disruptionsAllowed"].clone()
            ),
            (json!(2), json!(0))
        );
        // maxUnavailable needs the pods' controllers, and these pods have none: fail safe.
        let max1 = budget_status(
            &store,
            &budget(json!({"maxUnavailable": 1, "selector": selector})),
        );
        assert_eq!(max1["disruptionsAllowed"], json!(0));
        assert_eq!(max1["conditions"][0]["reason"], json!("SyncFailed"));
        let none = budget_status(&store, &budget(json!({"minAvailable": 1})));
        assert_eq!(none["expectedPods"], json!(0));
    }
}
