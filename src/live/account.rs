//! The account guard: before anything of a cluster is read or changed, the caller
//! identity (STS) must be the cluster's `account`. A wrong account must never look like
//! an empty one ("new cluster: create everything").

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{
    AutoScalingGroupState, ChangeSetRequest, ChangeSetView, Cloud, GroupSize, InstanceState,
    LiveError, LiveResult, ParameterValue, PreparedChangeSet, StackEvent, StackState,
    TemplateSource,
};

/// Fails unless the credentials belong to `account`. `role`, when the credentials come
/// from assuming it, is named in the message.
async fn check_account(
    cloud: &dyn Cloud,
    region: &str,
    account: &str,
    role: Option<&str>,
) -> LiveResult<()> {
    let caller = cloud.caller_account(region).await?;
    if caller == account {
        return Ok(());
    }
    let (whose, hint) = match role {
        Some(role) => (
            format!("the credentials of role {role}"),
            format!("name a role of account {account} in `aws_role_arn`"),
        ),
        None => (
            "the credentials".to_string(),
            format!(
                "use credentials of account {account}, or name a role of it in the cluster's `aws_role_arn`"
            ),
        ),
    };
    Err(LiveError {
        operation: "check the caller's account (STS GetCallerIdentity)".into(),
        message: format!(
            "{whose} are for account {caller}, but the cluster is in account {account}; nothing was read or changed ({hint})"
        ),
        retryable: false,
    })
}

/// A [`Cloud`] that runs the account guard before its first read or write and after
/// that trusts it: every command that reaches a cluster's AWS resources through one is
/// guarded without checking on its own. A failed check is not remembered, so a passing
/// fault is asked again, and a wrong account fails every call.
pub struct Guarded<C> {
    inner: C,
    account: String,
    role: Option<String>,
    checked: OnceCell<()>,
}

impl<C: Cloud> Guarded<C> {
    /// `inner` must hold the credentials of `account` (through `role`, if given).
    pub fn new(inner: C, account: &str, role: Option<&str>) -> Guarded<C> {
        Guarded {
            inner,
            account: account.to_string(),
            role: role.map(str::to_string),
            checked: OnceCell::new(),
        }
    }

    async fn guard(&self, region: &str) -> LiveResult<()> {
        self.checked
            .get_or_try_init(|| {
                check_account(&self.inner, region, &self.account, self.role.as_deref())
            })
            .await
            .map(drop)
    }
}

