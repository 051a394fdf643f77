//! What a real cluster does around flotilla, for end-to-end tests against moto and the
//! loopback API server: the kubelet of every running instance of the cluster's Auto
//! Scaling groups registers a Ready `Node` (named after the instance's private DNS
//! name, provider id `aws:///ZONE/INSTANCE-ID`, labelled the way the bootstrap labels it:
//! from `NODE_LABELS` in the instance's own userdata, which it was launched with), and
//! the node goes away when its instance is terminated, taking its pods along. The
//! Deployment controller and the scheduler keep each Deployment's pods at its replica
//! count on schedulable nodes (avoiding nodes tainted `PreferNoSchedule`), and pods
//! become Ready a while after they were created.
//!
//! It also watches: the fewest Ready pods each Deployment had at any look, so a test
//! can tell whether a PodDisruptionBudget was ever broken.
#![allow(dead_code)] // each test binary uses its own part of it

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube_loopback::LoopbackApi;
use serde_json::{Value, json};

/// How often the harness looks at the world.
const TICK: Duration = Duration::from_millis(100);

/// What the harness saw while it ran.
#[derive(Debug, Default)]
pub struct Observations {
    /// `namespace/deployment` → the fewest Ready pods at any look after the
    /// Deployment first had all its replicas Ready.
    pub min_ready: BTreeMap<String, usize>,
    /// Instance ids that ever had a node.
    pub registered: BTreeSet<String>,
    /// Instance ids whose node was removed because the instance was terminated.
    pub removed: BTreeSet<String>,
    /// Reads that failed (moto or the harness's own mistakes), for the test to show.
    pub errors: Vec<String>,
}

/// When a new pod becomes Ready.
#[derive(Debug, Clone, Copy)]
pub enum PodStartup {
    /// This long after it was created.
    After(Duration),
    /// As `After`, except that a pod created once the API has accepted an eviction stays
    /// unready until the API has refused one (or `at_most` has passed). A roll then meets
    /// its PodDisruptionBudget whatever the machine's speed: with pods Ready after a fixed
    /// time, a slow machine could take longer than that between two evictions.
    UntilAnEvictionIsRefused { after: Duration, at_most: Duration },
}

impl PodStartup {
    fn after(self) -> Duration {
        match self {
            PodStartup::After(after) | PodStartup::UntilAnEvictionIsRefused { after, .. } => after,
        }
    }
}

pub struct Kubelet {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub observations: Arc<Mutex<Observations>>,
}

struct Harness {
    cluster: String,
    api: Arc<LoopbackApi>,
    autoscaling: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    /// When a new pod becomes Ready.
    pod_startup: PodStartup,
    /// Pod → when it was created (harness time).
    started: BTreeMap<String, Instant>,
    /// Pods held unready until an eviction is refused (see `PodStartup`).
    held: BTreeSet<String>,
    /// What the API has answered to evictions so far: (any accepted, any refused).
    evictions: (bool, bool),
    pods_created: usize,
    observations: Arc<Mutex<Observations>>,
}

impl Kubelet {
    /// Start looking after `cluster`'s instances and workloads (inside a tokio runtime).
    pub fn start(
        cluster: &str,
        api: Arc<LoopbackApi>,
        aws: &aws_config::SdkConfig,
        pod_startup: PodStartup,
    ) -> Kubelet {
        let observations = Arc::new(Mutex::new(Observations::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut harness = Harness {
            cluster: cluster.to_string(),
            api,
            autoscaling: aws_sdk_autoscaling::Client::new(aws),
            ec2: aws_sdk_ec2::Client::new(aws),
            pod_startup,
            started: BTreeMap::new(),
            held: BTreeSet::new(),
            evictions: (false, false),
            pods_created: 0,
            observations: Arc::clone(&observations),
        };
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            while !stopped.load(Ordering::SeqCst) {
                if let Err(error) = harness.tick().await {
                    harness.observe().errors.push(error);
                }
                tokio::time::sleep(TICK).await;
            }
        });
        Kubelet {
            stop,
            task: Some(task),
            observations,
        }
    }

