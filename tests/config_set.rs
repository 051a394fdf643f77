//! The shipped config set (stdlib/config) on the example fleet: cfn-lint passes on
//! every CloudFormation template, output is deterministic, and reviewed snapshots of
//! one production and one test cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use flotilla::compile::{ConfigSource, compile, write_output};
use flotilla::render::Artifacts;
use flotilla::source::DiskFs;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compile_examples() -> Vec<Artifacts> {
    let c = compile(
        &DiskFs,
        Path::new("examples/fleet"),
        &ConfigSource::Dir(PathBuf::from("stdlib/config")),
        &[],
    );
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    assert_eq!(c.artifacts.len(), 12);
    c.artifacts
}

fn cfn_lint() -> PathBuf {
    let local = root().join(".venv/bin/cfn-lint");
    if local.exists() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("cfn-lint"))
                .find(|p| p.exists())
        })
        .expect("cfn-lint not found: run ./scripts/test (it installs cfn-lint into .venv)")
}

#[test]
fn cfn_lint_passes_on_every_template_of_the_example_fleet() {
    let artifacts = compile_examples();
    let out = std::env::temp_dir().join(format!("flotilla-cfn-lint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    write_output(&out, &artifacts, true).unwrap();
    let fleet = compile(
        &DiskFs,
        Path::new("examples/fleet"),
        &ConfigSource::Dir(PathBuf::from("stdlib/config")),
        &[],
    )
    .fleet
    .unwrap();
    // One cfn-lint run per region, so region-specific checks use the cluster's region.
    let mut by_region: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for a in &artifacts {
        let region = fleet.cluster(&a.cluster).unwrap().region.clone();
        for path in a.files.keys().filter(|p| p.starts_with("cloudformation/")) {
            by_region
                .entry(region.clone())
                .or_default()
                .push(out.join(&a.cluster).join(path));
        }
    }
    let mut checked = 0;
    for (region, files) in by_region {
        checked += files.len();
        let result = Command::new(cfn_lint())
            .args(["--regions", &region, "--"])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "cfn-lint ({region}) exit {:?}:\n{}{}",
            result.status.code(),
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    assert!(
        checked >= 12 * 3,
        "every cluster has etcd, control-plane and node pool stacks"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn compiling_the_example_fleet_is_deterministic() {
    let first = compile_examples();
    let second = compile_examples();
    assert_eq!(first, second);
}

/// A reviewable picture of one cluster: every file with its size and digest (so any
/// change anywhere shows), and the full text of the files that encode the defaults
/// learned from outages.
fn cluster_snapshot(artifacts: &[Artifacts], id: &str, pool: &str) -> String {
    let a = artifacts.iter().find(|a| a.cluster == id).unwrap();
    let mut out = format!(
        "summary:\n{}\n\nfiles:\n",
        serde_json::to_string_pretty(&a.summary).unwrap()
    );
    for (path, text) in &a.files {
        let digest: String = Sha256::digest(text.as_bytes())
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push_str(&format!("  {path:<64} {:>7} bytes  {digest}\n", text.len()));
    }
    for path in [
        format!("userdata/{pool}.yaml"),
        "deletions.yaml".to_string(),
        "manifests/03-resource-quotas/quotas.yaml".to_string(),
        "manifests/12-coredns/coredns.yaml".to_string(),
        "manifests/25-etcd-backup/etcd-backup.yaml".to_string(),
    ] {
        out.push_str(&format!("\n==> {path}\n{}", a.files[&path]));
    }
    out
}

#[test]
fn production_cluster_snapshot() {
    let artifacts = compile_examples();
    insta::assert_snapshot!(cluster_snapshot(
        &artifacts,
        "aws-eu-central-1-prod-checkout",
        "default-worker"
    ));
}

#[test]
fn staging_cluster_snapshot() {
    let artifacts = compile_examples();
    insta::assert_snapshot!(cluster_snapshot(
        &artifacts,
        "aws-eu-central-1-test-checkout",
        "default-worker"
    ));
}

#[test]
fn example_fleet_checks_cleanly() {
    let analysis = flotilla::analysis::analyze(
        &DiskFs,
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet")),
    );
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
}

/// A StatefulSet's volume claim without a class must get a volume: every cluster has the
/// EBS CSI driver and exactly one default StorageClass, encrypted gp3, bound in the zone
/// of the pod's node.
#[test]
fn every_cluster_has_a_default_gp3_storage_class() {
    for a in compile_examples() {
        let text = &a.files["manifests/15-ebs-csi/ebs-csi.yaml"];
        let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let kind = |d: &serde_yaml_ng::Value, k: &str| d["kind"].as_str() == Some(k);
        let defaults: Vec<_> = a
            .files
            .values()
            .flat_map(|t| serde_yaml_ng::Deserializer::from_str(t))
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .filter(|d: &serde_yaml_ng::Value| {
                kind(d, "StorageClass")
                    && d["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                        .as_str()
                        == Some("true")
            })
            .collect();
        assert_eq!(defaults.len(), 1, "{}: one default StorageClass", a.cluster);
        let class = &defaults[0];
        assert_eq!(class["metadata"]["name"].as_str(), Some("gp3"));
        assert_eq!(class["provisioner"].as_str(), Some("ebs.csi.aws.com"));
        assert_eq!(class["parameters"]["type"].as_str(), Some("gp3"));
        assert_eq!(class["parameters"]["encrypted"].as_str(), Some("true"));
        assert_eq!(
            class["volumeBindingMode"].as_str(),
            Some("WaitForFirstConsumer")
        );
        assert!(docs.iter().any(|d| kind(d, "CSIDriver")), "{}", a.cluster);
        assert!(
            docs.iter()
                .any(|d| kind(d, "DaemonSet")
                    && d["metadata"]["name"].as_str() == Some("ebs-csi-node")),
            "{}",
            a.cluster
        );
    }
}