#[async_trait]
impl<C: Cloud> Cloud for Guarded<C> {
    async fn describe_stack(&self, region: &str, name: &str) -> LiveResult<Option<StackState>> {
        self.guard(region).await?;
        self.inner.describe_stack(region, name).await
    }
    async fn get_template(&self, region: &str, name: &str) -> LiveResult<Value> {
        self.guard(region).await?;
        self.inner.get_template(region, name).await
    }
    async fn preview_update(
        &self,
        region: &str,
        name: &str,
        template: &TemplateSource,
        parameters: &[(String, ParameterValue)],
    ) -> LiveResult<ChangeSetView> {
        self.guard(region).await?;
        self.inner
            .preview_update(region, name, template, parameters)
            .await
    }
    async fn auto_scaling_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<AutoScalingGroupState>> {
        self.guard(region).await?;
        self.inner.auto_scaling_groups(region, cluster).await
    }
    async fn instances(&self, region: &str, ids: &[String]) -> LiveResult<Vec<InstanceState>> {
        self.guard(region).await?;
        self.inner.instances(region, ids).await
    }
    /// The guard itself: asked of the credentials, never guarded.
    async fn caller_account(&self, region: &str) -> LiveResult<String> {
        self.inner.caller_account(region).await
    }
    async fn put_template(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: &str,
    ) -> LiveResult<()> {
        self.guard(region).await?;
        self.inner.put_template(region, bucket, key, body).await
    }
    async fn create_change_set(
        &self,
        region: &str,
        request: &ChangeSetRequest,
    ) -> LiveResult<PreparedChangeSet> {
        self.guard(region).await?;
        self.inner.create_change_set(region, request).await
    }
    async fn execute_change_set(
        &self,
        region: &str,
        stack: &str,
        change_set: &str,
    ) -> LiveResult<()> {
        self.guard(region).await?;
        self.inner
            .execute_change_set(region, stack, change_set)
            .await
    }
    async fn stack_events(
        &self,
        region: &str,
        stack: &str,
        limit: usize,
    ) -> LiveResult<Vec<StackEvent>> {
        self.guard(region).await?;
        self.inner.stack_events(region, stack, limit).await
    }
    async fn delete_stack(&self, region: &str, stack: &str) -> LiveResult<()> {
        self.guard(region).await?;
        self.inner.delete_stack(region, stack).await
    }
    async fn set_group_size(&self, region: &str, group: &str, size: &GroupSize) -> LiveResult<()> {
        self.guard(region).await?;
        self.inner.set_group_size(region, group, size).await
    }
    async fn set_group_tags(
        &self,
        region: &str,
        group: &str,
        tags: &[(String, String)],
    ) -> LiveResult<()> {
        self.guard(region).await?;
        self.inner.set_group_tags(region, group, tags).await
    }
    async fn delete_group_tags(
        &self,
        region: &str,
        group: &str,
        keys: &[String],
    ) -> LiveResult<()> {
        self.guard(region).await?;
        self.inner.delete_group_tags(region, group, keys).await
    }
    async fn terminate_instance(
        &self,
        region: &str,
        instance: &str,
        decrement: bool,
    ) -> LiveResult<()> {
        self.guard(region).await?;
        self.inner
            .terminate_instance(region, instance, decrement)
            .await
    }
    async fn tagged_parameters(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<(String, String)>> {
        self.guard(region).await?;
        self.inner.tagged_parameters(region, cluster).await
    }
}

/// The cloud as each cluster's credentials see it.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// The cloud for a cluster of `account`, reached through `role` when it names one.
    fn cloud(&self, account: &str, role: Option<&str>) -> &dyn Cloud;
    /// The account guard of that cloud, for a command that must know before it does
    /// anything else: the same check (and the same single STS call) its calls make.
    async fn check(&self, account: &str, role: Option<&str>, region: &str) -> LiveResult<()>;
}

/// One guarded cloud per account and role of a fleet, made once: the account guard runs
/// once per pair, however many clusters share it.
pub struct GuardedAccounts<C> {
    clouds: BTreeMap<(String, Option<String>), Guarded<C>>,
    /// For a pair the fleet does not name: no account id matches what it expects, so
    /// the guard fails every call.
    unnamed: Guarded<C>,
}

impl<C: Cloud> GuardedAccounts<C> {
    /// `credentials(account, role)` makes the cloud of each pair in `identities`.
    pub fn new<'a>(
        identities: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
        credentials: impl Fn(&str, Option<&str>) -> C,
    ) -> GuardedAccounts<C> {
        let mut clouds = BTreeMap::new();
        for (account, role) in identities {
            clouds
                .entry((account.to_string(), role.map(str::to_string)))
                .or_insert_with(|| Guarded::new(credentials(account, role), account, role));
        }
        GuardedAccounts {
            clouds,
            unnamed: Guarded::new(credentials("", None), "(not named in the fleet)", None),
        }
    }
}

impl<C: Cloud> GuardedAccounts<C> {
    fn guarded(&self, account: &str, role: Option<&str>) -> &Guarded<C> {
        self.clouds
            .get(&(account.to_string(), role.map(str::to_string)))
            .unwrap_or(&self.unnamed)
    }
}

