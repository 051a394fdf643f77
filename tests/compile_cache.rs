//! The compile cache (`.flotilla/cache` beside the fleet) never serves stale output:
//! each kind of edit re-renders exactly the clusters it affects, and what is written is
//! byte for byte what a compile without the cache writes.

#[path = "support/files.rs"]
mod files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use files::{TempDir, git, read_tree};
use flotilla::analysis::analyze;
use flotilla::compile::{
    Cache, ConfigSource, FleetOutput, Revision, compile_at_revision, compile_model,
    compile_with_cache, revision_for_diff, write_fleet_output,
};
use flotilla::git::Repo;
use flotilla::source::DiskFs;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config-min");

/// Three clusters: `a` and `b` on channel stable, `c` on beta. Only `a` sets
/// `coredns_ndots`; the others take the stdlib's default.
const FLEET: &str = r#"channel stable {
  kubernetes_version = "1.31.4"
  config_ref = "stable"
}

channel beta {
  kubernetes_version = "1.32.1"
  config_ref = "beta"
}

cluster "a" {
  account = "123456789012"
  region = "eu-central-1"
  environment = production
  channel = stable
  api_server_url = "https://${id}.example.org"
  config_items {
    coredns_ndots = 5
  }
  node_pool "workers" {
    instance_types = ["m5.large"]
    max_size = 10
  }
}

cluster "b" {
  account = "123456789012"
  region = "eu-central-1"
  environment = production
  channel = stable
  api_server_url = "https://${id}.example.org"
  node_pool "workers" {
    instance_types = ["m5.large"]
    max_size = 10
  }
}

cluster "c" {
  account = "123456789012"
  region = "eu-west-1"
  environment = test
  channel = beta
  api_server_url = "https://${id}.example.org"
  node_pool "workers" {
    instance_types = ["m5.large"]
    max_size = 10
  }
}
"#;

/// A repository with the fixture config set under `config/` on branches `stable` and
/// `beta`, and the fleet under `fleet/`.
struct Fixture {
    dir: TempDir,
    source: ConfigSource,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = TempDir::new(name);
        git(&dir, &["init", "-q", "-b", "main"]);
        for (rel, bytes) in read_tree(Path::new(FIXTURE)) {
            let path = dir.join("config").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        std::fs::create_dir_all(dir.join("fleet")).unwrap();
        std::fs::write(dir.join("fleet/main.flt"), FLEET).unwrap();
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", "initial"]);
        git(&dir, &["branch", "stable"]);
        git(&dir, &["branch", "beta"]);
        let source = ConfigSource::Git {
            repo: Repo::discover(&dir).unwrap(),
            path: "config".into(),
            head: None,
        };
        Fixture { dir, source }
    }

    fn fleet(&self) -> PathBuf {
        self.dir.join("fleet")
    }

    fn cache(&self) -> Cache {
        Cache::beside(&self.fleet())
    }

    fn edit_fleet(&self, from: &str, to: &str) {
        let path = self.dir.join("fleet/main.flt");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Commit a change to `config/TEMPLATE` on `branch`, leaving the work tree on main.
    fn edit_template(&self, branch: &str, template: &str, from: &str, to: &str) {
        git(&self.dir, &["checkout", "-q", branch]);
        let path = self.dir.join("config").join(template);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        git(&self.dir, &["commit", "-q", "-am", "edit template"]);
        git(&self.dir, &["checkout", "-q", "main"]);
    }

    /// Compile with the cache into `out-NAME`: the clusters rendered, and the output.
    fn warm(&self, name: &str) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
        let (rendered, tree, notes) = self.warm_noting(name);
        assert!(notes.is_empty(), "{notes:?}");
        (rendered, tree)
    }

    /// [`Fixture::warm`], and what the compile noted about the cache.
    fn warm_noting(&self, name: &str) -> (Vec<String>, BTreeMap<String, Vec<u8>>, Vec<String>) {
        let cache = self.cache();
        let output = compile_with_cache(&DiskFs, &self.fleet(), &self.source, &[], Some(&cache));
        let (rendered, tree) = self.written(name, &output);
        (rendered, tree, output.cache_notes)
    }

    /// Compile without the cache into `cold-NAME`: the output.
    fn cold(&self, name: &str) -> BTreeMap<String, Vec<u8>> {
        let output = compile_with_cache(&DiskFs, &self.fleet(), &self.source, &[], None);
        assert_eq!(output.rendered().len(), output.clusters.len());
        self.written(&format!("cold-{name}"), &output).1
    }

