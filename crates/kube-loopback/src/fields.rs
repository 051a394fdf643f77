//! Field paths, field sets and `metadata.managedFields`: who owns which fields of an object.
//!
//! Without OpenAPI schemas the structure is inferred from the JSON: maps are granular (one path
//! per key), lists whose items are all objects with a string `name` are keyed by that name (as
//! Kubernetes keys containers, env, volumes, ...), and every other list is atomic (one path).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathElement {
    /// A map key: `f:<key>` in FieldsV1.
    Field(String),
    /// The item of a named list: `k:{"name":"<name>"}` in FieldsV1.
    Named(String),
    /// Any other FieldsV1 key (`v:`, `i:`, other `k:` keys), kept verbatim from stored objects.
    Other(String),
}

pub(crate) type FieldPath = Vec<PathElement>;

pub(crate) fn item_name(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

/// Whether a list merges item by item: non-empty, and every item an object with a `name`.
pub(crate) fn is_named_list(items: &[Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| i.is_object() && item_name(i).is_some())
}

/// The value a path leads to.
pub(crate) fn value_at<'a>(object: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |value, element| match element {
            PathElement::Field(key) => value.get(key),
            PathElement::Named(name) => value
                .as_array()?
                .iter()
                .find(|item| item_name(item) == Some(name.as_str())),
            PathElement::Other(_) => None,
        })
}

/// Removes what a path leads to; false if it was not there.
pub(crate) fn remove_at(object: &mut Value, path: &[PathElement]) -> bool {
    let Some((last, parent_path)) = path.split_last() else {
        return false;
    };
    let mut parent = object;
    for element in parent_path {
        let next = match element {
            PathElement::Field(key) => parent.get_mut(key),
            PathElement::Named(name) => parent.as_array_mut().and_then(|items| {
                items
                    .iter_mut()
                    .find(|item| item_name(item) == Some(name.as_str()))
            }),
            PathElement::Other(_) => None,
        };
        let Some(next) = next else {
            return false;
        };
        parent = next;
    }
    match last {
        PathElement::Field(key) => parent
            .as_object_mut()
            .is_some_and(|map| map.remove(key).is_some()),
        PathElement::Named(name) => parent.as_array_mut().is_some_and(|items| {
            let before = items.len();
            items.retain(|item| item_name(item) != Some(name.as_str()));
            items.len() != before
        }),
        PathElement::Other(_) => false,
    }
}

/// `.spec.containers[name="app"].image`, as conflict messages print paths.
pub(crate) fn display_path(path: &[PathElement]) -> String {
    path.iter()
        .map(|element| match element {
            PathElement::Field(key) => format!(".{key}"),
            PathElement::Named(name) => format!("[name={}]", json!(name)),
            PathElement::Other(raw) => format!("[{raw}]"),
        })
        .collect()
}

/// A set of field paths. A path ending in a list item stands for the item itself (FieldsV1 `.`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSet(BTreeSet<FieldPath>);

/// Metadata the server owns: never part of a field set.
const SERVER_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

impl FieldSet {
    /// The fields an object sets, leaving out identity, server-owned metadata and, for
    /// resources with a status subresource, `status`.
    pub(crate) fn of_object(object: &Value, without_status: bool) -> Self {
        let mut set = FieldSet::default();
        let Some(map) = object.as_object() else {
            return set;
        };
        for (key, value) in map {
            let tracked = match key.as_str() {
                "apiVersion" | "kind" => false,
                "status" => !without_status,
                _ => true,
            };
            if !tracked {
                continue;
            }
            let path = vec![PathElement::Field(key.clone())];
            if key == "metadata" {
                for (meta_key, meta_value) in value.as_object().into_iter().flatten() {
                    if !SERVER_METADATA.contains(&meta_key.as_str()) {
                        let mut meta_path = path.clone();
                        meta_path.push(PathElement::Field(meta_key.clone()));
                        set.collect(meta_value, meta_path);
                    }
                }
            } else {
                set.collect(value, path);
            }
        }
        set
    }

