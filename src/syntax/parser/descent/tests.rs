//! The hand-written parser against pest's run: where it accepts, the same step; where
//! pest rejects, it declines.

use super::super::{PEST_ONLY, SyntaxError, pest_step, shown};
use proptest::prelude::*;

use super::*;
use crate::syntax::{chunks, parse_here};

/// Runs `f` on a thread with the stack the parser threads have (pest recurses deeply
/// in debug builds).
fn on_parse_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(scope, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

/// How the hand-written parser did on a text.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    accepted: usize,
    declined: usize,
}

/// Every step the full parser takes on `text` (from the start, and from each chunk's
/// start as recovery after a syntax error parses it): where the hand-written parser
/// accepts, its step is pest's; where pest rejects, it declines. Counted: the steps
/// from the start (the chunks are parsed only after a syntax error).
fn compare_steps(text: &str) -> Tally {
    let mut tally = Tally::default();
    let mut runs = vec![(text, 0)];
    runs.extend(
        chunks(text)
            .into_iter()
            .map(|(start, end)| (&text[..end], start)),
    );
    for (run, (text, base)) in runs.into_iter().enumerate() {
        let mut counted = Tally::default();
        let tally = if run == 0 { &mut tally } else { &mut counted };
        let mut at = base;
        loop {
            let first = at == base;
            let pest = pest_step(FileId(1), text, at, first);
            let descent = parse_step(FileId(1), text, at, first);
            match &descent {
                Some(step) => {
                    tally.accepted += 1;
                    let ours = shown(&Ok(step.as_ref().map(|s| Step {
                        end: s.end,
                        item: s.item.clone(),
                        problems: s.problems.clone(),
                    })));
                    assert_eq!(ours, shown(&pest), "at {at} of {text:?}");
                }
                None => tally.declined += 1,
            }
            match pest {
                Ok(Some(step)) => at = step.end,
                Ok(None) | Err(SyntaxError) => break,
            }
        }
    }
    tally
}

/// The whole-file parse is the same with and without the hand-written parser.
fn compare_files(text: &str) {
    let with = parse_here(FileId(1), text);
    PEST_ONLY.set(true);
    let without = parse_here(FileId(1), text);
    PEST_ONLY.set(false);
    assert_eq!(with.0.items, without.0.items, "{text:?}");
    assert_eq!(with.0.comments, without.0.comments);
    assert_eq!(with.1, without.1, "{text:?}");
}

/// `text`'s first declaration is accepted, and is what pest gives.
#[track_caller]
fn accepts(text: &str) {
    on_parse_stack(|| {
        let descent = parse_step(FileId(1), text, 0, true);
        assert!(descent.is_some(), "declined {text:?}");
        let tally = compare_steps(text);
        assert_eq!(tally.declined, 0, "declined a step of {text:?}");
    })
}

/// A step of `text` is declined (pest decides: a syntax error or a problem), and the
/// steps accepted are pest's.
#[track_caller]
fn declines(text: &str) {
    on_parse_stack(|| {
        let tally = compare_steps(text);
        assert!(tally.declined > 0, "accepted every step of {text:?}");
    })
}

#[test]
fn blanks_and_comments_between_tokens_but_not_inside_atomic_rules() {
    accepts("let x = a .b");
    accepts("let x = a\n  // c\n  .b // d\n");
    accepts("let x=1//c");
    accepts("let\tx\r\n=\n1");
    accepts("import \"a\" // c\n as // c\n b");
    accepts("type T = m.Foo");
    accepts("let x = \"a${ b // c\n }d\"");
    accepts("let x = f (1) [ 2 ]");
    declines("let x = a. b");
    declines("type T = m .Foo");
    declines("type T = m. Foo");
    declines("let x = 1 _000");
    declines("let x = tr ue");
}

#[test]
fn names_may_start_with_keywords_but_not_be_one() {
    for name in [
        "iffy", "in_x", "null_ok", "true_x", "channel", "cluster", "_a", "A1",
    ] {
        accepts(&format!("let x = {name}"));
        accepts(&format!("cluster \"c\" {{ {name} = 1 }}"));
    }
    for keyword in ["if", "in", "null", "true", "as", "check", "then", "for"] {
        declines(&format!("cluster \"c\" {{ {keyword} = 1 }}"));
        declines(&format!("let {keyword} = 1"));
    }
    declines("let x = a.if");
    accepts("let x = a.channel");
    accepts("channel c { cluster = 1 }");
    declines("channelx c {}");
    declines("clusters \"c\" {}");
}

