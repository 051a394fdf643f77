use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::live::{
    ChangeSetKind, ChangeSetRequest, Cloud, ClusterApi, EvictionOutcome, GroupSize, ParameterValue,
    TemplateSource,
};

const REGION: &str = "eu-central-1";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// A node pool template shaped like the compiled ones: the hash in a tag and in the
/// userdata's `--node-labels`.
fn pool_template(hash: &str, min: i32, max: i32) -> String {
    let userdata = format!(
        "#cloud-config\nExecStart=/usr/bin/kubelet \\\n  --node-labels=flotilla.io/config-hash={hash},flotilla.io/node-pool=workers,flotilla.io/role=worker\n"
    );
    json!({
        "Parameters": { "SubnetIds": { "Type": "List<AWS::EC2::Subnet::Id>" } },
        "Resources": {
            "LaunchTemplate": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": { "LaunchTemplateData": {
                    "UserData": base64::engine::general_purpose::STANDARD.encode(userdata),
                } }
            },
            "AutoScalingGroup": {
                "Type": "AWS::AutoScaling::AutoScalingGroup",
                "Properties": {
                    "AutoScalingGroupName": "kube-1-workers",
                    "MinSize": min,
                    "MaxSize": max,
                    "LaunchTemplate": { "LaunchTemplateId": { "Ref": "LaunchTemplate" } },
                    "Tags": [
                        { "Key": "flotilla.io/cluster", "Value": "kube-1", "PropagateAtLaunch": true },
                        { "Key": "flotilla.io/node-pool", "Value": "workers", "PropagateAtLaunch": true },
                        { "Key": "flotilla.io/config-hash", "Value": hash, "PropagateAtLaunch": true },
                    ]
                }
            }
        }
    })
    .to_string()
}

fn change_set(kind: ChangeSetKind, template: String) -> ChangeSetRequest {
    ChangeSetRequest {
        stack: "kube-1-node-pool-workers".into(),
        kind,
        template: TemplateSource::Body(template),
        parameters: vec![(
            "SubnetIds".into(),
            ParameterValue::Value("subnet-1,subnet-2".into()),
        )],
        tags: Vec::new(),
    }
}

async fn deploy(sim: &SimHandle, kind: ChangeSetKind, template: String) {
    let prepared = sim
        .create_change_set(REGION, &change_set(kind, template))
        .await
        .unwrap();
    assert!(!prepared.empty);
    sim.execute_change_set(REGION, "kube-1-node-pool-workers", &prepared.id)
        .await
        .unwrap();
}

#[test]
fn a_stack_creates_its_group_and_nodes_join_with_the_userdata_labels_after_booting() {
    let sim = SimHandle::new(SimWorld::new(1, 0));
    block_on(async {
        deploy(&sim, ChangeSetKind::Create, pool_template("v1", 4, 6)).await;
        let stack = sim
            .describe_stack(REGION, "kube-1-node-pool-workers")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stack.status, "CREATE_IN_PROGRESS");
        sim.sleep(Duration::from_secs(60)).await;
        let stack = sim
            .describe_stack(REGION, "kube-1-node-pool-workers")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stack.status, "CREATE_COMPLETE");
        let groups = sim.auto_scaling_groups(REGION, "kube-1").await.unwrap();
        assert_eq!(groups.len(), 1);
        let group = &groups[0];
        assert_eq!(
            (group.min_size, group.desired_capacity, group.max_size),
            (4, 4, 6)
        );
        assert!(
            group
                .instances
                .iter()
                .all(|i| i.lifecycle_state == "Pending")
        );
        // Two subnets: balanced over two zones.
        let zones: Vec<&str> = group
            .instances
            .iter()
            .map(|i| i.availability_zone.as_str())
            .collect();
        assert_eq!(
            zones.iter().filter(|z| **z == "eu-central-1a").count(),
            2,
            "{zones:?}"
        );
        assert_eq!(
            zones.iter().filter(|z| **z == "eu-central-1b").count(),
            2,
            "{zones:?}"
        );
        let api = sim.cluster("kube-1");
        assert!(
            api.nodes("").await.unwrap().is_empty(),
            "nodes join after booting"
        );

        sim.sleep(Duration::from_secs(240)).await;
        let nodes = api.nodes("flotilla.io/node-pool=workers").await.unwrap();
        assert_eq!(nodes.len(), 4);
        for node in &nodes {
            assert!(node.ready);
            assert_eq!(node.labels["flotilla.io/config-hash"], "v1");
            assert_eq!(node.labels["flotilla.io/role"], "worker");
            let zone = &node.labels["topology.kubernetes.io/zone"];
            let id = node.instance_id().unwrap();
            assert_eq!(node.provider_id, format!("aws:///{zone}/{id}"));
        }
        let groups = sim.auto_scaling_groups(REGION, "kube-1").await.unwrap();
        assert!(
            groups[0]
                .instances
                .iter()
                .all(|i| i.lifecycle_state == "InService")
        );
    });
}

