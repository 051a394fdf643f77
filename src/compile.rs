//! Compile the fleet: evaluate, pick each cluster's config set (its channel's git ref,
//! or a directory), render all clusters in parallel, and write the output atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::analysis::analyze;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, sort_diagnostics};
use crate::git::Repo;
use crate::model::{Cluster, Fleet};
use crate::render::{Artifacts, ConfigSet};
use crate::source::{FileSystem, SourceMap};

/// One cluster's render result.
type Rendered = Result<Artifacts, Vec<Diagnostic>>;

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

/// Compile the fleet at `path` (read through `fs`). `only` limits the clusters.
pub fn compile(
    fs: &dyn FileSystem,
    path: &Path,
    config: &ConfigSource,
    only: &[String],
) -> Compilation {
    let analysis = analyze(fs, path);
    let mut diagnostics = analysis.diagnostics;
    let mut sources = analysis.program.sources;
    let Some(fleet) = analysis
        .model
        .filter(|_| !diagnostics.iter().any(Diagnostic::is_error))
    else {
        return Compilation {
            sources,
            fleet: None,
            artifacts: Vec::new(),
            diagnostics,
        };
    };
    let mut clusters: Vec<&Cluster> = Vec::new();
    for id in only {
        if fleet.cluster(id).is_none() {
            let known: Vec<&str> = fleet.cluster_ids().collect();
            diagnostics.push(
                Diagnostic::error(Code::E0500, format!("no cluster `{id}` in the fleet"))
                    .help(format!("clusters: {}", known.join(", "))),
            );
        }
    }
    clusters.extend(
        fleet
            .clusters
            .iter()
            .filter(|c| only.is_empty() || only.contains(&c.id)),
    );

    // Load each distinct config set once.
    let mut sets: BTreeMap<String, Result<ConfigSet, ()>> = BTreeMap::new();
    let mut set_of: Vec<String> = Vec::with_capacity(clusters.len());
    for cluster in &clusters {
        let key = match config {
            ConfigSource::Dir(dir) => dir.display().to_string(),
            ConfigSource::Git { .. } => cluster.channel.config_ref.clone(),
        };
        if !sets.contains_key(&key) {
            let loaded = load_set(config, path, cluster, &mut sources)
                .map_err(|problems| diagnostics.extend(problems));
            sets.insert(key.clone(), loaded);
        }
        set_of.push(key);
    }
    if diagnostics.iter().any(Diagnostic::is_error) {
        sort_diagnostics(&mut diagnostics);
        return Compilation {
            sources,
            fleet: Some(fleet.clone()),
            artifacts: Vec::new(),
            diagnostics,
        };
    }

    // Render clusters in parallel: workers take the next cluster index.
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Rendered)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(clusters.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(cluster) = clusters.get(i) else {
                        break;
                    };
                    let Some(Ok(set)) = sets.get(&set_of[i]) else {
                        continue;
                    };
                    let result = set.render(cluster, &sources);
                    if let Ok(mut r) = results.lock() {
                        r.push((i, result));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    let mut artifacts = Vec::new();
    for (_, result) in results {
        match result {
            Ok(a) => artifacts.push(a),
            Err(problems) => diagnostics.extend(problems),
        }
    }
    artifacts.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    sort_diagnostics(&mut diagnostics);
    Compilation {
        sources,
        fleet: Some(fleet.clone()),
        artifacts,
        diagnostics,
    }
}

/// The fleet at `path` as of git revision `rev`, compiled; `Ok(None)` when the fleet
/// does not exist at that revision (its clusters then count as added). Channels pinned
/// to `HEAD` read the config set as of `rev` too.
pub fn compile_at_revision(
    repo: &Repo,
    rev: &str,
    path: &Path,
    config: &ConfigSource,
) -> Result<Option<Compilation>, String> {
    let commit = repo.resolve(rev).map_err(|e| e.to_string())?;
    let fs = repo.flt_files_at(&commit).map_err(|e| e.to_string())?;
    let relative = repo.relative(path).ok_or_else(|| {
        format!(
            "{} is not inside the repository at {}",
            path.display(),
            repo.root.display()
        )
    })?;
    let fleet = repo.root.join(relative);
    if fs.read(&fleet).is_none() && fs.flt_files(&fleet).is_empty() {
        return Ok(None);
    }
    let config = match config {
        ConfigSource::Git { repo, path, .. } => ConfigSource::Git {
            repo: repo.clone(),
            path: path.clone(),
            head: Some(commit),
        },
        dir => dir.clone(),
    };
    Ok(Some(compile(&fs, &fleet, &config, &[])))
}

/// What `compile` reports: per cluster its channel, config set and file count, per pool
/// its config hash, then the total.
pub fn summary(artifacts: &[Artifacts], out: &Path) -> String {
    let mut text = String::new();
    for a in artifacts {
        text.push_str(&format!(
            "{}  channel {} ({})  {} files\n",
            a.cluster,
            a.summary.channel,
            a.summary.config_set,
            a.files.len()
        ));
        for p in &a.summary.node_pools {
            text.push_str(&format!(
                "  node pool {:<24} config hash {}\n",
                p.name, p.config_hash
            ));
        }
    }
    let plural = if artifacts.len() == 1 { "" } else { "s" };
    text.push_str(&format!(
        "compiled {} cluster{plural} into {}\n",
        artifacts.len(),
        out.display()
    ));
    text
}

fn load_set(
    config: &ConfigSource,
    fleet: &Path,
    cluster: &Cluster,
    sources: &mut SourceMap,
) -> Result<ConfigSet, Vec<Diagnostic>> {
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
            let set = ConfigSet::new(dir.display().to_string(), files, sources)?;
            Ok(set.recorded_as(relative_to_fleet(fleet, dir)))
        }
        ConfigSource::Git { repo, path, head } => {
            let reference = cluster.channel.config_ref.as_str();
            let relative_to_head = reference
                .strip_prefix("HEAD")
                .filter(|rest| rest.is_empty() || rest.starts_with(['~', '^']));
            let resolved = match (relative_to_head, head) {
                (Some(rest), Some(head)) => format!("{head}{rest}"),
                _ => reference.to_string(),
            };
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
                .collect::<Result<_, Vec<Diagnostic>>>()?;
            ConfigSet::new(format!("{reference}:{prefix}"), files, sources)
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

/// Marks a directory as flotilla's output, so it may be replaced as a whole.
const OUTPUT_MARKER: &str = ".flotilla-output";

/// Write artifacts under `out`, all or nothing: everything is written to a staging
/// directory next to `out` first, then moved into place by renames. With `replace_all`
/// the whole directory is replaced (clusters no longer in the fleet disappear);
/// otherwise only the given clusters' directories are.
pub fn write_output(out: &Path, artifacts: &[Artifacts], replace_all: bool) -> Result<(), String> {
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    // `out/.` is `out`; `.`, `..` and `/` have no name to swap in next to them.
    let out: PathBuf = out.components().collect();
    let out = out.as_path();
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(format!(
            "cannot write output to {}: name the output directory itself (e.g. `out/`), not `.`, `..` or a root",
            out.display()
        ));
    };
    if out.exists() {
        if !out.is_dir() {
            return Err(format!(
                "refusing to write into {}: it is not a directory",
                out.display()
            ));
        }
        let is_ours = out.join(OUTPUT_MARKER).exists()
            || std::fs::read_dir(out)
                .map_err(|e| io("cannot read", out, e))?
                .next()
                .is_none();
        if !is_ours {
            return Err(format!(
                "refusing to write into {}: it exists and was not written by flotilla (no {OUTPUT_MARKER} file); choose an empty or new directory",
                out.display()
            ));
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| io("cannot create", &parent, e))?;
    remove_stale_staging(&parent, &name);
    let staging = parent.join(format!(".{name}.staging-{}", std::process::id()));
    let retired = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&retired);
    let result = write_tree(&staging, artifacts).and_then(|()| {
        if replace_all || !out.exists() {
            swap_all(&[(out.to_path_buf(), staging.clone())], &retired)
        } else {
            // Only these clusters' directories change; all of them or none.
            let pairs: Vec<(PathBuf, PathBuf)> = artifacts
                .iter()
                .map(|a| (out.join(&a.cluster), staging.join(&a.cluster)))
                .collect();
            swap_all(&pairs, &retired)?;
            let marker = out.join(OUTPUT_MARKER);
            if !marker.exists() {
                std::fs::rename(staging.join(OUTPUT_MARKER), &marker)
                    .map_err(|e| io("cannot write", &marker, e))?;
            }
            Ok(())
        }
    });
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&retired);
    result
}