    fn collect(&mut self, value: &Value, path: FieldPath) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let mut child_path = path.clone();
                    child_path.push(PathElement::Field(key.clone()));
                    self.collect(child, child_path);
                }
            }
            Value::Array(items) if is_named_list(items) => {
                for item in items {
                    let mut item_path = path.clone();
                    item_path.push(PathElement::Named(
                        item_name(item).unwrap_or_default().into(),
                    ));
                    self.0.insert(item_path.clone());
                    self.collect(item, item_path);
                }
            }
            _ => {
                self.0.insert(path);
            }
        }
    }

    /// Reads a FieldsV1 tree (`{"f:spec": {"f:replicas": {}}}`).
    pub(crate) fn from_fields_v1(tree: &Value) -> Self {
        let mut set = FieldSet::default();
        set.read_tree(tree, Vec::new());
        set
    }

    fn read_tree(&mut self, tree: &Value, path: FieldPath) {
        for (key, child) in tree.as_object().into_iter().flatten() {
            if key == "." {
                self.0.insert(path.clone());
                continue;
            }
            let element = if let Some(field) = key.strip_prefix("f:") {
                PathElement::Field(field.to_string())
            } else if let Some(name) = key
                .strip_prefix("k:")
                .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
                .filter(|k| k.len() == 1)
                .and_then(|k| k.get("name").and_then(Value::as_str).map(String::from))
            {
                PathElement::Named(name)
            } else {
                PathElement::Other(key.clone())
            };
            let mut child_path = path.clone();
            child_path.push(element);
            if child.as_object().is_some_and(Map::is_empty) {
                self.0.insert(child_path);
            } else {
                self.read_tree(child, child_path);
            }
        }
    }

    /// Writes the FieldsV1 tree; a path with paths below it gets a `.` entry.
    pub(crate) fn to_fields_v1(&self) -> Value {
        fields_v1_node(self.0.iter().map(Vec::as_slice).collect())
    }

    pub(crate) fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    /// Whether the set has this path or any path below it.
    pub(crate) fn covers(&self, path: &FieldPath) -> bool {
        self.0.iter().any(|p| p.starts_with(path))
    }

    pub(crate) fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    pub(crate) fn remove(&mut self, path: &FieldPath) {
        self.0.remove(path);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter()
    }
}

/// The FieldsV1 node for paths relative to it (an empty path is the node itself).
fn fields_v1_node(paths: Vec<&[PathElement]>) -> Value {
    let mut owns_itself = false;
    let mut children: Vec<(String, Vec<&[PathElement]>)> = Vec::new();
    for path in paths {
        let Some((first, rest)) = path.split_first() else {
            owns_itself = true;
            continue;
        };
        let key = match first {
            PathElement::Field(field) => format!("f:{field}"),
            PathElement::Named(name) => format!("k:{}", json!({ "name": name })),
            PathElement::Other(raw) => raw.clone(),
        };
        match children.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rests)) => rests.push(rest),
            None => children.push((key, vec![rest])),
        }
    }
    let mut node = Map::new();
    if owns_itself && !children.is_empty() {
        node.insert(".".into(), json!({}));
    }
    for (key, rests) in children {
        node.insert(key, fields_v1_node(rests));
    }
    Value::Object(node)
}

/// Whether a path names a list item rather than a value.
pub(crate) fn is_item(path: &[PathElement]) -> bool {
    matches!(path.last(), Some(PathElement::Named(_)))
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManagedEntry {
    pub(crate) manager: String,
    /// `Apply` or `Update`.
    pub(crate) operation: String,
    pub(crate) api_version: String,
    pub(crate) time: String,
    pub(crate) subresource: Option<String>,
    pub(crate) fields: FieldSet,
}

impl ManagedEntry {
    pub(crate) fn is(&self, manager: &str, operation: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.is_none()
    }
}

pub(crate) fn read_managed_fields(object: &Value) -> Vec<ManagedEntry> {
    let text = |entry: &Value, key: &str| entry[key].as_str().unwrap_or_default().to_string();
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| ManagedEntry {
            manager: text(entry, "manager"),
            operation: text(entry, "operation"),
            api_version: text(entry, "apiVersion"),
            time: text(entry, "time"),
            subresource: entry["subresource"].as_str().map(String::from),
            fields: FieldSet::from_fields_v1(&entry["fieldsV1"]),
        })
        .collect()
}

