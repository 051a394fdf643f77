//! Compile the fleet: evaluate, pick each cluster's config set (its channel's git ref,
//! or a directory), render all clusters in parallel, and write the output atomically.
//! With a [`Cache`], a cluster whose model and config set are unchanged since it was
//! last rendered is served from the cache instead.

mod cache;
mod error;
mod output;
mod revision;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::analysis::{Keep, analyze_keeping};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, sort_diagnostics};
use crate::git::Repo;
use crate::model::{Cluster, Fleet};
use crate::render::{Artifacts, ConfigSet, Summary};
use crate::source::{FileSystem, SourceMap};

pub use cache::{Cache, Entry, EntryError, Key};
pub use error::CompileError;
use output::{is_relative_inside, process_is_gone};
pub use output::{write_fleet_output, write_output};

/// Where config sets come from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// One directory for every cluster (`--config-set DIR`).
    Dir(PathBuf),
    /// Each cluster's channel pins a ref; the set is `path` inside the repository at that ref.
    /// `head` is the commit the fleet itself is read at (for `diff`): a `config_ref` of
    /// `HEAD` (or `HEAD~N`) then means that commit, not the checkout's.
    Git {
        repo: Repo,
        path: String,
        head: Option<String>,
    },
}

/// A compiled fleet with every artifact's text in memory.
pub struct Compilation {
    /// Fleet sources and templates, for rendering diagnostics.
    pub sources: SourceMap,
    /// The fleet's model (`None` when it has errors).
    pub fleet: Option<Fleet>,
    /// One entry per compiled cluster, sorted by cluster id.
    pub artifacts: Vec<Artifacts>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compilation {
    /// A fleet with no clusters (for a revision where the fleet does not exist yet).
    pub fn empty() -> Compilation {
        Compilation {
            sources: SourceMap::default(),
            fleet: None,
            artifacts: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// A compiled fleet whose clusters' files are in the cache (or in memory, without one):
/// what `compile` writes and `diff` compares without reading unchanged clusters' text.
pub struct FleetOutput {
    /// Fleet sources and templates, for rendering diagnostics.
    pub sources: SourceMap,
    /// The fleet's model (`None` when it has errors).
    pub fleet: Option<Fleet>,
    /// One entry per compiled cluster, sorted by cluster id.
    pub clusters: Vec<ClusterOutput>,
    pub diagnostics: Vec<Diagnostic>,
    /// What went wrong with the cache itself (an entry that was corrupt, a store that
    /// failed): reported as notes, the compile does not depend on it.
    pub cache_notes: Vec<String>,
    cache: Option<Cache>,
    /// Each cluster's config set, kept to render a cluster again whose entry turns out
    /// corrupt when its text is read.
    sets: BTreeMap<String, LoadedSet>,
    set_of: BTreeMap<String, String>,
}

/// One cluster of a [`FleetOutput`].
pub struct ClusterOutput {
    pub cluster: String,
    /// The cache key of the cluster's output (`None` without a cache).
    pub key: Option<Key>,
    /// Whether it was rendered in this run, rather than served from the cache.
    pub rendered: bool,
    pub content: Content,
}

pub enum Content {
    /// Stored in the cache: files are linked from there.
    Stored(Entry),
    /// Only in memory (no cache, or storing failed).
    Memory(Artifacts),
}

impl ClusterOutput {
    pub fn summary(&self) -> &Summary {
        match &self.content {
            Content::Stored(entry) => entry.summary(),
            Content::Memory(artifacts) => &artifacts.summary,
        }
    }

    /// Artifact files, `summary.json` not counted.
    pub fn file_count(&self) -> usize {
        match &self.content {
            Content::Stored(entry) => entry.file_count() - 1,
            Content::Memory(artifacts) => artifacts.files.len(),
        }
    }
}

impl FleetOutput {
    pub fn empty() -> FleetOutput {
        FleetOutput {
            sources: SourceMap::default(),
            fleet: None,
            clusters: Vec::new(),
            diagnostics: Vec::new(),
            cache_notes: Vec::new(),
            cache: None,
            sets: BTreeMap::new(),
            set_of: BTreeMap::new(),
        }
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Ids of the clusters rendered in this run (the others were served from the cache).
    pub fn rendered(&self) -> Vec<&str> {
        self.clusters
            .iter()
            .filter(|c| c.rendered)
            .map(|c| c.cluster.as_str())
            .collect()
    }

    /// The artifacts with their text of every cluster not in `skip`. A cache entry that
    /// fails its digest check here is discarded and the cluster rendered again.
    pub fn artifacts_except(
        &mut self,
        skip: &BTreeSet<&str>,
    ) -> Result<Vec<Artifacts>, CompileError> {
        let mut out = Vec::new();
        for output in &self.clusters {
            if skip.contains(output.cluster.as_str()) {
                continue;
            }
            let entry = match &output.content {
                Content::Memory(artifacts) => {
                    out.push(artifacts.clone());
                    continue;
                }
                Content::Stored(entry) => entry,
            };
            match entry.artifacts() {
                Ok(artifacts) => out.push(artifacts),
                Err(e) => {
                    self.cache_notes.push(format!("{e}; rendered again"));
                    if let Some(cache) = &self.cache {
                        cache.discard(entry.dir());
                    }
                    out.push(self.render_again(&output.cluster)?);
                }
            }
        }
        Ok(out)
    }

    fn render_again(&self, id: &str) -> Result<Artifacts, CompileError> {
        let cluster = self.fleet.as_ref().and_then(|f| f.cluster(id));
        let set = self.set_of.get(id).and_then(|name| self.sets.get(name));
        let (Some(cluster), Some(set)) = (cluster, set) else {
            return Err(CompileError::NotRenderable(id.to_string()));
        };
        set.set
            .render(cluster, &self.sources)
            .map_err(|problems| CompileError::NoLongerRenders {
                cluster: id.to_string(),
                problem: problems
                    .first()
                    .map_or(String::new(), |d| d.message.clone()),
            })
    }
}

/// A config set and the digest of its content.
struct LoadedSet {
    set: ConfigSet,
    digest: String,
    /// The commit it was read at (`None` for a directory).
    commit: Option<String>,
}

/// Compile the fleet at `path` (read through `fs`). `only` limits the clusters.
pub fn compile(
    fs: &dyn FileSystem,
    path: &Path,
    config: &ConfigSource,
    only: &[String],
) -> Compilation {
    let output = compile_with_cache(fs, path, config, only, None);
    let artifacts = output
        .clusters
        .into_iter()
        .filter_map(|c| match c.content {
            Content::Memory(artifacts) => Some(artifacts),
            Content::Stored(_) => None,
        })
        .collect();
    Compilation {
        sources: output.sources,
        fleet: output.fleet,
        artifacts,
        diagnostics: output.diagnostics,
    }
}

/// Compile the fleet at `path` (read through `fs`), serving unchanged clusters from
/// `cache` and storing the others there. `only` limits the clusters.
pub fn compile_with_cache(
    fs: &dyn FileSystem,
    path: &Path,
    config: &ConfigSource,
    only: &[String],
    cache: Option<&Cache>,
) -> FleetOutput {
    // Rendering reads the model only: each cluster's evaluated data is dropped once read.
    let analysis = analyze_keeping(fs, path, Keep::Model);
    let has_errors = analysis.diagnostics.iter().any(Diagnostic::is_error);
    match analysis.model.filter(|_| !has_errors) {
        Some(fleet) => {
            let mut result =
                compile_model(fleet, analysis.program.sources, path, config, only, cache);
            result.diagnostics.extend(analysis.diagnostics);
            sort_diagnostics(&mut result.diagnostics);
            result
        }
        None => FleetOutput {
            sources: analysis.program.sources,
            diagnostics: analysis.diagnostics,
            ..FleetOutput::empty()
        },
    }
}

/// The part of [`compile_with_cache`] after the front end: render the evaluated `fleet`
/// whose sources are `sources`. Public so that a test can stand in for a changed stdlib
/// by changing the model the way the stdlib would.
pub fn compile_model(
    fleet: Fleet,
    sources: SourceMap,
    path: &Path,
    config: &ConfigSource,
    only: &[String],
    cache: Option<&Cache>,
) -> FleetOutput {
    let mut result = FleetOutput {
        sources,
        cache: cache.cloned(),
        ..FleetOutput::empty()
    };
    for id in only {
        if fleet.cluster(id).is_none() {
            let known: Vec<&str> = fleet.cluster_ids().collect();
            result.diagnostics.push(
                Diagnostic::error(Code::E0500, format!("no cluster `{id}` in the fleet"))
                    .help(format!("clusters: {}", known.join(", "))),
            );
        }
    }
    let clusters: Vec<&Cluster> = fleet
        .clusters
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.id))
        .collect();

    // Load each distinct config set once.
    let mut attempted = BTreeSet::new();
    for cluster in &clusters {
        let name = match config {
            ConfigSource::Dir(dir) => dir.display().to_string(),
            ConfigSource::Git { .. } => cluster.channel.config_ref.clone(),
        };
        if attempted.insert(name.clone()) {
            match load_set(config, path, cluster, &mut result.sources) {
                Ok(loaded) => {
                    result.sets.insert(name.clone(), loaded);
                }
                Err(problems) => result.diagnostics.extend(problems),
            }
        }
        result.set_of.insert(cluster.id.clone(), name);
    }
    if result.has_errors() {
        sort_diagnostics(&mut result.diagnostics);
        result.fleet = Some(fleet.clone());
        return result;
    }
    if let Some(cache) = cache
        && let Err(e) = cache.prepare()
    {
        result.cache_notes.push(format!(
            "cannot use the compile cache at {}: {e}; compiling without it",
            cache.root().display()
        ));
        result.cache = None;
    }

    let cache = result.cache.as_ref();
    let (sets, set_of, sources) = (&result.sets, &result.set_of, &result.sources);
    let outcomes = on_every_core(clusters.len(), |i| {
        let cluster = clusters[i];
        match set_of.get(&cluster.id).and_then(|name| sets.get(name)) {
            Some(set) => compile_cluster(cluster, set, sources, cache),
            // Not reached: a set that failed to load is an error, returned above.
            None => (Err(Vec::new()), Vec::new()),
        }
    });
    for (outcome, notes) in outcomes {
        result.cache_notes.extend(notes);
        match outcome {
            Ok(output) => result.clusters.push(output),
            Err(problems) => result.diagnostics.extend(problems),
        }
    }
    result.clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    sort_diagnostics(&mut result.diagnostics);
    result.fleet = Some(fleet);
    result
}

type ClusterOutcome = (Result<ClusterOutput, Vec<Diagnostic>>, Vec<String>);

/// One cluster: from the cache when its entry is there and sound, rendered otherwise
/// (and then stored).
fn compile_cluster(
    cluster: &Cluster,
    set: &LoadedSet,
    sources: &SourceMap,
    cache: Option<&Cache>,
) -> ClusterOutcome {
    let mut notes = Vec::new();
    let key = cache.and_then(|_| Key::new(cluster, &set.digest).ok());
    if let (Some(cache), Some(key)) = (cache, &key) {
        match cache.load(key) {
            Ok(entry) => {
                let output = ClusterOutput {
                    cluster: cluster.id.clone(),
                    key: Some(key.clone()),
                    rendered: false,
                    content: Content::Stored(entry),
                };
                return (Ok(output), notes);
            }
            Err(EntryError::Missing) => {}
            Err(e) => notes.push(format!("{e}; rendered again")),
        }
    }
    let artifacts = match set.set.render(cluster, sources) {
        Ok(artifacts) => artifacts,
        Err(problems) => return (Err(problems), notes),
    };
    let content = match (cache, &key) {
        (Some(cache), Some(key)) => match cache.store(key, &artifacts) {
            Ok(entry) => Content::Stored(entry),
            Err(e) => {
                notes.push(format!(
                    "cannot store cluster {} in the compile cache at {}: {e}",
                    cluster.id,
                    cache.root().display()
                ));
                Content::Memory(artifacts)
            }
        },
        _ => Content::Memory(artifacts),
    };
    let output = ClusterOutput {
        cluster: cluster.id.clone(),
        key,
        rendered: true,
        content,
    };
    (Ok(output), notes)
}

/// `work(i)` for every `i` in `0..n`, spread over the cores; the results in index order.
fn on_every_core<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(n.max(1));
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break mine;
                        }
                        mine.push((i, work(i)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The fleet at `path` as of git revision `rev`, compiled (with `cache` when given);
/// `Ok(None)` when the fleet does not exist at that revision (its clusters then count
/// as added). Channels pinned to `HEAD` read the config set as of `rev` too.
pub fn compile_at_revision(
    repo: &Repo,
    rev: &str,
    path: &Path,
    config: &ConfigSource,
    cache: Option<&Cache>,
) -> Result<Option<FleetOutput>, CompileError> {
    let at = At::new(repo, rev, path, config)?;
    at.compile(cache)
}

/// A revision of the fleet to compile: its commit, the fleet's path in the repository,
/// and where its config sets come from.
#[derive(Clone)]
struct At {
    repo: Repo,
    commit: String,
    fleet: PathBuf,
    relative: String,
    config: ConfigSource,
}

impl At {
    fn new(repo: &Repo, rev: &str, path: &Path, config: &ConfigSource) -> Result<At, CompileError> {
        let commit = repo.resolve(rev)?;
        let relative = repo
            .relative(path)
            .ok_or_else(|| CompileError::OutsideRepository {
                path: path.to_path_buf(),
                root: repo.root.clone(),
            })?;
        let config = match config {
            ConfigSource::Git { repo, path, .. } => ConfigSource::Git {
                repo: repo.clone(),
                path: path.clone(),
                head: Some(commit.clone()),
            },
            dir => dir.clone(),
        };
        Ok(At {
            repo: repo.clone(),
            fleet: repo.root.join(&relative),
            relative: relative.to_string_lossy().replace('\\', "/"),
            commit,
            config,
        })
    }

    fn compile(&self, cache: Option<&Cache>) -> Result<Option<FleetOutput>, CompileError> {
        let fs = self.repo.flt_files_at(&self.commit)?;
        if fs.read(&self.fleet).is_none() && fs.flt_files(&self.fleet).is_empty() {
            return Ok(None);
        }
        Ok(Some(compile_with_cache(
            &fs,
            &self.fleet,
            &self.config,
            &[],
            cache,
        )))
    }

    /// Where config sets come from, as a record names it.
    fn config_name(&self) -> String {
        match &self.config {
            ConfigSource::Git { path, .. } => format!("git {}", path.trim_matches('/')),
            ConfigSource::Dir(dir) => format!("dir {}", relative_to_fleet(&self.fleet, dir)),
        }
    }

    /// What names the content of the config set a channel reaches as `name` at this
    /// revision: the tree id of the set, or a directory's content digest.
    fn set_id(&self, name: &str) -> Option<String> {
        match &self.config {
            ConfigSource::Git { repo, path, head } => {
                let commit = repo.resolve(&config_ref_at(name, head.as_deref())).ok()?;
                repo.tree_id(&commit, path).ok()
            }
            ConfigSource::Dir(dir) => {
                let files = read_dir_files(dir).ok()?;
                Some(cache::config_set_digest(
                    &relative_to_fleet(&self.fleet, dir),
                    &files,
                ))
            }
        }
    }

    /// [`At::set_id`] of a set as it was loaded (from the commit it was read at, so a
    /// ref that moved since cannot be recorded with the older content's keys).
    fn loaded_set_id(&self, set: &LoadedSet) -> Option<String> {
        match (&self.config, &set.commit) {
            (ConfigSource::Git { repo, path, .. }, Some(commit)) => repo.tree_id(commit, path).ok(),
            (ConfigSource::Dir(_), None) => Some(set.digest.clone()),
            _ => None,
        }
    }
}

/// A revision as `diff` compares it.
pub enum Revision {
    /// Compiled in this run.
    Compiled(FleetOutput),
    /// Known from an earlier run with the same sources, config sets and flotilla: each
    /// cluster's key, its output in the cache.
    Recorded(Recorded),
}

pub struct Recorded {
    clusters: Vec<(String, Key)>,
    cache: Cache,
    /// To compile the revision after all, should a cache entry be gone or corrupt.
    at: At,
}

impl Revision {
    /// Each cluster's id and its cache key (`None` without a cache), sorted by id.
    pub fn keys(&self) -> Vec<(&str, Option<&Key>)> {
        match self {
            Revision::Compiled(output) => output
                .clusters
                .iter()
                .map(|c| (c.cluster.as_str(), c.key.as_ref()))
                .collect(),
            Revision::Recorded(recorded) => recorded
                .clusters
                .iter()
                .map(|(id, key)| (id.as_str(), Some(key)))
                .collect(),
        }
    }

    /// The compile, when this run compiled the revision.
    pub fn output(&self) -> Option<&FleetOutput> {
        match self {
            Revision::Compiled(output) => Some(output),
            Revision::Recorded(_) => None,
        }
    }

    /// The artifacts with their text of every cluster not in `skip`. A recorded
    /// revision whose entries cannot all be read is compiled after all.
    pub fn artifacts_except(
        &mut self,
        skip: &BTreeSet<&str>,
    ) -> Result<Vec<Artifacts>, CompileError> {
        if let Revision::Recorded(recorded) = self {
            let read: Result<Vec<Artifacts>, EntryError> = recorded
                .clusters
                .iter()
                .filter(|(id, _)| !skip.contains(id.as_str()))
                .map(|(_, key)| recorded.cache.load(key)?.artifacts())
                .collect();
            match read {
                Ok(artifacts) => return Ok(artifacts),
                Err(e) => {
                    let mut output = recorded
                        .at
                        .compile(Some(&recorded.cache))?
                        .ok_or_else(|| CompileError::NotRenderable(recorded.at.relative.clone()))?;
                    output
                        .cache_notes
                        .push(format!("{e}; compiled the revision again"));
                    *self = Revision::Compiled(output);
                }
            }
        }
        match self {
            Revision::Compiled(output) => output.artifacts_except(skip),
            Revision::Recorded(_) => Ok(Vec::new()),
        }
    }
}

/// The fleet at `path` as of git revision `rev`, for `diff`: from the record of an
/// earlier run when its sources, config sets and flotilla are the same (no front end,
/// no cache entry read), compiled and recorded otherwise. `Ok(None)` when the fleet
/// does not exist at that revision.
pub fn revision_for_diff(
    repo: &Repo,
    rev: &str,
    path: &Path,
    config: &ConfigSource,
    cache: Option<&Cache>,
) -> Result<Option<Revision>, CompileError> {
    let at = At::new(repo, rev, path, config)?;
    let Some(cache) = cache else {
        return Ok(at.compile(None)?.map(Revision::Compiled));
    };
    let tree = repo.tree_id(&at.commit, "")?;
    let config_name = at.config_name();
    let lookup = revision::Lookup {
        tree: &tree,
        fleet: &at.relative,
        config: &config_name,
    };
    if let Some(record) = revision::load(cache, &lookup)
        && record
            .sets
            .iter()
            .all(|(name, id)| at.set_id(name).as_ref() == Some(id))
    {
        return Ok(Some(Revision::Recorded(Recorded {
            clusters: record.clusters,
            cache: cache.clone(),
            at,
        })));
    }
    let Some(mut output) = at.compile(Some(cache))? else {
        return Ok(None);
    };
    if let Some((sets, clusters)) = recordable(&at, &output)
        && let Err(e) = revision::store(cache, &lookup, sets, clusters)
    {
        output.cache_notes.push(format!(
            "cannot record revision {rev} in the compile cache at {}: {e}",
            cache.root().display()
        ));
    }
    Ok(Some(Revision::Compiled(output)))
}

/// (config set name, what names its content).
type SetId = (String, String);

/// What a record of `output` holds, when it can be recorded: compiled without errors,
/// every cluster stored in the cache, every config set's content named.
fn recordable(at: &At, output: &FleetOutput) -> Option<(Vec<SetId>, BTreeMap<String, Key>)> {
    if output.has_errors() || output.cache.is_none() {
        return None;
    }
    let clusters = output
        .clusters
        .iter()
        .map(|c| match (&c.key, &c.content) {
            (Some(key), Content::Stored(_)) => Some((c.cluster.clone(), key.clone())),
            _ => None,
        })
        .collect::<Option<BTreeMap<_, _>>>()?;
    let sets = output
        .sets
        .iter()
        .map(|(name, set)| Some((name.clone(), at.loaded_set_id(set)?)))
        .collect::<Option<Vec<_>>>()?;
    Some((sets, clusters))
}

/// What `compile` reports: per cluster its channel, config set and file count, per pool
/// its config hash, then the total and how many clusters were rendered.
pub fn summary(output: &FleetOutput, out: &Path) -> String {
    let mut text = String::new();
    for c in &output.clusters {
        let summary = c.summary();
        text.push_str(&format!(
            "{}  channel {} ({})  {} files\n",
            c.cluster,
            summary.channel,
            summary.config_set,
            c.file_count()
        ));
        for p in &summary.node_pools {
            text.push_str(&format!(
                "  node pool {:<24} config hash {}\n",
                p.name, p.config_hash
            ));
        }
    }
    let count = output.clusters.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    text.push_str(&format!(
        "compiled {count} cluster{} into {}\n",
        plural(count),
        out.display()
    ));
    if let Some(cache) = &output.cache {
        let rendered = output.rendered().len();
        text.push_str(&format!(
            "rendered {rendered} cluster{}; {} unchanged, from the cache in {}\n",
            plural(rendered),
            count - rendered,
            cache.root().display()
        ));
    }
    text
}

/// The revision a channel's `config_ref` names when the fleet is read at commit `head`:
/// `HEAD` (or `HEAD~N`) then means that commit, not the checkout's.
fn config_ref_at(reference: &str, head: Option<&str>) -> String {
    let relative_to_head = reference
        .strip_prefix("HEAD")
        .filter(|rest| rest.is_empty() || rest.starts_with(['~', '^']));
    match (relative_to_head, head) {
        (Some(rest), Some(head)) => format!("{head}{rest}"),
        _ => reference.to_string(),
    }
}

fn load_set(
    config: &ConfigSource,
    fleet: &Path,
    cluster: &Cluster,
    sources: &mut SourceMap,
) -> Result<LoadedSet, Vec<Diagnostic>> {
    match config {
        ConfigSource::Dir(dir) => {
            let files = read_dir_files(dir).map_err(|e| {
                vec![
                    Diagnostic::error(
                        Code::E0505,
                        format!("cannot read config set {}: {e}", dir.display()),
                    )
                    .help("pass an existing directory to --config-set"),
                ]
            })?;
            let recorded_as = relative_to_fleet(fleet, dir);
            let digest = cache::config_set_digest(&recorded_as, &files);
            let set = ConfigSet::new(dir.display().to_string(), files, sources)?;
            Ok(LoadedSet {
                set: set.recorded_as(recorded_as),
                digest,
                commit: None,
            })
        }
        ConfigSource::Git { repo, path, head } => {
            let reference = cluster.channel.config_ref.as_str();
            let resolved = config_ref_at(reference, head.as_deref());
            let channel = &cluster.channel.name;
            let fail = |message: String| {
                vec![Diagnostic::error(Code::E0505, message).help(
                    "fix the channel's config_ref, create the ref, or pass --config-set DIR to use a directory for every cluster",
                )]
            };
            let commit = repo.resolve(&resolved).map_err(|e| {
                fail(format!(
                    "channel `{channel}` pins config_ref `{reference}`: {e}"
                ))
            })?;
            let prefix = path.trim_end_matches('/');
            let files = repo
                .read_tree(&commit, prefix, |p| p.ends_with(".j2"))
                .map_err(|e| fail(format!("cannot read the config set at `{reference}`: {e}")))?;
            if files.is_empty() {
                return Err(fail(format!(
                    "there is no config set at `{reference}:{prefix}`"
                )));
            }
            let files = files
                .into_iter()
                .map(|(p, bytes)| {
                    let relative = p
                        .strip_prefix(prefix)
                        .unwrap_or(&p)
                        .trim_start_matches('/')
                        .to_string();
                    let text = String::from_utf8(bytes).map_err(|_| {
                        fail(format!("template `{reference}:{p}` is not UTF-8 text"))
                    })?;
                    Ok((relative, text))
                })
                .collect::<Result<Vec<_>, Vec<Diagnostic>>>()?;
            let origin = format!("{reference}:{prefix}");
            let digest = cache::config_set_digest(&origin, &files);
            let set = ConfigSet::new(origin, files, sources)?;
            Ok(LoadedSet {
                set,
                digest,
                commit: Some(commit),
            })
        }
    }
}

/// A config set directory as seen from the fleet's root (the fleet directory, or the
/// directory of a fleet file), with `/`: `compile` records the same name whether the
/// set was given as a relative or an absolute path, from any working directory.
fn relative_to_fleet(fleet: &Path, set: &Path) -> String {
    let root = if fleet.is_dir() {
        fleet
    } else {
        fleet.parent().unwrap_or(fleet)
    };
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    let (Ok(root), Ok(set)) = (std::fs::canonicalize(root), std::fs::canonicalize(set)) else {
        return set.display().to_string();
    };
    let root: Vec<_> = root.components().collect();
    let set: Vec<_> = set.components().collect();
    let shared = root.iter().zip(&set).take_while(|(a, b)| a == b).count();
    let parts: Vec<String> = std::iter::repeat_n("..".to_string(), root.len() - shared)
        .chain(
            set[shared..]
                .iter()
                .map(|c| c.as_os_str().to_string_lossy().into_owned()),
        )
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Bounds on reading a config set directory, so that a wrong `--config-set` (`/`, a home
/// directory) fails quickly instead of walking and loading everything below it.
const MAX_SET_ENTRIES: usize = 20_000;
const MAX_SET_BYTES: u64 = 64 << 20;

/// Every template (`*.j2`) under `dir`, as (relative path with `/`, text), sorted. Other
/// files (READMEs, pictures) are not part of what renders. Symlinked directories are
/// followed, except one that leads back to a directory being walked (a loop).
fn read_dir_files(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut walk = SetWalk {
        root: dir,
        ancestors: Vec::new(),
        entries: 0,
        bytes: 0,
        files: Vec::new(),
    };
    walk.directory(dir)?;
    walk.files.sort();
    Ok(walk.files)
}

struct SetWalk<'a> {
    root: &'a Path,
    /// Canonical paths of the directories from the root down to the current one.
    ancestors: Vec<PathBuf>,
    entries: usize,
    bytes: u64,
    files: Vec<(String, String)>,
}

impl SetWalk<'_> {
    fn directory(&mut self, dir: &Path) -> std::io::Result<()> {
        let canonical = std::fs::canonicalize(dir)?;
        if self.ancestors.contains(&canonical) {
            return Err(std::io::Error::other(format!(
                "{} leads back to {} (a symlink loop); remove the link or point it elsewhere",
                self.relative(dir),
                canonical.display()
            )));
        }
        self.ancestors.push(canonical);
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            self.entries += 1;
            if self.entries > MAX_SET_ENTRIES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_SET_ENTRIES} files and directories; is this the config set directory?"
                )));
            }
            paths.push(entry?.path());
        }
        paths.sort();
        for path in paths {
            if path.is_dir() {
                self.directory(&path)?;
            } else if path.extension().is_some_and(|e| e == "j2") {
                self.template(&path)?;
            }
        }
        self.ancestors.pop();
        Ok(())
    }

    fn template(&mut self, path: &Path) -> std::io::Result<()> {
        let with_path =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        self.bytes += std::fs::metadata(path).map_err(with_path)?.len();
        if self.bytes > MAX_SET_BYTES {
            return Err(std::io::Error::other(format!(
                "its templates exceed {} MiB; is this the config set directory?",
                MAX_SET_BYTES >> 20
            )));
        }
        let text = std::fs::read_to_string(path).map_err(with_path)?;
        self.files.push((self.relative(path), text));
        Ok(())
    }

    /// `path` relative to the set's root, with `/`.
    fn relative(&self, path: &Path) -> String {
        let relative = path.strip_prefix(self.root).unwrap_or(path);
        relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }
}