/// Remove the staging directories of `name` that runs killed before they finished left
/// behind: those whose process is gone. Only staging directories: they hold nothing but
/// a half-written copy, while an `.old-PID` directory may hold the only previous output.
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.staging-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && process_is_gone(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether no process `pid` runs. Only answered where `/proc` shows processes; elsewhere
/// every process counts as running, so nothing of a live run is ever removed.
fn process_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

fn write_tree(root: &Path, artifacts: &[Artifacts]) -> Result<(), String> {
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    std::fs::create_dir_all(root).map_err(|e| io("cannot create", root, e))?;
    std::fs::write(
        root.join(OUTPUT_MARKER),
        "written by flotilla compile; replaced as a whole\n",
    )
    .map_err(|e| io("cannot write", root, e))?;
    for a in artifacts {
        // The stdlib's checks keep ids and names to DNS labels; this keeps every write
        // inside the output directory even if something slipped past them.
        if !is_relative_inside(&a.cluster, true) {
            return Err(format!(
                "cluster id `{}` cannot be a directory name",
                a.cluster
            ));
        }
        let dir = root.join(&a.cluster);
        for (relative, text) in &a.files {
            if !is_relative_inside(relative, false) {
                return Err(format!(
                    "artifact path `{relative}` of cluster {} leaves its directory",
                    a.cluster
                ));
            }
            let path = dir.join(relative);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(|e| io("cannot create", p, e))?;
            }
            std::fs::write(&path, text).map_err(|e| io("cannot write", &path, e))?;
        }
        let summary = serde_json::to_string_pretty(&a.summary).map_err(|e| e.to_string())? + "\n";
        std::fs::write(dir.join("summary.json"), summary)
            .map_err(|e| io("cannot write", &dir, e))?;
    }
    Ok(())
}

