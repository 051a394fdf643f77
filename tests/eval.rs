//! Evaluation: defaults (including the environment-dependent ones), spreads, merges,
//! expressions and builtins, through the public front end.

use std::path::Path;

use flotilla::analysis::analyze;
use flotilla::eval::{Data, Fleet};
use flotilla::source::MemoryFs;

const CHANNEL: &str =
    "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}\n";

fn eval(source: &str) -> Fleet {
    let mut fs = MemoryFs::new();
    fs.insert("fleet/main.flt", format!("{CHANNEL}{source}"));
    let analysis = analyze(&fs, Path::new("fleet"));
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
    analysis.fleet.unwrap()
}

fn cluster(environment: &str, body: &str) -> String {
    format!(
        "cluster \"c1\" {{\n  account = \"123456789012\"\n  region = \"eu-central-1\"\n  environment = {environment}\n  channel = stable\n  api_server_url = \"https://${{id}}.example.org\"\n{body}}}\n"
    )
}

const POOL: &str =
    "  node_pool \"w\" {\n    instance_types = [\"m5.large\"]\n    max_size = 4\n  }\n";

fn path<'a>(data: &'a Data, path: &str) -> &'a Data {
    path.split('.')
        .fold(data, |d, part| match part.parse::<usize>() {
            Ok(i) => &d.as_list()[i],
            Err(_) => d
                .get(part)
                .unwrap_or_else(|| panic!("no `{part}` in {d:?}")),
        })
}

