//! How the commands that act on clusters reach them: the compiled fleet, and the world
//! it lives in (real AWS and Kubernetes endpoints, or the local simulated one).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use clap::ValueEnum;

use super::{CliError, CliResult, ConfigArgs, pairs, print_diagnostics};
use crate::apply::local::LocalWorld;
use crate::apply::{Accounts, GuardedAccounts, World};
use crate::compile::{Compilation, compile};
use crate::live::aws::AwsCloud;
use crate::live::{Clock, SystemClock, Timeouts};
use crate::model::Fleet;
use crate::plan::{ClusterTarget, Connector, KubeConnector, Plan, plan_fleet};
use crate::source::DiskFs;

/// Where the clusters live.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum WorldKind {
    /// A simulated world kept under `.flotilla/` next to the fleet, on an accelerated
    /// clock: no cloud account needed.
    Local,
}

/// How to reach the clusters: shared by plan, apply, status, block and unblock.
#[derive(clap::Args)]
pub struct Endpoints {
    /// `local`: the simulated world under `.flotilla/` next to the fleet.
    #[arg(long, value_enum)]
    pub world: Option<WorldKind>,
    /// Send every AWS call here (e.g. a local emulator); `AWS_ENDPOINT_URL` works too.
    #[arg(long, value_name = "URL", value_parser = crate::live::aws::endpoint_url)]
    pub aws_endpoint_url: Option<String>,
    /// Fail a cluster when one AWS or Kubernetes call (retries included) has no answer
    /// after this many seconds [default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Reach a cluster's API server at URL instead of its `api_server_url` (repeatable).
    #[arg(long = "kube-endpoint", value_name = "ID=URL")]
    pub kube_endpoints: Vec<String>,
    /// Use kubeconfig context CTX for a cluster instead of the context named after it.
    #[arg(long = "kube-context", value_name = "ID=CTX")]
    pub kube_contexts: Vec<String>,
}

/// Compile the fleet: its model and the compilation (whose `fleet` is taken out), or
/// `None` after reporting its diagnostics.
pub(super) fn compile_fleet(
    path: &std::path::Path,
    clusters: &[String],
    config: &ConfigArgs,
) -> CliResult<Option<(Fleet, Compilation)>> {
    let source = config.source(path)?;
    let mut compilation = compile(&DiskFs, path, &source, clusters);
    print_diagnostics(&compilation.sources, &compilation.diagnostics);
    if compilation.has_errors() {
        return Ok(None);
    }
    Ok(compilation.fleet.take().map(|fleet| (fleet, compilation)))
}

/// Plan targets of every compiled cluster that is not being retired.
pub(super) fn targets<'a>(
    fleet: &'a Fleet,
    compilation: &'a Compilation,
) -> Vec<ClusterTarget<'a>> {
    let (targets, retired) = crate::plan::plan_targets(fleet, &compilation.artifacts);
    for (id, status) in retired {
        let _ = writeln!(
            std::io::stderr(),
            "skipping {id}: lifecycle status {status}"
        );
    }
    targets
}

pub(super) fn unknown_cluster(id: &str, path: &std::path::Path, fleet: &Fleet) -> CliError {
    CliError::UnknownCluster {
        id: id.to_string(),
        path: path.to_path_buf(),
        known: fleet.cluster_ids().map(str::to_string).collect(),
    }
}

/// The world the commands act on: AWS and kube, or the local simulated world.
pub struct Backend {
    accounts: Box<dyn Accounts>,
    connector: Box<dyn Connector>,
    clock: Box<dyn Clock>,
    local: Option<LocalWorld>,
}

impl Backend {
    pub fn open(
        endpoints: &Endpoints,
        fleet: &Fleet,
        path: &std::path::Path,
    ) -> CliResult<Backend> {
        if endpoints.world == Some(WorldKind::Local) {
            let local = LocalWorld::open(path)?;
            // The simulated world holds every account the fleet names; roles are not
            // simulated.
            let accounts =
                GuardedAccounts::new(identities(fleet), |account, _| local.account(account));
            return Ok(Backend {
                accounts: Box::new(accounts),
                connector: Box::new(local.connector()),
                clock: Box::new(local.clock()),
                local: Some(local),
            });
        }
        if endpoints.aws_endpoint_url.is_none() {
            crate::live::aws::check_endpoint_variable().map_err(CliError::Endpoint)?;
        }
        let timeouts = Timeouts::from_seconds(endpoints.timeout);
        let accounts = GuardedAccounts::new(identities(fleet), |_, role| {
            let cloud = AwsCloud::new(endpoints.aws_endpoint_url.clone()).with_timeouts(timeouts);
            match role {
                Some(role) => cloud.assuming(role),
                None => cloud,
            }
        });
        Ok(Backend {
            accounts: Box::new(accounts),
            connector: Box::new(KubeConnector {
                endpoints: pairs(&endpoints.kube_endpoints, "--kube-endpoint", fleet)?,
                contexts: pairs(&endpoints.kube_contexts, "--kube-context", fleet)?,
                timeouts,
            }),
            clock: Box::new(SystemClock),
            local: None,
        })
    }

    pub(super) fn world(&self) -> World<'_> {
        World {
            accounts: self.accounts.as_ref(),
            connector: self.connector.as_ref(),
            clock: self.clock.as_ref(),
        }
    }

    /// Plan every target, each through its account's credentials.
    pub async fn plan(
        &self,
        fleet: &crate::model::Fleet,
        targets: &[ClusterTarget<'_>],
        concurrency: usize,
    ) -> Plan {
        let progress = std::io::stderr().is_terminal();
        let mut by_identity: BTreeMap<(&str, Option<&str>), Vec<ClusterTarget>> = BTreeMap::new();
        for t in targets {
            if let Some(cluster) = fleet.cluster(&t.artifacts.cluster) {
                by_identity
                    .entry((cluster.account.as_str(), cluster.aws_role_arn.as_deref()))
                    .or_default()
                    .push(ClusterTarget::new(cluster, t.artifacts));
            }
        }
        let mut plan = Plan {
            version: crate::plan::PLAN_VERSION,
            ..Plan::default()
        };
        for ((account, role), targets) in by_identity {
            // Guarded: a cluster whose credentials are another account's fails before
            // anything of it is read.
            let part = plan_fleet(
                &targets,
                self.accounts.cloud(account, role),
                self.connector.as_ref(),
                concurrency,
                progress,
            )
            .await;
            plan.clusters.extend(part.clusters);
            plan.failures.extend(part.failures);
        }
        plan.clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        plan.failures.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        plan
    }

    /// Keep what changed: the local world's file (with the sample application in every
    /// cluster that has come up); nothing for the real world.
    pub fn save(&self) -> CliResult<()> {
        match &self.local {
            Some(local) => {
                local.seed_sample_apps();
                Ok(local.save()?)
            }
            None => Ok(()),
        }
    }
}

/// Every account of the fleet with the role its clusters are reached through.
fn identities(fleet: &Fleet) -> impl Iterator<Item = (&str, Option<&str>)> {
    fleet
        .clusters
        .iter()
        .map(|c| (c.account.as_str(), c.aws_role_arn.as_deref()))
}

pub(super) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(CliError::Runtime)
}

/// Who is applying, for the lock and for blocks: user, host and process.
pub(super) fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host} (pid {})", std::process::id())
}
