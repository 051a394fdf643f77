//! Front-end benchmark: parse, check and evaluate generated fleets of 10, 100 and
//! 1,000 clusters with 5 node pools each. Run with `cargo bench --bench front_end`.

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "support/fleet.rs"]
mod support;

use flotilla::analysis::{Keep, analyze, analyze_keeping};
use flotilla::eval::evaluate;
use flotilla::model;
use flotilla::resolve::{STDLIB, load};
use flotilla::source::{FileId, FileSystem};
use flotilla::syntax;
use flotilla::types::check;
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
    // `front_end parse`: parsing alone, once, for a profiler (callgrind, perf).
    if std::env::args().any(|a| a == "parse") {
        parse_only(1);
        return;
    }
    println!(
        "clusters  pools  lines    check+eval (best of 5)  per cluster  diagnostics only (`check`)"
    );
    for clusters in [1, 10, 100, 1000] {
        let (fs, lines) = fleet(clusters);
        let mut evaluated = 0;
        let time = best_of(5, || {
            let analysis = analyze(&fs, Path::new("fleet"));
            assert!(!analysis.has_errors(), "generated fleet must be valid");
            evaluated = analysis.fleet.map_or(0, |f| f.clusters.len());
        });
        assert_eq!(evaluated, clusters);
        // What `check` runs: each cluster evaluated and read into the model, then dropped.
        let diagnostics_only = best_of(5, || {
            let analysis = analyze_keeping(&fs, Path::new("fleet"), Keep::Diagnostics);
            assert!(!analysis.has_errors(), "generated fleet must be valid");
        });
        println!(
            "{clusters:>8}  {:>5}  {lines:>6}  {:>20.1} ms  {:>8.1} µs  {:>23.1} ms",
            clusters * 5,
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() * 1e6 / clusters as f64,
            diagnostics_only.as_secs_f64() * 1e3
        );
    }
    phases();
    parse_only(5);
}

/// What every `check` and `eval` parses: the stdlib and the 1,000-cluster fleet's
/// files, each file with `syntax::parse_all`'s per-file function on one thread (best of
/// `runs`).
fn parse_only(runs: usize) {
    let (fs, _) = fleet(1000);
    let mut texts: Vec<String> = STDLIB.iter().map(|(_, text)| text.to_string()).collect();
    texts.extend(
        fs.flt_files(Path::new("fleet"))
            .iter()
            .filter_map(|path| fs.read(path))
            .filter_map(|bytes| String::from_utf8(bytes).ok()),
    );
    let bytes: usize = texts.iter().map(String::len).sum();
    let time = best_of(runs, || {
        for (i, text) in texts.iter().enumerate() {
            let (module, problems) = syntax::parse(FileId(i as u32), text);
            assert!(problems.is_empty(), "the stdlib and the fleet parse");
            drop(module);
        }
    });
    println!();
    println!(
        "parse only (stdlib + 1,000 clusters, {} files, {bytes} bytes, best of {runs}): {:.1} ms, {:.1} MB/s",
        texts.len(),
        time.as_secs_f64() * 1e3,
        bytes as f64 / time.as_secs_f64() / 1e6
    );
}

/// Each phase of an analysis on its own (best of 5): the one-cluster row shows what
/// every analysis pays for the stdlib whatever the fleet's size.
fn phases() {
    println!();
    println!("clusters  phases in ms (best of 5): load  check  evaluate  model");
    for clusters in [1, 1000] {
        let (fs, _) = fleet(clusters);
        let path = Path::new("fleet");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let load_time = best_of(5, || drop(load(&fs, path)));
        let program = load(&fs, path);
        let check_time = best_of(5, || drop(check(&program)));
        let checked = check(&program);
        let evaluate_time = best_of(5, || drop(evaluate(&program, &checked)));
        let (evaluated, problems) = evaluate(&program, &checked);
        assert!(problems.is_empty(), "generated fleet must evaluate");
        let model_time = best_of(5, || {
            drop(model::Fleet::from_evaluated(&program, &evaluated))
        });
        println!(
            "{clusters:>8}  {:>33.1}  {:>5.1}  {:>8.1}  {:>5.1}",
            ms(load_time),
            ms(check_time),
            ms(evaluate_time),
            ms(model_time)
        );
    }
}
