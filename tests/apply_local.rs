//! `flotilla apply --world local` and its companions on a copy of the example fleet:
//! the README's flow (apply, change an instance type, apply: every node replaced with
//! PodDisruptionBudgets respected), and what apply must refuse.

#[path = "support/files.rs"]
mod files;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use files::TempDir;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CLUSTER: &str = "aws-eu-central-1-test-checkout";

/// A copy of the example fleet (with the channels it imports) in a scratch directory
/// that lasts as long as the guard returned with it.
fn fleet(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    copy(
        &Path::new(ROOT).join("examples/fleet"),
        &dir.join("examples/fleet"),
    );
    copy(&Path::new(ROOT).join("channels"), &dir.join("channels"));
    let fleet = dir.join("examples/fleet");
    (dir, fleet)
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Run flotilla on the local world of `fleet`, stdin not a terminal, clock unpaced.
fn flotilla(fleet: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .arg(fleet)
        .args(["--world", "local", "--config-set"])
        .arg(Path::new(ROOT).join("stdlib/config"))
        .env("FLOTILLA_LOCAL_SPEEDUP", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn apply_cluster(fleet: &Path) -> Output {
    flotilla(fleet, &["apply", "--auto-approve", "--cluster", CLUSTER])
}

/// The README's edit: a new instance type for the cluster's default-worker pool.
fn change_instance_type(fleet: &Path) {
    let file = fleet.join("test.flt");
    let source = std::fs::read_to_string(&file).unwrap();
    let before = "    ...pools.default_worker\n    min_size = 2\n";
    assert!(source.contains(before), "the example fleet changed shape");
    let after =
        "    ...pools.default_worker\n    instance_types = [\"m7i.2xlarge\"]\n    min_size = 2\n";
    std::fs::write(&file, source.replacen(before, after, 1)).unwrap();
}

fn world(fleet: &Path) -> Value {
    let text = std::fs::read_to_string(fleet.join(".flotilla/world.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn stat(world: &Value, name: &str) -> u64 {
    world["stats"][name].as_u64().unwrap()
}

/// The `status --format json` pools of CLUSTER, by name.
fn pools(fleet: &Path) -> Vec<Value> {
    let output = flotilla(fleet, &["status", "--format", "json", "--cluster", CLUSTER]);
    assert!(output.status.success(), "{}", text(&output));
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status[0]["pools"].as_array().unwrap().clone()
}

fn pool<'a>(pools: &'a [Value], name: &str) -> &'a Value {
    pools.iter().find(|p| p["name"] == name).unwrap()
}

#[test]
fn readme_flow_replaces_every_node_with_pdbs_respected() {
    let (_dir, fleet) = fleet("readme");
    let created = flotilla(&fleet, &["apply", "--auto-approve"]);
    assert!(created.status.success(), "{}", text(&created));
    let ignore = std::fs::read_to_string(fleet.join(".flotilla/.gitignore")).unwrap();
    assert_eq!(ignore, "*\n", "the local world stays out of git");

    let before = pools(&fleet);
    let workers = pool(&before, "default-worker");
    assert_eq!(workers["outdated"], 0);
    let nodes = workers["nodes"].as_u64().unwrap();
    assert!(nodes >= 2, "{workers}");
    let old_hash = workers["desired_hash"].clone();

    change_instance_type(&fleet);
    let changed = pools(&fleet);
    assert_ne!(pool(&changed, "default-worker")["desired_hash"], old_hash);
    assert_eq!(pool(&changed, "default-worker")["outdated"], nodes);
    assert_eq!(pool(&changed, "system")["outdated"], 0);

    let start = world(&fleet);
    let rolled = flotilla(
        &fleet,
        &[
            "apply",
            "--auto-approve",
            "--cluster",
            CLUSTER,
            "--log-format",
            "json",
        ],
    );
    assert!(rolled.status.success(), "{}", text(&rolled));
    let log: Vec<Value> = String::from_utf8_lossy(&rolled.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let evictions = log
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("evicted default/web-default-worker"))
        })
        .count();
    assert!(evictions > 0, "{log:?}");
    assert!(log.iter().all(|l| l["fields"]["cluster"] == CLUSTER));

    let after = pools(&fleet);
    let workers = pool(&after, "default-worker");
    assert_eq!(workers["outdated"], 0, "every node has the new config hash");
    assert_eq!(workers["nodes"], nodes);
    assert_eq!(workers["ready"], nodes);
    assert_eq!(workers["group"]["desired"], nodes, "sizes restored");
    let end = world(&fleet);
    assert_eq!(
        stat(&end, "terminated") - stat(&start, "terminated"),
        nodes,
        "each old node terminated once"
    );
    assert_eq!(
        stat(&end, "launched") - stat(&start, "launched"),
        nodes,
        "one new node per old one"
    );
    assert!(stat(&end, "evictions") > stat(&start, "evictions"));
    // The sample app's PDB allows one pod away at a time: the engine had to wait.
    assert!(stat(&end, "evictions_blocked") > stat(&start, "evictions_blocked"));
    assert_eq!(
        stat(&end, "forced_deletions"),
        0,
        "no pod deleted around its PDB"
    );

    let again = apply_cluster(&fleet);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("nothing to apply"),
        "{}",
        text(&again)
    );
}

