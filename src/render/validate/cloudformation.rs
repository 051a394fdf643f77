//! CloudFormation templates: section quotas, logical ids and references.

use std::collections::BTreeSet;

use serde_json::Value;

use super::yaml::{YamlError, yaml};

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

/// CloudFormation quotas: entries per template section, and the length of a logical id.
const MAX_SECTION_ENTRIES: [(&str, usize); 4] = [
    ("Resources", 500),
    ("Parameters", 200),
    ("Outputs", 200),
    ("Mappings", 200),
];
const MAX_LOGICAL_ID: usize = 255;

/// Sections whose keys are logical ids.
const LOGICAL_ID_SECTIONS: [&str; 5] = [
    "Resources",
    "Parameters",
    "Mappings",
    "Conditions",
    "Outputs",
];
/// Check a rendered CloudFormation template (YAML with long-form intrinsics) and
/// return it as pretty JSON.
pub fn cloudformation(text: &str) -> Result<String, String> {
    let template = yaml(text).map_err(|e| match e {
        YamlError::Syntax(e) => {
            let hint = if text.contains(" !") {
                " (short-form tags like `!Ref` are not supported; write `Ref: X`)"
            } else {
                ""
            };
            format!("not valid YAML: {e}{hint}")
        }
        YamlError::RepeatedKey(problem) => problem,
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
    for (section, max) in MAX_SECTION_ENTRIES {
        if let Some(Value::Object(entries)) = top.get(section)
            && entries.len() > max
        {
            return Err(format!(
                "`{section}` has {} entries; CloudFormation accepts at most {max} (split the template into more stacks)",
                entries.len()
            ));
        }
    }
    for section in LOGICAL_ID_SECTIONS {
        let Some(Value::Object(entries)) = top.get(section) else {
            continue;
        };
        for id in entries.keys() {
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) || id.is_empty() {
                return Err(format!(
                    "logical id `{id}` at /{section} is not alphanumeric (CloudFormation accepts only A-Z, a-z and 0-9: write e.g. `{}`)",
                    suggested_logical_id(id)
                ));
            }
            if id.len() > MAX_LOGICAL_ID {
                return Err(format!(
                    "logical id `{id}` at /{section} has {} characters; CloudFormation accepts at most {MAX_LOGICAL_ID}",
                    id.len()
                ));
            }
        }
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
    if let Some(both) = parameters.iter().find(|p| resources.contains_key(**p)) {
        return Err(format!(
            "`{both}` is both a parameter and a resource; logical ids must be unique in the template"
        ));
    }
    let conditions: BTreeSet<&str> = match top.get("Conditions") {
        Some(Value::Object(c)) => c.keys().map(String::as_str).collect(),
        _ => BTreeSet::new(),
    };
    for (name, resource) in resources {
        let at = format!("/Resources/{name}/DependsOn");
        let targets: Vec<(String, &Value)> = match resource.get("DependsOn") {
            None => continue,
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{at}/{i}"), item))
                .collect(),
            Some(single) => vec![(at.clone(), single)],
        };
        for (at, target) in targets {
            let Value::String(target) = target else {
                return Err(format!(
                    "`DependsOn` at {at} is not a resource name (write a logical id or a list of them)"
                ));
            };
            if target == name {
                return Err(format!(
                    "`DependsOn` to `{target}` at {at} names the resource itself"
                ));
            }
            if !resources.contains_key(target) {
                return Err(format!(
                    "`DependsOn` to `{target}` at {at} names no resource"
                ));
            }
        }
    }
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
    let mappings = match top.get("Mappings") {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    };
    for (map, keys, at) in &refs.lookups {
        let Some(Value::Object(mapping)) = mappings.and_then(|m| m.get(map)) else {
            return Err(format!(
                "`Fn::FindInMap` on `{map}` at {at} names no mapping in `Mappings`"
            ));
        };
        // Literal keys must exist too (a variable key, such as `Ref: AWS::Region`, is
        // resolved only when the stack is deployed).
        let mut level = mapping;
        for key in keys {
            let Some(key) = key else { break };
            match level.get(key) {
                Some(Value::Object(inner)) => level = inner,
                Some(_) => break,
                None => {
                    return Err(format!(
                        "`Fn::FindInMap` at {at}: mapping `{map}` has no key `{key}`"
                    ));
                }
            }
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

/// `id` with everything but ASCII letters and digits dropped, each dropped run
/// capitalising the next letter (`etcd-backup_bucket` → `EtcdBackupBucket`).
fn suggested_logical_id(id: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in id.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = false;
        } else {
            upper = true;
        }
    }
    if out.is_empty() {
        "Resource1".into()
    } else {
        out
    }
}

/// References found in a template, with the JSON path where each occurs.
#[derive(Default)]
struct References {
    refs: Vec<(String, String)>,
    attributes: Vec<(String, String)>,
    conditions: Vec<(String, String)>,
    /// `Fn::FindInMap` with a literal map name: the map name, and each key that is a
    /// literal string (`None` for one that is not; no keys when there is a default).
    lookups: Vec<(String, Vec<Option<String>>, String)>,
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
                        ("Condition", Value::String(name)) if names_condition(at) => {
                            self.conditions.push((name.clone(), here.clone()));
                        }
                        ("Fn::If", Value::Array(parts)) => {
                            if let Some(Value::String(name)) = parts.first() {
                                self.conditions.push((name.clone(), here.clone()));
                            }
                        }
                        ("Fn::FindInMap", Value::Array(parts)) => {
                            if let Some(Value::String(map)) = parts.first() {
                                // A fourth argument is a default (AWS::LanguageExtensions):
                                // then missing keys are allowed.
                                let keys = if parts.len() == 3 {
                                    parts[1..]
                                        .iter()
                                        .map(|k| k.as_str().map(str::to_string))
                                        .collect()
                                } else {
                                    Vec::new()
                                };
                                self.lookups.push((map.clone(), keys, here.clone()));
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

/// Whether a `Condition: NAME` key at `at` (the path of the mapping holding it) names
/// a condition: on a resource or an output, or inside `Conditions`. Elsewhere (an IAM
/// policy statement, say) `Condition` is an ordinary property.
fn names_condition(at: &str) -> bool {
    let parts: Vec<&str> = at.split('/').collect();
    matches!(parts.as_slice(), ["", "Resources" | "Outputs", _]) || at.starts_with("/Conditions/")
}
