//! `--world local`: the simulated world, kept in `.flotilla/world.json` next to the
//! fleet, so a new user can apply the example fleet and watch nodes roll without a
//! cloud account. Its clock runs accelerated: every simulated wait also takes a small
//! real one (an hour of rollout in a few seconds), so progress can be watched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sha2::Digest;

use crate::live::{
    AutoScalingGroupState, ChangeSetRequest, ChangeSetView, Clock, Cloud, ClusterApi, GroupSize,
    InstanceState, LiveResult, ParameterValue, PreparedChangeSet, StackEvent, StackState,
    TemplateSource,
};
use crate::plan::Connector;
use crate::sim::{PdbSpec, SimHandle, SimWorld, WorkloadKind, WorkloadSpec};

/// Why the local world could not be opened or saved.
#[derive(Debug, thiserror::Error)]
pub enum LocalWorldError {
    #[error("{} is not a flotilla local world ({source}); delete it to start a new one", file.display())]
    NotAWorld {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("FLOTILLA_LOCAL_SPEEDUP must be a whole number, got `{0}`")]
    Speedup(String),
    #[error("{0}")]
    Serialize(#[source] serde_json::Error),
}

/// Directory of the local world, next to the fleet (git-ignored).
pub const STATE_DIR: &str = ".flotilla";
const WORLD_FILE: &str = "world.json";

/// Simulated time per real time: an hour of rollout in 3.6 seconds.
const DEFAULT_SPEEDUP: u32 = 1000;

/// Sample application every new local cluster runs, so a roll has pods to move and a
/// PodDisruptionBudget to respect.
const SAMPLE_APP: &str = "web";

pub struct LocalWorld {
    file: PathBuf,
    handle: SimHandle,
    speedup: u32,
}

impl LocalWorld {
    /// The world kept for the fleet at `fleet` (a file or directory), or a new empty
    /// one. `FLOTILLA_LOCAL_SPEEDUP` changes how fast its clock runs (`0`: no real
    /// waiting at all, for tests).
    pub fn open(fleet: &Path) -> Result<LocalWorld, LocalWorldError> {
        let dir = if fleet.is_dir() {
            fleet.to_path_buf()
        } else {
            fleet.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        let file = dir.join(STATE_DIR).join(WORLD_FILE);
        let world = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str::<SimWorld>(&text).map_err(|source| {
                LocalWorldError::NotAWorld {
                    file: file.clone(),
                    source,
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                SimWorld::new(7, crate::live::SystemClock.now_ms())
            }
            Err(source) => {
                return Err(LocalWorldError::Io {
                    action: "read",
                    path: file,
                    source,
                });
            }
        };
        let speedup = match std::env::var("FLOTILLA_LOCAL_SPEEDUP") {
            Ok(text) => text
                .parse()
                .map_err(|_| LocalWorldError::Speedup(text.clone()))?,
            Err(_) => DEFAULT_SPEEDUP,
        };
        Ok(LocalWorld {
            file,
            handle: SimHandle::new(world),
            speedup,
        })
    }

    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }

    /// A view of the world with credentials for `account` (the local world holds every
    /// account of the fleet).
    pub fn account(&self, account: &str) -> AccountView {
        AccountView {
            world: self.handle.clone(),
            account: account.to_string(),
        }
    }

    pub fn clock(&self) -> AcceleratedClock {
        AcceleratedClock {
            world: self.handle.clone(),
            speedup: self.speedup,
        }
    }

    pub fn connector(&self) -> LocalConnector {
        LocalConnector(self.handle.clone())
    }

    /// Give every cluster that has come up and runs nothing yet a sample application
    /// in each node pool: a Deployment of two pods per node, pinned to the pool, and a
    /// PodDisruptionBudget that lets one pod go at a time.
    pub fn seed_sample_apps(&self) {
        self.handle.with(|world| {
            let mut apps: Vec<(String, String, usize)> = Vec::new();
            for (id, cluster) in &world.clusters {
                if !cluster.workloads.is_empty() {
                    continue;
                }
                let mut pools: BTreeMap<String, usize> = BTreeMap::new();
                for node in world.nodes(id) {
                    if let Some(pool) = node.labels.get(crate::plan::POOL_LABEL) {
                        *pools.entry(pool.clone()).or_default() += 1;
                    }
                }
                apps.extend(pools.into_iter().map(|(p, n)| (id.clone(), p, n)));
            }
            for (cluster, pool, nodes) in apps {
                let name = format!("{SAMPLE_APP}-{pool}");
                let labels = BTreeMap::from([("app".to_string(), name.clone())]);
                world.add_workload(
                    &cluster,
                    WorkloadSpec {
                        namespace: "default".into(),
                        name: name.clone(),
                        kind: WorkloadKind::Deployment,
                        replicas: (2 * nodes) as u32,
                        labels: labels.clone(),
                        pool: Some(pool),
                    },
                );
                world.add_pdb(
                    &cluster,
                    PdbSpec {
                        namespace: "default".into(),
                        name,
                        selector: labels,
                        min_available: None,
                        max_unavailable: Some(1.into()),
                    },
                );
            }
        });
    }

    /// Write the world back, atomically (a reader never sees half of it).
    pub fn save(&self) -> Result<(), LocalWorldError> {
        let text =
            serde_json::to_string(&self.handle.snapshot()).map_err(LocalWorldError::Serialize)?;
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LocalWorldError::Io {
                action: "create",
                path: dir.to_path_buf(),
                source,
            })?;
            // The world is local state, never source: keep it out of git.
            let ignore = dir.join(".gitignore");
            if !ignore.exists() {
                let _ = std::fs::write(&ignore, "*\n");
            }
        }
        let temporary = self
            .file
            .with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.file))
            .map_err(|source| {
                let _ = std::fs::remove_file(&temporary);
                LocalWorldError::Io {
                    action: "write",
                    path: self.file.clone(),
                    source,
                }
            })
    }
}

