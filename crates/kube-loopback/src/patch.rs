//! The non-apply PATCH formats: JSON merge patch (RFC 7386), an approximation of strategic merge
//! patch, and JSON patch (RFC 6902).

use serde_json::Value;

use crate::fields::{is_named_list, item_name};

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Strategic merge patch without the schema: a merge patch in which lists of objects that all
/// have a `name` (containers, env, ports, volumes, ...) merge item by item, `{"$patch": "delete",
/// "name": ...}` removes an item, and other `$` directives are ignored.
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if key.starts_with('$') {
                    continue;
                }
                if value.is_null() {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    strategic_merge_patch(existing, value);
                } else {
                    let mut fresh = value.clone();
                    strip_directives(&mut fresh);
                    target.insert(key.clone(), fresh);
                }
            }
        }
        (Value::Array(target), Value::Array(patch))
            if is_named_list(patch) && (target.is_empty() || is_named_list(target)) =>
        {
            for item in patch {
                let Some(name) = item_name(item) else {
                    continue;
                };
                let position = target.iter().position(|t| item_name(t) == Some(name));
                match (position, item["$patch"].as_str()) {
                    (Some(i), Some("delete")) => {
                        target.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => strategic_merge_patch(&mut target[i], item),
                    (None, _) => {
                        let mut fresh = item.clone();
                        strip_directives(&mut fresh);
                        target.push(fresh);
                    }
                }
            }
        }
        (target, patch) => {
            *target = patch.clone();
            strip_directives(target);
        }
    }
}

fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// RFC 6902 with all six operations; the error says which operation failed and why.
pub(crate) fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let operations = operations
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for (index, operation) in operations.iter().enumerate() {
        apply_operation(target, operation).map_err(|why| format!("operation {index}: {why}"))?;
    }
    Ok(())
}

fn apply_operation(target: &mut Value, operation: &Value) -> Result<(), String> {
    let op = operation["op"].as_str().ok_or("missing \"op\"")?;
    let path = operation["path"].as_str().ok_or("missing \"path\"")?;
    let value = || operation.get("value").cloned().ok_or("missing \"value\"");
    let from = || operation["from"].as_str().ok_or("missing \"from\"");
    match op {
        "add" => add(target, path, value()?),
        "remove" => remove(target, path).map(drop),
        "replace" => {
            remove(target, path)?;
            add(target, path, value()?)
        }
        "move" => {
            let moved = remove(target, from()?)?;
            add(target, path, moved)
        }
        "copy" => {
            let from = from()?;
            let copied = target
                .pointer(from)
                .cloned()
                .ok_or_else(|| format!("\"from\" path {from} does not exist"))?;
            add(target, path, copied)
        }
        "test" => {
            let expected = value()?;
            match target.pointer(path) {
                Some(actual) if *actual == expected => Ok(()),
                _ => Err(format!("test failed: {path} is not {expected}")),
            }
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

/// Splits a JSON pointer into its parent pointer and unescaped last token.
fn split_pointer(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("invalid path {path:?}"))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, token) = split_pointer(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(token, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let index = if token == "-" {
                items.len()
            } else {
                token
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| format!("index {token} out of range at {path}"))?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("parent of {path} does not exist")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, token) = split_pointer(path)?;
    let removed = match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&token),
        Some(Value::Array(items)) => token
            .parse::<usize>()
            .ok()
            .filter(|i| *i < items.len())
            .map(|i| items.remove(i)),
        _ => None,
    };
    removed.ok_or_else(|| format!("{path} does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "list": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "list": [3]}));
    }

    #[test]
    fn strategic_patch_merges_named_lists() {
        let mut doc =
            json!({"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]});
        strategic_merge_patch(
            &mut doc,
            &json!({"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"},
                {"name": "a", "$patch": "delete"}],
                "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}]}),
        );
        assert_eq!(
            doc,
            json!({"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}]})
        );
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"metadata": {"labels": {"a/b": "1"}}, "items": [1, 2]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/labels/a~1b", "value": "1"},
                {"op": "add", "path": "/items/-", "value": 3},
                {"op": "replace", "path": "/items/0", "value": 0},
                {"op": "remove", "path": "/metadata/labels/a~1b"},
                {"op": "copy", "from": "/items", "path": "/copy"},
                {"op": "move", "from": "/copy", "path": "/moved"}
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"labels": {}}, "items": [0, 2, 3], "moved": [0, 2, 3]})
        );
    }

    #[test]
    fn failed_json_patch_test_is_an_error() {
        let mut doc = json!({"a": 1});
        let error = json_patch(&mut doc, &json!([{"op": "test", "path": "/a", "value": 2}]));
        assert!(error.unwrap_err().contains("test failed"));
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/b"}])).is_err());
    }
}
