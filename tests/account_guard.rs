//! The account guard through the CLI against moto: a cluster whose credentials are
//! another account's fails in `plan` and `apply` (never "new cluster: create
//! everything"), a cluster with `aws_role_arn` is reached through that role, and a role
//! that cannot be assumed fails its cluster clearly. Other clusters are planned and
//! applied as usual.

#[path = "support/faults.rs"]
mod faults;
#[path = "support/files.rs"]
mod files;
#[path = "support/kubelet.rs"]
mod kubelet;
#[path = "support/moto.rs"]
mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use faults::{Fault, FaultProxy};
use files::TempDir;
use kube_loopback::LoopbackApi;
use kubelet::{Kubelet, PodStartup};
use moto::{Moto, aws_env};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config-min");

/// moto's account for the static test credentials.
const HOME: &str = "123456789012";
const OTHER: &str = "210000000202";
const OTHER_ROLE: &str = "arn:aws:iam::210000000202:role/flotilla-deploy";

/// A fleet of clusters given as (id, account, role to assume), in `fleet/` of a scratch
/// directory that lives as long as the guard returned with it.
fn write_fleet(name: &str, clusters: &[(&str, &str, Option<&str>)]) -> (TempDir, PathBuf) {
    let mut source = String::from(
        "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"stable\"\n}\n",
    );
    for (id, account, role) in clusters {
        let role = role
            .map(|r| format!("  aws_role_arn = \"{r}\"\n"))
            .unwrap_or_default();
        source.push_str(&format!(
            "\ncluster \"{id}\" {{\n  account = \"{account}\"\n{role}  region = \"eu-central-1\"\n  environment = production\n  channel = stable\n  api_server_url = \"https://{id}.example.org\"\n  node_pool \"workers\" {{\n    instance_types = [\"m5.large\"]\n    min_size = 2\n    max_size = 4\n  }}\n}}\n"
        ));
    }
    let dir = TempDir::new(name);
    let fleet = dir.join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(fleet.join("main.flt"), source).unwrap();
    (dir, fleet)
}

/// flotilla `args` on `fleet`, every AWS call sent to `aws` with moto's credentials,
/// no Kubernetes API reachable.
fn flotilla(aws: &str, fleet: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .arg(fleet)
        .args(["--config-set", FIXTURE])
        .envs(aws_env(aws))
        .env("KUBECONFIG", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        )
    })
}

/// The plan's failure of `cluster`, as `operation: message`.
fn failure(plan: &Value, cluster: &str) -> String {
    let failure = plan["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cluster"] == cluster)
        .unwrap_or_else(|| panic!("{cluster} did not fail: {plan:#}"));
    format!(
        "{}: {}",
        failure["error"]["operation"].as_str().unwrap(),
        failure["error"]["message"].as_str().unwrap()
    )
}

fn planned(plan: &Value) -> Vec<&str> {
    plan["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cluster"].as_str().unwrap())
        .collect()
}

/// Stack names in an account, as its credentials see them.
async fn stacks(config: &aws_config::SdkConfig) -> Vec<String> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let listed = cfn.list_stacks().send().await.unwrap();
    listed
        .stack_summaries()
        .iter()
        .filter_map(|s| s.stack_name().map(str::to_string))
        .collect()
}

/// The SDK configuration of `role`, assumed with the static test credentials.
async fn assumed(moto: &Moto, role: &str) -> aws_config::SdkConfig {
    let home = moto::sdk_config(&moto.url, "eu-central-1").await;
    let sts = aws_sdk_sts::Client::new(&home);
    let out = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("test-seed")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    home.into_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            aws_sdk_sts::config::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                None,
                "test",
            ),
        ))
        .build()
}

