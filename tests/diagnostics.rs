//! One test per error class: the input files and the rendered diagnostics go into one
//! snapshot, and each test also asserts the error code it is about.

use std::path::Path;

use flotilla::analysis::analyze;
use flotilla::diagnostic::{render_all, to_json};
use flotilla::source::MemoryFs;

/// A channel and a valid cluster header, so each case only writes what it is about.
const CHANNEL: &str =
    "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"stable\"\n}\n";

fn cluster(body: &str) -> String {
    format!(
        "{CHANNEL}\ncluster \"c1\" {{\n  account = \"123456789012\"\n  region = \"eu-central-1\"\n  environment = production\n  channel = stable\n  api_server_url = \"https://c1.example.org\"\n{body}}}\n"
    )
}

fn pool(body: &str) -> String {
    cluster(&format!(
        "  node_pool \"workers\" {{\n    instance_types = [\"m5.large\"]\n{body}  }}\n"
    ))
}

/// Analyse files under `fleet/` and return (snapshot text, codes reported).
fn run(files: &[(&str, Vec<u8>)]) -> (String, Vec<&'static str>) {
    let mut fs = MemoryFs::new();
    let mut out = String::new();
    for (path, text) in files {
        fs.insert(format!("fleet/{path}"), text.clone());
        out.push_str(&format!(
            "==> fleet/{path}\n{}\n",
            String::from_utf8_lossy(text)
        ));
    }
    let analysis = analyze(&fs, Path::new("fleet"));
    out.push_str("==> diagnostics\n");
    out.push_str(&render_all(
        &analysis.program.sources,
        &analysis.diagnostics,
        false,
    ));
    (
        out,
        analysis
            .diagnostics
            .iter()
            .map(|d| d.code.as_str())
            .collect(),
    )
}

macro_rules! case {
    ($name:ident, $code:literal, $($path:literal => $text:expr),+ $(,)?) => {
        #[test]
        fn $name() {
            let (out, codes) = run(&[$(($path, Vec::from($text))),+]);
            assert!(codes.contains(&$code), "expected {} in {:?}\n{}", $code, codes, out);
            insta::assert_snapshot!(stringify!($name), out);
        }
    };
}

// ---- syntax -------------------------------------------------------------------

case!(syntax_missing_value, "E0001", "main.flt" => cluster("  owner =\n"));
case!(syntax_unclosed_block, "E0001", "main.flt" => "cluster \"a\" {\n  owner = \"x\"\n");
case!(syntax_unclosed_paren, "E0001", "main.flt" => "let x = (1 + 2\nlet y = 3\n");
case!(syntax_unknown_declaration, "E0001", "main.flt" => "clustr \"a\" {}\n");
case!(syntax_missing_else, "E0001", "main.flt" => "let x = if true then 1\n");
case!(syntax_errors_in_two_declarations, "E0001", "main.flt" => "let a = [1, 2\nlet b = 2\nlet c = * 3\n");
case!(unterminated_string, "E0002", "main.flt" => "let name = \"eu-central-1\nlet other = 1\n");
case!(unknown_escape, "E0004", "main.flt" => "let path = \"C:\\data\"\n");
case!(nesting_too_deep, "E0005", "main.flt" => format!("let x = {}1{}\n", "(".repeat(100), ")".repeat(100)));
case!(integer_too_large, "E0006", "main.flt" => "let big = 99999999999999999999\n");
case!(bad_quantity_unit, "E0007", "main.flt" => cluster("  config_items {\n    coredns_memory_limit = 200MB\n  }\n"));
case!(bad_duration_literal, "E0007", "main.flt" => pool("    max_size = 3\n    update {\n      force_terminate_after = 0.5ms\n    }\n"));
case!(file_not_utf8, "E0009", "main.flt" => b"let x = \"caf\xe9\"\n".to_vec());
// Carets line up under wide characters (two columns) and combining accents (none).
case!(caret_after_wide_characters, "E0103", "main.flt" => "let x = [\"😀😀\", zzz]\nlet y = [\"e\u{301}e\u{301}\", zzz]\nlet z = [\"日本\", \"😀\" + 1]\n");

// ---- modules and names ------------------------------------------------------------

case!(import_not_found, "E0101", "main.flt" => "import \"./pools.flt\" as pools\n");
case!(import_cycle, "E0102",
    "a.flt" => "import \"./b.flt\"\nlet a = 1\n",
    "b.flt" => "import \"./a.flt\"\nlet b = 2\n");