    fn written(
        &self,
        name: &str,
        output: &FleetOutput,
    ) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
        assert!(!output.has_errors(), "{:?}", output.diagnostics);
        let out = self.dir.join(format!("out-{name}"));
        write_fleet_output(&out, output, true).unwrap();
        let rendered = output.rendered().into_iter().map(str::to_string).collect();
        (rendered, read_tree(&out))
    }
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_edit_re_renders_exactly_the_clusters_it_affects() {
    let f = Fixture::new("cache-staleness");

    let (rendered, first) = f.warm("first");
    assert_eq!(rendered, ids(&["a", "b", "c"]));
    assert_eq!(first, f.cold("first"));
    assert_eq!(first.len(), 1 + 3 * 7, "{:?}", first.keys());

    let (rendered, again) = f.warm("again");
    assert_eq!(rendered, ids(&[]), "nothing changed");
    assert_eq!(again, first);

    // A template on beta's branch: only the beta cluster.
    f.edit_template(
        "beta",
        "manifests/10-coredns/configmap.yaml.j2",
        "name: coredns",
        "name: coredns-beta",
    );
    let (rendered, tree) = f.warm("template");
    assert_eq!(rendered, ids(&["c"]));
    assert_eq!(tree, f.cold("template"));
    assert!(
        String::from_utf8_lossy(&tree["c/manifests/10-coredns/configmap.yaml"])
            .contains("coredns-beta")
    );

    // A stable commit that leaves the config set as it was: nothing (the key is the
    // set's content, not the commit).
    git(&f.dir, &["checkout", "-q", "stable"]);
    std::fs::write(f.dir.join("README"), "unrelated\n").unwrap();
    git(&f.dir, &["add", "README"]);
    git(&f.dir, &["commit", "-q", "-m", "unrelated"]);
    git(&f.dir, &["checkout", "-q", "main"]);
    let (rendered, _) = f.warm("unrelated");
    assert_eq!(rendered, ids(&[]));

    // A channel pin: beta now follows stable's config set; only its cluster changes.
    f.edit_fleet("config_ref = \"beta\"", "config_ref = \"stable\"");
    let (rendered, tree) = f.warm("pin");
    assert_eq!(rendered, ids(&["c"]));
    assert_eq!(tree, f.cold("pin"));
    assert!(
        !String::from_utf8_lossy(&tree["c/manifests/10-coredns/configmap.yaml"])
            .contains("coredns-beta")
    );

    // One cluster: only that one.
    f.edit_fleet("cluster \"b\" {", "cluster \"b\" {\n  owner = \"team-b\"");
    let (rendered, tree) = f.warm("cluster");
    assert_eq!(rendered, ids(&["b"]));
    assert_eq!(tree, f.cold("cluster"));
}

/// The stdlib is compiled into flotilla, so a test cannot edit it; what an edited
/// default does is change the evaluated model of exactly the clusters that do not set
/// the field, which is what this test does to the model before rendering it.
#[test]
fn a_changed_stdlib_default_re_renders_the_clusters_that_use_it() {
    let f = Fixture::new("cache-stdlib-default");
    let cache = f.cache();
    let (rendered, _) = f.warm("first");
    assert_eq!(rendered.len(), 3);

    let evaluated_with_new_default = |cache: Option<&Cache>| {
        let analysis = analyze(&DiskFs, &f.fleet());
        let mut fleet = analysis.model.unwrap();
        let default = fleet.cluster("b").unwrap().config_items.coredns_ndots;
        assert_eq!(
            fleet.cluster("c").unwrap().config_items.coredns_ndots,
            default
        );
        assert_ne!(
            fleet.cluster("a").unwrap().config_items.coredns_ndots,
            default
        );
        for cluster in &mut fleet.clusters {
            if cluster.id != "a" {
                cluster.config_items.coredns_ndots = default + 1;
            }
        }
        let output = compile_model(
            fleet,
            analysis.program.sources,
            &f.fleet(),
            &f.source,
            &[],
            cache,
        );
        assert!(!output.has_errors(), "{:?}", output.diagnostics);
        output
    };
    let warm = evaluated_with_new_default(Some(&cache));
    assert_eq!(warm.rendered(), ["b", "c"]);
    let (_, warm_tree) = f.written("warm", &warm);
    let (_, cold_tree) = f.written("cold", &evaluated_with_new_default(None));
    assert_eq!(warm_tree, cold_tree);
}

