//! Compile benchmark: a generated fleet of 100 and 1,000 clusters (5 node pools each)
//! through the shipped config set, all artifacts written to disk. Reports wall time and
//! the share spent evaluating, rendering, validating and writing; then the same fleet
//! with the compile cache: cold (empty cache), warm with nothing changed, and warm after
//! one cluster's source is edited.
//! Run with `cargo bench --bench compile`.

#[path = "../tests/support/files.rs"]
mod files;
#[path = "support/fleet.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use files::TempDir;
use flotilla::analysis::analyze;
use flotilla::compile::{
    Cache, ConfigSource, compile, compile_with_cache, write_fleet_output, write_output,
};
use flotilla::render::validate;
use flotilla::source::FileSystem;
use support::fleet;

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    let config = ConfigSource::Dir(PathBuf::from("stdlib/config"));
    // The output's staging directories and the cache go beside it, in the scratch directory.
    let scratch = TempDir::new("bench-compile");
    let out = scratch.join("out");
    println!("clusters  files    bytes   total    front end   render      validate    write");
    for clusters in [100, 1000] {
        let (fs, _) = fleet(clusters);
        let _ = std::fs::remove_dir_all(&out);

        let start = Instant::now();
        let compilation = compile(&fs, Path::new("fleet"), &config, &[]);
        assert!(
            !compilation.has_errors(),
            "{:?}",
            compilation.diagnostics.first()
        );
        let compiled = start.elapsed();
        let start = Instant::now();
        write_output(&out, &compilation.artifacts, true).unwrap();
        let write = start.elapsed();

        // The parts of `compile`, measured again on their own.
        let start = Instant::now();
        let analysis = analyze(&fs, Path::new("fleet"));
        assert!(!analysis.has_errors());
        let front_end = start.elapsed();
        let start = Instant::now();
        let mut objects_checked = 0;
        for a in &compilation.artifacts {
            let mut index = validate::ObjectIndex::default();
            for (path, text) in &a.files {
                if path.starts_with("cloudformation/") {
                    // The artifact is already JSON; validating it again costs what the YAML did.
                    validate::cloudformation(text).unwrap();
                } else if path.starts_with("manifests/") {
                    validate::manifests(text, &mut index).unwrap();
                    objects_checked += 1;
                }
            }
        }
        // Validation runs on every core inside `compile`; scale the one-thread figure.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let validate = start.elapsed() / cores;
        let render = compiled.saturating_sub(front_end).saturating_sub(validate);
        let files: usize = compilation
            .artifacts
            .iter()
            .map(|a| a.files.len() + 1)
            .sum();
        let bytes: usize = compilation
            .artifacts
            .iter()
            .flat_map(|a| a.files.values())
            .map(String::len)
            .sum();
        let total = compiled + write;
        let share = |d: Duration| 100.0 * seconds(d) / seconds(total);
        println!(
            "{clusters:>8}  {files:>5}  {:>5.0} MB  {:>5.2} s  {:>5.2} s {:>3.0}%  {:>5.2} s {:>3.0}%  {:>5.2} s {:>3.0}%  {:>5.2} s {:>3.0}%",
            bytes as f64 / 1e6,
            seconds(total),
            seconds(front_end),
            share(front_end),
            seconds(render),
            share(render),
            seconds(validate),
            share(validate),
            seconds(write),
            share(write),
        );
        assert!(objects_checked > 0);
    }

    println!();
    println!("clusters  with the cache                  compile   write    total  rendered");
    let cache_dir = scratch.join("cache");
    for clusters in [100, 1000] {
        let (mut fs, _) = fleet(clusters);
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(&cache_dir);
        let cache = Cache::at(cache_dir.clone());
        for run in [
            "cold (empty cache)",
            "warm, nothing changed",
            "warm, 1 cluster edited",
        ] {
            if run.ends_with("edited") {
                let path = Path::new("fleet/clusters-0.flt");
                let text = String::from_utf8(fs.read(path).unwrap()).unwrap();
                fs.insert(path, text.replacen("max_size = 10", "max_size = 12", 1));
            }
            let start = Instant::now();
            let output = compile_with_cache(&fs, Path::new("fleet"), &config, &[], Some(&cache));
            assert!(!output.has_errors(), "{:?}", output.diagnostics.first());
            let compiled = start.elapsed();
            let start = Instant::now();
            write_fleet_output(&out, &output, true).unwrap();
            let write = start.elapsed();
            println!(
                "{clusters:>8}  {run:<28} {:>6.2} s {:>6.2} s {:>6.2} s  {:>8}",
                seconds(compiled),
                seconds(write),
                seconds(compiled + write),
                output.rendered().len()
            );
        }
    }
}
