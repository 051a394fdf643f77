//! Apply end to end through the real AWS SDK (against moto) and the real kube client
//! (against the loopback API server), with a harness standing in for the kubelets,
//! the Deployment controller and the scheduler. The engine runs on a clock a hundred
//! times faster than the real one, so its waits (ten seconds between looks at a
//! rolling pool, backoff after a refused eviction) take milliseconds; every call
//! still goes over HTTP to moto and the loopback server.

#[path = "support/faults.rs"]
mod faults;
#[path = "support/files.rs"]
mod files;
#[path = "support/kubelet.rs"]
mod kubelet;
#[path = "support/moto.rs"]
mod moto;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use faults::{Fault, FaultProxy};
use files::TempDir;
use flotilla::apply::{
    self, Accounts, ClusterReport, GuardedAccounts, Options, Outcome, Progress, Target, World,
};
use flotilla::compile::{Compilation, ConfigSource, compile};
use flotilla::live::aws::AwsCloud;
use flotilla::live::{Clock, Timeouts};
use flotilla::plan::{ClusterTarget, KubeConnector, Plan, plan_fleet, plan_targets};
use flotilla::source::DiskFs;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube_loopback::{Failure, LoopbackApi};
use kubelet::{Kubelet, PodStartup};
use moto::Moto;
use serde_json::{Value, json};

const CLUSTER: &str = "prod-1";
const REGION: &str = "eu-central-1";
/// moto's default account.
const ACCOUNT: &str = "123456789012";

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config-min");

fn fleet_source(instance_type: &str) -> String {
    format!(
        r#"channel stable {{
  kubernetes_version = "1.31.4"
  config_ref = "stable"
}}

cluster "{CLUSTER}" {{
  account = "{ACCOUNT}"
  region = "{REGION}"
  environment = production
  channel = stable
  api_server_url = "https://{CLUSTER}.example.org"
  node_pool "workers" {{
    instance_types = ["{instance_type}"]
    min_size = 3
    max_size = 6
    update {{ max_surge = 1 }}
  }}
}}
"#
    )
}

/// The minimal config set, with a `post_apply` deletion added (a ConfigMap the old
/// version of the set created), and a node pool stack moto can update in place: the
/// instance type sits in the launch template, which the group follows at `$Latest`.
/// (moto replaces a group whose own properties change, instances and all, and does
/// not re-resolve `Fn::GetAtt LatestVersionNumber` in a group it keeps; real
/// CloudFormation does neither.)
fn config_set(dir: &Path) -> PathBuf {
    let set = dir.join("config");
    copy_dir(Path::new(FIXTURE), &set);
    std::fs::write(
        set.join("deletions.yaml.j2"),
        "pre_apply:\n  - kind: Deployment\n    namespace: kube-system\n    name: kube-dns\npost_apply:\n  - kind: ConfigMap\n    namespace: kube-system\n    name: coredns-legacy\n",
    )
    .unwrap();
    std::fs::write(
        set.join("node-pools/worker-default/stack.yaml.j2"),
        POOL_STACK,
    )
    .unwrap();
    set
}

const POOL_STACK: &str = r#"Parameters:
  SubnetIds:
    Type: List<AWS::EC2::Subnet::Id>
Resources:
  LaunchTemplate:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        InstanceType: {{ pool.instance_types[0] | tojson }}
        UserData: {{ userdata | b64encode | tojson }}
  AutoScalingGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: {{ pool.min_size | tojson }}
      MaxSize: {{ pool.max_size | tojson }}
      VPCZoneIdentifier:
        Ref: SubnetIds
      LaunchTemplate:
        LaunchTemplateId:
          Ref: LaunchTemplate
        Version: "$Latest"
      Tags:
        - Key: flotilla.io/cluster
          Value: {{ cluster.id | tojson }}
          PropagateAtLaunch: true
        - Key: flotilla.io/node-pool
          Value: {{ pool.name | tojson }}
          PropagateAtLaunch: true
"#;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn compile_fleet(fleet: &Path, set: &Path) -> Compilation {
    let compilation = compile(&DiskFs, fleet, &ConfigSource::Dir(set.to_path_buf()), &[]);
    assert!(!compilation.has_errors(), "{:?}", compilation.diagnostics);
    compilation
}

