//! Loading modules: directory walks that meet symlinks end, imports of `.`/`..` resolve the
//! same from relative and absolute paths, and import aliases are not silently hidden.

#[path = "support/files.rs"]
mod files;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use files::TempDir;
use flotilla::analysis::{Analysis, analyze};
use flotilla::diagnostic::{Diagnostic, Label, render_all};
use flotilla::source::{DiskFs, FileSystem, MemoryFs};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `f()`, or a test failure if it takes longer than `limit` (a walk that never ends).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    receive
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

/// Run the binary in `dir`; kill it and fail if it runs longer than a minute.
fn flotilla(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flotilla binary runs");
    let start = Instant::now();
    while child.try_wait().expect("waitable").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            // Reaped before the panic drops the directory it runs in.
            let _ = child.wait();
            panic!("flotilla {args:?} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

// ---- symlinks -------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn the_walk_skips_symlinked_directories_and_lists_symlinked_files() {
    use std::os::unix::fs::symlink;
    let root = TempDir::new("walk");
    let d = root.join("d");
    write(&d.join("a/x.flt"), "let x = 1\n");
    // Two links back up: followed, the walk would branch without end.
    symlink("..", d.join("a/up")).unwrap();
    symlink("..", d.join("a/up2")).unwrap();
    write(&root.join("other/z.flt"), "let z = 1\n");
    symlink("../other", d.join("b")).unwrap();
    symlink("../other/z.flt", d.join("link.flt")).unwrap();
    symlink("../other", d.join("dir-named.flt")).unwrap();

    let walked = d.clone();
    let files = within(Duration::from_secs(30), move || DiskFs.flt_files(&walked));
    assert_eq!(files, [d.join("a/x.flt"), d.join("link.flt")]);
    assert_eq!(
        DiskFs.read(&d.join("link.flt")).as_deref(),
        Some(&b"let z = 1\n"[..])
    );
}

#[cfg(unix)]
#[test]
fn a_directory_given_as_a_symlink_is_walked() {
    let root = TempDir::new("root-link");
    write(&root.join("d/a/x.flt"), "let x = 1\n");
    std::os::unix::fs::symlink("d", root.join("link")).unwrap();
    assert_eq!(
        DiskFs.flt_files(&root.join("link")),
        [root.join("link/a/x.flt")]
    );
}

#[cfg(unix)]
#[test]
fn check_ends_on_a_directory_with_symlinks_to_its_parent() {
    let root = TempDir::new("check-loop");
    write(&root.join("d/a/x.flt"), "let x = 1\n");
    std::os::unix::fs::symlink("..", root.join("d/a/up")).unwrap();
    std::os::unix::fs::symlink("..", root.join("d/a/up2")).unwrap();
    let output = flotilla(&root, &["check", "d"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---- `.` and `..` ---------------------------------------------------------------------

/// (code, message, line, column, file) of every diagnostic, from `check --format json`.
fn json_diagnostics(output: &Output) -> Vec<(String, String, u64, u64, String)> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let n = |k: &str| v[k].as_u64().unwrap_or_default();
            (
                s("code"),
                s("message"),
                n("start_line"),
                n("start_column"),
                s("file"),
            )
        })
        .collect()
}

/// `check FILE` from `root`, given relatively and absolutely: the same diagnostics, at
/// the same places, in the same file.
fn same_relative_and_absolute(root: &Path, file: &str) -> Vec<(String, String, u64, u64, String)> {
    let absolute = root.join(file);
    let relative = flotilla(root, &["check", file, "--format", "json"]);
    let absolute = flotilla(
        root,
        &["check", absolute.to_str().unwrap(), "--format", "json"],
    );
    let (relative, absolute) = (json_diagnostics(&relative), json_diagnostics(&absolute));
    let without_file = |d: &[(String, String, u64, u64, String)]| {
        d.iter()
            .map(|(c, m, l, col, _)| (c.clone(), m.clone(), *l, *col))
            .collect::<Vec<_>>()
    };
    assert_eq!(without_file(&relative), without_file(&absolute));
    for (r, a) in relative.iter().zip(&absolute) {
        assert_eq!(Path::new(&r.4), Path::new(file));
        assert_eq!(Path::new(&a.4), root.join(file));
    }
    relative
}

#[test]
fn importing_the_parent_directory_works_from_a_relative_path() {
    let root = TempDir::new("dotdot");
    write(&root.join("sub/t.flt"), "import \"..\" as p\nlet y = p.z\n");
    write(&root.join("lib.flt"), "let z = 1\n");
    let diagnostics = same_relative_and_absolute(&root, "sub/t.flt");
    // `..` holds sub/t.flt itself: found, so the result is a cycle, not a missing module.
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(codes, ["E0102"], "{diagnostics:?}");
}

#[test]
fn importing_the_current_directory_works_from_a_relative_path() {
    let root = TempDir::new("dot");
    write(&root.join("t.flt"), "import \".\"\nlet y = z\n");
    write(&root.join("lib/l.flt"), "let z = 1\n");
    let diagnostics = same_relative_and_absolute(&root, "t.flt");
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(codes, ["E0102"], "{diagnostics:?}");
}

// ---- import aliases ---------------------------------------------------------------------

fn analyze_main(main: &str) -> Analysis {
    let mut fs = MemoryFs::new();
    fs.insert("fleet/m/q.flt", "let v = 1\n");
    fs.insert("fleet/m/r.flt", "let w = 2\n");
    fs.insert("fleet/main.flt", main);
    analyze(&fs, Path::new("fleet/main.flt"))
}

fn with_code<'a>(analysis: &'a Analysis, code: &str) -> Vec<&'a Diagnostic> {
    analysis
        .diagnostics
        .iter()
        .filter(|d| d.code == code)
        .collect()
}

