//! The deletions list: what each entry selects, and that it is bounded.

use serde::{Deserialize, Serialize};

use super::manifests::{NameProblem, is_dns_name, name_problem};
use super::yaml::{YamlError, yaml};

/// Built-in kinds whose objects belong to no namespace. A deletion entry for one of
/// them takes no `namespace`; every other kind (custom resources included) needs one.
const CLUSTER_SCOPED_KINDS: [&str; 19] = [
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// `deletions.yaml`: objects to remove before and after applying manifests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deletions {
    #[serde(default)]
    pub pre_apply: Vec<DeletionEntry>,
    #[serde(default)]
    pub post_apply: Vec<DeletionEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionEntry {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_owner: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
}

/// Why a deletions list is refused.
#[derive(Debug, thiserror::Error)]
pub enum DeletionsError {
    #[error("not a valid deletions list: {0}")]
    Syntax(#[source] serde_yaml_ng::Error),
    #[error("{0}")]
    RepeatedKey(String),
    #[error("{list}[{index}] ({kind}): {problem}")]
    Entry {
        list: &'static str,
        index: usize,
        kind: String,
        #[source]
        problem: EntryProblem,
    },
    #[error(
        "{list} deletes {kind} `{}{name}`, which the manifests apply",
        namespace_prefix(namespace)
    )]
    DeletesApplied {
        list: &'static str,
        kind: String,
        namespace: String,
        name: String,
    },
}

/// What is wrong with one entry of the deletions list.
#[derive(Debug, thiserror::Error)]
pub enum EntryProblem {
    #[error("needs exactly one of `name`, `selector`, `labels`")]
    NotOneSelector,
    #[error("propagation_policy must be Orphan, Background or Foreground, not `{0}`")]
    PropagationPolicy(String),
    #[error("grace_period_seconds must not be negative")]
    NegativeGracePeriod,
    #[error("`kind` is empty")]
    EmptyKind,
    #[error(
        "{kind} is cluster-scoped, so it takes no `namespace` (found `{namespace}`); remove it"
    )]
    NamespaceOnClusterScoped { kind: String, namespace: String },
    #[error(
        "needs a `namespace`: without one it selects {kind} objects in every namespace (only the built-in cluster-scoped kinds {} go without; any other kind, custom resources included, needs one)",
        CLUSTER_SCOPED_KINDS.join(", ")
    )]
    NoNamespace { kind: String },
    #[error(
        "namespace `{0}` is not a valid DNS-1123 label (lower-case letters, digits and `-`; at most 63 characters)"
    )]
    BadNamespace(String),
    #[error("name `{name}` {problem}")]
    BadName { name: String, problem: NameProblem },
    #[error(
        "`selector` is empty, which selects every {kind}{}; give a label selector such as `app=NAME`, or a `name`",
        in_namespace(*.cluster_scoped)
    )]
    EmptySelector { kind: String, cluster_scoped: bool },
    #[error(
        "selector `{selector}` has no requirement an object must meet (only `!key`, `!=` or `notin`), so it selects every {kind} without those labels; add one such as `app=NAME`"
    )]
    OnlyNegativeSelector { selector: String, kind: String },
    #[error(
        "`labels` is empty, which selects every {kind}{}; give at least one label, or a `name`",
        in_namespace(*.cluster_scoped)
    )]
    EmptyLabels { kind: String, cluster_scoped: bool },
}

/// `namespace/` before a name, or nothing for a cluster-scoped object.
pub(super) fn namespace_prefix(namespace: &str) -> String {
    if namespace.is_empty() {
        String::new()
    } else {
        format!("{namespace}/")
    }
}

fn in_namespace(cluster_scoped: bool) -> &'static str {
    if cluster_scoped {
        ""
    } else {
        " in the namespace"
    }
}

