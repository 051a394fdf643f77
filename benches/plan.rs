//! Plan benchmark, pure part: `plan::compute` (desired artifacts vs observed state, in
//! memory) for 1,000 clusters × 60 objects, where every object exists and a tenth of
//! them differ. Run with `cargo bench --bench plan`.

use std::collections::BTreeMap;
use std::time::Instant;

use flotilla::live::{NodeState, StackState};
use flotilla::plan::{Observed, ObservedObject, ObservedStack, compute, stacks_of};
use flotilla::render::{Artifacts, PoolSummary, Summary};
use serde_json::{Value, json};

const OBJECTS: usize = 60;

fn deployment(cluster: usize, i: usize, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": format!("component-{i}"), "namespace": "kube-system", "labels": {"app": format!("component-{i}"), "cluster": cluster.to_string()}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": format!("component-{i}")}},
            "template": {
                "metadata": {"labels": {"app": format!("component-{i}")}},
                "spec": {"containers": [{
                    "name": "main",
                    "image": image,
                    "args": ["--v=2", "--port=8080"],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
                }]}
            }
        }
    })
}

fn cluster(n: usize) -> (Artifacts, Observed) {
    let id = format!("cluster-{n:04}");
    let mut files = BTreeMap::new();
    let template = json!({"Resources": {"Group": {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {"MinSize": 1, "MaxSize": 5}}}});
    for name in ["etcd", "cluster", "node-pool-workers"] {
        files.insert(
            format!("cloudformation/{name}.json"),
            serde_json::to_string_pretty(&template).unwrap(),
        );
    }
    let pools = vec![PoolSummary {
        name: "workers".into(),
        config_hash: "desired".into(),
        min_size: 3,
        max_size: 10,
    }];
    let desired = Artifacts {
        cluster: id.clone(),
        files,
        summary: Summary {
            cluster: id.clone(),
            node_pools: pools,
            ..Summary::default()
        },
    };
    let mut observed = Observed::default();
    for (name, _, _) in stacks_of(&desired) {
        let state = StackState {
            name: name.clone(),
            id: format!("arn:aws:cloudformation:eu-central-1:123456789012:stack/{name}/1"),
            status: "UPDATE_COMPLETE".into(),
            last_updated: "2026-11-01T00:00:00Z".into(),
            parameters: Vec::new(),
            tags: Vec::new(),
        };
        observed.stacks.insert(
            name,
            Some(ObservedStack {
                state,
                template: template.clone(),
            }),
        );
    }
    for i in 0..OBJECTS {
        let desired_object = deployment(n, i, "registry.example.org/component:1.2.0");
        let mut live = deployment(
            n,
            i,
            if i % 10 == 0 {
                "registry.example.org/component:1.1.0"
            } else {
                "registry.example.org/component:1.2.0"
            },
        );
        live["metadata"]["resourceVersion"] = json!(format!("{}", 1000 + i));
        live["metadata"]["managedFields"] = json!([{"manager": "flotilla", "operation": "Apply"}]);
        live["status"] = json!({"readyReplicas": 2});
        let mut dry_run = desired_object.clone();
        dry_run["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
        observed.objects.push(ObservedObject {
            artifact: format!("manifests/{i:02}-component/deployment.yaml"),
            desired: desired_object,
            live: Some(live),
            dry_run: Some(dry_run),
        });
    }
    for node in 0..6 {
        let labels = [
            ("flotilla.io/node-pool", "workers".to_string()),
            (
                "flotilla.io/config-hash",
                if node < 2 {
                    "old".into()
                } else {
                    "desired".into()
                },
            ),
            (
                "topology.kubernetes.io/zone",
                format!("eu-central-1{}", ['a', 'b', 'c'][node % 3]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        observed.nodes.push(NodeState {
            name: format!("ip-10-0-{n}-{node}"),
            labels,
            ready: true,
            unschedulable: false,
            ..Default::default()
        });
    }
    (desired, observed)
}

fn main() {
    println!("clusters  objects  compute (best of 5)  steps");
    for clusters in [100, 1000] {
        let inputs: Vec<(Artifacts, Observed)> = (0..clusters).map(cluster).collect();
        let mut steps = 0;
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                steps = inputs
                    .iter()
                    .map(|(d, o)| compute("eu-central-1", None, d, o).unwrap().steps.len())
                    .sum();
                start.elapsed()
            })
            .min()
            .unwrap_or_default();
        println!(
            "{clusters:>8}  {:>7}  {:>16.1} ms  {steps:>5}",
            clusters * OBJECTS,
            best.as_secs_f64() * 1e3
        );
    }
}
