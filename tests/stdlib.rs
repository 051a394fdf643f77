//! The stdlib against the real AWS world: the generated instance type and region catalog,
//! pod limits per pool, and the checks that keep the outage stories' lessons.

use std::path::Path;

use flotilla::analysis::analyze;
use flotilla::eval::{Data, Fleet};
use flotilla::source::MemoryFs;

const CHANNEL: &str =
    "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}\n";

fn analyze_source(source: &str) -> (Option<Fleet>, Vec<String>) {
    let mut fs = MemoryFs::new();
    fs.insert("fleet/main.flt", format!("{CHANNEL}{source}"));
    let analysis = analyze(&fs, Path::new("fleet"));
    let messages = analysis
        .diagnostics
        .iter()
        .map(|d| format!("{d:?}"))
        .collect();
    (analysis.fleet, messages)
}

fn cluster(environment: &str, region: &str, body: &str) -> String {
    format!(
        "cluster \"c1\" {{\n  account = \"123456789012\"\n  region = \"{region}\"\n  environment = {environment}\n  channel = stable\n  api_server_url = \"https://c1.example.org\"\n{body}}}\n"
    )
}

fn pool(name: &str, types: &str, extra: &str) -> String {
    format!(
        "  node_pool \"{name}\" {{\n    instance_types = [{types}]\n    max_size = 3\n{extra}  }}\n"
    )
}

/// The fleet checks clean; its first cluster.
fn clean(source: &str) -> Data {
    let (fleet, messages) = analyze_source(source);
    assert!(messages.is_empty(), "{messages:#?}");
    fleet.unwrap().clusters[0].clone()
}

/// The one error the fleet fails with.
fn error(source: &str) -> String {
    let (_, messages) = analyze_source(source);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    messages[0].clone()
}

fn pool_field(cluster: &Data, index: usize, field: &str) -> serde_json::Value {
    let pool = &cluster.get("node_pools").unwrap().as_list()[index];
    serde_json::to_value(pool.get(field).unwrap()).unwrap()
}

/// Each expression evaluated as a node pool label, with std/catalog imported as a user's
/// fleet would: the labels by name.
fn catalog_labels(labels: &[(&str, String)]) -> serde_json::Value {
    let body = labels
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let c1 = clean(&format!(
        "import \"std/catalog\"\n{}",
        cluster(
            "test",
            "eu-central-1",
            &pool("w", "\"m5.large\"", &format!("    labels = {{ {body} }}\n")),
        )
    ));
    pool_field(&c1, 0, "labels")
}

#[test]
fn current_instance_types_in_a_new_region_check_clean() {
    let pools = pool("compute", "\"c5a.2xlarge\"", "")
        + &pool("memory", "\"r7i.4xlarge\"", "")
        + &pool("graviton", "\"m7g.large\"", "");
    let c1 = clean(&cluster("production", "ap-south-2", &pools));
    assert_eq!(pool_field(&c1, 0, "max_pods"), 58);
    assert_eq!(pool_field(&c1, 1, "max_pods"), 234);
    assert_eq!(pool_field(&c1, 2, "max_pods"), 29);
}

#[test]
fn max_pods_is_the_smallest_limit_of_the_pool_types_and_can_be_overridden() {
    let pools = pool("small", "\"m5.large\"", "")
        + &pool("mixed", "\"m5.2xlarge\", \"m5.large\", \"m5.xlarge\"", "")
        + &pool("pinned", "\"m5.2xlarge\"", "    max_pods = 40\n");
    let c1 = clean(&cluster("test", "eu-central-1", &pools));
    assert_eq!(pool_field(&c1, 0, "max_pods"), 29);
    assert_eq!(pool_field(&c1, 1, "max_pods"), 29);
    assert_eq!(pool_field(&c1, 2, "max_pods"), 40);
}

#[test]
fn a_misspelt_instance_type_fails_with_the_sizes_of_its_family() {
    let message = error(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"m5.hugex\"", ""),
    ));
    assert!(
        message.contains("unknown instance type `m5.hugex`"),
        "{message}"
    );
    assert!(message.contains("did you mean one of"), "{message}");
    assert!(message.contains("m5.xlarge"), "{message}");
    assert!(!message.contains("m5a."), "only the m5 family: {message}");
}

