//! Discovery: `/version`, the legacy documents (`/api`, `/api/v1`, `/apis`, `/apis/{g}`,
//! `/apis/{g}/{v}`) that kube's `Discovery::run` reads, and the aggregated `apidiscovery.k8s.io/v2`
//! documents that `Discovery::run_aggregated` asks for with its `Accept` header.

use serde_json::{Value, json};

use crate::catalog::{ResourceType, version_priority};
use crate::router::Reply;
use crate::state::State;
use crate::status::ApiError;

/// The Kubernetes version reported; matches the k8s-openapi feature the workspace builds with.
const MINOR_VERSION: &str = "35";

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": MINOR_VERSION,
        "gitVersion": format!("v1.{MINOR_VERSION}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Which aggregated-discovery version the `Accept` header prefers, if it prefers one at all
/// (it lists media types in order of preference; plain JSON first means the legacy format).
fn aggregated_version(accept: &str) -> Option<&'static str> {
    for media_type in accept.split(',') {
        let mut parts = media_type.split(';').map(str::trim);
        let essence = parts.next().unwrap_or_default();
        if !matches!(essence, "application/json" | "*/*" | "application/*") {
            continue;
        }
        let params: Vec<&str> = parts.collect();
        let has = |p: &str| params.contains(&p);
        if !has("g=apidiscovery.k8s.io") {
            return None;
        }
        if has("as=APIGroupDiscoveryList") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

fn aggregated_reply(version: &str, items: Vec<Value>) -> Reply {
    Reply {
        code: 200,
        content_type: format!(
            "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
        ),
        body: json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format!("apidiscovery.k8s.io/{version}"),
            "metadata": {},
            "items": items,
        }),
    }
}

/// `GET /api`: APIVersions, or the core group's aggregated discovery.
pub(crate) fn core_versions(state: &State, accept: &str) -> Reply {
    if let Some(version) = aggregated_version(accept) {
        return aggregated_reply(version, vec![aggregated_group(state, "", &["v1".into()])]);
    }
    Reply::json(
        200,
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.address}],
        }),
    )
}

/// `GET /apis`: APIGroupList, or every named group's aggregated discovery.
pub(crate) fn groups(state: &State, accept: &str) -> Reply {
    let groups = state.catalog.groups();
    if let Some(version) = aggregated_version(accept) {
        let items = groups
            .iter()
            .map(|(group, versions)| aggregated_group(state, group, versions))
            .collect();
        return aggregated_reply(version, items);
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| api_group(group, versions))
        .collect();
    Reply::json(
        200,
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }),
    )
}

/// `GET /apis/{group}`.
pub(crate) fn group(state: &State, group: &str) -> Result<Reply, ApiError> {
    let groups = state.catalog.groups();
    let (_, versions) = groups
        .iter()
        .find(|(g, _)| g == group)
        .ok_or_else(ApiError::unknown_path)?;
    let mut document = api_group(group, versions);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    Ok(Reply::json(200, document))
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let entry = |version: &String| json!({ "groupVersion": format!("{group}/{version}"), "version": version });
    let preferred = versions
        .iter()
        .max_by_key(|v| version_priority(v))
        .map(entry);
    json!({
        "name": group,
        "versions": versions.iter().map(entry).collect::<Vec<_>>(),
        "preferredVersion": preferred,
    })
}

/// `GET /api/v1` and `GET /apis/{group}/{version}`: APIResourceList with subresources.
pub(crate) fn resources(state: &State, group: &str, version: &str) -> Result<Reply, ApiError> {
    let mut resources = Vec::new();
    for resource in state.catalog.in_group_version(group, version) {
        let mut entry = json!({
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced(),
            "kind": resource.kind,
            "verbs": resource.verbs(),
        });
        if !resource.short_names.is_empty() {
            entry["shortNames"] = json!(resource.short_names);
        }
        if !resource.categories.is_empty() {
            entry["categories"] = json!(resource.categories);
        }
        resources.push(entry);
        for sub in subresources(resource) {
            let mut entry = json!({
                "name": format!("{}/{}", resource.plural, sub.name),
                "singularName": "",
                "namespaced": resource.namespaced(),
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != resource.group || sub.version != resource.version {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return Err(ApiError::unknown_path());
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(Reply::json(
        200,
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }),
    ))
}

/// A subresource served under a resource, e.g. `pods/eviction` answering with `policy/v1` `Eviction`.
struct Subresource {
    name: &'static str,
    group: String,
    version: String,
    kind: String,
    verbs: Vec<&'static str>,
}

fn subresources(resource: &ResourceType) -> Vec<Subresource> {
    let mut served = Vec::new();
    if resource.status_subresource {
        served.push(Subresource {
            name: "status",
            group: resource.group.clone(),
            version: resource.version.clone(),
            kind: resource.kind.clone(),
            verbs: vec!["get", "patch", "update"],
        });
    }
    if resource.is("", "pods") {
        served.push(Subresource {
            name: "eviction",
            group: "policy".into(),
            version: "v1".into(),
            kind: "Eviction".into(),
            verbs: vec!["create"],
        });
    }
    served
}

fn aggregated_group(state: &State, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = state
                .catalog
                .in_group_version(group, version)
                .map(|resource| {
                    let subresources: Vec<Value> = subresources(resource)
                        .into_iter()
                        .map(|sub| {
                            json!({
                                "subresource": sub.name,
                                "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                                "verbs": sub.verbs,
                            })
                        })
                        .collect();
                    json!({
                        "resource": resource.plural,
                        "responseKind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
                        "scope": if resource.namespaced() { "Namespaced" } else { "Cluster" },
                        "singularResource": resource.singular,
                        "verbs": resource.verbs(),
                        "shortNames": resource.short_names,
                        "categories": resource.categories,
                        "subresources": subresources,
                    })
                })
                .collect();
            json!({ "version": version, "freshness": "Current", "resources": resources })
        })
        .collect();
    json!({ "metadata": { "name": group }, "versions": versions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_format() {
        let kube_aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(kube_aggregated), Some("v2"));
        assert_eq!(aggregated_version("application/json"), None);
        assert_eq!(aggregated_version(""), None);
        assert_eq!(
            aggregated_version(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            ),
            Some("v2beta1")
        );
    }
}