/// Real time, a hundred times faster: `sleep` waits a hundredth of what it is asked,
/// and `now_ms` moves a hundred times as fast.
struct FastClock {
    origin: Instant,
    origin_ms: i64,
}

const SPEEDUP: u32 = 100;

impl FastClock {
    fn new() -> FastClock {
        FastClock {
            origin: Instant::now(),
            origin_ms: flotilla::live::SystemClock.now_ms(),
        }
    }
}

#[async_trait]
impl Clock for FastClock {
    fn now_ms(&self) -> i64 {
        self.origin_ms + (self.origin.elapsed().as_millis() as i64) * i64::from(SPEEDUP)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration / SPEEDUP).await;
    }
}

/// Keeps what apply tells, for the failure message of a test.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Progress for Log {
    fn step(&self, cluster: &str, step: &str) {
        self.0.lock().unwrap().push(format!("{cluster}: {step}"));
    }
    fn waiting(&self, _: &str, _: &str, _: i64, _: i64) {}
    fn note(&self, cluster: &str, message: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{cluster}:   {message}"));
    }
    fn done(&self, _: &str, _: &str) {}
}

impl Log {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// moto, the loopback API server, the SDK configuration the harness uses, and
/// flotilla's doors to them. flotilla reaches moto through a fault-injecting proxy; the
/// harness and the test's own checks reach it directly.
struct Env {
    moto: Moto,
    proxy: FaultProxy,
    api: Arc<LoopbackApi>,
    aws: aws_config::SdkConfig,
    accounts: GuardedAccounts<AwsCloud>,
    connector: KubeConnector,
    clock: FastClock,
}

impl Env {
    async fn start() -> Env {
        let moto = Moto::start();
        let api = Arc::new(LoopbackApi::start().unwrap());
        let aws = moto::sdk_config(&moto.url, REGION).await;
        moto::tagged_network(&aws, CLUSTER).await;
        let proxy = FaultProxy::start(&moto.url);
        Env {
            accounts: GuardedAccounts::new([(ACCOUNT, None)], |_, _| cloud(&proxy.url)),
            connector: KubeConnector {
                endpoints: BTreeMap::from([(CLUSTER.to_string(), api.url())]),
                contexts: BTreeMap::new(),
                timeouts: Timeouts::with_call_deadline(Duration::from_secs(20)),
            },
            clock: FastClock::new(),
            moto,
            proxy,
            api,
            aws,
        }
    }

    fn world(&self) -> World<'_> {
        World {
            accounts: &self.accounts,
            connector: &self.connector,
            clock: &self.clock,
        }
    }

    async fn plan(&self, compilation: &Compilation) -> Plan {
        let fleet = compilation.fleet.as_ref().unwrap();
        let (targets, _) = plan_targets(fleet, &compilation.artifacts);
        let targets: Vec<ClusterTarget> = targets;
        plan_fleet(
            &targets,
            self.accounts.cloud(ACCOUNT, None),
            &self.connector,
            1,
            false,
        )
        .await
    }

    /// Plan and apply; the plan and the reports.
    async fn apply(
        &self,
        compilation: &Compilation,
        log: &dyn Progress,
    ) -> (Plan, Vec<ClusterReport>) {
        let plan = self.plan(compilation).await;
        assert_eq!(plan.failures, vec![], "the plan failed");
        let fleet = compilation.fleet.as_ref().unwrap();
        let targets: Vec<Target> = plan
            .clusters
            .iter()
            .map(|c| Target {
                plan: c,
                artifacts: compilation
                    .artifacts
                    .iter()
                    .find(|a| a.cluster == c.cluster)
                    .unwrap(),
                cluster: fleet.cluster(&c.cluster).unwrap(),
            })
            .collect();
        let mut options = Options::new("e2e test".into());
        options.lock.wait = Duration::from_secs(5);
        let reports = apply::apply_fleet(&targets, &[], &self.world(), &options, log).await;
        (plan, reports)
    }
}

