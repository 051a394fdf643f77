//! `simulate`: predict a cluster's rollout on a simulated world.

use std::io::Write;
use std::path::PathBuf;

use super::world::{compile_fleet, runtime, unknown_cluster};
use super::{CliError, CliResult, ConfigArgs, OutputFormat, write_stdout};
use crate::apply::local::LocalWorld;
use crate::sim::{WorldDescription, predict, updated_pools};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The cluster whose rollout to predict.
    #[arg(long)]
    pub cluster: String,
    /// `local` (the world under `.flotilla/` next to the fleet) or a world description
    /// file (YAML or JSON; fields documented in `flotilla::sim::WorldDescription`).
    #[arg(long, value_name = "local|FILE", default_value = "local")]
    pub world: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Predict the rollout of the cluster's outdated pools on a copy of a simulated world:
/// each pool's stack update is assumed done (new instances boot with the new config
/// hash), then the rolling engine runs with the pool's settings.
pub fn simulate_command(args: SimulateArgs) -> CliResult<i32> {
    let Some((fleet, compilation)) = compile_fleet(
        &args.path,
        std::slice::from_ref(&args.cluster),
        &args.config,
    )?
    else {
        return Ok(1);
    };
    let cluster = fleet
        .cluster(&args.cluster)
        .ok_or_else(|| unknown_cluster(&args.cluster, &args.path, &fleet))?;
    let artifacts = compilation
        .artifacts
        .iter()
        .find(|a| a.cluster == cluster.id)
        .ok_or_else(|| CliError::NotCompiled(cluster.id.clone()))?;
    let mut world = if args.world == "local" {
        LocalWorld::open(&args.path)?.handle().snapshot()
    } else {
        let text = std::fs::read_to_string(&args.world).map_err(|source| CliError::Read {
            path: PathBuf::from(&args.world),
            source,
        })?;
        WorldDescription::parse(&args.world, &text)?.build()
    };
    let rolls = updated_pools(&mut world, cluster, &artifacts.summary.node_pools);
    if rolls.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "{}: the world has no node pool of this cluster to roll",
            cluster.id
        );
    }
    let prediction = runtime()?.block_on(predict(&world, &rolls));
    match args.format {
        OutputFormat::Text => write_stdout(&prediction.to_text())?,
        OutputFormat::Json => write_stdout(
            &(serde_json::to_string_pretty(&prediction).map_err(|source| CliError::Json {
                what: "prediction",
                source,
            })? + "\n"),
        )?,
    }
    Ok(i32::from(
        prediction.pools.iter().any(|p| p.failure.is_some()),
    ))
}
