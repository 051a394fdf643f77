//! Random config sets rendered the way `compile` renders them ([`ConfigSet::new`], then
//! [`ConfigSet::render`] for one cluster), shared by the fuzz target
//! `fuzz/fuzz_targets/template.rs` and its proptest counterpart in `tests/hostile.rs`.
//!
//! An [`Input`] is a flat list of template pieces per file (nesting comes from open and
//! close pieces, so deep input cannot overflow the generator's stack) and changes to the
//! cluster the templates see. [`check`] asserts what issue 11 promises: rendering
//! returns (the template fuel bounds it; the fuzzer's `-timeout` catches a hang), no
//! artifact exceeds [`MAX_RENDERED_BYTES`], and every error names the template (or, for
//! a missing one, the config set).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use flotilla::analysis::analyze;
use flotilla::diagnostic::Diagnostic;
use flotilla::model::Cluster;
use flotilla::render::{ConfigSet, MAX_RENDERED_BYTES};
use flotilla::source::{FileId, MemoryFs, SourceMap};

/// How the config set is named in messages; every error must lead back to it.
const ORIGIN: &str = "fuzz-set";

/// Deepest nesting of `for`, `if` and `macro` blocks a template gets.
const MAX_DEPTH: usize = 6;

/// Largest loop, repetition and literal count. The fuzzer (`--cfg fuzzing`) takes any;
/// the proptest runs in a debug build and must take seconds, so there it is 40 unless
/// `TEMPLATE_FUZZ_MAX_COUNT` says otherwise (a long soak run, fuzz/README.md), and the
/// template fuel and size limit are left to `tests/hostile.rs`'s own regression tests.
#[cfg(fuzzing)]
fn max_count() -> u32 {
    u32::MAX
}
#[cfg(not(fuzzing))]
fn max_count() -> u32 {
    static MAX: OnceLock<u32> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("TEMPLATE_FUZZ_MAX_COUNT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(40)
    })
}

const FLEET: &str = r#"channel stable {
  kubernetes_version = "1.31.4"
  config_ref = "stable"
}

cluster "prod-1" {
  account = "123456789012"
  region = "eu-central-1"
  environment = production
  channel = stable
  api_server_url = "https://prod-1.example.org"
  config_items {
    custom = { "note": "from the fleet" }
  }
  node_pool "workers" {
    instance_types = ["m5.large", "m5.xlarge"]
    max_size = 3
    labels = { "team": "platform" }
  }
}
"#;

/// The evaluated fleet's one cluster and the sources it was read from, analysed once.
fn base() -> &'static (Cluster, SourceMap) {
    static BASE: OnceLock<(Cluster, SourceMap)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut fs = MemoryFs::new();
        fs.insert("fleet/main.flt", FLEET);
        let analysis = analyze(&fs, Path::new("fleet"));
        assert!(!analysis.has_errors(), "{:#?}", analysis.diagnostics);
        let fleet = analysis.model.expect("a fleet without errors has a model");
        let cluster = fleet
            .clusters
            .into_iter()
            .next()
            .expect("FLEET has a cluster");
        (cluster, analysis.program.sources)
    })
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    etcd: Vec<Piece>,
    cluster: Vec<Piece>,
    userdata: Vec<Piece>,
    stack: Vec<Piece>,
    manifests: Vec<Vec<Piece>>,
    deletions: Option<Vec<Piece>>,
    /// `lib/h0.j2`, `lib/h1.j2`, …: included and imported by the others.
    helpers: Vec<Vec<Piece>>,
    values: Values,
}

/// One piece of template text.
#[derive(Arbitrary, Debug)]
enum Piece {
    Text(Fragment),
    /// Any text, template syntax and all.
    Raw(String),
    /// `seed` written `times` times into the template: large literal output.
    Large {
        seed: Fragment,
        times: u16,
    },
    Print(Expr),
    Set(u8, Expr),
    For(Iterable),
    If(Expr),
    /// `{% macro mN(a) %}`; called through `Call`.
    Macro(u8),
    /// Ends the innermost open block.
    End,
    Include(u8),
    /// `{% from "lib/hH.j2" import mM %}{{ mM(expr) }}`.
    Call {
        helper: u8,
        name: u8,
        arg: Expr,
    },
}

