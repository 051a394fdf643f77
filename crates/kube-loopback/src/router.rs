//! Turns a request path into a route and sends it to discovery, the object verbs or eviction.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::catalog::ResourceType;
use crate::state::State;
use crate::status::ApiError;
use crate::{discovery, eviction, verbs};

/// An HTTP request, already read in full.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Query,
    pub(crate) content_type: String,
    pub(crate) accept: String,
    pub(crate) user_agent: String,
    pub(crate) body: Bytes,
}

/// What to answer: an HTTP code and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) content_type: String,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn json(code: u16, body: Value) -> Self {
        Reply {
            code,
            content_type: "application/json".into(),
            body,
        }
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        Reply::json(error.code, error.to_status())
    }
}

/// Decoded query parameters, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: &str) -> Self {
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: present as `true` or `1`.
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// The object, collection or subresource a resource path names.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) resource: Arc<ResourceType>,
    /// `None` for cluster-scoped resources and for lists across all namespaces.
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

/// Answers one request, after injected failures have had their say.
pub(crate) fn handle(state: &mut State, request: &ApiRequest) -> Reply {
    if let Some(error) = state.faults.take(&request.method, &request.path) {
        return error.into();
    }
    route(state, request).unwrap_or_else(Reply::from)
}

fn route(state: &mut State, request: &ApiRequest) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = request
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let is_get = request.method == "GET";
    match segments.as_slice() {
        ["version"] if is_get => Ok(Reply::json(200, discovery::version())),
        ["healthz" | "livez" | "readyz"] if is_get => Ok(Reply {
            code: 200,
            content_type: "text/plain".into(),
            body: json!("ok"),
        }),
        ["api"] if is_get => Ok(discovery::core_versions(state, &request.accept)),
        ["apis"] if is_get => Ok(discovery::groups(state, &request.accept)),
        ["api", version] if is_get => discovery::resources(state, "", version),
        ["apis", group] if is_get => discovery::group(state, group),
        ["apis", group, version] if is_get => discovery::resources(state, group, version),
        ["api", version, rest @ ..] => resource_request(state, request, "", version, rest),
        ["apis", group, version, rest @ ..] => {
            resource_request(state, request, group, version, rest)
        }
        _ => Err(ApiError::unknown_path()),
    }
}

fn resource_request(
    state: &mut State,
    request: &ApiRequest,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Reply, ApiError> {
    if rest.first() == Some(&"watch") || request.query.flag("watch") {
        return Err(ApiError::method_not_allowed(
            "watch is not supported by the loopback API server",
        ));
    }
    let target = resolve(state, group, version, rest).ok_or_else(ApiError::unknown_path)?;
    let method = request.method.as_str();
    let name = target.name.clone();
    match (method, name.as_deref(), target.subresource.as_deref()) {
        ("GET", None, None) => verbs::list(state, &target, request),
        ("GET", Some(name), None | Some("status")) => verbs::get(state, &target, name, request),
        ("POST", None, None) => verbs::create(state, &target, request),
        ("POST", Some(name), Some("eviction")) if target.resource.is("", "pods") => {
            eviction::evict(state, &target, name, request)
        }
        ("PUT", Some(name), None | Some("status")) => verbs::replace(state, &target, name, request),
        ("PATCH", Some(name), None | Some("status")) => verbs::patch(state, &target, name, request),
        ("DELETE", Some(name), None) => verbs::delete(state, &target, name, request),
        ("DELETE", None, None) => verbs::delete_collection(state, &target, request),
        (_, _, Some(sub)) if !known_subresource(&target.resource, sub) => {
            Err(ApiError::unknown_path())
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            request.path
        ))),
    }
}

fn known_subresource(resource: &ResourceType, subresource: &str) -> bool {
    match subresource {
        "status" => resource.status_subresource,
        "eviction" => resource.is("", "pods"),
        _ => false,
    }
}

/// Reads `[namespaces/{ns}/]{plural}[/{name}[/{subresource}]]` against the catalog.
fn resolve(state: &State, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let find = |plural: &str| state.catalog.find(group, version, plural);
    let target = |resource: Arc<ResourceType>,
                  namespace: Option<&str>,
                  name: Option<&str>,
                  sub: Option<&str>| {
        Target {
            resource,
            namespace: namespace.map(String::from),
            name: name.map(String::from),
            subresource: sub.map(String::from),
        }
    };
    // `namespaces/{ns}/{plural}...` addresses namespaced resources; otherwise the path is
    // `{plural}...`, which includes the namespace objects themselves (`namespaces/{name}/status`).
    if let ["namespaces", namespace, plural, tail @ ..] = rest
        && let Some(resource) = find(plural).filter(|r| r.namespaced())
    {
        return match tail {
            [] => Some(target(resource, Some(namespace), None, None)),
            [name] => Some(target(resource, Some(namespace), Some(name), None)),
            [name, sub] => Some(target(resource, Some(namespace), Some(name), Some(sub))),
            _ => None,
        };
    }
    let (plural, tail) = rest.split_first()?;
    let resource = find(plural)?;
    match tail {
        [] => Some(target(resource, None, None, None)),
        [name] if !resource.namespaced() => Some(target(resource, None, Some(name), None)),
        [name, sub] if !resource.namespaced() => {
            Some(target(resource, None, Some(name), Some(sub)))
        }
        _ => None,
    }
}