/// Stores the entries, dropping empty ones (as the API server does).
pub(crate) fn write_managed_fields(object: &mut Value, entries: &[ManagedEntry]) {
    let entries: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_fields_v1(),
            });
            if let Some(subresource) = &e.subresource {
                entry["subresource"] = json!(subresource);
            }
            entry
        })
        .collect();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// Records a non-apply write (create, update, merge or JSON patch) by `manager`: it takes over
/// the fields it changed, and fields it removed leave every manager. No conflicts for updates.
pub(crate) fn record_update(
    live: Option<&Value>,
    updated: &mut Value,
    manager: &str,
    without_status: bool,
    now: &str,
) {
    let mut entries = live.map(read_managed_fields).unwrap_or_default();
    let new_fields = FieldSet::of_object(updated, without_status);
    let old_fields = live
        .map(|l| FieldSet::of_object(l, without_status))
        .unwrap_or_default();
    let changed: Vec<&FieldPath> = new_fields
        .iter()
        .filter(|path| match live {
            None => true,
            Some(live) if is_item(path) => value_at(live, path).is_none(),
            Some(live) => value_at(live, path) != value_at(updated, path),
        })
        .collect();
    let removed: Vec<&FieldPath> = old_fields
        .iter()
        .filter(|path| !new_fields.contains(path))
        .collect();
    if changed.is_empty() && removed.is_empty() {
        // Nothing changed hands: keep the entries exactly as stored, so a no-op stays a no-op.
        let stored = live
            .and_then(|l| l["metadata"].get("managedFields"))
            .cloned();
        if let Some(metadata) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
            match stored {
                Some(stored) => metadata.insert("managedFields".into(), stored),
                None => metadata.remove("managedFields"),
            };
        }
        return;
    }
    for entry in &mut entries {
        for path in changed.iter().chain(&removed) {
            entry.fields.remove(path);
        }
    }
    let api_version = updated["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let own = match entries.iter().position(|e| e.is(manager, "Update")) {
        Some(i) => &mut entries[i],
        None => {
            entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.clone(),
                time: String::new(),
                subresource: None,
                fields: FieldSet::default(),
            });
            let last = entries.len() - 1;
            &mut entries[last]
        }
    };
    for path in changed {
        own.fields.insert(path.clone());
    }
    own.time = now.to_string();
    own.api_version = api_version;
    write_managed_fields(updated, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "uid": "u"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "app", "image": "nginx", "args": ["-v"]}
            ]}}},
            "status": {"replicas": 2}
        })
    }

    #[test]
    fn fields_v1_round_trip() {
        let set = FieldSet::of_object(&deployment(), true);
        let tree = set.to_fields_v1();
        assert_eq!(
            tree,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}, "f:args": {}}
                }}}}
            })
        );
        assert_eq!(FieldSet::from_fields_v1(&tree), set);
    }

    #[test]
    fn paths_reach_into_named_lists() {
        let mut object = deployment();
        let image = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("template".into()),
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Named("app".into()),
            PathElement::Field("image".into()),
        ];
        assert_eq!(value_at(&object, &image), Some(&json!("nginx")));
        assert_eq!(
            display_path(&image),
            ".spec.template.spec.containers[name=\"app\"].image"
        );
        assert!(remove_at(&mut object, &image[..5]));
        assert_eq!(object["spec"]["template"]["spec"]["containers"], json!([]));
    }

    #[test]
    fn updates_take_over_changed_fields() {
        let mut live = deployment();
        record_update(None, &mut live, "creator", true, "t0");
        let mut updated = live.clone();
        updated["spec"]["replicas"] = json!(3);
        record_update(Some(&live), &mut updated, "scaler", true, "t1");
        let entries = read_managed_fields(&updated);
        let replicas = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("replicas".into()),
        ];
        assert_eq!(entries.len(), 2);
        assert!(!entries[0].fields.contains(&replicas));
        assert!(entries[1].is("scaler", "Update"));
        assert!(entries[1].fields.contains(&replicas));
    }
}
