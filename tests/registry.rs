//! `flotilla import-registry`: the generated source checks against the standard channels,
//! evaluates to the registry's values, is deterministic, and bad registries get errors
//! that say where the problem is.

#[path = "support/files.rs"]
mod files;

use std::path::Path;

use files::TempDir;
use flotilla::analysis::{Analysis, analyze};
use flotilla::diagnostic::render_all;
use flotilla::eval::Data;
use flotilla::registry::{ImportOptions, RegistryError, import};
use flotilla::source::MemoryFs;

fn options() -> ImportOptions {
    ImportOptions {
        channels_import: "../../channels".into(),
        production_channel: "stable".into(),
        test_channel: "beta".into(),
    }
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/registry")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn import_ok(yaml: &str) -> String {
    import(yaml, &options()).unwrap_or_else(|e| panic!("import failed: {e}"))
}

/// Analyse generated source placed at `fleet/imported/registry.flt`, so that its
/// `import "../../channels"` finds the repository's channel files at `channels/`.
fn analyze_imported(source: &str) -> Analysis {
    let mut fs = MemoryFs::new();
    let channels = Path::new(env!("CARGO_MANIFEST_DIR")).join("channels");
    let entries = std::fs::read_dir(&channels).expect("the repository has a channels/ directory");
    for entry in entries {
        let path = entry.expect("readable channels/ entry").path();
        if path.extension().is_some_and(|e| e == "flt") {
            let name = path.file_name().expect("a file name");
            let text = std::fs::read_to_string(&path).expect("readable channel file");
            fs.insert(Path::new("channels").join(name), text);
        }
    }
    fs.insert("fleet/imported/registry.flt", source);
    analyze(&fs, Path::new("fleet/imported"))
}

/// Import, check and evaluate; fails the test with rendered diagnostics if anything is reported.
fn evaluate_clean(yaml: &str) -> flotilla::eval::Fleet {
    let source = import_ok(yaml);
    let analysis = analyze_imported(&source);
    assert!(
        analysis.diagnostics.is_empty(),
        "generated source:\n{source}\ndiagnostics:\n{}",
        render_all(&analysis.program.sources, &analysis.diagnostics, false)
    );
    analysis.fleet.expect("a clean analysis evaluates")
}

fn cluster<'a>(fleet: &'a flotilla::eval::Fleet, id: &str) -> &'a Data {
    fleet
        .cluster(id)
        .unwrap_or_else(|| panic!("no cluster `{id}`"))
}

/// `record.a.b.c`
fn at<'a>(data: &'a Data, path: &str) -> &'a Data {
    path.split('.').fold(data, |d, field| {
        d.get(field)
            .unwrap_or_else(|| panic!("no field `{field}` in path `{path}`"))
    })
}

fn text<'a>(data: &'a Data, path: &str) -> &'a str {
    at(data, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not text"))
}

