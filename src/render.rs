//! Render: one evaluated cluster + a config set → the cluster's artifacts
//! (CloudFormation JSON, userdata, manifests, deletions), validated.
//! The contract with template authors is docs/config-set.md.

pub mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::diagnostic::Diagnostic;
use crate::eval::Data;
use crate::source::{FileId, SourceMap};
use crate::span::Span;

pub use validate::{DeletionEntry, Deletions};

/// A loaded config set: its templates, ready to render.
pub struct ConfigSet {
    /// Where it came from, for messages (`stdlib/config`, `main:stdlib/config`).
    pub origin: String,
    /// Template path (relative to the set) → file in the shared source map.
    templates: BTreeMap<String, FileId>,
    env: Environment<'static>,
}

/// The files of one cluster, keyed by their path under the cluster's output directory.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Artifacts {
    pub cluster: String,
    pub files: BTreeMap<String, String>,
    pub summary: Summary,
}

/// What `compile` reports per cluster and `diff`/`plan` compare.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Summary {
    pub cluster: String,
    pub channel: String,
    pub config_ref: String,
    pub config_set: String,
    pub node_pools: Vec<PoolSummary>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct PoolSummary {
    pub name: String,
    pub config_hash: String,
    pub min_size: i64,
    pub max_size: i64,
}

impl ConfigSet {
    /// Build a config set from `(relative path, text)` pairs; templates are added to
    /// `sources` so errors can show their lines.
    pub fn new(
        origin: String,
        files: Vec<(String, String)>,
        sources: &mut SourceMap,
    ) -> Result<ConfigSet, Vec<Diagnostic>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_debug(true);
        // minijinja would JSON-escape every value in `.yaml` templates; authors quote
        // explicitly with `| tojson` instead, so text in userdata stays as written.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_filter("seconds", filter_seconds);
        env.add_filter("gib", |q: String| filter_quantity(&q, 1024 * 1024 * 1024));
        env.add_filter("mib", |q: String| filter_quantity(&q, 1024 * 1024));
        env.add_filter("b64encode", |s: String| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
        });
        // The built-in `tojson` escapes `<`, `>` and `&` for HTML; our output is YAML and JSON.
        env.add_filter("tojson", |v: Value| {
            if v.is_undefined() {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::UndefinedError,
                    "`tojson` of an undefined value",
                ));
            }
            serde_json::to_string(&v).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })
        });
        env.add_filter("sha256", |s: String| hex(&Sha256::digest(s.as_bytes())));
        let mut templates = BTreeMap::new();
        let mut problems = Vec::new();
        for (path, text) in files {
            if !path.ends_with(".j2") {
                continue;
            }
            let file = sources.add(
                format!("{origin}/{path}"),
                Path::new(&origin).join(&path),
                text.clone(),
            );
            if let Err(e) = env.add_template_owned(path.clone(), text) {
                problems.push(template_error(file, sources, &e, None));
                continue;
            }
            templates.insert(path, file);
        }
        if !templates.keys().any(|p| p.starts_with("node-pools/")) {
            problems.push(
                Diagnostic::error("E0501", format!("config set `{origin}` has no node-pools/ templates"))
                    .help("a config set needs etcd.yaml.j2, cluster.yaml.j2 and node-pools/<profile>/{stack,userdata}.yaml.j2"),
            );
        }
        if problems.is_empty() {
            Ok(ConfigSet {
                origin,
                templates,
                env,
            })
        } else {
            Err(problems)
        }
    }

    /// Render and validate every artifact of one evaluated cluster.
    pub fn render(
        &self,
        cluster: &Data,
        sources: &SourceMap,
    ) -> Result<Artifacts, Vec<Diagnostic>> {
        let id = field_str(cluster, "id");
        let mut renderer = Renderer {
            set: self,
            sources,
            cluster_id: id.clone(),
            problems: Vec::new(),
        };
        let artifacts = renderer.run(cluster);
        if renderer.problems.is_empty() {
            Ok(artifacts)
        } else {
            Err(renderer.problems)
        }
    }
}

struct Renderer<'a> {
    set: &'a ConfigSet,
    sources: &'a SourceMap,
    cluster_id: String,
    problems: Vec<Diagnostic>,
}

