//! Render: one evaluated cluster + a config set → the cluster's artifacts
//! (CloudFormation JSON, userdata, manifests, deletions), validated.
//! The contract with template authors is docs/config-set.md.

pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::codes::Code;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::digest::hex;
use crate::model::{Cluster, NodePool};
use crate::source::{FileId, SourceMap};
use crate::span::Span;

pub use validate::{DeletionEntry, Deletions};

/// A loaded config set: its templates, ready to render.
pub struct ConfigSet {
    /// Where it came from, for messages (`stdlib/config`, `main:stdlib/config`).
    pub origin: String,
    /// How `summary.json` names it: the same for every way of spelling the same set.
    recorded_as: String,
    /// Template path (relative to the set) → file in the shared source map.
    templates: BTreeMap<String, FileId>,
    env: Environment<'static>,
    passed: Passed,
}

/// Rendered texts that passed their check in this run, by the check and the text's
/// SHA-256: a third of a fleet's files are byte for byte another cluster's (manifests
/// that no cluster setting reaches), and parsing them again would find the same.
#[derive(Default)]
struct Passed(Mutex<PassedTexts>);

/// (check, SHA-256 of the text) → what the check keeps of it.
type PassedTexts = HashMap<(Check, [u8; 32]), Vec<validate::ObjectKey>>;

/// A check whose outcome depends on the text alone, with what it keeps of a text that
/// passes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Check {
    /// Userdata: YAML, no repeated key. Nothing kept.
    Yaml,
    /// A manifest file: every document's object checked. Its objects are kept, to be
    /// added to the cluster's index (whether they were declared before depends on the
    /// cluster).
    Manifests,
}

impl Passed {
    fn get(&self, check: Check, digest: &[u8; 32]) -> Option<Vec<validate::ObjectKey>> {
        self.lock().get(&(check, *digest)).cloned()
    }

