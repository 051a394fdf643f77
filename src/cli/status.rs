//! `status`, `block` and `unblock`: what runs in each cluster, and the update block
//! that stops applies.

use std::path::PathBuf;

use super::world::{Backend, Endpoints, compile_fleet, runtime, targets, unknown_cluster, who};
use super::{CliError, CliResult, ConfigArgs, OutputFormat, write_stdout};
use crate::apply::{self, Block, rfc3339};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Show only this cluster (repeatable).
    #[arg(long = "cluster", value_name = "ID")]
    pub clusters: Vec<String>,
    /// `text` (a table per cluster) or `json` (stable: see `flotilla status --help`).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(clap::Args)]
pub struct BlockArgs {
    /// The cluster to block.
    pub cluster: String,
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Why (shown to everyone whose apply is refused).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(clap::Args)]
pub struct UnblockArgs {
    /// The cluster to unblock.
    pub cluster: String,
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn status_command(args: StatusArgs) -> CliResult<i32> {
    let Some((fleet, compilation)) = compile_fleet(&args.path, &args.clusters, &args.config)?
    else {
        return Ok(1);
    };
    let fleet = &fleet;
    let targets = targets(fleet, &compilation);
    let backend = Backend::open(&args.endpoints, fleet, &args.path)?;
    let world = backend.world();
    let statuses = runtime()?.block_on(async {
        let mut out = Vec::new();
        for target in &targets {
            if let Some(spec) = fleet.cluster(&target.artifacts.cluster) {
                out.push(apply::status::cluster_status(target.artifacts, spec, &world).await);
            }
        }
        out
    });
    backend.save()?;
    match args.format {
        OutputFormat::Text => write_stdout(&apply::status::to_text(&statuses))?,
        OutputFormat::Json => write_stdout(
            &(serde_json::to_string_pretty(&statuses).map_err(|source| CliError::Json {
                what: "status",
                source,
            })? + "\n"),
        )?,
    }
    Ok(i32::from(statuses.iter().any(|s| s.error.is_some())))
}

/// Block or unblock one cluster: `reason` set blocks it.
fn set_block(
    cluster: &str,
    path: &std::path::Path,
    endpoints: &Endpoints,
    config: &ConfigArgs,
    reason: Option<String>,
) -> CliResult<i32> {
    let Some((fleet, _)) = compile_fleet(path, &[cluster.to_string()], config)? else {
        return Ok(1);
    };
    let spec = fleet
        .cluster(cluster)
        .ok_or_else(|| unknown_cluster(cluster, path, &fleet))?;
    let backend = Backend::open(endpoints, &fleet, path)?;
    let world = backend.world();
    let message: Result<String, crate::live::LiveError> = runtime()?.block_on(async {
        // Only the cluster's API is used below: the guard is asked for explicitly.
        world
            .accounts
            .check(&spec.account, spec.aws_role_arn.as_deref(), &spec.region)
            .await?;
        let api = world
            .connector
            .connect(&spec.id, &spec.api_server_url)
            .await?;
        match reason {
            Some(reason) => {
                let block = Block {
                    by: who(),
                    reason,
                    at: rfc3339(world.clock.now_ms()),
                };
                apply::set_block(api.as_ref(), &block).await?;
                Ok(format!("{cluster}: {block}\n"))
            }
            None => Ok(if apply::clear_block(api.as_ref()).await? {
                format!("{cluster}: unblocked\n")
            } else {
                format!("{cluster}: was not blocked\n")
            }),
        }
    });
    backend.save()?;
    match message {
        Ok(text) => {
            write_stdout(&text)?;
            Ok(0)
        }
        Err(source) => Err(CliError::Cluster {
            cluster: cluster.to_string(),
            source,
        }),
    }
}

pub fn block_command(args: BlockArgs) -> CliResult<i32> {
    set_block(
        &args.cluster,
        &args.path,
        &args.endpoints,
        &args.config,
        Some(args.reason),
    )
}

pub fn unblock_command(args: UnblockArgs) -> CliResult<i32> {
    set_block(
        &args.cluster,
        &args.path,
        &args.endpoints,
        &args.config,
        None,
    )
}
