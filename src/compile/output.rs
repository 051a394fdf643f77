//! Writing compiled clusters into the output directory, all or nothing: a staging
//! directory beside it is filled (files written from memory, or hard-linked from the
//! compile cache) on every core, then renamed into place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::cache::{Entry, disk_id, summary_json};
use super::{CompileError, Content, FleetOutput, on_every_core};
use crate::render::Artifacts;

/// One cluster's files, wherever they are.
enum ClusterFiles<'a> {
    Memory(&'a Artifacts),
    Stored(&'a Entry),
}

impl ClusterFiles<'_> {
    fn cluster(&self) -> &str {
        match self {
            ClusterFiles::Memory(artifacts) => &artifacts.cluster,
            ClusterFiles::Stored(entry) => &entry.summary().cluster,
        }
    }
}

/// Marks a directory as flotilla's output, so it may be replaced as a whole.
pub(super) const OUTPUT_MARKER: &str = ".flotilla-output";

/// Write artifacts under `out`, all or nothing: everything is written to a staging
/// directory next to `out` first, then moved into place by renames. With `replace_all`
/// the whole directory is replaced (clusters no longer in the fleet disappear);
/// otherwise only the given clusters' directories are.
pub fn write_output(
    out: &Path,
    artifacts: &[Artifacts],
    replace_all: bool,
) -> Result<(), CompileError> {
    let clusters: Vec<ClusterFiles> = artifacts.iter().map(ClusterFiles::Memory).collect();
    write_clusters(out, &clusters, replace_all)
}

/// [`write_output`] for a compile that used the cache: stored clusters are hard-linked
/// (copied where the output is on another file system).
pub fn write_fleet_output(
    out: &Path,
    output: &FleetOutput,
    replace_all: bool,
) -> Result<(), CompileError> {
    let clusters: Vec<ClusterFiles> = output
        .clusters
        .iter()
        .map(|c| match &c.content {
            Content::Memory(artifacts) => ClusterFiles::Memory(artifacts),
            Content::Stored(entry) => ClusterFiles::Stored(entry),
        })
        .collect();
    write_clusters(out, &clusters, replace_all)
}

fn write_clusters(
    out: &Path,
    clusters: &[ClusterFiles],
    replace_all: bool,
) -> Result<(), CompileError> {
    let io = CompileError::io;
    // `out/.` is `out`; `.`, `..` and `/` have no name to swap in next to them.
    let out: PathBuf = out.components().collect();
    let out = out.as_path();
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(CompileError::UnnamedOutput(out.to_path_buf()));
    };
    if out.exists() {
        if !out.is_dir() {
            return Err(CompileError::OutputNotADirectory(out.to_path_buf()));
        }
        let is_ours = out.join(OUTPUT_MARKER).exists()
            || std::fs::read_dir(out)
                .map_err(|e| io("read", out, e))?
                .next()
                .is_none();
        if !is_ours {
            return Err(CompileError::ForeignOutput(out.to_path_buf()));
        }
    }
    for c in clusters {
        // The stdlib's checks keep ids and names to DNS labels; this keeps every write
        // inside the output directory even if something slipped past them.
        if !is_relative_inside(c.cluster(), true) {
            return Err(CompileError::ClusterDirectoryName(c.cluster().to_string()));
        }
    }
    let in_place = clusters_in_place(out, clusters);
    let changed: Vec<&ClusterFiles> = clusters
        .iter()
        .zip(&in_place)
        .filter(|(_, kept)| !**kept)
        .map(|(c, _)| c)
        .collect();
    let keep_any = in_place.iter().any(|kept| *kept);
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| io("create", &parent, e))?;
    remove_stale_staging(&parent, &name);
    let staging = parent.join(format!(".{name}.staging-{}", std::process::id()));
    let retired = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&retired);
    let result = write_tree(&staging, &changed).and_then(|()| {
        if !out.exists() || (replace_all && !keep_any) {
            swap_all(&[(out.to_path_buf(), Some(staging.clone()))], &retired)
        } else {
            // Only these clusters' directories change (and, replacing the whole output,
            // whatever is not a cluster of the fleet goes): all of them or none.
            let mut pairs: Vec<(PathBuf, Option<PathBuf>)> = changed
                .iter()
                .map(|c| (out.join(c.cluster()), Some(staging.join(c.cluster()))))
                .collect();
            if replace_all {
                let wanted: HashSet<&str> = clusters.iter().map(ClusterFiles::cluster).collect();
                for item in std::fs::read_dir(out).map_err(|e| io("read", out, e))? {
                    let item = item.map_err(|e| io("read", out, e))?;
                    let item_name = item.file_name();
                    let is_wanted = item_name
                        .to_str()
                        .is_some_and(|n| n == OUTPUT_MARKER || wanted.contains(n));
                    if !is_wanted {
                        pairs.push((item.path(), None));
                    }
                }
            }
            swap_all(&pairs, &retired)?;
            let marker = out.join(OUTPUT_MARKER);
            if !marker.exists() {
                std::fs::rename(staging.join(OUTPUT_MARKER), &marker)
                    .map_err(|e| io("write", &marker, e))?;
            }
            Ok(())
        }
    });
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&retired);
    result
}

