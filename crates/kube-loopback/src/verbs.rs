//! The object verbs — get, list, create, replace, patch (with server-side apply), delete — and
//! what they share: body decoding, the checks every write goes through, and how a stored object
//! is shown to clients.

mod delete;
mod read;
mod write;

pub(crate) use delete::{DeleteOptions, delete, delete_collection, delete_object};
pub(crate) use read::{get, list};
pub(crate) use write::{create, patch, replace};

use serde_json::{Map, Value, json};

use crate::catalog::ResourceType;
use crate::eviction;
use crate::fields::record_update;
use crate::router::{ApiRequest, Query, Target};
use crate::state::State;
use crate::status::ApiError;
use crate::store::{ObjectKey, Store};
use crate::validation::{validate_definition, validate_metadata};

pub(crate) fn object_key(target: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(
        &target.resource,
        target.namespace.as_deref().unwrap_or_default(),
        name,
    )
}

pub(crate) fn meta_str<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"][key].as_str()
}

/// Sets a metadata field; objects reaching here are maps with a `metadata` map (checked by
/// `shape_object`), anything else is left alone.
pub(crate) fn set_meta(object: &mut Value, key: &str, value: Value) {
    if let Some(metadata) = object.as_object_mut().and_then(|o| {
        o.entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
    }) {
        metadata.insert(key.to_string(), value);
    }
}

pub(crate) fn remove_meta(object: &mut Value, key: &str) {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        metadata.remove(key);
    }
}

fn set_top(object: &mut Value, key: &str, value: Option<Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(value) => map.insert(key.to_string(), value),
            None => map.remove(key),
        };
    }
}

/// An object as clients see it: `apiVersion`/`kind` of the version asked for and, for
/// PodDisruptionBudgets, a status computed now as the disruption controller would.
pub(crate) fn present(store: &Store, resource: &ResourceType, object: &Value) -> Value {
    let mut shown = object.clone();
    if resource.is("policy", "poddisruptionbudgets") {
        set_top(
            &mut shown,
            "status",
            Some(eviction::budget_status(store, object)),
        );
    }
    set_top(
        &mut shown,
        "apiVersion",
        Some(json!(resource.api_version())),
    );
    set_top(&mut shown, "kind", Some(json!(resource.kind)));
    shown
}

/// Whether the client asked for `PartialObjectMetadata` (kube's `get_metadata`/`list_metadata`).
fn wants_metadata_only(request: &ApiRequest) -> bool {
    request.accept.contains("as=PartialObjectMetadata")
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object["metadata"],
    })
}

/// `dryRun=All` (the only value the API server accepts).
fn dry_run(query: &Query) -> Result<bool, ApiError> {
    match query.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "unsupported dry run value {other:?}: only \"All\" is supported"
        ))),
    }
}

/// The manager a write is recorded under: `fieldManager`, else the user agent's product name.
fn field_manager(request: &ApiRequest) -> Result<String, ApiError> {
    match request.query.get("fieldManager") {
        Some(manager) if manager.len() > 128 => Err(ApiError::invalid_kind(
            "PatchOptions.meta.k8s.io",
            "meta.k8s.io",
            "",
            vec![crate::status::Cause::invalid(
                "fieldManager",
                manager,
                "must be no more than 128 characters",
            )],
        )),
        Some(manager) if !manager.is_empty() => Ok(manager.to_string()),
        _ => Ok(request
            .user_agent
            .split('/')
            .next()
            .filter(|product| !product.is_empty())
            .unwrap_or("unknown")
            .to_string()),
    }
}

/// Decodes a JSON (or YAML) request body.
fn parse_body(request: &ApiRequest) -> Result<Value, ApiError> {
    if request.content_type.contains("yaml") {
        serde_yaml_ng::from_slice(&request.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else if request.content_type.is_empty() || request.content_type.contains("json") {
        serde_json::from_slice(&request.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
    } else {
        Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {:?})",
                request.content_type
            ),
        ))
    }
}

/// The decoding checks of a write body (400 where the API server's decoder fails) and the
/// identity it must share with the URL: `apiVersion`, `kind`, namespace and, if given, name.
fn shape_object(
    resource: &ResourceType,
    url_namespace: Option<&str>,
    url_name: Option<&str>,
    body: Value,
) -> Result<Value, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let expected_version = resource.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(expected_version));
        }
        Some(v) if v == expected_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(resource.kind));
        }
        Some(k) if k == resource.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    check_metadata_types(metadata)?;
    if resource.namespaced() {
        let url_namespace = url_namespace.unwrap_or_default();
        match metadata.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                metadata.insert("namespace".into(), json!(url_namespace));
            }
            Some(ns) if ns == url_namespace => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    } else {
        metadata.remove("namespace");
    }
    if let Some(url_name) = url_name {
        match metadata.get("name").and_then(Value::as_str) {
            None | Some("") => {
                metadata.insert("name".into(), json!(url_name));
            }
            Some(name) if name == url_name => {}
            Some(name) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({url_name})"
                )));
            }
        }
    }
    Ok(Value::Object(map))
}

