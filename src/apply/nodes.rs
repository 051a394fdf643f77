//! Node pool rolls and removals, handed to the rolling engine ([`super::roll`]) with
//! each pool's update settings. The engine asks at every safe point whether to stop:
//! a block set on the cluster stops it, and the same question keeps the lock alive.

use async_trait::async_trait;

use super::guard::{Lock, read_block};
use super::roll::{self, CapacityType, RollContext, RollEvent, RollSpec, StopSignal};
use super::{Progress, StackChange, StepError, stacks};
use crate::live::{ChangeSetKind, Clock, Cloud, ClusterApi, LiveResult};
use crate::model::{self, Cluster, Environment, NodePool};
use crate::plan::{RemovePoolStep, RollStep};

/// Stops the engine when the cluster gets blocked; renews the lock on the way.
struct ClusterStop<'a> {
    api: &'a dyn ClusterApi,
    clock: &'a dyn Clock,
    lock: Option<&'a Lock>,
}

#[async_trait]
impl StopSignal for ClusterStop<'_> {
    async fn stop_reason(&self) -> LiveResult<Option<String>> {
        if let Some(lock) = self.lock {
            lock.keep_alive(self.api, self.clock).await?;
        }
        Ok(read_block(self.api)
            .await?
            .map(|block| format!("the cluster was {block}")))
    }
}

/// The engine's settings for a pool: its `update` block, the engine's own waits.
pub(crate) fn roll_spec(pool: &NodePool, config_hash: &str) -> RollSpec {
    let update = &pool.update;
    let mut spec = RollSpec::new(&pool.name, config_hash, update.force_terminate_after);
    spec.max_surge = update.max_surge.max(0) as u32;
    spec.max_unavailable = update.max_unavailable.max(0) as u32;
    spec.respect_pdbs = update.respect_pdbs;
    spec.min_pod_age_for_force = update.min_pod_age_for_force;
    spec.force_delete_interval = update.force_delete_interval;
    spec.capacity = match pool.capacity_type {
        model::CapacityType::Spot => CapacityType::Spot,
        model::CapacityType::OnDemand => CapacityType::OnDemand,
    };
    spec
}

/// A pool that is no longer declared has no `update` block: drain it with the
/// stdlib's defaults for the cluster's environment.
fn removal_spec(cluster: &Cluster, pool: &str) -> RollSpec {
    let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
    let (force_after, min_age) = match cluster.environment {
        Environment::Production => (hours(72), hours(72)),
        Environment::Test => (hours(8), hours(1)),
    };
    let mut spec = RollSpec::new(pool, "", force_after);
    spec.min_pod_age_for_force = min_age;
    spec
}

/// Everything a roll needs from the cluster's apply.
pub(super) struct NodeWork<'a> {
    pub cloud: &'a dyn Cloud,
    pub clock: &'a dyn Clock,
    pub api: &'a dyn ClusterApi,
    pub lock: Option<&'a Lock>,
    pub progress: &'a dyn Progress,
    pub cluster: &'a Cluster,
}

impl NodeWork<'_> {
    async fn run(&self, spec: &RollSpec, drain: bool) -> Result<roll::RollReport, StepError> {
        let stop = ClusterStop {
            api: self.api,
            clock: self.clock,
            lock: self.lock,
        };
        let (clock, id) = (self.clock, self.cluster.id.as_str());
        let report = |event: &RollEvent| match event {
            RollEvent::Waiting { what, since_ms } => {
                self.progress.waiting(id, what, *since_ms, clock.now_ms());
            }
            other => self.progress.note(id, &other.to_string()),
        };
        let ctx = RollContext {
            cloud: self.cloud,
            api: self.api,
            clock,
            region: &self.cluster.region,
            cluster: id,
            progress: &report,
            stop: &stop,
        };
        let result = if drain {
            roll::drain_pool(&ctx, spec).await
        } else {
            roll::roll_pool(&ctx, spec).await
        };
        result.map_err(|e| StepError::new(e.to_string()))
    }

    /// Replace every outdated node of a declared pool.
    pub async fn roll(&self, pool: &NodePool, step: &RollStep) -> Result<(), StepError> {
        self.run(&roll_spec(pool, &step.desired_hash), false)
            .await
            .map(|_| ())
    }

    /// Drain a pool that is no longer declared, then delete its stack.
    pub async fn remove(
        &self,
        step: &RemovePoolStep,
        stack_deadline: std::time::Duration,
    ) -> Result<(), StepError> {
        self.run(&removal_spec(self.cluster, &step.node_pool), true)
            .await?;
        let none = std::collections::BTreeMap::new();
        let change = StackChange {
            region: &self.cluster.region,
            cluster: &self.cluster.id,
            stack: &step.stack,
            kind: ChangeSetKind::Update,
            template: "{}",
            parameters: &none,
            bucket: None,
        };
        stacks::delete_stack(
            self.cloud,
            self.clock,
            self.progress,
            &change,
            stack_deadline,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::guard::{Block, LockPolicy, acquire, read_rollout, set_block};
    use crate::sim::{SimHandle, WorldDescription};
    use std::time::Duration;

    #[tokio::test]
    async fn a_block_set_mid_rollout_stops_the_engine_and_asking_keeps_the_lock() {
        let description = WorldDescription::parse(
            "world.yaml",
            "clusters:\n  kube-1:\n    region: eu-central-1\n    pools:\n      - { name: workers, size: 2 }\n",
        )
        .unwrap();
        let sim = SimHandle::new(description.build());
        let api = sim.cluster("kube-1");
        let policy = LockPolicy {
            holder: "alice".into(),
            ttl: Duration::from_secs(900),
            wait: Duration::ZERO,
        };
        let lock = acquire(&api, &sim, &policy).await.unwrap().unwrap();
        let stop = ClusterStop {
            api: &api,
            clock: &sim,
            lock: Some(&lock),
        };
        assert_eq!(stop.stop_reason().await.unwrap(), None);

        // A long roll: the lock would expire without the engine's questions renewing it.
        let first_expiry = read_rollout(&api, sim.now_ms())
            .await
            .unwrap()
            .unwrap()
            .expires_at;
        sim.sleep(Duration::from_secs(600)).await;
        assert_eq!(stop.stop_reason().await.unwrap(), None);
        let renewed = read_rollout(&api, sim.now_ms()).await.unwrap().unwrap();
        assert_ne!(renewed.expires_at, first_expiry, "renewed while rolling");

        let block = Block {
            by: "carol".into(),
            reason: "incident 42".into(),
            at: "2026-12-06T22:00:00Z".into(),
        };
        set_block(&api, &block).await.unwrap();
        let reason = stop.stop_reason().await.unwrap().unwrap();
        assert!(
            reason.contains("incident 42") && reason.contains("carol"),
            "{reason}"
        );
    }
}