fn pool<'a>(cluster: &'a Data, name: &str) -> &'a Data {
    at(cluster, "node_pools")
        .as_list()
        .iter()
        .find(|p| p.get("name").and_then(Data::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no node pool `{name}`"))
}

/// Whether `source` has a line with these tokens, however the formatter aligned them.
fn has_line(source: &str, line: &str) -> bool {
    let wanted: Vec<&str> = line.split_whitespace().collect();
    source
        .lines()
        .any(|l| l.split_whitespace().eq(wanted.iter().copied()))
}

fn strings(data: &Data) -> Vec<&str> {
    data.as_list().iter().filter_map(Data::as_str).collect()
}

// ---- the fixture -------------------------------------------------------------------

#[test]
fn fixture_imports_to_source_that_checks_cleanly_next_to_the_channels() {
    let fleet = evaluate_clean(&fixture("registry.yaml"));
    let ids: Vec<&str> = fleet.clusters.iter().map(|c| text(c, "id")).collect();
    assert_eq!(
        ids,
        [
            "aws-eu-central-1-prod-checkout",
            "aws-eu-central-1-test-e2e",
            "aws-eu-west-1-prod-legacy",
            "aws-eu-west-1-test-checkout",
        ]
    );
}

#[test]
fn cluster_fields_carry_over() {
    let fleet = evaluate_clean(&fixture("registry.yaml"));
    let checkout = cluster(&fleet, "aws-eu-central-1-prod-checkout");
    assert_eq!(text(checkout, "account"), "210000000202");
    assert_eq!(text(checkout, "region"), "eu-central-1");
    assert_eq!(text(checkout, "environment"), "production");
    assert_eq!(text(checkout, "channel.name"), "stable");
    assert_eq!(text(checkout, "owner"), "team-checkout");
    assert_eq!(text(checkout, "lifecycle_status"), "ready");
    assert_eq!(
        text(checkout, "api_server_url"),
        "https://aws-eu-central-1-prod-checkout.clusters.example.org"
    );

    // `staging` and `e2e` are test environments; without a `channel` the test channel applies.
    let staging = cluster(&fleet, "aws-eu-west-1-test-checkout");
    assert_eq!(text(staging, "environment"), "test");
    assert_eq!(text(staging, "channel.name"), "beta");
    assert_eq!(text(staging, "lifecycle_status"), "requested");
    let e2e = cluster(&fleet, "aws-eu-central-1-test-e2e");
    assert_eq!(text(e2e, "environment"), "test");

    let legacy = cluster(&fleet, "aws-eu-west-1-prod-legacy");
    assert_eq!(text(legacy, "lifecycle_status"), "decommission_requested");
    assert_eq!(text(legacy, "channel.name"), "stable");
}

#[test]
fn node_pools_carry_over() {
    let fleet = evaluate_clean(&fixture("registry.yaml"));
    let checkout = cluster(&fleet, "aws-eu-central-1-prod-checkout");
    let names: Vec<&str> = at(checkout, "node_pools")
        .as_list()
        .iter()
        .map(|p| text(p, "name"))
        .collect();
    assert_eq!(names, ["system", "default-worker", "spot-worker"]);

    let system = pool(checkout, "system");
    assert_eq!(
        strings(at(system, "instance_types")),
        ["m6i.large", "m5.large"]
    );
    assert_eq!(at(system, "min_size").as_int(), Some(2));
    assert_eq!(at(system, "max_size").as_int(), Some(6));
    assert_eq!(text(system, "labels.dedicated"), "system");
    let taints = at(system, "taints").as_list();
    assert_eq!(taints.len(), 1);
    assert_eq!(text(&taints[0], "key"), "dedicated");
    assert_eq!(text(&taints[0], "value"), "system");
    assert_eq!(text(&taints[0], "effect"), "NoSchedule");

    let spot = pool(checkout, "spot-worker");
    assert_eq!(text(spot, "capacity_type"), "spot");
    assert_eq!(
        strings(at(spot, "instance_types")),
        ["m6i.xlarge", "m5.xlarge", "c6i.xlarge"]
    );
    assert_eq!(at(spot, "min_size").as_int(), Some(0));
    assert_eq!(at(spot, "max_size").as_int(), Some(40));

    let e2e = cluster(&fleet, "aws-eu-central-1-test-e2e");
    let worker = pool(e2e, "default-worker");
    assert_eq!(
        strings(at(worker, "instance_types")),
        ["c6i.xlarge", "c5.xlarge"]
    );
    assert_eq!(text(worker, "capacity_type"), "on_demand");
}

#[test]
fn known_config_items_become_typed_and_the_rest_custom() {
    let fleet = evaluate_clean(&fixture("registry.yaml"));
    let items = at(
        cluster(&fleet, "aws-eu-central-1-prod-checkout"),
        "config_items",
    );
    assert_eq!(text(items, "etcd_instance_type"), "m5.xlarge");
    match at(items, "coredns_memory_limit") {
        Data::Quantity(q) => assert_eq!(q.to_string(), "400Mi"),
        other => panic!("coredns_memory_limit is not a quantity: {other:?}"),
    }
    assert_eq!(
        at(items, "etcd_backup_interval"),
        &Data::Duration(30 * 60_000)
    );
    assert_eq!(at(items, "namespace_pod_quota").as_int(), Some(3000));
    assert_eq!(at(items, "cluster_autoscaler_enabled"), &Data::Bool(true));
    // Not in ConfigItems: kept as text under `custom`, numbers and booleans included.
    assert_eq!(
        text(items, "custom.payment_provider_egress_cidr"),
        "203.0.113.0/24"
    );
    assert_eq!(text(items, "custom.audit_log_retention_days"), "90");
    assert_eq!(text(items, "custom.vpa_enabled"), "true");

    let e2e = at(cluster(&fleet, "aws-eu-central-1-test-e2e"), "config_items");
    assert_eq!(
        at(e2e, "namespace_pod_quota").as_int(),
        Some(5000),
        "quoted numbers become Int"
    );
    assert_eq!(at(e2e, "coredns_ndots").as_int(), Some(3));

    let staging = at(
        cluster(&fleet, "aws-eu-west-1-test-checkout"),
        "config_items",
    );
    assert_eq!(
        at(staging, "cronjob_active_deadline"),
        &Data::Duration(90 * 60_000)
    );
    // `$` is escaped, so the registry's `${env}` stays text rather than interpolating.
    assert_eq!(
        text(staging, "custom.dns_zone"),
        "checkout.${env}.example.org"
    );

    let legacy = at(cluster(&fleet, "aws-eu-west-1-prod-legacy"), "config_items");
    assert_eq!(
        text(legacy, "cluster_update_block"),
        "Being retired, see \"INC-1234\""
    );
}

#[test]
fn fixture_source_snapshot() {
    insta::assert_snapshot!("fixture", import_ok(&fixture("registry.yaml")));
}

// ---- determinism ---------------------------------------------------------------------

#[test]
fn output_is_deterministic() {
    let yaml = fixture("registry.yaml");
    assert_eq!(import_ok(&yaml), import_ok(&yaml));
}

#[test]
fn config_item_order_in_the_registry_does_not_matter() {
    let one = "clusters:\n- id: a\n  api_server_url: https://a\n  environment: test\n  region: eu-west-1\n  infrastructure_account: aws:123456789012\n  config_items: {zeta: 1, etcd_instance_type: m5.large, alpha: 2, coredns_ndots: 3}\n";
    let other = "clusters:\n- region: eu-west-1\n  config_items: {coredns_ndots: 3, alpha: 2, etcd_instance_type: m5.large, zeta: 1}\n  infrastructure_account: aws:123456789012\n  environment: test\n  api_server_url: https://a\n  id: a\n";
    let source = import_ok(one);
    assert_eq!(source, import_ok(other));
    let alpha = source.find("\"alpha\"").expect("alpha in custom");
    let zeta = source.find("\"zeta\"").expect("zeta in custom");
    assert!(alpha < zeta, "custom keys are sorted:\n{source}");
}

// ---- conversions -----------------------------------------------------------------------

fn one_cluster(extra: &str) -> String {
    format!(
        "clusters:\n- id: aws-eu-west-1-test-a\n  api_server_url: https://a.example.org\n  environment: test\n  region: eu-west-1\n  infrastructure_account: aws:123456789012\n  node_pools:\n  - {{name: w, instance_type: m5.large, min_size: 1, max_size: 3}}\n{extra}"
    )
}

#[test]
fn text_with_quotes_backslashes_dollars_and_newlines_round_trips() {
    let yaml = one_cluster(concat!(
        "  owner: \"team \\\"quoted\\\" \\\\ back\\nslash ${not_interpolated} $$\"\n",
        "  config_items:\n",
        "    \"weird \\\"key\\\" ${x}\": \"tab\\there\"\n",
    ));
    let fleet = evaluate_clean(&yaml);
    let c = cluster(&fleet, "aws-eu-west-1-test-a");
    assert_eq!(
        text(c, "owner"),
        "team \"quoted\" \\ back\nslash ${not_interpolated} $$"
    );
    let custom = at(c, "config_items.custom");
    assert_eq!(text(custom, "weird \"key\" ${x}"), "tab\there");
}

#[test]
fn durations_and_quantities_are_normalised_exactly() {
    let yaml = one_cluster(concat!(
        "  config_items:\n",
        "    etcd_backup_max_age: 1.5h\n",
        "    etcd_backup_interval: 2h0m0s\n",
        "    coredns_cpu_request: 2\n",
        "    coredns_memory_limit: \"536870912\"\n",
    ));
    let source = import_ok(&yaml);
    for line in [
        "etcd_backup_max_age = 90m",
        "etcd_backup_interval = 2h",
        "coredns_cpu_request = 2000m",
        "coredns_memory_limit = 512Mi",
    ] {
        assert!(has_line(&source, line), "no `{line}` in\n{source}");
    }
    let fleet = evaluate_clean(&yaml);
    let items = at(cluster(&fleet, "aws-eu-west-1-test-a"), "config_items");
    assert_eq!(
        at(items, "etcd_backup_max_age"),
        &Data::Duration(90 * 60_000)
    );
    assert_eq!(
        at(items, "etcd_backup_interval"),
        &Data::Duration(2 * 3_600_000)
    );
    match (
        at(items, "coredns_cpu_request"),
        at(items, "coredns_memory_limit"),
    ) {
        (Data::Quantity(cpu), Data::Quantity(memory)) => {
            assert_eq!(cpu.milli, 2_000);
            assert_eq!(memory.milli, 536_870_912_000);
        }
        other => panic!("not quantities: {other:?}"),
    }
}

#[test]
fn channel_comes_from_the_registry_or_the_environment() {
    let yaml = "clusters:\n- {id: a, api_server_url: https://a, environment: production, region: eu-west-1, infrastructure_account: '123456789012'}\n- {id: b, api_server_url: https://b, environment: production, channel: alpha, region: eu-west-1, infrastructure_account: '123456789012'}\n";
    let options = ImportOptions {
        channels_import: "./channels".into(),
        production_channel: "prod_channel".into(),
        test_channel: "beta".into(),
    };
    let source = import(yaml, &options).expect("imports");
    assert!(source.starts_with("import \"./channels\"\n"), "{source}");
    assert!(has_line(&source, "channel = prod_channel"), "{source}");
    assert!(has_line(&source, "channel = alpha"), "{source}");
}

// ---- errors --------------------------------------------------------------------------

fn import_err(yaml: &str) -> String {
    match import(yaml, &options()) {
        Ok(source) => panic!("expected an error, got:\n{source}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_cluster_field_names_the_cluster_and_the_field() {
    let yaml = "clusters:\n- {id: a, api_server_url: https://a, environment: test, region: eu-west-1, infrastructure_account: '123456789012'}\n- {id: b, api_server_url: https://b, environment: test, infrastructure_account: '123456789012'}\n";
    assert_eq!(
        import_err(yaml),
        "clusters[1] (id `b`): missing field `region`"
    );
}

#[test]
fn missing_node_pool_field_names_the_pool() {
    let yaml = one_cluster("").replace(", max_size: 3", "");
    assert_eq!(
        import_err(&yaml),
        "clusters[0] (id `aws-eu-west-1-test-a`): node_pools[0] (name `w`): missing field `max_size`"
    );
}

#[test]
fn unknown_lifecycle_status_is_an_error() {
    assert_eq!(
        import_err(&one_cluster("  lifecycle_status: paused\n")),
        "clusters[0] (id `aws-eu-west-1-test-a`): unknown lifecycle_status `paused`: \
         expected requested, ready, decommission-requested or decommissioned"
    );
}

#[test]
fn bad_yaml_is_reported_with_its_position() {
    let e = import_err("clusters:\n  - id: a\n   region: [\n");
    assert!(e.starts_with("invalid YAML: "), "{e}");
    assert!(e.contains("line"), "{e}");
}

#[test]
fn values_that_do_not_fit_their_type_are_errors() {
    let cases = [
        (
            one_cluster("  config_items: {namespace_pod_quota: lots}\n"),
            "config item `namespace_pod_quota`: expected a whole number, found `lots`",
        ),
        (
            one_cluster("  config_items: {namespace_pod_quota: -9223372036854775808}\n"),
            "config item `namespace_pod_quota`: `-9223372036854775808` is out of range",
        ),
        (
            one_cluster("  config_items: {coredns_memory_limit: 200MB}\n"),
            "config item `coredns_memory_limit`: expected a Kubernetes quantity such as `500Mi`, `2Gi` or `250m`, found `200MB`",
        ),
        (
            one_cluster("  config_items: {etcd_backup_interval: 3600}\n"),
            "config item `etcd_backup_interval`: expected a duration with a unit such as `90s`, `5m` or `1h30m`, found `3600`",
        ),
        (
            one_cluster("  config_items: {cluster_autoscaler_enabled: maybe}\n"),
            "config item `cluster_autoscaler_enabled`: expected true or false, found `maybe`",
        ),
        (
            one_cluster("  config_items: {extra: [1, 2]}\n"),
            "config item `extra`: expected text, a number or a boolean, found a list",
        ),
        (
            one_cluster("  environment: qa-ish\n").replace("  environment: test\n", ""),
            "unknown environment `qa-ish`",
        ),
        (
            one_cluster("  provider: gcp\n"),
            "provider `gcp` is not supported",
        ),
        (
            one_cluster("").replace("aws:123456789012", "gcp:my-project"),
            "`infrastructure_account` `gcp:my-project` is not an AWS account",
        ),
        (
            one_cluster("").replace("max_size: 3", "max_size: three"),
            "node_pools[0] (name `w`): `max_size`: expected a whole number, found `three`",
        ),
        (
            one_cluster("").replace("instance_type: m5.large", "instance_type: ' , '"),
            "`instance_type` names no instance type",
        ),
        (
            one_cluster("  channel: not-a-name\n"),
            "`not-a-name` is not a valid channel name",
        ),
        (
            one_cluster("").replace("max_size: 3}", "max_size: 3, discount_strategy: bid}"),
            "node_pools[0] (name `w`): unknown discount_strategy `bid`",
        ),
        (
            one_cluster("").replace("max_size: 3}", "max_size: 3, config_items: {labels: gpu}}"),
            "node_pools[0] (name `w`): label `gpu` is not `key=value`",
        ),
        (
            one_cluster("").replace(
                "max_size: 3}",
                "max_size: 3, config_items: {taints: 'gpu=yes:NoWay'}}",
            ),
            "node_pools[0] (name `w`): taint `gpu=yes:NoWay` has effect `NoWay`",
        ),
        (
            one_cluster("  region: [eu-west-1]\n").replace("  region: eu-west-1\n", ""),
            "`region`: expected text",
        ),
    ];
    for (yaml, expected) in cases {
        let e = import_err(&yaml);
        assert!(
            e.starts_with("clusters[0] (id `aws-eu-west-1-test-a`): "),
            "{e}"
        );
        assert!(e.contains(expected), "`{e}` does not contain `{expected}`");
    }
}

#[test]
fn registry_shape_errors() {
    assert_eq!(
        import_err("- id: a\n"),
        "the registry must be a mapping with a `clusters:` list, found a list"
    );
    assert_eq!(
        import_err("other: 1\n"),
        "registry: missing field `clusters`"
    );
    assert_eq!(
        import_err("clusters: 3\n"),
        "`clusters` must be a list, found a number"
    );
    assert_eq!(import_ok("clusters:\n"), "import \"../../channels\"\n");
    assert_eq!(
        import_err("clusters:\n- just-a-name\n"),
        "clusters[0]: expected a mapping of cluster fields, found text"
    );
    let twice = format!(
        "{}{}",
        one_cluster(""),
        one_cluster("").trim_start_matches("clusters:\n")
    );
    assert_eq!(
        import_err(&twice),
        "clusters[1] (id `aws-eu-west-1-test-a`): id `aws-eu-west-1-test-a` is already used by clusters[0]"
    );
}

#[test]
fn channel_options_must_be_names() {
    let options = ImportOptions {
        channels_import: "../../channels".into(),
        production_channel: "1st".into(),
        test_channel: "beta".into(),
    };
    let e = import(&one_cluster(""), &options).expect_err("a bad channel option is an error");
    assert!(
        matches!(
            e,
            RegistryError::Option {
                option: "production channel",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("production channel: `1st` is not a valid channel name"),
        "{e}"
    );
}

// ---- YAML merge keys ---------------------------------------------------------------------

/// A registry whose clusters share fields through anchors and `<<` merge keys.
const MERGED: &str = "\
base: &base
  environment: test
  region: eu-west-1
defaults: &defaults
  <<: *base
  infrastructure_account: aws:123456789012
  config_items: {etcd_backup_interval: 30m}
  node_pools:
  - {name: w, instance_type: m5.large, min_size: 1, max_size: 3}
fast: &fast
  config_items: {etcd_backup_interval: 5m}
clusters:
- <<: *defaults
  id: merged
  api_server_url: https://merged.example.org
- <<: *defaults
  id: overridden
  api_server_url: https://overridden.example.org
  region: eu-central-1
  config_items: {etcd_backup_interval: 1h}
- <<: [*fast, *defaults]
  id: listed
  api_server_url: https://listed.example.org
";

#[test]
fn merge_keys_are_applied_before_import() {
    let fleet = evaluate_clean(MERGED);
    let interval = |id: &str| at(cluster(&fleet, id), "config_items.etcd_backup_interval").clone();
    // Merged from `defaults`, which itself merges `base`.
    let merged = cluster(&fleet, "merged");
    assert_eq!(interval("merged"), Data::Duration(30 * 60_000));
    assert_eq!(text(merged, "region"), "eu-west-1");
    assert_eq!(text(merged, "account"), "123456789012");
    assert_eq!(text(merged, "environment"), "test");
    assert_eq!(at(pool(merged, "w"), "max_size").as_int(), Some(3));
    // Keys written in the cluster win over merged ones.
    assert_eq!(interval("overridden"), Data::Duration(60 * 60_000));
    assert_eq!(
        text(cluster(&fleet, "overridden"), "region"),
        "eu-central-1"
    );
    // In a list of merged mappings the first one that has a key wins.
    assert_eq!(interval("listed"), Data::Duration(5 * 60_000));
    assert_eq!(text(cluster(&fleet, "listed"), "region"), "eu-west-1");
}

#[test]
fn a_merge_key_that_is_not_a_mapping_is_an_error() {
    let e = import_err("clusters:\n- <<: 3\n  id: a\n");
    assert!(
        e.contains("merge key `<<`") && e.contains("a number"),
        "{e}"
    );
    let e = import_err("clusters:\n- <<: [3]\n  id: a\n");
    assert!(
        e.contains("merge key `<<`") && e.contains("a number"),
        "{e}"
    );
}

// ---- cluster ids ----------------------------------------------------------------------------

/// A cluster of the reference format: `id` as the registry writes it, `extra` lines added.
fn reference_cluster(id: &str, account: &str, region: &str, extra: &str) -> String {
    format!(
        "- id: \"{id}\"\n  api_server_url: https://{region}.example.org\n  environment: test\n  region: {region}\n  infrastructure_account: \"aws:{account}\"\n  node_pools:\n  - {{name: w, instance_type: m5.large, min_size: 1, max_size: 3}}\n{extra}"
    )
}

fn ids(fleet: &flotilla::eval::Fleet) -> Vec<(&str, Option<&str>)> {
    fleet
        .clusters
        .iter()
        .map(|c| {
            let registry_id = match at(c, "registry_id") {
                Data::String(id) => Some(id.as_str()),
                _ => None,
            };
            (text(c, "id"), registry_id)
        })
        .collect()
}

// Issue 12: ids of the reference format (`aws:ACCOUNT:REGION:LOCAL_ID`) failed the import
// on the first cluster; they become DNS labels by the documented rule, the original id
// kept in `registry_id`.
#[test]
fn ids_that_are_not_dns_labels_become_dns_labels_by_the_documented_rule() {
    let yaml = [
        "clusters:\n".to_string(),
        // A DNS label is kept as it is, without a registry_id.
        reference_cluster(
            "plain-id",
            "123456789012",
            "eu-west-1",
            "  alias: ignored-alias\n",
        ),
        // An alias that is a DNS label is the id.
        reference_cluster(
            "aws:123456789012:eu-central-1:kube-1",
            "123456789012",
            "eu-central-1",
            "  alias: checkout-prod\n",
        ),
        // Else region and local id (the field, else the id's last part), as a DNS label.
        reference_cluster(
            "aws:123456789012:eu-central-1:kube-2",
            "123456789012",
            "eu-central-1",
            "  alias: Not A Label\n",
        ),
        reference_cluster(
            "aws:123456789012:eu-west-1:x",
            "123456789012",
            "eu-west-1",
            "  local_id: Kube_3\n",
        ),
        // The same region and local id in two accounts: both get their account.
        reference_cluster(
            "aws:210000000201:us-east-1:kube-1",
            "210000000201",
            "us-east-1",
            "",
        ),
        reference_cluster(
            "aws:210000000202:us-east-1:kube-1",
            "210000000202",
            "us-east-1",
            "",
        ),
    ]
    .concat();
    let fleet = evaluate_clean(&yaml);
    // The fleet lists clusters by id.
    assert_eq!(
        ids(&fleet),
        [
            (
                "checkout-prod",
                Some("aws:123456789012:eu-central-1:kube-1")
            ),
            (
                "eu-central-1-kube-2",
                Some("aws:123456789012:eu-central-1:kube-2")
            ),
            ("eu-west-1-kube-3", Some("aws:123456789012:eu-west-1:x")),
            ("plain-id", None),
            (
                "us-east-1-kube-1-210000000201",
                Some("aws:210000000201:us-east-1:kube-1")
            ),
            (
                "us-east-1-kube-1-210000000202",
                Some("aws:210000000202:us-east-1:kube-1")
            ),
        ]
    );
    assert_eq!(text(cluster(&fleet, "plain-id"), "alias"), "ignored-alias");
    assert_eq!(
        text(cluster(&fleet, "eu-west-1-kube-3"), "local_id"),
        "Kube_3"
    );

    // No DNS label can be derived: the error says to give an alias.
    let long = reference_cluster(
        &format!("aws:1:eu-west-1:{}", "k".repeat(60)),
        "123456789012",
        "eu-west-1",
        "",
    );
    let e = import_err(&format!("clusters:\n{long}"));
    assert!(e.starts_with("clusters[0] (id `aws:1:eu-west-1:kkk"), "{e}");
    assert!(
        e.contains("give the cluster an `alias` that is a DNS label"),
        "{e}"
    );
    // Two aliases the same are a repeated id, reported as such.
    let twice = [
        "clusters:\n".to_string(),
        reference_cluster(
            "aws:1:eu-west-1:a",
            "123456789012",
            "eu-west-1",
            "  alias: same\n",
        ),
        reference_cluster(
            "aws:1:eu-west-1:b",
            "123456789012",
            "eu-west-1",
            "  alias: same\n",
        ),
    ]
    .concat();
    let e = import_err(&twice);
    assert!(
        e.contains("id `same` is already used by clusters[0]"),
        "{e}"
    );
}

// Issue 11 item 9: registry items such as `db_password` became plain strings.
#[test]
fn items_named_as_secrets_or_stored_encrypted_become_secrets() {
    let yaml = one_cluster(concat!(
        "  config_items:\n",
        "    db_password: hunter2\n",
        "    Datadog-API-Key: dd-plain\n",
        "    oauth_token: tok\n",
        "    tls_private_key: pk\n",
        "    registry_credentials: cred\n",
        "    logging_endpoint: aws:kms:AQICAHhEncrypted==\n",
        "    logging_host: logs.example.org\n",
    ))
    .replace(
        "max_size: 3}",
        "max_size: 3, config_items: {webhook_secret: ws, scaling_priority: \"10\"}}",
    );
    let source = import_ok(&yaml);
    for plain in [
        "hunter2", "dd-plain", "\"tok\"", "\"pk\"", "\"cred\"", "\"ws\"", "aws:kms:",
    ] {
        let line = source.lines().find(|line| line.contains(plain)).unwrap();
        assert!(line.contains(": secret("), "{line}");
    }
    let fleet = evaluate_clean(&yaml);
    let c = cluster(&fleet, "aws-eu-west-1-test-a");
    let secrets = at(c, "config_items.secrets");
    let Data::Map(secrets) = secrets else {
        panic!("{secrets:?}")
    };
    let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Datadog-API-Key",
            "db_password",
            "logging_endpoint",
            "oauth_token",
            "registry_credentials",
            "tls_private_key",
        ]
    );
    let Data::Secret(password) = &secrets["db_password"] else {
        panic!()
    };
    assert_eq!(password.reveal(), "hunter2");
    let Data::Secret(encrypted) = &secrets["logging_endpoint"] else {
        panic!()
    };
    assert_eq!(encrypted.reveal(), "aws:kms:AQICAHhEncrypted==");
    assert_eq!(
        text(c, "config_items.custom.logging_host"),
        "logs.example.org"
    );
    let custom = at(c, "config_items.custom");
    let Data::Map(custom) = custom else { panic!() };
    assert_eq!(custom.len(), 1, "{custom:?}");

    // Node pools: secrets apart, other items as typed text, not comments.
    let w = pool(c, "w");
    let Data::Secret(webhook) = at(w, "secrets.webhook_secret") else {
        panic!()
    };
    assert_eq!(webhook.reveal(), "ws");
    assert_eq!(text(w, "config_items.scaling_priority"), "10");
    assert!(
        !source
            .lines()
            .any(|line| line.trim_start().starts_with("//")),
        "no item is left in a comment: {source}"
    );
}

// Issue 11 item 11: raw ESC and BEL from registry values were written into the .flt file.
#[test]
fn control_characters_in_values_are_escaped_and_round_trip() {
    let yaml = one_cluster(
        "  owner: \"team\\e[2J\\a\\0x\\u0085\"\n  config_items:\n    note: \"bell\\a\"\n",
    );
    let source = import_ok(&yaml);
    assert!(
        !source.chars().any(|c| c.is_control() && c != '\n'),
        "{source:?}"
    );
    assert!(
        has_line(&source, r#"owner = "team\u{1b}[2J\u{7}\u{0}x\u{85}""#),
        "{source}"
    );
    let fleet = evaluate_clean(&yaml);
    let c = cluster(&fleet, "aws-eu-west-1-test-a");
    assert_eq!(text(c, "owner"), "team\x1b[2J\x07\0x\u{85}");
    assert_eq!(text(c, "config_items.custom.note"), "bell\x07");
}

mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = import(&text, &options());
        }

        /// Any text survives as a custom config item, exactly.
        #[test]
        fn custom_values_round_trip(key in "x_[a-z_]{0,12}", value in "\\PC{0,40}") {
            let value_yaml = serde_json::to_string(&value).expect("a JSON string is a YAML string");
            let yaml = one_cluster(&format!("  config_items:\n    {key}: {value_yaml}\n"));
            let fleet = evaluate_clean(&yaml);
            let custom = at(cluster(&fleet, "aws-eu-west-1-test-a"), "config_items.custom");
            prop_assert_eq!(text(custom, &key), value.as_str());
        }

        /// Whatever the importer accepts for a typed item parses; only stdlib checks may reject it.
        #[test]
        fn accepted_typed_values_parse(
            key in prop::sample::select(vec!["coredns_memory_limit", "etcd_backup_interval", "namespace_pod_quota", "etcd_instance_type"]),
            value in "[0-9a-zA-Z.,:$\"\\\\{} -]{0,16}",
        ) {
            let value_yaml = serde_json::to_string(&value).expect("a JSON string is a YAML string");
            let yaml = one_cluster(&format!("  config_items:\n    {key}: {value_yaml}\n"));
            if let Ok(source) = import(&yaml, &options()) {
                let (_, diagnostics) = flotilla::syntax::parse(flotilla::source::FileId(0), &source);
                prop_assert!(diagnostics.is_empty(), "{:?}\n{}", diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>(), source);
            }
        }
    }
}

/// Issue 11 item 10: `--out` silently replaced an existing file.
#[test]
fn out_refuses_to_overwrite_an_existing_file_without_force() {
    let dir = TempDir::new("registry-out");
    let out = dir.join("clusters.flt");
    std::fs::write(&out, "// hand-written, keep\n").unwrap();
    let run = |force: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"));
        command
            .arg("import-registry")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/registry/registry.yaml"),
            )
            .arg("--out")
            .arg(&out);
        if force {
            command.arg("--force");
        }
        command.output().unwrap()
    };
    let refused = run(false);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("already exists; pass --force"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "// hand-written, keep\n"
    );
    let forced = run(true);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("cluster \"")
    );
}