fn text(fleet: &Fleet, at: &str) -> String {
    let value = serde_json::to_value(path(&fleet.clusters[0], at)).unwrap();
    match value {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

#[test]
fn force_termination_waits_3_days_in_production_and_8_hours_in_test() {
    let prod = eval(&cluster("production", POOL));
    assert_eq!(
        text(&prod, "node_pools.0.update.force_terminate_after"),
        "3d"
    );
    assert_eq!(text(&prod, "node_pools.0.update.respect_pdbs"), "true");
    let test = eval(&cluster("test", POOL));
    assert_eq!(
        text(&test, "node_pools.0.update.force_terminate_after"),
        "8h"
    );
}

#[test]
fn every_default_is_filled_in() {
    let fleet = eval(&cluster("production", POOL));
    assert_eq!(text(&fleet, "api_server_url"), "https://c1.example.org");
    assert_eq!(
        text(&fleet, "kubernetes_version"),
        "1.31.4",
        "from the channel"
    );
    assert_eq!(text(&fleet, "lifecycle_status"), "ready");
    assert_eq!(text(&fleet, "config_items.etcd_member_count"), "5");
    // Sized from the cluster: 256Mi + 2Mi for each of the 4 nodes the pool can reach.
    assert_eq!(text(&fleet, "config_items.coredns_memory_limit"), "264Mi");
    assert_eq!(text(&fleet, "node_pools.0.min_size"), "1");
    assert_eq!(text(&fleet, "node_pools.0.capacity_type"), "on_demand");
    assert_eq!(text(&fleet, "node_pools.0.root_volume_size"), "50Gi");
    let test = eval(&cluster("test", POOL));
    assert_eq!(text(&test, "config_items.etcd_member_count"), "3");
}

#[test]
fn spread_records_are_adjusted_by_blocks_and_nested_blocks_merge() {
    let fleet = eval(&format!(
        "let base = NodePool {{\n  name = \"base\"\n  instance_types = [\"m5.large\"]\n  max_size = 4\n  labels = {{ \"team\": \"a\" }}\n  update {{\n    force_terminate_after = 7d\n  }}\n}}\n{}",
        cluster(
            "production",
            "  node_pool \"w\" {\n    ...base\n    max_size = 8\n    update {\n      max_surge = 1\n    }\n  }\n"
        )
    ));
    assert_eq!(
        text(&fleet, "node_pools.0.name"),
        "w",
        "the label wins over the spread name"
    );
    assert_eq!(text(&fleet, "node_pools.0.max_size"), "8");
    assert_eq!(text(&fleet, "node_pools.0.labels.team"), "a");
    assert_eq!(text(&fleet, "node_pools.0.update.max_surge"), "1");
    assert_eq!(
        text(&fleet, "node_pools.0.update.force_terminate_after"),
        "7d",
        "kept from the spread"
    );
}

#[test]
fn spread_lists_add_node_pools() {
    let fleet = eval(&format!(
        "let system = [NodePool {{\n  name = \"system\"\n  instance_types = [\"m5.large\"]\n  max_size = 3\n  taint {{\n    key = \"dedicated\"\n    value = \"system\"\n  }}\n}}]\n{}",
        cluster(
            "test",
            &format!(
                "{POOL}  ...system\n  node_pool \"z\" {{\n    instance_types = [\"m5.large\"]\n    max_size = 2\n  }}\n"
            )
        )
    ));
    let names: Vec<String> = path(&fleet.clusters[0], "node_pools")
        .as_list()
        .iter()
        .map(|p| p.get("name").unwrap().as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["w", "system", "z"], "pools keep their source order");
    let system = path(&fleet.clusters[0], "node_pools")
        .as_list()
        .iter()
        .find(|p| p.get("name").unwrap().as_str() == Some("system"))
        .unwrap();
    assert_eq!(
        serde_json::to_value(system.get("taints").unwrap()).unwrap(),
        serde_json::json!([{"key": "dedicated", "value": "system", "effect": "NoSchedule"}])
    );
}

#[test]
fn expressions_builtins_and_units_evaluate() {
    let fleet = eval(&format!(
        "let zones = [\"a\", \"b\", \"c\"]\nlet per_zone = 4\n{}",
        cluster(
            "production",
            "  owner = upper(join([\"team-${z}\" for z in zones if z != \"b\"], \"+\"))\n  config_items {\n    coredns_memory_limit = 100Mi * 3\n    etcd_backup_interval = 90m + 30m\n    namespace_pod_quota = if per_zone * len(zones) > 10 then 2000 else 1000\n    custom = { \"subnet\": cidr_subnet(\"10.0.0.0/16\", 8, 3), \"digest\": sha256(\"x\") } + { \"zone_count\": to_string(len(zones)) }\n  }\n  node_pool \"w\" {\n    instance_types = [\"m5.large\"]\n    max_size = per_zone * len(zones)\n    min_size = max_size / 4\n  }\n"
        )
    ));
    assert_eq!(text(&fleet, "owner"), "TEAM-A+TEAM-C");
    assert_eq!(text(&fleet, "config_items.coredns_memory_limit"), "300Mi");
    assert_eq!(text(&fleet, "config_items.etcd_backup_interval"), "2h");
    assert_eq!(text(&fleet, "config_items.namespace_pod_quota"), "2000");
    assert_eq!(text(&fleet, "config_items.custom.subnet"), "10.0.3.0/24");
    assert_eq!(
        text(&fleet, "config_items.custom.digest"),
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    );
    assert_eq!(text(&fleet, "config_items.custom.zone_count"), "3");
    assert_eq!(text(&fleet, "node_pools.0.max_size"), "12");
    assert_eq!(
        text(&fleet, "node_pools.0.min_size"),
        "3",
        "fields refer to each other"
    );
}

#[test]
fn secrets_evaluate_to_their_redacted_form() {
    let fleet = eval(&cluster(
        "test",
        &format!(
            "  config_items {{\n    secrets = {{ \"api\": secret(\"api-token\", \"hunter2\") }}\n  }}\n{POOL}"
        ),
    ));
    let shown = text(&fleet, "config_items.secrets.api");
    assert!(
        shown.starts_with("<secret:api-token") && !shown.contains("hunter2"),
        "{shown}"
    );
    let Data::Secret(secret) = path(&fleet.clusters[0], "config_items.secrets.api") else {
        panic!()
    };
    assert_eq!(secret.reveal(), "hunter2");
}

#[test]
fn duplicate_pool_names_through_spreads_fail_the_cluster_check() {
    let mut fs = MemoryFs::new();
    let source = format!(
        "{CHANNEL}let extra = [NodePool {{\n  name = \"w\"\n  instance_types = [\"m5.large\"]\n  max_size = 2\n}}]\n{}",
        cluster("test", &format!("{POOL}  ...extra\n"))
    );
    fs.insert("fleet/main.flt", source);
    let analysis = analyze(&fs, Path::new("fleet"));
    let messages: Vec<&str> = analysis
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("node pool names must be unique, but these repeat: w")),
        "{messages:?}"
    );
}

