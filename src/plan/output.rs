//! Plans for people: coloured text for terminals (deletions and replacements first)
//! and Markdown for pull-request comments.

use std::fmt::Write as _;

use serde_json::Value;

use super::{ClusterPlan, ManifestAction, Plan, StackAction, Step};

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Steps that destroy something: deletions, stack resources replaced, nodes rolled.
fn destructive(cluster: &ClusterPlan) -> Vec<String> {
    let mut out = Vec::new();
    for step in &cluster.steps {
        match step {
            Step::Delete(d) => out.push(format!(
                "delete {} ({})",
                d.object,
                d.phase.replace('_', "-")
            )),
            Step::Stack(s) => {
                for c in &s.changes {
                    if c.action == "Remove" {
                        out.push(format!(
                            "stack {}: remove {} ({})",
                            s.stack, c.logical_id, c.resource_type
                        ));
                    } else if matches!(c.replacement.as_deref(), Some("True" | "Conditional")) {
                        let how = if c.replacement.as_deref() == Some("True") {
                            "REPLACE"
                        } else {
                            "maybe replace"
                        };
                        out.push(format!(
                            "stack {}: {how} {} ({})",
                            s.stack, c.logical_id, c.resource_type
                        ));
                    }
                }
            }
            Step::Roll(r) => out.push(format!(
                "replace {} of {} nodes in node pool {} ({})",
                r.outdated,
                r.nodes,
                r.node_pool,
                zones(&r.outdated_by_zone)
            )),
            Step::RemovePool(r) => out.push(format!(
                "remove node pool {}: drain its {} nodes ({}), delete stack {}",
                r.node_pool,
                r.nodes,
                zones(&r.nodes_by_zone),
                r.stack
            )),
            Step::Manifest(_) => {}
        }
    }
    out
}

/// Every destructive step of the plan, with its cluster: shown first in every format.
fn warnings(plan: &Plan) -> Vec<(&str, String)> {
    plan.clusters
        .iter()
        .flat_map(|c| {
            destructive(c)
                .into_iter()
                .map(move |w| (c.cluster.as_str(), w))
        })
        .collect()
}

fn zones(by_zone: &std::collections::BTreeMap<String, usize>) -> String {
    if by_zone.is_empty() {
        return "none running".into();
    }
    by_zone
        .iter()
        .map(|(z, n)| format!("{z}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(value: &Option<Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 80 {
                format!("{}…", text.chars().take(80).collect::<String>())
            } else {
                text
            }
        }
    }
}

pub fn to_text(plan: &Plan, color: bool) -> String {
    let s = Style { color };
    let mut out = String::new();
    let changed = plan.clusters.iter().filter(|c| !c.steps.is_empty()).count();
    let _ = writeln!(
        out,
        "Plan: {} cluster{}, {changed} with changes, {} failed to read.\n",
        plan.clusters.len() + plan.failures.len(),
        if plan.clusters.len() + plan.failures.len() == 1 {
            ""
        } else {
            "s"
        },
        plan.failures.len()
    );
    let warnings = warnings(plan);
    if !warnings.is_empty() {
        let _ = writeln!(out, "{}", s.paint("1;31", "!! Deletions and replacements:"));
        for (cluster, w) in &warnings {
            let _ = writeln!(out, "   {} {cluster}: {w}", s.paint("1;31", "!"));
        }
        out.push('\n');
    }
    for f in &plan.failures {
        let _ = writeln!(
            out,
            "{} {}: {}\n   nothing is planned for this cluster",
            s.paint("1;31", "FAILED"),
            f.cluster,
            f.error
        );
    }
    if !plan.failures.is_empty() {
        out.push('\n');
    }
    for c in &plan.clusters {
        let mut header = format!("cluster {}{} ({})", c.cluster, registry_note(c), c.region);
        if c.creation {
            header.push_str(" — new cluster: everything is created");
        }
        let _ = writeln!(out, "{}", s.paint("1", &header));
        if let Some(reason) = &c.blocked {
            let _ = writeln!(
                out,
                "  {} updates are blocked: {reason}",
                s.paint("1;33", "BLOCKED")
            );
        }
        if c.steps.is_empty() {
            let _ = writeln!(out, "  no changes");
        }
        for step in &c.steps {
            out.push_str(&step_text(step, &s));
        }
        out.push('\n');
    }
    out
}

