//! The typed model: every cluster of the example fleet converts, serializes exactly as
//! the evaluated data (so templates see the same context), keeps where its clusters and
//! pools are written, and a stdlib field the model does not follow fails the conversion.

#[path = "support/files.rs"]
mod files;

use std::path::Path;
use std::time::Duration;

use files::TempDir;
use flotilla::analysis::{Analysis, Keep, analyze, analyze_each_cluster, analyze_keeping};
use flotilla::eval::Data;
use flotilla::model::{CapacityType, Environment, Fleet, LifecycleStatus};
use flotilla::source::{DiskFs, MemoryFs};

fn example_fleet() -> Analysis {
    let analysis = analyze(&DiskFs, Path::new("examples/fleet"));
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
    analysis
}

#[test]
fn every_cluster_of_the_example_fleet_converts_and_serializes_as_evaluated() {
    let analysis = example_fleet();
    let evaluated = analysis.fleet.as_ref().unwrap();
    let model = analysis.model.as_ref().unwrap();
    assert_eq!(model.clusters.len(), evaluated.clusters.len());
    assert!(model.clusters.len() >= 5, "the example fleet has shrunk");
    for (typed, data) in model.clusters.iter().zip(&evaluated.clusters) {
        // Compared as text: key order is part of what templates see.
        assert_eq!(
            serde_json::to_string(typed).unwrap(),
            serde_json::to_string(data).unwrap(),
            "cluster {}",
            typed.id
        );
    }
    assert_eq!(
        serde_json::to_string(&model.channels).unwrap(),
        serde_json::to_string(&evaluated.channels).unwrap()
    );
}

#[test]
fn the_model_holds_typed_values() {
    let analysis = example_fleet();
    let model = analysis.model.as_ref().unwrap();
    let checkout = model.cluster("aws-eu-central-1-prod-checkout").unwrap();
    assert_eq!(checkout.environment, Environment::Production);
    assert_eq!(checkout.lifecycle_status, LifecycleStatus::Ready);
    assert_eq!(checkout.channel.name, "stable");
    let worker = checkout
        .node_pools
        .iter()
        .find(|p| p.name == "default-worker")
        .unwrap();
    assert_eq!((worker.min_size, worker.max_size), (6, 60));
    assert_eq!(worker.update.max_surge, 6);
    // The production default of the stdlib, as a typed duration.
    assert_eq!(
        worker.update.force_terminate_after,
        Duration::from_secs(3 * 24 * 3600)
    );
    assert!(
        checkout
            .node_pools
            .iter()
            .any(|p| p.capacity_type == CapacityType::Spot)
    );
}

const FLEET: &str = r#"channel stable {
  kubernetes_version = "1.31.4"
  config_ref = "main"
}
let shared = [NodePool { name = "shared"  instance_types = ["m5.large"]  max_size = 2 }]
cluster "c1" {
  account = "123456789012"
  region = "eu-central-1"
  environment = test
  channel = stable
  api_server_url = "https://c1.example.org"
  ...shared
  node_pool "own" {
    instance_types = ["m5.large"]
    max_size = 4
    profile = "worker-default"
  }
}
"#;

fn memory_fleet() -> Analysis {
    let mut fs = MemoryFs::new();
    fs.insert("fleet/main.flt", FLEET);
    let analysis = analyze(&fs, Path::new("fleet"));
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
    analysis
}

#[test]
fn clusters_and_pools_know_where_they_are_written() {
    let analysis = memory_fleet();
    let model = analysis.model.as_ref().unwrap();
    let cluster = model.cluster("c1").unwrap();
    let text = |span: flotilla::span::Span| &FLEET[span.range()];
    assert_eq!(text(cluster.source.label), "\"c1\"");
    let own = &cluster.node_pools[1];
    assert_eq!(own.name, "own");
    assert!(own.source.declared);
    assert_eq!(text(own.source.label), "\"own\"");
    assert_eq!(own.profile_span().map(text), Some("\"worker-default\""));
    // A pool from a spread has no block of its own: it points at its cluster.
    let shared = &cluster.node_pools[0];
    assert_eq!(shared.name, "shared");
    assert!(!shared.source.declared);
    assert_eq!(shared.source.label, cluster.source.label);
    assert_eq!(shared.profile_span(), None);
}

