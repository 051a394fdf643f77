//! Validation of rendered artifacts: CloudFormation structure and references,
//! Kubernetes object identity, and the deletions list.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

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

/// Built-in kinds whose objects belong to no namespace. A deletion entry for one of
/// them takes no `namespace`; every other kind (custom resources included) needs one.
const CLUSTER_SCOPED_KINDS: [&str; 19] = [
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// RBAC kinds, whose names are path segments (`system:coredns`), not DNS-1123 names.
const RBAC_KINDS: [&str; 4] = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

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

/// Why rendered text is not acceptable YAML.
pub enum YamlError {
    /// The YAML parser's own error.
    Syntax(serde_yaml_ng::Error),
    /// A mapping has the same key twice (which plain deserialization would collapse
    /// into the last one); the message names the key, the mapping and the lines.
    RepeatedKey(String),
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            YamlError::Syntax(e) => write!(f, "not valid YAML: {e}"),
            YamlError::RepeatedKey(problem) => f.write_str(problem),
        }
    }
}

/// Parse one YAML document as JSON, rejecting a mapping key that appears twice.
pub fn yaml(text: &str) -> Result<Value, YamlError> {
    strict_document(serde_yaml_ng::Deserializer::from_str(text), text)
}

/// One document of `text` as JSON, rejecting repeated keys.
fn strict_document<'de>(
    document: serde_yaml_ng::Deserializer<'de>,
    text: &str,
) -> Result<Value, YamlError> {
    let repeated = RefCell::new(None);
    let seed = StrictValue {
        at: String::new(),
        repeated: &repeated,
    };
    seed.deserialize(document)
        .map_err(|e| match repeated.take() {
            Some(Repeated { at, key }) => YamlError::RepeatedKey(repeated_key(text, &e, &at, &key)),
            None => YamlError::Syntax(e),
        })
}

/// "key `name` appears twice in /metadata (lines 3 and 5)": the lines are found by
/// looking for the key at the indentation of the block mapping, which starts where
/// the parser's error points; for a flow mapping (`{a: 1, a: 2}`) only its start is known.
fn repeated_key(text: &str, error: &serde_yaml_ng::Error, at: &str, key: &str) -> String {
    let mapping = if at.is_empty() {
        "the top-level mapping".to_string()
    } else {
        at.to_string()
    };
    let place = match error.location() {
        Some(start) => {
            let lines = key_lines(text, start.line(), start.column(), key);
            match lines.as_slice() {
                [first, second, ..] => format!(" (lines {first} and {second})"),
                _ => format!(" (the mapping at line {})", start.line()),
            }
        }
        None => String::new(),
    };
    format!(
        "key `{key}` appears twice in {mapping}{place}; CloudFormation and kubectl reject repeated keys (other YAML readers keep only the last), so remove one"
    )
}

/// Lines (1-based) where `key` is an entry of the block mapping whose first key is at
/// `line`, `column` (1-based).
fn key_lines(text: &str, line: usize, column: usize, key: &str) -> Vec<usize> {
    let indent = column.saturating_sub(1);
    let forms = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    let is_entry = |rest: &str| {
        forms.iter().any(|form| {
            rest.strip_prefix(form.as_str())
                .is_some_and(|after| after.is_empty() || after.starts_with([' ', '\t']))
        })
    };
    let mut found = Vec::new();
    for (n, content) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let rest = if n + 1 == line {
            // The mapping may start after a `- ` or on a `key:` line's remainder.
            content.get(indent..).unwrap_or("")
        } else {
            let trimmed = content.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let own = content.len() - trimmed.len();
            if own < indent || trimmed.starts_with("---") || trimmed.starts_with("...") {
                break;
            }
            if own > indent {
                continue;
            }
            trimmed
        };
        if is_entry(rest) {
            found.push(n + 1);
        }
    }
    found
}

/// The first repeated key found while parsing, and the path of its mapping.
struct Repeated {
    at: String,
    key: String,
}