#[test]
fn without_a_terminal_apply_needs_auto_approve() {
    let (_dir, fleet) = fleet("no-tty");
    let refused = flotilla(&fleet, &["apply", "--cluster", CLUSTER]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("standard input is not a terminal"),
        "{}",
        text(&refused)
    );
    assert!(text(&refused).contains("--auto-approve"));
    let status = pools(&fleet);
    assert!(
        status.iter().all(|p| p["group"].is_null()),
        "nothing was created: {status:?}"
    );
}

#[test]
fn a_blocked_cluster_is_refused_until_unblocked() {
    let (_dir, fleet) = fleet("block");
    assert!(apply_cluster(&fleet).status.success());
    let blocked = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["block", CLUSTER])
        .arg(&fleet)
        .args([
            "--reason",
            "payment freeze",
            "--world",
            "local",
            "--config-set",
        ])
        .arg(Path::new(ROOT).join("stdlib/config"))
        .output()
        .unwrap();
    assert!(blocked.status.success(), "{}", text(&blocked));

    change_instance_type(&fleet);
    let refused = apply_cluster(&fleet);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let message = text(&refused);
    assert!(message.contains("REFUSED"), "{message}");
    assert!(message.contains("payment freeze"), "{message}");
    assert!(message.contains("blocked by"), "{message}");
    assert_eq!(
        pool(&pools(&fleet), "default-worker")["outdated"],
        2,
        "nothing rolled"
    );

    let status = flotilla(
        &fleet,
        &["status", "--format", "json", "--cluster", CLUSTER],
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["blocked"]["reason"], "payment freeze");

    let unblocked = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["unblock", CLUSTER])
        .arg(&fleet)
        .args(["--world", "local", "--config-set"])
        .arg(Path::new(ROOT).join("stdlib/config"))
        .output()
        .unwrap();
    assert!(unblocked.status.success(), "{}", text(&unblocked));
    let applied = apply_cluster(&fleet);
    assert!(applied.status.success(), "{}", text(&applied));
    assert_eq!(pool(&pools(&fleet), "default-worker")["outdated"], 0);
}

