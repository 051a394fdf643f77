//! `flotilla compile` and `flotilla diff` against the small config set in
//! tests/fixtures/config-min (the shipped config set has its own tests).

#[path = "support/files.rs"]
mod files;

use std::path::{Path, PathBuf};
use std::process::Command;

use files::{TempDir, git, read_tree};
use flotilla::compile::{CompileError, ConfigSource, compile, write_output};
use flotilla::diagnostic::to_json;
use flotilla::source::DiskFs;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config-min");

/// A fleet with one channel and one cluster; `pool` is the node pool body.
fn fleet_source(kubernetes: &str, pool: &str, extra: &str) -> String {
    format!(
        r#"channel stable {{
  kubernetes_version = "{kubernetes}"
  config_ref = "stable"
}}

cluster "prod-1" {{
  account = "123456789012"
  region = "eu-central-1"
  environment = production
  channel = stable
  api_server_url = "https://${{id}}.example.org"
{extra}
  node_pool "workers" {{
{pool}
  }}
  node_pool "system" {{
    instance_types = ["m5.large"]
    max_size = 3
  }}
}}
"#
    )
}

const POOL: &str = r#"    instance_types = ["m5.large", "m5.xlarge"]
    min_size = 2
    max_size = 10
    labels = { "team": "checkout" }"#;

fn write_fleet(dir: &Path, source: &str) -> PathBuf {
    let fleet = dir.join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(fleet.join("main.flt"), source).unwrap();
    fleet
}

fn fixture_source() -> ConfigSource {
    ConfigSource::Dir(PathBuf::from(FIXTURE))
}

fn pool_hash(source: &str, pool: &str) -> String {
    let dir = TempDir::new("hash");
    let fleet = write_fleet(&dir, source);
    let c = compile(&DiskFs, &fleet, &fixture_source(), &[]);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let summary = &c.artifacts[0].summary;
    summary
        .node_pools
        .iter()
        .find(|p| p.name == pool)
        .unwrap()
        .config_hash
        .clone()
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    let dir = TempDir::new("twice");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let mut trees = Vec::new();
    for out in ["out-a", "out-b"] {
        let c = compile(&DiskFs, &fleet, &fixture_source(), &[]);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        write_output(&dir.join(out), &c.artifacts, true).unwrap();
        trees.push(read_tree(&dir.join(out)));
    }
    assert_eq!(trees[0], trees[1]);
    let files: Vec<&String> = trees[0].keys().collect();
    assert!(
        files.contains(&&"prod-1/cloudformation/node-pool-workers.json".to_string()),
        "{files:?}"
    );
    assert!(files.contains(&&"prod-1/userdata/workers.yaml".to_string()));
    assert!(files.contains(&&"prod-1/manifests/10-coredns/configmap.yaml".to_string()));
    assert!(files.contains(&&"prod-1/deletions.yaml".to_string()));
}

#[test]
fn config_hash_ignores_what_does_not_replace_nodes() {
    let base = pool_hash(&fleet_source("1.31.4", POOL, ""), "workers");
    let same = [
        POOL.replace("max_size = 10", "max_size = 30"),
        POOL.replace("min_size = 2", "min_size = 4"),
        format!("{POOL}\n    update {{\n      max_surge = 1\n    }}"),
    ];
    for pool in same {
        assert_eq!(
            pool_hash(&fleet_source("1.31.4", &pool, ""), "workers"),
            base,
            "changed by:\n{pool}"
        );
    }
    // A config item that the userdata does not use leaves node pools alone too.
    let extra = "  config_items {\n    namespace_pod_quota = 900\n  }";
    assert_eq!(
        pool_hash(&fleet_source("1.31.4", POOL, extra), "workers"),
        base
    );
}

