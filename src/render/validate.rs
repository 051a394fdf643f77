//! Validation of rendered artifacts: CloudFormation structure and references,
//! Kubernetes object identity, and the deletions list.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest template body CloudFormation accepts from S3; above 51,200 bytes the body
/// cannot be passed inline, which apply handles by uploading.
pub const MAX_TEMPLATE_BYTES: usize = 1_048_576;

const PSEUDO_PARAMETERS: [&str; 8] = [
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// Check a rendered CloudFormation template (YAML with long-form intrinsics) and
/// return it as pretty JSON.
pub fn cloudformation(text: &str) -> Result<String, String> {
    let template: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let hint = if text.contains(" !") {
            " (short-form tags like `!Ref` are not supported; write `Ref: X`)"
        } else {
            ""
        };
        format!("not valid YAML: {e}{hint}")
    })?;
    let Value::Object(top) = &template else {
        return Err("the template is not a mapping".into());
    };
    let Some(Value::Object(resources)) = top.get("Resources") else {
        return Err("no `Resources` mapping".into());
    };
    if resources.is_empty() {
        return Err("`Resources` is empty".into());
    }
    for (name, resource) in resources {
        match resource.get("Type") {
            Some(Value::String(_)) => {}
            _ => return Err(format!("resource `{name}` has no `Type`")),
        }
    }
    let parameters: BTreeSet<&str> = match top.get("Parameters") {
        Some(Value::Object(p)) => p.keys().map(String::as_str).collect(),
        _ => BTreeSet::new(),
    };
    let conditions: BTreeSet<&str> = match top.get("Conditions") {
        Some(Value::Object(c)) => c.keys().map(String::as_str).collect(),
        _ => BTreeSet::new(),
    };
    let mut refs = References::default();
    refs.walk(&template, "");
    let mut used = BTreeSet::new();
    for (target, at) in &refs.refs {
        if parameters.contains(target.as_str()) {
            used.insert(target.clone());
        } else if !resources.contains_key(target) && !PSEUDO_PARAMETERS.contains(&target.as_str()) {
            return Err(format!(
                "`Ref` to `{target}` at {at} names no parameter, resource or pseudo parameter"
            ));
        }
    }
    for (target, at) in &refs.attributes {
        if !resources.contains_key(target) {
            return Err(format!(
                "`Fn::GetAtt` on `{target}` at {at} names no resource"
            ));
        }
    }
    for (condition, at) in &refs.conditions {
        if !conditions.contains(condition.as_str()) {
            return Err(format!(
                "condition `{condition}` at {at} is not declared in `Conditions`"
            ));
        }
    }
    let unused: Vec<&&str> = parameters.iter().filter(|p| !used.contains(**p)).collect();
    if !unused.is_empty() {
        return Err(format!(
            "parameter{} {} declared but never used",
            if unused.len() == 1 { "" } else { "s" },
            unused
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut json = serde_json::to_string_pretty(&template).map_err(|e| e.to_string())?;
    json.push('\n');
    if json.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "template body is {} bytes; CloudFormation accepts at most {MAX_TEMPLATE_BYTES}",
            json.len()
        ));
    }
    Ok(json)
}

/// References found in a template, with the JSON path where each occurs.
#[derive(Default)]
struct References {
    refs: Vec<(String, String)>,
    attributes: Vec<(String, String)>,
    conditions: Vec<(String, String)>,
}