#[test]
fn an_update_changes_what_new_instances_boot_with_and_running_ones_keep_theirs() {
    let sim = SimHandle::new(SimWorld::new(1, 0));
    block_on(async {
        deploy(&sim, ChangeSetKind::Create, pool_template("v1", 2, 4)).await;
        sim.sleep(Duration::from_secs(400)).await;
        let view = sim
            .preview_update(
                REGION,
                "kube-1-node-pool-workers",
                &TemplateSource::Body(pool_template("v2", 2, 4)),
                &[],
            )
            .await
            .unwrap();
        let modified: Vec<(&str, &str)> = view
            .changes
            .iter()
            .map(|c| (c.logical_id.as_str(), c.action.as_str()))
            .collect();
        assert_eq!(
            modified,
            [("AutoScalingGroup", "Modify"), ("LaunchTemplate", "Modify")]
        );
        deploy(&sim, ChangeSetKind::Update, pool_template("v2", 2, 4)).await;
        sim.sleep(Duration::from_secs(60)).await;
        let group = sim
            .auto_scaling_groups(REGION, "kube-1")
            .await
            .unwrap()
            .remove(0);
        sim.set_group_size(
            REGION,
            &group.name,
            &GroupSize {
                min: 2,
                max: 4,
                desired: 3,
            },
        )
        .await
        .unwrap();
        sim.sleep(Duration::from_secs(300)).await;
        let nodes = sim.cluster("kube-1").nodes("").await.unwrap();
        let mut hashes: Vec<&str> = nodes
            .iter()
            .map(|n| n.labels[HASH_LABEL].as_str())
            .collect();
        hashes.sort();
        assert_eq!(hashes, ["v1", "v1", "v2"]);
    });
}

#[test]
fn an_update_with_a_rollback_fault_rolls_back_and_says_why() {
    let mut world = SimWorld::new(1, 0);
    world
        .faults
        .rollback_updates
        .insert("kube-1-node-pool-workers".into());
    let sim = SimHandle::new(world);
    block_on(async {
        deploy(&sim, ChangeSetKind::Create, pool_template("v1", 1, 2)).await;
        sim.sleep(Duration::from_secs(60)).await;
        deploy(&sim, ChangeSetKind::Update, pool_template("v2", 1, 2)).await;
        sim.sleep(Duration::from_secs(60)).await;
        let stack = sim
            .describe_stack(REGION, "kube-1-node-pool-workers")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stack.status, "UPDATE_ROLLBACK_COMPLETE");
        let events = sim
            .stack_events(REGION, "kube-1-node-pool-workers", 10)
            .await
            .unwrap();
        assert_eq!(events[0].status, "UPDATE_ROLLBACK_COMPLETE", "newest first");
        let failed = events.iter().find(|e| e.status == "UPDATE_FAILED").unwrap();
        assert!(failed.reason.as_deref().unwrap().contains("simulated"));
        let template = sim
            .get_template(REGION, "kube-1-node-pool-workers")
            .await
            .unwrap();
        assert!(
            template.to_string().contains("\"v1\""),
            "the old template stays"
        );
    });
}