// ---- the reference format at scale --------------------------------------------------------

/// One cluster of a generated registry in the reference system's format.
struct Generated {
    registry_id: String,
    account: String,
    region: &'static str,
    alias: Option<String>,
    local_id: String,
    /// Whether `local_id` is written as a field (else it is the id's last part).
    local_id_field: bool,
    criticality_level: i64,
    production: bool,
}

const GENERATED_REGIONS: [&str; 6] = [
    "eu-central-1",
    "eu-west-1",
    "us-east-1",
    "ap-south-2",
    "ap-southeast-2",
    "sa-east-1",
];

fn generated_clusters(count: usize) -> Vec<Generated> {
    (0..count)
        .map(|n| {
            let account = format!("{}", 210_000_000_000u64 + n as u64);
            let region = GENERATED_REGIONS[n % GENERATED_REGIONS.len()];
            let local_id = format!("kube-{}", n % 3 + 1);
            Generated {
                registry_id: format!("aws:{account}:{region}:{local_id}"),
                alias: (n % 4 == 0).then(|| format!("team-{n}-checkout")),
                local_id_field: n % 2 == 0,
                criticality_level: (n % 3 + 1) as i64,
                production: n % 2 == 1,
                account,
                region,
                local_id,
            }
        })
        .collect()
}