case!(unknown_std_module, "E0109", "main.flt" => "import \"std/asw\"\n");
case!(unknown_name, "E0103", "main.flt" => "let regions = [\"eu-central-1\"]\nlet first = regoins[0]\n");
case!(enum_variant_without_its_enum, "E0103", "main.flt" => "let e = test\nlet types = [spot]\n");
case!(unknown_module_member, "E0103",
    "main.flt" => "import \"./pools.flt\" as pools\nlet x = pools.sytem\n",
    "pools.flt" => "let system = 1\n");
case!(duplicate_declaration, "E0104", "main.flt" => "let size = 1\nlet size = 2\n");
case!(builtin_type_redeclared, "E0104", "main.flt" => "type String = Int\nenum Bool {\n  yes,\n  no,\n}\nlet name: String = \"a\"\n");
case!(unknown_type, "E0105", "main.flt" => "type Team {\n  name: Strng\n}\n");
case!(duplicate_cluster_id, "E0106", "a.flt" => cluster(""), "b.flt" => cluster("").replace("channel stable", "channel other").replace("channel = stable", "channel = other"));
case!(duplicate_node_pool, "E0107", "main.flt" => cluster("  node_pool \"w\" {\n    instance_types = [\"m5.large\"]\n    max_size = 3\n  }\n  node_pool \"w\" {\n    instance_types = [\"m5.large\"]\n    max_size = 3\n  }\n"));
case!(field_set_twice, "E0108", "main.flt" => cluster("  owner = \"team-a\"\n  owner = \"team-b\"\n"));
case!(duplicate_enum_variant, "E0110", "main.flt" => "enum Tier {\n  gold,\n  silver,\n  gold,\n}\n");
case!(duplicate_type_field, "E0111", "main.flt" => "type Team {\n  name: String\n  name: Int\n}\n");
case!(invalid_attribute, "E0112", "main.flt" => "type Team {\n  @label size: Int\n}\n");
case!(two_label_fields, "E0112", "main.flt" => "type Team {\n  @label name: String\n  @label slug: String\n}\n");

// ---- types --------------------------------------------------------------------------

case!(unknown_field, "E0201", "main.flt" => pool("    max_szie = 3\n"));
case!(wrong_type, "E0202", "main.flt" => pool("    max_size = \"3\"\n"));
case!(enum_variant_in_quotes, "E0202", "main.flt" => cluster("").replace("environment = production", "environment = \"production\""));
case!(quantity_where_duration_expected, "E0202", "main.flt" => pool("    max_size = 3\n    update {\n      force_terminate_after = 500Mi\n    }\n"));
case!(missing_field, "E0203", "main.flt" => pool("    min_size = 2\n"));
case!(unknown_variant, "E0204", "main.flt" => cluster("").replace("environment = production", "environment = prod"));
case!(unknown_qualified_variant, "E0204", "main.flt" => cluster("").replace("environment = production", "environment = Environment.staging"));
case!(unknown_channel, "E0205", "main.flt" => cluster("").replace("channel = stable", "channel = stabel"));
case!(not_a_block, "E0206", "main.flt" => cluster("  owner {\n    name = \"x\"\n  }\n"));
case!(missing_block_label, "E0207", "main.flt" => cluster("  node_pool {\n    instance_types = [\"m5.large\"]\n    max_size = 3\n  }\n"));
case!(unknown_function, "E0208", "main.flt" => "let x = lenght([1, 2])\n");
case!(wrong_argument_count, "E0208", "main.flt" => "let x = join([\"a\", \"b\"])\n");
case!(operator_type_mismatch, "E0209", "main.flt" => "let x = \"size-\" + 3\n");
case!(field_access_on_non_record, "E0211", "main.flt" => "let sizes = [1, 2]\nlet x = sizes.first\n");
case!(bad_spread, "E0212", "main.flt" => cluster("  ...\"defaults\"\n"));
case!(mixed_list, "E0213", "main.flt" => "let xs = [1, \"two\", 3]\n");
case!(null_for_required_field, "E0214", "main.flt" => pool("    max_size = null\n"));
case!(always_null_value_for_required_field, "E0214", "main.flt" => "let x = null ?? null\nlet y: Int = x\n".to_string() + &pool("    min_size = y\n    max_size = 3\n"));
case!(secret_interpolated, "E0215", "main.flt" => "let token = secret(\"api-token\", \"s3cr3t\")\nlet header = \"Bearer ${token}\"\n");
case!(label_field_assigned, "E0217", "main.flt" => pool("    name = \"other\"\n    max_size = 3\n"));
case!(duplicate_map_key, "E0218", "main.flt" => pool("    max_size = 3\n    labels = { \"team\": \"a\", \"team\": \"b\" }\n"));
case!(untyped_record, "E0219", "main.flt" => "let base = { max_size = 3 }\n");