/// Types the Go decoder would reject before validation runs.
fn check_metadata_types(metadata: &Map<String, Value>) -> Result<(), ApiError> {
    let string_map = |key: &str| match metadata.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.values().all(Value::is_string),
        Some(_) => false,
    };
    let list_of = |key: &str, item: fn(&Value) -> bool| match metadata.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Array(items)) => items.iter().all(item),
        Some(_) => false,
    };
    let strings = [
        "name",
        "namespace",
        "generateName",
        "resourceVersion",
        "uid",
    ];
    for key in strings {
        if metadata
            .get(key)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return Err(ApiError::bad_request(format!(
                "metadata.{key} must be a string"
            )));
        }
    }
    for key in ["labels", "annotations"] {
        if !string_map(key) {
            return Err(ApiError::bad_request(format!(
                "metadata.{key} must be a map of strings to strings"
            )));
        }
    }
    if !list_of("finalizers", Value::is_string) {
        return Err(ApiError::bad_request(
            "metadata.finalizers must be a list of strings",
        ));
    }
    if !list_of("ownerReferences", Value::is_object) {
        return Err(ApiError::bad_request(
            "metadata.ownerReferences must be a list of objects",
        ));
    }
    Ok(())
}

fn is_definition(resource: &ResourceType) -> bool {
    resource.is("apiextensions.k8s.io", "customresourcedefinitions")
}

fn validate(resource: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let mut causes = validate_metadata(resource, object);
    if is_definition(resource) {
        causes.extend(validate_definition(object));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        let name = meta_str(object, "name").unwrap_or_default();
        Err(ApiError::invalid(resource, name, causes))
    }
}

/// What the API server fills in on create for some kinds (no general defaulting).
pub(crate) fn apply_create_defaults(resource: &ResourceType, object: &mut Value) {
    if resource.is("", "namespaces") {
        let name = meta_str(object, "name").unwrap_or_default().to_string();
        let mut labels = object["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        set_meta(object, "labels", Value::Object(labels));
        if object["spec"]["finalizers"].is_null() {
            set_top(
                object,
                "spec",
                Some(json!({ "finalizers": ["kubernetes"] })),
            );
        }
        set_top(object, "status", Some(json!({ "phase": "Active" })));
    } else if resource.is("", "pods") && object["status"]["phase"].is_null() {
        let mut status = object["status"].as_object().cloned().unwrap_or_default();
        status.insert("phase".into(), json!("Pending"));
        set_top(object, "status", Some(Value::Object(status)));
    } else if is_definition(resource) {
        let stored: Vec<Value> = object["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["storage"] == json!(true))
            .map(|v| v["name"].clone())
            .collect();
        let established = |kind: &str, reason: &str| {
            json!({"type": kind, "status": "True", "reason": reason, "message": "",
                   "lastTransitionTime": object["metadata"]["creationTimestamp"]})
        };
        let status = json!({
            "conditions": [established("NamesAccepted", "NoConflicts"),
                           established("Established", "InitialNamesAccepted")],
            "acceptedNames": object["spec"]["names"],
            "storedVersions": stored,
        });
        set_top(object, "status", Some(status));
    }
}

/// What a stored object change sets in motion elsewhere: a CRD serves (or changes) its types.
fn after_write(state: &mut State, resource: &ResourceType, object: &Value) {
    if is_definition(resource) {
        state.catalog.define(object);
    }
}

/// Stores a new object after the create checks: namespace exists (404), valid (422), not
/// already there (409). A dry run stops before storing and leaves `resourceVersion` empty.
pub(crate) fn create_object(
    state: &mut State,
    resource: &ResourceType,
    mut object: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let namespace = meta_str(&object, "namespace")
        .unwrap_or_default()
        .to_string();
    if resource.namespaced() && !namespace.is_empty() && !state.store.namespace_exists(&namespace) {
        return Err(ApiError::namespace_not_found(&namespace));
    }
    if meta_str(&object, "name").unwrap_or_default().is_empty()
        && let Some(prefix) = meta_str(&object, "generateName").filter(|p| !p.is_empty())
    {
        let prefix: String = prefix.chars().take(58).collect();
        let name = format!("{prefix}{}", state.store.next_name_suffix());
        set_meta(&mut object, "name", json!(name));
    }
    validate(resource, &object)?;
    let name = meta_str(&object, "name").unwrap_or_default().to_string();
    let key = ObjectKey::new(resource, &namespace, &name);
    if state.store.get(&key).is_some() {
        return Err(ApiError::already_exists(resource, &name));
    }
    let uid = state.store.next_uid();
    set_meta(&mut object, "uid", json!(uid));
    set_meta(&mut object, "creationTimestamp", json!(state.store.now()));
    set_meta(&mut object, "generation", json!(1));
    remove_meta(&mut object, "deletionTimestamp");
    apply_create_defaults(resource, &mut object);
    if dry_run {
        remove_meta(&mut object, "resourceVersion");
        return Ok(object);
    }
    set_meta(
        &mut object,
        "resourceVersion",
        json!(state.store.next_revision()),
    );
    state.store.put(key, object.clone());
    after_write(state, resource, &object);
    Ok(object)
}

/// How an update is made.
pub(crate) struct Write<'a> {
    pub(crate) manager: &'a str,
    pub(crate) dry_run: bool,
    /// Through the `status` subresource: only `status` may change.
    pub(crate) status_only: bool,
    /// Record the change as an `Update` by `manager` (apply records its own ownership).
    pub(crate) record_ownership: bool,
}

const SERVER_SET_METADATA: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "resourceVersion",
];