pub fn deletions(text: &str) -> Result<Deletions, DeletionsError> {
    let deletions: Deletions = if text.trim().is_empty() {
        Deletions::default()
    } else {
        // Typed parsing would keep the last of two `labels` keys, say.
        yaml(text).map_err(|e| match e {
            YamlError::Syntax(e) => DeletionsError::Syntax(e),
            YamlError::RepeatedKey(problem) => DeletionsError::RepeatedKey(problem),
        })?;
        serde_yaml_ng::from_str::<Option<Deletions>>(text)
            .map_err(DeletionsError::Syntax)?
            .unwrap_or_default()
    };
    for (list, entries) in [
        ("pre_apply", &deletions.pre_apply),
        ("post_apply", &deletions.post_apply),
    ] {
        for (index, entry) in entries.iter().enumerate() {
            entry_problem(entry).map_err(|problem| DeletionsError::Entry {
                list,
                index,
                kind: entry.kind.clone(),
                problem,
            })?;
        }
    }
    Ok(deletions)
}

fn entry_problem(entry: &DeletionEntry) -> Result<(), EntryProblem> {
    let selectors = [
        entry.name.is_some(),
        entry.selector.is_some(),
        entry.labels.is_some(),
    ];
    if selectors.iter().filter(|s| **s).count() != 1 {
        return Err(EntryProblem::NotOneSelector);
    }
    deletion_scope(entry)?;
    if let Some(policy) = &entry.propagation_policy
        && !matches!(policy.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(EntryProblem::PropagationPolicy(policy.clone()));
    }
    if entry.grace_period_seconds.is_some_and(|g| g < 0) {
        return Err(EntryProblem::NegativeGracePeriod);
    }
    Ok(())
}

/// What a deletion entry selects must be bounded: a namespace for every kind that is
/// not cluster-scoped, a valid name, and a selector that does not match everything.
fn deletion_scope(entry: &DeletionEntry) -> Result<(), EntryProblem> {
    let kind = entry.kind.as_str();
    if kind.is_empty() {
        return Err(EntryProblem::EmptyKind);
    }
    let cluster_scoped = CLUSTER_SCOPED_KINDS.contains(&kind);
    match (&entry.namespace, cluster_scoped) {
        (Some(namespace), true) => {
            return Err(EntryProblem::NamespaceOnClusterScoped {
                kind: kind.to_string(),
                namespace: namespace.clone(),
            });
        }
        (None, false) => {
            return Err(EntryProblem::NoNamespace {
                kind: kind.to_string(),
            });
        }
        (Some(namespace), false) if !is_dns_name(namespace, true) => {
            return Err(EntryProblem::BadNamespace(namespace.clone()));
        }
        _ => {}
    }
    if let Some(name) = &entry.name
        && let Some(problem) = name_problem(kind, name)
    {
        return Err(EntryProblem::BadName {
            name: name.clone(),
            problem,
        });
    }
    if let Some(selector) = &entry.selector {
        if selector.trim().is_empty() {
            return Err(EntryProblem::EmptySelector {
                kind: kind.to_string(),
                cluster_scoped,
            });
        }
        if !has_positive_requirement(selector) {
            return Err(EntryProblem::OnlyNegativeSelector {
                selector: selector.clone(),
                kind: kind.to_string(),
            });
        }
    }
    if entry.labels.as_ref().is_some_and(|l| l.is_empty()) {
        return Err(EntryProblem::EmptyLabels {
            kind: kind.to_string(),
            cluster_scoped,
        });
    }
    Ok(())
}

/// Whether a label selector (`a=b,c in (d,e),!f`) has a requirement that only objects
/// carrying some label meet: `=`, `==`, `in` or bare existence, not `!key`, `!=`, `notin`.
fn has_positive_requirement(selector: &str) -> bool {
    let mut requirements = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                requirements.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    requirements.push(&selector[start..]);
    requirements.iter().map(|r| r.trim()).any(|r| {
        !r.is_empty()
            && !r.starts_with('!')
            && !r.contains("!=")
            && !r
                .split(|c: char| c.is_whitespace() || c == '(')
                .any(|word| word == "notin")
    })
}