/// The registry file: every field of the reference format the importer reads.
fn generated_registry(clusters: &[Generated]) -> String {
    let mut yaml = String::from("# generated: the reference system's registry format\nclusters:\n");
    for (n, c) in clusters.iter().enumerate() {
        yaml.push_str(&format!("- id: \"{}\"\n", c.registry_id));
        if let Some(alias) = &c.alias {
            yaml.push_str(&format!("  alias: {alias}\n"));
        }
        if c.local_id_field {
            yaml.push_str(&format!("  local_id: {}\n", c.local_id));
        }
        yaml.push_str(&format!(
            "  api_server_url: https://kube-{n}.{}.example.org\n  criticality_level: {}\n  \
             environment: {}\n  infrastructure_account: \"aws:{}\"\n  lifecycle_status: ready\n  \
             provider: zalando-aws\n  region: {}\n  owner: team-{n}\n",
            c.region,
            c.criticality_level,
            if c.production { "production" } else { "test" },
            c.account,
            c.region,
        ));
        yaml.push_str(&format!(
            "  config_items:\n    etcd_instance_type: m5.large\n    coredns_memory_limit: {}Mi\n    \
             dns_zone: kube-{n}.example.org\n    db_password: \"pw-{n}\"\n    \
             logging_key: \"aws:kms:AQICAH{n}==\"\n",
            200 + n
        ));
        yaml.push_str(&format!(
            "  node_pools:\n  - name: system\n    instance_type: m5.large,m6i.large\n    min_size: 1\n    \
             max_size: 3\n    config_items:\n      labels: dedicated=system,tier=kube-{n}\n      \
             taints: dedicated=system:NoSchedule\n  - name: worker\n    instance_type: [c5.xlarge]\n    \
             discount_strategy: spot\n    min_size: 0\n    max_size: {}\n    config_items:\n      \
             scaling_priority: \"{n}\"\n      webhook_token: \"tok-{n}\"\n",
            10 + n
        ));
    }
    yaml
}