#[test]
fn config_hash_changes_with_what_replaces_nodes() {
    let base = pool_hash(&fleet_source("1.31.4", POOL, ""), "workers");
    let different = [
        (
            fleet_source(
                "1.31.4",
                &POOL.replace("\"m5.xlarge\"", "\"m5.2xlarge\""),
                "",
            ),
            "instance type",
        ),
        (
            fleet_source("1.31.4", &POOL.replace("checkout", "payments"), ""),
            "label",
        ),
        (
            fleet_source(
                "1.31.4",
                &format!("{POOL}\n    root_volume_size = 100Gi"),
                "",
            ),
            "root volume",
        ),
        (
            fleet_source(
                "1.31.4",
                &format!("{POOL}\n    taint {{\n      key = \"dedicated\"\n    }}"),
                "",
            ),
            "taint",
        ),
        (fleet_source("1.32.1", POOL, ""), "kubernetes version"),
    ];
    for (source, what) in different {
        assert_ne!(
            pool_hash(&source, "workers"),
            base,
            "a {what} change must change the hash"
        );
    }
    // The other pool is not touched by a change to `workers`.
    let system = pool_hash(&fleet_source("1.31.4", POOL, ""), "system");
    let changed = fleet_source(
        "1.31.4",
        &POOL.replace("\"m5.xlarge\"", "\"m5.2xlarge\""),
        "",
    );
    assert_eq!(pool_hash(&changed, "system"), system);
}

#[test]
fn hash_is_in_userdata_and_the_auto_scaling_group_tags() {
    let dir = TempDir::new("hash-places");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let c = compile(&DiskFs, &fleet, &fixture_source(), &[]);
    let a = &c.artifacts[0];
    let hash = &a
        .summary
        .node_pools
        .iter()
        .find(|p| p.name == "workers")
        .unwrap()
        .config_hash;
    assert!(a.files["userdata/workers.yaml"].contains(&format!("flotilla.io/config-hash={hash}")));
    let stack: serde_json::Value =
        serde_json::from_str(&a.files["cloudformation/node-pool-workers.json"]).unwrap();
    let tags = stack["Resources"]["AutoScalingGroup"]["Properties"]["Tags"]
        .as_array()
        .unwrap();
    let tag = tags
        .iter()
        .find(|t| t["Key"] == "flotilla.io/config-hash")
        .expect("a config-hash tag");
    assert_eq!(tag["Value"], serde_json::json!(hash));
}

/// Copy the fixture config set and let the test change one template. The copy lasts as
/// long as the guard returned with it.
fn broken_set(name: &str, template: &str, edit: impl Fn(String) -> String) -> (TempDir, PathBuf) {
    let scratch = TempDir::new(name);
    let dir = scratch.join("config");
    for (rel, bytes) in read_tree(Path::new(FIXTURE)) {
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let text = if rel == template { edit(text) } else { text };
        std::fs::write(path, text).unwrap();
    }
    (scratch, dir)
}

#[test]
fn template_error_points_at_template_file_and_line() {
    let (_set_dir, set) = broken_set(
        "template-error",
        "manifests/10-coredns/configmap.yaml.j2",
        |t| {
            t.replace(
                "coredns_memory_limit | tojson",
                "coredns_memory_limt | tojson",
            )
        },
    );
    let dir = TempDir::new("template-error-fleet");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(set), &[]);
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == "E0503")
        .expect("a template error");
    let json = to_json(&c.sources, d);
    assert!(
        json.file
            .as_deref()
            .unwrap()
            .ends_with("manifests/10-coredns/configmap.yaml.j2"),
        "{:?}",
        json.file
    );
    assert_eq!(json.start_line, 7);
    assert!(
        d.message.contains("prod-1"),
        "names the cluster: {}",
        d.message
    );
}

#[test]
fn invalid_manifest_name_is_rejected() {
    let (_set_dir, set) = broken_set("bad-name", "manifests/10-coredns/configmap.yaml.j2", |t| {
        t.replace("name: coredns", "name: CoreDNS_Config")
    });
    let dir = TempDir::new("bad-name-fleet");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(set), &[]);
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == "E0504")
        .expect("a validation error");
    assert!(
        d.message.contains("manifests/10-coredns/configmap.yaml"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("`CoreDNS_Config`") && d.message.contains("DNS-1123"),
        "{}",
        d.message
    );
    assert!(d.help.as_deref().unwrap().contains("configmap.yaml.j2"));
}