/// Text that makes YAML, CloudFormation or manifests when put together.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Fragment {
    Newline,
    Indent,
    Dash,
    Colon,
    Key,
    Resources,
    Topic,
    Parameter,
    Ref,
    Manifest,
    Deletion,
    DocumentStart,
    FlowSeq,
    FlowMap,
    Anchor,
    Alias,
    Quote,
    Comment,
    CloudConfig,
}

impl Fragment {
    fn text(self) -> &'static str {
        match self {
            Fragment::Newline => "\n",
            Fragment::Indent => "  ",
            Fragment::Dash => "- ",
            Fragment::Colon => ": ",
            Fragment::Key => "key",
            Fragment::Resources => "Resources:\n",
            Fragment::Topic => "  Topic:\n    Type: AWS::SNS::Topic\n",
            Fragment::Parameter => "Parameters:\n  P:\n    Type: String\n",
            Fragment::Ref => "    Properties:\n      TopicName:\n        Ref: P\n",
            Fragment::Manifest => {
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n  namespace: kube-system\ndata:\n"
            }
            Fragment::Deletion => {
                "pre_apply:\n  - kind: Deployment\n    namespace: kube-system\n    name: old\npost_apply: []\n"
            }
            Fragment::DocumentStart => "---\n",
            Fragment::FlowSeq => "[a, b, [c]]",
            Fragment::FlowMap => "{a: 1, b: {c: 2}}",
            Fragment::Anchor => "&x ",
            Fragment::Alias => "*x",
            Fragment::Quote => "\"",
            Fragment::Comment => "# ",
            Fragment::CloudConfig => "#cloud-config\nwrite_files: []\n",
        }
    }
}

/// An atom and what is done to it, left to right.
#[derive(Arbitrary, Debug)]
struct Expr {
    atom: Atom,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Atom {
    Field(Field),
    Str(String),
    Int(i32),
    Var(u8),
    LoopIndex,
    Undefined,
}

/// What the templates see: `cluster`, `node_pools`, `pool`, `userdata`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Field {
    ClusterId,
    Owner,
    KubernetesVersion,
    Custom,
    CorednsMemory,
    EtcdBackupInterval,
    NodePools,
    PoolName,
    PoolLabels,
    PoolInstanceTypes,
    PoolMaxSize,
    PoolConfigHash,
    RootVolume,
    Userdata,
}