/// Whether `path` is relative and made of plain names only (no `..`, `.`, root or
/// prefix); `single` also requires exactly one of them.
fn is_relative_inside(path: &str, single: bool) -> bool {
    let components: Vec<_> = Path::new(path).components().collect();
    !components.is_empty()
        && (!single || components.len() == 1)
        && components
            .iter()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Put each `fresh` directory where its `target` is, all or nothing: previous targets
/// are moved under `retired` first, and everything is moved back if a rename fails.
fn swap_all(pairs: &[(PathBuf, PathBuf)], retired: &Path) -> Result<(), String> {
    std::fs::create_dir_all(retired)
        .map_err(|e| format!("cannot create {}: {e}", retired.display()))?;
    // (target, where its previous content went), for the swaps done so far.
    let mut done: Vec<(&Path, Option<PathBuf>)> = Vec::new();
    let mut failure = None;
    for (index, (target, fresh)) in pairs.iter().enumerate() {
        let aside = retired.join(index.to_string());
        let previous = if target.exists() {
            if let Err(e) = std::fs::rename(target, &aside) {
                failure = Some(format!("cannot move {} aside: {e}", target.display()));
                break;
            }
            Some(aside)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(fresh, target) {
            if let Some(previous) = &previous {
                let _ = std::fs::rename(previous, target);
            }
            failure = Some(format!("cannot move output into {}: {e}", target.display()));
            break;
        }
        done.push((target, previous));
    }
    let Some(failure) = failure else {
        return Ok(());
    };
    for (target, previous) in done.into_iter().rev() {
        let _ = std::fs::remove_dir_all(target);
        if let Some(previous) = previous {
            let _ = std::fs::rename(previous, target);
        }
    }
    Err(failure)
}