#[test]
fn evaluation_is_deterministic() {
    let source = cluster("production", POOL);
    let a = serde_json::to_string(&eval(&source)).unwrap();
    let b = serde_json::to_string(&eval(&source)).unwrap();
    assert_eq!(a, b);
}

/// The language sketch of DESIGN.md, as written there, with a `pools.flt` that
/// provides the spread list; it must type-check and evaluate.
const DESIGN_SKETCH: &str = r#"import "std/aws"                      // stdlib module shipped in stdlib/
import "./pools.flt" as pools         // relative module

channel stable {
  kubernetes_version = "1.31.4"
  config_ref = "stable"               // git ref of the config set used by this channel
}

cluster "foobar" {
  account     = "123456789012"
  region      = "eu-central-1"
  environment = production            // enum from std/aws
  channel     = stable                // reference, checked
  api_server_url = "https://${id}.example.org"

  config_items {
    etcd_instance_type = "m5.large"
    coredns_memory_limit = 200Mi      // quantity literal, typed
  }

  node_pool "default-worker" {
    instance_types = ["m5.large", "m5.xlarge"]
    min_size = 3
    max_size = 20
    update { max_surge = 1  force_terminate_after = 3d }   // duration literal
  }
  ...pools.system                      // spread a list/record from another module
}
"#;

#[test]
fn the_design_sketch_type_checks_and_evaluates() {
    let mut fs = MemoryFs::new();
    fs.insert("fleet/main.flt", DESIGN_SKETCH);
    fs.insert(
        "fleet/pools.flt",
        "let system = [NodePool { name = \"system\"  instance_types = [\"m5.large\"]  max_size = 4 }]\n",
    );
    let analysis = analyze(&fs, Path::new("fleet/main.flt"));
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
    let fleet = analysis.fleet.unwrap();
    assert_eq!(text(&fleet, "api_server_url"), "https://foobar.example.org");
    assert_eq!(text(&fleet, "config_items.etcd_instance_type"), "m5.large");
    assert_eq!(text(&fleet, "node_pools.0.name"), "default-worker");
    assert_eq!(text(&fleet, "node_pools.0.update.max_surge"), "1");
    assert_eq!(text(&fleet, "node_pools.1.name"), "system");
}

#[test]
fn the_design_record_type_snippet_type_checks() {
    // DESIGN.md's example of a record type with a default and a check, in a user module
    // (named so it does not shadow the stdlib's NodePool).
    let mut fs = MemoryFs::new();
    fs.insert(
        "fleet/main.flt",
        "type SketchPool {\n  name: String\n  instance_types: [InstanceType]\n  min_size: Int = 1\n  max_size: Int\n  check min_size <= max_size : \"min_size must not exceed max_size\"\n}\n\
         let _ok = SketchPool { name = \"a\"  instance_types = [\"m5.large\"]  max_size = 2 }\n",
    );
    let analysis = analyze(&fs, Path::new("fleet/main.flt"));
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
}

/// Codes reported for a fleet (type errors and evaluation errors alike).
fn codes(source: &str) -> Vec<&'static str> {
    let mut fs = MemoryFs::new();
    fs.insert("fleet/main.flt", format!("{CHANNEL}{source}"));
    analyze(&fs, Path::new("fleet"))
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect()
}

