//! Plan benchmark against the local emulators: 100 clusters observed through moto
//! (CloudFormation) and the loopback Kubernetes API, with every stack and object in
//! place (so each cluster costs its describe/get-template calls, one GET and one
//! dry-run apply per object, and a node list). Setup is not timed.
//! Run (moto from `./scripts/test`'s venv):
//! `AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing cargo bench --bench plan_live`.

#[path = "../tests/support/moto.rs"]
mod moto;

use std::path::PathBuf;
use std::time::Instant;

use flotilla::compile::{ConfigSource, compile};
use flotilla::live::aws::AwsCloud;
use flotilla::plan::{ClusterTarget, KubeConnector, plan_fleet, stacks_of};
use flotilla::source::MemoryFs;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;
use kube_loopback::LoopbackApi;

const CLUSTERS: usize = 100;

fn fleet() -> MemoryFs {
    let mut text = String::from(
        "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}\n",
    );
    for c in 0..CLUSTERS {
        text.push_str(&format!(
            "cluster \"c{c:03}\" {{\n  account = \"123456789012\"\n  region = \"eu-central-1\"\n  environment = production\n  channel = stable\n  api_server_url = \"https://c{c:03}.example.org\"\n  node_pool \"w\" {{\n    instance_types = [\"m5.large\"]\n    max_size = 3\n  }}\n}}\n"
        ));
    }
    let mut fs = MemoryFs::new();
    fs.insert("fleet/main.flt", text);
    fs
}

fn main() {
    let moto = moto::Moto::start();
    // The SDK's default chain reads credentials from the environment.
    let hint: Vec<String> = moto::aws_env(&moto.url)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(
        std::env::var_os("AWS_ACCESS_KEY_ID").is_some(),
        "run with credentials in the environment (any value works with moto), e.g. {}",
        hint.join(" ")
    );
    let api = LoopbackApi::start().unwrap();
    let fixture = PathBuf::from("tests/fixtures/config-min");
    let compilation = compile(
        &fleet(),
        std::path::Path::new("fleet"),
        &ConfigSource::Dir(fixture),
        &[],
    );
    assert!(!compilation.has_errors());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = moto::sdk_config(&moto.url, "eu-central-1").await;
        let (vpc_id, subnet_id) = moto::network(&config).await;
        let cfn = aws_sdk_cloudformation::Client::new(&config);
        for a in &compilation.artifacts {
            for (name, _, artifact) in stacks_of(a) {
                let template: serde_json::Value =
                    serde_json::from_str(&a.files[&artifact]).unwrap();
                let mut request = cfn
                    .create_stack()
                    .stack_name(&name)
                    .template_body(&a.files[&artifact]);
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
            }
        }
        let client = api.client().unwrap();
        let discovery = Discovery::new(client.clone()).run().await.unwrap();
        let a = &compilation.artifacts[0];
        for text in a
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("manifests/"))
            .map(|(_, t)| t)
        {
            for doc in serde_yaml_ng::Deserializer::from_str(text) {
                let object: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
                if object.is_null() {
                    continue;
                }
                let gvk =
                    kube::api::GroupVersionKind::gvk("", "v1", object["kind"].as_str().unwrap());
                let (resource, _) = discovery.resolve_gvk(&gvk).unwrap();
                let objects: Api<DynamicObject> = Api::namespaced_with(
                    client.clone(),
                    object["metadata"]["namespace"].as_str().unwrap(),
                    &resource,
                );
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
    });
    let fleet = compilation.fleet.as_ref().unwrap();
    let targets: Vec<ClusterTarget> = compilation
        .artifacts
        .iter()
        .map(|a| ClusterTarget {
            artifacts: a,
            region: "eu-central-1".into(),
            api_server_url: fleet.cluster(&a.cluster).unwrap().api_server_url.clone(),
            blocked: None,
            registry_id: None,
            template_bucket: None,
        })
        .collect();
    let connector = KubeConnector {
        endpoints: compilation
            .artifacts
            .iter()
            .map(|a| (a.cluster.clone(), api.url()))
            .collect(),
        contexts: Default::default(),
        timeouts: Default::default(),
    };
    let cloud = AwsCloud::new(Some(moto.url.clone()));
    println!("clusters  concurrency  wall time   per cluster");
    for concurrency in [1, 8, 32] {
        let start = Instant::now();
        let plan = runtime.block_on(plan_fleet(&targets, &cloud, &connector, concurrency, false));
        let elapsed = start.elapsed();
        assert!(plan.failures.is_empty(), "{:?}", plan.failures.first());
        assert_eq!(plan.clusters.len(), CLUSTERS);
        println!(
            "{CLUSTERS:>8}  {concurrency:>11}  {:>7.2} s  {:>8.1} ms",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e3 / CLUSTERS as f64
        );
    }
}