/// flotilla's AWS backend, with moto's fake credentials.
fn cloud(url: &str) -> AwsCloud {
    AwsCloud::new(Some(url.to_string()))
        .with_timeouts(Timeouts::with_call_deadline(Duration::from_secs(20)))
        .with_credentials(aws_sdk_sts::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
}

fn write_fleet(dir: &Path, source: &str) -> PathBuf {
    let fleet = dir.join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(fleet.join("main.flt"), source).unwrap();
    fleet
}

fn step_names(plan: &Plan) -> Vec<String> {
    plan.clusters
        .iter()
        .flat_map(|c| c.steps.iter().map(apply::describe))
        .collect()
}

async fn stack_status(aws: &aws_config::SdkConfig, name: &str) -> String {
    let cfn = aws_sdk_cloudformation::Client::new(aws);
    let out = cfn.describe_stacks().stack_name(name).send().await.unwrap();
    out.stacks()[0].stack_status().unwrap().as_str().to_string()
}

/// The pool's Auto Scaling group: sizes, tags and instance ids.
async fn pool_group(aws: &aws_config::SdkConfig) -> aws_sdk_autoscaling::types::AutoScalingGroup {
    let autoscaling = aws_sdk_autoscaling::Client::new(aws);
    let groups = autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    groups
        .auto_scaling_groups()
        .iter()
        .find(|g| {
            g.tags()
                .iter()
                .any(|t| t.key() == Some("flotilla.io/node-pool") && t.value() == Some("workers"))
        })
        .cloned()
        .expect("the workers pool's group")
}

fn nodes(api: &LoopbackApi) -> Vec<Value> {
    api.list("v1", "Node", None)
}

fn hashes(nodes: &[Value]) -> BTreeSet<String> {
    nodes
        .iter()
        .map(|n| {
            n["metadata"]["labels"]["flotilla.io/config-hash"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect()
}

fn pool_hash(compilation: &Compilation) -> String {
    compilation.artifacts[0].summary.node_pools[0]
        .config_hash
        .clone()
}

/// A user's workload: a Deployment of three replicas whose budget lets one go at a time.
async fn deploy_web(api: &LoopbackApi) {
    let client = api.client().unwrap();
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    for object in [
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            },
        }),
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        }),
    ] {
        let (group, version) = object["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .unwrap();
        let gvk =
            kube::api::GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
        let (resource, _) = discovery.resolve_gvk(&gvk).unwrap();
        let objects: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &resource);
        objects
            .patch(
                object["metadata"]["name"].as_str().unwrap(),
                &PatchParams::apply("kubectl"),
                &Patch::Apply(&object),
            )
            .await
            .unwrap();
    }
}

