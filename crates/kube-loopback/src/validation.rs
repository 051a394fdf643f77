//! Object validation the API server does for every kind: names, namespaces, labels, annotations.

use serde_json::Value;

use crate::catalog::{NameRule, ResourceType};
use crate::status::Cause;

const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_RULE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_RULE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `None` when valid, else the reason.
pub(crate) fn dns_subdomain_error(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if s.split('.').all(is_dns_label) {
        None
    } else {
        Some(SUBDOMAIN_RULE.into())
    }
}

fn dns_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        Some("must be no more than 63 characters".into())
    } else if is_dns_label(s) {
        None
    } else {
        Some(LABEL_RULE.into())
    }
}

fn dns1035_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        Some("must be no more than 63 characters".into())
    } else if is_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase()) {
        None
    } else {
        Some(DNS1035_RULE.into())
    }
}

fn path_segment_error(s: &str) -> Option<String> {
    if s == "." || s == ".." {
        Some(format!("may not be '{s}'"))
    } else if s.contains('/') {
        Some("may not contain '/'".into())
    } else if s.contains('%') {
        Some("may not contain '%'".into())
    } else {
        None
    }
}

fn name_error(rule: NameRule, name: &str) -> Option<String> {
    match rule {
        NameRule::Subdomain => dns_subdomain_error(name),
        NameRule::Label => dns_label_error(name),
        NameRule::Dns1035Label => dns1035_error(name),
        NameRule::PathSegment => path_segment_error(name),
    }
}

/// Alphanumeric at both ends, `-_.` inside, at most 63: label values and key name parts.
fn is_qualified_part(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Label and annotation keys: `[prefix/]name`, the prefix a DNS subdomain.
fn qualified_name_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if let Some(why) = dns_subdomain_error(prefix) {
            return Some(format!("prefix part {why}"));
        }
    }
    if name.is_empty() {
        Some("name part must be non-empty".into())
    } else if name.len() > 63 {
        Some("name part must be no more than 63 characters".into())
    } else if !is_qualified_part(name) {
        Some(QUALIFIED_NAME_RULE.into())
    } else {
        None
    }
}

/// Checks the metadata every object has; an empty list means valid.
pub(crate) fn validate_metadata(resource: &ResourceType, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let metadata = &object["metadata"];
    match metadata["name"].as_str() {
        None | Some("") => causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            if let Some(why) = name_error(resource.name_rule, name) {
                causes.push(Cause::invalid("metadata.name", name, &why));
            }
        }
    }
    if resource.namespaced() {
        match metadata["namespace"].as_str() {
            None | Some("") => causes.push(Cause::required("metadata.namespace", "")),
            Some(namespace) => {
                if let Some(why) = dns_label_error(namespace) {
                    causes.push(Cause::invalid("metadata.namespace", namespace, &why));
                }
            }
        }
    }
    if let Some(labels) = metadata["labels"].as_object() {
        for (key, value) in labels {
            if let Some(why) = qualified_name_error(key) {
                causes.push(Cause::invalid("metadata.labels", key, &why));
            }
            match value.as_str() {
                Some(v) if v.is_empty() || is_qualified_part(v) => {}
                Some(v) => {
                    let why = if v.len() > 63 {
                        "must be no more than 63 characters"
                    } else {
                        LABEL_VALUE_RULE
                    };
                    causes.push(Cause::invalid(format!("metadata.labels.{key}"), v, why));
                }
                None => causes.push(Cause::invalid(
                    format!("metadata.labels.{key}"),
                    &value.to_string(),
                    "label values must be strings",
                )),
            }
        }
    }
    if let Some(annotations) = metadata["annotations"].as_object() {
        for (key, value) in annotations {
            if let Some(why) = qualified_name_error(key) {
                causes.push(Cause::invalid("metadata.annotations", key, &why));
            }
            if !value.is_string() {
                causes.push(Cause::invalid(
                    format!("metadata.annotations.{key}"),
                    &value.to_string(),
                    "annotation values must be strings",
                ));
            }
        }
    }
    causes
}

/// What the CRD registry checks before it serves anything.
pub(crate) fn validate_definition(object: &Value) -> Vec<Cause> {
    let spec = &object["spec"];
    let mut causes = Vec::new();
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    }
    if spec["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        let scope = spec["scope"].as_str().unwrap_or_default();
        causes.push(Cause::unsupported(
            "spec.scope",
            scope,
            &["Cluster", "Namespaced"],
        ));
    }
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let expected = format!("{plural}.{group}");
    if !group.is_empty() && !plural.is_empty() && name != expected {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            &format!("must be spec.names.plural+\".\"+spec.group ({expected})"),
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ResourceType, Scope};
    use serde_json::json;

    #[test]
    fn names_follow_the_resource_rule() {
        assert!(dns_subdomain_error("web.example-1").is_none());
        assert!(dns_subdomain_error("Web").is_some());
        assert!(dns_subdomain_error("-web").is_some());
        assert!(dns_label_error("a.b").is_some());
        assert!(dns1035_error("1abc").is_some());
        assert!(path_segment_error("system:controller:x").is_none());
        assert!(path_segment_error("a/b").is_some());
    }

    #[test]
    fn labels_and_annotations() {
        let config_maps = ResourceType::new("v1", "ConfigMap", "configmaps", Scope::Namespaced);
        let good = json!({"metadata": {"name": "a", "namespace": "default",
            "labels": {"app.kubernetes.io/name": "web", "empty": ""},
            "annotations": {"example.com/any": "free text: ok"}}});
        assert!(validate_metadata(&config_maps, &good).is_empty());
        let bad = json!({"metadata": {"name": "a", "namespace": "default",
            "labels": {"bad key": "x", "k": "-x"}}});
        let fields: Vec<String> = validate_metadata(&config_maps, &bad)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["metadata.labels", "metadata.labels.k"]);
    }
}