/// The world's virtual clock, with a real pause of `1/speedup` of every simulated one.
pub struct AcceleratedClock {
    world: SimHandle,
    speedup: u32,
}

#[async_trait]
impl Clock for AcceleratedClock {
    fn now_ms(&self) -> i64 {
        self.world.now_ms()
    }

    async fn sleep(&self, duration: Duration) {
        if self.speedup > 0 {
            tokio::time::sleep(duration / self.speedup).await;
        }
        self.world.sleep(duration).await;
    }
}

/// Every cluster of the local world, by id (the API server URL is not needed).
pub struct LocalConnector(SimHandle);

#[async_trait]
impl Connector for LocalConnector {
    async fn connect(&self, cluster: &str, _: &str) -> LiveResult<Box<dyn ClusterApi>> {
        Ok(Box::new(self.0.cluster(cluster)))
    }
}

/// The world as seen with one account's credentials.
pub struct AccountView {
    world: SimHandle,
    account: String,
}

#[async_trait]
impl Cloud for AccountView {
    async fn describe_stack(&self, region: &str, name: &str) -> LiveResult<Option<StackState>> {
        self.world.describe_stack(region, name).await
    }
    async fn get_template(&self, region: &str, name: &str) -> LiveResult<Value> {
        self.world.get_template(region, name).await
    }
    async fn preview_update(
        &self,
        region: &str,
        name: &str,
        template: &TemplateSource,
        parameters: &[(String, ParameterValue)],
    ) -> LiveResult<ChangeSetView> {
        self.world
            .preview_update(region, name, template, parameters)
            .await
    }
    async fn auto_scaling_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<AutoScalingGroupState>> {
        self.world.auto_scaling_groups(region, cluster).await
    }
    async fn instances(&self, region: &str, ids: &[String]) -> LiveResult<Vec<InstanceState>> {
        self.world.instances(region, ids).await
    }
    /// The local account has one network per cluster, named after it.
    async fn tagged_parameters(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<(String, String)>> {
        self.world.caller_account(region).await?;
        let digest = sha2::Sha256::digest(format!("{region}/{cluster}").as_bytes());
        let id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let subnets = |kind: &str| {
            ["a", "b", "c"]
                .map(|zone| format!("subnet-{kind}{zone}{}", &id[..10]))
                .join(",")
        };
        Ok(vec![
            ("VpcId".into(), format!("vpc-{id}")),
            ("SubnetIds".into(), subnets("p")),
            ("PublicSubnetIds".into(), subnets("e")),
        ])
    }
    async fn caller_account(&self, region: &str) -> LiveResult<String> {
        // Asked of the world too, so its injected faults apply.
        self.world.caller_account(region).await?;
        Ok(self.account.clone())
    }
    async fn put_template(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: &str,
    ) -> LiveResult<()> {
        self.world.put_template(region, bucket, key, body).await
    }
    async fn create_change_set(
        &self,
        region: &str,
        request: &ChangeSetRequest,
    ) -> LiveResult<PreparedChangeSet> {
        self.world.create_change_set(region, request).await
    }
    async fn execute_change_set(
        &self,
        region: &str,
        stack: &str,
        change_set: &str,
    ) -> LiveResult<()> {
        self.world
            .execute_change_set(region, stack, change_set)
            .await
    }
    async fn stack_events(
        &self,
        region: &str,
        stack: &str,
        limit: usize,
    ) -> LiveResult<Vec<StackEvent>> {
        self.world.stack_events(region, stack, limit).await
    }
    async fn delete_stack(&self, region: &str, stack: &str) -> LiveResult<()> {
        self.world.delete_stack(region, stack).await
    }
    async fn set_group_size(&self, region: &str, group: &str, size: &GroupSize) -> LiveResult<()> {
        self.world.set_group_size(region, group, size).await
    }
    async fn set_group_tags(
        &self,
        region: &str,
        group: &str,
        tags: &[(String, String)],
    ) -> LiveResult<()> {
        self.world.set_group_tags(region, group, tags).await
    }
    async fn delete_group_tags(
        &self,
        region: &str,
        group: &str,
        keys: &[String],
    ) -> LiveResult<()> {
        self.world.delete_group_tags(region, group, keys).await
    }
    async fn terminate_instance(
        &self,
        region: &str,
        instance: &str,
        decrement: bool,
    ) -> LiveResult<()> {
        self.world
            .terminate_instance(region, instance, decrement)
            .await
    }
}