#[test]
fn a_value_that_is_always_null_is_a_type_error_not_an_internal_one() {
    let pool = "  node_pool \"w\" {\n    instance_types = [\"m5.large\"]\n    min_size = y\n    max_size = 2\n  }\n";
    let source = format!(
        "let x = null ?? null\nlet y: Int = x\n{}",
        cluster("test", pool)
    );
    assert_eq!(codes(&source), ["E0214"]);
    // The same value given a fallback is fine.
    let fleet = eval(&format!(
        "let x = null ?? null\nlet y: Int = x ?? 2\n{}",
        cluster("test", pool)
    ));
    assert_eq!(text(&fleet, "node_pools.0.min_size"), "2");
    // In a branch, the error points at the branch that is null, not at the whole `if`.
    let mut fs = MemoryFs::new();
    fs.insert(
        "fleet/main.flt",
        "let x = null\nlet y: Int = if true then x else 1\n",
    );
    let analysis = analyze(&fs, Path::new("fleet"));
    let [d] = analysis.diagnostics.as_slice() else {
        panic!("{:#?}", analysis.diagnostics)
    };
    let span = d.primary.as_ref().unwrap().span;
    assert_eq!((d.code.as_str(), span.start, span.end), ("E0214", 39, 40));
}

#[test]
fn coalescing_chains_over_optionals() {
    let lets = "let a: Int? = null\nlet b: Int? = 3\nlet n: Int? = null\n\
                let c: Int = a ?? b ?? 0\nlet d: Int? = a ?? b\nlet e: Int = a ?? n ?? 7\n\
                let f: Int? = a ?? n\nlet g = a ?? b\nlet h = null ?? 5\nlet t = f == null\n";
    let fleet = eval(&format!(
        "{lets}{}",
        cluster(
            "test",
            &format!(
                "  owner = \"${{c}} ${{d ?? -1}} ${{e}} ${{f ?? -1}} ${{g ?? 0}} ${{h}} ${{t}} ${{b == null}}\"\n{POOL}"
            )
        )
    ));
    assert_eq!(text(&fleet, "owner"), "3 3 7 -1 3 5 true false");
    // An optional result still needs a fallback where a value is required.
    assert_eq!(codes(&format!("{lets}let z: Int = a ?? n\n")), ["E0202"]);
    assert_eq!(codes(&format!("{lets}let z: Int = g\n")), ["E0202"]);
    assert_eq!(
        codes(&format!("{lets}let z: Int = a ?? \"x\"\n")),
        ["E0202"]
    );
}

#[test]
fn an_assigned_pool_list_and_pool_blocks_combine_in_source_order() {
    let list = "  node_pools = [NodePool { name = \"zz-${region}\" instance_types = [\"m5.large\"] max_size = 2 }]\n";
    let names = |fleet: &Fleet| -> Vec<String> {
        path(&fleet.clusters[0], "node_pools")
            .as_list()
            .iter()
            .map(|p| p.get("name").unwrap().as_str().unwrap().to_string())
            .collect()
    };
    let list_first = eval(&cluster("test", &format!("{list}{POOL}")));
    assert_eq!(names(&list_first), ["zz-eu-central-1", "w"]);
    let blocks_first = eval(&cluster("test", &format!("{POOL}{list}")));
    assert_eq!(names(&blocks_first), ["w", "zz-eu-central-1"]);
    // Assigning the list twice is still setting a field twice.
    assert_eq!(
        codes(&cluster("test", &format!("{list}{POOL}{list}"))),
        ["E0108"]
    );
}

#[test]
fn float_arithmetic_that_leaves_the_finite_range_overflows() {
    let pool = |size: &str| {
        format!(
            "  node_pool \"w\" {{\n    instance_types = [\"m5.large\"]\n    max_size = if {size} > 0.0 then 3 else 2\n  }}\n"
        )
    };
    assert_eq!(
        codes(&cluster("test", &pool("1.0e300 * 1.0e300"))),
        ["E0303"]
    );
    assert_eq!(
        codes(&cluster("test", &pool("-1.0e308 - 1.0e308"))),
        ["E0303"]
    );
    let fleet = eval(&cluster("test", &pool("1.0e300 * 2.0")));
    assert_eq!(text(&fleet, "node_pools.0.max_size"), "3");
}

