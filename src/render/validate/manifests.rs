//! Kubernetes manifests: object identity across a cluster and object names.

use std::collections::HashMap;

use serde_json::Value;

use super::deletions::Deletions;
use super::yaml::strict_document;

/// RBAC kinds, whose names are path segments (`system:coredns`), not DNS-1123 names.
const RBAC_KINDS: [&str; 4] = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

/// Identity of Kubernetes objects across one cluster's manifests.
#[derive(Default)]
pub struct ObjectIndex {
    seen: HashMap<(String, String, String, String), ()>,
}

/// A deletion by name must not remove an object the manifests apply: the two would
/// undo each other on every apply.
pub fn deletions_spare(deletions: &Deletions, objects: &ObjectIndex) -> Result<(), String> {
    for (list, entries) in [
        ("pre_apply", &deletions.pre_apply),
        ("post_apply", &deletions.post_apply),
    ] {
        for entry in entries {
            let Some(name) = &entry.name else { continue };
            let namespace = entry.namespace.clone().unwrap_or_default();
            let applied = objects
                .seen
                .keys()
                .any(|(_, kind, ns, n)| *kind == entry.kind && *ns == namespace && n == name);
            if applied {
                return Err(format!(
                    "{list} deletes {} `{}{name}`, which the manifests apply",
                    entry.kind,
                    if namespace.is_empty() {
                        String::new()
                    } else {
                        format!("{namespace}/")
                    }
                ));
            }
        }
    }
    Ok(())
}

/// Check every object in a multi-document manifest file.
pub fn manifests(text: &str, index: &mut ObjectIndex) -> Result<(), String> {
    for (n, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value =
            strict_document(document, text).map_err(|e| format!("document {}: {e}", n + 1))?;
        if value.is_null() {
            continue;
        }
        let what = format!("document {}", n + 1);
        let text_field =
            |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
        let api_version =
            text_field(&value, "apiVersion").ok_or(format!("{what}: no `apiVersion`"))?;
        let kind = text_field(&value, "kind").ok_or(format!("{what}: no `kind`"))?;
        let metadata = value
            .get("metadata")
            .ok_or(format!("{what} ({kind}): no `metadata`"))?;
        let name =
            text_field(metadata, "name").ok_or(format!("{what} ({kind}): no `metadata.name`"))?;
        if let Some(problem) = name_problem(&kind, &name) {
            return Err(format!("{kind} `{name}`: metadata.name {problem}"));
        }
        let namespace = text_field(metadata, "namespace").unwrap_or_default();
        let group = api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_string();
        let key = (group, kind.clone(), namespace.clone(), name.clone());
        if index.seen.insert(key, ()).is_some() {
            return Err(format!(
                "{kind} `{}{name}` is declared twice in this cluster's manifests",
                if namespace.is_empty() {
                    String::new()
                } else {
                    format!("{namespace}/")
                }
            ));
        }
    }
    Ok(())
}

/// What is wrong with `name` as the name of a `kind` object, if anything: names are
/// DNS-1123 subdomains, labels for Namespace and Service, path segments for RBAC kinds.
pub(super) fn name_problem(kind: &str, name: &str) -> Option<String> {
    if RBAC_KINDS.contains(&kind) {
        let ok = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%']);
        return (!ok).then(|| {
            "is not a valid path segment name (not empty, `.` or `..`, and without `/` or `%`)"
                .to_string()
        });
    }
    let strict_label = matches!(kind, "Namespace" | "Service");
    if is_dns_name(name, strict_label) {
        return None;
    }
    Some(format!(
        "is not a valid DNS-1123 {} (lower-case letters, digits{}; at most {} characters)",
        if strict_label { "label" } else { "subdomain" },
        if strict_label {
            " and `-`"
        } else {
            ", `-` and `.`"
        },
        if strict_label { 63 } else { 253 },
    ))
}

pub(super) fn is_dns_name(name: &str, label: bool) -> bool {
    let max = if label { 63 } else { 253 };
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.');
    !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && (label
            || name
                .split('.')
                .all(|part| !part.is_empty() && part.len() <= 63))
}
