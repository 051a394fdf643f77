//! Hung and broken endpoints: `plan` fails the cluster within its `--timeout`, plans
//! nothing for it, and says what did not answer, in words and without SDK dumps.

#[path = "support/files.rs"]
mod files;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/silent.rs"]
mod silent;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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
  node_pool "workers" {
    instance_types = ["m5.large"]
    min_size = 2
    max_size = 10
  }
}
"#;

/// The bound the tests give `--timeout`, and how long a plan may take beyond it.
const TIMEOUT_SECONDS: &str = "2";
const PLAN_BOUND: Duration = Duration::from_secs(20);

/// The fleet, in `fleet/` of a scratch directory that lives as long as the guard
/// returned with it.
fn fleet(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let fleet = dir.join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(fleet.join("main.flt"), FLEET).unwrap();
    (dir, fleet)
}

/// `flotilla plan --format json` with moto's credentials and `aws_endpoint` for AWS.
fn plan(fleet: &Path, aws_endpoint: &str, extra: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("plan")
        .arg(fleet)
        .args(["--config-set", FIXTURE, "--format", "json"])
        .args(extra)
        .envs(aws_env(aws_endpoint))
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    (output, started.elapsed())
}

/// The cluster failed with a message containing `expected`, and nothing was planned.
fn assert_failed_and_planned_nothing(output: &Output, expected: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["clusters"], serde_json::json!([]), "nothing planned");
    assert_eq!(plan["failures"][0]["cluster"], "prod-1");
    let error = &plan["failures"][0]["error"];
    let text = format!(
        "{}: {}",
        error["operation"].as_str().unwrap(),
        error["message"].as_str().unwrap()
    );
    assert!(text.contains(expected), "{text}");
    text
}

// Regression: plan waited forever on an AWS endpoint that accepts and never answers.
#[test]
fn a_silent_aws_endpoint_fails_the_cluster_within_the_timeout() {
    let silent = silent::silent();
    let (_dir, fleet) = fleet("aws-silent");
    let (output, took) = plan(&fleet, &silent, &["--timeout", TIMEOUT_SECONDS]);
    let text = assert_failed_and_planned_nothing(&output, "AWS did not answer within 2 s");
    assert!(took < PLAN_BOUND, "took {took:?}: {text}");
}

// Regression: the Kubernetes side gave up only after about 40 s, whatever was asked.
#[test]
fn a_silent_kubernetes_api_fails_the_cluster_within_the_timeout() {
    let moto = Moto::start();
    // The cluster's own stack exists, so plan goes on to ask its API server.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = moto::sdk_config(&moto.url, "eu-central-1").await;
        aws_sdk_cloudformation::Client::new(&config)
            .create_stack()
            .stack_name("prod-1")
            .template_body(
                r#"{"Resources": {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}}}}"#,
            )
            .send()
            .await
            .unwrap();
    });
    let silent = silent::silent();
    let endpoint = format!("prod-1={silent}");
    let (_dir, fleet) = fleet("kube-silent");
    let (output, took) = plan(
        &fleet,
        &moto.url,
        &["--timeout", TIMEOUT_SECONDS, "--kube-endpoint", &endpoint],
    );
    let text = assert_failed_and_planned_nothing(&output, "Kubernetes did not answer within 2 s");
    assert!(took < PLAN_BOUND, "took {took:?}: {text}");
}

// Regression: an invalid --aws-endpoint-url was accepted and every cluster then failed
// with an SDK request dump.
#[test]
fn an_invalid_aws_endpoint_url_is_rejected_before_anything_runs() {
    let (_dir, fleet) = fleet("bad-endpoint");
    let (output, _) = plan(
        &fleet,
        "http://127.0.0.1:9",
        &["--aws-endpoint-url", "localhost:4566"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing planned");
    assert!(
        stderr.contains("`localhost:4566` is not an http:// or https:// URL"),
        "{stderr}"
    );

    let (output, _) = plan(&fleet, "not a url", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing planned");
    assert!(
        stderr.contains("error: AWS_ENDPOINT_URL: `not a url` is not a URL"),
        "{stderr}"
    );
}

/// Signs that an SDK `Debug` dump reached a message.
const DUMP_MARKERS: [&str; 4] = ["SdkBody", "Request {", "Response {", "headers:"];

#[test]
fn sdk_dumps_never_reach_error_messages() {
    // An answer that is not AWS's: plan fails the cluster, in words.
    let garbage = silent::serve(Some(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nnot xml"));
    let (_garbage_dir, garbage_fleet) = fleet("garbage");
    let (output, _) = plan(&garbage_fleet, &garbage, &[]);
    // The account guard asks first.
    let text = assert_failed_and_planned_nothing(&output, "(GetCallerIdentity)");
    for marker in DUMP_MARKERS {
        assert!(!text.contains(marker), "{text}");
    }

    // An endpoint the SDK cannot use, through the per-service variable the CLI does
    // not check: the failure names the cause, not the request.
    let (_dir, fleet) = fleet("bad-service-endpoint");
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("plan")
        .arg(&fleet)
        .args(["--config-set", FIXTURE, "--format", "json"])
        .envs(aws_env(&garbage))
        .env("AWS_ENDPOINT_URL_STS", "localhost:4566")
        .output()
        .unwrap();
    let text = assert_failed_and_planned_nothing(&output, "endpoint must contain scheme");
    for marker in DUMP_MARKERS {
        assert!(!text.contains(marker), "{text}");
    }
}
