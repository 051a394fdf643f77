//! CloudFormation templates: section quotas, logical ids and references.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

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
/// Why a rendered CloudFormation template is refused. The messages name the logical
/// id or the JSON path of the problem, since the rendered text has no template lines.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("not valid YAML: {source}{}", if *.short_form_tags {
        " (short-form tags like `!Ref` are not supported; write `Ref: X`)"
    } else {
        ""
    })]
    Syntax {
        #[source]
        source: serde_yaml_ng::Error,
        /// The text looks like it uses `!Ref`-style tags, the likely cause.
        short_form_tags: bool,
    },
    #[error("{0}")]
    RepeatedKey(String),
    #[error("the template is not a mapping")]
    NotAMapping,
    #[error("no `Resources` mapping")]
    NoResources,
    #[error("`Resources` is empty")]
    EmptyResources,
    #[error(
        "`{section}` has {entries} entries; CloudFormation accepts at most {max} (split the template into more stacks)"
    )]
    SectionTooLarge {
        section: &'static str,
        entries: usize,
        max: usize,
    },
    #[error(
        "logical id `{id}` at /{section} is not alphanumeric (CloudFormation accepts only A-Z, a-z and 0-9: write e.g. `{suggestion}`)"
    )]
    LogicalIdNotAlphanumeric {
        id: String,
        section: &'static str,
        suggestion: String,
    },
    #[error(
        "logical id `{id}` at /{section} has {} characters; CloudFormation accepts at most {MAX_LOGICAL_ID}",
        id.len()
    )]
    LogicalIdTooLong { id: String, section: &'static str },
    #[error("resource `{0}` has no `Type`")]
    NoType(String),
    #[error("`{0}` is both a parameter and a resource; logical ids must be unique in the template")]
    ParameterIsResource(String),
    #[error("`DependsOn` at {at} is not a resource name (write a logical id or a list of them)")]
    DependsOnNotAName { at: String },
    #[error("`DependsOn` to `{target}` at {at} names the resource itself")]
    DependsOnItself { target: String, at: String },
    #[error("`DependsOn` to `{target}` at {at} names no resource")]
    DependsOnNothing { target: String, at: String },
    #[error("`Ref` to `{target}` at {at} names no parameter, resource or pseudo parameter")]
    DanglingRef { target: String, at: String },
    #[error("`Fn::GetAtt` on `{target}` at {at} names no resource")]
    DanglingGetAtt { target: String, at: String },
    #[error("condition `{condition}` at {at} is not declared in `Conditions`")]
    UndeclaredCondition { condition: String, at: String },
    #[error("`Fn::FindInMap` on `{map}` at {at} names no mapping in `Mappings`")]
    UnknownMapping { map: String, at: String },
    #[error("`Fn::FindInMap` at {at}: mapping `{map}` has no key `{key}`")]
    UnknownMappingKey {
        map: String,
        key: String,
        at: String,
    },
    #[error(
        "parameter{} {} declared but never used",
        if .0.len() == 1 { "" } else { "s" },
        .0.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
    )]
    UnusedParameters(Vec<String>),
    #[error("the template cannot be written as JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("template body is {0} bytes; CloudFormation accepts at most {MAX_TEMPLATE_BYTES}")]
    TooLarge(usize),
}

/// Check a rendered CloudFormation template (YAML with long-form intrinsics) and
/// return it as pretty JSON.
pub fn cloudformation(text: &str) -> Result<String, TemplateError> {
    let template = yaml(text).map_err(|e| match e {
        YamlError::Syntax(source) => TemplateError::Syntax {
            source,
            short_form_tags: text.contains(" !"),
        },
        YamlError::RepeatedKey(problem) => TemplateError::RepeatedKey(problem),
    })?;
    let Value::Object(top) = &template else {
        return Err(TemplateError::NotAMapping);
    };
    let Some(Value::Object(resources)) = top.get("Resources") else {
        return Err(TemplateError::NoResources);
    };
    if resources.is_empty() {
        return Err(TemplateError::EmptyResources);
    }
    check_sections(top)?;
    for (name, resource) in resources {
        match resource.get("Type") {
            Some(Value::String(_)) => {}
            _ => return Err(TemplateError::NoType(name.clone())),
        }
    }
    let parameters: BTreeSet<&str> = match top.get("Parameters") {
        Some(Value::Object(p)) => p.keys().map(String::as_str).collect(),
        _ => BTreeSet::new(),
    };
    if let Some(both) = parameters.iter().find(|p| resources.contains_key(**p)) {
        return Err(TemplateError::ParameterIsResource(both.to_string()));
    }
    check_depends_on(resources)?;
    let used = check_references(&template, top, resources, &parameters)?;
    let unused: Vec<String> = parameters
        .iter()
        .filter(|p| !used.contains(**p))
        .map(|p| p.to_string())
        .collect();
    if !unused.is_empty() {
        return Err(TemplateError::UnusedParameters(unused));
    }
    let mut json = serde_json::to_string_pretty(&template).map_err(TemplateError::Json)?;
    json.push('\n');
    if json.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError::TooLarge(json.len()));
    }
    Ok(json)
}