#[test]
fn a_corrupt_entry_is_rebuilt_never_served() {
    let f = Fixture::new("cache-corrupt");
    let (_, good) = f.warm("first");
    let out = f.dir.join("out-first");

    // Output files share their inode with the cache: an edit in place reaches it.
    let edited = out.join("a/cloudformation/etcd.json");
    std::fs::write(&edited, "{}").unwrap();
    let (rendered, tree, notes) = f.warm_noting("after-edit");
    assert_eq!(rendered, ids(&["a"]));
    assert!(
        notes.len() == 1
            && notes[0].contains("cloudformation/etcd.json changed after it was stored"),
        "{notes:?}"
    );
    assert_eq!(tree, good);

    // A file of the same length with other content: the length matches, the
    // modification time does not.
    let path = f.dir.join("out-after-edit/b/summary.json");
    let text = std::fs::read(&path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, vec![b' '; text.len()]).unwrap();
    let (rendered, tree, _) = f.warm_noting("after-same-length");
    assert_eq!(rendered, ids(&["b"]));
    assert_eq!(tree, good);

    // A damaged manifest, and a file gone from an entry.
    let entries = f.cache().root().join("entries");
    let mut manifests = Vec::new();
    for shard in std::fs::read_dir(&entries).unwrap() {
        for entry in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            manifests.push(entry.unwrap().path());
        }
    }
    assert_eq!(manifests.len(), 3, "one entry per cluster: {manifests:?}");
    manifests.sort();
    let manifest = manifests[0].join("entry.json");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text = text.replacen("\"len\":", "\"len\": 1", 1);
    std::fs::write(&manifest, text).unwrap();
    std::fs::remove_file(manifests[1].join("files/summary.json")).unwrap();
    let (rendered, tree, notes) = f.warm_noting("after-damage");
    assert_eq!(rendered.len(), 2, "{rendered:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("does not match its digest")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("summary.json")),
        "{notes:?}"
    );
    assert_eq!(tree, good);
    let (rendered, _) = f.warm("settled");
    assert_eq!(rendered, ids(&[]));
}

#[test]
fn diff_base_reuses_the_cache_for_both_revisions() {
    let f = Fixture::new("cache-diff");
    let cache = f.cache();
    let repo = Repo::discover(&f.dir).unwrap();
    let base = compile_at_revision(&repo, "HEAD", &f.fleet(), &f.source, Some(&cache))
        .unwrap()
        .unwrap();
    assert_eq!(base.rendered().len(), 3);
    let (rendered, _) = f.warm("work-tree");
    assert_eq!(
        rendered,
        ids(&[]),
        "HEAD and the work tree are the same fleet"
    );

    f.edit_fleet(
        "max_size = 10\n  }\n}\n\ncluster \"c\"",
        "max_size = 12\n  }\n}\n\ncluster \"c\"",
    );
    let (code, stdout, stderr) = diff_report(&f, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(changed_clusters(&stdout), ["b"]);
    let (_, uncached, _) = diff_report(&f, &["--no-cache"]);
    assert_eq!(uncached, stdout);

    // Only the edited cluster was rendered: both revisions found everything else.
    let head = compile_with_cache(&DiskFs, &f.fleet(), &f.source, &[], Some(&cache));
    assert_eq!(head.rendered(), Vec::<&str>::new());
    let base = compile_at_revision(&repo, "HEAD", &f.fleet(), &f.source, Some(&cache))
        .unwrap()
        .unwrap();
    assert_eq!(base.rendered(), Vec::<&str>::new());
}

#[test]
fn concurrent_compiles_share_the_cache_safely() {
    let f = Fixture::new("cache-concurrent");
    let cold = f.cold("reference");
    let fixture = &f;
    let trees: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| scope.spawn(move || fixture.warm(&format!("thread-{i}")).1))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for tree in trees {
        assert_eq!(tree, cold);
    }
    let (rendered, tree) = f.warm("after");
    assert_eq!(rendered, ids(&[]));
    assert_eq!(tree, cold);
}

