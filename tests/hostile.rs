//! Hostile and careless input (issue 11): each test reproduces one way flotilla hung,
//! aborted, leaked a secret or wrote unstable output, and is named after what broke.

#[path = "support/files.rs"]
mod files;
#[path = "support/template_fuzz.rs"]
mod template_fuzz;

use std::path::{Path, PathBuf};
use std::process::Command;

use arbitrary::{Arbitrary, Unstructured};
use files::{TempDir, read_tree};
use flotilla::compile::{Compilation, ConfigSource, compile, write_output};
use flotilla::source::DiskFs;
use proptest::prelude::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config-min");

const FLEET: &str = r#"channel stable {
  kubernetes_version = "1.31.4"
  config_ref = "stable"
}

cluster "prod-1" {
  account = "123456789012"
  region = "eu-central-1"
  environment = production
  channel = stable
  api_server_url = "https://${id}.example.org"
  node_pool "workers" {
    instance_types = ["m5.large"]
    max_size = 3
  }
}
"#;

/// `dir/fleet/main.flt` holding `source`.
fn write_fleet(dir: &Path, source: &str) -> PathBuf {
    let fleet = dir.join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(fleet.join("main.flt"), source).unwrap();
    fleet
}

/// A copy of the fixture config set under `dir/config`, with `edit` applied to the text
/// of the template at `template` (relative to the set).
fn config_copy(dir: &Path, template: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let set = dir.join("config");
    for (rel, bytes) in read_tree(Path::new(FIXTURE)) {
        let path = set.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let text = if rel == template { edit(text) } else { text };
        std::fs::write(path, text).unwrap();
    }
    set
}

fn flotilla(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn codes(c: &Compilation) -> Vec<&str> {
    c.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

// ---- config sets: symlink loops -----------------------------------------------------

// Reading a --config-set directory followed a link to its parent forever (11 GB in a
// minute with two links; 962 errors for one).
#[cfg(unix)]
#[test]
fn a_symlink_loop_in_a_config_set_is_one_error() {
    for links in [1, 2] {
        let dir = TempDir::new("set-loop");
        let set = config_copy(&dir, "", |t| t);
        for n in 0..links {
            std::os::unix::fs::symlink("..", set.join(format!("manifests/up-{n}"))).unwrap();
        }
        let fleet = write_fleet(&dir, FLEET);
        let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(set), &[]);
        assert_eq!(codes(&c), ["E0505"], "{:#?}", c.diagnostics);
        let message = &c.diagnostics[0].message;
        assert!(
            message.contains("manifests/up-0") && message.contains("symlink loop"),
            "{message}"
        );
    }
}

// A link to a directory elsewhere is still read: only a way back is refused.
#[cfg(unix)]
#[test]
fn a_symlinked_directory_that_is_not_a_loop_is_read() {
    let dir = TempDir::new("set-link");
    let set = config_copy(&dir, "", |t| t);
    let elsewhere = dir.join("extra");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        elsewhere.join("cm.yaml.j2"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linked\n  namespace: kube-system\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, set.join("manifests/linked")).unwrap();
    let fleet = write_fleet(&dir, FLEET);
    let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(set), &[]);
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    assert!(
        c.artifacts[0]
            .files
            .contains_key("manifests/linked/cm.yaml")
    );
}

// ---- compile output -------------------------------------------------------------------

// summary.json recorded --config-set as typed: a relative and an absolute path gave
// different bytes for the same input.
#[test]
fn summary_names_the_config_set_the_same_for_relative_and_absolute_paths() {
    let dir = TempDir::new("summary-path");
    let set = config_copy(&dir, "", |t| t);
    write_fleet(&dir, FLEET);
    let absolute = set.to_str().unwrap();
    let mut summaries = Vec::new();
    for (cwd, fleet_arg, set_arg, out) in [
        (dir.to_path_buf(), "fleet", "config", "out-relative"),
        (dir.to_path_buf(), "fleet", absolute, "out-absolute"),
        (dir.join("fleet"), ".", "../config", "../out-from-fleet"),
    ] {
        let args = ["compile", fleet_arg, "--out", out, "--config-set", set_arg];
        let output = flotilla(&cwd, &args);
        assert!(output.status.success(), "{output:?}");
        summaries.push(std::fs::read(cwd.join(out).join("prod-1/summary.json")).unwrap());
    }
    let first = String::from_utf8(summaries[0].clone()).unwrap();
    assert!(first.contains("\"config_set\": \"../config\""), "{first}");
    assert!(summaries.iter().all(|s| *s == summaries[0]), "{first}");
}