/// Stores a changed object: server-set metadata and (for the main resource of kinds with a
/// status subresource) status carried over, ownership recorded, validated, `generation` bumped
/// when more than metadata and status changed. An update that changes nothing stores nothing
/// and keeps the `resourceVersion`, like the API server.
pub(crate) fn update_object(
    state: &mut State,
    resource: &ResourceType,
    key: &ObjectKey,
    live: &Value,
    mut updated: Value,
    write: &Write,
) -> Result<Value, ApiError> {
    for field in SERVER_SET_METADATA {
        match live["metadata"].get(field) {
            Some(value) => set_meta(&mut updated, field, value.clone()),
            None => remove_meta(&mut updated, field),
        }
    }
    if write.status_only {
        let status = updated.get("status").cloned();
        updated = live.clone();
        set_top(&mut updated, "status", status);
    } else if resource.status_subresource {
        set_top(&mut updated, "status", live.get("status").cloned());
    }
    if write.record_ownership && !write.status_only {
        let now = state.store.now().to_string();
        record_update(
            Some(live),
            &mut updated,
            write.manager,
            resource.status_subresource,
            &now,
        );
    }
    validate(resource, &updated)?;
    if spec_changed(live, &updated) {
        let generation = live["metadata"]["generation"]
            .as_i64()
            .unwrap_or(0)
            .saturating_add(1);
        set_meta(&mut updated, "generation", json!(generation));
    }
    if updated == *live || write.dry_run {
        return Ok(updated);
    }
    set_meta(
        &mut updated,
        "resourceVersion",
        json!(state.store.next_revision()),
    );
    let finalized = !updated["metadata"]["deletionTimestamp"].is_null()
        && updated["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
    if finalized {
        delete::finish_deletion(state, key, &updated, &DeleteOptions::default());
    } else {
        state.store.put(key.clone(), updated.clone());
        after_write(state, resource, &updated);
    }
    Ok(updated)
}

/// Whether anything but metadata and status differs: what `metadata.generation` counts.
fn spec_changed(before: &Value, after: &Value) -> bool {
    let without = |object: &Value| -> Value {
        let mut object = object.clone();
        if let Some(map) = object.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        object
    };
    without(before) != without(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Scope;

    #[test]
    fn shape_fills_identity_from_the_url() {
        let maps = ResourceType::new("v1", "ConfigMap", "configmaps", Scope::Namespaced);
        let shaped = shape_object(&maps, Some("default"), Some("a"), json!({"data": {}})).unwrap();
        assert_eq!(
            shaped["metadata"],
            json!({"namespace": "default", "name": "a"})
        );
        assert_eq!(shaped["kind"], json!("ConfigMap"));
        let error = shape_object(
            &maps,
            Some("default"),
            Some("a"),
            json!({"metadata": {"namespace": "other"}}),
        )
        .unwrap_err();
        assert_eq!(error.code, 400);
        let error = shape_object(
            &maps,
            Some("default"),
            None,
            json!({"metadata": {"labels": "x"}}),
        )
        .unwrap_err();
        assert_eq!(error.code, 400);
    }

    #[test]
    fn generation_counts_spec_changes_only() {
        let before = json!({"metadata": {"labels": {}}, "spec": {"a": 1}, "status": {}});
        let mut after = before.clone();
        after["metadata"]["labels"] = json!({"x": "y"});
        after["status"] = json!({"ready": true});
        assert!(!spec_changed(&before, &after));
        after["spec"]["a"] = json!(2);
        assert!(spec_changed(&before, &after));
    }
}
