//! Server-side apply, approximated without schemas (see `fields` for how structure is inferred).
//!
//! The applied configuration is merged into the live object: maps recursively, named lists item
//! by item, anything else replaced. The manager then owns exactly the fields it applied. A field
//! the configuration sets to a different value than the live one, owned by another manager,
//! is a conflict unless `force` is set, which moves ownership to the applier. Fields the manager
//! applied last time but not now are removed, unless another manager owns them too.

use std::cmp::Reverse;

use serde_json::{Map, Value};

use crate::fields::{
    FieldPath, FieldSet, ManagedEntry, display_path, is_item, is_named_list, item_name,
    read_managed_fields, remove_at, value_at, write_managed_fields,
};

/// A field the applied configuration would change, owned by another manager.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conflict {
    manager: String,
    api_version: String,
    path: FieldPath,
}

impl Conflict {
    fn with_manager(&self) -> String {
        format!(
            "conflict with \"{}\" using {}",
            self.manager, self.api_version
        )
    }

    /// `(field, message)` for a `Status` cause.
    pub(crate) fn cause(&self) -> (String, String) {
        (display_path(&self.path), self.with_manager())
    }
}

/// The API server's wording: `Apply failed with 1 conflict: conflict with "kubectl" using v1: .data.key`.
pub(crate) fn conflict_message(conflicts: &[Conflict]) -> String {
    let count = match conflicts.len() {
        1 => "1 conflict".to_string(),
        n => format!("{n} conflicts"),
    };
    let described: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{}: {}", c.with_manager(), display_path(&c.path)))
        .collect();
    format!("Apply failed with {count}: {}", described.join(", "))
}

/// Who applies, and how.
pub(crate) struct Applier<'a> {
    pub(crate) manager: &'a str,
    pub(crate) force: bool,
    /// The resource has a status subresource, so apply to the main resource ignores `status`.
    pub(crate) without_status: bool,
    pub(crate) now: &'a str,
}

/// Metadata a configuration may carry but that apply never merges.
const UNMERGED_METADATA: [&str; 7] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
    "selfLink",
];

/// The object that results from applying `config` over `live` (or creating it), with
/// `managedFields` updated; the caller stores it.
pub(crate) fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    applier: &Applier,
) -> Result<Value, Vec<Conflict>> {
    let config = clean_config(config, applier.without_status);
    let applied_fields = FieldSet::of_object(&config, applier.without_status);
    let api_version = config["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let own_entry = ManagedEntry {
        manager: applier.manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.clone(),
        time: applier.now.to_string(),
        subresource: None,
        fields: applied_fields.clone(),
    };
    let Some(live) = live else {
        let mut created = config;
        write_managed_fields(&mut created, &[own_entry]);
        return Ok(created);
    };

    let mut entries = read_managed_fields(live);
    let conflicts = find_conflicts(live, &config, &applied_fields, &entries, applier.manager);
    if !conflicts.is_empty() {
        if !applier.force {
            return Err(conflicts);
        }
        for conflict in &conflicts {
            for entry in entries.iter_mut().filter(|e| e.manager == conflict.manager) {
                entry.fields.remove(&conflict.path);
            }
        }
    }

    let mut merged = live.clone();
    merge_config(&mut merged, &config);

    let own = entries.iter().position(|e| e.is(applier.manager, "Apply"));
    let previous = own.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let mut dropped: Vec<&FieldPath> = previous
        .iter()
        .filter(|path| !applied_fields.covers(path))
        .collect();
    // Deepest first, so an item's fields go before the item.
    dropped.sort_by_key(|path| Reverse(path.len()));
    for path in dropped {
        let owned_elsewhere = entries
            .iter()
            .any(|e| !e.is(applier.manager, "Apply") && e.fields.covers(path));
        if !owned_elsewhere {
            remove_at(&mut merged, path);
        }
    }

    match own {
        Some(i) if entries[i].fields == applied_fields => entries[i].api_version = api_version,
        Some(i) => entries[i] = own_entry,
        None => entries.push(own_entry),
    }
    write_managed_fields(&mut merged, &entries);
    Ok(merged)
}

