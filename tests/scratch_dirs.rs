//! The tests' scratch directories (`tests/support/files.rs`): gone after their test,
//! whether it passed or failed, unless `FLOTILLA_KEEP_TEST_DIRS=1` keeps them. Each case
//! runs a test of this binary in a child process, as the suite runs its tests, and looks
//! at what that left behind.

#[path = "support/files.rs"]
mod files;

use std::path::PathBuf;
use std::process::{Command, Output};

use files::{KEEP_VARIABLE, TempDir};

/// Tells the child test to fail after filling its directory.
const FAIL_VARIABLE: &str = "FLOTILLA_SCRATCH_CHILD_FAILS";
/// A directory outside the child's, which the child links to from inside its own.
const LINK_VARIABLE: &str = "FLOTILLA_SCRATCH_CHILD_LINKS_TO";
const CHILD: &str = "child_fills_a_scratch_directory";

#[test]
#[ignore = "run in a child process by the tests of this file"]
fn child_fills_a_scratch_directory() {
    let dir = TempDir::new("guard");
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("a/b/deep.txt"), "deep").unwrap();
    std::fs::write(dir.join("top.txt"), "top").unwrap();
    let outside = std::env::var_os(LINK_VARIABLE).expect("the parent names a directory");
    std::os::unix::fs::symlink(outside, dir.join("link")).unwrap();
    println!("scratch: {}", dir.display());
    assert!(
        std::env::var_os(FAIL_VARIABLE).is_none(),
        "failing on purpose, as a test does"
    );
}

/// Runs the child test with `KEEP_VARIABLE` set to `keep` (unset if `None`); the
/// directory it made, what it printed, and the directory its link pointed to.
fn run_child(keep: Option<&str>, fail: bool) -> (PathBuf, Output, TempDir) {
    let outside = TempDir::new("guard-outside");
    std::fs::write(outside.join("kept.txt"), "not the child's").unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            CHILD,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LINK_VARIABLE, &*outside)
        .env_remove(KEEP_VARIABLE)
        .env_remove(FAIL_VARIABLE);
    if let Some(keep) = keep {
        command.env(KEEP_VARIABLE, keep);
    }
    if fail {
        command.env(FAIL_VARIABLE, "1");
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The harness prints `test NAME ... ` on the same line, before the path.
    let dir = stdout
        .split_once("scratch: ")
        .and_then(|(_, rest)| rest.lines().next())
        .unwrap_or_else(|| panic!("the child printed no directory: {output:?}"))
        .into();
    (dir, output, outside)
}

#[test]
fn a_passing_test_leaves_no_directory_behind() {
    let (dir, output, outside) = run_child(None, false);
    assert!(output.status.success(), "{output:?}");
    assert!(!dir.exists(), "{} is left", dir.display());
    // Removal does not follow links out of the directory.
    assert!(outside.join("kept.txt").exists());
}

#[test]
fn a_failing_test_leaves_no_directory_behind() {
    let (dir, output, outside) = run_child(None, true);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("failing on purpose"),
        "{output:?}"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(outside.join("kept.txt").exists());
}

#[test]
fn the_keep_variable_keeps_the_directory_and_all_it_holds() {
    let (dir, output, _outside) = run_child(Some("1"), false);
    assert!(output.status.success(), "{output:?}");
    let kept = std::fs::read_to_string(dir.join("a/b/deep.txt"));
    // Kept for the developer who asked; the test cleans up after itself.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(kept.unwrap(), "deep");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!("kept {}", dir.display())),
        "{output:?}"
    );

    // Only `1` keeps them.
    let (dir, output, _outside) = run_child(Some("0"), false);
    assert!(output.status.success(), "{output:?}");
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[test]
fn directories_of_one_name_are_apart_and_start_empty() {
    let first = TempDir::new("same");
    let second = TempDir::new("same");
    assert_ne!(*first, *second);
    for dir in [&first, &second] {
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("flotilla-test-same-{}-", std::process::id())),
            "{name}"
        );
    }
}