#[test]
fn plan_in_the_wrong_account_fails_that_cluster_and_plans_the_others() {
    let moto = Moto::start();
    let (_dir, fleet) = write_fleet("wrong-plan", &[("home", HOME, None), ("away", OTHER, None)]);

    let output = flotilla(&moto.url, &fleet, &["plan", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let plan = json(&output);
    let message = failure(&plan, "away");
    assert!(
        message.contains(&format!(
            "are for account {HOME}, but the cluster is in account {OTHER}"
        )),
        "{message}"
    );
    assert!(
        message.contains("aws_role_arn"),
        "the hint names the field: {message}"
    );
    assert_eq!(
        planned(&plan),
        ["home"],
        "the other cluster is planned as usual"
    );
    assert_eq!(plan["clusters"][0]["creation"], true);

    // In words: the failure, and not one step of the cluster that failed.
    let output = flotilla(&moto.url, &fleet, &["plan"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(OTHER) && text.contains(HOME), "{text}");
    assert!(
        !text.contains("away-etcd") && !text.contains("away-node-pool"),
        "{text}"
    );
    assert!(text.contains("home-etcd"), "{text}");
}

#[test]
fn apply_in_the_wrong_account_refuses_that_cluster_and_applies_the_others() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let api = Arc::new(LoopbackApi::start().unwrap());
    let (_dir, fleet) = write_fleet(
        "wrong-apply",
        &[("home", HOME, None), ("away", OTHER, None)],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let home = runtime.block_on(moto::sdk_config(&moto.url, "eu-central-1"));
    runtime.block_on(moto::tagged_network(&home, "home"));
    // Stands in for the kubelets of `home`'s new nodes.
    let kubelet = runtime.block_on(async {
        Kubelet::start(
            "home",
            Arc::clone(&api),
            &home,
            PodStartup::After(Duration::from_millis(200)),
        )
    });
    let endpoint = format!("home={}", api.url());
    proxy.clear_seen();

    let output = flotilla(
        &proxy.url,
        &fleet,
        &["apply", "--auto-approve", "--kube-endpoint", &endpoint],
    );
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{summary}\n{}",
        stderr(&output)
    );
    let row = |cluster: &str| {
        summary
            .lines()
            .find(|l| l.split_whitespace().next() == Some(cluster))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
    };
    assert_eq!(row("home").as_deref(), Some("done"), "{summary}");
    assert_eq!(row("away").as_deref(), Some("REFUSED"), "{summary}");
    assert!(
        summary.contains(&format!(
            "away: not applied: check the caller's account (STS GetCallerIdentity): the credentials are for account {HOME}, but the cluster is in account {OTHER}"
        )),
        "{summary}"
    );
    // Each identity was asked once: apply's own checks use the guard's answer.
    let seen = proxy.seen();
    let identity = |seen: &[String]| seen.iter().filter(|s| *s == "GetCallerIdentity").count();
    assert_eq!(identity(&seen), 2, "{seen:?}");

    runtime.block_on(async {
        let mut created = stacks(&home).await;
        created.sort();
        assert_eq!(created, ["home", "home-etcd", "home-node-pool-workers"]);
        let other = assumed(&moto, OTHER_ROLE).await;
        assert_eq!(
            stacks(&other).await,
            Vec::<String>::new(),
            "nothing created for away"
        );
    });
    assert!(
        api.get("v1", "ConfigMap", Some("kube-system"), "coredns")
            .is_some(),
        "home's manifests were applied"
    );

    // `block` checks the account through the guard too: one call.
    proxy.clear_seen();
    let output = flotilla(
        &proxy.url,
        &fleet,
        &[
            "block",
            "home",
            "--reason",
            "freeze",
            "--kube-endpoint",
            &endpoint,
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(identity(&proxy.seen()), 1, "{:?}", proxy.seen());
    let observed = runtime.block_on(kubelet.stop());
    assert_eq!(observed.errors, Vec::<String>::new(), "the harness failed");
}

#[test]
fn a_role_of_the_clusters_account_is_assumed_and_passes_the_guard() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    // A stack of `away` exists in its own account only: a plan that reads it reads
    // through the role.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let other = assumed(&moto, OTHER_ROLE).await;
        aws_sdk_cloudformation::Client::new(&other)
            .create_stack()
            .stack_name("away-etcd")
            .template_body(
                r#"{"Resources": {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}}}}"#,
            )
            .send()
            .await
            .unwrap();
    });
    proxy.clear_seen();
    let (_dir, fleet) = write_fleet(
        "role",
        &[("home", HOME, None), ("away", OTHER, Some(OTHER_ROLE))],
    );

    let output = flotilla(&proxy.url, &fleet, &["plan", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan = json(&output);
    assert_eq!(plan["failures"], serde_json::json!([]));
    assert_eq!(planned(&plan), ["away", "home"]);
    let steps = |cluster: &str| -> Vec<String> {
        let c = plan["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cluster"] == cluster)
            .unwrap();
        c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s["action"].as_str().unwrap_or(""),
                    s["stack"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert!(
        steps("home").contains(&"create home-etcd".to_string()),
        "{:?}",
        steps("home")
    );
    assert!(
        !steps("away").contains(&"create away-etcd".to_string()),
        "away-etcd exists in the role's account: {:?}",
        steps("away")
    );

    // The role was assumed once for all of the run, and each identity checked once.
    let seen = proxy.seen();
    let count = |op: &str| seen.iter().filter(|s| *s == op).count();
    assert_eq!(count("AssumeRole"), 1, "{seen:?}");
    assert_eq!(count("GetCallerIdentity"), 2, "{seen:?}");
}

#[test]
fn a_role_that_cannot_be_assumed_fails_its_cluster_clearly() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    proxy.fail(
        "AssumeRole",
        Fault::Error(
            403,
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/moto is not authorized to perform: sts:AssumeRole",
        ),
    );
    let (_dir, fleet) = write_fleet(
        "role-denied",
        &[("home", HOME, None), ("away", OTHER, Some(OTHER_ROLE))],
    );

    let output = flotilla(&proxy.url, &fleet, &["plan", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let plan = json(&output);
    let message = failure(&plan, "away");
    assert!(
        message.contains(&format!("cannot assume role {OTHER_ROLE}"))
            && message.contains("AccessDenied")
            && message.contains("not authorized to perform: sts:AssumeRole"),
        "{message}"
    );
    assert_eq!(
        planned(&plan),
        ["home"],
        "the other cluster is planned as usual"
    );
}