impl Renderer<'_> {
    fn run(&mut self, cluster: &Data) -> Artifacts {
        let mut cluster_json = serde_json::to_value(cluster).unwrap_or_default();
        let pools: Vec<Data> = cluster
            .get("node_pools")
            .map(|p| p.as_list().to_vec())
            .unwrap_or_default();
        let mut files = BTreeMap::new();
        let mut summaries = Vec::new();

        // Userdata first: its text is part of each pool's config hash.
        let mut pool_values = Vec::new();
        let mut userdata_texts = Vec::new();
        for pool in &pools {
            let name = field_str(pool, "name");
            let profile = field_str(pool, "profile");
            let mut pool_json = serde_json::to_value(pool).unwrap_or_default();
            pool_json["config_hash"] = json!("");
            let template = format!("node-pools/{profile}/userdata.yaml.j2");
            if !self.set.templates.contains_key(&template) {
                self.problems.push(
                    Diagnostic::error("E0502", format!("cluster `{}`: node pool `{name}` uses profile `{profile}`, which the config set does not have", self.cluster_id))
                        .help(format!("add {}/node-pools/{profile}/ or set `profile` to one of: {}", self.set.origin, self.profiles().join(", "))),
                );
                continue;
            }
            let draft = self.render_template(
                &template,
                context! {
                    cluster => to_value(&cluster_json),
                    pool => to_value(&pool_json),
                },
            );
            let Some(draft) = draft else { continue };
            let hash = config_hash(&draft, pool, cluster);
            pool_json["config_hash"] = json!(hash);
            pool_values.push(pool_json);
            userdata_texts.push((name.clone(), profile, hash.clone()));
            summaries.push(PoolSummary {
                name,
                config_hash: hash,
                min_size: pool.get("min_size").and_then(Data::as_int).unwrap_or(0),
                max_size: pool.get("max_size").and_then(Data::as_int).unwrap_or(0),
            });
        }
        cluster_json["node_pools"] = serde_json::Value::Array(pool_values.clone());
        let cluster_value = to_value(&cluster_json);
        let pools_value = to_value(&pool_values);

        for (pool_json, (name, profile, _)) in pool_values.iter().zip(&userdata_texts) {
            let ctx = context! {
                cluster => cluster_value.clone(),
                node_pools => pools_value.clone(),
                pool => to_value(pool_json),
            };
            let Some(userdata) = self.render_template(
                &format!("node-pools/{profile}/userdata.yaml.j2"),
                ctx.clone(),
            ) else {
                continue;
            };
            let userdata = normalize_text(&userdata);
            let userdata_path = format!("userdata/{name}.yaml");
            self.check_yaml(&userdata_path, &userdata);
            let stack_template = format!("node-pools/{profile}/stack.yaml.j2");
            let ctx = context! { userdata => userdata.clone(), ..ctx };
            if let Some(stack) = self.render_template(&stack_template, ctx) {
                let out = format!("cloudformation/node-pool-{name}.json");
                if let Some(json) = self.cloudformation(&out, &stack_template, &stack) {
                    files.insert(out, json);
                }
            }
            files.insert(userdata_path, userdata);
        }

        let ctx = context! { cluster => cluster_value.clone(), node_pools => pools_value.clone() };
        for (template, out) in [
            ("etcd.yaml.j2", "cloudformation/etcd.json"),
            ("cluster.yaml.j2", "cloudformation/cluster.json"),
        ] {
            if !self.set.templates.contains_key(template) {
                self.problems.push(
                    Diagnostic::error("E0501", format!("config set `{}` has no `{template}`", self.set.origin))
                        .help("a config set needs etcd.yaml.j2, cluster.yaml.j2 and node-pools/<profile>/{stack,userdata}.yaml.j2"),
                );
                continue;
            }
            if let Some(text) = self.render_template(template, ctx.clone())
                && let Some(json) = self.cloudformation(out, template, &text)
            {
                files.insert(out.to_string(), json);
            }
        }

        let mut objects = validate::ObjectIndex::default();
        let manifest_templates: Vec<String> = self
            .set
            .templates
            .keys()
            .filter(|p| p.starts_with("manifests/"))
            .cloned()
            .collect();
        for template in manifest_templates {
            let Some(text) = self.render_template(&template, ctx.clone()) else {
                continue;
            };
            if is_blank(&text) {
                continue;
            }
            let out = template.trim_end_matches(".j2").to_string();
            match validate::manifests(&text, &mut objects) {
                Ok(()) => {
                    files.insert(out, normalize_text(&text));
                }
                Err(problem) => self.invalid(&out, &template, problem),
            }
        }
        if self.set.templates.contains_key("deletions.yaml.j2")
            && let Some(text) = self.render_template("deletions.yaml.j2", ctx)
        {
            match validate::deletions(&text)
                .and_then(|d| validate::deletions_spare(&d, &objects).map(|()| d))
            {
                Ok(deletions) => {
                    let yaml = serde_yaml_ng::to_string(&deletions).unwrap_or_default();
                    files.insert("deletions.yaml".into(), yaml);
                }
                Err(problem) => self.invalid("deletions.yaml", "deletions.yaml.j2", problem),
            }
        }

        let channel = cluster.get("channel");
        Artifacts {
            cluster: self.cluster_id.clone(),
            files,
            summary: Summary {
                cluster: self.cluster_id.clone(),
                channel: channel.map(|c| field_str(c, "name")).unwrap_or_default(),
                config_ref: channel
                    .map(|c| field_str(c, "config_ref"))
                    .unwrap_or_default(),
                config_set: self.set.origin.clone(),
                node_pools: summaries,
            },
        }
    }

    fn profiles(&self) -> Vec<String> {
        let mut profiles: Vec<String> = self
            .set
            .templates
            .keys()
            .filter_map(|p| p.strip_prefix("node-pools/"))
            .filter_map(|p| p.split('/').next())
            .map(str::to_string)
            .collect();
        profiles.dedup();
        profiles
    }

    fn render_template(&mut self, name: &str, ctx: Value) -> Option<String> {
        let result = self.set.env.get_template(name).and_then(|t| t.render(ctx));
        match result {
            Ok(text) => Some(text),
            Err(e) => {
                let file = e
                    .name()
                    .and_then(|n| self.set.templates.get(n))
                    .or_else(|| self.set.templates.get(name))
                    .copied();
                let d = match file {
                    Some(file) => template_error(file, self.sources, &e, Some(&self.cluster_id)),
                    None => {
                        Diagnostic::error("E0503", format!("cluster `{}`: {e}", self.cluster_id))
                    }
                };
                self.problems.push(d);
                None
            }
        }
    }

    fn cloudformation(&mut self, out: &str, template: &str, text: &str) -> Option<String> {
        match validate::cloudformation(text) {
            Ok(json) => Some(json),
            Err(problem) => {
                self.invalid(out, template, problem);
                None
            }
        }
    }

    fn check_yaml(&mut self, out: &str, text: &str) {
        if let Err(e) = serde_yaml_ng::from_str::<serde_json::Value>(text) {
            self.invalid(out, out, format!("not valid YAML: {e}"));
        }
    }

    fn invalid(&mut self, out: &str, template: &str, problem: String) {
        self.problems.push(
            Diagnostic::error(
                "E0504",
                format!("cluster `{}`: {out} is invalid: {problem}", self.cluster_id),
            )
            .help(format!("rendered from {}/{template}", self.set.origin)),
        );
    }
}