#[test]
fn int_values_typed_as_float_compare_with_floats() {
    let lets = "let i = 1\nlet f: Float = i\nlet xs: [Float] = [i]\nlet a: Float? = null\n";
    let fleet = eval(&format!(
        "{lets}{}",
        cluster(
            "test",
            &format!(
                "  owner = \"${{min(f, 2.0)}} ${{max(a ?? i, 0.5)}} ${{xs == [1.0]}} ${{contains(xs, 1.0)}}\"\n{POOL}"
            )
        )
    ));
    assert_eq!(text(&fleet, "owner"), "1 1 true true");
}

/// Enough clusters that evaluation is split over threads (where the machine has more
/// than one core): every cluster keeps its own values, failures are reported once each
/// in source order, and the fleet comes back sorted by id whatever thread evaluated it.
/// A record read field by field (`shared.force_terminate_after`) gets each cluster's
/// own defaults, though its reads are shared within a cluster.
#[test]
fn many_clusters_evaluate_apart_in_source_order() {
    let failing = [5, 23, 38];
    let mut fs = MemoryFs::new();
    fs.insert(
        "fleet/channels.flt",
        format!("{CHANNEL}let shared = UpdateStrategy {{}}\n"),
    );
    for file in 0..4 {
        let mut text = String::from("import \"./channels.flt\"\n");
        for i in (file * 10)..(file * 10 + 10) {
            let environment = if i % 2 == 0 { "production" } else { "test" };
            let min_size = if failing.contains(&i) { 50 } else { 0 };
            text.push_str(&format!(
                "cluster \"c{i:02}\" {{\n  account = \"123456789012\"\n  region = \"eu-central-1\"\n  environment = {environment}\n  channel = stable\n  api_server_url = \"https://${{id}}.example.org\"\n  owner = \"${{shared.force_terminate_after}}\"\n  node_pool \"w\" {{\n    instance_types = [\"m5.large\"]\n    min_size = {min_size}\n    max_size = {}\n  }}\n}}\n",
                i + 1
            ));
        }
        fs.insert(format!("fleet/clusters-{file}.flt"), text);
    }
    let analysis = analyze(&fs, Path::new("fleet"));
    let reported: Vec<String> = analysis
        .diagnostics
        .iter()
        .map(|d| format!("{:?} {}", d.code, d.message))
        .collect();
    let expected: Vec<String> = failing
        .iter()
        .map(|i| {
            format!(
                "E0302 NodePool `w`: min_size (50) must not exceed max_size ({})",
                i + 1
            )
        })
        .collect();
    assert_eq!(reported, expected);
    let fleet = analysis.fleet.unwrap();
    let ids: Vec<&str> = fleet
        .clusters
        .iter()
        .map(|c| c.get("id").and_then(Data::as_str).unwrap())
        .collect();
    let expected_ids: Vec<String> = (0..40)
        .filter(|i| !failing.contains(i))
        .map(|i| format!("c{i:02}"))
        .collect();
    assert_eq!(ids, expected_ids);
    for (cluster, id) in fleet.clusters.iter().zip(&expected_ids) {
        let i: i64 = id[1..].parse().unwrap();
        let owner = if i % 2 == 0 { "3d" } else { "8h" };
        assert_eq!(path(cluster, "owner").as_str(), Some(owner), "{id}");
        assert_eq!(path(cluster, "node_pools.0.max_size").as_int(), Some(i + 1));
    }
    let model = analysis.model.unwrap();
    assert!(
        model
            .cluster_ids()
            .eq(expected_ids.iter().map(String::as_str))
    );
}
