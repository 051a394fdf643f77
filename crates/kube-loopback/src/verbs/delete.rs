//! Deletes: one object or a selection, honouring finalizers and preconditions, followed at once
//! by what a cluster's controllers would do next: the namespace controller empties a deleted
//! namespace, the garbage collector deletes (or orphans) dependents, a deleted CRD stops serving.

use serde_json::{Value, json};

use super::{dry_run, meta_str, object_key, present, read, remove_meta, set_meta};
use crate::catalog::ResourceType;
use crate::router::{ApiRequest, Query, Reply, Target};
use crate::state::State;
use crate::status::{ApiError, Cause, success};
use crate::store::ObjectKey;

/// Namespaces the API server refuses to delete.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// `propagationPolicy`: what happens to objects whose `ownerReferences` name the deleted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// `DeleteOptions`, from the body and the query string. `gracePeriodSeconds` is accepted but
/// deletion is always immediate: there is no kubelet to wait for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DeleteOptions {
    pub(crate) dry_run: bool,
    propagation: Propagation,
    uid: Option<String>,
    resource_version: Option<String>,
}

fn invalid_options(cause: Cause) -> ApiError {
    ApiError::invalid_kind("DeleteOptions.meta.k8s.io", "meta.k8s.io", "", vec![cause])
}

impl DeleteOptions {
    pub(crate) fn from_request(request: &ApiRequest) -> Result<Self, ApiError> {
        let body = if request.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&request.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        DeleteOptions::read(&body, &request.query)
    }

    pub(crate) fn read(body: &Value, query: &Query) -> Result<Self, ApiError> {
        let mut dry_run = dry_run(query)?;
        for value in body["dryRun"].as_array().into_iter().flatten() {
            match value.as_str() {
                Some("All") => dry_run = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unsupported dry run value {other:?}: only \"All\" is supported"
                    )));
                }
            }
        }
        let orphan = body["orphanDependents"] == json!(true) || query.flag("orphanDependents");
        let policy = body["propagationPolicy"]
            .as_str()
            .or_else(|| query.get("propagationPolicy"));
        let propagation = match policy {
            None if orphan => Propagation::Orphan,
            None | Some("Background") => Propagation::Background,
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            Some(other) => {
                return Err(invalid_options(Cause::unsupported(
                    "propagationPolicy",
                    other,
                    &["Foreground", "Background", "Orphan"],
                )));
            }
        };
        let grace_period = &body["gracePeriodSeconds"];
        let query_grace = query.get("gracePeriodSeconds");
        if !(grace_period.is_null() || grace_period.is_i64())
            || query_grace.is_some_and(|g| g.parse::<i64>().is_err())
        {
            return Err(ApiError::bad_request(
                "gracePeriodSeconds must be an integer",
            ));
        }
        let precondition = |key: &str| body["preconditions"][key].as_str().map(String::from);
        Ok(DeleteOptions {
            dry_run,
            propagation,
            uid: precondition("uid"),
            resource_version: precondition("resourceVersion"),
        })
    }

    /// `preconditions` must match the live object, else 409 Conflict.
    pub(crate) fn check_preconditions(
        &self,
        resource: &ResourceType,
        name: &str,
        live: &Value,
    ) -> Result<(), ApiError> {
        let checks = [
            ("UID", &self.uid, "uid"),
            ("ResourceVersion", &self.resource_version, "resourceVersion"),
        ];
        for (label, expected, key) in checks {
            let actual = meta_str(live, key).unwrap_or_default();
            if let Some(expected) = expected
                && expected != actual
            {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {expected}, {label} in object meta: {actual}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Deletion {
    /// Removed (or, in a dry run, would be).
    Gone(Value),
    /// Kept with a `deletionTimestamp` until its finalizers are removed.
    Pending(Value),
}

pub(crate) fn delete(
    state: &mut State,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let resource = &target.resource;
    let options = DeleteOptions::from_request(request)?;
    let key = object_key(target, name);
    let live = state
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    options.check_preconditions(resource, name, live)?;
    if resource.is("", "namespaces") && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "namespaces {} is forbidden: this namespace may not be deleted",
                json!(name)
            ),
        )
        .with_details(json!({ "name": name, "kind": "namespaces" })));
    }
    match delete_object(state, &key, &options) {
        Some(Deletion::Pending(object)) => {
            Ok(Reply::json(202, present(&state.store, resource, &object)))
        }
        Some(Deletion::Gone(object)) if resource.returns_deleted_object => {
            Ok(Reply::json(200, present(&state.store, resource, &object)))
        }
        Some(Deletion::Gone(object)) => {
            let mut details = json!({
                "name": name,
                "kind": resource.plural,
                "uid": meta_str(&object, "uid").unwrap_or_default(),
            });
            if !resource.group.is_empty() {
                details["group"] = json!(resource.group);
            }
            Ok(Reply::json(200, success(200, Some(details))))
        }
        None => Err(ApiError::not_found(resource, name)),
    }
}