#[test]
fn an_unknown_family_names_the_catalog() {
    let message = error(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"zz9.large\"", ""),
    ));
    assert!(
        message.contains("no instance type family `zz9`"),
        "{message}"
    );
}

#[test]
fn a_pool_mixing_arm64_and_x86_fails() {
    let message = error(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"m7g.large\", \"m5.large\"", ""),
    ));
    assert!(message.contains("one CPU architecture"), "{message}");
    assert!(message.contains("m7g.large is arm64"), "{message}");
    assert!(message.contains("m5.large is x86_64"), "{message}");
}

#[test]
fn a_type_without_a_published_pod_limit_needs_max_pods() {
    // r9g.large is in the EC2 API but in none of the network limit tables.
    let types = "\"r9g.large\"";
    let message = error(&cluster("test", "eu-central-1", &pool("w", types, "")));
    assert!(message.contains("set `max_pods`"), "{message}");
    let c1 = clean(&cluster(
        "test",
        "eu-central-1",
        &pool("w", types, "    max_pods = 110\n"),
    ));
    assert_eq!(pool_field(&c1, 0, "max_pods"), 110);
}

#[test]
fn an_unknown_region_fails() {
    let message = error(&cluster(
        "test",
        "eu-middle-1",
        &pool("w", "\"m5.large\"", ""),
    ));
    assert!(
        message.contains("unknown AWS region `eu-middle-1`"),
        "{message}"
    );
}

#[test]
fn ignoring_pdbs_without_a_reason_fails_naming_the_lesson() {
    let update = "    update {\n      respect_pdbs = false\n    }\n";
    let message = error(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"m5.large\"", update),
    ));
    assert!(
        message.contains("lesson \\\"drains respect PodDisruptionBudgets\\\""),
        "{message}"
    );
    let with_reason =
        "    update {\n      respect_pdbs = false\n      reason = \"batch jobs only\"\n    }\n";
    clean(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"m5.large\"", with_reason),
    ));
}

#[test]
fn early_force_termination_needs_a_reason_below_the_floors() {
    let update =
        |after: &str| format!("    update {{\n      force_terminate_after = {after}\n    }}\n");
    let message = error(&cluster(
        "production",
        "eu-central-1",
        &pool("w", "\"m5.large\"", &update("2h")),
    ));
    assert!(
        message.contains("lesson \\\"no early force-termination\\\""),
        "{message}"
    );
    assert!(message.contains("6h in production"), "{message}");
    // The floors: 6h in production, 2h in test.
    clean(&cluster(
        "production",
        "eu-central-1",
        &pool("w", "\"m5.large\"", &update("6h")),
    ));
    clean(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"m5.large\"", &update("2h")),
    ));
    let message = error(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"m5.large\"", &update("90m")),
    ));
    assert!(message.contains("no early force-termination"), "{message}");
}

#[test]
fn coredns_memory_grows_with_the_cluster_and_there_is_no_default_pod_quota() {
    let small = clean(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"m5.large\"", ""),
    ));
    let items = small.get("config_items").unwrap();
    // 256Mi + 2Mi for each of the 3 nodes the pool can reach.
    assert_eq!(
        serde_json::to_value(items.get("coredns_memory_limit").unwrap()).unwrap(),
        "262Mi"
    );
    assert_eq!(
        serde_json::to_value(items.get("namespace_pod_quota").unwrap()).unwrap(),
        serde_json::Value::Null
    );
    let big_pool = "  node_pool \"w\" {\n    instance_types = [\"m5.large\"]\n    max_size = 1000\n  }\n  node_pool \"v\" {\n    instance_types = [\"m5.large\"]\n    max_size = 500\n  }\n";
    let big = clean(&cluster("test", "eu-central-1", big_pool));
    assert_eq!(
        serde_json::to_value(
            big.get("config_items")
                .unwrap()
                .get("coredns_memory_limit")
                .unwrap()
        )
        .unwrap(),
        "3256Mi"
    );
}

