//! The compile cache: each cluster's rendered artifacts, stored under the digest of
//! everything its render reads, so an unchanged cluster is neither rendered nor
//! validated nor written again — its files are hard-linked into the output.
//!
//! Layout, under `.flotilla/cache/` beside the fleet:
//!
//! ```text
//! entries/<key[..2]>/<key>/entry.json       what the entry holds (below) and its digest
//! entries/<key[..2]>/<key>/files/<name>     the cluster's output files, summary.json too,
//!                                           each named by its path with `/` as `%2F`
//! tmp/                                      entries being written, renamed in when complete
//! ```
//!
//! An entry appears by one rename of a complete directory, so a reader never sees half
//! of one, and two compiles storing the same key at once both end up with a whole entry.
//! Before an entry is served its manifest's digest is checked and every file's length
//! and modification time are compared with the manifest's: a missing, truncated or
//! rewritten file (output files share their inode with the cache, so an edit in place
//! in the output directory reaches it) makes the entry corrupt, and it is moved aside
//! and rebuilt. Reading an entry's text (`diff`) checks each file's SHA-256 as well.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::digest::hex;
use crate::model::Cluster;
use crate::render::{Artifacts, Summary};

/// Bumped whenever the layout or the meaning of a key changes.
const FORMAT: u32 = 2;

/// The name of a cluster's rendered output: the SHA-256 (hex) of the cluster's model,
/// the config set's content and flotilla's own build.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Key(String);