impl Field {
    fn text(self) -> &'static str {
        match self {
            Field::ClusterId => "cluster.id",
            Field::Owner => "cluster.owner",
            Field::KubernetesVersion => "cluster.kubernetes_version",
            Field::Custom => "cluster.config_items.custom",
            Field::CorednsMemory => "cluster.config_items.coredns_memory_limit",
            Field::EtcdBackupInterval => "cluster.config_items.etcd_backup_interval",
            Field::NodePools => "node_pools",
            Field::PoolName => "pool.name",
            Field::PoolLabels => "pool.labels",
            Field::PoolInstanceTypes => "pool.instance_types",
            Field::PoolMaxSize => "pool.max_size",
            Field::PoolConfigHash => "pool.config_hash",
            Field::RootVolume => "pool.root_volume_size",
            Field::Userdata => "userdata",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// `* n`: string and list repetition.
    Repeat(u32),
    Concat(Atom),
    Add(i32),
    Attr(Field),
    Index(i16),
    Filter(Filter),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Filter {
    Upper,
    ToJson,
    B64Encode,
    Sha256,
    Seconds,
    Gib,
    Mib,
    Length,
    String,
    List,
    Join,
    Items,
    Default,
    Replace,
    Indent,
    First,
    Sort,
    Unique,
    Int,
    Batch,
    MapName,
    Unknown,
}

impl Filter {
    fn text(self) -> &'static str {
        match self {
            Filter::Upper => "upper",
            Filter::ToJson => "tojson",
            Filter::B64Encode => "b64encode",
            Filter::Sha256 => "sha256",
            Filter::Seconds => "seconds",
            Filter::Gib => "gib",
            Filter::Mib => "mib",
            Filter::Length => "length",
            Filter::String => "string",
            Filter::List => "list",
            Filter::Join => "join(\", \")",
            Filter::Items => "items",
            Filter::Default => "default(\"d\")",
            Filter::Replace => "replace(\"a\", \"aaaa\")",
            Filter::Indent => "indent(4)",
            Filter::First => "first",
            Filter::Sort => "sort",
            Filter::Unique => "unique",
            Filter::Int => "int",
            Filter::Batch => "batch(3)",
            Filter::MapName => "map(attribute=\"name\")",
            Filter::Unknown => "no_such_filter",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Iterable {
    Range(u32),
    Expr(Expr),
}

/// Changes to the evaluated cluster, made after its checks: the renderer must cope with
/// any values, not only those the stdlib accepts.
#[derive(Arbitrary, Debug)]
struct Values {
    id: Option<String>,
    owner: Option<String>,
    custom: Vec<(String, String)>,
    /// A custom item of `text` repeated `times` times.
    large: Option<(String, u16)>,
    pools: Vec<Pool>,
}

#[derive(Arbitrary, Debug)]
struct Pool {
    name: String,
    /// Whether the set has this pool's profile (`worker-default`) or not.
    known_profile: bool,
    labels: Vec<(String, String)>,
    instance_types: Vec<String>,
    min_size: i64,
    max_size: i64,
}

impl Input {
    /// The config set's files, `(path, text)`, and the cluster to render.
    pub fn build(&self) -> (Vec<(String, String)>, Cluster) {
        let mut files = vec![
            ("etcd.yaml.j2".to_string(), template(&self.etcd)),
            ("cluster.yaml.j2".to_string(), template(&self.cluster)),
            (
                "node-pools/worker-default/userdata.yaml.j2".to_string(),
                template(&self.userdata),
            ),
            (
                "node-pools/worker-default/stack.yaml.j2".to_string(),
                template(&self.stack),
            ),
        ];
        for (i, pieces) in self.manifests.iter().take(4).enumerate() {
            files.push((format!("manifests/{i:02}/m.yaml.j2"), template(pieces)));
        }
        if let Some(pieces) = &self.deletions {
            files.push(("deletions.yaml.j2".to_string(), template(pieces)));
        }
        for (i, pieces) in self.helpers.iter().take(4).enumerate() {
            files.push((format!("lib/h{i}.j2"), template(pieces)));
        }
        (files, self.values.apply(&base().0))
    }
}

impl Values {
    fn apply(&self, base: &Cluster) -> Cluster {
        let mut cluster = base.clone();
        if let Some(id) = &self.id {
            cluster.id = id.clone();
        }
        if let Some(owner) = &self.owner {
            cluster.owner = owner.clone();
        }
        let custom = &mut cluster.config_items.custom;
        custom.extend(self.custom.iter().take(8).cloned());
        if let Some((text, times)) = &self.large {
            let times = usize::from(*times).min((1 << 20) / text.len().max(1));
            custom.insert("large".into(), text.repeat(times));
        }
        let first = cluster.node_pools[0].clone();
        if !self.pools.is_empty() {
            cluster.node_pools = self
                .pools
                .iter()
                .take(4)
                .map(|p| {
                    let mut pool = first.clone();
                    pool.name = p.name.clone();
                    if !p.known_profile {
                        pool.profile = "worker-missing".into();
                    }
                    pool.labels.extend(p.labels.iter().take(8).cloned());
                    if !p.instance_types.is_empty() {
                        pool.instance_types = p.instance_types.iter().take(4).cloned().collect();
                    }
                    pool.min_size = p.min_size;
                    pool.max_size = p.max_size;
                    pool
                })
                .collect();
        }
        cluster
    }
}

/// Template text from pieces; blocks still open at the end are closed.
fn template(pieces: &[Piece]) -> String {
    let mut out = String::new();
    let mut open: Vec<&str> = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(fragment) => out.push_str(fragment.text()),
            Piece::Raw(text) => out.push_str(text),
            Piece::Large { seed, times } => {
                let times = u32::from(*times).min(max_count()) as usize;
                out.push_str(&seed.text().repeat(times));
            }
            Piece::Print(expr) => out.push_str(&format!("{{{{ {} }}}}", expr.text())),
            Piece::Set(var, expr) => {
                out.push_str(&format!("{{% set v{} = {} %}}", var % 4, expr.text()))
            }
            Piece::For(iterable) if open.len() < MAX_DEPTH => {
                let over = match iterable {
                    Iterable::Range(n) => format!("range({})", n.min(&max_count())),
                    Iterable::Expr(expr) => expr.text(),
                };
                out.push_str(&format!("{{% for v{} in {over} %}}", open.len() % 4));
                open.push("{% endfor %}");
            }
            Piece::If(expr) if open.len() < MAX_DEPTH => {
                out.push_str(&format!("{{% if {} %}}", expr.text()));
                open.push("{% endif %}");
            }
            Piece::Macro(name) if open.len() < MAX_DEPTH => {
                out.push_str(&format!("{{% macro m{}(a) %}}", name % 4));
                open.push("{% endmacro %}");
            }
            Piece::For(_) | Piece::If(_) | Piece::Macro(_) => {}
            Piece::End => out.push_str(open.pop().unwrap_or_default()),
            Piece::Include(helper) => {
                out.push_str(&format!("{{% include \"lib/h{}.j2\" %}}", helper % 5));
            }
            Piece::Call { helper, name, arg } => out.push_str(&format!(
                "{{% from \"lib/h{}.j2\" import m{name} %}}{{{{ m{name}({}) }}}}",
                helper % 5,
                arg.text(),
                name = name % 4,
            )),
        }
    }
    while let Some(end) = open.pop() {
        out.push_str(end);
    }
    out
}

impl Expr {
    fn text(&self) -> String {
        let mut text = self.atom.text();
        for op in self.ops.iter().take(6) {
            text = match op {
                Op::Repeat(n) => format!("({text} * {})", n.min(&max_count())),
                Op::Concat(atom) => format!("({text} ~ {})", atom.text()),
                Op::Add(n) => format!("({text} + {n})"),
                Op::Attr(field) => {
                    let name = field.text().rsplit('.').next().unwrap_or_default();
                    format!("{text}.{name}")
                }
                Op::Index(i) => format!("{text}[{i}]"),
                Op::Filter(filter) => format!("({text} | {})", filter.text()),
            };
        }
        text
    }
}

impl Atom {
    fn text(&self) -> String {
        match self {
            Atom::Field(field) => field.text().to_string(),
            // A JSON string is a template string literal, escapes and all.
            Atom::Str(s) => serde_json::to_string(s).unwrap_or_default(),
            Atom::Int(n) => n.to_string(),
            Atom::Var(n) => format!("v{}", n % 4),
            Atom::LoopIndex => "loop.index".into(),
            Atom::Undefined => "no_such_name".into(),
        }
    }
}

/// Render `input` as compile does and check what issue 11 promises.
pub fn check(input: &Input) {
    let (files, cluster) = input.build();
    let (_, base_sources) = base();
    let mut sources = base_sources.clone();
    let first_template = FileId(sources.iter().count() as u32);
    let problems = match ConfigSet::new(ORIGIN.into(), files, &mut sources) {
        Ok(set) => match set.render(&cluster, &sources) {
            Ok(artifacts) => {
                for (path, text) in &artifacts.files {
                    assert!(
                        text.len() <= MAX_RENDERED_BYTES,
                        "{path} is {} bytes, above the limit of {MAX_RENDERED_BYTES}",
                        text.len()
                    );
                }
                return;
            }
            Err(problems) => problems,
        },
        Err(problems) => problems,
    };
    let templates: BTreeSet<FileId> = sources
        .iter()
        .map(|(id, _)| id)
        .filter(|id| *id >= first_template)
        .collect();
    assert!(!problems.is_empty(), "an error without a diagnostic");
    for problem in &problems {
        assert_names_its_template(problem, &templates);
    }
}

/// A template error points into a template of the set; an error about the set as a
/// whole (a missing template or profile) names the set.
fn assert_names_its_template(problem: &Diagnostic, templates: &BTreeSet<FileId>) {
    let in_template = problem
        .primary
        .as_ref()
        .is_some_and(|label| templates.contains(&label.file));
    let names_set = problem.message.contains(ORIGIN)
        || problem.help.as_deref().is_some_and(|h| h.contains(ORIGIN));
    let ok = match problem.code.as_str() {
        // Template errors (E0503) and invalid output (E0504) point at the template.
        "E0503" | "E0504" => in_template,
        // A missing template or profile names the set.
        "E0501" | "E0502" => names_set,
        _ => false,
    };
    assert!(ok, "the error does not name its template: {problem:#?}");
}