    /// Stop, and return what was seen.
    pub async fn stop(mut self) -> Observations {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.await.expect("the kubelet harness panicked");
        }
        std::mem::take(&mut *self.observations.lock().unwrap())
    }

    /// Wait until `condition` holds on the loopback state, or panic after `limit`.
    pub async fn wait_for(
        api: &LoopbackApi,
        what: &str,
        limit: Duration,
        condition: impl Fn(&LoopbackApi) -> bool,
    ) {
        let started = Instant::now();
        while !condition(api) {
            assert!(started.elapsed() < limit, "timed out waiting for {what}");
            tokio::time::sleep(TICK).await;
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A running instance of one of the cluster's groups.
struct Running {
    zone: String,
}

impl Harness {
    fn observe(&self) -> std::sync::MutexGuard<'_, Observations> {
        self.observations.lock().unwrap()
    }

    async fn tick(&mut self) -> Result<(), String> {
        let running = self.running_instances().await?;
        self.sync_nodes(&running).await?;
        self.sync_deployments();
        Ok(())
    }

    /// InService instances of the groups tagged for the cluster.
    async fn running_instances(&self) -> Result<BTreeMap<String, Running>, String> {
        let filter = aws_sdk_autoscaling::types::Filter::builder()
            .name("tag:flotilla.io/cluster")
            .values(&self.cluster)
            .build();
        let groups = self
            .autoscaling
            .describe_auto_scaling_groups()
            .filters(filter)
            .send()
            .await
            .map_err(|e| format!("describe groups: {e:?}"))?;
        let mut running = BTreeMap::new();
        for group in groups.auto_scaling_groups() {
            for instance in group.instances() {
                let in_service = instance
                    .lifecycle_state()
                    .is_some_and(|s| s.as_str() == "InService");
                let Some(id) = instance.instance_id().filter(|_| in_service) else {
                    continue;
                };
                running.insert(
                    id.to_string(),
                    Running {
                        zone: instance.availability_zone().unwrap_or_default().to_string(),
                    },
                );
            }
        }
        Ok(running)
    }

    /// Register a node for every running instance without one; remove the nodes (and
    /// their pods) of instances that are gone.
    async fn sync_nodes(&mut self, running: &BTreeMap<String, Running>) -> Result<(), String> {
        let nodes = self.api.list("v1", "Node", None);
        let mut known = BTreeSet::new();
        for node in &nodes {
            let provider = node["spec"]["providerID"].as_str().unwrap_or_default();
            let Some(instance) = provider
                .strip_prefix("aws:///")
                .and_then(|p| p.rsplit('/').next())
            else {
                continue;
            };
            if running.contains_key(instance) {
                known.insert(instance.to_string());
                continue;
            }
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            for pod in self.api.list("v1", "Pod", None) {
                if pod["spec"]["nodeName"] == name {
                    self.api.delete(
                        "v1",
                        "Pod",
                        pod["metadata"]["namespace"].as_str(),
                        pod["metadata"]["name"].as_str().unwrap_or_default(),
                    );
                }
            }
            self.api.delete("v1", "Node", None, name);
            self.observe().removed.insert(instance.to_string());
        }
        for (id, instance) in running {
            if known.contains(id) {
                continue;
            }
            let mut labels = self.bootstrap_labels(id).await?;
            let name = self.private_dns_name(id).await?;
            labels.insert("topology.kubernetes.io/zone".into(), instance.zone.clone());
            labels.insert("kubernetes.io/hostname".into(), name.clone());
            self.api
                .insert(json!({
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"providerID": format!("aws:///{}/{id}", instance.zone)},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                }))
                .map_err(|e| e.to_string())?;
            self.observe().registered.insert(id.clone());
        }
        Ok(())
    }

    async fn private_dns_name(&self, instance: &str) -> Result<String, String> {
        let described = self
            .ec2
            .describe_instances()
            .instance_ids(instance)
            .send()
            .await
            .map_err(|e| format!("describe instance {instance}: {e:?}"))?;
        let name = described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.private_dns_name().filter(|n| !n.is_empty()))
            .map(|n| n.split('.').next().unwrap_or(n).to_string());
        Ok(name.unwrap_or_else(|| instance.to_string()))
    }

    /// The labels the bootstrap gives a node: `NODE_LABELS=k=v,…` in the userdata the
    /// instance was launched with.
    async fn bootstrap_labels(&self, instance: &str) -> Result<BTreeMap<String, String>, String> {
        let attribute = self
            .ec2
            .describe_instance_attribute()
            .instance_id(instance)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .map_err(|e| format!("userdata of {instance}: {e:?}"))?;
        let userdata = attribute
            .user_data()
            .and_then(|u| u.value())
            .ok_or_else(|| format!("instance {instance} has no userdata"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(userdata.trim())
            .map_err(|e| format!("userdata of {instance} is not base64: {e}"))?;
        let text = String::from_utf8_lossy(&decoded);
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("NODE_LABELS="))
            .ok_or_else(|| format!("userdata of {instance} sets no NODE_LABELS"))?;
        Ok(line
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// The Deployment controller, the scheduler and pod startup, in one pass.
    fn sync_deployments(&mut self) {
        if let PodStartup::UntilAnEvictionIsRefused { .. } = self.pod_startup {
            let answers: Vec<u16> = self
                .api
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
                .map(|r| r.status)
                .collect();
            self.evictions.0 |= answers.contains(&201);
            self.evictions.1 |= answers.contains(&429);
        }
        let nodes = self.api.list("v1", "Node", None);
        let mut pods = self.api.list("v1", "Pod", None);
        for deployment in self.api.list("apps/v1", "Deployment", None) {
            let namespace = deployment["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let name = deployment["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
            let labels = deployment["spec"]["template"]["metadata"]["labels"].clone();
            let replica_set = self.replica_set(&deployment, &namespace, &name);
            let owned: Vec<Value> = pods
                .iter()
                .filter(|p| {
                    p["metadata"]["ownerReferences"][0]["uid"] == replica_set["metadata"]["uid"]
                })
                .cloned()
                .collect();
            let mut ready = 0;
            for pod in &owned {
                if is_ready(pod) {
                    ready += 1;
                } else if self.started_long_enough(pod) {
                    let mut pod = pod.clone();
                    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
                    let _ = self.api.insert(pod);
                }
            }
            {
                let key = format!("{namespace}/{name}");
                let mut seen = self.observe();
                match seen.min_ready.get_mut(&key) {
                    Some(min) => *min = (*min).min(ready),
                    None if ready >= replicas => {
                        seen.min_ready.insert(key, ready);
                    }
                    None => {}
                }
            }
            for _ in owned.len()..replicas {
                let Some(node) = schedule(&nodes, &pods) else {
                    break;
                };
                self.pods_created += 1;
                let pod_name = format!("{name}-{}", self.pods_created);
                let pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod_name,
                        "namespace": namespace,
                        "labels": labels,
                        "ownerReferences": [{
                            "apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "name": replica_set["metadata"]["name"],
                            "uid": replica_set["metadata"]["uid"],
                            "controller": true,
                        }],
                    },
                    "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1"}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]},
                });
                if let Ok(pod) = self.api.insert(pod) {
                    let key = format!("{namespace}/{pod_name}");
                    if let (PodStartup::UntilAnEvictionIsRefused { .. }, (true, false)) =
                        (self.pod_startup, self.evictions)
                    {
                        self.held.insert(key.clone());
                    }
                    self.started.insert(key, Instant::now());
                    pods.push(pod);
                }
            }
        }
    }

    fn started_long_enough(&self, pod: &Value) -> bool {
        let key = format!(
            "{}/{}",
            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
            pod["metadata"]["name"].as_str().unwrap_or_default()
        );
        let Some(created) = self.started.get(&key) else {
            return true;
        };
        let elapsed = created.elapsed();
        match self.pod_startup {
            PodStartup::UntilAnEvictionIsRefused { at_most, .. } if self.held.contains(&key) => {
                (self.evictions.1 && elapsed >= self.pod_startup.after()) || elapsed >= at_most
            }
            startup => elapsed >= startup.after(),
        }
    }

    /// The Deployment's ReplicaSet, created on first sight.
    fn replica_set(&self, deployment: &Value, namespace: &str, name: &str) -> Value {
        let rs_name = format!("{name}-rs");
        if let Some(existing) = self
            .api
            .get("apps/v1", "ReplicaSet", Some(namespace), &rs_name)
        {
            return existing;
        }
        self.api
            .insert(json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": namespace,
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                        "uid": deployment["metadata"]["uid"], "controller": true,
                    }],
                },
                "spec": {
                    "replicas": deployment["spec"]["replicas"],
                    "selector": deployment["spec"]["selector"],
                    "template": deployment["spec"]["template"],
                },
            }))
            .expect("a ReplicaSet can be seeded")
    }
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The scheduler: a Ready, schedulable node, preferring nodes without a
/// `PreferNoSchedule` taint, then the one with fewest pods.
fn schedule(nodes: &[Value], pods: &[Value]) -> Option<String> {
    nodes
        .iter()
        .filter(|n| {
            n["spec"]["unschedulable"] != true
                && n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .map(|n| {
            let name = n["metadata"]["name"].as_str().unwrap_or_default();
            let tainted = n["spec"]["taints"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["effect"] == "PreferNoSchedule"));
            let load = pods
                .iter()
                .filter(|p| p["spec"]["nodeName"] == name)
                .count();
            (tainted, load, name.to_string())
        })
        .min()
        .map(|(_, _, name)| name)
}
