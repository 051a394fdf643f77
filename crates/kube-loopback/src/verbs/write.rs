//! Writes: create (POST), replace (PUT) and patch (PATCH, including server-side apply).

use serde_json::{Value, json};

use super::{
    Write, create_object, dry_run, field_manager, meta_str, object_key, parse_body, present,
    remove_meta, shape_object, update_object,
};
use crate::apply::{Applier, Conflict, conflict_message, server_side_apply};
use crate::catalog::ResourceType;
use crate::fields::record_update;
use crate::patch::{json_patch, merge_patch, strategic_merge_patch};
use crate::router::{ApiRequest, Reply, Target};
use crate::state::State;
use crate::status::{ApiError, Cause};

pub(crate) fn create(
    state: &mut State,
    target: &Target,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let resource = &target.resource;
    if resource.namespaced() && target.namespace.is_none() {
        return Err(ApiError::method_not_allowed(format!(
            "{} are created under /namespaces/{{namespace}}/",
            resource.plural
        )));
    }
    let dry_run = dry_run(&request.query)?;
    let mut object = shape_object(
        resource,
        target.namespace.as_deref(),
        None,
        parse_body(request)?,
    )?;
    if meta_str(&object, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let manager = field_manager(request)?;
    remove_meta(&mut object, "managedFields");
    let now = state.store.now().to_string();
    record_update(
        None,
        &mut object,
        &manager,
        resource.status_subresource,
        &now,
    );
    let created = create_object(state, resource, object, dry_run)?;
    Ok(Reply::json(201, present(&state.store, resource, &created)))
}

pub(crate) fn replace(
    state: &mut State,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let resource = &target.resource;
    let dry_run = dry_run(&request.query)?;
    let object = shape_object(
        resource,
        target.namespace.as_deref(),
        Some(name),
        parse_body(request)?,
    )?;
    let key = object_key(target, name);
    let live = state
        .store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    check_preconditions(resource, name, &live, &object)?;
    let manager = field_manager(request)?;
    let write = Write {
        manager: &manager,
        dry_run,
        status_only: target.subresource.is_some(),
        record_ownership: true,
    };
    let updated = update_object(state, resource, &key, &live, object, &write)?;
    Ok(Reply::json(200, present(&state.store, resource, &updated)))
}

/// Optimistic concurrency: a `resourceVersion` or `uid` in the body must match the live object.
fn check_preconditions(
    resource: &ResourceType,
    name: &str,
    live: &Value,
    object: &Value,
) -> Result<(), ApiError> {
    let given = |key: &str| meta_str(object, key).filter(|v| !v.is_empty());
    if let Some(version) = given("resourceVersion")
        && Some(version) != meta_str(live, "resourceVersion")
    {
        return Err(ApiError::stale_resource_version(resource, name));
    }
    if let Some(uid) = given("uid")
        && Some(uid) != meta_str(live, "uid")
    {
        let live_uid = meta_str(live, "uid").unwrap_or_default();
        return Err(ApiError::conflict(
            resource,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {live_uid}"
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PatchType {
    Apply,
    Merge,
    Strategic,
    Json,
}

pub(crate) fn patch(
    state: &mut State,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let patch_type = match request
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
    {
        "application/apply-patch+yaml" => PatchType::Apply,
        "application/merge-patch+json" => PatchType::Merge,
        "application/strategic-merge-patch+json" => PatchType::Strategic,
        "application/json-patch+json" => PatchType::Json,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                ),
            ));
        }
    };
    let dry_run = dry_run(&request.query)?;
    if patch_type == PatchType::Apply {
        return apply(state, target, name, request, dry_run);
    }
    if request.query.get("force").is_some() {
        return Err(patch_options_invalid(Cause {
            reason: "FieldValueForbidden",
            message: "Forbidden: may not be specified for non-apply patch".into(),
            field: "force".into(),
        }));
    }
    let resource = &target.resource;
    let key = object_key(target, name);
    let live = state
        .store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    let document: Value = serde_json::from_slice(&request.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut patched = live.clone();
    match patch_type {
        PatchType::Merge => merge_patch(&mut patched, &document),
        PatchType::Strategic => strategic_merge_patch(&mut patched, &document),
        PatchType::Json | PatchType::Apply => {
            json_patch(&mut patched, &document).map_err(|why| ApiError::new(422, "Invalid", why))?
        }
    }
    let patched = shape_object(resource, target.namespace.as_deref(), Some(name), patched)?;
    if let Some(version) = meta_str(&patched, "resourceVersion")
        && Some(version) != meta_str(&live, "resourceVersion")
    {
        return Err(ApiError::stale_resource_version(resource, name));
    }
    let manager = field_manager(request)?;
    let write = Write {
        manager: &manager,
        dry_run,
        status_only: target.subresource.is_some(),
        record_ownership: true,
    };
    let updated = update_object(state, resource, &key, &live, patched, &write)?;
    Ok(Reply::json(200, present(&state.store, resource, &updated)))
}

fn patch_options_invalid(cause: Cause) -> ApiError {
    ApiError::invalid_kind("PatchOptions.meta.k8s.io", "meta.k8s.io", "", vec![cause])
}

/// Server-side apply (`application/apply-patch+yaml`): creates the object if it is missing.
fn apply(
    state: &mut State,
    target: &Target,
    name: &str,
    request: &ApiRequest,
    dry_run: bool,
) -> Result<Reply, ApiError> {
    let resource = &target.resource;
    if request.query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(patch_options_invalid(Cause::required(
            "fieldManager",
            "is required for apply patch",
        )));
    }
    let manager = field_manager(request)?;
    let config: Value = serde_yaml_ng::from_slice(&request.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    for key in ["apiVersion", "kind"] {
        if config[key].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(format!(
                "Object '{key}' is missing in the apply configuration"
            )));
        }
    }
    let config = shape_object(resource, target.namespace.as_deref(), Some(name), config)?;
    let key = object_key(target, name);
    let status_only = target.subresource.is_some();
    let now = state.store.now().to_string();
    let applier = Applier {
        manager: &manager,
        force: request.query.flag("force"),
        without_status: resource.status_subresource,
        now: &now,
    };
    let Some(live) = state.store.get(&key).cloned() else {
        if status_only {
            return Err(ApiError::not_found(resource, name));
        }
        let object = server_side_apply(None, &config, &applier)
            .map_err(|conflicts| apply_conflict(resource, name, &conflicts))?;
        let created = create_object(state, resource, object, dry_run)?;
        return Ok(Reply::json(201, present(&state.store, resource, &created)));
    };
    if let Some(version) = meta_str(&config, "resourceVersion").filter(|v| !v.is_empty())
        && Some(version) != meta_str(&live, "resourceVersion")
    {
        return Err(ApiError::stale_resource_version(resource, name));
    }
    let updated = if status_only {
        // Status applies merge the given status; ownership of status fields is not tracked.
        let mut merged = live.clone();
        if config["status"].is_object() {
            strategic_merge_patch(&mut merged, &json!({ "status": config["status"] }));
        }
        merged
    } else {
        server_side_apply(Some(&live), &config, &applier)
            .map_err(|conflicts| apply_conflict(resource, name, &conflicts))?
    };
    let write = Write {
        manager: &manager,
        dry_run,
        status_only,
        record_ownership: false,
    };
    let stored = update_object(state, resource, &key, &live, updated, &write)?;
    Ok(Reply::json(200, present(&state.store, resource, &stored)))
}

fn apply_conflict(resource: &ResourceType, name: &str, conflicts: &[Conflict]) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|conflict| {
            let (field, message) = conflict.cause();
            Cause {
                reason: "FieldManagerConflict",
                message,
                field,
            }
        })
        .collect();
    ApiError::apply_conflict(resource, name, conflict_message(conflicts), causes)
}
