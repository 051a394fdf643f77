//! The resource types the server serves: the built-in set, extra registrations, and the ones that
//! `CustomResourceDefinition` objects bring in.

use std::sync::Arc;

use serde_json::Value;

/// Whether objects of a resource live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// Which rule `metadata.name` must follow (apimachinery's name validators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// DNS-1123 subdomain: most kinds.
    Subdomain,
    /// DNS-1123 label: namespaces.
    Label,
    /// DNS-1035 label (starts with a letter): services.
    Dns1035Label,
    /// Anything usable as a path segment: RBAC kinds (`system:controller:...`).
    PathSegment,
}

/// Where a resource type came from, so deleting a CRD removes exactly what it added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Builtin,
    Registered,
    Definition(String),
}

/// A resource the server serves: a REST collection such as `apps/v1` `deployments`.
///
/// Built-in types are served from the start; others can be added with
/// [`LoopbackApi::register_resource`](crate::LoopbackApi::register_resource) or by creating a
/// `CustomResourceDefinition`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) kind: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) scope: Scope,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) status_subresource: bool,
    pub(crate) name_rule: NameRule,
    /// Field selector keys beyond `metadata.name`/`metadata.namespace`.
    pub(crate) field_labels: Vec<String>,
    /// Whether DELETE answers with the object rather than a success `Status`.
    pub(crate) returns_deleted_object: bool,
    pub(crate) origin: Origin,
}

const STANDARD_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// A resource served at `api_version` (`"v1"` or `"group/version"`), e.g.
    /// `ResourceType::new("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules", Scope::Namespaced)`.
    pub fn new(api_version: &str, kind: &str, plural: &str, scope: Scope) -> Self {
        let (group, version) = split_api_version(api_version);
        ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            scope,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            name_rule: NameRule::Subdomain,
            field_labels: Vec::new(),
            // Custom resources answer DELETE with the object, as the apiextensions server does.
            returns_deleted_object: true,
            origin: Origin::Registered,
        }
    }

    pub fn short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(ToString::to_string).collect();
        self
    }

    pub fn singular(mut self, singular: &str) -> Self {
        self.singular = singular.to_string();
        self
    }

    /// Serve a `status` subresource: writes to the main resource then keep the stored status.
    pub fn with_status_subresource(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    pub(crate) fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: how messages name a resource.
    pub(crate) fn qualified_plural(&self) -> String {
        qualify(&self.plural, &self.group)
    }

    /// `Deployment.apps`, or `Pod` for the core group.
    pub(crate) fn qualified_kind(&self) -> String {
        qualify(&self.kind, &self.group)
    }

    pub(crate) fn verbs(&self) -> Vec<&'static str> {
        STANDARD_VERBS.to_vec()
    }

    pub(crate) fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }

    fn builtin(api_version: &str, kind: &str, plural: &str, scope: Scope) -> Self {
        ResourceType {
            origin: Origin::Builtin,
            returns_deleted_object: false,
            ..ResourceType::new(api_version, kind, plural, scope)
        }
    }

    fn categories(mut self, categories: &[&str]) -> Self {
        self.categories = categories.iter().map(ToString::to_string).collect();
        self
    }

    fn name_rule(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }

    fn field_labels(mut self, labels: &[&str]) -> Self {
        self.field_labels = labels.iter().map(ToString::to_string).collect();
        self
    }

    fn returns_deleted_object(mut self) -> Self {
        self.returns_deleted_object = true;
        self
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

/// `"apps/v1"` → `("apps", "v1")`, `"v1"` → `("", "v1")`.
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The served resource types, in registration order (which is also discovery order).
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    types: Vec<Arc<ResourceType>>,
}