#[test]
fn dangling_ref_is_rejected() {
    let (_set_dir, set) = broken_set("dangling", "cluster.yaml.j2", |t| {
        t.replace("Ref: VpcId", "Ref: VpcID")
    });
    let dir = TempDir::new("dangling-fleet");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(set), &[]);
    let messages: Vec<&str> = c.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("cloudformation/cluster.json") && m.contains("`Ref` to `VpcID`")),
        "{messages:#?}"
    );
}

#[test]
fn failed_compile_leaves_existing_output_unchanged() {
    let dir = TempDir::new("atomic");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let out = dir.join("out");
    let good = compile(&DiskFs, &fleet, &fixture_source(), &[]);
    write_output(&out, &good.artifacts, true).unwrap();
    let before = read_tree(&out);

    // The CLI refuses to write when compilation fails; check it end to end.
    write_fleet(
        &dir,
        &fleet_source("1.31.4", &POOL.replace("max_size = 10", "max_size = 1"), ""),
    );
    let status = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args([
            "compile",
            fleet.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--config-set",
            FIXTURE,
        ])
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(read_tree(&out), before);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "no staging directories left behind: {leftovers:?}"
    );
}

#[test]
fn refuses_to_replace_a_directory_it_did_not_write() {
    let dir = TempDir::new("foreign");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let c = compile(&DiskFs, &fleet, &fixture_source(), &[]);
    let err = write_output(&dir, &c.artifacts, true).unwrap_err();
    assert!(matches!(err, CompileError::ForeignOutput(_)), "{err:?}");
    assert!(err.to_string().contains("refusing"), "{err}");
    assert!(fleet.join("main.flt").exists());
}

#[test]
fn compiling_one_cluster_keeps_the_others() {
    let dir = TempDir::new("one-cluster");
    let source = fleet_source("1.31.4", POOL, "")
        + &fleet_source("1.31.4", POOL, "")
            .split("cluster \"prod-1\"")
            .nth(1)
            .map(|rest| format!("cluster \"prod-2\"{rest}"))
            .unwrap();
    let fleet = write_fleet(&dir, &source);
    let out = dir.join("out");
    let all = compile(&DiskFs, &fleet, &fixture_source(), &[]);
    assert_eq!(all.artifacts.len(), 2);
    write_output(&out, &all.artifacts, true).unwrap();
    let one = compile(&DiskFs, &fleet, &fixture_source(), &["prod-2".to_string()]);
    assert_eq!(one.artifacts.len(), 1);
    write_output(&out, &one.artifacts, false).unwrap();
    assert!(out.join("prod-1/summary.json").exists());
    assert!(out.join("prod-2/summary.json").exists());
}

#[test]
fn secrets_never_appear_in_plain_text() {
    let dir = TempDir::new("secrets");
    let extra = "  config_items {\n    secrets = { \"datadog\": secret(\"datadog-api-key\", \"hunter2-plaintext-value\") }\n  }";
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, extra));
    let c = compile(&DiskFs, &fleet, &fixture_source(), &[]);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let out = dir.join("out");
    write_output(&out, &c.artifacts, true).unwrap();
    let mut saw_reference = false;
    for (path, bytes) in read_tree(&out) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("hunter2"), "{path} leaks the secret");
        saw_reference |= text.contains("<secret:datadog-api-key");
    }
    assert!(
        saw_reference,
        "the redacted reference is rendered: {:?}",
        read_tree(&out).keys().collect::<Vec<_>>()
    );
    for args in [
        vec!["eval", "--format", "json"],
        vec!["eval", "--format", "yaml"],
        vec!["check", "--format", "json"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(&args)
            .arg(&fleet)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!all.contains("hunter2"), "{args:?} leaks the secret");
    }
}

// ---- git: channels pin config refs, diff --base ---------------------------------------

/// A repository with the fixture config set under `config/` and a fleet under `fleet/`.
fn repo(name: &str, fleet: &str) -> TempDir {
    let dir = TempDir::new(name);
    git(&dir, &["init", "-q", "-b", "main"]);
    for (rel, bytes) in read_tree(Path::new(FIXTURE)) {
        let path = dir.join("config").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    write_fleet(&dir, fleet);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "initial"]);
    dir
}