#[test]
fn group_sizes_are_validated_as_aws_does_and_unchanged_updates_are_empty() {
    let sim = SimHandle::new(SimWorld::new(1, 0));
    block_on(async {
        deploy(&sim, ChangeSetKind::Create, pool_template("v1", 1, 2)).await;
        sim.sleep(Duration::from_secs(60)).await;
        let error = sim
            .set_group_size(
                REGION,
                "kube-1-workers",
                &GroupSize {
                    min: 1,
                    max: 2,
                    desired: 3,
                },
            )
            .await
            .unwrap_err();
        assert!(error.message.contains("must be between"), "{error}");
        assert!(!error.retryable);
        let prepared = sim
            .create_change_set(
                REGION,
                &change_set(ChangeSetKind::Update, pool_template("v1", 1, 2)),
            )
            .await
            .unwrap();
        assert!(prepared.empty);
        let error = sim
            .create_change_set(
                REGION,
                &change_set(ChangeSetKind::Create, pool_template("v1", 1, 2)),
            )
            .await
            .unwrap_err();
        assert!(error.message.contains("already exists"), "{error}");
        // At min size, terminating with decrement is refused; without, it is replaced.
        let group = sim
            .auto_scaling_groups(REGION, "kube-1")
            .await
            .unwrap()
            .remove(0);
        let id = group.instances[0].id.clone();
        assert!(sim.terminate_instance(REGION, &id, true).await.is_err());
        sim.terminate_instance(REGION, &id, false).await.unwrap();
        let group = sim
            .auto_scaling_groups(REGION, "kube-1")
            .await
            .unwrap()
            .remove(0);
        assert_eq!(group.instances.len(), 1);
        assert_ne!(group.instances[0].id, id);
    });
}

fn world_with_pool(size: i32) -> SimWorld {
    let mut world = SimWorld::new(3, 0);
    world.settings.mirror_pods = true;
    world.add_group(
        REGION,
        &PoolDescription {
            name: "workers".into(),
            size,
            max: Some(size + 3),
            ..PoolDescription::default()
        },
        "kube-1",
    );
    world
}

#[test]
fn evictions_follow_the_disruption_budget_and_controllers_replace_pods() {
    let mut world = world_with_pool(3);
    world.add_workload(
        "kube-1",
        WorkloadSpec {
            namespace: "default".into(),
            name: "web".into(),
            kind: WorkloadKind::Deployment,
            replicas: 3,
            labels: BTreeMap::new(),
            pool: Some("workers".into()),
        },
    );
    world.add_pdb(
        "kube-1",
        PdbSpec {
            namespace: "default".into(),
            name: "web".into(),
            selector: BTreeMap::from([("app".into(), "web".into())]),
            min_available: None,
            max_unavailable: Some(1.into()),
        },
    );
    let sim = SimHandle::new(world);
    let api = sim.cluster("kube-1");
    block_on(async {
        sim.sleep(Duration::from_secs(30)).await;
        let pdb = api.pdbs().await.unwrap().remove(0);
        assert_eq!(
            (
                pdb.current_healthy,
                pdb.desired_healthy,
                pdb.disruptions_allowed
            ),
            (3, 2, 1)
        );
        let web: Vec<_> = sim.with(|w| {
            w.clusters["kube-1"]
                .pods()
                .values()
                .filter(|p| p.owner == "web")
                .map(|p| p.name.clone())
                .collect()
        });
        assert_eq!(
            api.evict("default", &web[0]).await.unwrap(),
            EvictionOutcome::Evicted
        );
        assert!(matches!(
            api.evict("default", &web[1]).await.unwrap(),
            EvictionOutcome::Blocked(_)
        ));
        assert_eq!(
            api.evict("default", "nope").await.unwrap(),
            EvictionOutcome::Gone
        );
        // The replacement becomes Ready after its startup delay; then one more may go.
        sim.sleep(Duration::from_secs(20)).await;
        assert_eq!(
            api.evict("default", &web[1]).await.unwrap(),
            EvictionOutcome::Evicted
        );
        let node = sim.with(|w| w.nodes("kube-1")[0].name.clone());
        let pods = api.pods_on_node(&node).await.unwrap();
        assert!(
            pods.iter().any(|p| p.mirror),
            "every node runs a mirror pod"
        );
    });
}

