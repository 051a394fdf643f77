//! Rendering against copies of the small config set in tests/fixtures/config-min: what
//! the node pool config hash covers, and where render diagnostics point.

#[path = "support/files.rs"]
mod files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use files::{TempDir, read_tree};
use flotilla::compile::{Compilation, ConfigSource, compile};
use flotilla::diagnostic::{Diagnostic, to_json};
use flotilla::source::DiskFs;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config-min");
const STACK: &str = "node-pools/worker-default/stack.yaml.j2";
const USERDATA: &str = "node-pools/worker-default/userdata.yaml.j2";

/// A fleet with one channel and one cluster; `pool` is the body of node pool `workers`.
fn fleet_source(pool: &str) -> String {
    format!(
        r#"channel stable {{
  kubernetes_version = "1.31.4"
  config_ref = "stable"
}}

cluster "prod-1" {{
  account = "123456789012"
  region = "eu-central-1"
  environment = production
  channel = stable
  api_server_url = "https://${{id}}.example.org"
  node_pool "workers" {{
{pool}
  }}
  node_pool "system" {{
    instance_types = ["m5.large"]
    max_size = 3
  }}
}}
"#
    )
}

const POOL: &str = r#"    instance_types = ["m5.large", "m5.xlarge"]
    min_size = 2
    max_size = 10"#;