#[test]
fn a_stale_plan_is_refused_and_says_what_moved() {
    let (_dir, fleet) = fleet("stale");
    assert!(apply_cluster(&fleet).status.success());
    change_instance_type(&fleet);
    let plan_file = fleet.join("plan.json");
    let planned = flotilla(
        &fleet,
        &[
            "plan",
            "--cluster",
            CLUSTER,
            "--out",
            plan_file.to_str().unwrap(),
        ],
    );
    assert!(planned.status.success(), "{}", text(&planned));

    // The fleet moves on after the review: another edit changes the artifacts.
    let file = fleet.join("test.flt");
    let source = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, source.replacen("m7i.2xlarge", "m6i.4xlarge", 1)).unwrap();
    let refused = flotilla(
        &fleet,
        &[
            "apply",
            "--auto-approve",
            "--plan",
            plan_file.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let message = text(&refused);
    assert!(message.contains("stale"), "{message}");
    assert!(message.contains("compiled artifacts changed"), "{message}");
    assert_eq!(
        pool(&pools(&fleet), "default-worker")["outdated"],
        2,
        "nothing rolled"
    );

    // A fresh plan of the same source applies.
    let planned = flotilla(
        &fleet,
        &[
            "plan",
            "--cluster",
            CLUSTER,
            "--out",
            plan_file.to_str().unwrap(),
        ],
    );
    assert!(planned.status.success(), "{}", text(&planned));
    let applied = flotilla(
        &fleet,
        &[
            "apply",
            "--auto-approve",
            "--plan",
            plan_file.to_str().unwrap(),
        ],
    );
    assert!(applied.status.success(), "{}", text(&applied));
    assert_eq!(pool(&pools(&fleet), "default-worker")["outdated"], 0);
}

#[test]
fn a_killed_apply_resumes_without_extra_instances() {
    let (_dir, fleet) = fleet("resume");
    assert!(apply_cluster(&fleet).status.success());
    change_instance_type(&fleet);
    let start = world(&fleet);
    let nodes = pool(&pools(&fleet), "default-worker")["nodes"]
        .as_u64()
        .unwrap();

    // Kill the process a few writes into the roll (the world's kill switch).
    let mut killed = world(&fleet);
    let mutations = stat(&killed, "mutations");
    killed["faults"]["kill_after_mutations"] = (mutations + 12).into();
    std::fs::write(
        fleet.join(".flotilla/world.json"),
        serde_json::to_string(&killed).unwrap(),
    )
    .unwrap();
    let failed = apply_cluster(&fleet);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(text(&failed).contains("killed"), "{}", text(&failed));

    let mut revived = world(&fleet);
    revived["faults"]["kill_after_mutations"] = Value::Null;
    std::fs::write(
        fleet.join(".flotilla/world.json"),
        serde_json::to_string(&revived).unwrap(),
    )
    .unwrap();
    // The dead process's lock is still there: wait it out (simulated minutes).
    let resumed = flotilla(
        &fleet,
        &[
            "apply",
            "--auto-approve",
            "--cluster",
            CLUSTER,
            "--lock-wait",
            "1800",
        ],
    );
    assert!(resumed.status.success(), "{}", text(&resumed));
    let workers = pool(&pools(&fleet), "default-worker").clone();
    assert_eq!(workers["outdated"], 0);
    assert_eq!(workers["nodes"], nodes);
    let end = world(&fleet);
    assert_eq!(
        stat(&end, "launched") - stat(&start, "launched"),
        nodes,
        "no second surge: one new instance per old node"
    );
}

#[test]
fn simulate_predicts_the_roll_without_touching_the_world() {
    let (_dir, fleet) = fleet("simulate");
    assert!(apply_cluster(&fleet).status.success());
    change_instance_type(&fleet);
    let before = world(&fleet);
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("simulate")
        .arg(&fleet)
        .args(["--cluster", CLUSTER, "--format", "json", "--config-set"])
        .arg(Path::new(ROOT).join("stdlib/config"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let prediction: Value = serde_json::from_slice(&output.stdout).unwrap();
    let predicted = prediction["pools"].as_array().unwrap();
    let by_name = |name: &str| predicted.iter().find(|p| p["pool"] == name).unwrap();
    let workers = by_name("default-worker");
    assert_eq!(workers["outdated"], 2);
    assert!(workers["failure"].is_null(), "{workers}");
    assert!(workers["forced_deletions"].as_array().unwrap().is_empty());
    let lower = workers["lower_bound_seconds"].as_u64().unwrap();
    assert!(lower > 0 && workers["duration_seconds"].as_u64().unwrap() >= lower);
    assert_eq!(by_name("system")["outdated"], 0);
    assert_eq!(
        world(&fleet)["stats"],
        before["stats"],
        "the world was not touched"
    );
    assert_eq!(pool(&pools(&fleet), "default-worker")["outdated"], 2);
}

#[test]
fn api_faults_during_a_roll_lose_no_capacity_and_a_rerun_finishes() {
    let (_dir, fleet) = fleet("faults");
    assert!(apply_cluster(&fleet).status.success());
    change_instance_type(&fleet);
    let nodes = pool(&pools(&fleet), "default-worker")["nodes"]
        .as_u64()
        .unwrap();
    let start = world(&fleet);
    let mut faulty = start.clone();
    faulty["faults"]["api_error_rate"] = 0.05.into();
    let file = fleet.join(".flotilla/world.json");
    std::fs::write(&file, serde_json::to_string(&faulty).unwrap()).unwrap();
    // Throttling and 5xx on one call in twenty: retried, or the cluster fails cleanly.
    let first = apply_cluster(&fleet);
    let mut calm = world(&fleet);
    assert!(stat(&calm, "injected_errors") > 0, "faults were injected");
    calm["faults"]["api_error_rate"] = 0.0.into();
    std::fs::write(&file, serde_json::to_string(&calm).unwrap()).unwrap();
    if !first.status.success() {
        let again = flotilla(
            &fleet,
            &[
                "apply",
                "--auto-approve",
                "--cluster",
                CLUSTER,
                "--lock-wait",
                "1800",
            ],
        );
        assert!(again.status.success(), "{}", text(&again));
    }
    let workers = pool(&pools(&fleet), "default-worker").clone();
    assert_eq!(workers["outdated"], 0);
    assert_eq!(workers["ready"], nodes, "no capacity lost");
    let end = world(&fleet);
    assert_eq!(stat(&end, "terminated") - stat(&start, "terminated"), nodes);
    assert_eq!(stat(&end, "launched") - stat(&start, "launched"), nodes);
    assert_eq!(stat(&end, "forced_deletions"), 0);
}
