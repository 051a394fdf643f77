//! What keeps apply from acting where it must not, besides the account guard
//! ([`crate::live::account`]): the update block and the apply lock. Block and lock live in the cluster itself, as annotated
//! ConfigMaps in `kube-system`, so every operator's apply sees the same ones.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::rfc3339;
use crate::live::{Clock, ClusterApi, LiveError, LiveResult, ObjectRef};

const NAMESPACE: &str = "kube-system";
const BLOCK_NAME: &str = "flotilla-update-block";
const LOCK_NAME: &str = "flotilla-apply-lock";

const BLOCKED_BY: &str = "flotilla.io/blocked-by";
const REASON: &str = "flotilla.io/reason";
const BLOCKED_AT: &str = "flotilla.io/blocked-at";
const HOLDER: &str = "flotilla.io/holder";
const EXPIRES_MS: &str = "flotilla.io/expires-at-ms";
const EXPIRES_AT: &str = "flotilla.io/expires-at";
const STEP: &str = "flotilla.io/step";
const STEP_SINCE_MS: &str = "flotilla.io/step-since-ms";

/// Who blocked a cluster's updates, why and when.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Block {
    pub by: String,
    pub reason: String,
    /// RFC 3339.
    pub at: String,
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blocked by {} at {}: {}", self.by, self.at, self.reason)
    }
}

fn reference(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some(NAMESPACE.into()),
        name: name.into(),
    }
}

fn config_map(name: &str, annotations: Value, resource_version: Option<&str>) -> Value {
    let mut object = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "flotilla"},
            "annotations": annotations,
        },
    });
    if let Some(version) = resource_version {
        object["metadata"]["resourceVersion"] = json!(version);
    }
    object
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn resource_version(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// The cluster's update block, if any. A failed read is an error, never "not blocked".
pub async fn read_block(api: &dyn ClusterApi) -> LiveResult<Option<Block>> {
    let Some(object) = api.get(&reference(BLOCK_NAME)).await? else {
        return Ok(None);
    };
    let text = |key| annotation(&object, key).unwrap_or("unknown").to_string();
    Ok(Some(Block {
        by: text(BLOCKED_BY),
        reason: text(REASON),
        at: text(BLOCKED_AT),
    }))
}

/// Block the cluster's updates (replacing an existing block's reason).
pub async fn set_block(api: &dyn ClusterApi, block: &Block) -> LiveResult<()> {
    let annotations = json!({BLOCKED_BY: block.by, REASON: block.reason, BLOCKED_AT: block.at});
    loop {
        if api
            .create(&config_map(BLOCK_NAME, annotations.clone(), None))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let Some(existing) = api.get(&reference(BLOCK_NAME)).await? else {
            continue; // removed in between: create again
        };
        let object = config_map(BLOCK_NAME, annotations.clone(), resource_version(&existing));
        if api.replace(&object).await?.is_some() {
            return Ok(());
        }
    }
}

/// Lift the block; `Ok(false)` when there was none.
pub async fn clear_block(api: &dyn ClusterApi) -> LiveResult<bool> {
    api.delete(&reference(BLOCK_NAME), None, None).await
}

/// Another apply holds the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub holder: String,
    pub expires_at: String,
}

/// How the lock is taken and kept.
#[derive(Clone, Debug)]
pub struct LockPolicy {
    /// Who we are (user, host, process): shown to the apply that has to wait.
    pub holder: String,
    /// A lock not renewed for this long is free again (its holder died).
    pub ttl: Duration,
    /// How long to wait for another apply's lock before refusing.
    pub wait: Duration,
}

/// The cluster's apply lock, taken by this process.
pub struct Lock {
    holder: String,
    ttl: Duration,
    /// When this process last wrote the lock (world clock), to renew it well in time.
    renewed_ms: AtomicI64,
}

/// The current step and since when, for `status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rollout {
    pub holder: String,
    pub step: String,
    /// RFC 3339.
    pub since: String,
    pub expires_at: String,
}