/// A fleet of `n` clusters in three files, declared out of id order, where every third
/// cluster fails a check (min_size above max_size) and every fifth divides by zero.
fn fleet_with_failures(n: usize) -> MemoryFs {
    let mut fs = MemoryFs::new();
    fs.insert(
        "fleet/channels.flt",
        "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}\n",
    );
    let mut files = vec![String::from("import \"./channels.flt\"\n"); 3];
    for i in 0..n {
        let id = format!("c{:02}", (i * 7) % n);
        let min_size = if i % 3 == 0 { 9 } else { 1 };
        let divisor = if i % 5 == 0 { 0 } else { 1 };
        files[i % 3].push_str(&format!(
            "cluster \"{id}\" {{\n  account = \"123456789012\"\n  region = \"eu-central-1\"\n  environment = test\n  channel = stable\n  api_server_url = \"https://{id}.example.org\"\n  node_pool \"w\" {{\n    instance_types = [\"m5.large\"]\n    min_size = {min_size}\n    max_size = 4 / {divisor}\n  }}\n}}\n"
        ));
    }
    for (i, text) in files.into_iter().enumerate() {
        fs.insert(format!("fleet/f{i}.flt"), text);
    }
    fs
}

#[test]
fn what_an_analysis_keeps_does_not_change_its_diagnostics_or_model() {
    // Enough clusters that evaluation runs on several threads.
    let fs = fleet_with_failures(40);
    let everything = analyze(&fs, Path::new("fleet"));
    let codes: Vec<_> = everything
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect();
    assert!(codes.len() > 10, "{:#?}", everything.diagnostics);
    assert!(codes.contains(&"E0301"), "{codes:?}");
    let full_model = everything.model.as_ref().unwrap();
    assert!(full_model.clusters.len() > 10);

    let model_only = analyze_keeping(&fs, Path::new("fleet"), Keep::Model);
    assert_eq!(model_only.diagnostics, everything.diagnostics);
    assert!(model_only.fleet.is_none());
    assert_eq!(
        format!("{:?}", model_only.model.as_ref().unwrap()),
        format!("{full_model:?}")
    );

    let diagnostics_only = analyze_keeping(&fs, Path::new("fleet"), Keep::Diagnostics);
    assert_eq!(diagnostics_only.diagnostics, everything.diagnostics);
    assert!(diagnostics_only.fleet.is_none() && diagnostics_only.model.is_none());
}

#[test]
fn each_cluster_gets_its_model_in_id_order_with_the_same_diagnostics() {
    // Ids out of declaration order, on several threads, some clusters failing.
    let fs = fleet_with_failures(40);
    let model_only = analyze_keeping(&fs, Path::new("fleet"), Keep::Model);
    assert!(model_only.has_errors());
    let (analysis, clusters) = analyze_each_cluster(&fs, Path::new("fleet"), |c| c.id);
    assert_eq!(analysis.diagnostics, model_only.diagnostics);
    assert!(clusters.is_none(), "a fleet with errors gives no clusters");
    assert!(analysis.model.is_none() && analysis.fleet.is_none());

    let fs = valid_fleet(40);
    let model = analyze_keeping(&fs, Path::new("fleet"), Keep::Model)
        .model
        .unwrap();
    let (analysis, each) = analyze_each_cluster(&fs, Path::new("fleet"), |c| c.id);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
    let each = each.unwrap();
    let ids: Vec<_> = model.cluster_ids().map(str::to_string).collect();
    assert_eq!(each.clusters, ids);
    assert_eq!(ids.first().map(String::as_str), Some("c00"));
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        format!("{:?}", each.channels),
        format!("{:?}", model.channels)
    );
}

#[test]
fn eval_json_prints_the_model_as_serde_json_pretty_prints_it() {
    let dir = TempDir::new("eval-json");
    for (name, source) in [
        ("fleet", valid_fleet_files(40)),
        ("none", valid_fleet_files(0)),
    ] {
        for (path, text) in source {
            let path = dir.join(name).join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let fleet = dir.join(name).join("fleet");
        let model = analyze_keeping(&DiskFs, &fleet, Keep::Model).model.unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(["eval", "--format", "json"])
            .arg(&fleet)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let expected = serde_json::to_string_pretty(&model).unwrap() + "\n";
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            expected,
            "{name}"
        );
    }
}