/// One step as the text form shows it: a line, and its changes indented below.
fn step_text(step: &Step, s: &Style) -> String {
    let mut out = String::new();
    match step {
        Step::Delete(d) => {
            let _ = writeln!(
                out,
                "  {} delete  {} ({})",
                s.paint("31", "-"),
                d.object,
                d.phase.replace('_', "-")
            );
        }
        Step::Stack(st) => {
            let (mark, word) = match st.action {
                StackAction::Create => (s.paint("32", "+"), "create"),
                StackAction::Update => (s.paint("33", "~"), "update"),
            };
            let _ = writeln!(out, "  {mark} {word}  stack {} ({})", st.stack, st.role);
            for ch in &st.changes {
                let replace = match ch.replacement.as_deref() {
                    Some("True") => s.paint("1;31", " REPLACED"),
                    Some("Conditional") => s.paint("31", " may be replaced"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "      {} {} ({}){replace}",
                    ch.action, ch.logical_id, ch.resource_type
                );
            }
            for line in st.user_data_diff.lines() {
                let line = match line.as_bytes().first() {
                    Some(b'+') if !line.starts_with("+++") => s.paint("32", line),
                    Some(b'-') if !line.starts_with("---") => s.paint("31", line),
                    _ => line.to_string(),
                };
                let _ = writeln!(out, "      {line}");
            }
        }
        Step::Manifest(m) => {
            let (mark, word) = match m.action {
                ManifestAction::Create => (s.paint("32", "+"), "create"),
                ManifestAction::Update => (s.paint("33", "~"), "update"),
            };
            let _ = writeln!(out, "  {mark} {word}  {}", m.object);
            for ch in &m.changes {
                let _ = writeln!(
                    out,
                    "      {}: {} → {}",
                    ch.path,
                    short(&ch.before),
                    short(&ch.after)
                );
            }
        }
        Step::Roll(r) => {
            let _ = writeln!(
                out,
                "  {} roll    node pool {}: {} of {} nodes outdated ({})",
                s.paint("1;33", "↻"),
                r.node_pool,
                r.outdated,
                r.nodes,
                zones(&r.outdated_by_zone)
            );
        }
        Step::RemovePool(r) => {
            let _ = writeln!(
                out,
                "  {} remove  node pool {}: drain {} nodes ({}), then delete stack {}",
                s.paint("1;31", "-"),
                r.node_pool,
                r.nodes,
                zones(&r.nodes_by_zone),
                r.stack
            );
        }
    }
    out
}

pub fn to_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let changed = plan.clusters.iter().filter(|c| !c.steps.is_empty()).count();
    let total = plan.clusters.len() + plan.failures.len();
    let _ = writeln!(
        out,
        "### flotilla plan\n\n{total} cluster{} · {changed} with changes · {} failed to read\n",
        if total == 1 { "" } else { "s" },
        plan.failures.len()
    );
    let warnings = warnings(plan);
    if !warnings.is_empty() {
        let _ = writeln!(out, "> [!CAUTION]\n> **Deletions and replacements**\n>");
        for (cluster, w) in &warnings {
            let _ = writeln!(out, "> - `{cluster}`: {w}");
        }
        out.push('\n');
    }
    if !plan.failures.is_empty() {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> **Not planned** (live state could not be read)\n>"
        );
        for f in &plan.failures {
            let _ = writeln!(
                out,
                "> - `{}`: {}",
                f.cluster,
                f.error.to_string().replace('\n', " ")
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "| cluster | region | stacks | manifests | deletions | node rolls |\n|---|---|---:|---:|---:|---:|"
    );
    for c in &plan.clusters {
        let count = |f: fn(&Step) -> bool| c.steps.iter().filter(|s| f(s)).count();
        let _ = writeln!(
            out,
            "| `{}`{}{} | {} | {} | {} | {} | {} |",
            c.cluster,
            registry_note(c),
            if c.creation { " (new)" } else { "" },
            c.region,
            count(|s| matches!(s, Step::Stack(_))),
            count(|s| matches!(s, Step::Manifest(_))),
            count(|s| matches!(s, Step::Delete(_) | Step::RemovePool(_))),
            count(|s| matches!(s, Step::Roll(_))),
        );
    }
    out.push('\n');
    for c in plan.clusters.iter().filter(|c| !c.steps.is_empty()) {
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code>: {} steps</summary>\n",
            c.cluster,
            c.steps.len()
        );
        if let Some(reason) = &c.blocked {
            let _ = writeln!(out, "**Blocked**: {reason}\n");
        }
        let mut body = String::new();
        if c.creation {
            // A new cluster creates every object; list components, not 100 lines of `+`.
            let mut components: std::collections::BTreeMap<&str, usize> =
                std::collections::BTreeMap::new();
            for step in &c.steps {
                match step {
                    Step::Manifest(m) => {
                        let component = m.artifact.split('/').nth(1).unwrap_or(&m.artifact);
                        *components.entry(component).or_insert(0) += 1;
                    }
                    // Stacks (an etcd stack may exist already), deletions and pool
                    // removals are listed one by one, as in the text form.
                    other => body.push_str(&step_text(other, &Style { color: false })),
                }
            }
            let objects: usize = components.values().sum();
            let _ = writeln!(body, "  + create  {objects} Kubernetes objects:");
            for (component, n) in components {
                let _ = writeln!(body, "      {component} ({n})");
            }
            let _ = writeln!(out, "```\n{body}```\n\n</details>\n");
            continue;
        }
        let text = to_text(
            &Plan {
                version: plan.version,
                clusters: vec![c.clone()],
                failures: Vec::new(),
            },
            false,
        );
        for line in text
            .lines()
            .skip_while(|l| !l.starts_with("cluster "))
            .skip(1)
        {
            let _ = writeln!(body, "{line}");
        }
        let _ = writeln!(
            out,
            "```\n{}```\n\n</details>\n",
            body.trim_end().to_string() + "\n"
        );
    }
    out
}

/// ` [registry aws:…]` after a cluster id imported from a registry that names it
/// otherwise, so the plan can be matched with the registry.
fn registry_note(cluster: &ClusterPlan) -> String {
    cluster
        .registry_id
        .as_ref()
        .map_or(String::new(), |id| format!(" [registry {id}]"))
}