/// The cluster id the documented rule gives: the alias, else region and local id, with
/// the account when another cluster shares region and local id.
fn expected_id(c: &Generated, all: &[Generated]) -> String {
    if let Some(alias) = &c.alias {
        return alias.clone();
    }
    let base = format!("{}-{}", c.region, c.local_id);
    let shared = all
        .iter()
        .filter(|o| o.alias.is_none() && format!("{}-{}", o.region, o.local_id) == base)
        .count();
    if shared > 1 {
        format!("{base}-{}", c.account)
    } else {
        base
    }
}

// Issue 12: a registry of 150 clusters in the reference format imports to a fleet that
// checks and evaluates with every registry field present and typed.
#[test]
fn a_registry_of_150_reference_clusters_round_trips() {
    let generated = generated_clusters(150);
    let fleet = evaluate_clean(&generated_registry(&generated));
    assert_eq!(fleet.clusters.len(), 150);
    for (n, c) in generated.iter().enumerate() {
        let id = expected_id(c, &generated);
        let data = cluster(&fleet, &id);
        assert_eq!(text(data, "id"), id);
        assert_eq!(text(data, "registry_id"), c.registry_id);
        assert_eq!(text(data, "account"), c.account);
        assert_eq!(text(data, "region"), c.region);
        match &c.alias {
            Some(alias) => assert_eq!(text(data, "alias"), alias),
            None => assert_eq!(at(data, "alias"), &Data::Null),
        }
        if c.local_id_field {
            assert_eq!(text(data, "local_id"), c.local_id);
        } else {
            assert_eq!(at(data, "local_id"), &Data::Null);
        }
        assert_eq!(
            at(data, "criticality_level").as_int(),
            Some(c.criticality_level)
        );
        let environment = if c.production { "production" } else { "test" };
        assert_eq!(text(data, "environment"), environment);
        assert_eq!(text(data, "owner"), format!("team-{n}"));
        assert_eq!(text(data, "config_items.etcd_instance_type"), "m5.large");
        match at(data, "config_items.coredns_memory_limit") {
            Data::Quantity(q) => assert_eq!(q.to_string(), format!("{}Mi", 200 + n)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            text(data, "config_items.custom.dns_zone"),
            format!("kube-{n}.example.org")
        );
        let Data::Secret(password) = at(data, "config_items.secrets.db_password") else {
            panic!("db_password is not a secret in {id}")
        };
        assert_eq!(password.reveal(), format!("pw-{n}"));
        let Data::Secret(logging) = at(data, "config_items.secrets.logging_key") else {
            panic!("logging_key is not a secret in {id}")
        };
        assert_eq!(logging.reveal(), format!("aws:kms:AQICAH{n}=="));

        let system = pool(data, "system");
        assert_eq!(
            strings(at(system, "instance_types")),
            ["m5.large", "m6i.large"]
        );
        assert_eq!(text(system, "labels.tier"), format!("kube-{n}"));
        assert_eq!(
            text(&at(system, "taints").as_list()[0], "effect"),
            "NoSchedule"
        );
        let worker = pool(data, "worker");
        assert_eq!(text(worker, "capacity_type"), "spot");
        assert_eq!(at(worker, "max_size").as_int(), Some(10 + n as i64));
        assert_eq!(text(worker, "config_items.scaling_priority"), n.to_string());
        let Data::Secret(token) = at(worker, "secrets.webhook_token") else {
            panic!("webhook_token is not a secret in {id}")
        };
        assert_eq!(token.reveal(), format!("tok-{n}"));
    }
    // The rule's branches are all exercised: aliases, region and local id, and accounts.
    let ids: Vec<String> = generated
        .iter()
        .map(|c| expected_id(c, &generated))
        .collect();
    assert!(ids.iter().any(|id| id.starts_with("team-")));
    assert!(ids.iter().any(|id| id.ends_with(&generated[1].account)));
}

/// A copy of `from` under `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

// Issue 12: the registry id of an imported cluster is shown in plan and status, so either
// can be matched with the registry.
#[test]
fn plan_and_status_show_the_registry_id() {
    const CLUSTER: &str = "aws-eu-central-1-test-checkout";
    const REGISTRY_ID: &str = "aws:210000000201:eu-central-1:kube-7";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = TempDir::new("registry-id");
    copy_dir(&root.join("examples/fleet"), &dir.join("examples/fleet"));
    copy_dir(&root.join("channels"), &dir.join("channels"));
    let fleet = dir.join("examples/fleet");
    let file = fleet.join("test.flt");
    let source = std::fs::read_to_string(&file).unwrap();
    let header = format!("cluster \"{CLUSTER}\" {{\n");
    assert!(source.contains(&header), "the example fleet has {CLUSTER}");
    std::fs::write(
        &file,
        source.replacen(
            &header,
            &format!("{header}  registry_id = \"{REGISTRY_ID}\"\n"),
            1,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(args)
            .arg(&fleet)
            .args(["--cluster", CLUSTER, "--world", "local", "--config-set"])
            .arg(root.join("stdlib/config"))
            .env("FLOTILLA_LOCAL_SPEEDUP", "0")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output
                .status
                .code()
                .is_some_and(|code| code == 0 || code == 2),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let plan = run(&["plan"]);
    assert!(
        plan.contains(&format!(
            "cluster {CLUSTER} [registry {REGISTRY_ID}] (eu-central-1)"
        )),
        "{plan}"
    );
    let markdown = run(&["plan", "--format", "markdown"]);
    assert!(
        markdown.contains(&format!("| `{CLUSTER}` [registry {REGISTRY_ID}]")),
        "{markdown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["plan", "--format", "json"])).unwrap();
    assert_eq!(json["clusters"][0]["registry_id"], REGISTRY_ID, "{json:#}");

    let status = run(&["status"]);
    assert!(
        status.starts_with(&format!(
            "{CLUSTER} [registry {REGISTRY_ID}] (eu-central-1)"
        )),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["status", "--format", "json"])).unwrap();
    assert_eq!(json[0]["registry_id"], REGISTRY_ID, "{json:#}");
}