/// Deserializes any YAML value into JSON like `serde_json::Value` does, but fails on
/// a mapping key that appears twice, recording it in `repeated`.
struct StrictValue<'a> {
    at: String,
    repeated: &'a RefCell<Option<Repeated>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Value::deserialize(de::value::I128Deserializer::<E>::new(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Value::deserialize(de::value::U128Deserializer::<E>::new(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue {
            at: format!("{}/{}", self.at, items.len()),
            repeated: self.repeated,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let message = format!("duplicate key `{key}`");
                *self.repeated.borrow_mut() = Some(Repeated { at: self.at, key });
                return Err(de::Error::custom(message));
            }
            let value = map.next_value_seed(StrictValue {
                at: format!("{}/{key}", self.at),
                repeated: self.repeated,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
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
fn name_problem(kind: &str, name: &str) -> Option<String> {
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
        // Typed parsing would keep the last of two `labels` keys, say.
        yaml(text).map_err(|e| match e {
            YamlError::Syntax(e) => format!("not a valid deletions list: {e}"),
            YamlError::RepeatedKey(problem) => problem,
        })?;
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
            if let Err(problem) = deletion_scope(entry) {
                return Err(format!("{at}: {problem}"));
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

/// What a deletion entry selects must be bounded: a namespace for every kind that is
/// not cluster-scoped, a valid name, and a selector that does not match everything.
fn deletion_scope(entry: &DeletionEntry) -> Result<(), String> {
    let kind = entry.kind.as_str();
    if kind.is_empty() {
        return Err("`kind` is empty".into());
    }
    let cluster_scoped = CLUSTER_SCOPED_KINDS.contains(&kind);
    match (&entry.namespace, cluster_scoped) {
        (Some(namespace), true) => {
            return Err(format!(
                "{kind} is cluster-scoped, so it takes no `namespace` (found `{namespace}`); remove it"
            ));
        }
        (None, false) => {
            return Err(format!(
                "needs a `namespace`: without one it selects {kind} objects in every namespace (only the built-in cluster-scoped kinds {} go without; any other kind, custom resources included, needs one)",
                CLUSTER_SCOPED_KINDS.join(", ")
            ));
        }
        (Some(namespace), false) if !is_dns_name(namespace, true) => {
            return Err(format!(
                "namespace `{namespace}` is not a valid DNS-1123 label (lower-case letters, digits and `-`; at most 63 characters)"
            ));
        }
        _ => {}
    }
    if let Some(name) = &entry.name
        && let Some(problem) = name_problem(kind, name)
    {
        return Err(format!("name `{name}` {problem}"));
    }
    if let Some(selector) = &entry.selector {
        if selector.trim().is_empty() {
            return Err(format!(
                "`selector` is empty, which selects every {kind}{}; give a label selector such as `app=NAME`, or a `name`",
                if cluster_scoped {
                    ""
                } else {
                    " in the namespace"
                }
            ));
        }
        if !has_positive_requirement(selector) {
            return Err(format!(
                "selector `{selector}` has no requirement an object must meet (only `!key`, `!=` or `notin`), so it selects every {kind} without those labels; add one such as `app=NAME`"
            ));
        }
    }
    if entry.labels.as_ref().is_some_and(|l| l.is_empty()) {
        return Err(format!(
            "`labels` is empty, which selects every {kind}{}; give at least one label, or a `name`",
            if cluster_scoped {
                ""
            } else {
                " in the namespace"
            }
        ));
    }
    Ok(())
}

/// Whether a label selector (`a=b,c in (d,e),!f`) has a requirement that only objects
/// carrying some label meet: `=`, `==`, `in` or bare existence, not `!key`, `!=`, `notin`.
fn has_positive_requirement(selector: &str) -> bool {
    let mut requirements = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                requirements.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    requirements.push(&selector[start..]);
    requirements.iter().map(|r| r.trim()).any(|r| {
        !r.is_empty()
            && !r.starts_with('!')
            && !r.contains("!=")
            && !r
                .split(|c: char| c.is_whitespace() || c == '(')
                .any(|word| word == "notin")
    })
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

    /// A small valid template, with `extra` appended to its `Resources`.
    fn template(extra: &str) -> String {
        format!(
            "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n  Queue:\n    Type: AWS::SQS::Queue\n{extra}"
        )
    }

    #[test]
    fn repeated_keys_in_a_template_are_rejected_with_their_lines() {
        let err = cloudformation("Resources:\n  A:\n    Type: X\n  A:\n    Type: Y\n").unwrap_err();
        assert!(
            err.contains("key `A` appears twice in /Resources (lines 2 and 4)"),
            "{err}"
        );
        let nested = template(
            "  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: a\n      # comment\n      TopicName: b\n",
        );
        let err = cloudformation(&nested).unwrap_err();
        assert!(
            err.contains(
                "key `TopicName` appears twice in /Resources/Topic/Properties (lines 9 and 11)"
            ),
            "{err}"
        );
        let top = format!("{}Resources:\n  C:\n    Type: Z\n", template(""));
        let err = cloudformation(&top).unwrap_err();
        assert!(
            err.contains("in the top-level mapping (lines 1 and 6)"),
            "{err}"
        );
        // A flow mapping: only where it starts is known.
        let flow = template(
            "  Topic:\n    Type: AWS::SNS::Topic\n    Properties: {TopicName: a, TopicName: b}\n",
        );
        let err = cloudformation(&flow).unwrap_err();
        assert!(err.contains("key `TopicName` appears twice"), "{err}");
        assert!(err.contains("(the mapping at line 8)"), "{err}");
    }

    #[test]
    fn strict_parsing_reads_values_like_serde_json() {
        let text = "a: 1\nb: -2\nc: 1.5\nd: ~\ne: [x, {f: true}]\ng: 18446744073709551615\nh: '07'\ni: .nan\n";
        let strict = yaml(text).map_err(|e| e.to_string()).unwrap();
        let plain: Value = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(strict, plain);
        assert!(matches!(yaml("a: [1"), Err(YamlError::Syntax(_))));
    }

    #[test]
    fn repeated_keys_in_manifests_and_deletions_are_rejected() {
        let mut index = ObjectIndex::default();
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: x\n  name: c\n";
        let err = manifests(text, &mut index).unwrap_err();
        assert!(
            err.starts_with("document 2: key `name` appears twice in /metadata (lines 10 and 12)"),
            "{err}"
        );
        let containers = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: x\n    name: b\n";
        let err = manifests(containers, &mut ObjectIndex::default()).unwrap_err();
        assert!(
            err.contains("key `name` appears twice in /spec/containers/0 (lines 7 and 9)"),
            "{err}"
        );
        let err = deletions(
            "pre_apply:\n- kind: Deployment\n  namespace: a\n  labels:\n    app: x\n    app: y\n",
        )
        .unwrap_err();
        assert!(
            err.contains("key `app` appears twice in /pre_apply/0/labels (lines 5 and 6)"),
            "{err}"
        );
    }

    #[test]
    fn logical_ids_must_be_alphanumeric_and_short() {
        let err = cloudformation(&template(
            "  etcd-backup_bucket:\n    Type: AWS::S3::Bucket\n",
        ))
        .unwrap_err();
        assert!(
            err.contains("logical id `etcd-backup_bucket` at /Resources is not alphanumeric"),
            "{err}"
        );
        assert!(err.contains("`EtcdBackupBucket`"), "{err}");
        let err = cloudformation(&format!(
            "{}Outputs:\n  Bucket.Name:\n    Value: x\n",
            template("")
        ))
        .unwrap_err();
        assert!(err.contains("`Bucket.Name` at /Outputs"), "{err}");
        let long = "A".repeat(256);
        let err = cloudformation(&template(&format!(
            "  {long}:\n    Type: AWS::S3::Bucket\n"
        )))
        .unwrap_err();
        assert!(err.contains("has 256 characters"), "{err}");
        let longest = "A".repeat(255);
        cloudformation(&template(&format!(
            "  {longest}:\n    Type: AWS::S3::Bucket\n"
        )))
        .unwrap();
        let both = format!("Parameters:\n  Bucket:\n    Type: String\n{}", template(""));
        let err = cloudformation(&both).unwrap_err();
        assert!(
            err.contains("`Bucket` is both a parameter and a resource"),
            "{err}"
        );
    }

    #[test]
    fn depends_on_must_name_other_resources() {
        let ok = template("  Topic:\n    Type: AWS::SNS::Topic\n    DependsOn: [Bucket, Queue]\n");
        cloudformation(&ok).unwrap();
        let err = cloudformation(&ok.replace("[Bucket, Queue]", "[Bucket, Missing]")).unwrap_err();
        assert_eq!(
            err,
            "`DependsOn` to `Missing` at /Resources/Topic/DependsOn/1 names no resource"
        );
        let err = cloudformation(&ok.replace("[Bucket, Queue]", "Missing")).unwrap_err();
        assert!(
            err.contains(
                "`DependsOn` to `Missing` at /Resources/Topic/DependsOn names no resource"
            ),
            "{err}"
        );
        let err = cloudformation(&ok.replace("[Bucket, Queue]", "Topic")).unwrap_err();
        assert!(err.contains("names the resource itself"), "{err}");
        let err = cloudformation(&ok.replace("[Bucket, Queue]", "{Ref: Bucket}")).unwrap_err();
        assert!(
            err.contains("`DependsOn` at /Resources/Topic/DependsOn is not a resource name"),
            "{err}"
        );
    }

    #[test]
    fn find_in_map_must_name_a_mapping_and_its_literal_keys() {
        let ok = format!(
            "Mappings:\n  RegionMap:\n    eu-west-1:\n      Ami: ami-1\n{}  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName:\n        Fn::FindInMap: [RegionMap, {{Ref: AWS::Region}}, Ami]\n",
            template("")
        );
        cloudformation(&ok).unwrap();
        cloudformation(&ok.replace("{Ref: AWS::Region}", "eu-west-1")).unwrap();
        let err = cloudformation(&ok.replace("[RegionMap,", "[ZoneMap,")).unwrap_err();
        assert_eq!(
            err,
            "`Fn::FindInMap` on `ZoneMap` at /Resources/Topic/Properties/TopicName/Fn::FindInMap names no mapping in `Mappings`"
        );
        let err = cloudformation(&ok.replace("{Ref: AWS::Region}", "us-east-1")).unwrap_err();
        assert!(
            err.contains("mapping `RegionMap` has no key `us-east-1`"),
            "{err}"
        );
        let err = cloudformation(
            &ok.replace(", Ami]", ", Kernel]")
                .replace("{Ref: AWS::Region}", "eu-west-1"),
        )
        .unwrap_err();
        assert!(err.contains("has no key `Kernel`"), "{err}");
        // With a default value (fourth argument) missing keys are allowed.
        cloudformation(&ok.replace(", Ami]", ", Kernel, {DefaultValue: x}]")).unwrap();
        let no_mappings = template(
            "  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName:\n        Fn::FindInMap: [RegionMap, a, b]\n",
        );
        assert!(
            cloudformation(&no_mappings)
                .unwrap_err()
                .contains("names no mapping")
        );
    }

    #[test]
    fn conditions_must_be_declared() {
        let ok = format!(
            "Parameters:\n  Env:\n    Type: String\nConditions:\n  IsProd:\n    Fn::Equals: [{{Ref: Env}}, production]\n{}  Topic:\n    Type: AWS::SNS::Topic\n    Condition: IsProd\n    Properties:\n      TopicName:\n        Fn::If: [IsProd, a, b]\n      Condition: NotACondition\n",
            template("")
        );
        // `Condition` inside Properties is an ordinary property.
        cloudformation(&ok).unwrap();
        let err =
            cloudformation(&ok.replace("Condition: IsProd", "Condition: IsTest")).unwrap_err();
        assert_eq!(
            err,
            "condition `IsTest` at /Resources/Topic/Condition is not declared in `Conditions`"
        );
        let err = cloudformation(&ok.replace("[IsProd, a, b]", "[IsTest, a, b]")).unwrap_err();
        assert!(
            err.contains("condition `IsTest` at /Resources/Topic/Properties/TopicName/Fn::If"),
            "{err}"
        );
    }

    #[test]
    fn template_sections_are_limited() {
        let resources = |n: usize| {
            (0..n)
                .map(|i| format!("  R{i}:\n    Type: AWS::SNS::Topic\n"))
                .collect::<String>()
        };
        cloudformation(&format!("Resources:\n{}", resources(500))).unwrap();
        let err = cloudformation(&format!("Resources:\n{}", resources(501))).unwrap_err();
        assert!(
            err.starts_with("`Resources` has 501 entries; CloudFormation accepts at most 500"),
            "{err}"
        );
        let parameters: String = (0..201)
            .map(|i| format!("  P{i}:\n    Type: String\n"))
            .collect();
        let err =
            cloudformation(&format!("Parameters:\n{parameters}{}", template(""))).unwrap_err();
        assert!(err.contains("`Parameters` has 201 entries"), "{err}");
        let outputs: String = (0..201)
            .map(|i| format!("  O{i}:\n    Value: x\n"))
            .collect();
        let err = cloudformation(&format!("{}Outputs:\n{outputs}", template(""))).unwrap_err();
        assert!(err.contains("`Outputs` has 201 entries"), "{err}");
        let mappings: String = (0..201)
            .map(|i| format!("  M{i}:\n    a:\n      b: c\n"))
            .collect();
        let err = cloudformation(&format!("Mappings:\n{mappings}{}", template(""))).unwrap_err();
        assert!(err.contains("`Mappings` has 201 entries"), "{err}");
    }

    #[test]
    fn deletions_need_a_namespace_exactly_for_namespaced_kinds() {
        let err = deletions("post_apply:\n- kind: Deployment\n  name: coredns\n").unwrap_err();
        assert!(
            err.starts_with("post_apply[0] (Deployment): needs a `namespace`: without one it selects Deployment objects in every namespace"),
            "{err}"
        );
        // Unknown kinds (custom resources) are namespaced unless listed.
        let err = deletions("pre_apply:\n- kind: Certificate\n  labels: {app: x}\n").unwrap_err();
        assert!(
            err.contains("custom resources included, needs one"),
            "{err}"
        );
        let err = deletions(
            "pre_apply:\n- kind: ClusterRole\n  namespace: kube-system\n  name: system:coredns\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "pre_apply[0] (ClusterRole): ClusterRole is cluster-scoped, so it takes no `namespace` (found `kube-system`); remove it"
        );
        deletions("pre_apply:\n- kind: ClusterRole\n  name: system:coredns\n- kind: Namespace\n  name: old\n- kind: StorageClass\n  selector: app=x\n").unwrap();
        let err =
            deletions("pre_apply:\n- kind: Deployment\n  namespace: Kube_System\n  name: a\n")
                .unwrap_err();
        assert!(
            err.contains("namespace `Kube_System` is not a valid DNS-1123 label"),
            "{err}"
        );
    }

    #[test]
    fn deletion_names_and_selectors_are_bounded() {
        let entry = |rest: &str| {
            deletions(&format!(
                "post_apply:\n- kind: Deployment\n  namespace: kube-system\n{rest}"
            ))
        };
        let err = entry("  name: Core_DNS\n").unwrap_err();
        assert_eq!(
            err,
            "post_apply[0] (Deployment): name `Core_DNS` is not a valid DNS-1123 subdomain (lower-case letters, digits, `-` and `.`; at most 253 characters)"
        );
        assert!(entry("  name: a:b\n").is_err());
        for empty in ["  selector: \"\"\n", "  selector: \"  \"\n"] {
            let err = entry(empty).unwrap_err();
            assert!(
                err.contains(
                    "`selector` is empty, which selects every Deployment in the namespace"
                ),
                "{err}"
            );
        }
        let err = entry("  labels: {}\n").unwrap_err();
        assert!(
            err.contains("`labels` is empty, which selects every Deployment in the namespace"),
            "{err}"
        );
        for negative in ["!app", "app!=x,!tier", "app notin (a,b)"] {
            let err = entry(&format!("  selector: {negative:?}\n")).unwrap_err();
            assert!(
                err.contains("has no requirement an object must meet"),
                "{negative}: {err}"
            );
        }
        for positive in [
            "app=x",
            "app",
            "app in (a,b),!tier",
            "k8s-app=metrics-server,!app.kubernetes.io/managed-by",
        ] {
            entry(&format!("  selector: {positive:?}\n")).unwrap();
        }
        assert!(
            deletions("pre_apply:\n- kind: \"\"\n  name: a\n")
                .unwrap_err()
                .contains("`kind` is empty")
        );
        assert!(
            entry("  name: a\n  propagation_policy: Later\n")
                .unwrap_err()
                .contains("propagation_policy")
        );
    }

    #[test]
    fn rbac_names_are_path_segments() {
        let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: system:flotilla\n";
        manifests(role, &mut ObjectIndex::default()).unwrap();
        let err = manifests(
            &role.replace("system:flotilla", "a/b"),
            &mut ObjectIndex::default(),
        )
        .unwrap_err();
        assert!(err.contains("is not a valid path segment name"), "{err}");
        let map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: system:flotilla\n";
        assert!(
            manifests(map, &mut ObjectIndex::default())
                .unwrap_err()
                .contains("DNS-1123")
        );
    }
}