fn find_conflicts(
    live: &Value,
    config: &Value,
    applied_fields: &FieldSet,
    entries: &[ManagedEntry],
    manager: &str,
) -> Vec<Conflict> {
    let mut conflicts = Vec::new();
    for path in applied_fields.iter().filter(|path| !is_item(path)) {
        let Some(current) = value_at(live, path) else {
            continue;
        };
        if value_at(config, path) == Some(current) {
            continue;
        }
        for entry in entries
            .iter()
            .filter(|e| e.manager != manager && e.subresource.is_none() && e.fields.contains(path))
        {
            conflicts.push(Conflict {
                manager: entry.manager.clone(),
                api_version: entry.api_version.clone(),
                path: path.clone(),
            });
        }
    }
    conflicts
}

/// The configuration without nulls (they mean "unset"), server-owned metadata, and — for
/// resources with a status subresource — `status`.
fn clean_config(config: &Value, without_status: bool) -> Value {
    let mut config = strip_nulls(config);
    if let Some(map) = config.as_object_mut() {
        if without_status {
            map.remove("status");
        }
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.retain(|key, _| !UNMERGED_METADATA.contains(&key.as_str()));
        }
    }
    config
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

fn merge_config(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(target), Value::Object(config)) => {
            for (key, value) in config {
                match target.get_mut(key) {
                    Some(existing) => merge_config(existing, value),
                    None => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(target), Value::Array(config))
            if is_named_list(config) && (target.is_empty() || is_named_list(target)) =>
        {
            for item in config {
                match target.iter_mut().find(|t| item_name(t) == item_name(item)) {
                    Some(existing) => merge_config(existing, item),
                    None => target.push(item.clone()),
                }
            }
        }
        (target, config) => *target = config.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn applier(manager: &str, force: bool) -> Applier<'_> {
        Applier {
            manager,
            force,
            without_status: true,
            now: "t",
        }
    }

    fn config(replicas: i64, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}}})
    }

    #[test]
    fn create_then_reapply_removes_dropped_fields() {
        let a = applier("flotilla", false);
        let created = server_side_apply(None, &config(1, json!({"a": "1", "b": "2"})), &a).unwrap();
        let updated = server_side_apply(Some(&created), &config(1, json!({"a": "1"})), &a).unwrap();
        assert_eq!(updated["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(
            updated["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn other_manager_conflicts_unless_forced() {
        let created =
            server_side_apply(None, &config(1, json!({})), &applier("one", false)).unwrap();
        let conflicts = server_side_apply(
            Some(&created),
            &config(2, json!({})),
            &applier("two", false),
        )
        .unwrap_err();
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 1 conflict: conflict with \"one\" using apps/v1: .spec.replicas"
        );
        let forced =
            server_side_apply(Some(&created), &config(2, json!({})), &applier("two", true))
                .unwrap();
        assert_eq!(forced["spec"]["replicas"], json!(2));
        let owners = read_managed_fields(&forced);
        let replicas = vec![
            crate::fields::PathElement::Field("spec".into()),
            crate::fields::PathElement::Field("replicas".into()),
        ];
        assert!(!owners[0].fields.contains(&replicas));
        assert!(owners[1].fields.contains(&replicas));
    }

    #[test]
    fn same_values_are_shared_not_conflicting() {
        let created =
            server_side_apply(None, &config(1, json!({})), &applier("one", false)).unwrap();
        let shared = server_side_apply(
            Some(&created),
            &config(1, json!({})),
            &applier("two", false),
        )
        .unwrap();
        assert_eq!(read_managed_fields(&shared).len(), 2);
    }

    #[test]
    fn named_lists_merge_by_name() {
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}});
        let mut merged = live.clone();
        merge_config(
            &mut merged,
            &json!({"spec": {"containers": [{"name": "b", "image": "2"}]}}),
        );
        assert_eq!(
            merged,
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}})
        );
    }
}