/// A minijinja error as a diagnostic pointing into the template.
fn template_error(
    file: FileId,
    sources: &SourceMap,
    e: &minijinja::Error,
    cluster: Option<&str>,
) -> Diagnostic {
    let text = &sources.get(file).text;
    let span = match (e.range(), e.line()) {
        (Some(r), _) => Span::new(r.start, r.end),
        (None, Some(line)) => {
            let lines = &sources.get(file).lines;
            let start = lines.line_start(line.saturating_sub(1));
            let end = text[start..].find('\n').map_or(text.len(), |n| start + n);
            Span::new(start, end)
        }
        (None, None) => Span::new(0, 0),
    };
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    let message = match cluster {
        Some(c) => format!("template error while rendering cluster `{c}`: {what}"),
        None => format!("template syntax error: {what}"),
    };
    let help = match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            "templates see only `cluster`, `node_pools`, and in node-pool templates `pool` and `userdata` (docs/config-set.md)"
        }
        _ => "see docs/config-set.md for the template contract",
    };
    Diagnostic::error("E0503", message)
        .at(file, span, e.kind().to_string())
        .help(help)
}

/// SHA-256 (first 128 bits, hex) over exactly what forces node replacement.
fn config_hash(userdata_without_hash: &str, pool: &Data, cluster: &Data) -> String {
    let inputs = json!({
        "userdata": userdata_without_hash,
        "instance_types": pool.get("instance_types"),
        "capacity_type": pool.get("capacity_type"),
        "root_volume_size": pool.get("root_volume_size"),
        "profile": pool.get("profile"),
        "kubernetes_version": cluster.get("kubernetes_version"),
    });
    let digest = Sha256::digest(inputs.to_string().as_bytes());
    hex(&digest[..16])
}

fn to_value<T: Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn field_str(data: &Data, field: &str) -> String {
    data.get(field)
        .and_then(Data::as_str)
        .unwrap_or("")
        .to_string()
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}

/// Trim trailing spaces and blank lines left by template tags; end with one newline.
fn normalize_text(text: &str) -> String {
    let mut out: String = text
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn filter_seconds(duration: String) -> Result<i64, minijinja::Error> {
    let split = duration
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(duration.len());
    let (number, unit) = duration.split_at(split);
    crate::eval::parse_duration_ms(number, unit)
        .map(|ms| ms / 1000)
        .ok_or_else(|| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("`{duration}` is not a duration"),
            )
        })
}

fn filter_quantity(quantity: &str, unit: i128) -> Result<i64, minijinja::Error> {
    let split = quantity
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let q = crate::eval::Quantity::parse(number, suffix).ok_or_else(|| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("`{quantity}` is not a quantity"),
        )
    })?;
    let units = (q.whole_units() + unit - 1).div_euclid(unit);
    i64::try_from(units).map_err(|_| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "quantity too large")
    })
}

/// First 64 bits of the SHA-256 of a text, hex: a short, stable name for content.
pub fn short_digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..8])
}