/// (line, column, underlined text) of a label.
fn place(analysis: &Analysis, label: &Label) -> (u32, u32, String) {
    let file = analysis.program.sources.get(label.file);
    let position = file.lines.position(&file.text, label.span.start as usize);
    let text = file.text[label.span.start as usize..label.span.end as usize].to_string();
    (position.line, position.column, text)
}

fn rendered(analysis: &Analysis) -> String {
    render_all(&analysis.program.sources, &analysis.diagnostics, false)
}

#[test]
fn an_import_alias_used_twice_is_an_error_at_the_second() {
    let analysis = analyze_main("import \"./m/q.flt\" as a\nimport \"./m/r.flt\" as a\n");
    let errors = with_code(&analysis, "E0114");
    assert_eq!(errors.len(), 1, "{}", rendered(&analysis));
    let d = errors[0];
    assert!(d.is_error());
    assert_eq!(
        d.message,
        "import alias `a` is declared twice in this module"
    );
    assert_eq!(
        place(&analysis, d.primary.as_ref().unwrap()),
        (2, 23, "a".into())
    );
    assert_eq!(d.secondary.len(), 1);
    assert_eq!(place(&analysis, &d.secondary[0]), (1, 23, "a".into()));
    assert!(d.help.is_some());
}

#[test]
fn a_declaration_named_like_an_import_alias_is_an_error() {
    // Each declaration kind, after the import and before it.
    let declarations = [
        ("a", "let a = 3"),
        ("Size", "type Size = String"),
        ("Zone", "enum Zone {\n  x\n}"),
        ("Pool", "type Pool {\n  x: Int\n}"),
        (
            "edge",
            "channel edge {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}",
        ),
    ];
    for (name, declaration) in declarations {
        let import = format!("import \"./m/q.flt\" as {name}");
        for (main, declaration_first) in [
            (format!("{import}\n{declaration}\n"), false),
            (format!("{declaration}\n{import}\n"), true),
        ] {
            let analysis = analyze_main(&main);
            let errors = with_code(&analysis, "E0114");
            assert_eq!(errors.len(), 1, "{main}\n{}", rendered(&analysis));
            let d = errors[0];
            assert_eq!(
                d.message,
                format!("`{name}` is declared twice in this module")
            );
            let primary = place(&analysis, d.primary.as_ref().unwrap());
            let secondary = place(&analysis, &d.secondary[0]);
            assert_eq!((primary.2.as_str(), secondary.2.as_str()), (name, name));
            // The later one in the file is the error; the earlier one is the label.
            assert!(primary.0 > secondary.0, "{main}\n{}", rendered(&analysis));
            let import_line = if declaration_first {
                primary.0
            } else {
                secondary.0
            };
            let line = main.lines().nth(import_line as usize - 1).unwrap();
            assert!(line.starts_with("import"), "{main}");
        }
    }
}

#[test]
fn distinct_aliases_and_names_are_fine() {
    let analysis =
        analyze_main("import \"./m/q.flt\" as q\nimport \"./m/r.flt\" as r\nlet _a = q.v + r.w\n");
    assert!(analysis.diagnostics.is_empty(), "{}", rendered(&analysis));
}
