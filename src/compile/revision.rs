//! What `diff --base` keeps of a revision it compiled: each cluster's cache key, so the
//! same revision compared again needs neither the front end nor the cache's entries of
//! the clusters that did not change.
//!
//! A record is found under the digest of everything the revision's front end reads and
//! of how the config sets are named:
//!
//! - flotilla's build and the stdlib compiled into it (a new binary never reuses a
//!   record: it may evaluate or render differently);
//! - the commit's root tree, which names every `.flt` file the front end can import;
//! - the fleet's path in the repository and where config sets come from.
//!
//! It then lists the config sets the clusters rendered through, each with what names
//! its content (the tree id of the set at the commit its ref resolved to, or a
//! directory's content digest); a set whose ref now resolves to other content makes the
//! record unusable, and the revision is compiled again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::{Cache, Key, build_identity};
use crate::digest::hex;
use crate::resolve::STDLIB;

/// Bumped whenever a record's layout or meaning changes.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Record {
    format: u32,
    identity: String,
    tree: String,
    fleet: String,
    config: String,
    /// (config set name as the clusters reach it, what names its content).
    pub(super) sets: Vec<(String, String)>,
    /// (cluster id, cache key), sorted by id.
    pub(super) clusters: Vec<(String, Key)>,
}

/// Where a record is looked up: the inputs that decide a revision's front end.
pub(super) struct Lookup<'a> {
    pub(super) tree: &'a str,
    pub(super) fleet: &'a str,
    pub(super) config: &'a str,
}

impl Lookup<'_> {
    fn name(&self, identity: &str) -> String {
        let mut hasher = Sha256::new();
        for part in [identity, self.tree, self.fleet, self.config] {
            hasher.update(part.len().to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hex(&hasher.finalize())
    }
}

/// flotilla's build and the stdlib's text: the build identity leaves the stdlib out
/// (cluster keys cover what it evaluates to), but a record skips evaluation.
fn identity() -> String {
    stdlib_identity(build_identity(), STDLIB)
}

fn stdlib_identity(build: &str, stdlib: &[(&str, &str)]) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in stdlib {
        hasher.update(name.len().to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(text.len().to_le_bytes());
        hasher.update(text.as_bytes());
    }
    format!("{build} stdlib {}", hex(&hasher.finalize()))
}

fn path_of(cache: &Cache, lookup: &Lookup, identity: &str) -> std::path::PathBuf {
    cache
        .root()
        .join("revisions")
        .join(format!("{}.json", lookup.name(identity)))
}

/// The record for `lookup`, if one was stored by this build and is whole. Whether its
/// config sets are still the same is the caller's to check.
pub(super) fn load(cache: &Cache, lookup: &Lookup) -> Option<Record> {
    let identity = identity();
    let sealed = std::fs::read_to_string(path_of(cache, lookup, &identity)).ok()?;
    let (digest, body) = sealed.split_once('\n')?;
    if hex(&Sha256::digest(body.as_bytes())) != digest {
        return None;
    }
    let record: Record = serde_json::from_str(body).ok()?;
    let matches = record.format == FORMAT
        && record.identity == identity
        && record.tree == lookup.tree
        && record.fleet == lookup.fleet
        && record.config == lookup.config
        && record.clusters.iter().all(|(_, key)| key.is_well_formed());
    matches.then_some(record)
}

/// Store the record of a revision whose clusters' keys are `clusters` and whose config
/// sets are `sets`; written whole and renamed into place.
pub(super) fn store(
    cache: &Cache,
    lookup: &Lookup,
    sets: Vec<(String, String)>,
    clusters: BTreeMap<String, Key>,
) -> std::io::Result<()> {
    let identity = identity();
    let path = path_of(cache, lookup, &identity);
    let record = Record {
        format: FORMAT,
        identity,
        tree: lookup.tree.to_string(),
        fleet: lookup.fleet.to_string(),
        config: lookup.config.to_string(),
        sets,
        clusters: clusters.into_iter().collect(),
    };
    let body = serde_json::to_string(&record).map_err(std::io::Error::other)?;
    let sealed = format!("{}\n{body}", hex(&Sha256::digest(body.as_bytes())));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = cache.temp_path("revision");
    if let Some(dir) = tmp.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tmp, sealed)?;
    let renamed = std::fs::rename(&tmp, &path);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_changes_with_the_build_and_with_the_stdlib() {
        let stdlib = [("std/aws", "default = 1")];
        let edited = [("std/aws", "default = 2")];
        let base = stdlib_identity("1.0 abc", &stdlib);
        assert_eq!(base, stdlib_identity("1.0 abc", &stdlib));
        assert_ne!(base, stdlib_identity("1.0 abd", &stdlib));
        assert_ne!(base, stdlib_identity("1.0 abc", &edited));
    }

    #[test]
    fn the_name_covers_every_input() {
        let lookup = |tree, fleet, config| Lookup {
            tree,
            fleet,
            config,
        };
        let name = lookup("t", "fleet", "git config").name("id");
        assert_ne!(name, lookup("u", "fleet", "git config").name("id"));
        assert_ne!(name, lookup("t", "fleet2", "git config").name("id"));
        assert_ne!(name, lookup("t", "fleet", "git other").name("id"));
        assert_ne!(name, lookup("t", "fleet", "git config").name("id2"));
        // Lengths separate the parts: moving a character across a boundary differs.
        assert_ne!(name, lookup("tf", "leet", "git config").name("id"));
    }
}