/// The marker's text: an output whose marker says otherwise is not trusted to hold
/// what it held when written, and is rebuilt whole.
const MARKER_TEXT: &str = "written by flotilla compile; replaced as a whole\n";

/// For each cluster, whether its directory in `out` already holds exactly its files,
/// so it is left in place. Only an output carrying flotilla's marker is looked at.
fn clusters_in_place(out: &Path, clusters: &[ClusterFiles]) -> Vec<bool> {
    let trusted = std::fs::read(out.join(OUTPUT_MARKER)).is_ok_and(|m| m == MARKER_TEXT.as_bytes());
    if !trusted {
        return vec![false; clusters.len()];
    }
    on_every_core(clusters.len(), |i| match &clusters[i] {
        ClusterFiles::Stored(entry) => {
            holds_entry(&out.join(entry.summary().cluster.as_str()), entry)
        }
        ClusterFiles::Memory(_) => false,
    })
}

/// Whether `dir` holds `entry`'s files and nothing else, each a hard link to the
/// cache's own file. Such a file's content is what the cache just verified (same
/// length and modification time as when stored, which an edit in place through the
/// output changes too, the inode being shared); a file replaced, added or removed by
/// hand, an extra directory, or a file copied rather than linked (output and cache on
/// different file systems) fails the check, and the cluster is written again. Names
/// and inode numbers come from reading the directories, without a `stat` per file.
#[cfg(unix)]
fn holds_entry(dir: &Path, entry: &Entry) -> bool {
    use std::collections::HashMap;
    use std::os::unix::fs::DirEntryExt;

    let Some(device) = std::fs::symlink_metadata(dir)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .and_then(|m| disk_id(&m))
        .map(|(device, _)| device)
    else {
        return false;
    };
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for (path, id) in entry.disk_ids() {
        match id {
            Some((file_device, inode)) if file_device == device => {
                expected.insert(path, inode);
            }
            _ => return false,
        }
    }
    let mut found = 0;
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        let Ok(items) = std::fs::read_dir(&path) else {
            return false;
        };
        let mut empty = true;
        for item in items {
            empty = false;
            let Ok(item) = item else {
                return false;
            };
            let (Ok(kind), Some(name)) = (
                item.file_type(),
                item.file_name().to_str().map(str::to_string),
            ) else {
                return false;
            };
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if kind.is_dir() {
                pending.push((item.path(), relative));
            } else if kind.is_file() && expected.get(relative.as_str()) == Some(&item.ino()) {
                found += 1;
            } else {
                return false;
            }
        }
        // No cluster's output has an empty directory.
        if empty {
            return false;
        }
    }
    found == expected.len()
}