#[test]
fn compile_reports_what_it_rendered_and_no_cache_skips_the_cache() {
    let f = Fixture::new("cache-cli");
    let run = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .current_dir(&f.dir)
            .args([
                "compile",
                "fleet",
                "--out",
                "out",
                "--config-path",
                "config",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(run(&[]).contains("rendered 3 clusters; 0 unchanged"));
    assert!(run(&[]).contains("rendered 0 clusters; 3 unchanged"));
    let no_cache = run(&["--no-cache"]);
    assert!(no_cache.contains("compiled 3 clusters"), "{no_cache}");
    assert!(!no_cache.contains("from the cache"), "{no_cache}");
    let ignore = std::fs::read_to_string(f.fleet().join(".flotilla/cache/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*"));
}

/// Each cluster directory of `out-NAME` by its inode: the same inode after a compile
/// means the directory was left in place, a new one that it was written again.
fn cluster_dirs(f: &Fixture, name: &str) -> BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(f.dir.join(format!("out-{name}")))
        .unwrap()
        .map(|item| item.unwrap())
        .filter(|item| item.file_type().unwrap().is_dir())
        .map(|item| {
            let ino = item.metadata().unwrap().ino();
            (item.file_name().to_string_lossy().into_owned(), ino)
        })
        .collect()
}

/// The clusters whose directory changed between two [`cluster_dirs`], added and
/// removed ones included.
fn rewritten(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .cloned()
        .collect()
}

#[test]
fn a_warm_compile_rewrites_only_the_changed_clusters_and_matches_a_cold_one() {
    let f = Fixture::new("output-in-place");
    let (_, tree) = f.warm("in-place");
    assert_eq!(tree, f.cold("first"));
    let mut dirs = cluster_dirs(&f, "in-place");
    assert_eq!(dirs.len(), 3);
    // Compile into the same directory, check it against a cold compile into a fresh
    // one, and return the clusters whose directories were written again.
    let mut step = |name: &str| {
        let (rendered, tree) = f.warm("in-place");
        assert_eq!(tree, f.cold(name), "{name}");
        let after = cluster_dirs(&f, "in-place");
        let changed = rewritten(&dirs, &after);
        dirs = after;
        (rendered, changed)
    };

    assert_eq!(step("nothing"), (ids(&[]), ids(&[])));

    f.edit_template(
        "beta",
        "manifests/10-coredns/configmap.yaml.j2",
        "name: coredns",
        "name: coredns-beta",
    );
    assert_eq!(step("template"), (ids(&["c"]), ids(&["c"])));

    f.edit_fleet("config_ref = \"beta\"", "config_ref = \"stable\"");
    assert_eq!(step("pin"), (ids(&["c"]), ids(&["c"])));

    f.edit_fleet("cluster \"b\" {", "cluster \"b\" {\n  owner = \"team-b\"");
    assert_eq!(step("cluster"), (ids(&["b"]), ids(&["b"])));

    // A cluster removed goes from the output; back, it comes from the cache.
    let c_block = &FLEET[FLEET.find("cluster \"c\"").unwrap()..];
    f.edit_fleet(c_block, "");
    assert_eq!(step("removed"), (ids(&[]), ids(&["c"])));
    let path = f.dir.join("fleet/main.flt");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(c_block);
    std::fs::write(&path, text).unwrap();
    assert_eq!(step("back"), (ids(&[]), ids(&["c"])));
}

#[test]
fn a_hand_edited_output_is_restored_on_the_next_compile() {
    let f = Fixture::new("output-hand-edits");
    let cold = f.cold("reference");
    let out = f.dir.join("out-edited");
    f.warm("edited");
    // Edit the output, compile into it again, and return the directories that were
    // written or removed.
    let restored = |what: &str, edit: &dyn Fn()| {
        edit();
        let before = cluster_dirs(&f, "edited");
        let (_, tree, _) = f.warm_noting("edited");
        assert_eq!(tree, cold, "{what}");
        rewritten(&before, &cluster_dirs(&f, "edited"))
    };

    // In place: the file is the cache's too, whose check catches it.
    let changed = restored("edited in place", &|| {
        std::fs::write(out.join("a/cloudformation/etcd.json"), "{}").unwrap();
    });
    assert_eq!(changed, ids(&["a"]));
    // Replaced by another file of the same length (an editor's save by rename).
    let changed = restored("replaced", &|| {
        let path = out.join("b/summary.json");
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        let new = out.join("b/summary.json.new");
        std::fs::write(&new, vec![b' '; len]).unwrap();
        std::fs::rename(&new, &path).unwrap();
    });
    assert_eq!(changed, ids(&["b"]));
    let changed = restored("deleted", &|| {
        std::fs::remove_file(out.join("c/userdata/workers.yaml")).unwrap();
    });
    assert_eq!(changed, ids(&["c"]));
    let changed = restored("a file added", &|| {
        std::fs::write(out.join("a/manifests/notes.txt"), "mine").unwrap();
    });
    assert_eq!(changed, ids(&["a"]));
    let changed = restored("an empty directory added", &|| {
        std::fs::create_dir(out.join("b/scratch")).unwrap();
    });
    assert_eq!(changed, ids(&["b"]));
    let changed = restored("a stray directory and file at the top", &|| {
        std::fs::create_dir(out.join("old-cluster")).unwrap();
        std::fs::write(out.join("old-cluster/summary.json"), "{}").unwrap();
        std::fs::write(out.join("README"), "mine").unwrap();
    });
    assert_eq!(changed, ids(&["old-cluster"]));
    // An output whose marker was changed is not trusted: everything is written again.
    let changed = restored("the marker edited", &|| {
        std::fs::write(out.join(".flotilla-output"), "mine\n").unwrap();
    });
    assert_eq!(changed, ids(&["a", "b", "c"]));
}

/// `diff --base` at `f`'s fleet: exit code and the JSON report (`extra` arguments added).
fn diff_report(f: &Fixture, extra: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .current_dir(&f.dir)
        .args([
            "diff",
            "fleet",
            "--base",
            "HEAD",
            "--config-path",
            "config",
            "--format",
            "json",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), output.stdout, stderr)
}

/// The clusters a [`diff_report`] lists.
fn changed_clusters(report: &[u8]) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_slice(report).unwrap();
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cluster"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn diff_base_records_the_base_and_each_edit_invalidates_exactly_what_it_affects() {
    let f = Fixture::new("cache-diff-record");
    let cache = f.cache();
    let repo = Repo::discover(&f.dir).unwrap();
    // The base as `diff` gets it: recorded, or compiled with the clusters it rendered.
    let base = || match revision_for_diff(&repo, "HEAD", &f.fleet(), &f.source, Some(&cache))
        .unwrap()
        .unwrap()
    {
        Revision::Recorded(_) => None,
        Revision::Compiled(output) => {
            assert!(!output.has_errors(), "{:?}", output.diagnostics);
            Some(ids(&output.rendered()))
        }
    };
    // Compared with the same diff without the cache, byte for byte.
    let diff = |expected: &[&str]| {
        let (code, report, stderr) = diff_report(&f, &[]);
        let uncached = diff_report(&f, &["--no-cache"]);
        assert_eq!((code, &report), (uncached.0, &uncached.1), "{stderr}");
        assert_eq!(changed_clusters(&report), ids(expected), "{stderr}");
        stderr
    };

    assert_eq!(base(), Some(ids(&["a", "b", "c"])), "first: compiled");
    assert_eq!(base(), None, "then: recorded, no front end");

    // A template on beta's branch: the base's set for beta changed, so the base is
    // compiled again, and only its beta cluster rendered.
    f.edit_template(
        "beta",
        "manifests/10-coredns/configmap.yaml.j2",
        "name: coredns",
        "name: coredns-beta",
    );
    assert_eq!(base(), Some(ids(&["c"])));
    assert_eq!(base(), None);
    diff(&[]);

    // A cluster edited in the work tree: the base is still the recorded one.
    f.edit_fleet(
        "max_size = 10\n  }\n}\n\ncluster \"c\"",
        "max_size = 12\n  }\n}\n\ncluster \"c\"",
    );
    diff(&["b"]);
    assert_eq!(base(), None);

    // A commit on a channel's branch that leaves its config set as it was: still recorded.
    git(&f.dir, &["checkout", "-q", "stable"]);
    std::fs::write(f.dir.join("README"), "unrelated\n").unwrap();
    git(&f.dir, &["add", "README"]);
    git(&f.dir, &["commit", "-q", "-m", "unrelated"]);
    git(&f.dir, &["checkout", "-q", "main"]);
    assert_eq!(base(), None);

    // A channel pin and b's edit, committed: the base's sources changed; its clusters
    // are found in the cache except the one whose set the pin changes.
    f.edit_fleet("config_ref = \"beta\"", "config_ref = \"stable\"");
    git(&f.dir, &["commit", "-q", "-am", "pin beta to stable"]);
    assert_eq!(
        base(),
        Some(ids(&["c"])),
        "b's edit, committed too, was rendered for the work tree"
    );
    assert_eq!(base(), None);
    diff(&[]);

    // One cluster's edit, committed: only that one.
    f.edit_fleet("coredns_ndots = 5", "coredns_ndots = 4");
    git(&f.dir, &["commit", "-q", "-am", "ndots of a"]);
    assert_eq!(base(), Some(ids(&["a"])));
    diff(&[]);

    // The cache's entries gone: the recorded base is compiled again, never served
    // without its files.
    f.edit_fleet("max_size = 10", "max_size = 11");
    assert_eq!(base(), None);
    std::fs::remove_dir_all(cache.root().join("entries")).unwrap();
    let stderr = diff(&["a"]);
    assert!(stderr.contains("compiled the revision again"), "{stderr}");
}
