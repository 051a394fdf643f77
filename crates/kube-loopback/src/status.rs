//! `Status` bodies: how the API server reports failures (and some successes).

use serde_json::{Map, Value, json};

use crate::catalog::ResourceType;

/// A failed request, rendered as a `meta/v1` `Status` with the matching HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    reason: &'static str,
    message: String,
    details: Map<String, Value>,
}

/// One entry of `details.causes`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) field: String,
}

impl Cause {
    pub(crate) fn invalid(field: impl Into<String>, value: &str, why: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {why}", json!(value)),
            field: field.into(),
        }
    }

    pub(crate) fn required(field: impl Into<String>, why: &str) -> Self {
        Cause {
            reason: "FieldValueRequired",
            message: format!("Required value: {why}"),
            field: field.into(),
        }
    }

    pub(crate) fn unsupported(field: impl Into<String>, value: &str, allowed: &[&str]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(|a| json!(a).to_string()).collect();
        Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                json!(value),
                allowed.join(", ")
            ),
            field: field.into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut cause = json!({ "reason": self.reason, "message": self.message });
        if !self.field.is_empty() {
            cause["field"] = json!(self.field);
        }
        cause
    }
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// The reason the real API server gives for an HTTP code, for injected failures.
    pub(crate) fn for_code(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        ApiError::new(code, reason, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// The answer for a path that names no resource the server knows.
    pub(crate) fn unknown_path() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub(crate) fn not_found(resource: &ResourceType, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {} not found", resource.qualified_plural(), json!(name)),
        )
        .with_object(resource, name)
    }

    /// A namespaced create into a namespace that does not exist.
    pub(crate) fn namespace_not_found(namespace: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("namespaces {} not found", json!(namespace)),
        )
        .with_details(json!({ "name": namespace, "kind": "namespaces" }))
    }

    pub(crate) fn already_exists(resource: &ResourceType, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!(
                "{} {} already exists",
                resource.qualified_plural(),
                json!(name)
            ),
        )
        .with_object(resource, name)
    }

    /// An optimistic-concurrency failure: stale resourceVersion, failed precondition, apply conflict.
    pub(crate) fn conflict(resource: &ResourceType, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {}: {why}",
                resource.qualified_plural(),
                json!(name)
            ),
        )
        .with_object(resource, name)
    }

    pub(crate) fn stale_resource_version(resource: &ResourceType, name: &str) -> Self {
        ApiError::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// A server-side apply whose configuration changes fields other managers own.
    pub(crate) fn apply_conflict(
        resource: &ResourceType,
        name: &str,
        message: String,
        causes: Vec<Cause>,
    ) -> Self {
        ApiError::new(409, "Conflict", message)
            .with_object(resource, name)
            .with_causes(causes)
    }

    /// 422 with one cause per failed field, worded like apimachinery's `NewInvalid`.
    pub(crate) fn invalid(resource: &ResourceType, name: &str, causes: Vec<Cause>) -> Self {
        ApiError::invalid_kind(&resource.qualified_kind(), &resource.group, name, causes)
    }

    pub(crate) fn invalid_kind(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summaries: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let summary = match summaries.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut details = json!({
            "name": name,
            "kind": kind.split('.').next().unwrap_or(kind),
            "causes": causes.iter().map(Cause::to_json).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        ApiError::new(
            422,
            "Invalid",
            format!("{kind} {} is invalid: {summary}", json!(name)),
        )
        .with_details(details)
    }

    pub(crate) fn with_details(mut self, details: Value) -> Self {
        if let Value::Object(map) = details {
            self.details.extend(map);
        }
        self
    }

    pub(crate) fn with_causes(mut self, causes: Vec<Cause>) -> Self {
        self.details.insert(
            "causes".into(),
            Value::Array(causes.iter().map(Cause::to_json).collect()),
        );
        self
    }

    fn with_object(self, resource: &ResourceType, name: &str) -> Self {
        let mut details = json!({ "name": name, "kind": resource.plural });
        if !resource.group.is_empty() {
            details["group"] = json!(resource.group);
        }
        self.with_details(details)
    }

    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.details.is_empty() {
            status["details"] = Value::Object(self.details.clone());
        }
        status
    }
}

/// `Status` with `status: Success`, as returned by deletes and evictions.
pub(crate) fn success(code: u16, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}