#[test]
fn each_channel_compiles_with_the_config_set_at_its_ref() {
    let two_channels = fleet_source("1.31.4", POOL, "").replace("channel stable", "channel dev {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}\n\nchannel stable")
        + "\ncluster \"dev-1\" {\n  account = \"123456789012\"\n  region = \"eu-west-1\"\n  environment = test\n  channel = dev\n  api_server_url = \"https://dev-1.example.org\"\n  node_pool \"w\" {\n    instance_types = [\"m5.large\"]\n    max_size = 2\n  }\n}\n";
    let dir = repo("channels", &two_channels);
    git(&dir, &["branch", "stable"]);
    // A change on main only: dev follows it, stable does not.
    let etcd = dir.join("config/etcd.yaml.j2");
    let text = std::fs::read_to_string(&etcd)
        .unwrap()
        .replace("Key: flotilla.io/cluster", "Key: flotilla.io/cluster-id");
    std::fs::write(&etcd, text).unwrap();
    git(&dir, &["commit", "-q", "-am", "rename etcd tag"]);
    // An uncommitted edit is not used by either: config sets come from git objects.
    std::fs::write(&etcd, "broken {{").unwrap();

    let source = ConfigSource::Git {
        repo: flotilla::git::Repo::discover(&dir).unwrap(),
        path: "config".into(),
        head: None,
    };
    let c = compile(&DiskFs, &dir.join("fleet"), &source, &[]);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let etcd_of = |id: &str| {
        c.artifacts.iter().find(|a| a.cluster == id).unwrap().files["cloudformation/etcd.json"]
            .clone()
    };
    assert!(etcd_of("dev-1").contains("flotilla.io/cluster-id"));
    assert!(!etcd_of("prod-1").contains("flotilla.io/cluster-id"));
    assert_eq!(
        c.artifacts
            .iter()
            .find(|a| a.cluster == "prod-1")
            .unwrap()
            .summary
            .config_set,
        "stable:config"
    );
}

#[test]
fn unknown_config_ref_is_a_clear_error() {
    let dir = repo("unknown-ref", &fleet_source("1.31.4", POOL, ""));
    let source = ConfigSource::Git {
        repo: flotilla::git::Repo::discover(&dir).unwrap(),
        path: "config".into(),
        head: None,
    };
    let c = compile(&DiskFs, &dir.join("fleet"), &source, &[]);
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == "E0505")
        .expect("a config ref error");
    assert!(
        d.message
            .contains("channel `stable` pins config_ref `stable`"),
        "{}",
        d.message
    );
}

#[test]
fn diff_base_reports_exactly_the_changed_pool_and_its_replacement() {
    let dir = repo("diff", &fleet_source("1.31.4", POOL, ""));
    git(&dir, &["branch", "stable"]);
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .current_dir(&dir)
            .args([
                "diff",
                "fleet",
                "--base",
                "HEAD",
                "--config-path",
                "config",
                "--format",
                format,
            ])
            .output()
            .unwrap()
    };
    let unchanged = run("json");
    assert_eq!(
        unchanged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&unchanged.stderr)
    );

    write_fleet(
        &dir,
        &fleet_source(
            "1.31.4",
            &POOL.replace("\"m5.xlarge\"", "\"m5.2xlarge\""),
            "",
        ),
    );
    let changed = run("json");
    assert_eq!(
        changed.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    let diff: serde_json::Value = serde_json::from_slice(&changed.stdout).unwrap();
    let clusters = diff["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0]["cluster"], "prod-1");
    let replacements = clusters[0]["replacements"].as_array().unwrap();
    assert_eq!(replacements.len(), 1);
    assert_eq!(replacements[0]["node_pool"], "workers");
    assert_eq!(replacements[0]["nodes_at_least"], 2);
    let files: Vec<&str> = clusters[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "cloudformation/node-pool-workers.json",
            "userdata/workers.yaml"
        ]
    );

    let markdown = String::from_utf8(run("markdown").stdout).unwrap();
    assert!(
        markdown.contains("**Node replacement** in 1 node pool"),
        "{markdown}"
    );
    assert!(
        markdown.contains("`prod-1` / `workers`: at least **2** nodes replaced"),
        "{markdown}"
    );
    assert!(markdown.contains("-                \"InstanceType\": \"m5.xlarge\"\n+                \"InstanceType\": \"m5.2xlarge\""), "{markdown}");
}

