//! Artifact diffs between two compilations of the fleet (`flotilla diff --base REF`):
//! which files were added, removed or changed per cluster, with unified diffs, and
//! which node pools will have their nodes replaced.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use similar::TextDiff;

use crate::render::Artifacts;

#[derive(Debug, Default, Serialize)]
pub struct FleetDiff {
    pub base: String,
    pub head: String,
    pub clusters: Vec<ClusterDiff>,
}

#[derive(Debug, Serialize)]
pub struct ClusterDiff {
    pub cluster: String,
    pub change: Change,
    pub files: Vec<FileDiff>,
    pub replacements: Vec<Replacement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub change: Change,
    /// Unified diff of the file's text (empty for binary-identical moves).
    pub diff: String,
}

/// A node pool whose config hash changed: all its nodes will be replaced.
#[derive(Debug, Serialize)]
pub struct Replacement {
    pub node_pool: String,
    pub old_hash: String,
    pub new_hash: String,
    /// Nodes that will be replaced, at least: the pool's min_size (live state not consulted).
    pub nodes_at_least: i64,
}

impl FleetDiff {
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }
}

/// Compare two compilations (each sorted or not; matched by cluster id).
pub fn diff(
    base_label: &str,
    base: &[Artifacts],
    head_label: &str,
    head: &[Artifacts],
) -> FleetDiff {
    let base_by_id: BTreeMap<&str, &Artifacts> =
        base.iter().map(|a| (a.cluster.as_str(), a)).collect();
    let head_by_id: BTreeMap<&str, &Artifacts> =
        head.iter().map(|a| (a.cluster.as_str(), a)).collect();
    let mut ids: Vec<&str> = base_by_id
        .keys()
        .chain(head_by_id.keys())
        .copied()
        .collect();
    ids.sort();
    ids.dedup();
    let mut clusters = Vec::new();
    for id in ids {
        let empty = BTreeMap::new();
        let (old, new) = (base_by_id.get(id), head_by_id.get(id));
        let change = match (old, new) {
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            _ => Change::Changed,
        };
        let old_files = old.map_or(&empty, |a| &a.files);
        let new_files = new.map_or(&empty, |a| &a.files);
        let files = diff_files(old_files, new_files, base_label, head_label);
        let mut replacements = Vec::new();
        if let (Some(old), Some(new)) = (old, new) {
            for pool in &new.summary.node_pools {
                let before = old.summary.node_pools.iter().find(|p| p.name == pool.name);
                if let Some(before) = before.filter(|b| b.config_hash != pool.config_hash) {
                    replacements.push(Replacement {
                        node_pool: pool.name.clone(),
                        old_hash: before.config_hash.clone(),
                        new_hash: pool.config_hash.clone(),
                        nodes_at_least: pool.min_size,
                    });
                }
            }
        }
        if !files.is_empty() || !replacements.is_empty() {
            clusters.push(ClusterDiff {
                cluster: id.to_string(),
                change,
                files,
                replacements,
            });
        }
    }
    FleetDiff {
        base: base_label.to_string(),
        head: head_label.to_string(),
        clusters,
    }
}

fn diff_files(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    base_label: &str,
    head_label: &str,
) -> Vec<FileDiff> {
    let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for path in paths {
        let (a, b) = (old.get(path), new.get(path));
        let change = match (a, b) {
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (Some(x), Some(y)) if x != y => Change::Changed,
            _ => continue,
        };
        let a = a.map_or(String::new(), |text| readable(path, text));
        let b = b.map_or(String::new(), |text| readable(path, text));
        let diff = TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{base_label}/{path}"),
                &format!("{head_label}/{path}"),
            )
            .to_string();
        out.push(FileDiff {
            path: path.clone(),
            change,
            diff,
        });
    }
    out
}