#[test]
fn primaries_are_chosen_in_the_grammars_order() {
    // `{}` and `{ "k": v }` are maps, `{ a = 1 }` a record.
    accepts("let x = {}");
    accepts("let x = { // c\n }");
    accepts("let x = { \"k\": v, \"l\": 2, }");
    accepts("let x = { a = 1, b { c = 2 } ...d }");
    // A type name before a block makes a record; without one, `m.Foo` is a field.
    accepts("let x = Foo { a = 1 }");
    accepts("let x = m.Foo\n{ a = 1 }");
    accepts("let x = m.Foo");
    accepts("let x = m.Foo + 1");
    accepts("let x = Foo");
    accepts("let x = Foo(1)");
    accepts("let x = f(a, b,)");
    accepts("let x = f()");
    accepts("let x = if a then b else c");
    accepts("let x = true && false ?? null");
    accepts("let x = (a)");
    declines("let x = { \"k\" = 1 }");
    declines("let x = { a: 1 }");
    declines("let x = m.foo { a = 1 }");
    declines("let x = f(,)");
    declines("let x = f(a b)");
}

#[test]
fn numbers_follow_the_grammar() {
    for number in [
        "0", "1_000", "1.5", "1.5e3", "2.0E-6", "1.5e+1_0", "90s", "1.5Gi", "250m", "5m", "3d",
        "500Mi", "1.5E",
    ] {
        accepts(&format!("let x = {number}"));
    }
    // `1.` is the number 1 then a `.` with no name; `1..2` the same; `1.x` a field.
    declines("let x = 1.");
    declines("let x = 1..2");
    accepts("let x = 1.x");
    accepts("let x = 1.5.x");
    // Problems (an unknown unit, out of range) are for pest's run to report.
    declines("let x = 1e3");
    declines("let x = 1_");
    declines("let x = 2GB");
    declines("let x = 99999999999999999999");
    declines("let x = 1.5e999");
}