/// DELETE on a collection: deletes what the selectors pick and lists what was deleted.
pub(crate) fn delete_collection(
    state: &mut State,
    target: &Target,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let resource = &target.resource;
    let options = DeleteOptions::from_request(request)?;
    let mut items = Vec::new();
    for (key, _) in read::select(state, target, request)? {
        if resource.is("", "namespaces") && PROTECTED_NAMESPACES.contains(&key.name.as_str()) {
            continue;
        }
        if let Some(Deletion::Gone(object) | Deletion::Pending(object)) =
            delete_object(state, &key, &options)
        {
            items.push(present(&state.store, resource, &object));
        }
    }
    Ok(Reply::json(
        200,
        json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": { "resourceVersion": state.store.revision() },
            "items": items,
        }),
    ))
}

/// Deletes a stored object (`None` if there is none): marks it if it has finalizers, else
/// removes it and cascades. A dry run changes nothing.
pub(crate) fn delete_object(
    state: &mut State,
    key: &ObjectKey,
    options: &DeleteOptions,
) -> Option<Deletion> {
    let live = state.store.get(key)?.clone();
    let has_finalizers = live["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if !has_finalizers {
        if !options.dry_run {
            finish_deletion(state, key, &live, options);
        }
        return Some(Deletion::Gone(live));
    }
    if !live["metadata"]["deletionTimestamp"].is_null() {
        return Some(Deletion::Pending(live));
    }
    let mut marked = live;
    set_meta(&mut marked, "deletionTimestamp", json!(state.store.now()));
    set_meta(&mut marked, "deletionGracePeriodSeconds", json!(0));
    if !options.dry_run {
        set_meta(
            &mut marked,
            "resourceVersion",
            json!(state.store.next_revision()),
        );
        state.store.put(key.clone(), marked.clone());
    }
    Some(Deletion::Pending(marked))
}

/// Removes an object for good, then does at once what controllers would do later.
pub(crate) fn finish_deletion(
    state: &mut State,
    key: &ObjectKey,
    object: &Value,
    options: &DeleteOptions,
) {
    state.store.remove(key);
    if key.group.is_empty() && key.plural == "namespaces" {
        remove_where(state, |k| k.namespace == key.name);
    }
    if key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions" {
        state.catalog.undefine(&key.name);
        let group = object["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = object["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        remove_where(state, |k| k.group == group && k.plural == plural);
    }
    if let Some(uid) = meta_str(object, "uid") {
        collect_dependents(state, uid, options.propagation);
    }
}

fn remove_where(state: &mut State, doomed: impl Fn(&ObjectKey) -> bool) {
    let keys: Vec<ObjectKey> = state
        .store
        .all()
        .map(|(k, _)| k)
        .filter(|k| doomed(k))
        .cloned()
        .collect();
    for key in keys {
        state.store.remove(&key);
    }
}

/// The garbage collector's part: dependents with no other owner go too (Background and
/// Foreground alike, at once); with Orphan, or other owners left, they just lose the reference.
fn collect_dependents(state: &mut State, owner_uid: &str, propagation: Propagation) {
    let owned_by = |object: &Value| {
        object["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(owner_uid)))
    };
    let dependents: Vec<ObjectKey> = state
        .store
        .all()
        .filter(|(_, object)| owned_by(object))
        .map(|(key, _)| key.clone())
        .collect();
    for key in dependents {
        // An earlier cascade step may already have removed it.
        let Some(mut dependent) = state.store.get(&key).cloned() else {
            continue;
        };
        let remaining: Vec<Value> = dependent["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["uid"] != json!(owner_uid))
            .cloned()
            .collect();
        if propagation == Propagation::Orphan || !remaining.is_empty() {
            if remaining.is_empty() {
                remove_meta(&mut dependent, "ownerReferences");
            } else {
                set_meta(&mut dependent, "ownerReferences", Value::Array(remaining));
            }
            set_meta(
                &mut dependent,
                "resourceVersion",
                json!(state.store.next_revision()),
            );
            state.store.put(key, dependent);
        } else {
            delete_object(state, &key, &DeleteOptions::default());
        }
    }
}