fn ready_pods(api: &LoopbackApi, app: &str) -> usize {
    api.list("v1", "Pod", Some("default"))
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

fn assert_done(reports: &[ClusterReport], log: &Log) {
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].outcome,
        Outcome::Done,
        "{:#?}\nlog:\n{}",
        reports[0],
        log.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_change_the_instance_type_rolls_every_node_within_the_budget() {
    let env = Env::start().await;
    let dir = TempDir::new("apply-e2e");
    let set = config_set(&dir);
    let fleet = write_fleet(&dir, &fleet_source("m5.large"));
    let kubelet = Kubelet::start(
        CLUSTER,
        Arc::clone(&env.api),
        &env.aws,
        PodStartup::UntilAnEvictionIsRefused {
            after: Duration::from_millis(1500),
            at_most: Duration::from_secs(30),
        },
    );

    // ---- v1: a new cluster ----
    let v1 = compile_fleet(&fleet, &set);
    let log = Log::default();
    let (plan, reports) = env.apply(&v1, &log).await;
    assert!(plan.clusters[0].creation);
    assert_done(&reports, &log);
    for stack in ["prod-1-etcd", "prod-1", "prod-1-node-pool-workers"] {
        assert_eq!(
            stack_status(&env.aws, stack).await,
            "CREATE_COMPLETE",
            "{stack}"
        );
    }
    let coredns = env
        .api
        .get("v1", "ConfigMap", Some("kube-system"), "coredns")
        .expect("the manifests were applied");
    assert_eq!(
        coredns["metadata"]["managedFields"][0]["manager"], "flotilla",
        "applied server-side as flotilla"
    );
    let v1_hash = pool_hash(&v1);
    let first = nodes(&env.api);
    assert_eq!(first.len(), 3, "the pool's minimum came up: {first:#?}");
    assert_eq!(hashes(&first), BTreeSet::from([v1_hash.clone()]));
    let v1_group = pool_group(&env.aws).await;
    let v1_instances = instance_ids(&v1_group);

    // Planned again, v1 has nothing left to do.
    assert_eq!(step_names(&env.plan(&v1).await), Vec::<String>::new());

    // ---- between the versions: a workload with a budget, and objects to delete ----
    deploy_web(&env.api).await;
    Kubelet::wait_for(
        &env.api,
        "three Ready web pods",
        Duration::from_secs(20),
        |api| ready_pods(api, "web") == 3,
    )
    .await;
    env.api
        .insert(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                     "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}}}}}))
        .unwrap();
    env.api
        .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "coredns-legacy", "namespace": "kube-system"}}))
        .unwrap();
    env.api.clear_requests();

    // ---- v2: another instance type ----
    let fleet = write_fleet(&dir, &fleet_source("m5.xlarge"));
    let v2 = compile_fleet(&fleet, &set);
    let v2_hash = pool_hash(&v2);
    assert_ne!(v1_hash, v2_hash);
    let log = Log::default();
    let (plan, reports) = env.apply(&v2, &log).await;
    assert_eq!(
        step_names(&plan),
        [
            "delete Deployment kube-system/kube-dns (pre-apply)",
            "update stack prod-1-node-pool-workers",
            "delete ConfigMap kube-system/coredns-legacy (post-apply)",
            "roll node pool workers (3 of 3 nodes)",
        ]
    );
    assert_done(&reports, &log);
    // Shown when an assertion below fails.
    eprintln!("apply v2:\n{}", log.text());
    // The last evicted pod's replacement comes up after the roll.
    Kubelet::wait_for(
        &env.api,
        "three Ready web pods",
        Duration::from_secs(20),
        |api| ready_pods(api, "web") == 3,
    )
    .await;
    let observed = kubelet.stop().await;
    assert_eq!(observed.errors, Vec::<String>::new(), "the harness failed");

    assert_eq!(
        stack_status(&env.aws, "prod-1-node-pool-workers").await,
        "UPDATE_COMPLETE"
    );
    // Every node replaced: new instances only, each with the new hash.
    let last = nodes(&env.api);
    assert_eq!(hashes(&last), BTreeSet::from([v2_hash]), "{last:#?}");
    assert_eq!(last.len(), 3);
    let v2_group = pool_group(&env.aws).await;
    let v2_instances = instance_ids(&v2_group);
    assert!(v2_instances.is_disjoint(&v1_instances), "{v2_instances:?}");
    assert!(observed.removed.is_superset(&v1_instances));
    // Sizes restored, the roll's bookkeeping tags gone.
    assert_eq!(
        (
            v2_group.min_size(),
            v2_group.desired_capacity(),
            v2_group.max_size()
        ),
        (Some(3), Some(3), Some(6))
    );
    assert!(
        v2_group
            .tags()
            .iter()
            .all(|t| !t.key().unwrap().starts_with("flotilla.io/roll-")),
        "{:?}",
        v2_group.tags()
    );
    // Deletions done, before and after the manifests.
    assert!(
        env.api
            .get("apps/v1", "Deployment", Some("kube-system"), "kube-dns")
            .is_none()
    );
    assert!(
        env.api
            .get("v1", "ConfigMap", Some("kube-system"), "coredns-legacy")
            .is_none()
    );

    // The budget held: pods left only through the Eviction API, never fewer than
    // two web pods Ready, and the budget did refuse evictions on the way.
    let requests = env.api.requests();
    let evictions: Vec<u16> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .map(|r| r.status)
        .collect();
    assert!(
        requests
            .iter()
            .all(|r| !(r.method == "DELETE" && r.path.contains("/pods/"))),
        "no pod was deleted around its budget"
    );
    assert!(
        evictions.iter().filter(|s| **s == 201).count() >= 3,
        "{evictions:?}\n{}",
        log.text()
    );
    assert!(evictions.contains(&429), "{evictions:?}\n{}", log.text());
    assert!(
        evictions.iter().all(|s| *s == 201 || *s == 429),
        "{evictions:?}"
    );
    assert_eq!(
        observed.min_ready.get("default/web"),
        Some(&2),
        "{observed:?}"
    );
    drop(env.moto);
}