// ---- evaluation -----------------------------------------------------------------------

case!(division_by_zero, "E0301", "main.flt" => "let per_zone = 0\n".to_string() + &pool("    max_size = 12 / per_zone\n"));
case!(failed_check_min_above_max, "E0302", "main.flt" => pool("    min_size = 10\n    max_size = 3\n"));
case!(node_pool_name_not_a_dns_label, "E0302", "main.flt" => cluster("  node_pool \"../Workers_1\" {\n    instance_types = [\"m5.large\"]\n    max_size = 3\n  }\n"));
case!(failed_check_unknown_region, "E0302", "main.flt" => cluster("  node_pool \"w\" {\n    instance_types = [\"m5.large\"]\n    max_size = 3\n  }\n").replace("\"eu-central-1\"", "\"eu-central-9\""));
case!(failed_check_unknown_instance_type, "E0302", "main.flt" => pool("    max_size = 3\n").replace("[\"m5.large\"]", "[\"m5.large\", \"m5.hyge\"]"));
case!(integer_overflow, "E0303", "main.flt" => pool("    max_size = 9223372036854775807 + 1\n"));
case!(float_overflow, "E0303", "main.flt" => pool("    max_size = if 1.0e300 * 1.0e300 > 0.0 then 3 else 2\n"));
case!(index_out_of_range, "E0304", "main.flt" => "let sizes = [3, 6]\n".to_string() + &pool("    max_size = sizes[2]\n"));
case!(cyclic_lets, "E0305", "main.flt" => "let a = b + 1\nlet b = a + 1\n");
case!(absolute_import, "E0101", "main.flt" => "import \"/etc/fleet\"\n");
case!(duplicate_import_alias, "E0114",
    "main.flt" => "import \"./m/q.flt\" as a\nimport \"./m/r.flt\" as a\n",
    "m/q.flt" => "let q = 1\n",
    "m/r.flt" => "let r = 2\n");
case!(misspelt_field_with_enum_value, "E0201", "main.flt" => cluster("  enviroment = test\n"));
case!(list_field_written_as_block, "E0206", "main.flt" => pool("    taints {\n      key = \"a\"\n      value = \"b\"\n    }\n"));
case!(cyclic_type_aliases, "E0113", "main.flt" => "type Name = [Names]\ntype Names = {String: Name}\nlet x: Name = []\n");
case!(cyclic_fields, "E0305", "main.flt" => pool("    min_size = max_size\n    max_size = min_size\n"));

// ---- several errors in one run ------------------------------------------------------------

case!(several_errors_across_files, "E0201",
    "prod.flt" => pool("    max_szie = 3\n"),
    "test.flt" => cluster("").replace("\"c1\"", "\"c2\"").replace(CHANNEL, "").replace("environment = production", "environment = staging"));

/// `--format json` positions: the end column of a span at the end of a CRLF line does
/// not count the `\r`, and the invalid byte of a file that is not UTF-8 is one column wide.
#[test]
fn json_positions_skip_carriage_returns_and_cover_the_invalid_byte() {
    let mut fs = MemoryFs::new();
    fs.insert("fleet/crlf.flt", "let a = 1\r\nlet b = \"abc\r\n");
    fs.insert("fleet/latin1.flt", b"let x = \"caf\xe9\"\n".to_vec());
    let analysis = analyze(&fs, Path::new("fleet"));
    let json: Vec<serde_json::Value> = analysis
        .diagnostics
        .iter()
        .map(|d| serde_json::to_value(to_json(&analysis.program.sources, d)).unwrap())
        .collect();
    let position = |code: &str| {
        let d = json
            .iter()
            .find(|d| d["code"] == code)
            .unwrap_or_else(|| panic!("no {code} in {json:?}"));
        [
            &d["start_line"],
            &d["start_column"],
            &d["end_line"],
            &d["end_column"],
        ]
        .map(|v| v.as_u64().unwrap())
    };
    // `"abc` is columns 9 to 12 of line 2; the span ends before the `\r`.
    assert_eq!(position("E0002"), [2, 9, 2, 13]);
    // `é` (0xE9 in Latin-1) is column 13.
    assert_eq!(position("E0009"), [1, 13, 1, 14]);
}