impl References {
    fn walk(&mut self, value: &Value, at: &str) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let here = format!("{at}/{key}");
                    match (key.as_str(), inner) {
                        ("Ref", Value::String(target)) => {
                            self.refs.push((target.clone(), here.clone()))
                        }
                        ("Fn::GetAtt", Value::Array(parts)) => {
                            if let Some(Value::String(target)) = parts.first() {
                                self.attributes.push((target.clone(), here.clone()));
                            }
                        }
                        ("Fn::GetAtt", Value::String(dotted)) => {
                            let target = dotted.split('.').next().unwrap_or("");
                            self.attributes.push((target.to_string(), here.clone()));
                        }
                        ("Fn::Sub", Value::String(text)) => self.substitutions(text, &[], &here),
                        ("Fn::Sub", Value::Array(parts)) => {
                            if let (Some(Value::String(text)), Some(Value::Object(vars))) =
                                (parts.first(), parts.get(1))
                            {
                                let local: Vec<&str> = vars.keys().map(String::as_str).collect();
                                self.substitutions(text, &local, &here);
                            }
                        }
                        ("Condition", Value::String(name))
                            if at.contains("/Resources/") || at.contains("/Outputs/") =>
                        {
                            self.conditions.push((name.clone(), here.clone()));
                        }
                        ("Fn::If", Value::Array(parts)) => {
                            if let Some(Value::String(name)) = parts.first() {
                                self.conditions.push((name.clone(), here.clone()));
                            }
                        }
                        _ => {}
                    }
                    self.walk(inner, &here);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }

    /// `${Name}` and `${Resource.Attribute}` in `Fn::Sub` strings (`${!x}` is literal).
    fn substitutions(&mut self, text: &str, local: &[&str], at: &str) {
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { break };
            let name = &after[..end];
            rest = &after[end + 1..];
            if name.starts_with('!') || local.contains(&name) {
                continue;
            }
            match name.split_once('.') {
                Some((resource, _)) => self.attributes.push((resource.to_string(), at.to_string())),
                None => self.refs.push((name.to_string(), at.to_string())),
            }
        }
    }
}

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
        let value = Value::deserialize(document)
            .map_err(|e| format!("document {}: not valid YAML: {e}", n + 1))?;
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
        let strict_label = matches!(kind.as_str(), "Namespace" | "Service");
        if !is_dns_name(&name, strict_label) {
            return Err(format!(
                "{kind} `{name}`: metadata.name is not a valid DNS-1123 {} (lower-case letters, digits{}; at most {} characters)",
                if strict_label { "label" } else { "subdomain" },
                if strict_label {
                    " and `-`"
                } else {
                    ", `-` and `.`"
                },
                if strict_label { 63 } else { 253 },
            ));
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

fn is_dns_name(name: &str, label: bool) -> bool {
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

/// `deletions.yaml`: objects to remove before and after applying manifests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deletions {
    #[serde(default)]
    pub pre_apply: Vec<DeletionEntry>,
    #[serde(default)]
    pub post_apply: Vec<DeletionEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionEntry {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_owner: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
}

pub fn deletions(text: &str) -> Result<Deletions, String> {
    let deletions: Deletions = if text.trim().is_empty() {
        Deletions::default()
    } else {
        serde_yaml_ng::from_str::<Option<Deletions>>(text)
            .map_err(|e| format!("not a valid deletions list: {e}"))?
            .unwrap_or_default()
    };
    for (list, entries) in [
        ("pre_apply", &deletions.pre_apply),
        ("post_apply", &deletions.post_apply),
    ] {
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{list}[{i}] ({})", entry.kind);
            let selectors = [
                entry.name.is_some(),
                entry.selector.is_some(),
                entry.labels.is_some(),
            ];
            if selectors.iter().filter(|s| **s).count() != 1 {
                return Err(format!(
                    "{at}: needs exactly one of `name`, `selector`, `labels`"
                ));
            }
            if let Some(policy) = &entry.propagation_policy
                && !matches!(policy.as_str(), "Orphan" | "Background" | "Foreground")
            {
                return Err(format!(
                    "{at}: propagation_policy must be Orphan, Background or Foreground, not `{policy}`"
                ));
            }
            if entry.grace_period_seconds.is_some_and(|g| g < 0) {
                return Err(format!("{at}: grace_period_seconds must not be negative"));
            }
        }
    }
    Ok(deletions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangling_ref_is_rejected() {
        let text = "Resources:\n  Group:\n    Type: AWS::AutoScaling::AutoScalingGroup\n    Properties:\n      LaunchTemplate:\n        LaunchTemplateId:\n          Ref: Template\n";
        let err = cloudformation(text).unwrap_err();
        assert!(err.contains("`Ref` to `Template`"), "{err}");
        assert!(
            err.contains("/Resources/Group/Properties/LaunchTemplate/LaunchTemplateId/Ref"),
            "{err}"
        );
    }

    #[test]
    fn unused_parameter_and_sub_references_are_checked() {
        let base = "Parameters:\n  VpcId:\n    Type: String\n  Unused:\n    Type: String\nResources:\n  Sg:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription:\n        Fn::Sub: \"sg in ${VpcId} for ${AWS::StackName}\"\n";
        assert!(cloudformation(base).unwrap_err().contains("`Unused`"));
        let fixed = base.replace("  Unused:\n    Type: String\n", "");
        assert!(cloudformation(&fixed).is_ok());
        let dangling = fixed.replace("${VpcId}", "${Missing.Arn}");
        assert!(cloudformation(&dangling).unwrap_err().contains("`Missing`"));
    }

    #[test]
    fn manifest_names_must_be_dns_1123_and_unique() {
        let mut index = ObjectIndex::default();
        let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Cluster_Info\n";
        assert!(manifests(bad, &mut index).unwrap_err().contains("DNS-1123"));
        let good = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-info\n  namespace: kube-system\n";
        manifests(good, &mut index).unwrap();
        assert!(
            manifests(good, &mut index)
                .unwrap_err()
                .contains("declared twice")
        );
        let other_namespace = good.replace("kube-system", "default");
        manifests(&other_namespace, &mut index).unwrap();
    }

    #[test]
    fn deleting_an_applied_object_is_rejected() {
        let mut index = ObjectIndex::default();
        manifests("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: coredns\n  namespace: kube-system\n", &mut index).unwrap();
        let d = deletions(
            "post_apply:\n- kind: Deployment\n  namespace: kube-system\n  name: coredns\n",
        )
        .unwrap();
        assert!(
            deletions_spare(&d, &index)
                .unwrap_err()
                .contains("which the manifests apply")
        );
        let other =
            deletions("post_apply:\n- kind: Deployment\n  namespace: default\n  name: coredns\n")
                .unwrap();
        deletions_spare(&other, &index).unwrap();
    }

    #[test]
    fn deletion_entries_need_exactly_one_selector() {
        assert!(deletions("pre_apply:\n- kind: Deployment\n  namespace: kube-system\n").is_err());
        assert!(deletions("post_apply:\n- kind: Deployment\n  namespace: kube-system\n  name: a\n  labels: {app: a}\n").is_err());
        let ok = deletions("pre_apply:\n- kind: Deployment\n  namespace: kube-system\n  name: old\n  propagation_policy: Orphan\n").unwrap();
        assert_eq!(ok.pre_apply[0].name.as_deref(), Some("old"));
    }
}