#[test]
fn cordoned_nodes_get_no_pods_and_statefulset_pods_stay_in_their_zone() {
    let mut world = world_with_pool(3);
    world.add_workload(
        "kube-1",
        WorkloadSpec {
            namespace: "default".into(),
            name: "db".into(),
            kind: WorkloadKind::StatefulSet,
            replicas: 1,
            labels: BTreeMap::new(),
            pool: None,
        },
    );
    let sim = SimHandle::new(world);
    let api = sim.cluster("kube-1");
    block_on(async {
        let (home, zone) = sim.with(|w| {
            let c = &w.clusters["kube-1"];
            let node = c.pods()["default/db-0"].node.clone().unwrap();
            (node.clone(), c.nodes[&node].labels[ZONE_LABEL].clone())
        });
        api.patch_node(&home, &json!({ "spec": { "unschedulable": true } }))
            .await
            .unwrap();
        assert_eq!(
            api.evict("default", "db-0").await.unwrap(),
            EvictionOutcome::Evicted
        );
        sim.sleep(Duration::from_secs(1)).await;
        // The only node in its zone is cordoned: the pod waits, Pending.
        let node = sim.with(|w| w.clusters["kube-1"].pods()["default/db-0"].node.clone());
        assert_eq!(node, None, "zone {zone}");
        api.patch_node(&home, &json!({ "spec": { "unschedulable": false } }))
            .await
            .unwrap();
        let node = sim.with(|w| w.clusters["kube-1"].pods()["default/db-0"].node.clone());
        assert_eq!(node, Some(home));
    });
}

#[test]
fn node_patches_merge_labels_annotations_and_taints() {
    let sim = SimHandle::new(world_with_pool(1));
    let api = sim.cluster("kube-1");
    block_on(async {
        let node = api.nodes("").await.unwrap().remove(0);
        let patch = json!({
            "metadata": { "labels": { "a": "1" }, "annotations": { "b": "2" } },
            "spec": { "taints": [{ "key": "k", "effect": "PreferNoSchedule" }] },
        });
        api.patch_node(&node.name, &patch).await.unwrap();
        let patched = api.nodes("a=1").await.unwrap().remove(0);
        assert_eq!(patched.labels[POOL_LABEL], "workers", "other labels stay");
        assert_eq!(patched.annotations["b"], "2");
        assert_eq!(patched.taints[0].effect, "PreferNoSchedule");
        assert!(api.nodes("a!=1").await.unwrap().is_empty());
        assert!(api.patch_node("missing", &patch).await.is_err());
    });
}

#[test]
fn injected_faults_are_retryable_errors_and_the_same_seed_gives_the_same_world() {
    let run = |seed: u64| {
        let mut world = world_with_pool(2);
        world.rng = seed;
        world.faults.api_error_rate = 0.5;
        let sim = SimHandle::new(world);
        block_on(async {
            let mut outcomes = Vec::new();
            for _ in 0..20 {
                outcomes.push(match sim.auto_scaling_groups(REGION, "kube-1").await {
                    Ok(_) => None,
                    Err(e) => {
                        assert!(e.retryable, "{e}");
                        Some(e.message)
                    }
                });
            }
            outcomes
        })
    };
    let first = run(9);
    assert_eq!(first, run(9));
    assert!(first.iter().any(Option::is_some) && first.iter().any(Option::is_none));
}

#[test]
fn the_kill_switch_fails_every_call_after_k_mutations() {
    let mut world = world_with_pool(2);
    world.faults.kill_after_mutations = Some(1);
    let sim = SimHandle::new(world);
    block_on(async {
        let tags = [("x".to_string(), "y".to_string())];
        sim.set_group_tags(REGION, "kube-1-workers", &tags)
            .await
            .unwrap();
        let error = sim.auto_scaling_groups(REGION, "kube-1").await.unwrap_err();
        assert!(
            !error.retryable && error.message.contains("killed"),
            "{error}"
        );
    });
}