fn valid_fleet(n: usize) -> MemoryFs {
    let mut fs = MemoryFs::new();
    for (path, text) in valid_fleet_files(n) {
        fs.insert(path, text);
    }
    fs
}

/// `n` valid clusters in three files, declared out of the order of their ids, and a
/// channel: (path, text) under `fleet/`.
fn valid_fleet_files(n: usize) -> Vec<(String, String)> {
    let mut fleet = vec![(
        "fleet/channels.flt".to_string(),
        "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}\n"
            .to_string(),
    )];
    let mut files = vec![String::from("import \"./channels.flt\"\n"); 3];
    for i in 0..n {
        let id = format!("c{:02}", (i * 7) % n);
        files[i % 3].push_str(&format!(
            "cluster \"{id}\" {{\n  account = \"123456789012\"\n  region = \"eu-central-1\"\n  environment = test\n  channel = stable\n  api_server_url = \"https://{id}.example.org\"\n  node_pool \"w\" {{\n    instance_types = [\"m5.large\"]\n    min_size = 1\n    max_size = {}\n    labels = {{ \"team\": \"t{i}\" }}\n  }}\n}}\n",
            i % 9 + 1
        ));
    }
    for (i, text) in files.into_iter().enumerate() {
        fleet.push((format!("fleet/f{i}.flt"), text));
    }
    fleet
}

/// The record at `path` (field names; list items by index) inside `data`.
fn record_at<'a>(data: &'a mut Data, path: &[&str]) -> &'a mut Vec<(String, Data)> {
    let mut here = data;
    for part in path {
        here = match here {
            Data::List(items) => &mut items[part.parse::<usize>().unwrap()],
            Data::Record(record) => {
                &mut record
                    .fields
                    .iter_mut()
                    .find(|(name, _)| name == part)
                    .unwrap()
                    .1
            }
            other => panic!("no `{part}` in {other:?}"),
        };
    }
    match here {
        Data::Record(record) => &mut record.fields,
        other => panic!("not a record: {other:?}"),
    }
}

fn convert_with(change: impl Fn(&mut Data)) -> Vec<String> {
    let analysis = memory_fleet();
    let mut evaluated = analysis.fleet.clone().unwrap();
    change(&mut evaluated.clusters[0]);
    let (model, problems) = Fleet::from_evaluated(&analysis.program, &evaluated);
    assert!(model.clusters.is_empty(), "the cluster should be left out");
    problems
        .iter()
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect()
}

#[test]
fn a_renamed_stdlib_field_fails_the_conversion() {
    let problems = convert_with(|cluster| {
        let update = record_at(cluster, &["node_pools", "1", "update"]);
        update[0].0 = "max_surge_nodes".into();
    });
    assert_eq!(
        problems,
        [
            "E0307: the evaluated fleet does not fit flotilla's model: `UpdateStrategy` has no field `max_surge`, which flotilla reads"
        ]
    );
}

#[test]
fn a_stdlib_field_the_model_does_not_read_fails_the_conversion() {
    let problems = convert_with(|cluster| {
        record_at(cluster, &[]).push(("registry_id".into(), Data::String("r-1".into())));
    });
    assert_eq!(
        problems,
        [
            "E0307: the evaluated fleet does not fit flotilla's model: `Cluster` has a field `registry_id` that flotilla does not read"
        ]
    );
}

#[test]
fn a_retyped_stdlib_field_fails_the_conversion() {
    let problems = convert_with(|cluster| {
        let pool = record_at(cluster, &["node_pools", "0"]);
        let min_size = pool.iter_mut().find(|(n, _)| n == "min_size").unwrap();
        min_size.1 = Data::String("1".into());
    });
    assert_eq!(
        problems,
        [
            "E0307: the evaluated fleet does not fit flotilla's model: `NodePool.min_size` is a String, but flotilla expects an Int"
        ]
    );
}