#[test]
fn strings_escapes_and_interpolations() {
    accepts(r#"let x = "a\"b\\c\nd\te\rf\$g\u{1b}h\u{10FFFF}""#);
    accepts(r#"let x = "${a}${b}" + "" + "é ${ "in${c}" } $x $""#);
    accepts(r#"cluster "a\tb" { x "l\"" { } }"#);
    declines(r#"let x = "\q""#);
    declines(r#"let x = "\u{110000}""#);
    declines(r#"let x = "\u{}""#);
    declines(r#"let x = "\u{1234567}""#);
    declines(r#"cluster "a${b}" {}"#);
    declines("let x = \"a\nb\"");
}

#[test]
fn lists_maps_and_blocks_with_optional_and_trailing_commas() {
    accepts("let x = [a, b,]");
    accepts("let x = [ ]");
    accepts("let x = [x for x in xs]");
    accepts("let x = [x * 2 for x in xs if x > 1 && y]");
    accepts("cluster \"c\" { a = 1, b = 2, c { }, ...d, e \"l\" { f = 3 } g = 4 }");
    accepts("enum E { a, b c, }");
    accepts("enum E {}");
    declines("let x = [a,, b]");
    declines("let x = [a, b for x in y]");
    declines("let x = [a b]");
    declines("cluster \"c\" { a = 1,, }");
    declines("enum E { a,, b }");
    declines("let x = { \"a\": 1 \"b\": 2 }");
}

#[test]
fn operators_prefix_runs_and_postfix() {
    accepts("let x = - -x");
    accepts("let x = !!x");
    accepts("let x = a ?? b || c && d == e != f < g <= h > i >= j + k - l * m / n % o");
    accepts("let x = a <= b < c");
    accepts("let x = a - -b --c");
    accepts("let x = -a.b[0] * !c");
    accepts("let x = a[b][c].d");
    accepts("let x = a /b // c\n");
    declines("let x = a ! b");
    declines("let x = a =< b");
    declines("let x = !=a");
    declines("let x = a +");
}

#[test]
fn declarations_of_every_kind() {
    accepts("import \"std/aws\"");
    accepts("import \"./a.flt\" as a");
    accepts("type Size = Int?");
    accepts("type L = [{String: m.Pool?}]?");
    accepts(
        "type P {\n  @label name: String\n  @block(\"node_pool\") pools: [Pool] = []\n  size: Int? = 1\n  check size > 0: \"positive ${size}\"\n  tags: {String: String}\n}",
    );
    accepts("let x: Int = 1");
    accepts("channel stable { v = \"1\" }");
    declines("type M = {Int: String}");
    declines("type P { check a > 0, \"m\" }");
    declines("import \"a\" as");
    declines("let x 1");
}

#[test]
fn where_a_step_ends() {
    // An optional or repeated part that matched nothing leaves the blanks after the
    // part before it in the declaration, and so in its span and its step.
    accepts("let x = 1 // c\n\n// d\n");
    accepts("let x = 1 + 2 // c\n");
    accepts("let x = if a then b else c // c\nlet y = 1");
    accepts("let x = (if a then b else c  ) + 1");
    accepts("import \"a\"  \n\nlet y = 1");
    accepts("type T = Int  \n");
    accepts("type T = Int?  \n");
    accepts("type T { a: Int  \n b: Int = 1  \n @x  c: Int }  \n");
    accepts("cluster \"c\" { a = 1  \n  ...b  \n}  \n");
    accepts("let x = 1 let y = 2");
    // Only blanks and comments left: no step.
    on_parse_stack(|| {
        assert!(matches!(
            parse_step(FileId(1), "let x = 1\n  // end\n", 9, false),
            Some(None)
        ));
        assert!(matches!(parse_step(FileId(1), "", 0, true), Some(None)));
    });
}

#[test]
fn a_byte_order_mark_opens_only_the_first_declaration() {
    accepts("\u{FEFF}let x = 1");
    accepts(" \u{FEFF} // c\nlet x = 1");
    on_parse_stack(|| {
        assert!(matches!(
            parse_step(FileId(1), "\u{FEFF}", 0, true),
            Some(None)
        ));
        let text = "let x = 1\n\u{FEFF}let y = 2";
        assert!(parse_step(FileId(1), text, 10, false).is_none());
        assert!(pest_step(FileId(1), text, 10, false).is_err());
    });
}

#[test]
fn too_deep_expressions_are_left_to_pest() {
    declines(&format!("let x = {}1", "a * ".repeat(1001)));
    let chain = format!("let x = a{}", ".b".repeat(1001));
    declines(&chain);
    let long = format!("let x = [{}]", "1, ".repeat(600));
    accepts(&long);
}

/// Every `.flt` file under `dir`, but not in build output or tool environments.
fn flt_files(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let skipped = [".git", "target", ".venv", "node_modules"];
        if path.is_dir() && !skipped.contains(&name.to_str().unwrap_or("")) {
            flt_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "flt") {
            files.push(path);
        }
    }
}

/// The repository's `.flt` files, and a small fleet from `scripts/bench-fleet`'s
/// generator (the benchmarks' input).
fn real_texts() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    flt_files(root, &mut files);
    files.sort();
    let generated = std::env::temp_dir().join(format!("flotilla-descent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&generated);
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import importlib.machinery, importlib.util, pathlib, sys\n\
             loader = importlib.machinery.SourceFileLoader('bench_fleet', sys.argv[1])\n\
             module = importlib.util.module_from_spec(importlib.util.spec_from_loader('bench_fleet', loader))\n\
             loader.exec_module(module)\n\
             module.write_flotilla(pathlib.Path(sys.argv[2]), 100)",
        )
        .arg(root.join("scripts/bench-fleet"))
        .arg(&generated)
        .status()
        .expect("python3 runs the fleet generator");
    assert!(status.success(), "the fleet generator failed");
    let mut fleet = Vec::new();
    flt_files(&generated, &mut fleet);
    fleet.sort();
    assert_eq!(fleet.len(), 11, "channels and 10 files of clusters");
    let texts = files
        .iter()
        .chain(&fleet)
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            (path.display().to_string(), text)
        })
        .collect();
    let _ = std::fs::remove_dir_all(&generated);
    texts
}

#[test]
fn every_real_file_parses_as_pest_parses_it_and_nothing_is_declined() {
    let texts = real_texts();
    assert!(texts.len() >= 20, "{} files", texts.len());
    on_parse_stack(|| {
        let mut total = Tally::default();
        for (path, text) in &texts {
            let tally = compare_steps(text);
            compare_files(text);
            eprintln!("{path}: {tally:?}");
            total.accepted += tally.accepted;
            total.declined += tally.declined;
        }
        eprintln!("all: {total:?}");
        assert!(total.accepted > 150, "{total:?}");
        assert_eq!(total.declined, 0, "declined on real files");
    });
}

/// A small deterministic random number generator (xorshift), for the mutations.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Text a mutation inserts: brackets, quotes, operators, keywords, literals, blanks
/// and comments, a byte order mark, a character that is not ASCII.
const INSERTS: &[&str] = &[
    "{", "}", "[", "]", "(", ")", "\"", "\\", ".", "..", "...", ",", ":", "=", "==", "+", "-", "*",
    "/", "%", "!", "?", "??", "<", "<=", "@", "$", "${", "_", "1", "1.5", "90s", "1e3", "x", "Foo",
    "m.Foo", "if ", " then ", " else ", "for ", " in ", "true", "null", "let ", "type ", "check ",
    "as ", " ", "\n", "\t", "// c\n", "\u{FEFF}", "é", "\\u{41}",
];

/// A token at `at`: a run of name characters, or one character.
fn token_at(text: &str, at: usize) -> std::ops::Range<usize> {
    let bytes = text.as_bytes();
    let mut end = at;
    while end < bytes.len() && is_ident_char(bytes[end]) {
        end += 1;
    }
    if end == at {
        end = at + text[at..].chars().next().map_or(0, char::len_utf8);
    }
    at..end
}

fn char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// One random edit of `text`: a character or token deleted, inserted, duplicated or
/// swapped with the next, or blanks and comments put between tokens.
fn mutate(text: &mut String, random: &mut Random) {
    if text.is_empty() {
        text.push_str(INSERTS[random.below(INSERTS.len())]);
        return;
    }
    let at = char_boundary(text, random.below(text.len()));
    let token = token_at(text, at);
    match random.below(6) {
        0 => {
            let len = text[at..].chars().next().map_or(0, char::len_utf8);
            text.replace_range(at..at + len, "");
        }
        1 => text.insert_str(at, INSERTS[random.below(INSERTS.len())]),
        2 => {
            let copy = text[token.clone()].to_string();
            text.insert_str(token.end, &copy);
        }
        3 => text.replace_range(token, ""),
        4 => {
            let next = token_at(text, token.end.min(text.len()));
            if !next.is_empty() {
                let swapped = format!("{}{}", &text[next.clone()], &text[token.clone()]);
                text.replace_range(token.start..next.end, &swapped);
            }
        }
        _ => {
            let blanks = [" ", "\n", "  // c\n", "\t\r\n", "//\n"];
            text.insert_str(at, blanks[random.below(blanks.len())]);
        }
    }
}

#[test]
fn mutated_declarations_are_declined_where_pest_rejects_them() {
    let texts = real_texts();
    // Each real declaration (with the one after it, which an edit may run into).
    let mut pieces = Vec::new();
    for (_, text) in &texts {
        let chunks = chunks(text);
        for (i, &(start, end)) in chunks.iter().enumerate() {
            let end = chunks.get(i + 1).map_or(end, |next| next.1);
            pieces.push(text[start..end].to_string());
        }
    }
    pieces.sort();
    pieces.dedup();
    on_parse_stack(|| {
        let mut random = Random(0x5eed_f107_111a);
        let (mut cases, mut total) = (0, Tally::default());
        while cases < 2000 {
            let mut text = pieces[random.below(pieces.len())].clone();
            for _ in 0..1 + random.below(3) {
                mutate(&mut text, &mut random);
            }
            // The scanner's rejections never reach the parser.
            if !crate::syntax::scan::scan(FileId(1), &text).fatal.is_empty() {
                continue;
            }
            cases += 1;
            let tally = compare_steps(&text);
            total.accepted += tally.accepted;
            total.declined += tally.declined;
        }
        eprintln!("{cases} mutated texts: {total:?}");
        assert!(total.declined > 500, "{total:?}");
    });
}

/// Blanks and comments between tokens, or nothing.
fn blank() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", " ", " ", "\n  ", " // c\n", "\t"])
}

/// Random expressions over every kind of primary and operator, as text.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "a",
        "iffy",
        "in_x",
        "null_ok",
        "channel",
        "Foo",
        "m.Foo",
        "1",
        "1_000",
        "1.5",
        "2.0E-6",
        "90s",
        "1.5Gi",
        "250m",
        "true",
        "false",
        "null",
        "\"s\"",
        "\"a\\\"b\\u{1b}\"",
        "{}",
        "[]",
        "\"$x\"",
    ])
    .prop_map(str::to_string);
    leaf.prop_recursive(5, 48, 4, |inner| {
        let op = prop::sample::select(vec![
            "??", "||", "&&", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%",
        ]);
        prop_oneof![
            (inner.clone(), blank(), op, blank(), inner.clone())
                .prop_map(|(a, s, op, t, b)| format!("{a}{s}{op} {t}{b}")),
            (
                prop::sample::select(vec!["-", "!", "- ", "!"]),
                inner.clone()
            )
                .prop_map(|(op, a)| format!("{op}{a}")),
            (inner.clone(), blank()).prop_map(|(a, s)| format!("({s}{a}{s})")),
            (inner.clone(), blank()).prop_map(|(a, s)| format!("{a}{s}.field")),
            (inner.clone(), inner.clone(), blank()).prop_map(|(a, i, s)| format!("{a}{s}[{i}]")),
            prop::collection::vec(inner.clone(), 0..3)
                .prop_map(|args| format!("f({})", args.join(", "))),
            (prop::collection::vec(inner.clone(), 0..4), blank())
                .prop_map(|(items, s)| format!("[{s}{}{s}]", items.join(&format!(",{s}")))),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|values| {
                let entries: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("\"k{i}\": {v}"))
                    .collect();
                format!("{{ {} }}", entries.join(", "))
            }),
            (prop::collection::vec(inner.clone(), 0..3), any::<bool>()).prop_map(
                |(values, typed)| {
                    let entries: Vec<String> = values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| format!("f{i} = {v}"))
                        .collect();
                    let ty = if typed { "T " } else { "" };
                    format!("{ty}{{ {}, b \"l\" {{ ...x }} }}", entries.join("\n"))
                }
            ),
            (inner.clone(), inner.clone(), inner.clone(), blank())
                .prop_map(|(c, t, e, s)| format!("if {c}{s} then {t} else {e}{s}")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(b, i, c)| format!("[{b} for x in {i} if {c}]")),
            inner.clone().prop_map(|a| format!("\"t ${{ {a} }}u\"")),
        ]
    })
}

