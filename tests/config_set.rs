//! The shipped config set (stdlib/config) on the example fleet: cfn-lint passes on
//! every CloudFormation template, output is deterministic, and reviewed snapshots of
//! one production and one test cluster.

#[path = "support/files.rs"]
mod files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use files::TempDir;
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
    let scratch = TempDir::new("cfn-lint");
    // A subdirectory: the output's staging directory goes beside it.
    let out = scratch.join("out");
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

/// Every YAML document of a cluster's manifests.
fn manifest_objects(a: &Artifacts) -> Vec<serde_yaml_ng::Value> {
    a.files
        .iter()
        .filter(|(path, _)| path.starts_with("manifests/"))
        .flat_map(|(_, text)| serde_yaml_ng::Deserializer::from_str(text))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &serde_yaml_ng::Value| !d.is_null())
        .collect()
}

fn is_kind(object: &serde_yaml_ng::Value, kind: &str) -> bool {
    object["kind"].as_str() == Some(kind)
}

fn name_of(object: &serde_yaml_ng::Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// Whether every `matchLabels` pair of `selector` is among `labels`.
fn selects(selector: &serde_yaml_ng::Value, labels: &serde_yaml_ng::Value) -> bool {
    selector["matchLabels"]
        .as_mapping()
        .is_some_and(|wanted| wanted.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The node roller drains through the Eviction API: a system workload with more than
/// one replica must have a PodDisruptionBudget (or a drain could take every replica at
/// once), and no budget may forbid every eviction (or the drain could never finish).
#[test]
fn replicated_system_workloads_have_a_pod_disruption_budget_that_lets_one_go() {
    for a in compile_examples() {
        let objects = manifest_objects(&a);
        let pdbs: Vec<_> = objects
            .iter()
            .filter(|o| is_kind(o, "PodDisruptionBudget"))
            .collect();
        let autoscaled_minimum = |workload: &serde_yaml_ng::Value| {
            objects
                .iter()
                .filter(|o| is_kind(o, "HorizontalPodAutoscaler"))
                .find(|h| {
                    h["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]
                        && h["metadata"]["namespace"] == workload["metadata"]["namespace"]
                })
                .map(|h| h["spec"]["minReplicas"].as_i64().unwrap_or(1))
        };
        let mut replicated = 0;
        for workload in objects
            .iter()
            .filter(|o| is_kind(o, "Deployment") || is_kind(o, "StatefulSet"))
        {
            let replicas = autoscaled_minimum(workload)
                .or_else(|| workload["spec"]["replicas"].as_i64())
                .unwrap_or(1);
            let pod_labels = &workload["spec"]["template"]["metadata"]["labels"];
            let budgets: Vec<_> = pdbs
                .iter()
                .filter(|p| {
                    p["metadata"]["namespace"] == workload["metadata"]["namespace"]
                        && selects(&p["spec"]["selector"], pod_labels)
                })
                .collect();
            assert!(
                budgets.len() <= 1,
                "{}: {} has several budgets (the Eviction API refuses that)",
                a.cluster,
                name_of(workload)
            );
            if replicas > 1 {
                replicated += 1;
                assert_eq!(
                    budgets.len(),
                    1,
                    "{}: {} has {replicas} replicas and no PodDisruptionBudget",
                    a.cluster,
                    name_of(workload)
                );
            }
            for budget in budgets {
                let spec = &budget["spec"];
                let lets_one_go = match (
                    spec["minAvailable"].as_i64(),
                    spec["maxUnavailable"].as_i64(),
                ) {
                    (Some(min), None) => min < replicas,
                    (None, Some(max)) => max >= 1,
                    other => panic!("{}: {}: {other:?}", a.cluster, name_of(budget)),
                };
                assert!(
                    lets_one_go,
                    "{}: {} blocks every eviction of {} ({replicas} replicas)",
                    a.cluster,
                    name_of(budget),
                    name_of(workload)
                );
            }
        }
        assert!(replicated >= 5, "{}: {replicated}", a.cluster);
    }
}

/// The example fleet's Prometheus keeps its data in a StatefulSet volume claim; the
/// class it names is the cluster's gp3 class on the EBS CSI driver.
#[test]
fn the_example_fleets_statefulset_claims_gp3_volumes() {
    for a in compile_examples() {
        let objects = manifest_objects(&a);
        let claims: Vec<_> = objects
            .iter()
            .filter(|o| is_kind(o, "StatefulSet"))
            .flat_map(|s| {
                s["spec"]["volumeClaimTemplates"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        assert!(!claims.is_empty(), "{}: no volume claim", a.cluster);
        for claim in claims {
            let class_name = claim["spec"]["storageClassName"].as_str().unwrap();
            let class = objects
                .iter()
                .find(|o| {
                    is_kind(o, "StorageClass") && o["metadata"]["name"].as_str() == Some(class_name)
                })
                .unwrap_or_else(|| panic!("{}: no StorageClass {class_name}", a.cluster));
            assert_eq!(class["provisioner"].as_str(), Some("ebs.csi.aws.com"));
            assert_eq!(class["parameters"]["type"].as_str(), Some("gp3"));
        }
    }
}

fn prometheus_rules(a: &Artifacts) -> BTreeMap<String, serde_yaml_ng::Value> {
    let config_map = manifest_objects(a)
        .into_iter()
        .find(|o| is_kind(o, "ConfigMap") && name_of(o) == "monitoring/prometheus")
        .unwrap_or_else(|| panic!("{}: no Prometheus ConfigMap", a.cluster));
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(config_map["data"]["rules.yaml"].as_str().unwrap()).unwrap();
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(config_map["data"]["prometheus.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        config["rule_files"][0].as_str(),
        Some("/etc/prometheus/rules.yaml")
    );
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .map(|r| (r["alert"].as_str().unwrap().to_string(), r))
        .collect()
}

/// What an operator needs while nodes roll: nodes not Ready, budgets blocking drains,
/// stuck rollouts and an old etcd snapshot, the last from the cluster's own
/// `etcd_backup_max_age`.
#[test]
fn prometheus_alerts_on_what_blocks_the_node_roller() {
    let fleet = compile(
        &DiskFs,
        Path::new("examples/fleet"),
        &ConfigSource::Dir(PathBuf::from("stdlib/config")),
        &[],
    )
    .fleet
    .unwrap();
    for a in compile_examples() {
        let rules = prometheus_rules(&a);
        for (alert, metric) in [
            ("NodeNotReady", "kube_node_status_condition"),
            (
                "PodDisruptionBudgetBlockingEvictions",
                "kube_poddisruptionbudget_status_pod_disruptions_allowed",
            ),
            (
                "NodeRolloutStuck",
                "label_flotilla_io_lifecycle_status=\"decommission-pending\"",
            ),
            ("DeploymentRolloutStuck", "kube_deployment_status_condition"),
            ("EtcdSnapshotTooOld", "cronjob=\"etcd-backup\""),
            ("EtcdSnapshotMissing", "cronjob=\"etcd-backup\""),
        ] {
            let rule = rules
                .get(alert)
                .unwrap_or_else(|| panic!("{}: no alert {alert}", a.cluster));
            let expr = rule["expr"].as_str().unwrap();
            assert!(expr.contains(metric), "{}: {alert}: {expr}", a.cluster);
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{}: {alert}",
                a.cluster
            );
        }
        let max_age = fleet
            .cluster(&a.cluster)
            .unwrap()
            .config_items
            .etcd_backup_max_age
            .as_secs();
        let too_old = rules["EtcdSnapshotTooOld"]["expr"].as_str().unwrap();
        assert!(too_old.ends_with(&format!("> {max_age}")), "{too_old}");
        assert_eq!(
            rules["EtcdSnapshotMissing"]["for"].as_str(),
            Some(format!("{max_age}s").as_str())
        );
        assert!(
            rules["PodDisruptionBudgetBlockingEvictions"]["expr"]
                .as_str()
                .unwrap()
                .ends_with("== 0")
        );
    }
}

fn compile_one(config_items: &str) -> Artifacts {
    compile_one_with_pool(config_items, "")
}

fn compile_one_with_pool(config_items: &str, pool: &str) -> Artifacts {
    let mut fs = flotilla::source::MemoryFs::new();
    fs.insert(
        "fleet/main.flt",
        format!(
            "channel stable {{\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}}\n\
             cluster \"c1\" {{\n  account = \"123456789012\"\n  region = \"eu-central-1\"\n  \
             environment = production\n  channel = stable\n  api_server_url = \"https://c1.example.org\"\n  \
             config_items {{\n{config_items}  }}\n  node_pool \"w\" {{\n    instance_types = [\"m5.large\"]\n    \
             max_size = 100\n{pool}  }}\n}}\n"
        ),
    );
    let c = compile(
        &fs,
        Path::new("fleet"),
        &ConfigSource::Dir(PathBuf::from("stdlib/config")),
        &[],
    );
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    c.artifacts.into_iter().next().unwrap()
}

/// Prometheus is sized from the cluster (memory from the nodes it can reach, volume,
/// retention bounded by the volume), alerts go to the Alertmanagers a cluster names,
/// and `monitoring_enabled = false` renders none of it.
#[test]
fn monitoring_follows_the_clusters_items_and_can_be_switched_off() {
    let sized = compile_one(
        "    custom = { \"alertmanager_targets\": \"am-0.example.org:9093, am-1.example.org:9093\" }\n",
    );
    let prometheus = manifest_objects(&sized)
        .into_iter()
        .find(|o| is_kind(o, "StatefulSet") && name_of(o) == "monitoring/prometheus")
        .unwrap();
    let spec = &prometheus["spec"];
    assert_eq!(
        spec["replicas"].as_i64(),
        Some(2),
        "production: two replicas"
    );
    let container = &spec["template"]["spec"]["containers"][0];
    // 1Gi + 8Mi for each of the 100 nodes the pool can reach.
    assert_eq!(
        container["resources"]["limits"]["memory"].as_str(),
        Some("1824Mi")
    );
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--storage.tsdb.retention.time=1296000s"),
        "{args:?}"
    );
    assert!(
        args.contains(&"--storage.tsdb.retention.size=85GB"),
        "{args:?}"
    );
    assert_eq!(
        spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"].as_str(),
        Some("100Gi")
    );
    let config_map = manifest_objects(&sized)
        .into_iter()
        .find(|o| is_kind(o, "ConfigMap") && name_of(o) == "monitoring/prometheus")
        .unwrap();
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(config_map["data"]["prometheus.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"],
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(
            "[am-0.example.org:9093, am-1.example.org:9093]"
        )
        .unwrap()
    );

    let off = compile_one("    monitoring_enabled = false\n");
    let objects = manifest_objects(&off);
    assert!(
        !objects.iter().any(|o| name_of(o).starts_with("monitoring/")
            || (is_kind(o, "Namespace") && name_of(o) == "/monitoring")),
        "monitoring switched off still renders: {:?}",
        objects
            .iter()
            .map(name_of)
            .filter(|n| n.contains("monitoring"))
            .collect::<Vec<_>>()
    );
    assert!(!off.files.keys().any(|p| p.contains("27-monitoring")));
}

/// `diff --base` shows a node pool stack's UserData decoded, one line per line, so a
/// changed node label reads as that line changing, not as two base64 blobs.
#[test]
fn stack_diffs_show_user_data_decoded() {
    let base = compile_one_with_pool("", "    labels = { \"team\": \"checkout\" }\n");
    let head = compile_one_with_pool("", "    labels = { \"team\": \"payments\" }\n");
    let fleet_diff = flotilla::diff::diff("base", &[base], "head", &[head]);
    let cluster = &fleet_diff.clusters[0];
    let stack = cluster
        .files
        .iter()
        .find(|f| f.path == "cloudformation/node-pool-w.json")
        .expect("the pool's stack changed");
    let changed: Vec<&str> = stack
        .diff
        .lines()
        .filter(|l| l.starts_with('-') || l.starts_with('+'))
        .filter(|l| !l.starts_with("---") && !l.starts_with("+++"))
        .collect();
    assert!(
        changed.iter().all(|l| l.len() < 1000),
        "no base64 line: {changed:#?}"
    );
    let label_lines: Vec<&&str> = changed
        .iter()
        .filter(|l| l.contains("| ") && l.contains("--node-labels="))
        .collect();
    assert_eq!(label_lines.len(), 2, "{}", stack.diff);
    assert!(label_lines[0].starts_with('-') && label_lines[0].contains("team=checkout"));
    assert!(label_lines[1].starts_with('+') && label_lines[1].contains("team=payments"));
    // The artifact itself is untouched: still base64 for CloudFormation.
    let userdata = cluster
        .files
        .iter()
        .find(|f| f.path == "userdata/w.yaml")
        .unwrap();
    assert!(userdata.diff.contains("team=payments"));
}
