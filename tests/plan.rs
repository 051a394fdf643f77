//! `flotilla plan` against the moto AWS emulator and the loopback Kubernetes API.

#[path = "support/files.rs"]
mod files;
#[path = "support/moto.rs"]
mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use files::TempDir;
use moto::{Moto, aws_env};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config-min");

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
    secrets = { "datadog": secret("datadog-api-key", "hunter2-plaintext-value") }
  }
  node_pool "workers" {
    instance_types = ["m5.large", "m5.xlarge"]
    min_size = 2
    max_size = 10
  }
}
"#;

fn write_fleet(dir: &Path, source: &str) -> PathBuf {
    let fleet = dir.join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(fleet.join("main.flt"), source).unwrap();
    fleet
}

/// One secret digest key for every compile and plan of this test binary, as CI would
/// give every run the same key: artifacts compiled here and plans run by the CLI then
/// show secrets' redacted forms alike.
const DIGEST_KEY: &str = "plan-tests-secret-digest-key-0123456789";

fn plan(moto: &Moto, fleet: &Path, extra: &[&str]) -> Output {
    // The same key every time, in a file that lives as long as the run that reads it.
    let key = TempDir::new("digest-key");
    let key_file = key.join("secret-digest.key");
    std::fs::write(&key_file, DIGEST_KEY).unwrap();
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("plan")
        .arg(fleet)
        .args(["--config-set", FIXTURE])
        .args(extra)
        .envs(aws_env(&moto.url))
        .env(flotilla::redact::KEY_FILE_VARIABLE, &key_file)
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap()
}

