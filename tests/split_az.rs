//! The `worker-splitaz` profile: one Auto Scaling group per availability zone, so that a
//! replaced node comes back in its zone (where its pods' EBS volumes are). The compiled
//! stack, and a roll of the example fleet's split pool in the local world.

#[path = "support/files.rs"]
mod files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use files::TempDir;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CLUSTER: &str = "aws-eu-central-1-prod-infra";
const POOL: &str = "stateful";

/// A copy of the example fleet (with the channels it imports) in a scratch directory
/// that lasts as long as the guard returned with it.
fn fleet(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    for sub in ["examples/fleet", "channels"] {
        copy(&Path::new(ROOT).join(sub), &dir.join(sub));
    }
    let fleet = dir.join("examples/fleet");
    (dir, fleet)
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

fn flotilla(fleet: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .arg(fleet)
        .args(["--world", "local", "--config-set"])
        .arg(Path::new(ROOT).join("stdlib/config"))
        .args(["--cluster", CLUSTER, "--auto-approve"])
        .env("FLOTILLA_LOCAL_SPEEDUP", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The split pool's groups: name → (zones, zones of its live instances).
fn groups(fleet: &Path) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(fleet.join(".flotilla/world.json")).unwrap();
    let world: Value = serde_json::from_str(&text).unwrap();
    let region = &world["regions"]["eu-central-1"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    region["groups"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("{CLUSTER}-{POOL}-")))
        .map(|(name, group)| {
            let instance_zones = strings(&group["instances"])
                .iter()
                .map(|id| {
                    region["instances"][id]["zone"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            (name.clone(), (strings(&group["zones"]), instance_zones))
        })
        .collect()
}

#[test]
fn the_split_stack_has_one_group_per_zone_sharing_one_launch_template() {
    let c = flotilla::compile::compile(
        &flotilla::source::DiskFs,
        Path::new("examples/fleet"),
        &flotilla::compile::ConfigSource::Dir(PathBuf::from("stdlib/config")),
        &[CLUSTER.to_string()],
    );
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    let stack: Value =
        serde_json::from_str(&c.artifacts[0].files["cloudformation/node-pool-stateful.json"])
            .unwrap();
    let resources = stack["Resources"].as_object().unwrap();
    let groups: Vec<(&String, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::AutoScaling::AutoScalingGroup")
        .collect();
    // zone_count defaults to 3; the pool's min_size 3 and max_size 12 are spread.
    assert_eq!(groups.len(), 3);
    for (index, (id, group)) in groups.iter().enumerate() {
        let properties = &group["Properties"];
        assert_eq!(*id, &format!("AutoScalingGroupZone{index}"));
        assert_eq!(
            properties["VPCZoneIdentifier"],
            serde_json::json!([{ "Fn::Select": [index, { "Ref": "SubnetIds" }] }])
        );
        assert_eq!(properties["MinSize"], 1);
        assert_eq!(properties["MaxSize"], 4);
        assert_eq!(
            properties["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]["LaunchTemplateId"],
            serde_json::json!({ "Ref": "LaunchTemplate" })
        );
        let tags = properties["Tags"].as_array().unwrap();
        let tag = |key: &str| tags.iter().find(|t| t["Key"] == key).map(|t| &t["Value"]);
        assert_eq!(
            tag("flotilla.io/zone-index"),
            Some(&Value::from(index.to_string()))
        );
        assert_eq!(tag("flotilla.io/node-pool"), Some(&Value::from(POOL)));
    }
    // The other pools keep one group over every zone.
    let default: Value =
        serde_json::from_str(&c.artifacts[0].files["cloudformation/node-pool-default-worker.json"])
            .unwrap();
    assert_eq!(
        default["Resources"]["AutoScalingGroup"]["Properties"]["VPCZoneIdentifier"],
        serde_json::json!({ "Ref": "SubnetIds" })
    );
}

#[test]
fn a_roll_of_a_split_pool_replaces_each_node_in_its_own_zone() {
    let (_dir, fleet) = fleet("split-az");
    flotilla(&fleet, &["apply"]);
    let before = groups(&fleet);
    assert_eq!(before.len(), 3, "{before:#?}");
    for (name, (zones, instances)) in &before {
        assert_eq!(zones.len(), 1, "{name}: one zone per group");
        assert_eq!(instances, zones, "{name}: its node runs in its zone");
    }

    let file = fleet.join("platform.flt");
    let source = std::fs::read_to_string(&file).unwrap();
    let old =
        "instance_types = [\"m6i.xlarge\", \"m5.xlarge\"]\n    profile        = \"worker-splitaz\"";
    assert!(source.contains(old), "the example fleet changed shape");
    let new = old.replace("\"m5.xlarge\"", "\"m7i.xlarge\"");
    std::fs::write(&file, source.replacen(old, &new, 1)).unwrap();
    let rolled = flotilla(&fleet, &["apply"]);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&rolled.stdout),
        String::from_utf8_lossy(&rolled.stderr)
    );
    for zone in 0..3 {
        assert!(
            log.contains(&format!(
                "{CLUSTER}-{POOL}-zone{zone}: min 1 / desired 2 / max 4"
            )),
            "zone {zone}'s group surged on its own:\n{log}"
        );
    }

    let status = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args([
            "status",
            "--format",
            "json",
            "--world",
            "local",
            "--cluster",
            CLUSTER,
        ])
        .arg(&fleet)
        .args(["--config-set"])
        .arg(Path::new(ROOT).join("stdlib/config"))
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let pool = status[0]["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == POOL)
        .unwrap()
        .clone();
    assert_eq!(pool["outdated"], 0, "{pool}");
    assert_eq!(pool["ready"], 3, "{pool}");
    // The three zone groups add up: 1/1/4 each.
    assert_eq!(
        pool["group"],
        serde_json::json!({"min": 3, "desired": 3, "max": 12})
    );
    // Every replacement came up in the zone of the node it replaced.
    assert_eq!(groups(&fleet), before);
}