/// A declaration of each kind around generated expressions, with blanks and comments.
fn program() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((0..6usize, expression(), blank()), 1..5),
        any::<bool>(),
    )
        .prop_map(|(declarations, mark)| {
            let mut text = String::from(if mark { "\u{FEFF}" } else { "" });
            for (kind, e, s) in declarations {
                text.push_str(&match kind {
                    0 => format!("let x{s}={s}{e}{s}\n"),
                    1 => format!("let x: [Int?]{s}= {e}\n"),
                    2 => {
                        format!("cluster \"c\" {{{s}a = {e}{s}, n \"l\" {{ b = {e} }}{s}...{e}\n}}")
                    }
                    3 => {
                        format!("type T {{ @a(\"x\") f: m.T? = {e}{s}check {e}: \"m${{{e}}}\" }}\n")
                    }
                    4 => format!("channel c {{ v = {e} }}{s}import \"i\"{s}as i\n"),
                    _ => format!("enum E {{ a, b{s}c }}{s}type A = {{String: [X]}}{s}let y = {e}"),
                });
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Generated programs: where the hand-written parser accepts, pest gives the same;
    /// and a program pest parses without a problem it accepts in full.
    #[test]
    fn generated_programs_parse_as_pest_parses_them(text in program()) {
        let tally = on_parse_stack(|| {
            let tally = compare_steps(&text);
            compare_files(&text);
            tally
        });
        let clean = on_parse_stack(|| {
            PEST_ONLY.set(true);
            parse_here(FileId(1), &text).1.is_empty()
        });
        prop_assert!(!clean || tally.declined == 0, "declined a step of {:?}", text);
    }
}