// A killed compile left `.OUT.staging-PID` behind for ever.
#[test]
fn stale_staging_directories_of_the_output_are_removed() {
    let dir = TempDir::new("stale-staging");
    let fleet = write_fleet(&dir, FLEET);
    let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(FIXTURE.into()), &[]);
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);

    let mut finished = Command::new("true").spawn().unwrap();
    let gone = finished.id();
    finished.wait().unwrap();
    let mut running = Command::new("sleep").arg("60").spawn().unwrap();
    let stale = dir.join(format!(".out.staging-{gone}"));
    let live = dir.join(format!(".out.staging-{}", running.id()));
    let other_output = dir.join(format!(".other.staging-{gone}"));
    for d in [&stale, &live, &other_output] {
        std::fs::create_dir_all(d.join("prod-1")).unwrap();
    }

    write_output(&dir.join("out"), &c.artifacts, true).unwrap();
    let _ = running.kill();
    let _ = running.wait();
    assert!(
        !stale.exists(),
        "the dead run's staging directory is removed"
    );
    assert!(
        live.exists(),
        "a running compile's staging directory is kept"
    );
    assert!(
        other_output.exists(),
        "another output's staging is not ours"
    );
    assert!(dir.join("out/prod-1/summary.json").exists());
}

// ---- diagnostics ----------------------------------------------------------------------

// Text diagnostics quoted the source line, so a secret literal reached stderr and CI
// logs; raw ESC and BEL from source reached the terminal.
#[test]
fn quoted_source_lines_hide_secrets_and_escape_control_characters() {
    let dir = TempDir::new("quoted-lines");
    let source = "let token = secret(\"db\", \"hunter2-plain\") + 1\n\
                  let bell = \"ring\x07\x1b[2J\" + 1\n\
                  let multi = secret(\n  \"db\",\n  \"hunter3-plain\"\n) + 2\n";
    std::fs::write(dir.join("main.flt"), source).unwrap();
    let output = flotilla(&dir, &["check", "main.flt"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("hunter"), "{stderr}");
    assert!(!stderr.contains(['\x07', '\x1b']), "{stderr}");
    // The underline still starts under the span and covers what is shown of it.
    assert!(
        stderr
            .contains("1 | let token = secret(…) + 1\n  |             ^^^^^^^^^^^^^ Secret + Int"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "2 | let bell = \"ring\\u{7}\\u{1b}[2J\" + 1\n  |            ^^^^^^^^^^^^^^^^^^^^^^^^ "
        ),
        "{stderr}"
    );
}

// ---- templates --------------------------------------------------------------------------

const MANIFEST: &str = "manifests/10-coredns/configmap.yaml.j2";

// Nested `range` loops got around minijinja's per-range cap: a template ran for ever.
#[test]
fn a_template_that_loops_for_ever_fails_naming_its_line() {
    let dir = TempDir::new("template-fuel");
    let set = config_copy(&dir, MANIFEST, |_| {
        "# endless\n{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}\n".into()
    });
    let fleet = write_fleet(&dir, FLEET);
    let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(set), &[]);
    assert_eq!(codes(&c), ["E0503"], "{:#?}", c.diagnostics);
    let json = flotilla::diagnostic::to_json(&c.sources, &c.diagnostics[0]);
    assert!(json.file.unwrap().ends_with(MANIFEST));
    assert_eq!(json.start_line, 2);
    assert!(
        c.diagnostics[0].message.contains("fuel"),
        "{:#?}",
        c.diagnostics
    );
}

// Template output had no size limit: under a memory limit the process aborted.
#[test]
fn a_template_that_renders_too_much_is_a_clear_error() {
    let dir = TempDir::new("template-size");
    let set = config_copy(&dir, MANIFEST, |_| {
        "{% for a in range(100000) %}{{ \"x\" * 1000 }}{% endfor %}\n".into()
    });
    let fleet = write_fleet(&dir, FLEET);
    let c = compile(&DiskFs, &fleet, &ConfigSource::Dir(set), &[]);
    assert_eq!(codes(&c), ["E0504"], "{:#?}", c.diagnostics);
    let message = &c.diagnostics[0].message;
    assert!(
        message.contains("manifests/10-coredns/configmap.yaml")
            && message.contains("exceeds 16 MiB"),
        "{message}"
    );
}

// ---- secrets: the redacted form is keyed -------------------------------------------------