/// Without inode numbers there is no telling a link from a copy: always written again.
#[cfg(not(unix))]
fn holds_entry(_: &Path, _: &Entry) -> bool {
    false
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
pub(super) fn process_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

fn write_tree(root: &Path, clusters: &[&ClusterFiles]) -> Result<(), CompileError> {
    let io = CompileError::io;
    std::fs::create_dir_all(root).map_err(|e| io("create", root, e))?;
    std::fs::write(root.join(OUTPUT_MARKER), MARKER_TEXT).map_err(|e| io("write", root, e))?;
    let results = on_every_core(clusters.len(), |i| {
        let dir = root.join(clusters[i].cluster());
        match clusters[i] {
            ClusterFiles::Memory(artifacts) => write_cluster(&dir, artifacts),
            ClusterFiles::Stored(entry) => link_cluster(&dir, entry),
        }
    });
    results.into_iter().collect()
}

/// Creates each directory once per cluster rather than once per file.
#[derive(Default)]
struct Directories(HashSet<PathBuf>);

impl Directories {
    fn parent_of(&mut self, file: &Path) -> Result<(), CompileError> {
        let Some(parent) = file.parent() else {
            return Ok(());
        };
        if !self.0.contains(parent) {
            std::fs::create_dir_all(parent).map_err(|e| CompileError::io("create", parent, e))?;
            self.0.insert(parent.to_path_buf());
        }
        Ok(())
    }
}

fn write_cluster(dir: &Path, artifacts: &Artifacts) -> Result<(), CompileError> {
    let mut directories = Directories::default();
    for (relative, text) in &artifacts.files {
        if !is_relative_inside(relative, false) {
            return Err(CompileError::ArtifactPath {
                path: relative.clone(),
                cluster: artifacts.cluster.clone(),
            });
        }
        let path = dir.join(relative);
        directories.parent_of(&path)?;
        std::fs::write(&path, text).map_err(|e| CompileError::io("write", &path, e))?;
    }
    let summary = summary_json(&artifacts.summary).map_err(CompileError::Summary)?;
    let path = dir.join("summary.json");
    directories.parent_of(&path)?;
    std::fs::write(&path, summary).map_err(|e| CompileError::io("write", &path, e))
}

/// Hard-link a stored cluster's files (their paths were checked when it was stored);
/// copy them where linking is refused (another file system, a link limit).
fn link_cluster(dir: &Path, entry: &Entry) -> Result<(), CompileError> {
    let mut directories = Directories::default();
    for (relative, stored) in entry.files() {
        let path = dir.join(relative);
        directories.parent_of(&path)?;
        std::fs::hard_link(&stored, &path)
            .or_else(|_| std::fs::copy(&stored, &path).map(|_| ()))
            .map_err(|source| CompileError::Link {
                path: path.clone(),
                stored: stored.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Whether `path` is relative and made of plain names only (no `..`, `.`, root or
/// prefix); `single` also requires exactly one of them.
pub(super) fn is_relative_inside(path: &str, single: bool) -> bool {
    let components: Vec<_> = Path::new(path).components().collect();
    !components.is_empty()
        && (!single || components.len() == 1)
        && components
            .iter()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Put each `fresh` directory where its `target` is (or, without one, retire the
/// target), all or nothing: previous targets are moved under `retired` first, and
/// everything is moved back if a rename fails.
fn swap_all(pairs: &[(PathBuf, Option<PathBuf>)], retired: &Path) -> Result<(), CompileError> {
    std::fs::create_dir_all(retired).map_err(|e| CompileError::io("create", retired, e))?;
    // (target, whether something was moved in, where its previous content went), for
    // the swaps done so far.
    let mut done: Vec<(&Path, bool, Option<PathBuf>)> = Vec::new();
    let mut failure = None;
    for (index, (target, fresh)) in pairs.iter().enumerate() {
        let aside = retired.join(index.to_string());
        // A dangling symlink is something to move aside too.
        let previous = if std::fs::symlink_metadata(target).is_ok() {
            if let Err(source) = std::fs::rename(target, &aside) {
                failure = Some(CompileError::MoveAside {
                    path: target.clone(),
                    source,
                });
                break;
            }
            Some(aside)
        } else {
            None
        };
        if let Some(fresh) = fresh
            && let Err(source) = std::fs::rename(fresh, target)
        {
            if let Some(previous) = &previous {
                let _ = std::fs::rename(previous, target);
            }
            failure = Some(CompileError::MoveInto {
                path: target.clone(),
                source,
            });
            break;
        }
        done.push((target, fresh.is_some(), previous));
    }
    let Some(failure) = failure else {
        return Ok(());
    };
    for (target, moved_in, previous) in done.into_iter().rev() {
        if moved_in {
            let _ = std::fs::remove_dir_all(target);
        }
        if let Some(previous) = previous {
            let _ = std::fs::rename(previous, target);
        }
    }
    Err(failure)
}