impl Catalog {
    pub(crate) fn builtin() -> Self {
        use Scope::{Cluster, Namespaced};
        let all = ["all"];
        let types = vec![
            ResourceType::builtin("v1", "Namespace", "namespaces", Cluster)
                .short_names(&["ns"])
                .with_status_subresource()
                .name_rule(NameRule::Label)
                .field_labels(&["status.phase"])
                .returns_deleted_object(),
            ResourceType::builtin("v1", "Node", "nodes", Cluster)
                .short_names(&["no"])
                .with_status_subresource()
                .field_labels(&["spec.unschedulable"]),
            ResourceType::builtin("v1", "Pod", "pods", Namespaced)
                .short_names(&["po"])
                .categories(&all)
                .with_status_subresource()
                .field_labels(&[
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.nominatedNodeName",
                ])
                .returns_deleted_object(),
            ResourceType::builtin("v1", "Service", "services", Namespaced)
                .short_names(&["svc"])
                .categories(&all)
                .with_status_subresource()
                .name_rule(NameRule::Dns1035Label),
            ResourceType::builtin("v1", "ConfigMap", "configmaps", Namespaced).short_names(&["cm"]),
            ResourceType::builtin("v1", "Secret", "secrets", Namespaced).field_labels(&["type"]),
            ResourceType::builtin("v1", "ServiceAccount", "serviceaccounts", Namespaced)
                .short_names(&["sa"]),
            ResourceType::builtin("v1", "Endpoints", "endpoints", Namespaced)
                .short_names(&["ep"])
                .singular("endpoints"),
            ResourceType::builtin("v1", "Event", "events", Namespaced)
                .short_names(&["ev"])
                .field_labels(&[
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "involvedObject.resourceVersion",
                    "involvedObject.fieldPath",
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ]),
            ResourceType::builtin("v1", "ResourceQuota", "resourcequotas", Namespaced)
                .short_names(&["quota"])
                .with_status_subresource(),
            ResourceType::builtin("v1", "LimitRange", "limitranges", Namespaced)
                .short_names(&["limits"]),
            ResourceType::builtin("apps/v1", "Deployment", "deployments", Namespaced)
                .short_names(&["deploy"])
                .categories(&all)
                .with_status_subresource(),
            ResourceType::builtin("apps/v1", "DaemonSet", "daemonsets", Namespaced)
                .short_names(&["ds"])
                .categories(&all)
                .with_status_subresource(),
            ResourceType::builtin("apps/v1", "StatefulSet", "statefulsets", Namespaced)
                .short_names(&["sts"])
                .categories(&all)
                .with_status_subresource(),
            ResourceType::builtin("apps/v1", "ReplicaSet", "replicasets", Namespaced)
                .short_names(&["rs"])
                .categories(&all)
                .with_status_subresource()
                .field_labels(&["status.replicas"]),
            ResourceType::builtin("batch/v1", "Job", "jobs", Namespaced)
                .categories(&all)
                .with_status_subresource()
                .field_labels(&["status.successful"]),
            ResourceType::builtin("batch/v1", "CronJob", "cronjobs", Namespaced)
                .short_names(&["cj"])
                .categories(&all)
                .with_status_subresource(),
            ResourceType::builtin(
                "policy/v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
                Namespaced,
            )
            .short_names(&["pdb"])
            .with_status_subresource(),
            ResourceType::builtin("rbac.authorization.k8s.io/v1", "Role", "roles", Namespaced)
                .name_rule(NameRule::PathSegment),
            ResourceType::builtin(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                "rolebindings",
                Namespaced,
            )
            .name_rule(NameRule::PathSegment),
            ResourceType::builtin(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "clusterroles",
                Cluster,
            )
            .name_rule(NameRule::PathSegment),
            ResourceType::builtin(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                Cluster,
            )
            .name_rule(NameRule::PathSegment),
            ResourceType::builtin(
                "scheduling.k8s.io/v1",
                "PriorityClass",
                "priorityclasses",
                Cluster,
            )
            .short_names(&["pc"]),
            ResourceType::builtin(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                "networkpolicies",
                Namespaced,
            )
            .short_names(&["netpol"]),
            ResourceType::builtin("networking.k8s.io/v1", "Ingress", "ingresses", Namespaced)
                .short_names(&["ing"])
                .with_status_subresource(),
            ResourceType::builtin(
                "networking.k8s.io/v1",
                "IngressClass",
                "ingressclasses",
                Cluster,
            ),
            ResourceType::builtin(
                "storage.k8s.io/v1",
                "StorageClass",
                "storageclasses",
                Cluster,
            )
            .short_names(&["sc"]),
            ResourceType::builtin(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "validatingwebhookconfigurations",
                Cluster,
            ),
            ResourceType::builtin(
                "admissionregistration.k8s.io/v1",
                "MutatingWebhookConfiguration",
                "mutatingwebhookconfigurations",
                Cluster,
            ),
            ResourceType::builtin(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                Cluster,
            )
            .short_names(&["crd", "crds"])
            .with_status_subresource()
            .returns_deleted_object(),
            ResourceType::builtin("coordination.k8s.io/v1", "Lease", "leases", Namespaced),
            ResourceType::builtin(
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                Namespaced,
            )
            .short_names(&["hpa"])
            .categories(&all)
            .with_status_subresource(),
        ];
        Catalog {
            types: types.into_iter().map(Arc::new).collect(),
        }
    }

