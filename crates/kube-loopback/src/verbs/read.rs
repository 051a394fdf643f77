//! Reads: get one object, list a collection (selectors, `limit`/`continue` paging).

use serde_json::{Value, json};

use super::{object_key, partial_metadata, present, wants_metadata_only};
use crate::router::{ApiRequest, Reply, Target};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::State;
use crate::status::ApiError;

pub(crate) fn get(
    state: &State,
    target: &Target,
    name: &str,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let object = state
        .store
        .get(&object_key(target, name))
        .ok_or_else(|| ApiError::not_found(&target.resource, name))?;
    let shown = present(&state.store, &target.resource, object);
    Ok(Reply::json(
        200,
        if wants_metadata_only(request) {
            partial_metadata(&shown)
        } else {
            shown
        },
    ))
}

/// The objects of a collection that the request's selectors pick, in key order.
pub(crate) fn select(
    state: &State,
    target: &Target,
    request: &ApiRequest,
) -> Result<Vec<(crate::store::ObjectKey, Value)>, ApiError> {
    let resource = &target.resource;
    let labels = match request.query.get("labelSelector") {
        Some(text) => LabelSelector::parse(text).map_err(ApiError::bad_request)?,
        None => LabelSelector::default(),
    };
    let fields = match request.query.get("fieldSelector") {
        Some(text) => {
            FieldSelector::parse(text, &resource.field_labels).map_err(ApiError::bad_request)?
        }
        None => FieldSelector::default(),
    };
    Ok(state
        .store
        .list(resource, target.namespace.as_deref())
        .filter(|(_, object)| labels.matches(object) && fields.matches(object))
        .map(|(key, object)| (key.clone(), object.clone()))
        .collect())
}

pub(crate) fn list(
    state: &State,
    target: &Target,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let resource = &target.resource;
    let limit = match request.query.get("limit") {
        None | Some("") => 0,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}")))?,
    };
    // The continue token is the namespace/name of the last item handed out.
    let after = match request.query.get("continue") {
        None | Some("") => None,
        Some(token) => Some(
            token
                .split_once('/')
                .map(|(ns, name)| (ns.to_string(), name.to_string()))
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?,
        ),
    };
    let mut selected: Vec<_> = select(state, target, request)?
        .into_iter()
        .filter(|(key, _)| {
            after
                .as_ref()
                .is_none_or(|(ns, name)| (&key.namespace, &key.name) > (ns, name))
        })
        .collect();
    let mut metadata = json!({ "resourceVersion": state.store.revision() });
    if limit > 0 && selected.len() > limit {
        let remaining = selected.len() - limit;
        selected.truncate(limit);
        if let Some((last, _)) = selected.last() {
            metadata["continue"] = json!(format!("{}/{}", last.namespace, last.name));
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let metadata_only = wants_metadata_only(request);
    let items: Vec<Value> = selected
        .iter()
        .map(|(_, object)| {
            let shown = present(&state.store, resource, object);
            if metadata_only {
                partial_metadata(&shown)
            } else {
                shown
            }
        })
        .collect();
    let (api_version, kind) = if metadata_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        )
    } else {
        (resource.api_version(), format!("{}List", resource.kind))
    };
    Ok(Reply::json(
        200,
        json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items }),
    ))
}
