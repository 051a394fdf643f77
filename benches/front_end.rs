//! Front-end benchmark: parse, check and evaluate generated fleets of 10, 100 and
//! 1,000 clusters with 5 node pools each. Run with `cargo bench --bench front_end`.

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "support/fleet.rs"]
mod support;

use flotilla::analysis::analyze;
use support::fleet;

/// The allocator of the `flotilla` binary (src/main.rs), so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    println!("clusters  pools  lines    check+eval (best of 5)  per cluster");
    for clusters in [10, 100, 1000] {
        let (fs, lines) = fleet(clusters);
        let mut evaluated = 0;
        let time = best_of(5, || {
            let analysis = analyze(&fs, Path::new("fleet"));
            assert!(!analysis.has_errors(), "generated fleet must be valid");
            evaluated = analysis.fleet.map_or(0, |f| f.clusters.len());
        });
        assert_eq!(evaluated, clusters);
        println!(
            "{clusters:>8}  {:>5}  {lines:>6}  {:>20.1} ms  {:>8.1} µs",
            clusters * 5,
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() * 1e6 / clusters as f64
        );
    }
}