fn lock_annotations(holder: &str, expires_ms: i64, step: &str, step_since_ms: i64) -> Value {
    json!({
        HOLDER: holder,
        EXPIRES_MS: expires_ms.to_string(),
        EXPIRES_AT: rfc3339(expires_ms),
        STEP: step,
        STEP_SINCE_MS: step_since_ms.to_string(),
    })
}

fn expires_ms(object: &Value) -> i64 {
    annotation(object, EXPIRES_MS)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// Take the lock, waiting up to `policy.wait` for another holder; an expired lock is
/// taken over. Every write is compare-and-swap, so two appliers cannot both win.
pub async fn acquire(
    api: &dyn ClusterApi,
    clock: &dyn Clock,
    policy: &LockPolicy,
) -> LiveResult<Result<Lock, Held>> {
    let started = clock.now_ms();
    let ttl_ms = policy.ttl.as_millis() as i64;
    loop {
        let now = clock.now_ms();
        let annotations = lock_annotations(&policy.holder, now + ttl_ms, "starting", now);
        if api
            .create(&config_map(LOCK_NAME, annotations.clone(), None))
            .await?
            .is_some()
        {
            return Ok(Ok(Lock {
                holder: policy.holder.clone(),
                ttl: policy.ttl,
                renewed_ms: AtomicI64::new(now),
            }));
        }
        let Some(existing) = api.get(&reference(LOCK_NAME)).await? else {
            continue;
        };
        if expires_ms(&existing) < now {
            let object = config_map(LOCK_NAME, annotations, resource_version(&existing));
            if api.replace(&object).await?.is_some() {
                return Ok(Ok(Lock {
                    holder: policy.holder.clone(),
                    ttl: policy.ttl,
                    renewed_ms: AtomicI64::new(now),
                }));
            }
            continue;
        }
        if now - started >= policy.wait.as_millis() as i64 {
            return Ok(Err(Held {
                holder: annotation(&existing, HOLDER).unwrap_or("unknown").into(),
                expires_at: annotation(&existing, EXPIRES_AT)
                    .unwrap_or("unknown")
                    .into(),
            }));
        }
        clock.sleep(Duration::from_secs(5).min(policy.wait)).await;
    }
}

impl Lock {
    /// Extend the lock and record the current step. Fails when the lock was taken over
    /// (this process stalled past the expiry): the caller must stop.
    pub async fn renew(
        &self,
        api: &dyn ClusterApi,
        clock: &dyn Clock,
        step: &str,
    ) -> LiveResult<()> {
        let lost = |message: String| LiveError {
            operation: "renew the apply lock".into(),
            message,
            retryable: false,
        };
        let current = api
            .get(&reference(LOCK_NAME))
            .await?
            .ok_or_else(|| lost("the lock was removed by someone else".into()))?;
        let holder = annotation(&current, HOLDER).unwrap_or("");
        if holder != self.holder {
            return Err(lost(format!("the lock is now held by {holder}")));
        }
        let now = clock.now_ms();
        let annotations =
            lock_annotations(&self.holder, now + self.ttl.as_millis() as i64, step, now);
        let object = config_map(LOCK_NAME, annotations, resource_version(&current));
        api.replace(&object)
            .await?
            .ok_or_else(|| lost("the lock changed while it was being renewed".into()))?;
        self.renewed_ms.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Renew only when a third of the lifetime has passed: cheap to call often.
    pub async fn keep_alive(&self, api: &dyn ClusterApi, clock: &dyn Clock) -> LiveResult<()> {
        let ttl_ms = self.ttl.as_millis() as i64;
        if clock.now_ms() - self.renewed_ms.load(Ordering::Relaxed) < ttl_ms / 3 {
            return Ok(());
        }
        let step = match api.get(&reference(LOCK_NAME)).await? {
            Some(current) => annotation(&current, STEP).unwrap_or("").to_string(),
            None => String::new(),
        };
        self.renew(api, clock, &step).await
    }

    /// Remove the lock if it is still ours.
    pub async fn release(self, api: &dyn ClusterApi) -> LiveResult<()> {
        if let Some(current) = api.get(&reference(LOCK_NAME)).await?
            && annotation(&current, HOLDER) == Some(self.holder.as_str())
        {
            api.delete(&reference(LOCK_NAME), None, None).await?;
        }
        Ok(())
    }
}

/// The rollout that holds the cluster's lock, if the lock is live.
pub async fn read_rollout(api: &dyn ClusterApi, now_ms: i64) -> LiveResult<Option<Rollout>> {
    let Some(object) = api.get(&reference(LOCK_NAME)).await? else {
        return Ok(None);
    };
    if expires_ms(&object) < now_ms {
        return Ok(None);
    }
    let since = annotation(&object, STEP_SINCE_MS)
        .and_then(|t| t.parse().ok())
        .map(rfc3339)
        .unwrap_or_default();
    Ok(Some(Rollout {
        holder: annotation(&object, HOLDER).unwrap_or("unknown").into(),
        step: annotation(&object, STEP).unwrap_or("").into(),
        since,
        expires_at: annotation(&object, EXPIRES_AT).unwrap_or("").into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimHandle, WorldDescription};

    fn world() -> SimHandle {
        let description = WorldDescription::parse(
            "world.yaml",
            "clusters:\n  kube-1:\n    region: eu-central-1\n    pools:\n      - { name: workers, size: 2 }\n",
        )
        .unwrap();
        SimHandle::new(description.build())
    }

    fn policy(holder: &str, wait_s: u64) -> LockPolicy {
        LockPolicy {
            holder: holder.into(),
            ttl: Duration::from_secs(600),
            wait: Duration::from_secs(wait_s),
        }
    }

    #[tokio::test]
    async fn a_second_apply_waits_then_refuses_and_takes_over_an_expired_lock() {
        let sim = world();
        let api = sim.cluster("kube-1");
        let first = acquire(&api, &sim, &policy("alice", 0))
            .await
            .unwrap()
            .unwrap();
        first
            .renew(&api, &sim, "roll node pool workers")
            .await
            .unwrap();

        let started = sim.now_ms();
        let held = acquire(&api, &sim, &policy("bob", 60)).await.unwrap();
        let Err(held) = held else {
            panic!("two holders at once")
        };
        assert_eq!(held.holder, "alice");
        assert!(
            sim.now_ms() - started >= 60_000,
            "bob waited before refusing"
        );

        let rollout = read_rollout(&api, sim.now_ms()).await.unwrap().unwrap();
        assert_eq!(rollout.step, "roll node pool workers");
        assert_eq!(rollout.holder, "alice");

        // Alice's process dies; once the lock expires, bob takes it over and alice,
        // should she come back, learns that she lost it.
        sim.sleep(Duration::from_secs(601)).await;
        let second = acquire(&api, &sim, &policy("bob", 0))
            .await
            .unwrap()
            .unwrap();
        let lost = first.renew(&api, &sim, "x").await.unwrap_err();
        assert!(lost.message.contains("bob"), "{lost}");
        first.release(&api).await.unwrap();
        assert_eq!(
            read_rollout(&api, sim.now_ms())
                .await
                .unwrap()
                .unwrap()
                .holder,
            "bob",
            "releasing a lost lock leaves the new holder's"
        );
        second.release(&api).await.unwrap();
        assert_eq!(read_rollout(&api, sim.now_ms()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_block_names_who_why_and_when_and_a_failed_read_is_not_unblocked() {
        let sim = world();
        let api = sim.cluster("kube-1");
        assert_eq!(read_block(&api).await.unwrap(), None);
        let block = Block {
            by: "carol".into(),
            reason: "incident 42".into(),
            at: "2026-12-06T22:00:00Z".into(),
        };
        set_block(&api, &block).await.unwrap();
        let again = Block {
            reason: "incident 43".into(),
            ..block.clone()
        };
        set_block(&api, &again).await.unwrap();
        assert_eq!(read_block(&api).await.unwrap(), Some(again));

        sim.with(|w| w.faults.api_error_rate = 1.0);
        assert!(read_block(&api).await.is_err());
        sim.with(|w| w.faults.api_error_rate = 0.0);

        assert!(clear_block(&api).await.unwrap());
        assert!(!clear_block(&api).await.unwrap());
        assert_eq!(read_block(&api).await.unwrap(), None);
    }
}