/// A copy of the fixture config set with some templates replaced (or added), keyed by
/// their path in the set; `edit` gets the fixture's text (empty for a new file). The set
/// lasts as long as the guard returned with it.
fn config_set(name: &str, edits: &[(&str, &dyn Fn(String) -> String)]) -> (TempDir, ConfigSource) {
    let scratch = TempDir::new(name);
    let dir = scratch.join("config");
    let mut files: BTreeMap<String, String> = read_tree(Path::new(FIXTURE))
        .into_iter()
        .map(|(rel, bytes)| (rel, String::from_utf8(bytes).unwrap()))
        .collect();
    for (rel, edit) in edits {
        let text = files.remove(*rel).unwrap_or_default();
        files.insert(rel.to_string(), edit(text));
    }
    for (rel, text) in files {
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    (scratch, ConfigSource::Dir(dir))
}

fn fixture() -> ConfigSource {
    ConfigSource::Dir(PathBuf::from(FIXTURE))
}

fn compile_with(name: &str, fleet: &str, set: &ConfigSource) -> Compilation {
    let scratch = TempDir::new(name);
    let dir = scratch.join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.flt"), fleet).unwrap();
    compile(&DiskFs, &dir, set, &[])
}

fn pool_hash(fleet: &str, set: &ConfigSource) -> String {
    let c = compile_with("hash", fleet, set);
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    let summary = &c.artifacts[0].summary;
    let pool = summary.node_pools.iter().find(|p| p.name == "workers");
    pool.unwrap().config_hash.clone()
}

fn only(c: &Compilation, code: &str) -> Diagnostic {
    let found: Vec<&Diagnostic> = c.diagnostics.iter().filter(|d| d.code == code).collect();
    assert_eq!(found.len(), 1, "one {code}: {:#?}", c.diagnostics);
    found[0].clone()
}

/// File name (ending) and 1-based line of a diagnostic's primary label.
fn place(c: &Compilation, d: &Diagnostic) -> (String, u32) {
    let json = to_json(&c.sources, d);
    (json.file.expect("a location"), json.start_line)
}

fn line_of(text: &str, needle: &str) -> u32 {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` in {text}"));
    text[..at].matches('\n').count() as u32 + 1
}

#[test]
fn a_launch_template_change_in_the_config_set_changes_the_hash() {
    let base = pool_hash(&fleet_source(POOL), &fixture());
    let volume_type = config_set(
        "volume-type",
        &[(STACK, &|t| {
            t.replace(
                "              VolumeSize:",
                "              VolumeType: io2\n              VolumeSize:",
            )
        })],
    );
    let extra_field = config_set(
        "extra-field",
        &[(STACK, &|t| {
            t.replace(
                "      LaunchTemplateData:\n",
                "      LaunchTemplateData:\n        EbsOptimized: true\n",
            )
        })],
    );
    for ((_dir, set), what) in [(volume_type, "a volume type"), (extra_field, "a new field")] {
        assert_ne!(
            pool_hash(&fleet_source(POOL), &set),
            base,
            "{what} in LaunchTemplateData must change the hash"
        );
    }
}

/// The fixture's stack with a machine image parameter that the launch template `Ref`s.
fn with_image(path: &'static str, description: &'static str) -> impl Fn(String) -> String {
    move |t: String| {
        t.replace(
            "Parameters:\n",
            &format!(
                "Parameters:\n  ImageId:\n    Type: AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>\n    Description: {description}\n    Default: {path}\n"
            ),
        )
        .replace(
            "      LaunchTemplateData:\n",
            "      LaunchTemplateData:\n        ImageId:\n          Ref: ImageId\n",
        )
    }
}

#[test]
fn the_image_lookup_of_the_launch_template_is_in_the_hash() {
    let hash = |name: &str, path: &'static str, description: &'static str| {
        let (_dir, set) = config_set(name, &[(STACK, &with_image(path, description))]);
        pool_hash(&fleet_source(POOL), &set)
    };
    let al2023 = "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id";
    let bottlerocket = "/aws/service/bottlerocket/aws-k8s-1.31/x86_64/latest/image_id";
    let base = hash("image-al2023", al2023, "The image.");
    assert_ne!(hash("image-bottlerocket", bottlerocket, "The image."), base);
    // A parameter's description is documentation only.
    assert_eq!(hash("image-described", al2023, "The node image."), base);
}

#[test]
fn scaling_limits_leave_the_hash_unchanged() {
    let base = pool_hash(&fleet_source(POOL), &fixture());
    for pool in [
        POOL.replace("max_size = 10", "max_size = 30"),
        POOL.replace("min_size = 2", "min_size = 0"),
    ] {
        assert_eq!(
            pool_hash(&fleet_source(&pool), &fixture()),
            base,
            "changed by:\n{pool}"
        );
    }
}

#[test]
fn what_is_outside_the_launch_template_data_leaves_the_hash_unchanged() {
    let base = pool_hash(&fleet_source(POOL), &fixture());
    let grace_period = config_set(
        "grace-period",
        &[(STACK, &|t| {
            t.replace(
                "      MinSize:",
                "      HealthCheckGracePeriod: 300\n      MinSize:",
            )
        })],
    );
    let template_name = config_set(
        "template-name",
        &[(STACK, &|t| {
            t.replace(
                "    Properties:\n      LaunchTemplateData:",
                "    Properties:\n      LaunchTemplateName: {{ pool.name | tojson }}\n      LaunchTemplateData:",
            )
        })],
    );
    // Key order is not content: the hash is over canonical JSON.
    let reordered = config_set(
        "reordered",
        &[(STACK, &|t| {
            let userdata = "        UserData: {{ userdata | b64encode | tojson }}\n";
            assert!(t.contains(userdata));
            t.replace(userdata, "").replace(
                "              VolumeSize: {{ pool.root_volume_size | gib }}\n",
                &format!(
                    "              VolumeSize: {{{{ pool.root_volume_size | gib }}}}\n{userdata}"
                ),
            )
        })],
    );
    for ((_dir, set), what) in [
        (grace_period, "HealthCheckGracePeriod on the group"),
        (template_name, "LaunchTemplateName"),
        (reordered, "reordered LaunchTemplateData keys"),
    ] {
        assert_eq!(
            pool_hash(&fleet_source(POOL), &set),
            base,
            "changed by {what}"
        );
    }
}

#[test]
fn hash_is_deterministic_and_in_the_stack_it_covers() {
    let c = compile_with("deterministic", &fleet_source(POOL), &fixture());
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    let hash = pool_hash(&fleet_source(POOL), &fixture());
    assert_eq!(pool_hash(&fleet_source(POOL), &fixture()), hash);
    let stack: serde_json::Value =
        serde_json::from_str(&c.artifacts[0].files["cloudformation/node-pool-workers.json"])
            .unwrap();
    let tags = stack["Resources"]["AutoScalingGroup"]["Properties"]["Tags"]
        .as_array()
        .unwrap();
    assert!(
        tags.iter()
            .any(|t| t["Key"] == "flotilla.io/config-hash" && t["Value"] == hash.as_str())
    );
}

#[test]
fn invalid_userdata_names_its_template() {
    let (_dir, set) = config_set(
        "bad-userdata",
        &[(USERDATA, &|t| format!("{t}broken: [unclosed\n"))],
    );
    let c = compile_with("bad-userdata", &fleet_source(POOL), &set);
    let found: Vec<&Diagnostic> = c.diagnostics.iter().filter(|d| d.code == "E0504").collect();
    assert_eq!(found.len(), 2, "one per pool: {:#?}", c.diagnostics);
    for d in found {
        let (file, _) = place(&c, d);
        assert!(file.ends_with(USERDATA), "{file}");
        assert!(d.message.contains("userdata/"), "{}", d.message);
        let help = d.help.as_deref().unwrap();
        assert!(help.ends_with(USERDATA), "{help}");
        assert!(!help.contains("userdata/workers") && !help.contains("userdata/system"));
    }
}

#[test]
fn invalid_cloudformation_names_its_template() {
    let (_dir, set) = config_set(
        "bad-stack",
        &[(STACK, &|t| t.replace("Ref: SubnetIds", "Ref: SubnetIDs"))],
    );
    let c = compile_with("bad-stack", &fleet_source(POOL), &set);
    let found: Vec<&Diagnostic> = c.diagnostics.iter().filter(|d| d.code == "E0504").collect();
    assert_eq!(found.len(), 2, "one per pool: {:#?}", c.diagnostics);
    for d in found {
        assert!(place(&c, d).0.ends_with(STACK));
        assert!(d.message.contains("`Ref` to `SubnetIDs`"), "{}", d.message);
    }
}

#[test]
fn unknown_profile_points_at_the_profile_field() {
    let pool = format!("{POOL}\n    profile = \"worker-defualt\"");
    let fleet = fleet_source(&pool);
    let c = compile_with("unknown-profile", &fleet, &fixture());
    let d = only(&c, "E0502");
    let (file, line) = place(&c, &d);
    assert!(file.ends_with("main.flt"), "{file}");
    assert_eq!(line, line_of(&fleet, "profile = "));
    assert!(
        d.message.contains("`prod-1`") && d.message.contains("`workers`"),
        "{}",
        d.message
    );
    assert!(
        d.help.as_deref().unwrap().contains("`worker-default`"),
        "{:?}",
        d.help
    );
}

#[test]
fn unknown_default_profile_points_at_the_node_pool_label() {
    // No worker-default in this set: pools without `profile` ask for it by default.
    let (_dir, set) = config_set(
        "no-default-profile",
        &[
            ("node-pools/worker-small/stack.yaml.j2", &|_| {
                std::fs::read_to_string(Path::new(FIXTURE).join(STACK)).unwrap()
            }),
            ("node-pools/worker-small/userdata.yaml.j2", &|_| {
                std::fs::read_to_string(Path::new(FIXTURE).join(USERDATA)).unwrap()
            }),
        ],
    );
    let ConfigSource::Dir(dir) = &set else {
        unreachable!()
    };
    std::fs::remove_dir_all(dir.join("node-pools/worker-default")).unwrap();
    let fleet = fleet_source(POOL);
    let c = compile_with("no-default-profile", &fleet, &set);
    let errors: Vec<&Diagnostic> = c.diagnostics.iter().filter(|d| d.code == "E0502").collect();
    assert_eq!(errors.len(), 2, "{:#?}", c.diagnostics);
    let mut lines: Vec<u32> = errors.iter().map(|d| place(&c, d).1).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            line_of(&fleet, "node_pool \"workers\""),
            line_of(&fleet, "node_pool \"system\"")
        ]
    );
}

#[test]
fn an_error_in_an_imported_helper_points_at_the_helper() {
    let helper = "{#- helpers -#}\n{% macro ndots() %}5{% endmacro %}\n{{ 1 / 0 }}\n";
    let (_dir, set) = config_set(
        "helper-error",
        &[
            ("lib/helpers.j2", &|_| helper.to_string()),
            ("manifests/10-coredns/configmap.yaml.j2", &|t| {
                format!("{{%- import \"lib/helpers.j2\" as h -%}}\n{t}")
            }),
        ],
    );
    let c = compile_with("helper-error", &fleet_source(POOL), &set);
    let d = only(&c, "E0503");
    let (file, line) = place(&c, &d);
    assert!(file.ends_with("lib/helpers.j2"), "{file}");
    assert_eq!(line, 3);
    assert!(
        d.message.contains("prod-1") && d.message.contains("1 / 0"),
        "the cause: {}",
        d.message
    );
    assert!(!d.message.contains("could not render include"));
    let site = d.secondary.first().expect("the import site");
    let json = to_json(
        &c.sources,
        &Diagnostic::error(flotilla::codes::Code::E0503, "").at(site.file, site.span, ""),
    );
    assert!(
        json.file.unwrap().ends_with("configmap.yaml.j2"),
        "{site:?}"
    );
    assert_eq!(json.start_line, 1);
    assert!(site.message.contains("lib/helpers.j2"), "{}", site.message);
}

#[test]
fn an_error_in_an_included_helper_keeps_every_site() {
    // Included by the userdata of both pools: one diagnostic for the cluster, with the
    // include site as a secondary label.
    let (_dir, set) = config_set(
        "include-error",
        &[
            ("lib/broken.j2", &|_| "ok\n{{ pool.nothing }}\n".to_string()),
            (USERDATA, &|t| {
                format!("{t}# {{% include \"lib/broken.j2\" %}}\n")
            }),
        ],
    );
    let c = compile_with("include-error", &fleet_source(POOL), &set);
    let d = only(&c, "E0503");
    let (file, line) = place(&c, &d);
    assert!(file.ends_with("lib/broken.j2"), "{file}");
    assert_eq!(line, 2);
    assert!(d.message.contains("nothing"), "{}", d.message);
    assert_eq!(d.secondary.len(), 1, "{:#?}", d.secondary);
    assert!(d.secondary[0].message.contains("included here"));
}

/// A manifest text is read once per run, whichever clusters render it: an object it
/// declares is still refused where it is declared twice, in every cluster, and a text
/// that fails fails with the same message in every cluster.
#[test]
fn manifests_read_once_are_still_checked_in_every_cluster() {
    let shared =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\n";
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n";
    let (_dir, set) = config_set(
        "manifests-once",
        &[
            ("manifests/30-shared/a.yaml.j2", &|_| shared.to_string()),
            ("manifests/31-copy/a.yaml.j2", &|_| shared.to_string()),
            ("manifests/32-bad/b.yaml.j2", &|_| bad.to_string()),
        ],
    );
    let one = fleet_source(POOL);
    let second = one[one.find("cluster \"prod-1\"").unwrap()..].replace("prod-1", "prod-2");
    let c = compile_with("manifests-once", &format!("{one}\n{second}"), &set);
    let mut messages: Vec<String> = c
        .diagnostics
        .iter()
        .map(|d| {
            assert_eq!(d.code, "E0504", "{d:#?}");
            d.message.clone()
        })
        .collect();
    messages.sort();
    let expected: Vec<String> = ["prod-1", "prod-2"]
        .iter()
        .flat_map(|cluster| {
            [
                format!("cluster `{cluster}`: manifests/31-copy/a.yaml is invalid: ConfigMap `default/shared` is declared twice in this cluster's manifests"),
                format!("cluster `{cluster}`: manifests/32-bad/b.yaml is invalid: ConfigMap `Bad_Name`: metadata.name is not a valid DNS-1123 subdomain (lower-case letters, digits, `-` and `.`; at most 253 characters)"),
            ]
        })
        .collect();
    assert_eq!(messages, expected);
}