/// A cluster applied at v1 (m5.large) with the web workload Ready on it, and the
/// harness looking after it: where the read-fault tests start from.
struct RunningV1 {
    dir: TempDir,
    set: PathBuf,
    kubelet: Kubelet,
    v1: Compilation,
    v1_instances: BTreeSet<String>,
}

async fn running_v1(env: &Env, name: &str) -> RunningV1 {
    let dir = TempDir::new(name);
    let set = config_set(&dir);
    let fleet = write_fleet(&dir, &fleet_source("m5.large"));
    let kubelet = Kubelet::start(
        CLUSTER,
        Arc::clone(&env.api),
        &env.aws,
        PodStartup::After(Duration::from_millis(500)),
    );
    let v1 = compile_fleet(&fleet, &set);
    let log = Log::default();
    assert_done(&env.apply(&v1, &log).await.1, &log);
    deploy_web(&env.api).await;
    Kubelet::wait_for(
        &env.api,
        "three Ready web pods",
        Duration::from_secs(20),
        |api| ready_pods(api, "web") == 3,
    )
    .await;
    let v1_instances = instance_ids(&pool_group(&env.aws).await);
    RunningV1 {
        dir,
        set,
        kubelet,
        v1,
        v1_instances,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_failing_during_the_roll_fails_the_cluster_and_removes_nothing() {
    let env = Env::start().await;
    let RunningV1 {
        dir,
        set,
        kubelet,
        v1,
        v1_instances,
    } = running_v1(&env, "apply-e2e-read-fault").await;
    let v1_hash = pool_hash(&v1);

    // From now on every read of pods fails: the planned roll cannot see what a
    // node runs, so it must not drain or terminate anything on that basis.
    env.api
        .add_failure(Failure::new(500).method("GET").path_prefix("/api/v1/pods"));
    let fleet = write_fleet(&dir, &fleet_source("m5.xlarge"));
    let v2 = compile_fleet(&fleet, &set);
    let log = Log::default();
    let (plan, reports) = env.apply(&v2, &log).await;
    assert!(step_names(&plan).contains(&"roll node pool workers (3 of 3 nodes)".to_string()));
    let observed = kubelet.stop().await;
    assert_eq!(observed.errors, Vec::<String>::new(), "the harness failed");

    // The cluster failed (the CLI exits 1 on it), saying which read failed.
    assert_eq!(reports[0].outcome, Outcome::Failed, "{}", log.text());
    let failed = reports[0].failed.clone().unwrap();
    assert!(
        failed.starts_with("roll node pool workers")
            && failed.contains("LIST pods on node")
            && failed.contains("500"),
        "{failed}"
    );
    // No node terminated, no pod evicted or deleted, no node deleted, no stack deleted,
    // and the group is not below its size.
    let group = pool_group(&env.aws).await;
    assert!(instance_ids(&group).is_superset(&v1_instances));
    assert_eq!(observed.removed, BTreeSet::new());
    let old_nodes = nodes(&env.api)
        .iter()
        .filter(|n| n["metadata"]["labels"]["flotilla.io/config-hash"] == v1_hash.as_str())
        .count();
    assert_eq!(old_nodes, 3);
    assert!(group.desired_capacity() >= Some(3) && group.min_size() >= Some(3));
    assert!(
        env.api.requests().iter().all(|r| !(r.method == "DELETE"
            && (r.path.contains("/pods") || r.path.contains("/nodes")))
            && !r.path.ends_with("/eviction")),
        "no pod or node was deleted or evicted"
    );
    for stack in ["prod-1-etcd", "prod-1", "prod-1-node-pool-workers"] {
        assert!(
            stack_status(&env.aws, stack).await.ends_with("_COMPLETE")
                && !stack_status(&env.aws, stack).await.starts_with("DELETE"),
            "{stack}"
        );
    }
    assert_eq!(ready_pods(&env.api, "web"), 3);
}

/// Logs like [`Log`]; from the first note containing `trigger` on, the proxy fails
/// every request of `operation`.
struct FailFrom<'a> {
    log: Log,
    trigger: &'static str,
    operation: &'static str,
    proxy: &'a FaultProxy,
    /// How many requests the proxy had seen when the fault began.
    armed_at: Mutex<Option<usize>>,
}

impl<'a> FailFrom<'a> {
    fn new(proxy: &'a FaultProxy, trigger: &'static str, operation: &'static str) -> Self {
        FailFrom {
            log: Log::default(),
            trigger,
            operation,
            proxy,
            armed_at: Mutex::new(None),
        }
    }

    fn armed_at(&self) -> Option<usize> {
        *self.armed_at.lock().unwrap()
    }
}

impl Progress for FailFrom<'_> {
    fn step(&self, cluster: &str, step: &str) {
        self.log.step(cluster, step);
    }
    fn waiting(&self, _: &str, _: &str, _: i64, _: i64) {}
    fn note(&self, cluster: &str, message: &str) {
        self.log.note(cluster, message);
        let mut armed = self.armed_at.lock().unwrap();
        if armed.is_none() && message.contains(self.trigger) {
            *armed = Some(self.proxy.seen().len());
            self.proxy.fail(self.operation, Fault::internal_error());
        }
    }
    fn done(&self, _: &str, _: &str) {}
}