/// The redacted form `eval` prints for a secret holding `value`, with `key_file` (if any)
/// as `FLOTILLA_SECRET_KEY_FILE`.
fn redacted_form(dir: &Path, value: &str, key_file: Option<&Path>) -> String {
    let source = FLEET.replace(
        "  node_pool",
        &format!(
            "  config_items {{\n    secrets = {{ \"db\": secret(\"db-password\", \"{value}\") }}\n  }}\n  node_pool"
        ),
    );
    write_fleet(dir, &source);
    let mut command = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    command
        .current_dir(dir)
        .args(["eval", "fleet", "--format", "json"]);
    match key_file {
        Some(path) => command.env(flotilla::redact::KEY_FILE_VARIABLE, path),
        None => command.env_remove(flotilla::redact::KEY_FILE_VARIABLE),
    };
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let shown = json
        .pointer("/clusters/0/config_items/secrets/db")
        .or_else(|| json.pointer("/0/config_items/secrets/db"));
    let shown = shown
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no secret in {json:#}"))
        .to_string();
    assert!(!shown.contains(value), "{shown}");
    shown
}

// The redacted form was the unsalted SHA-256 of the value cut to 64 bits: anyone who saw
// a pull-request comment could test guesses offline.
#[test]
fn the_redacted_form_of_a_secret_is_keyed_per_repository() {
    use sha2::{Digest, Sha256};
    let dir = TempDir::new("secret-key");
    let first = redacted_form(&dir, "hunter2", None);
    let unkeyed: String = Sha256::digest(b"hunter2")[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        first.starts_with("<secret:db-password hmac-sha256:"),
        "{first}"
    );
    assert!(!first.contains(&unkeyed), "{first} is the unkeyed digest");

    // The repository's key was created once, readable by its owner only, and git
    // ignores it; the same key gives the same form, a changed value another.
    let key = dir.join("fleet").join(flotilla::redact::KEY_FILE);
    let created = std::fs::read(&key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let ignore = std::fs::read_to_string(key.parent().unwrap().join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|line| line == "*"), "{ignore}");
    assert_eq!(redacted_form(&dir, "hunter2", None), first);
    assert_eq!(std::fs::read(&key).unwrap(), created, "the key is kept");
    assert_ne!(redacted_form(&dir, "hunter3", None), first);

    // CI names a key of its own: two keys give two forms, each stable.
    let key_a = dir.join("a.key");
    let key_b = dir.join("b.key");
    std::fs::write(&key_a, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::write(&key_b, "fedcba9876543210fedcba9876543210\n").unwrap();
    let with_a = redacted_form(&dir, "hunter2", Some(&key_a));
    let with_b = redacted_form(&dir, "hunter2", Some(&key_b));
    assert_ne!(with_a, with_b);
    assert_ne!(with_a, first);
    assert_eq!(redacted_form(&dir, "hunter2", Some(&key_a)), with_a);

    // A key too short to resist guessing is refused, naming the file.
    let short = dir.join("short.key");
    std::fs::write(&short, "abc").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .current_dir(&dir)
        .args(["eval", "fleet"])
        .env(flotilla::redact::KEY_FILE_VARIABLE, &short)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("short.key") && stderr.contains("at least 16"),
        "{stderr}"
    );
}

// Raw control characters were the only way to write ESC or BEL in a string; `\u{…}` is
// how the formatter and import-registry write them now, and it must name a character.
#[test]
fn unicode_escapes_write_control_characters_and_refuse_non_characters() {
    use flotilla::source::FileId;
    let formatted =
        flotilla::format::format_source(FileId(0), "let bell = \"a\x07b\\u{1B}c\\u{e9}\"\n")
            .unwrap();
    assert_eq!(formatted, "let bell = \"a\\u{7}b\\u{1b}c\u{e9}\"\n");
    let (_, diagnostics) = flotilla::syntax::parse(FileId(0), "let x = \"\\u{d800}\"\n");
    assert_eq!(
        diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(),
        ["E0004"]
    );
}

// ---- the template fuzz target, a few cases per run ----------------------------------------

// The fuzz target `template` (fuzz/README.md) with the same generator and checks: random
// config sets and cluster values render as `compile` renders them, within the size limit,
// and every error names its template. Loop counts are cut here (see `MAX_COUNT`).
proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_config_sets_render_within_bounds_and_errors_name_their_template(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096)
    ) {
        if let Ok(input) = template_fuzz::Input::arbitrary(&mut Unstructured::new(&bytes)) {
            template_fuzz::check(&input);
        }
    }
}