/// The catalog's VPC CNI columns and accelerators, read from a fleet as a user would.
#[test]
fn the_catalog_knows_enis_ips_per_eni_and_accelerators() {
    let probe = |expr: &str| format!("to_string({expr})");
    let labels = [
        (
            "m5-enis",
            probe("instance_type_catalog[\"m5.large\"].enis ?? 0"),
        ),
        (
            "m5-ips",
            probe("instance_type_catalog[\"m5.large\"].ips_per_eni ?? 0"),
        ),
        (
            "g5",
            probe("instance_type_catalog[\"g5.xlarge\"].accelerator"),
        ),
        (
            "g4ad",
            probe("instance_type_catalog[\"g4ad.xlarge\"].accelerator"),
        ),
        (
            "inf2",
            probe("instance_type_catalog[\"inf2.xlarge\"].accelerator"),
        ),
        (
            "m5",
            probe("instance_type_catalog[\"m5.large\"].accelerator"),
        ),
        (
            "c8a-enis",
            probe("instance_type_catalog[\"c8a.large\"].enis ?? 0"),
        ),
    ];
    let got = catalog_labels(&labels);
    assert_eq!(got["m5-enis"], "3");
    assert_eq!(got["m5-ips"], "10");
    assert_eq!(got["g5"], "nvidia_gpu");
    assert_eq!(got["g4ad"], "amd_gpu");
    assert_eq!(got["inf2"], "aws_neuron");
    assert_eq!(got["m5"], "none");
    assert_eq!(
        got["c8a-enis"], "3",
        "c8a is newer than the VPC CNI's list: Karpenter's"
    );
    // max_pods from the VPC CNI's formula where its table lacks the type:
    // c7i-flex.12xlarge has 8 ENIs of 30 addresses, 8 × 29 + 2.
    let flex = clean(&cluster(
        "test",
        "eu-central-1",
        &pool("w", "\"c7i-flex.12xlarge\"", ""),
    ));
    assert_eq!(pool_field(&flex, 0, "max_pods"), 234);
}

/// vCPUs, memory and GPUs (the cluster autoscaler's table), read as a user would.
#[test]
fn the_catalog_knows_vcpus_memory_and_gpus() {
    let fields = [
        ("c5a-vcpus", "c5a.2xlarge", "vcpus"),
        ("c5a-memory", "c5a.2xlarge", "memory_mib"),
        ("c5a-gpus", "c5a.2xlarge", "gpus"),
        ("g5-gpus", "g5.12xlarge", "gpus"),
        ("p5-gpus", "p5.48xlarge", "gpus"),
        ("graviton-memory", "r8g.medium", "memory_mib"),
        ("newest-vcpus", "r9g.large", "vcpus"),
    ];
    let labels: Vec<(&str, String)> = fields
        .iter()
        .map(|(label, t, field)| {
            (
                *label,
                format!("to_string(instance_type_catalog[\"{t}\"].{field} ?? 0)"),
            )
        })
        .collect();
    let got = catalog_labels(&labels);
    assert_eq!(got["c5a-vcpus"], "8");
    assert_eq!(got["c5a-memory"], "16384");
    assert_eq!(got["c5a-gpus"], "0");
    assert_eq!(got["g5-gpus"], "4");
    assert_eq!(got["p5-gpus"], "8");
    assert_eq!(got["graviton-memory"], "8192");
    assert_eq!(
        got["newest-vcpus"], "0",
        "r9g is newer than the autoscaler's table"
    );
}

#[test]
fn the_newest_types_get_max_pods_from_karpenters_limits() {
    // Neither VPC CNI list has c8i or c8a; Karpenter's table gives 3 ENIs of 20
    // addresses (3 × 19 + 2) and, for c8i.24xlarge, 16 of 64 (16 × 63 + 2).
    let pools = pool("intel", "\"c8i.large\"", "")
        + &pool("amd", "\"c8a.large\"", "")
        + &pool("big", "\"c8i.24xlarge\"", "");
    let c1 = clean(&cluster("test", "eu-central-1", &pools));
    assert_eq!(pool_field(&c1, 0, "max_pods"), 59);
    assert_eq!(pool_field(&c1, 1, "max_pods"), 59);
    assert_eq!(pool_field(&c1, 2, "max_pods"), 1010);
}

