//! Kubernetes manifests: object identity across a cluster and object names.

use std::collections::HashSet;

use serde_json::Value;

use super::deletions::{Deletions, DeletionsError, namespace_prefix};
use super::yaml::{Keep, YamlError, strict_document};

/// RBAC kinds, whose names are path segments (`system:coredns`), not DNS-1123 names.
const RBAC_KINDS: [&str; 4] = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

/// Identity of Kubernetes objects across one cluster's manifests.
#[derive(Default)]
pub struct ObjectIndex {
    seen: HashSet<ObjectKey>,
}

/// An object's API group, kind, namespace and name.
pub type ObjectKey = (String, String, String, String);

/// The objects one manifest file declares, in order, up to the first document refused
/// on its own (syntax, repeated key, missing field, bad name), and why that one was.
pub struct Objects {
    pub keys: Vec<ObjectKey>,
    pub refused: Option<ManifestError>,
}

impl ObjectIndex {
    /// Add one file's objects in order: the first declared before (in this file or an
    /// earlier one) is refused as a duplicate, as reading document by document would;
    /// past them all, the file's own refusal if it has one.
    pub fn add(&mut self, objects: Objects) -> Result<(), ManifestError> {
        for key in objects.keys {
            if self.seen.contains(&key) {
                let (_, kind, namespace, name) = key;
                return Err(ManifestError::Duplicate {
                    kind,
                    namespace,
                    name,
                });
            }
            self.seen.insert(key);
        }
        objects.refused.map_or(Ok(()), Err)
    }
}

/// Why a manifest file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {document}: {source}")]
    Yaml {
        document: usize,
        #[source]
        source: YamlError,
    },
    #[error("document {0}: no `apiVersion`")]
    NoApiVersion(usize),
    #[error("document {0}: no `kind`")]
    NoKind(usize),
    #[error("document {document} ({kind}): no `metadata`")]
    NoMetadata { document: usize, kind: String },
    #[error("document {document} ({kind}): no `metadata.name`")]
    NoName { document: usize, kind: String },
    #[error("{kind} `{name}`: metadata.name {problem}")]
    BadName {
        kind: String,
        name: String,
        problem: NameProblem,
    },
    #[error(
        "{kind} `{}{name}` is declared twice in this cluster's manifests",
        namespace_prefix(namespace)
    )]
    Duplicate {
        kind: String,
        namespace: String,
        name: String,
    },
}

/// A deletion by name must not remove an object the manifests apply: the two would
/// undo each other on every apply.
pub fn deletions_spare(deletions: &Deletions, objects: &ObjectIndex) -> Result<(), DeletionsError> {
    for (list, entries) in [
        ("pre_apply", &deletions.pre_apply),
        ("post_apply", &deletions.post_apply),
    ] {
        for entry in entries {
            let Some(name) = &entry.name else { continue };
            let namespace = entry.namespace.as_deref().unwrap_or("");
            let applied = objects
                .seen
                .iter()
                .any(|(_, kind, ns, n)| *kind == entry.kind && ns == namespace && n == name);
            if applied {
                return Err(DeletionsError::DeletesApplied {
                    list,
                    kind: entry.kind.clone(),
                    namespace: namespace.to_string(),
                    name: name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// What of a manifest is read beyond checking its syntax and keys: the object's identity.
const OBJECT_IDENTITY: Keep = Keep::Keys(&[
    ("apiVersion", Keep::All),
    ("kind", Keep::All),
    (
        "metadata",
        Keep::Keys(&[("name", Keep::All), ("namespace", Keep::All)]),
    ),
]);

/// Check every object in a multi-document manifest file.
pub fn manifests(text: &str, index: &mut ObjectIndex) -> Result<(), ManifestError> {
    index.add(objects(text))
}

/// Read the objects of a multi-document manifest file, checking each on its own.
pub fn objects(text: &str) -> Objects {
    let mut keys = Vec::new();
    for (n, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        match object(document, text, n + 1) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(refused) => {
                return Objects {
                    keys,
                    refused: Some(refused),
                };
            }
        }
    }
    Objects {
        keys,
        refused: None,
    }
}

/// The identity of document `number`, checked (`None` for an empty document).
fn object(
    document: serde_yaml_ng::Deserializer<'_>,
    text: &str,
    number: usize,
) -> Result<Option<ObjectKey>, ManifestError> {
    let value =
        strict_document(document, text, OBJECT_IDENTITY).map_err(|source| ManifestError::Yaml {
            document: number,
            source,
        })?;
    if value.is_null() {
        return Ok(None);
    }
    let text_field =
        |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
    let api_version =
        text_field(&value, "apiVersion").ok_or(ManifestError::NoApiVersion(number))?;
    let kind = text_field(&value, "kind").ok_or(ManifestError::NoKind(number))?;
    let metadata = value
        .get("metadata")
        .ok_or_else(|| ManifestError::NoMetadata {
            document: number,
            kind: kind.clone(),
        })?;
    let name = text_field(metadata, "name").ok_or_else(|| ManifestError::NoName {
        document: number,
        kind: kind.clone(),
    })?;
    if let Some(problem) = name_problem(&kind, &name) {
        return Err(ManifestError::BadName {
            kind,
            name,
            problem,
        });
    }
    let namespace = text_field(metadata, "namespace").unwrap_or_default();
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(g, _)| g)
        .to_string();
    Ok(Some((group, kind, namespace, name)))
}

/// Why a string is not a valid name for an object of some kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("is not a valid path segment name (not empty, `.` or `..`, and without `/` or `%`)")]
    NotAPathSegment,
    #[error(
        "is not a valid DNS-1123 label (lower-case letters, digits and `-`; at most 63 characters)"
    )]
    NotADnsLabel,
    #[error(
        "is not a valid DNS-1123 subdomain (lower-case letters, digits, `-` and `.`; at most 253 characters)"
    )]
    NotADnsSubdomain,
}

/// What is wrong with `name` as the name of a `kind` object, if anything: names are
/// DNS-1123 subdomains, labels for Namespace and Service, path segments for RBAC kinds.
pub(super) fn name_problem(kind: &str, name: &str) -> Option<NameProblem> {
    if RBAC_KINDS.contains(&kind) {
        let ok = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%']);
        return (!ok).then_some(NameProblem::NotAPathSegment);
    }
    let strict_label = matches!(kind, "Namespace" | "Service");
    if is_dns_name(name, strict_label) {
        None
    } else if strict_label {
        Some(NameProblem::NotADnsLabel)
    } else {
        Some(NameProblem::NotADnsSubdomain)
    }
}

pub(super) fn is_dns_name(name: &str, label: bool) -> bool {
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