/// A file's text as its diff shows it. In a CloudFormation template, a launch
/// template's `UserData` is one base64 line of several kilobytes; it is shown decoded,
/// one line of the user data per line, so a change reads as the lines it changes (as in
/// the `userdata/` diff) instead of two unreadable lines. Everything else is unchanged.
fn readable(path: &str, text: &str) -> String {
    if !(path.starts_with("cloudformation/") && path.ends_with(".json")) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.split_inclusive('\n') {
        match decoded_user_data(line) {
            Some((indent, lines)) => {
                let _ = writeln!(
                    out,
                    "{indent}\"UserData\": base64 of these {} lines (shown decoded)",
                    lines.len()
                );
                for user_data_line in lines {
                    let _ = writeln!(out, "{indent}  | {user_data_line}");
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

/// `(indentation, decoded lines)` of a `"UserData": "<base64>"` line whose value
/// decodes to UTF-8 text; `None` for any other line.
fn decoded_user_data(line: &str) -> Option<(&str, Vec<String>)> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let value = trimmed
        .strip_prefix("\"UserData\": \"")?
        .trim_end()
        .trim_end_matches(',')
        .strip_suffix('"')?;
    let text = base64_text(value)?;
    Some((indent, text.lines().map(str::to_string).collect()))
}

fn base64_text(value: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// What `plan` shows of a stack update's user data: a line diff, per launch template,
/// of the live template's decoded user data against the desired one's. Empty when no
/// launch template's user data changed.
pub fn user_data_diff(live: &serde_json::Value, desired: &serde_json::Value) -> String {
    let (live, desired) = (user_data_by_resource(live), user_data_by_resource(desired));
    let mut ids: Vec<&String> = live.keys().chain(desired.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut out = String::new();
    for id in ids {
        let before = live.get(id).map_or("", String::as_str);
        let after = desired.get(id).map_or("", String::as_str);
        if before != after {
            let diff = TextDiff::from_lines(before, after)
                .unified_diff()
                .context_radius(2)
                .header(
                    &format!("live {id} UserData"),
                    &format!("desired {id} UserData"),
                )
                .to_string();
            out.push_str(&diff);
        }
    }
    out
}

/// The user data of every launch template (`Resources.<id>.Properties.LaunchTemplateData
/// .UserData`) by logical id, decoded; a value that is not base64 text is kept as written.
fn user_data_by_resource(template: &serde_json::Value) -> BTreeMap<String, String> {
    template
        .get("Resources")
        .and_then(serde_json::Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(id, resource)| {
            let encoded = resource
                .pointer("/Properties/LaunchTemplateData/UserData")?
                .as_str()?;
            let text = base64_text(encoded).unwrap_or_else(|| encoded.to_string());
            Some((id.clone(), text))
        })
        .collect()
}

/// Plain text, replacements first so they cannot be missed.
pub fn to_text(d: &FleetDiff, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    if d.is_empty() {
        let _ = writeln!(out, "No differences between {} and {}.", d.base, d.head);
        return out;
    }
    let replaced: Vec<(&ClusterDiff, &Replacement)> = d
        .clusters
        .iter()
        .flat_map(|c| c.replacements.iter().map(move |r| (c, r)))
        .collect();
    if !replaced.is_empty() {
        let _ = writeln!(out, "{}", paint("1;33", "Node replacement:"));
        for (c, r) in &replaced {
            let _ = writeln!(
                out,
                "  {} / {}: at least {} node{} replaced (config hash {} → {})",
                c.cluster,
                r.node_pool,
                r.nodes_at_least,
                if r.nodes_at_least == 1 { "" } else { "s" },
                r.old_hash,
                r.new_hash
            );
        }
        out.push('\n');
    }
    for c in &d.clusters {
        let _ = writeln!(
            out,
            "{}",
            paint("1", &format!("cluster {} ({})", c.cluster, word(c.change)))
        );
        for f in &c.files {
            let _ = writeln!(out, "  {} {}", symbol(f.change), f.path);
        }
        out.push('\n');
        for f in &c.files {
            for line in f.diff.lines() {
                let styled = if line.starts_with("+++") || line.starts_with("---") {
                    paint("1", line)
                } else if line.starts_with('+') {
                    paint("32", line)
                } else if line.starts_with('-') {
                    paint("31", line)
                } else if line.starts_with("@@") {
                    paint("36", line)
                } else {
                    line.to_string()
                };
                let _ = writeln!(out, "{styled}");
            }
        }
    }
    out
}

/// Markdown for a pull-request comment.
pub fn to_markdown(d: &FleetDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### flotilla diff `{}` → `{}`\n", d.base, d.head);
    if d.is_empty() {
        let _ = writeln!(out, "No artifact changes.");
        return out;
    }
    let replaced: Vec<(&ClusterDiff, &Replacement)> = d
        .clusters
        .iter()
        .flat_map(|c| c.replacements.iter().map(move |r| (c, r)))
        .collect();
    if !replaced.is_empty() {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> **Node replacement** in {} node pool{}:\n>",
            replaced.len(),
            if replaced.len() == 1 { "" } else { "s" }
        );
        for (c, r) in &replaced {
            let _ = writeln!(
                out,
                "> - `{}` / `{}`: at least **{}** nodes replaced",
                c.cluster, r.node_pool, r.nodes_at_least
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "| cluster | change | added | changed | removed |\n|---|---|---:|---:|---:|"
    );
    for c in &d.clusters {
        let count = |k: Change| c.files.iter().filter(|f| f.change == k).count();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            c.cluster,
            word(c.change),
            count(Change::Added),
            count(Change::Changed),
            count(Change::Removed)
        );
    }
    out.push('\n');
    for c in &d.clusters {
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code>: {} file{}</summary>\n",
            c.cluster,
            c.files.len(),
            if c.files.len() == 1 { "" } else { "s" }
        );
        for f in &c.files {
            let _ = writeln!(
                out,
                "`{}` {}\n\n```diff\n{}```\n",
                f.path,
                word(f.change),
                f.diff
            );
        }
        let _ = writeln!(out, "</details>\n");
    }
    out
}

fn word(c: Change) -> &'static str {
    match c {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Changed => "changed",
    }
}

fn symbol(c: Change) -> &'static str {
    match c {
        Change::Added => "+",
        Change::Removed => "-",
        Change::Changed => "~",
    }
}