#[test]
fn long_operator_chains_and_deep_conditionals_are_errors_not_crashes() {
    // At the limits everything works, in a test thread's small stack.
    let chain = format!(
        "let _x = 1{}\n",
        " + 1".repeat(flotilla::syntax::MAX_EXPRESSION_DEPTH - 1)
    );
    let (_, codes) = run(&[("main.flt", chain.into_bytes())]);
    assert!(codes.is_empty(), "{codes:?}");
    let negations = format!(
        "let _x = {}true\n",
        "!".repeat(flotilla::syntax::MAX_PREFIX_RUN)
    );
    let (_, codes) = run(&[("main.flt", negations.into_bytes())]);
    assert!(codes.is_empty(), "{codes:?}");
    // A long flat list of negative numbers is not deep at all.
    let flat = format!("let _x = [{}]\n", "-1, ".repeat(5_000));
    let (_, codes) = run(&[("main.flt", flat.into_bytes())]);
    assert!(codes.is_empty(), "{codes:?}");
    let ifs = format!(
        "let _x = {}0\n",
        "if true then 1 else ".repeat(flotilla::syntax::MAX_CONDITIONALS)
    );
    let (_, codes) = run(&[("main.flt", ifs.into_bytes())]);
    assert!(codes.is_empty(), "{codes:?}");
    // Beyond them: a diagnostic.
    for text in [
        format!("let x = 1{}\n", " + 1".repeat(200_000)),
        format!("let x = {}1\n", "-".repeat(100_000)),
        format!("let x = {}0\n", "if true then 1 else ".repeat(10_000)),
        format!("let x = {{\"a\": 1}}\nlet y = x{}\n", ".a".repeat(30_000)),
        format!("let x = [0]\nlet y = x{}\n", "[0]".repeat(200_000)),
        // `channel` is also a field name: a line starting with it does not begin a new
        // declaration, so it cannot reset the limits in the middle of an expression.
        format!(
            "let x = 1 +\n{}1\n",
            "channel + 1 + if true then 1 else\n".repeat(300)
        ),
    ] {
        let (out, codes) = run(&[("main.flt", text.into_bytes())]);
        assert_eq!(
            codes,
            ["E0005"],
            "{}",
            &out[out.len().saturating_sub(600)..]
        );
    }
}

#[test]
fn a_very_long_line_is_shown_around_the_error_only() {
    let text = format!(
        "let x = [{}zzz, {}]\n",
        "1, ".repeat(30_000),
        "2, ".repeat(30_000)
    );
    let (out, codes) = run(&[("main.flt", text.into_bytes())]);
    assert_eq!(codes, ["E0103"]);
    let report = &out[out.find("==> diagnostics").unwrap()..];
    assert!(report.len() < 1_000, "{report}");
    let lines: Vec<&str> = report.lines().collect();
    let shown = lines
        .iter()
        .position(|l| l.contains(" | ") && l.contains("zzz"))
        .unwrap();
    let shown_text = lines[shown].split_once("| ").unwrap().1;
    assert!(
        shown_text.starts_with('…') && shown_text.ends_with('…'),
        "{shown_text}"
    );
    assert!(shown_text.contains("1, 1, zzz, 2, 2"), "{shown_text}");
    let column = |line: &str, pattern: &str| line[..line.find(pattern).unwrap()].chars().count();
    assert_eq!(
        column(lines[shown], "zzz"),
        column(lines[shown + 1], "^^^"),
        "the caret stays under the name:\n{report}"
    );
}

// Issue 12: an unused `let` is never evaluated, so a mistake in it passed `check` silently.
#[test]
fn an_unused_let_is_a_warning_at_its_name() {
    let (out, codes) = run(&[(
        "main.flt",
        b"let used = 2\nlet x = 12 / 0\nlet _kept = 1\nlet y = used + 1\n".to_vec(),
    )]);
    assert_eq!(codes, ["W0001", "W0001"], "{out}");
    assert!(out.contains("warning[W0001]: `x` is never used"), "{out}");
    assert!(out.contains("fleet/main.flt:2:5"), "{out}");
    assert!(out.contains("warning[W0001]: `y` is never used"), "{out}");
    assert!(out.contains("fleet/main.flt:4:5"), "{out}");
    assert!(out.contains("name it `_x`"), "{out}");
    assert!(out.contains("0 errors, 2 warnings"), "{out}");
}

#[test]
fn a_let_read_from_another_file_is_used() {
    let (out, codes) = run(&[
        ("lib/a.flt", b"let shared = 3\n".to_vec()),
        (
            "main.flt",
            b"import \"./lib/a.flt\" as a\nlet _total = a.shared * 2\n".to_vec(),
        ),
    ]);
    assert!(codes.is_empty(), "{out}");
}

#[test]
fn unused_lets_are_not_reported_beside_errors() {
    // The error is what matters; the warnings come once it is fixed.
    let (out, codes) = run(&[("main.flt", b"let x = 1 + \"a\"\nlet y = 2\n".to_vec())]);
    assert!(!codes.is_empty(), "{out}");
    assert!(!codes.contains(&"W0001"), "{out}");
}