/// What AWS must never be asked while flotilla cannot see the world: the calls that
/// remove instances, capacity or stacks.
const DESTRUCTIVE: [&str; 6] = [
    "TerminateInstanceInAutoScalingGroup",
    "TerminateInstances",
    "UpdateAutoScalingGroup",
    "SetDesiredCapacity",
    "DeleteStack",
    "DeleteAutoScalingGroup",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_read_failing_fails_the_plan_and_stops_a_roll_without_removing_anything() {
    let env = Env::start().await;
    let RunningV1 {
        dir,
        set,
        kubelet,
        v1: _,
        v1_instances,
    } = running_v1(&env, "apply-e2e-aws-read-fault").await;
    let fleet = write_fleet(&dir, &fleet_source("m5.xlarge"));
    let v2 = compile_fleet(&fleet, &set);

    // Plan: whichever AWS read fails, the cluster fails; nothing is planned from a
    // partial view (a missing stack read as "create", a missing group as "remove").
    for (operation, what) in [
        ("DescribeStacks", "describe stack"),
        ("GetTemplate", "template"),
        (
            "DescribeAutoScalingGroups",
            "describe auto scaling groups of prod-1",
        ),
    ] {
        env.proxy.fail(operation, Fault::internal_error());
        let plan = env.plan(&v2).await;
        env.proxy.heal();
        assert_eq!(plan.clusters.len(), 0, "{operation}: {plan:#?}");
        assert_eq!(plan.failures.len(), 1, "{operation}");
        let error = plan.failures[0].error.to_string();
        assert!(
            error.contains(what) && error.contains("InternalFailure"),
            "{operation}: {error}"
        );
    }

    // Apply: the stack parameters' network lookup fails. The cluster fails saying so,
    // not with a parameter that looks missing, and the stack is left as it was.
    env.proxy.fail("DescribeSubnets", Fault::internal_error());
    let log = Log::default();
    let (_, reports) = env.apply(&v2, &log).await;
    env.proxy.heal();
    assert_eq!(reports[0].outcome, Outcome::Failed, "{}", log.text());
    let failed = reports[0].failed.clone().unwrap();
    assert!(
        failed.contains("look up the network tagged") && failed.contains("HTTP 500"),
        "{failed}"
    );
    assert_eq!(
        stack_status(&env.aws, "prod-1-node-pool-workers").await,
        "CREATE_COMPLETE"
    );

    // Apply: once the roll has replaced its first node, every look at the groups
    // fails. The roll must stop there: no further termination, the group's sizes
    // left as they are (never lowered on a failed read), no stack deleted.
    env.proxy.clear_seen();
    let progress = FailFrom::new(&env.proxy, "terminated ", "DescribeAutoScalingGroups");
    let (plan, reports) = env.apply(&v2, &progress).await;
    assert!(step_names(&plan).contains(&"roll node pool workers (3 of 3 nodes)".to_string()));
    let observed = kubelet.stop().await;
    assert_eq!(observed.errors, Vec::<String>::new(), "the harness failed");

    let log = progress.log.text();
    let armed = progress
        .armed_at()
        .unwrap_or_else(|| panic!("the roll terminated no node:\n{log}"));
    assert_eq!(reports[0].outcome, Outcome::Failed, "{log}");
    let failed = reports[0].failed.clone().unwrap();
    assert!(
        failed.starts_with("roll node pool workers")
            && failed.contains("describe auto scaling groups of prod-1")
            && failed.contains("InternalFailure"),
        "{failed}"
    );
    let after: Vec<String> = env.proxy.seen()[armed..].to_vec();
    assert!(
        after.iter().any(|op| op == "DescribeAutoScalingGroups"),
        "the roll looked again: {after:?}"
    );
    for operation in DESTRUCTIVE {
        assert!(
            !after.iter().any(|op| op == operation),
            "{operation} after the read failed: {after:?}\n{log}"
        );
    }
    let group = pool_group(&env.aws).await;
    let gone: Vec<String> = v1_instances
        .difference(&instance_ids(&group))
        .cloned()
        .collect();
    assert_eq!(
        gone.len(),
        1,
        "only the node replaced before the fault: {gone:?}\n{log}"
    );
    assert!(
        group.desired_capacity() >= Some(3) && group.min_size() >= Some(3),
        "{group:?}"
    );
    for stack in ["prod-1-etcd", "prod-1", "prod-1-node-pool-workers"] {
        let status = stack_status(&env.aws, stack).await;
        assert!(
            status.ends_with("_COMPLETE") && !status.starts_with("DELETE"),
            "{stack}: {status}"
        );
    }
}

fn instance_ids(group: &aws_sdk_autoscaling::types::AutoScalingGroup) -> BTreeSet<String> {
    group
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect()
}

// ---- Templates over CloudFormation's inline limit ----

const BUCKET: &str = "flotilla-templates";

/// The node pool stack grows past 51,200 bytes of compact JSON: a Metadata section of
/// notes (CloudFormation keeps Metadata without acting on it).
fn pad_pool_stack(set: &Path) {
    let padding = "Metadata:\n  Notes:\n{% for i in range(700) %}    - \"note {{ i }}: carried to make this stack larger than CloudFormation takes inline\"\n{% endfor %}";
    std::fs::write(
        set.join("node-pools/worker-default/stack.yaml.j2"),
        format!("{padding}{POOL_STACK}"),
    )
    .unwrap();
}

/// `source` with the cluster's `template_bucket` set.
fn with_bucket(source: &str, bucket: &str) -> String {
    source.replacen(
        "  region = ",
        &format!("  template_bucket = \"{bucket}\"\n  region = "),
        1,
    )
}

/// The pool stack's template as CloudFormation is sent it: compact JSON.
fn pool_template_body(compilation: &Compilation) -> String {
    let artifact = &compilation.artifacts[0].files["cloudformation/node-pool-workers.json"];
    serde_json::to_string(&serde_json::from_str::<Value>(artifact).unwrap()).unwrap()
}

/// moto's S3, addressed by path as a loopback endpoint has no per-bucket host names.
fn s3(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(true)
            .build(),
    )
}