#[test]
fn objects_are_created_once_and_replaced_only_at_their_version() {
    let sim = SimHandle::new(world_with_pool(1));
    let api = sim.cluster("kube-1");
    block_on(async {
        let lock = json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "lock", "namespace": "kube-system" }, "data": { "holder": "a" } });
        let created = api.create(&lock).await.unwrap().unwrap();
        assert_eq!(api.create(&lock).await.unwrap(), None);
        let mut next = created.clone();
        next["data"]["holder"] = Value::from("b");
        assert!(api.replace(&next).await.unwrap().is_some());
        assert_eq!(
            api.replace(&next).await.unwrap(),
            None,
            "a stale version loses"
        );
        let found = api
            .find(
                "ConfigMap",
                Some("kube-system"),
                &crate::live::Selection::Name("lock".into()),
            )
            .await
            .unwrap();
        assert_eq!(found[0]["data"]["holder"], "b");
    });
}

#[test]
fn a_description_with_a_wrong_field_says_where() {
    let error = WorldDescription::parse("world.yaml", "seed: 1\nclusters:\n  k:\n    regoin: x\n")
        .unwrap_err();
    assert_eq!((error.line, error.column), (4, 5), "{error}");
    assert!(error.to_string().starts_with("world.yaml:4:5:"), "{error}");
    let text = "settings: { boot_seconds: 60 }\nclusters:\n  k:\n    region: eu-central-1\n    pools: [{ name: w, size: 4, zones: 2 }]\n    workloads: [{ name: web, kind: Deployment, replicas: 8 }]\n";
    let world = WorldDescription::parse("world.yaml", text).unwrap().build();
    assert_eq!(world.nodes("k").len(), 4);
    assert_eq!(
        world.clusters["k"]
            .pods()
            .values()
            .filter(|p| p.owner == "web")
            .count(),
        8
    );
    let round_trip: SimWorld =
        serde_json::from_str(&serde_json::to_string(&world).unwrap()).unwrap();
    assert_eq!(round_trip.nodes("k").len(), 4);
}

#[test]
fn budgets_in_percent_round_up_as_the_disruption_controller_does() {
    let description = WorldDescription::parse(
        "world.yaml",
        "clusters:\n  kube-1:\n    region: eu-central-1\n    pools: [{ name: workers, size: 3 }]\n    workloads:\n      - { name: web, kind: Deployment, replicas: 10 }\n    pdbs:\n      - { name: web, selector: { app: web }, max_unavailable: \"25%\" }\n      - { name: all, selector: { app: web }, namespace: other, min_available: \"33%\" }\n",
    )
    .unwrap();
    let pdbs = &description.clusters["kube-1"].pdbs;
    assert_eq!(pdbs[0].max_unavailable, Some(Budget::Percent(25)));
    assert_eq!(pdbs[1].min_available, Some(Budget::Percent(33)));
    let mut world = description.build();
    world.advance_to(world.now_ms + 60_000);
    let cluster = world.cluster("kube-1").unwrap();
    // 25% of 10 pods rounds up to 3 unavailable: 7 must stay healthy.
    let web = cluster.pdb_state(&pdbs[0], world.now_ms);
    assert_eq!((web.expected_pods, web.desired_healthy), (10, 7));
    assert_eq!(web.disruptions_allowed, 3);
    // 33% of 10 rounds up to 4; of no pods, 0.
    assert_eq!(Budget::Percent(33).of(10), 4);
    assert_eq!(Budget::Percent(33).of(0), 0);
    assert_eq!(Budget::Pods(2).of(10), 2);

    for (written, complaint) in [
        ("\"150%\"", "150%"),
        ("\"half\"", "half"),
        ("-1", "negative"),
    ] {
        let text = format!(
            "clusters:\n  kube-1:\n    region: eu-central-1\n    pdbs:\n      - {{ name: web, selector: {{ app: web }}, max_unavailable: {written} }}\n"
        );
        let error = WorldDescription::parse("world.yaml", &text).unwrap_err();
        assert_eq!(error.line, 5, "{error}");
        assert!(error.message.contains(complaint), "{error}");
    }
}
