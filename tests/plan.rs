//! `flotilla plan` against the moto AWS emulator and the loopback Kubernetes API.

#[path = "support/moto.rs"]
mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use moto::{Moto, aws_env};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config-min");

fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("flotilla-plan-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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

fn plan(moto: &Moto, fleet: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("plan")
        .arg(fleet)
        .args(["--config-set", FIXTURE])
        .args(extra)
        .envs(aws_env(&moto.url))
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
    let dir = temp_dir("creation");
    let fleet = write_fleet(&dir, FLEET);
    // An endpoint nothing listens on: contacting it would fail the cluster.
    let output = plan(&moto, &fleet, &["--format", "json", "--kube-endpoint", "prod-1=http://127.0.0.1:9", "--detailed-exitcode"]);
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    let plan = json_plan(&output);
    assert_eq!(plan["version"], 1);
    assert_eq!(plan["failures"], serde_json::json!([]));
    let cluster = &plan["clusters"][0];
    assert_eq!(cluster["creation"], true);
    let steps: Vec<String> = cluster["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| match s["step"].as_str().unwrap() {
            "stack" => format!("{} stack {}", s["action"].as_str().unwrap(), s["stack"].as_str().unwrap()),
            "manifest" => format!("{} {} {}", s["action"].as_str().unwrap(), s["object"]["kind"].as_str().unwrap(), s["object"]["name"].as_str().unwrap()),
            other => panic!("a new cluster plans no {other} steps"),
        })
        .collect();
    assert_eq!(
        steps,
        [
            "create stack prod-1-etcd",
            "create stack prod-1",
            "create stack prod-1-node-pool-workers",
            "create ConfigMap coredns",
            "create ConfigMap secret-references",
        ]
    );
}

#[test]
fn secrets_never_appear_in_any_plan_format() {
    let moto = Moto::start();
    let dir = temp_dir("secrets");
    let fleet = write_fleet(&dir, FLEET);
    let saved = dir.join("plan.json");
    for format in ["text", "markdown", "json"] {
        let output = plan(&moto, &fleet, &["--format", format, "--out", saved.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        for text in [
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            std::fs::read_to_string(&saved).unwrap(),
        ] {
            assert!(!text.contains("hunter2"), "{format} leaks the secret:\n{text}");
        }
    }
}

#[test]
fn an_unreachable_aws_endpoint_fails_the_cluster_and_plans_nothing() {
    let moto = Moto::start();
    let dir = temp_dir("aws-down");
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
    assert!(plan["failures"][0]["error"]["operation"].as_str().unwrap().contains("describe stack prod-1-etcd"));
}