/// Section quotas and the form of logical ids.
fn check_sections(top: &Map<String, Value>) -> Result<(), TemplateError> {
    for (section, max) in MAX_SECTION_ENTRIES {
        if let Some(Value::Object(entries)) = top.get(section)
            && entries.len() > max
        {
            return Err(TemplateError::SectionTooLarge {
                section,
                entries: entries.len(),
                max,
            });
        }
    }
    for section in LOGICAL_ID_SECTIONS {
        let Some(Value::Object(entries)) = top.get(section) else {
            continue;
        };
        for id in entries.keys() {
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) || id.is_empty() {
                return Err(TemplateError::LogicalIdNotAlphanumeric {
                    id: id.clone(),
                    section,
                    suggestion: suggested_logical_id(id),
                });
            }
            if id.len() > MAX_LOGICAL_ID {
                return Err(TemplateError::LogicalIdTooLong {
                    id: id.clone(),
                    section,
                });
            }
        }
    }
    Ok(())
}

/// Every `DependsOn` names another resource of the template.
fn check_depends_on(resources: &Map<String, Value>) -> Result<(), TemplateError> {
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
                return Err(TemplateError::DependsOnNotAName { at });
            };
            if target == name {
                return Err(TemplateError::DependsOnItself {
                    target: target.clone(),
                    at,
                });
            }
            if !resources.contains_key(target) {
                return Err(TemplateError::DependsOnNothing {
                    target: target.clone(),
                    at,
                });
            }
        }
    }
    Ok(())
}

/// Every `Ref`, `Fn::GetAtt`, condition and `Fn::FindInMap` names something the
/// template declares; returns the parameters that are referred to.
fn check_references<'t>(
    template: &Value,
    top: &Map<String, Value>,
    resources: &Map<String, Value>,
    parameters: &BTreeSet<&'t str>,
) -> Result<BTreeSet<&'t str>, TemplateError> {
    let mut refs = References::default();
    refs.walk(template, "");
    let mut used = BTreeSet::new();
    for (target, at) in &refs.refs {
        if let Some(parameter) = parameters.get(target.as_str()) {
            used.insert(*parameter);
        } else if !resources.contains_key(target) && !PSEUDO_PARAMETERS.contains(&target.as_str()) {
            return Err(TemplateError::DanglingRef {
                target: target.clone(),
                at: at.clone(),
            });
        }
    }
    for (target, at) in &refs.attributes {
        if !resources.contains_key(target) {
            return Err(TemplateError::DanglingGetAtt {
                target: target.clone(),
                at: at.clone(),
            });
        }
    }
    let conditions: BTreeSet<&str> = match top.get("Conditions") {
        Some(Value::Object(c)) => c.keys().map(String::as_str).collect(),
        _ => BTreeSet::new(),
    };
    for (condition, at) in &refs.conditions {
        if !conditions.contains(condition.as_str()) {
            return Err(TemplateError::UndeclaredCondition {
                condition: condition.clone(),
                at: at.clone(),
            });
        }
    }
    let mappings = match top.get("Mappings") {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    };
    for (map, keys, at) in &refs.lookups {
        let Some(Value::Object(mapping)) = mappings.and_then(|m| m.get(map)) else {
            return Err(TemplateError::UnknownMapping {
                map: map.clone(),
                at: at.clone(),
            });
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
                    return Err(TemplateError::UnknownMappingKey {
                        map: map.clone(),
                        key: key.clone(),
                        at: at.clone(),
                    });
                }
            }
        }
    }
    Ok(used)
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