    /// Adds a type, replacing one with the same group, version and plural.
    pub(crate) fn register(&mut self, resource: ResourceType) {
        let resource = Arc::new(resource);
        match self.types.iter_mut().find(|t| {
            t.group == resource.group
                && t.version == resource.version
                && t.plural == resource.plural
        }) {
            Some(existing) => *existing = resource,
            None => self.types.push(resource),
        }
    }

    pub(crate) fn find(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    pub(crate) fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    pub(crate) fn types(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.iter()
    }

    /// Groups other than the core one, each with its versions, in first-registered order.
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }

    pub(crate) fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceType>> + 'a {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.version == version)
    }

    /// Serves the versions a `CustomResourceDefinition` declares, replacing what it served before.
    pub(crate) fn define(&mut self, crd: &Value) {
        let Some(name) = crd["metadata"]["name"].as_str() else {
            return;
        };
        self.undefine(name);
        let spec = &crd["spec"];
        let names = &spec["names"];
        let (Some(group), Some(kind), Some(plural)) = (
            spec["group"].as_str(),
            names["kind"].as_str(),
            names["plural"].as_str(),
        ) else {
            return;
        };
        let scope = match spec["scope"].as_str() {
            Some("Cluster") => Scope::Cluster,
            _ => Scope::Namespaced,
        };
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        for version in versions
            .iter()
            .filter(|v| v["served"] != Value::Bool(false))
        {
            let Some(version_name) = version["name"].as_str() else {
                continue;
            };
            let mut resource =
                ResourceType::new(&format!("{group}/{version_name}"), kind, plural, scope);
            if let Some(singular) = names["singular"].as_str() {
                resource.singular = singular.to_string();
            }
            resource.short_names = strings(&names["shortNames"]);
            resource.categories = strings(&names["categories"]);
            resource.status_subresource = version["subresources"]["status"].is_object();
            resource.origin = Origin::Definition(name.to_string());
            self.types.push(Arc::new(resource));
        }
    }

    /// Stops serving what the named `CustomResourceDefinition` added.
    pub(crate) fn undefine(&mut self, crd_name: &str) {
        self.types
            .retain(|t| t.origin != Origin::Definition(crd_name.to_string()));
    }
}

/// Kubernetes version ordering: GA above beta above alpha, higher numbers first.
pub(crate) fn version_priority(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let suffix = &rest[digits.len()..];
    let minor = |s: &str| s.parse::<u32>().ok();
    if suffix.is_empty() {
        (3, major, 0)
    } else if let Some(n) = suffix.strip_prefix("beta").and_then(minor) {
        (2, major, n)
    } else if let Some(n) = suffix.strip_prefix("alpha").and_then(minor) {
        (1, major, n)
    } else {
        (0, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_like_kubernetes() {
        let mut versions = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "foo"];
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(
            versions,
            ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn crd_serves_its_versions_until_removed() {
        let mut catalog = Catalog::builtin();
        let crd = serde_json::json!({
            "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
            "spec": {
                "group": "monitoring.coreos.com",
                "scope": "Namespaced",
                "names": {"kind": "PrometheusRule", "plural": "prometheusrules", "singular": "prometheusrule"},
                "versions": [{"name": "v1", "served": true, "storage": true}, {"name": "v0", "served": false}]
            }
        });
        catalog.define(&crd);
        let found = catalog.find("monitoring.coreos.com", "v1", "prometheusrules");
        assert_eq!(found.map(|t| t.kind.clone()), Some("PrometheusRule".into()));
        assert!(
            catalog
                .find("monitoring.coreos.com", "v0", "prometheusrules")
                .is_none()
        );
        catalog.undefine("prometheusrules.monitoring.coreos.com");
        assert!(
            catalog
                .find("monitoring.coreos.com", "v1", "prometheusrules")
                .is_none()
        );
    }
}