fn flotilla(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_channel_pinned_to_head_uses_the_config_set_of_the_revision_being_compiled() {
    let fleet = fleet_source("1.31.4", POOL, "")
        .replace("config_ref = \"stable\"", "config_ref = \"HEAD\"");
    let dir = repo("diff-head-ref", &fleet);
    // A config-set change only: the node pool's userdata gains a line.
    let userdata = dir.join("config/node-pools/worker-default/userdata.yaml.j2");
    let text = std::fs::read_to_string(&userdata).unwrap() + "# tuned\n";
    std::fs::write(&userdata, text).unwrap();
    git(&dir, &["commit", "-q", "-am", "tune userdata"]);
    let output = flotilla(
        &dir,
        &[
            "diff",
            "fleet",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--config-path",
            "./config/",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let diff: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        diff["clusters"][0]["replacements"][0]["node_pool"],
        "workers"
    );
}

#[test]
fn a_fleet_that_did_not_exist_at_the_base_is_all_added() {
    let dir = repo("diff-new-fleet", &fleet_source("1.31.4", POOL, ""));
    git(&dir, &["branch", "stable"]);
    std::fs::create_dir_all(dir.join("second")).unwrap();
    std::fs::copy(dir.join("fleet/main.flt"), dir.join("second/main.flt")).unwrap();
    let output = flotilla(
        &dir,
        &[
            "diff",
            "second",
            "--base",
            "HEAD",
            "--config-path",
            "config",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let diff: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(diff["clusters"][0]["cluster"], "prod-1");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("has no fleet at HEAD"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn usage_errors_exit_1_not_the_differences_code() {
    let dir = TempDir::new("usage");
    let output = flotilla(&dir, &["diff", ".", "--base", "HEAD", "--format", "xml"]);
    assert_eq!(output.status.code(), Some(1));
    let output = flotilla(&dir, &["diff", "."]);
    assert_eq!(output.status.code(), Some(1), "--base is required");
    let output = flotilla(&dir, &["--help"]);
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn output_directory_must_be_named_and_nothing_is_left_behind() {
    let dir = TempDir::new("out-dot");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let c = compile(&DiskFs, &fleet, &fixture_source(), &[]);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for out in [Path::new("."), Path::new(".."), &empty.join("x/..")] {
        let err = write_output(out, &c.artifacts, true).unwrap_err();
        assert!(matches!(err, CompileError::UnnamedOutput(_)), "{err:?}");
        assert!(
            err.to_string().contains("name the output directory"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    // `empty/.` is `empty` itself.
    write_output(&empty.join("."), &c.artifacts, true).unwrap();
    assert!(empty.join("prod-1/summary.json").exists());
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = write_output(&file, &c.artifacts, true).unwrap_err();
    assert!(
        matches!(err, CompileError::OutputNotADirectory(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn compiling_one_cluster_into_an_empty_directory_marks_it_as_flotillas() {
    let dir = TempDir::new("one-into-empty");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let one = compile(&DiskFs, &fleet, &fixture_source(), &["prod-1".to_string()]);
    write_output(&out, &one.artifacts, false).unwrap();
    write_output(&out, &one.artifacts, false).unwrap();
    assert!(out.join(".flotilla-output").exists());
    assert!(out.join("prod-1/summary.json").exists());
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries.iter().all(|e| !e.starts_with('.')),
        "no staging directories left behind: {entries:?}"
    );
}

#[test]
fn files_in_a_config_set_that_are_not_templates_are_ignored() {
    let (_set_dir, set) = broken_set("not-templates", "etcd.yaml.j2", |t| t);
    std::fs::write(set.join("diagram.png"), b"\x89PNG\xff\xfe").unwrap();
    let dir = TempDir::new("not-templates-fleet");
    let fleet = write_fleet(&dir, &fleet_source("1.31.4", POOL, ""));
    let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(set), &[]);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
}

#[test]
fn a_missing_fleet_path_says_so() {
    let dir = TempDir::new("missing-path");
    let output = flotilla(&dir, &["compile", "no-such-fleet", "--out", "out"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no-such-fleet does not exist"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