/// Keys of every object in the bucket.
async fn bucket_keys(aws: &aws_config::SdkConfig) -> Vec<String> {
    let listed = s3(aws)
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_stack_over_the_inline_limit_is_applied_through_the_clusters_bucket() {
    use sha2::Digest as _;
    let env = Env::start().await;
    s3(&env.aws)
        .create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuCentral1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = TempDir::new("apply-e2e-s3");
    let set = config_set(&dir);
    pad_pool_stack(&set);
    let fleet = write_fleet(&dir, &with_bucket(&fleet_source("m5.large"), BUCKET));
    let kubelet = Kubelet::start(
        CLUSTER,
        Arc::clone(&env.api),
        &env.aws,
        PodStartup::After(Duration::from_millis(500)),
    );

    let v1 = compile_fleet(&fleet, &set);
    let body = pool_template_body(&v1);
    assert!(body.len() > 51_200, "{} bytes", body.len());
    let log = Log::default();
    let (plan, reports) = env.apply(&v1, &log).await;
    assert!(plan.clusters[0].creation);
    assert_done(&reports, &log);
    for stack in ["prod-1-etcd", "prod-1", "prod-1-node-pool-workers"] {
        assert_eq!(
            stack_status(&env.aws, stack).await,
            "CREATE_COMPLETE",
            "{stack}"
        );
    }
    // Only the oversized template went through the bucket, under its digest.
    let digest: String = sha2::Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = format!("flotilla/{CLUSTER}/prod-1-node-pool-workers/{digest}.json");
    assert_eq!(bucket_keys(&env.aws).await, vec![key.as_str()]);
    let object = s3(&env.aws)
        .get_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(String::from_utf8_lossy(&stored), body);
    // CloudFormation created the stack from that object: it has the padding.
    let cfn = aws_sdk_cloudformation::Client::new(&env.aws);
    let template = cfn
        .get_template()
        .stack_name("prod-1-node-pool-workers")
        .send()
        .await
        .unwrap();
    assert!(
        template.template_body().unwrap().contains("note 699:"),
        "the stack's template is the uploaded one"
    );

    // Planned again, nothing to do; planned with another instance type, the preview's
    // change set reads the new template from the bucket too.
    assert_eq!(step_names(&env.plan(&v1).await), Vec::<String>::new());
    let fleet = write_fleet(&dir, &with_bucket(&fleet_source("m5.xlarge"), BUCKET));
    let v2 = compile_fleet(&fleet, &set);
    let plan = env.plan(&v2).await;
    assert_eq!(plan.failures, vec![], "the plan failed");
    let updates: Vec<_> = plan.clusters[0]
        .steps
        .iter()
        .filter_map(|step| match step {
            flotilla::plan::Step::Stack(update) => Some(update),
            _ => None,
        })
        .collect();
    let [update] = updates.as_slice() else {
        panic!("{:#?}", plan.clusters[0].steps);
    };
    assert_eq!(update.stack, "prod-1-node-pool-workers");
    assert!(
        update
            .changes
            .iter()
            .any(|c| c.logical_id == "LaunchTemplate"),
        "{:?}",
        update.changes
    );
    assert_eq!(
        bucket_keys(&env.aws).await.len(),
        2,
        "v2's template uploaded"
    );
    let observed = kubelet.stop().await;
    assert_eq!(observed.errors, Vec::<String>::new(), "the harness failed");
}

#[test]
fn without_a_bucket_an_oversized_template_refuses_the_cluster_before_anything_is_created() {
    let moto = Moto::start();
    let dir = TempDir::new("apply-e2e-no-bucket");
    let set = config_set(&dir);
    pad_pool_stack(&set);
    let fleet = write_fleet(&dir, &fleet_source("m5.large"));
    let flotilla = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(args)
            .arg(&fleet)
            .arg("--config-set")
            .arg(&set)
            .envs(moto::aws_env(&moto.url))
            .env("KUBECONFIG", "/nonexistent")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };

    // `plan` fails the cluster before it reads anything.
    let output = flotilla(&["plan", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let message = plan["failures"][0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("prod-1-node-pool-workers (")
            && message.contains("inline limit of 51200 bytes")
            && message.contains("`template_bucket`"),
        "{message}"
    );
    assert!(!message.contains("prod-1-etcd"), "{message}");

    // `apply` refuses the cluster, names it and why, and creates nothing.
    let output = flotilla(&["apply", "--auto-approve"]);
    let summary = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        summary.contains("REFUSED") && summary.contains("`template_bucket`"),
        "{summary}"
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let aws = moto::sdk_config(&moto.url, REGION).await;
        let cfn = aws_sdk_cloudformation::Client::new(&aws);
        let listed = cfn.list_stacks().send().await.unwrap();
        assert_eq!(listed.stack_summaries(), [], "nothing created");
    });
}