impl Key {
    /// The key of `cluster` rendered through the config set whose content digest is
    /// `config_set`. The model serializes deterministically (maps are sorted) and holds
    /// everything the templates see, the channel and its pin included.
    /// The model is serialized straight into the hash, never held whole in memory.
    pub fn new(cluster: &Cluster, config_set: &str) -> Result<Key, serde_json::Error> {
        let mut hasher = Sha256::new();
        hasher.update(format!("flotilla compile cache {FORMAT}\0").as_bytes());
        hasher.update(build_identity().as_bytes());
        hasher.update(b"\0");
        hasher.update(config_set.as_bytes());
        hasher.update(b"\0");
        serde_json::to_writer(&mut hasher, cluster)?;
        Ok(Key(hex(&hasher.finalize())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is what [`Key::new`] makes (a key read back from a file is used as a
    /// directory name).
    pub(super) fn is_well_formed(&self) -> bool {
        self.0.len() == 64 && self.0.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

/// flotilla's version and the digest of the sources it was built from (see build.rs):
/// a rebuilt flotilla may render differently under the same version number.
pub(super) fn build_identity() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " ",
        env!("FLOTILLA_SOURCE_DIGEST")
    )
}

/// The digest of a config set's content: how it is recorded in `summary.json` and every
/// template's path and text.
pub fn config_set_digest(recorded_as: &str, files: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(recorded_as.as_bytes());
    for (path, text) in files {
        hasher.update(b"\0");
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(text.len().to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hex(&hasher.finalize())
}

/// The cache directory of one fleet.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

/// A verified entry: where its files are and what they are.
#[derive(Clone, Debug)]
pub struct Entry {
    dir: PathBuf,
    manifest: Manifest,
    /// Each file's place on disk, in the manifest's order, as seen when it was checked:
    /// an output file with the same one is a hard link to it.
    disk_ids: Vec<Option<DiskId>>,
}

/// (device, inode) of a file, where the platform tells them.
pub(super) type DiskId = (u64, u64);

#[cfg(unix)]
pub(super) fn disk_id(metadata: &std::fs::Metadata) -> Option<DiskId> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
pub(super) fn disk_id(_: &std::fs::Metadata) -> Option<DiskId> {
    None
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    key: String,
    summary: Summary,
    files: Vec<StoredFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredFile {
    /// Relative to the cluster's output directory, with `/`.
    path: String,
    len: u64,
    /// Nanoseconds since the epoch, as the file system reported after writing.
    modified: u128,
    sha256: String,
}

/// Why an entry cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("no cache entry")]
    Missing,
    #[error("cache entry {dir} is corrupt: {why}")]
    Corrupt { dir: PathBuf, why: String },
}

impl Cache {
    /// The cache of the fleet at `fleet` (a directory, or a file whose directory is used):
    /// `.flotilla/cache` inside it, where the local world keeps its state too.
    pub fn beside(fleet: &Path) -> Cache {
        let dir = if fleet.is_dir() {
            fleet
        } else {
            fleet.parent().unwrap_or(Path::new(""))
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        Cache::at(dir.join(".flotilla").join("cache"))
    }

    pub fn at(root: PathBuf) -> Cache {
        Cache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, key: &Key) -> PathBuf {
        self.root.join("entries").join(&key.0[..2]).join(&key.0)
    }

    /// The entry stored under `key`, checked as the module documentation says. A corrupt
    /// entry is moved out of the way, so the next store under its key succeeds.
    pub fn load(&self, key: &Key) -> Result<Entry, EntryError> {
        let dir = self.entry_dir(key);
        let result = read_entry(&dir, key);
        if let Err(EntryError::Corrupt { .. }) = &result {
            self.discard(&dir);
        }
        result
    }

    /// Move a corrupt entry aside and remove it; a compile still linking from it keeps
    /// the inodes it already has.
    pub(super) fn discard(&self, dir: &Path) {
        let aside = self.temp_path("corrupt");
        if std::fs::create_dir_all(self.root.join("tmp")).is_ok()
            && std::fs::rename(dir, &aside).is_ok()
        {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }

    /// Store `artifacts` under `key` and return the entry. When another compile stored
    /// the same key first, its entry is returned.
    pub fn store(&self, key: &Key, artifacts: &Artifacts) -> std::io::Result<Entry> {
        let tmp = self.temp_path("entry");
        let result = write_entry(&tmp, key, artifacts).and_then(|(manifest, disk_ids)| {
            let dir = self.entry_dir(key);
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::rename(&tmp, &dir) {
                Ok(()) => Ok(Entry {
                    dir,
                    manifest,
                    disk_ids,
                }),
                // Someone else stored this key: theirs is as good as ours, unless it is
                // corrupt, in which case it is replaced once.
                Err(_) if dir.exists() => match self.load(key) {
                    Ok(entry) => Ok(entry),
                    Err(_) => {
                        std::fs::rename(&tmp, &dir)?;
                        Ok(Entry {
                            dir,
                            manifest,
                            disk_ids,
                        })
                    }
                },
                Err(e) => Err(e),
            }
        });
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }

    /// A fresh path under `tmp/`, unique to this process and call.
    pub(super) fn temp_path(&self, what: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Create the cache directory, ignored by git on its own (a fleet's repository need
    /// not list it), and remove what killed compiles left in `tmp/`.
    pub fn prepare(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.root.join("tmp"))?;
        let ignore = self.root.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "# flotilla's compile cache\n*\n")?;
        }
        for entry in std::fs::read_dir(self.root.join("tmp"))?.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.rsplit('-').nth(1))
                .and_then(|pid| pid.parse::<u32>().ok());
            if pid.is_some_and(|pid| pid != std::process::id() && super::process_is_gone(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }
}

fn modified_nanos(metadata: &std::fs::Metadata) -> u128 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The bytes of `summary.json`, as the output directory holds them.
pub fn summary_json(summary: &Summary) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(summary)? + "\n")
}

/// Write an entry into `dir`: its manifest, and where each file is on disk.
fn write_entry(
    dir: &Path,
    key: &Key,
    artifacts: &Artifacts,
) -> std::io::Result<(Manifest, Vec<Option<DiskId>>)> {
    let files_dir = dir.join("files");
    std::fs::create_dir_all(&files_dir)?;
    let summary = summary_json(&artifacts.summary).map_err(std::io::Error::other)?;
    let all = artifacts
        .files
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .chain([("summary.json", summary.as_str())]);
    let mut files = Vec::with_capacity(artifacts.files.len() + 1);
    let mut disk_ids = Vec::with_capacity(artifacts.files.len() + 1);
    for (path, text) in all {
        if !super::is_relative_inside(path, false) {
            return Err(std::io::Error::other(format!(
                "artifact path `{path}` of cluster {} leaves its directory",
                artifacts.cluster
            )));
        }
        let mut file = std::fs::File::create(files_dir.join(stored_name(path)))?;
        file.write_all(text.as_bytes())?;
        let metadata = file.metadata()?;
        disk_ids.push(disk_id(&metadata));
        files.push(StoredFile {
            path: path.to_string(),
            len: metadata.len(),
            modified: modified_nanos(&metadata),
            sha256: hex(&Sha256::digest(text.as_bytes())),
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        key: key.0.clone(),
        summary: artifacts.summary.clone(),
        files,
    };
    let body = serde_json::to_string(&manifest).map_err(std::io::Error::other)?;
    let sealed = format!("{}\n{body}", hex(&Sha256::digest(body.as_bytes())));
    std::fs::write(dir.join("entry.json"), sealed)?;
    Ok((manifest, disk_ids))
}

/// The name of an output file in an entry's flat `files/` directory: its path with `%`
/// and `/` escaped. An entry then needs no directory of its own per output directory
/// (a cluster's output has two dozen): creating an inode costs more than writing the
/// file, and the output links these files into its own tree anyway. A path whose
/// escaped name would pass the file system's 255-byte limit (each of its parts may be
/// within it) is named by its digest instead, after `%h`, which no escaped name holds.
fn stored_name(path: &str) -> String {
    let escaped = path.replace('%', "%25").replace('/', "%2F");
    if escaped.len() <= MAX_STORED_NAME {
        escaped
    } else {
        format!("%h{}", hex(&Sha256::digest(path.as_bytes())))
    }
}

const MAX_STORED_NAME: usize = 255;

fn read_entry(dir: &Path, key: &Key) -> Result<Entry, EntryError> {
    let corrupt = |why: String| EntryError::Corrupt {
        dir: dir.to_path_buf(),
        why,
    };
    // An entry appears whole, by one rename, so one that exists before the read has its
    // entry.json unless it is broken or being discarded (then it is gone again after).
    // Asking only after a failed read would take an entry stored in between for a
    // broken one.
    if !dir.exists() {
        return Err(EntryError::Missing);
    }
    let sealed = match std::fs::read_to_string(dir.join("entry.json")) {
        Ok(text) => text,
        Err(_) if !dir.exists() => return Err(EntryError::Missing),
        Err(e) => return Err(corrupt(format!("entry.json: {e}"))),
    };
    let (digest, body) = sealed
        .split_once('\n')
        .ok_or_else(|| corrupt("entry.json has no digest line".into()))?;
    if hex(&Sha256::digest(body.as_bytes())) != digest {
        return Err(corrupt("entry.json does not match its digest".into()));
    }
    let manifest: Manifest =
        serde_json::from_str(body).map_err(|e| corrupt(format!("entry.json: {e}")))?;
    if manifest.format != FORMAT || manifest.key != key.0 {
        return Err(corrupt(
            "entry.json belongs to another key or format".into(),
        ));
    }
    let files_dir = dir.join("files");
    let mut disk_ids = Vec::with_capacity(manifest.files.len());
    for file in &manifest.files {
        let metadata = std::fs::symlink_metadata(files_dir.join(stored_name(&file.path)))
            .map_err(|e| corrupt(format!("{}: {e}", file.path)))?;
        if !metadata.is_file()
            || metadata.len() != file.len
            || modified_nanos(&metadata) != file.modified
        {
            return Err(corrupt(format!(
                "{} changed after it was stored",
                file.path
            )));
        }
        disk_ids.push(disk_id(&metadata));
    }
    Ok(Entry {
        dir: dir.to_path_buf(),
        manifest,
        disk_ids,
    })
}

impl Entry {
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn summary(&self) -> &Summary {
        &self.manifest.summary
    }

    /// How many files the cluster's output directory holds, `summary.json` included.
    pub fn file_count(&self) -> usize {
        self.manifest.files.len()
    }

    /// Each file as (path relative to the cluster's output directory, path in the cache).
    pub fn files(&self) -> impl Iterator<Item = (&str, PathBuf)> {
        let files_dir = self.dir.join("files");
        self.manifest
            .files
            .iter()
            .map(move |f| (f.path.as_str(), files_dir.join(stored_name(&f.path))))
    }

    /// Each file as (path relative to the cluster's output directory, where the cache's
    /// copy is on disk).
    pub(super) fn disk_ids(&self) -> impl Iterator<Item = (&str, Option<DiskId>)> {
        self.manifest
            .files
            .iter()
            .zip(&self.disk_ids)
            .map(|(f, id)| (f.path.as_str(), *id))
    }

    /// The cluster's artifacts with their text, every file checked against its SHA-256.
    pub fn artifacts(&self) -> Result<Artifacts, EntryError> {
        let corrupt = |why: String| EntryError::Corrupt {
            dir: self.dir.clone(),
            why,
        };
        let mut files = BTreeMap::new();
        for (stored, (path, on_disk)) in self.manifest.files.iter().zip(self.files()) {
            let bytes = std::fs::read(&on_disk).map_err(|e| corrupt(format!("{path}: {e}")))?;
            if hex(&Sha256::digest(&bytes)) != stored.sha256 {
                return Err(corrupt(format!("{path} does not match its digest")));
            }
            if path == "summary.json" {
                continue;
            }
            let text =
                String::from_utf8(bytes).map_err(|_| corrupt(format!("{path}: not UTF-8")))?;
            files.insert(path.to_string(), text);
        }
        Ok(Artifacts {
            cluster: self.manifest.summary.cluster.clone(),
            files,
            summary: self.manifest.summary.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_files::TempDir;

    /// Files are stored flat, under escaped names: paths that escape to look alike
    /// (`a/b` and a file literally named `a%2Fb`) must stay apart.
    #[test]
    fn files_in_subdirectories_are_stored_flat_and_read_back_apart() {
        let scratch = TempDir::new("cache-flat");
        let cache = Cache::at(scratch.join("cache"));
        cache.prepare().unwrap();
        // Each part within 255 bytes, the whole escaped path beyond it.
        let long = format!("manifests/{}/{}.yaml", "n".repeat(63), "x".repeat(240));
        let long_too = format!("manifests/{}/{}.yaml", "n".repeat(63), "y".repeat(240));
        let artifacts = Artifacts {
            cluster: "c".into(),
            files: [
                ("manifests/a/b.yaml", "slash\n"),
                ("manifests/a%2Fb.yaml", "percent\n"),
                ("manifests/a%252Fb.yaml", "escaped percent\n"),
                ("deletions.yaml", "top\n"),
                (long.as_str(), "long\n"),
                (long_too.as_str(), "long too\n"),
            ]
            .into_iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
            summary: Summary {
                cluster: "c".into(),
                ..Summary::default()
            },
        };
        let key = Key("0".repeat(64));
        cache.store(&key, &artifacts).unwrap();
        let entry = cache.load(&key).unwrap();
        assert_eq!(entry.artifacts().unwrap(), artifacts);
        let stored: Vec<_> = std::fs::read_dir(entry.dir().join("files"))
            .unwrap()
            .map(|f| f.unwrap())
            .collect();
        assert!(stored.iter().all(|f| f.file_type().unwrap().is_file()));
        assert_eq!(stored.len(), 7, "six artifacts and summary.json");
    }
}