#[test]
fn a_gpu_pool_mixing_gpu_counts_fails() {
    let gpu = "    profile = \"worker-gpu\"\n";
    clean(&cluster(
        "test",
        "eu-central-1",
        &pool("gpu", "\"g4dn.xlarge\", \"g4dn.2xlarge\"", gpu),
    ));
    let message = error(&cluster(
        "test",
        "eu-central-1",
        &pool("gpu", "\"g4dn.xlarge\", \"g4dn.12xlarge\"", gpu),
    ));
    assert!(message.contains("the same number of GPUs"), "{message}");
    assert!(
        message.contains("g4dn.xlarge has 1, g4dn.12xlarge has 4"),
        "{message}"
    );
}

#[test]
fn a_gpu_pool_needs_nvidia_instance_types() {
    let gpu = "    profile = \"worker-gpu\"\n";
    clean(&cluster(
        "test",
        "eu-central-1",
        &pool("gpu", "\"g5.xlarge\", \"g6.xlarge\"", gpu),
    ));
    let message = error(&cluster(
        "test",
        "eu-central-1",
        &pool("gpu", "\"g5.xlarge\", \"m5.large\", \"g4ad.xlarge\"", gpu),
    ));
    assert!(
        message.contains("no NVIDIA GPU: m5.large, g4ad.xlarge"),
        "{message}"
    );
}

#[test]
fn a_role_to_assume_must_be_an_iam_role_of_the_clusters_account() {
    let workers = pool("w", "\"m5.large\"", "");
    let role = |arn: &str| {
        cluster(
            "test",
            "eu-central-1",
            &format!("  aws_role_arn = \"{arn}\"\n{workers}"),
        )
    };
    let c1 = clean(&role("arn:aws:iam::123456789012:role/flotilla-deploy"));
    assert_eq!(
        serde_json::to_value(c1.get("aws_role_arn").unwrap()).unwrap(),
        "arn:aws:iam::123456789012:role/flotilla-deploy"
    );
    let message = error(&role("flotilla-deploy"));
    assert!(
        message.contains(
            "aws_role_arn must look like arn:aws:iam::ACCOUNT:role/NAME, got `flotilla-deploy`"
        ),
        "{message}"
    );
    let message = error(&role("arn:aws:iam::123456789012:user/alice"));
    assert!(message.contains("must look like"), "{message}");
    // Assumed credentials are the role's account's: another account's role could only
    // ever fail the account guard.
    let message = error(&role("arn:aws:iam::210000000202:role/flotilla-deploy"));
    assert!(
        message.contains("aws_role_arn is a role of account 210000000202, but the cluster is in account 123456789012"),
        "{message}"
    );
    // Unset: the caller's own credentials.
    let c1 = clean(&cluster("test", "eu-central-1", &workers));
    assert!(
        c1.get("aws_role_arn")
            .is_none_or(|v| serde_json::to_value(v).unwrap().is_null())
    );
}

#[test]
fn a_template_bucket_must_be_a_valid_s3_bucket_name() {
    let workers = pool("w", "\"m5.large\"", "");
    let bucket = |name: &str| {
        cluster(
            "test",
            "eu-central-1",
            &format!("  template_bucket = \"{name}\"\n{workers}"),
        )
    };
    let c1 = clean(&bucket("flotilla-templates.example.org"));
    assert_eq!(
        serde_json::to_value(c1.get("template_bucket").unwrap()).unwrap(),
        "flotilla-templates.example.org"
    );
    for wrong in ["Flotilla_Templates", "ab", "192.168.1.2", "-templates"] {
        let message = error(&bucket(wrong));
        assert!(
            message.contains(&format!(
                "template_bucket `{wrong}` is not a valid S3 bucket name"
            )) && message
                .contains("name an existing bucket of account 123456789012 in eu-central-1"),
            "{message}"
        );
    }
    // Unset: no bucket, which only a template over the inline limit needs.
    let c1 = clean(&cluster("test", "eu-central-1", &workers));
    assert!(
        c1.get("template_bucket")
            .is_none_or(|v| serde_json::to_value(v).unwrap().is_null())
    );
}