#[async_trait]
impl<C: Cloud> Accounts for GuardedAccounts<C> {
    fn cloud(&self, account: &str, role: Option<&str>) -> &dyn Cloud {
        self.guarded(account, role)
    }
    async fn check(&self, account: &str, role: Option<&str>, region: &str) -> LiveResult<()> {
        self.guarded(account, role).guard(region).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::GroupSize;
    use crate::sim::{SimHandle, WorldDescription};

    const REGION: &str = "eu-central-1";

    /// A simulated account (123456789012, the simulator's) with one cluster.
    fn world() -> SimHandle {
        let description = WorldDescription::parse(
            "world.yaml",
            "clusters:\n  kube-1:\n    region: eu-central-1\n    pools:\n      - { name: workers, size: 2 }\n",
        )
        .unwrap();
        SimHandle::new(description.build())
    }

    #[tokio::test]
    async fn another_accounts_credentials_fail_every_call_before_it_is_made() {
        let sim = world();
        let guarded = Guarded::new(sim.clone(), "210000000202", None);
        let read = guarded.describe_stack(REGION, "kube-1").await.unwrap_err();
        assert!(
            read.message.contains(
                "the credentials are for account 123456789012, but the cluster is in account 210000000202"
            ),
            "{read}"
        );
        assert!(!read.retryable);
        let groups = sim.with(|w| w.regions[REGION].groups.keys().cloned().collect::<Vec<_>>());
        let size = GroupSize {
            min: 0,
            max: 0,
            desired: 0,
        };
        let write = guarded.set_group_size(REGION, &groups[0], &size).await;
        assert_eq!(write.unwrap_err().operation, read.operation);
        assert_eq!(sim.with(|w| w.stats.mutations), 0, "nothing was changed");

        // Through a role, the message names it.
        let role = "arn:aws:iam::210000000202:role/deploy";
        let guarded = Guarded::new(sim.clone(), "210000000202", Some(role));
        let error = guarded.instances(REGION, &[]).await.unwrap_err();
        assert!(
            error.message.contains(&format!(
                "the credentials of role {role} are for account 123456789012"
            )),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_account_is_checked_once_and_a_failed_check_is_asked_again() {
        let sim = world();
        sim.with(|w| w.settings.account = "999999999999".into());
        let guarded = Guarded::new(sim.clone(), "123456789012", None);
        assert!(guarded.describe_stack(REGION, "kube-1").await.is_err());
        // The credentials were fixed: asked again, the check passes.
        sim.with(|w| w.settings.account = "123456789012".into());
        assert!(guarded.describe_stack(REGION, "kube-1").await.is_ok());
        // Checked once: what the credentials say later is not asked again.
        sim.with(|w| w.settings.account = "999999999999".into());
        assert!(guarded.describe_stack(REGION, "kube-1").await.is_ok());
    }

    #[tokio::test]
    async fn a_command_that_checks_first_shares_the_guards_single_sts_call() {
        let sim = world();
        let accounts = GuardedAccounts::new([("123456789012", None)], |_, _| sim.clone());
        let calls = || sim.with(|w| w.stats.caller_identity_calls);
        accounts.check("123456789012", None, REGION).await.unwrap();
        let cloud = accounts.cloud("123456789012", None);
        cloud.describe_stack(REGION, "kube-1").await.unwrap();
        accounts.check("123456789012", None, REGION).await.unwrap();
        assert_eq!(
            calls(),
            1,
            "one GetCallerIdentity for the check and the calls"
        );
        let error = accounts
            .check("210000000202", None, REGION)
            .await
            .unwrap_err();
        assert!(
            error.message.contains("(not named in the fleet)"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn each_account_and_role_of_a_fleet_has_its_own_guard() {
        let sim = world();
        let accounts =
            GuardedAccounts::new([("123456789012", None), ("210000000202", None)], |_, _| {
                sim.clone()
            });
        let home = accounts.cloud("123456789012", None);
        assert!(home.describe_stack(REGION, "kube-1").await.is_ok());
        let away = accounts.cloud("210000000202", None);
        assert!(away.describe_stack(REGION, "kube-1").await.is_err());
        // A pair the fleet does not name is never let through.
        let unnamed = accounts.cloud("123456789012", Some("arn:aws:iam::123456789012:role/x"));
        assert!(unnamed.describe_stack(REGION, "kube-1").await.is_err());
    }
}