fn json_plan(output: &Output) -> Value {
    assert!(
        output.status.code() == Some(0) || output.status.code() == Some(2),
        "exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn empty_account_plans_full_creation_without_contacting_the_api_server() {
    let moto = Moto::start();
    let dir = TempDir::new("creation");
    let fleet = write_fleet(&dir, FLEET);
    // An endpoint nothing listens on: contacting it would fail the cluster.
    let output = plan(
        &moto,
        &fleet,
        &[
            "--format",
            "json",
            "--kube-endpoint",
            "prod-1=http://127.0.0.1:9",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan = json_plan(&output);
    assert_eq!(plan["version"], 1);
    assert_eq!(plan["failures"], serde_json::json!([]));
    let cluster = &plan["clusters"][0];
    assert_eq!(cluster["creation"], true);
    let steps = step_names(&plan);
    assert_eq!(
        steps,
        [
            "create stack prod-1-etcd",
            "create stack prod-1",
            "create stack prod-1-node-pool-workers",
            "create coredns",
            "create secret-references",
        ]
    );
}

#[test]
fn secrets_never_appear_in_any_plan_format() {
    let moto = Moto::start();
    let dir = TempDir::new("secrets");
    let fleet = write_fleet(&dir, FLEET);
    let saved = dir.join("plan.json");
    for format in ["text", "markdown", "json"] {
        let output = plan(
            &moto,
            &fleet,
            &["--format", format, "--out", saved.to_str().unwrap()],
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for text in [
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            std::fs::read_to_string(&saved).unwrap(),
        ] {
            assert!(
                !text.contains("hunter2"),
                "{format} leaks the secret:\n{text}"
            );
        }
    }
}

#[test]
fn an_unreachable_aws_endpoint_fails_the_cluster_and_plans_nothing() {
    let moto = Moto::start();
    let dir = TempDir::new("aws-down");
    let fleet = write_fleet(&dir, FLEET);
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("plan")
        .arg(&fleet)
        .args(["--config-set", FIXTURE, "--format", "json"])
        .envs(aws_env(&moto.url))
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_MAX_ATTEMPTS", "2")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["clusters"], serde_json::json!([]));
    assert_eq!(plan["failures"][0]["cluster"], "prod-1");
    assert!(
        plan["failures"][0]["error"]["operation"]
            .as_str()
            .unwrap()
            .contains("(GetCallerIdentity)"),
        "the account guard is the first call: {}",
        plan["failures"][0]
    );
}

// ---- existing clusters: moto stacks + loopback Kubernetes API -------------------------

use flotilla::compile::{ConfigSource, compile};
use flotilla::render::Artifacts;
use flotilla::source::DiskFs;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;
use kube_loopback::{Failure, LoopbackApi};

fn artifacts(fleet: &Path) -> Artifacts {
    flotilla::redact::use_key(
        flotilla::redact::DigestKey::from_bytes(DIGEST_KEY.as_bytes()).unwrap(),
    );
    let c = compile(
        &DiskFs,
        fleet,
        &ConfigSource::Dir(PathBuf::from(FIXTURE)),
        &[],
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    c.artifacts.into_iter().next().unwrap()
}

/// Create every stack of `desired` in moto and apply every manifest to the API server,
/// as a finished apply would leave them; nodes carry the desired config hashes.
async fn bring_up(moto: &Moto, api: &LoopbackApi, desired: &Artifacts) {
    create_stacks(moto, desired).await;
    apply_manifests(api, desired).await;
}

/// Create every stack of `desired` in moto.
async fn create_stacks(moto: &Moto, desired: &Artifacts) {
    let config = moto::sdk_config(&moto.url, "eu-central-1").await;
    let (vpc_id, subnet_id) = moto::network(&config).await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    for (name, _, artifact) in flotilla::plan::stacks_of(desired) {
        let template: Value = serde_json::from_str(&desired.files[&artifact]).unwrap();
        let mut request = cfn
            .create_stack()
            .stack_name(&name)
            .template_body(&desired.files[&artifact]);
        for (key, value) in [("VpcId", &vpc_id), ("SubnetIds", &subnet_id)] {
            if template["Parameters"].get(key).is_some() {
                request = request.parameters(
                    aws_sdk_cloudformation::types::Parameter::builder()
                        .parameter_key(key)
                        .parameter_value(value.as_str())
                        .build(),
                );
            }
        }
        request.send().await.unwrap();
        wait_for_stack(&cfn, &name).await;
    }
}

/// Apply every manifest of `desired` and register the first pool's nodes.
async fn apply_manifests(api: &LoopbackApi, desired: &Artifacts) {
    let client = api.client().unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for (path, text) in desired
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("manifests/"))
    {
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let object: Value = serde::Deserialize::deserialize(doc).unwrap();
            if object.is_null() {
                continue;
            }
            let (group, version) = object["apiVersion"]
                .as_str()
                .unwrap()
                .rsplit_once('/')
                .unwrap_or(("", object["apiVersion"].as_str().unwrap()));
            let gvk =
                kube::api::GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
            let (resource, _) = discovery
                .resolve_gvk(&gvk)
                .unwrap_or_else(|| panic!("{path}: unknown kind"));
            let objects: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let name = object["metadata"]["name"].as_str().unwrap();
            objects
                .patch(
                    name,
                    &PatchParams::apply("flotilla"),
                    &Patch::Apply(&object),
                )
                .await
                .unwrap();
        }
    }
    let pool = &desired.summary.node_pools[0];
    for (i, zone) in ["eu-central-1a", "eu-central-1a", "eu-central-1b"]
        .iter()
        .enumerate()
    {
        api.insert(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("ip-10-0-1-{i}"), "labels": {
                "flotilla.io/node-pool": pool.name, "flotilla.io/config-hash": pool.config_hash,
                "topology.kubernetes.io/zone": zone}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
    }
}

async fn wait_for_stack(cfn: &aws_sdk_cloudformation::Client, name: &str) {
    for _ in 0..100 {
        let out = cfn.describe_stacks().stack_name(name).send().await.unwrap();
        let status = out.stacks()[0].stack_status().unwrap().as_str().to_string();
        if status.ends_with("_COMPLETE") {
            assert_eq!(status, "CREATE_COMPLETE", "stack {name}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("stack {name} was not created");
}

fn plan_against(moto: &Moto, api: &LoopbackApi, fleet: &Path) -> Output {
    let endpoint = format!("prod-1={}", api.url());
    plan(
        moto,
        fleet,
        &[
            "--format",
            "json",
            "--detailed-exitcode",
            "--kube-endpoint",
            &endpoint,
        ],
    )
}

fn step_names(plan: &Value) -> Vec<String> {
    plan["clusters"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| match s["step"].as_str().unwrap() {
            "stack" => format!(
                "{} stack {}",
                s["action"].as_str().unwrap(),
                s["stack"].as_str().unwrap()
            ),
            "manifest" => format!(
                "{} {}",
                s["action"].as_str().unwrap(),
                s["object"]["name"].as_str().unwrap()
            ),
            "delete" => format!(
                "delete {} {}",
                s["object"]["kind"].as_str().unwrap(),
                s["object"]["name"].as_str().unwrap()
            ),
            "roll" => format!(
                "roll {} {}/{}",
                s["node_pool"].as_str().unwrap(),
                s["outdated"],
                s["nodes"]
            ),
            "remove_pool" => format!(
                "remove pool {} {} nodes, stack {}",
                s["node_pool"].as_str().unwrap(),
                s["nodes"],
                s["stack"].as_str().unwrap()
            ),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_matching_its_artifacts_plans_nothing() {
    let moto = Moto::start();
    let api = LoopbackApi::start().unwrap();
    let dir = TempDir::new("in-sync");
    let fleet = write_fleet(&dir, FLEET);
    bring_up(&moto, &api, &artifacts(&fleet)).await;
    api.clear_requests();
    let output = plan_against(&moto, &api, &fleet);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let plan = json_plan(&output);
    assert_eq!(plan["clusters"][0]["creation"], false);
    assert_eq!(step_names(&plan), Vec::<String>::new());
    let fingerprint = &plan["clusters"][0]["fingerprint"];
    assert!(
        fingerprint["stacks"]["prod-1"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:cloudformation:")
    );
    assert_eq!(fingerprint["nodes"].as_object().unwrap().len(), 3);
    // Observation is read-only: the dry-run applies stored nothing.
    let requests = api.requests();
    assert!(requests.iter().any(|r| r.method == "PATCH"));
    assert!(
        requests
            .iter()
            .filter(|r| r.method != "GET")
            .all(|r| r.method == "PATCH" && r.query.contains("dryRun=All"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_an_instance_type_plans_that_pools_update_and_roll() {
    let moto = Moto::start();
    let api = LoopbackApi::start().unwrap();
    let dir = TempDir::new("instance-type");
    let fleet = write_fleet(&dir, FLEET);
    bring_up(&moto, &api, &artifacts(&fleet)).await;
    write_fleet(&dir, &FLEET.replace("\"m5.xlarge\"", "\"m5.2xlarge\""));
    let output = plan_against(&moto, &api, &fleet);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan = json_plan(&output);
    assert_eq!(
        step_names(&plan),
        ["update stack prod-1-node-pool-workers", "roll workers 3/3"]
    );
    let steps = plan["clusters"][0]["steps"].as_array().unwrap();
    let changes = steps[0]["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["logical_id"] == "AutoScalingGroup" || c["logical_id"] == "LaunchTemplate"),
        "the change set names the changed resources: {changes:?}"
    );
    assert_eq!(
        steps[1]["outdated_by_zone"],
        serde_json::json!({"eu-central-1a": 2, "eu-central-1b": 1})
    );
    // The preview's change set is gone again: planning changes nothing.
    let cfn =
        aws_sdk_cloudformation::Client::new(&moto::sdk_config(&moto.url, "eu-central-1").await);
    let left = cfn
        .list_change_sets()
        .stack_name("prod-1-node-pool-workers")
        .send()
        .await
        .unwrap();
    assert_eq!(left.summaries().len(), 0, "{:?}", left.summaries());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_node_pool_is_planned_for_drain_and_stack_deletion() {
    let moto = Moto::start();
    let api = LoopbackApi::start().unwrap();
    let dir = TempDir::new("removed-pool");
    let with_batch = FLEET.replace(
        "  node_pool \"workers\" {",
        "  node_pool \"batch\" {\n    instance_types = [\"c5.large\"]\n    max_size = 4\n  }\n  node_pool \"workers\" {",
    );
    let fleet = write_fleet(&dir, &with_batch);
    let desired = artifacts(&fleet);
    assert_eq!(desired.summary.node_pools[0].name, "batch");
    bring_up(&moto, &api, &desired).await;
    // A stack and an Auto Scaling group tagged for another cluster are never touched.
    let other = TempDir::new("removed-pool-other");
    let other_fleet = write_fleet(
        &other,
        &with_batch
            .replace("cluster \"prod-1\"", "cluster \"prod-2\"")
            .replace("prod-1.example.org", "prod-2.example.org"),
    );
    let other_desired = artifacts(&other_fleet);
    create_stacks(&moto, &other_desired).await;

    // The batch pool runs three instances: they are what the removal drains.
    let autoscaling =
        aws_sdk_autoscaling::Client::new(&moto::sdk_config(&moto.url, "eu-central-1").await);
    let batch_group = |groups: &aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput| {
        groups
            .auto_scaling_groups()
            .iter()
            .find(|g| {
                let tagged = |k: &str, v: &str| {
                    g.tags().iter().any(|t| t.key() == Some(k) && t.value() == Some(v))
                };
                tagged("flotilla.io/cluster", "prod-1") && tagged("flotilla.io/node-pool", "batch")
            })
            .cloned()
            .expect("the batch pool's Auto Scaling group")
    };
    let groups = autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(batch_group(&groups).auto_scaling_group_name().unwrap())
        .desired_capacity(3)
        .send()
        .await
        .unwrap();
    let groups = autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let mut zones = serde_json::Map::new();
    for instance in batch_group(&groups).instances() {
        let zone = instance.availability_zone().unwrap().to_string();
        let count = zones.get(&zone).and_then(Value::as_u64).unwrap_or(0);
        zones.insert(zone, (count + 1).into());
    }

    write_fleet(&dir, FLEET);
    let output = plan_against(&moto, &api, &fleet);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan = json_plan(&output);
    // CoreDNS memory is sized from the nodes the pools can reach, so removing a pool
    // also resizes CoreDNS.
    assert_eq!(
        step_names(&plan),
        [
            "update coredns",
            "remove pool batch 3 nodes, stack prod-1-node-pool-batch"
        ]
    );
    let step = &plan["clusters"][0]["steps"][1];
    assert_eq!(step["nodes_by_zone"], Value::Object(zones.clone()));
    assert!(
        plan["clusters"][0]["fingerprint"]["stacks"]["prod-1-node-pool-batch"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:cloudformation:"),
        "the removed pool's stack is part of the fingerprint"
    );
    let text = plan_against_text(&moto, &api, &fleet);
    let zones_text: Vec<String> = zones.iter().map(|(z, n)| format!("{z}: {n}")).collect();
    assert!(
        text.contains(&format!(
            "!! Deletions and replacements:\n   ! prod-1: remove node pool batch: drain its 3 nodes ({}), delete stack prod-1-node-pool-batch",
            zones_text.join(", ")
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_are_deleted_only_when_listed_in_deletions() {
    let moto = Moto::start();
    let api = LoopbackApi::start().unwrap();
    let dir = TempDir::new("deletions");
    let fleet = write_fleet(&dir, FLEET);
    bring_up(&moto, &api, &artifacts(&fleet)).await;
    // kube-dns is in the fixture's deletions list; a stray ConfigMap is not.
    api.insert(
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {"replicas": 2}}),
    )
    .unwrap();
    api.insert(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "not-ours", "namespace": "kube-system"}}))
        .unwrap();
    // Removing the secrets removes the `secret-references` component from the artifacts.
    let without_secrets = FLEET.replace(
        "    secrets = { \"datadog\": secret(\"datadog-api-key\", \"hunter2-plaintext-value\") }\n",
        "",
    );
    write_fleet(&dir, &without_secrets);
    let plan = json_plan(&plan_against(&moto, &api, &fleet));
    assert_eq!(step_names(&plan), ["delete Deployment kube-dns"]);
    assert_eq!(plan["clusters"][0]["steps"][0]["phase"], "pre_apply");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_api_read_fails_the_cluster_and_plans_no_deletion() {
    let moto = Moto::start();
    let api = LoopbackApi::start().unwrap();
    let dir = TempDir::new("api-500");
    let fleet = write_fleet(&dir, FLEET);
    bring_up(&moto, &api, &artifacts(&fleet)).await;
    api.insert(
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kube-dns", "namespace": "kube-system"}}),
    )
    .unwrap();
    // Every read of ConfigMaps fails, even after retries.
    api.add_failure(
        Failure::new(500)
            .method("GET")
            .path_prefix("/api/v1/namespaces/kube-system/configmaps"),
    );
    let output = plan_against(&moto, &api, &fleet);
    assert_eq!(output.status.code(), Some(1));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["clusters"], serde_json::json!([]));
    assert_eq!(plan["failures"][0]["cluster"], "prod-1");
    assert!(
        plan["failures"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{plan:#}"
    );

    // The same when the API server is gone altogether.
    api.clear_failures();
    api.stop();
    let output = plan_against(&moto, &api, &fleet);
    assert_eq!(output.status.code(), Some(1));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["clusters"], serde_json::json!([]));
    let text = plan_against_text(&moto, &api, &fleet);
    assert!(text.contains("FAILED prod-1"), "{text}");
}

fn plan_against_text(moto: &Moto, api: &LoopbackApi, fleet: &Path) -> String {
    let endpoint = format!("prod-1={}", api.url());
    String::from_utf8(plan(moto, fleet, &["--kube-endpoint", &endpoint]).stdout).unwrap()
}

#[test]
fn example_fleet_plans_full_creation_as_a_pull_request_comment() {
    let moto = Moto::start();
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args([
            "plan",
            "examples/fleet",
            "--config-set",
            "stdlib/config",
            "--format",
            "markdown",
        ])
        .envs(aws_env(&moto.url))
        .output()
        .unwrap();
    // A failed cluster is reported in the plan itself (stdout), so show both.
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr:\n{}\nstdout:\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    // The retired cluster is skipped, and says so.
    assert!(String::from_utf8_lossy(&output.stderr).contains("skipping aws-eu-west-1-prod-legacy"));
    insta::assert_snapshot!(String::from_utf8(output.stdout).unwrap());
}

#[test]
fn endpoint_and_context_overrides_must_name_clusters_of_the_fleet() {
    let moto = Moto::start();
    let dir = TempDir::new("override-typo");
    let fleet = write_fleet(&dir, FLEET);
    for args in [
        ["--kube-endpoint", "prod1=http://127.0.0.1:9"],
        ["--kube-context", "prod1=admin"],
    ] {
        let output = plan(&moto, &fleet, &args);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("names `prod1`, which is not a cluster of the fleet"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_api_group_the_plan_does_not_need_does_not_fail_it() {
    let moto = Moto::start();
    let api = LoopbackApi::start().unwrap();
    let dir = TempDir::new("broken-group");
    let fleet = write_fleet(&dir, FLEET);
    bring_up(&moto, &api, &artifacts(&fleet)).await;
    api.insert(
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kube-dns", "namespace": "kube-system"}}),
    )
    .unwrap();
    // Like an aggregated API whose backend is down (metrics-server, say).
    api.add_failure(Failure::new(503).path_prefix("/apis/policy"));
    let plan = json_plan(&plan_against(&moto, &api, &fleet));
    assert_eq!(plan["failures"], serde_json::json!([]), "{plan:#}");
    assert_eq!(step_names(&plan), ["delete Deployment kube-dns"]);
    // A group the plan needs (Deployments for the deletion) fails it.
    api.add_failure(Failure::new(503).path_prefix("/apis/apps"));
    let output = plan_against(&moto, &api, &fleet);
    assert_eq!(output.status.code(), Some(1));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["failures"][0]["cluster"], "prod-1", "{plan:#}");
}