    fn insert(&self, check: Check, digest: [u8; 32], kept: Vec<validate::ObjectKey>) {
        self.lock().insert((check, digest), kept);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PassedTexts> {
        // Each use is one call on the map: a panic elsewhere leaves it whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
        // Nested loops get around minijinja's per-`range` cap: bound the whole render.
        env.set_fuel(Some(TEMPLATE_FUEL));
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
                problems.push(template_error(file, sources, &e, &e, None));
                continue;
            }
            templates.insert(path, file);
        }
        if !templates.keys().any(|p| p.starts_with("node-pools/")) {
            problems.push(
                Diagnostic::error(Code::E0501, format!("config set `{origin}` has no node-pools/ templates"))
                    .help("a config set needs etcd.yaml.j2, cluster.yaml.j2 and node-pools/<profile>/{stack,userdata}.yaml.j2"),
            );
        }
        if problems.is_empty() {
            Ok(ConfigSet {
                recorded_as: origin.clone(),
                origin,
                templates,
                env,
                passed: Passed::default(),
            })
        } else {
            Err(problems)
        }
    }

    /// Name the set in `summary.json` as `name` instead of its origin.
    pub fn recorded_as(self, name: String) -> ConfigSet {
        ConfigSet {
            recorded_as: name,
            ..self
        }
    }

    /// Render and validate every artifact of one evaluated cluster.
    pub fn render(
        &self,
        cluster: &Cluster,
        sources: &SourceMap,
    ) -> Result<Artifacts, Vec<Diagnostic>> {
        let mut renderer = Renderer {
            set: self,
            sources,
            cluster_id: cluster.id.clone(),
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

/// Instructions one template render may run: the shipped config set needs far less;
/// a template that loops without end fails within seconds, naming its line.
const TEMPLATE_FUEL: u64 = 20_000_000;

/// Largest text one template may render: far above any artifact AWS or Kubernetes
/// accepts, far below what would exhaust memory.
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// A template's output, refused beyond [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct BoundedOutput {
    text: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered output too large"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A node pool whose drafts rendered: its template context (with its config hash).
struct HashedPool {
    context: serde_json::Value,
    profile: String,
    summary: PoolSummary,
}

/// Import and include sites shown for one template error; more are only counted.
const MAX_SITES: usize = 4;

struct Renderer<'a> {
    set: &'a ConfigSet,
    sources: &'a SourceMap,
    cluster_id: String,
    problems: Vec<Diagnostic>,
}

impl Renderer<'_> {
    fn run(&mut self, cluster: &Cluster) -> Artifacts {
        let contexts = serde_json::to_value(cluster).and_then(|cluster_json| {
            let pools = cluster.node_pools.iter().map(serde_json::to_value);
            Ok((cluster_json, pools.collect::<Result<Vec<_>, _>>()?))
        });
        let (mut cluster_json, draft_pools) = match contexts {
            Ok(contexts) => contexts,
            Err(e) => {
                self.problems.push(Diagnostic::error(
                    Code::E0503,
                    format!(
                        "cluster `{}` cannot be passed to templates: {e}",
                        self.cluster_id
                    ),
                ));
                return Artifacts::default();
            }
        };
        let mut files = BTreeMap::new();
        let hashed = self.hash_pools(cluster, &cluster_json, draft_pools);
        let pool_values: Vec<serde_json::Value> =
            hashed.iter().map(|pool| pool.context.clone()).collect();
        cluster_json["node_pools"] = serde_json::Value::Array(pool_values.clone());
        let cluster_value = to_value(&cluster_json);
        let pools_value = to_value(&pool_values);
        for pool in &hashed {
            let ctx = context! {
                cluster => cluster_value.clone(),
                node_pools => pools_value.clone(),
                pool => to_value(&pool.context),
            };
            self.render_pool(pool, ctx, &mut files);
        }

        let ctx = context! { cluster => cluster_value.clone(), node_pools => pools_value.clone() };
        for (template, out) in [
            ("etcd.yaml.j2", "cloudformation/etcd.json"),
            ("cluster.yaml.j2", "cloudformation/cluster.json"),
        ] {
            if !self.set.templates.contains_key(template) {
                self.problems.push(
                    Diagnostic::error(Code::E0501, format!("config set `{}` has no `{template}`", self.set.origin))
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
        self.render_manifests(ctx, &mut files);

        Artifacts {
            cluster: self.cluster_id.clone(),
            files,
            summary: Summary {
                cluster: self.cluster_id.clone(),
                channel: cluster.channel.name.clone(),
                config_ref: cluster.channel.config_ref.clone(),
                config_set: self.set.recorded_as.clone(),
                node_pools: hashed.into_iter().map(|pool| pool.summary).collect(),
            },
        }
    }

    /// Each pool's template context with its config hash. Drafts first: each pool's
    /// userdata and launch template, rendered with an empty `config_hash`, are part of
    /// its config hash. A pool whose drafts fail is reported and left out.
    fn hash_pools(
        &mut self,
        cluster: &Cluster,
        cluster_json: &serde_json::Value,
        draft_pools: Vec<serde_json::Value>,
    ) -> Vec<HashedPool> {
        let draft_pools: Vec<serde_json::Value> = draft_pools
            .into_iter()
            .map(|mut pool_json| {
                pool_json["config_hash"] = json!("");
                pool_json
            })
            .collect();
        let draft_pools_value = to_value(&draft_pools);
        let mut hashed = Vec::new();
        for (pool, draft_pool) in cluster.node_pools.iter().zip(&draft_pools) {
            let name = pool.name.clone();
            let profile = pool.profile.clone();
            let mut pool_json = draft_pool.clone();
            let userdata_template = format!("node-pools/{profile}/userdata.yaml.j2");
            let stack_template = format!("node-pools/{profile}/stack.yaml.j2");
            let missing: Vec<&str> = [&userdata_template, &stack_template]
                .into_iter()
                .filter(|t| !self.set.templates.contains_key(t.as_str()))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                let d = self.unknown_profile(pool, &missing);
                self.problems.push(d);
                continue;
            }
            let draft_ctx = context! {
                cluster => to_value(cluster_json),
                pool => to_value(&pool_json),
            };
            let Some(draft) = self.render_template(&userdata_template, draft_ctx.clone()) else {
                continue;
            };
            let draft_stack_ctx = context! {
                node_pools => draft_pools_value.clone(),
                userdata => normalize_text(&draft),
                ..draft_ctx
            };
            let Some(draft_stack) = self.render_template(&stack_template, draft_stack_ctx) else {
                continue;
            };
            // Only the draft's launch template is read; the final stack is validated in
            // full below, so a draft that parses is not validated twice.
            let draft_stack: serde_json::Value = match serde_yaml_ng::from_str(&draft_stack) {
                Ok(parsed) => parsed,
                Err(_) => {
                    let out = format!("cloudformation/node-pool-{name}.json");
                    self.cloudformation(&out, &stack_template, &draft_stack);
                    continue;
                }
            };
            let hash = config_hash(&draft, &launch_template_data(&draft_stack), pool, cluster);
            pool_json["config_hash"] = json!(hash);
            hashed.push(HashedPool {
                context: pool_json,
                profile,
                summary: PoolSummary {
                    name,
                    config_hash: hash,
                    min_size: pool.min_size,
                    max_size: pool.max_size,
                },
            });
        }
        hashed
    }

    /// A pool's userdata and stack, rendered with its config hash.
    fn render_pool(&mut self, pool: &HashedPool, ctx: Value, files: &mut BTreeMap<String, String>) {
        let (name, profile) = (&pool.summary.name, &pool.profile);
        let userdata_template = format!("node-pools/{profile}/userdata.yaml.j2");
        let Some(userdata) = self.render_template(&userdata_template, ctx.clone()) else {
            return;
        };
        let userdata = normalize_text(&userdata);
        let userdata_path = format!("userdata/{name}.yaml");
        self.check_yaml(&userdata_path, &userdata_template, &userdata);
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

    /// The manifests, each file checked and all of them for objects declared twice,
    /// then the deletions list, which must not delete what the manifests apply.
    fn render_manifests(&mut self, ctx: Value, files: &mut BTreeMap<String, String>) {
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
            match objects.add(self.manifest_objects(&text)) {
                Ok(()) => {
                    files.insert(out, normalize_text(&text));
                }
                Err(problem) => self.invalid(&out, &template, &problem),
            }
        }
        if self.set.templates.contains_key("deletions.yaml.j2")
            && let Some(text) = self.render_template("deletions.yaml.j2", ctx)
        {
            match validate::deletions(&text)
                .and_then(|d| validate::deletions_spare(&d, &objects).map(|()| d))
            {
                Ok(deletions) => match serde_yaml_ng::to_string(&deletions) {
                    Ok(yaml) => {
                        files.insert("deletions.yaml".into(), yaml);
                    }
                    Err(e) => self.invalid("deletions.yaml", "deletions.yaml.j2", &e),
                },
                Err(problem) => self.invalid("deletions.yaml", "deletions.yaml.j2", &problem),
            }
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
        let mut output = BoundedOutput::default();
        let result = self
            .set
            .env
            .get_template(name)
            .and_then(|t| t.render_captured_to(ctx, &mut output));
        match result {
            Ok(_) => match String::from_utf8(output.text) {
                Ok(text) => Some(text),
                Err(_) => {
                    self.invalid(name, name, &"the rendered text is not UTF-8");
                    None
                }
            },
            Err(_) if output.overflowed => {
                self.invalid(
                    name.trim_end_matches(".j2"),
                    name,
                    &format_args!("the rendered text exceeds {} MiB", MAX_RENDERED_BYTES >> 20),
                );
                None
            }
            Err(e) => {
                let d = self.render_error(name, &e);
                self.push_merged(d);
                None
            }
        }
    }

    /// A render error at the innermost template that caused it (an error in an imported
    /// or included helper reaches the caller wrapped as "could not render include"); the
    /// import and include sites on the way are secondary labels.
    fn render_error(&self, name: &str, e: &minijinja::Error) -> Diagnostic {
        let templates = &self.set.templates;
        let chain = error_chain(e);
        let cause = chain.last().copied().unwrap_or(e);
        let located: Vec<(&minijinja::Error, FileId)> = chain
            .iter()
            .filter_map(|err| Some((*err, *templates.get(err.name()?)?)))
            .collect();
        let Some(((frame, file), sites)) = located.split_last() else {
            return match templates.get(name) {
                Some(&file) => template_error(file, self.sources, e, e, Some(&self.cluster_id)),
                None => Diagnostic::error(
                    Code::E0503,
                    format!("cluster `{}`: {}", self.cluster_id, describe(e)),
                ),
            };
        };
        let mut d = template_error(*file, self.sources, frame, cause, Some(&self.cluster_id));
        let primary = (*file, error_span(*file, self.sources, frame));
        let inner_names = located.iter().skip(1).map(|(err, _)| err.name());
        for ((site, site_file), inner) in sites.iter().zip(inner_names) {
            let span = error_span(*site_file, self.sources, site);
            if (*site_file, span) == primary {
                continue;
            }
            let text = &self.sources.get(*site_file).text[span.range()];
            let how = if text.contains("include") {
                "included"
            } else {
                "imported"
            };
            d = d.also(
                *site_file,
                span,
                format!("`{}` {how} here", inner.unwrap_or("?")),
            );
        }
        d
    }

    /// Add a diagnostic; one already reported at the same place with the same message
    /// (a helper failing for every template that imports it) gains the new sites instead.
    fn push_merged(&mut self, d: Diagnostic) {
        let same = self
            .problems
            .iter_mut()
            .find(|p| p.code == d.code && p.message == d.message && p.primary == d.primary);
        let Some(existing) = same else {
            self.problems.push(d);
            return;
        };
        let mut hidden = 0;
        for label in d.secondary {
            if existing.secondary.contains(&label) {
                continue;
            }
            if existing.secondary.len() < MAX_SITES {
                existing.secondary.push(label);
            } else {
                hidden += 1;
            }
        }
        if hidden > 0 {
            let help = existing.help.take().unwrap_or_default();
            let (base, before) = match help.rsplit_once(" (and ") {
                Some((base, rest)) => (
                    base.to_string(),
                    rest.split(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                ),
                None => (help, 0),
            };
            existing.help = Some(format!(
                "{base} (and {} more import or include sites)",
                before + hidden
            ));
        }
    }

    /// E0502, pointing at the `profile` field of the pool in the fleet source when it is
    /// written there, else at the pool's label, else at the cluster's id.
    fn unknown_profile(&self, node_pool: &NodePool, missing: &[&str]) -> Diagnostic {
        let (pool, profile) = (&node_pool.name, &node_pool.profile);
        let origin = &self.set.origin;
        let message = if missing.len() == 2 {
            format!(
                "cluster `{}`: node pool `{pool}` uses profile `{profile}`, which the config set does not have",
                self.cluster_id
            )
        } else {
            format!(
                "cluster `{}`: node pool `{pool}` uses profile `{profile}`, but the config set has no `{}`",
                self.cluster_id, missing[0]
            )
        };
        let profiles = self.profiles();
        let help = match did_you_mean(profile, profiles.iter().map(String::as_str)) {
            Some(hint) => format!("{hint} (profiles in {origin}: {})", profiles.join(", ")),
            None => format!(
                "add {origin}/node-pools/{profile}/{{stack,userdata}}.yaml.j2 or set `profile` to one of: {}",
                profiles.join(", ")
            ),
        };
        let d = Diagnostic::error(Code::E0502, message).help(help);
        let source = &node_pool.source;
        let (span, label) = match (node_pool.profile_span(), source.declared) {
            (Some(span), _) => (span, format!("no node-pools/{profile}/ in {origin}")),
            (None, true) => (
                source.label,
                format!("this node pool has profile `{profile}`"),
            ),
            (None, false) => (
                source.label,
                format!("node pool `{pool}` of this cluster has profile `{profile}`"),
            ),
        };
        d.at(source.file, span, label)
    }

    fn cloudformation(&mut self, out: &str, template: &str, text: &str) -> Option<String> {
        match validate::cloudformation(text) {
            Ok(json) => Some(json),
            Err(problem) => {
                self.invalid(out, template, &problem);
                None
            }
        }
    }

    fn check_yaml(&mut self, out: &str, template: &str, text: &str) {
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.set.passed.get(Check::Yaml, &digest).is_some() {
            return;
        }
        match validate::check_yaml(text) {
            Ok(()) => self.set.passed.insert(Check::Yaml, digest, Vec::new()),
            Err(e) => self.invalid(out, template, &e),
        }
    }

    /// The objects of a manifest file, read once per distinct text that passes.
    fn manifest_objects(&self, text: &str) -> validate::Objects {
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(keys) = self.set.passed.get(Check::Manifests, &digest) {
            return validate::Objects {
                keys,
                refused: None,
            };
        }
        let objects = validate::objects(text);
        if objects.refused.is_none() {
            self.set
                .passed
                .insert(Check::Manifests, digest, objects.keys.clone());
        }
        objects
    }

    /// E0504 for output `out` rendered from `template`: the label names the template
    /// (the problem is in the rendered text, which has no lines in the template).
    fn invalid(&mut self, out: &str, template: &str, problem: &dyn std::fmt::Display) {
        let d = Diagnostic::error(
            Code::E0504,
            format!("cluster `{}`: {out} is invalid: {problem}", self.cluster_id),
        )
        .help(format!("rendered from {}/{template}", self.set.origin));
        let d = match self.set.templates.get(template) {
            Some(&file) => {
                let text = &self.sources.get(file).text;
                let first_line = text.find('\n').unwrap_or(text.len());
                d.at(file, Span::new(0, first_line), format!("renders {out}"))
            }
            None => d,
        };
        self.problems.push(d);
    }
}

/// A minijinja error and the minijinja errors it wraps, outermost first.
fn error_chain(e: &minijinja::Error) -> Vec<&minijinja::Error> {
    std::iter::successors(Some(e), |err| {
        std::error::Error::source(*err)?.downcast_ref::<minijinja::Error>()
    })
    .collect()
}

/// What went wrong: the detail (or kind) of a minijinja error, and a wrapped error of
/// another kind (a serializer's, say) if there is one.
fn describe(e: &minijinja::Error) -> String {
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    match std::error::Error::source(e) {
        Some(inner) if inner.downcast_ref::<minijinja::Error>().is_none() => {
            format!("{what}: {inner}")
        }
        _ => what,
    }
}

/// Where in `file` a minijinja error occurred: its expression, else its line.
fn error_span(file: FileId, sources: &SourceMap, e: &minijinja::Error) -> Span {
    let source = sources.get(file);
    let text = &source.text;
    match (e.range(), e.line()) {
        (Some(r), _) if r.end <= text.len() => Span::new(r.start, r.end),
        (_, Some(line)) => {
            let start = source.lines.line_start(line.saturating_sub(1));
            let end = text[start..].find('\n').map_or(text.len(), |n| start + n);
            Span::new(start, end)
        }
        _ => Span::new(0, 0),
    }
}

/// A minijinja error as a diagnostic pointing into the template: `frame` says where
/// (`file` is its template), `cause` what went wrong.
fn template_error(
    file: FileId,
    sources: &SourceMap,
    frame: &minijinja::Error,
    cause: &minijinja::Error,
    cluster: Option<&str>,
) -> Diagnostic {
    let span = error_span(file, sources, frame);
    let what = describe(cause);
    let message = match cluster {
        Some(c) => format!("template error while rendering cluster `{c}`: {what}"),
        None => format!("template syntax error: {what}"),
    };
    let help = match cause.kind() {
        minijinja::ErrorKind::UndefinedError => {
            "templates see only `cluster`, `node_pools`, and in node-pool templates `pool` and `userdata` (docs/config-set.md)"
        }
        minijinja::ErrorKind::OutOfFuel => {
            "the template does too much work (a loop without end, or nested loops over large ranges)"
        }
        _ => "see docs/config-set.md for the template contract",
    };
    Diagnostic::error(Code::E0503, message)
        .at(file, span, cause.kind().to_string())
        .help(help)
}

/// SHA-256 (first 128 bits, hex) over exactly what forces node replacement, as
/// canonical JSON (keys sorted).
fn config_hash(
    userdata_without_hash: &str,
    launch_templates: &serde_json::Value,
    pool: &NodePool,
    cluster: &Cluster,
) -> String {
    let inputs = json!({
        "userdata": userdata_without_hash,
        "launch_templates": launch_templates,
        "instance_types": pool.instance_types,
        "capacity_type": pool.capacity_type,
        "root_volume_size": pool.root_volume_size,
        "profile": pool.profile,
        "kubernetes_version": cluster.kubernetes_version,
    });
    let digest = Sha256::digest(canonical_json(&inputs).to_string().as_bytes());
    hex(&digest[..16])
}

/// `Properties.LaunchTemplateData` of every `AWS::EC2::LaunchTemplate` resource of a
/// stack, by logical id, and the declarations (less their `Description`) of the stack
/// parameters they `Ref`, such as the machine image's SSM parameter and its default.
fn launch_template_data(stack: &serde_json::Value) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    let mut refs = Vec::new();
    if let Some(resources) = stack
        .get("Resources")
        .and_then(serde_json::Value::as_object)
    {
        for (id, resource) in resources {
            if resource.get("Type").and_then(serde_json::Value::as_str)
                == Some("AWS::EC2::LaunchTemplate")
            {
                let properties = resource.get("Properties");
                let launch = properties.and_then(|p| p.get("LaunchTemplateData"));
                let launch = launch.cloned().unwrap_or_default();
                collect_refs(&launch, &mut refs);
                data.insert(id.clone(), launch);
            }
        }
    }
    let mut parameters = serde_json::Map::new();
    let declared = stack
        .get("Parameters")
        .and_then(serde_json::Value::as_object);
    for name in refs {
        if let Some(serde_json::Value::Object(declaration)) = declared.and_then(|p| p.get(&name)) {
            let mut declaration = declaration.clone();
            declaration.remove("Description");
            parameters.insert(name, serde_json::Value::Object(declaration));
        }
    }
    json!({ "data": data, "parameters": parameters })
}

/// The targets of every `Ref` in a value.
fn collect_refs(value: &serde_json::Value, refs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("Ref", serde_json::Value::String(target)) => refs.push(target.clone()),
                    _ => collect_refs(inner, refs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_refs(i, refs)),
        _ => {}
    }
}

/// The same value with every object's keys in sorted order (serde_json keeps insertion
/// order here), so equal data always serializes to the same text.
fn canonical_json(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical_json(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical_json).collect())
        }
        other => other.clone(),
    }
}

fn to_value<T: Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}

/// Trim trailing spaces and blank lines left by template tags; end with one newline.
fn normalize_text(text: &str) -> String {
    // One buffer for the whole text: a string per line costs more than the rest.
    let mut out = String::with_capacity(text.len() + 1);
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
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
    crate::units::parse_duration_ms(number, unit)
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
