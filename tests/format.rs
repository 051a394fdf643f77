//! The canonical formatter: layout rules by example, and properties over generated
//! programs (idempotence, same tree, no comment lost) and over garbage input (no panic).

#[path = "support/files.rs"]
mod files;

use files::TempDir;
use flotilla::format::{format_module, format_source};
use flotilla::source::FileId;
use flotilla::span::Span;
use flotilla::syntax::ast::*;
use flotilla::syntax::{DURATION_UNITS, MAX_NESTING, QUANTITY_UNITS, parse};
use proptest::prelude::*;
use serde_json::Value;

fn fmt(text: &str) -> String {
    match format_source(FileId(0), text) {
        Ok(formatted) => formatted,
        Err(diagnostics) => panic!("{text:?} does not parse: {diagnostics:#?}"),
    }
}

/// Format `input`, check the result against `expected`, and that it is already canonical.
#[track_caller]
fn assert_formats(input: &str, expected: &str) {
    let formatted = fmt(input);
    assert_eq!(formatted, expected, "formatting {input:?}");
    assert_eq!(fmt(&formatted), formatted, "formatting again");
}

// ---- layout ---------------------------------------------------------------------

#[test]
fn one_line_blocks_are_expanded_and_aligned() {
    assert_formats(
        "cluster \"a\" { node_pool \"w\" { update { max_surge = 1  force_terminate_after = 3d } } }",
        r#"cluster "a" {
  node_pool "w" {
    update {
      max_surge             = 1
      force_terminate_after = 3d
    }
  }
}
"#,
    );
}

#[test]
fn commas_between_entries_are_dropped() {
    assert_formats(
        "channel stable { kubernetes_version = \"1.31\", config_ref = \"stable\", }",
        r#"channel stable {
  kubernetes_version = "1.31"
  config_ref         = "stable"
}
"#,
    );
}

#[test]
fn blank_lines_and_comment_lines_end_an_alignment_run() {
    assert_formats(
        r#"cluster "a" {
  account = "1"
  environment = production



  api_server_url = "x"
  id = 1
  // own line
  channel_name = stable
  pool { a = 1 }
  longer_name = 2
}
"#,
        r#"cluster "a" {
  account     = "1"
  environment = production

  api_server_url = "x"
  id             = 1
  // own line
  channel_name = stable
  pool {
    a = 1
  }
  longer_name = 2
}
"#,
    );
}

#[test]
fn trailing_comments_do_not_end_an_alignment_run() {
    assert_formats(
        "cluster \"a\" {\n  a = 1 // one\n  bbb = 2\n}\n",
        "cluster \"a\" {\n  a   = 1 // one\n  bbb = 2\n}\n",
    );
}

#[test]
fn multi_line_values_are_not_aligned() {
    assert_formats(
        "cluster \"a\" {\n  a = 1\n  pool = Pool { size = 1 }\n  bb = 2\n}\n",
        r#"cluster "a" {
  a = 1
  pool = Pool {
    size = 1
  }
  bb = 2
}
"#,
    );
}

#[test]
fn empty_blocks_are_braces() {
    assert_formats(
        "cluster \"a\" {\n\n}\nchannel c { x {   } y = P { } }\ntype T {\n}\nenum E {}\n",
        r#"cluster "a" {}

channel c {
  x {}
  y = P {}
}

type T {}

enum E {}
"#,
    );
}

#[test]
fn top_level_items_get_one_blank_line_and_imports_none() {
    assert_formats(
        "\n\nimport \"a\"\n\n\nimport \"b\" as b\nlet x = 1\n\n\n\nlet y = 2",
        "import \"a\"\nimport \"b\" as b\n\nlet x = 1\n\nlet y = 2\n",
    );
}

#[test]
fn one_blank_line_is_kept_between_entries() {
    assert_formats(
        "channel c {\n\n  a = 1\n\n\n\n  b { }\n\n}\n",
        "channel c {\n  a = 1\n\n  b {}\n}\n",
    );
}

#[test]
fn enums_and_types_have_one_member_per_line() {
    assert_formats(
        r#"enum Color { Red, Green Blue }
type NodePool { @block("node_pool") @label node_pools: [NodePool] = [] name: String?
  labels: {String: aws.Label} = {} check size > 0 : "size ${size} must be positive" }
"#,
        r#"enum Color {
  Red,
  Green,
  Blue,
}

type NodePool {
  @block("node_pool") @label node_pools: [NodePool] = []
  name: String?
  labels: {String: aws.Label} = {}
  check size > 0 : "size ${size} must be positive"
}
"#,
    );
}

#[test]
fn long_lists_get_one_element_per_line() {
    let short = "let short = [\"m5.large\", \"m5.xlarge\"]\n";
    assert_formats("let short = [ \"m5.large\" ,\n \"m5.xlarge\" , ]", short);
    assert_formats(
        "let types = [\"m5.large\", \"m5.xlarge\", \"m5.2xlarge\", \"m5.4xlarge\", \"m5.8xlarge\", \"m5.12xlarge\", \"m5.16xlarge\"]",
        r#"let types = [
  "m5.large",
  "m5.xlarge",
  "m5.2xlarge",
  "m5.4xlarge",
  "m5.8xlarge",
  "m5.12xlarge",
  "m5.16xlarge",
]
"#,
    );
}

#[test]
fn a_list_line_of_100_columns_fits_and_101_does_not() {
    // `let xs = ["` and `"]` take 13 columns.
    let fits = format!("let xs = [\"{}\"]\n", "a".repeat(87));
    assert_eq!(fits.trim_end().chars().count(), 100);
    assert_formats(&fits, &fits);
    let text = "a".repeat(88);
    assert_formats(
        &format!("let xs = [\"{text}\"]"),
        &format!("let xs = [\n  \"{text}\",\n]\n"),
    );
}

#[test]
fn only_the_outer_list_breaks_when_the_inner_ones_fit() {
    let row = "[1000000, 2000000, 3000000, 4000000]";
    let input = format!("let grid = [{row}, {row}, {row}]");
    let expected = format!("let grid = [\n  {row},\n  {row},\n  {row},\n]\n");
    assert_formats(&input, &expected);
}

#[test]
fn long_calls_and_maps_break_like_lists() {
    assert_formats(
        "let m = merge(defaults, {\"environment\": \"production\", \"team\": \"platform-infrastructure\", \"tier\": 1})",
        r#"let m = merge(
  defaults,
  { "environment": "production", "team": "platform-infrastructure", "tier": 1 },
)
"#,
    );
}

#[test]
fn records_in_lists_are_multi_line() {
    assert_formats(
        "let pools = [Pool { size = 1 }, Pool {}]",
        "let pools = [\n  Pool {\n    size = 1\n  },\n  Pool {},\n]\n",
    );
}

#[test]
fn long_comprehensions_break_before_for_and_if() {
    assert_formats(
        "let names = [pool.name_with_a_long_suffix for pool in cluster_definition.node_pools_of_the_fleet if pool.enabled_for_this]",
        r#"let names = [
  pool.name_with_a_long_suffix
  for pool in cluster_definition.node_pools_of_the_fleet
  if pool.enabled_for_this
]
"#,
    );
}

#[test]
fn expressions_keep_their_parentheses_and_get_spaced_operators() {
    assert_formats(
        "let x = (1+2)*-a.b[0] ?? !(c&&d) || if e then f(1,2) else [x for x in xs if x>1]",
        "let x = (1 + 2) * -a.b[0] ?? !(c && d) || if e then f(1, 2) else [x for x in xs if x > 1]\n",
    );
}

#[test]
fn numbers_keep_their_values() {
    assert_formats(
        "let x = [1_000, 2.50, 100000000000000000000.0, 0.0000001, 90s, 1.5Gi, 250m]",
        "let x = [1000, 2.5, 100000000000000000000.0, 0.0000001, 90s, 1.5Gi, 250m]\n",
    );
}

// ---- strings --------------------------------------------------------------------

#[test]
fn strings_are_re_escaped() {
    assert_formats(
        "let s = \"q\\\" b\\\\ n\\n t\\t\tr\\r \\$ \\${x} ${y} é\"",
        "let s = \"q\\\" b\\\\ n\\n t\\t\\tr\\r $ \\${x} ${y} é\"\n",
    );
}

#[test]
fn dollar_brace_text_is_escaped_so_it_stays_text() {
    let module = module_of(vec![let_item(
        "s",
        expr(ExprKind::Str(vec![
            StrPart::Text("cost: $".into()),
            StrPart::Text("{price} $$".into()),
            StrPart::Interpolation(expr(ExprKind::Name(ident("price")))),
            StrPart::Text("\"\\".into()),
        ])),
    )]);
    let formatted = format_module(&module, "");
    assert_eq!(
        formatted,
        "let s = \"cost: \\${price} $$${price}\\\"\\\\\"\n"
    );
    let (reparsed, diagnostics) = parse(FileId(0), &formatted);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let Item::Let(decl) = &reparsed.items[0] else {
        panic!("expected a let")
    };
    let ExprKind::Str(parts) = &decl.value.kind else {
        panic!("expected a string")
    };
    assert_eq!(parts[0], StrPart::Text("cost: ${price} $$".into()));
}

// ---- literals that only a built tree can hold --------------------------------------

#[test]
fn floats_print_without_exponents_and_with_a_point() {
    // `{:?}` gives `1e20`, which the grammar reads as the number 1 with unit `e20`.
    let values = [
        1e20,
        1e-7,
        2.0,
        0.1,
        -0.0,
        f64::MAX,
        5e-324,
        1.2345678901234567e300,
    ];
    for value in values {
        let formatted = format_module(
            &module_of(vec![let_item("x", expr(ExprKind::Float(value)))]),
            "",
        );
        let reparsed = fmt(&formatted);
        assert_eq!(reparsed, formatted);
        let (module, _) = parse(FileId(0), &formatted);
        let Item::Let(decl) = &module.items[0] else {
            panic!("expected a let")
        };
        let parsed = match &decl.value.kind {
            ExprKind::Float(parsed) => *parsed,
            ExprKind::Unary(UnaryOp::Neg, operand) => match operand.kind {
                ExprKind::Float(parsed) => -parsed,
                ref other => panic!("{other:?}"),
            },
            other => panic!("{value} printed as {formatted:?}: {other:?}"),
        };
        assert_eq!(parsed.to_bits(), value.to_bits(), "{formatted}");
    }
}

#[test]
fn negative_literals_from_a_built_tree_keep_their_meaning() {
    let field_of_negative = expr(ExprKind::Field(
        Box::new(expr(ExprKind::Int(-1))),
        ident("abs"),
    ));
    let module = module_of(vec![
        let_item("a", expr(ExprKind::Int(-5))),
        let_item("b", expr(ExprKind::Int(i64::MIN))),
        let_item("c", field_of_negative),
        let_item("d", expr(ExprKind::Float(f64::NAN))),
    ]);
    assert_eq!(
        format_module(&module, ""),
        "let a = -5\n\nlet b = (-9223372036854775807 - 1)\n\nlet c = (-1).abs\n\nlet d = (0.0 / 0.0)\n"
    );
}

// ---- comments -------------------------------------------------------------------

#[test]
fn comments_keep_their_place() {
    assert_formats(
        r#"// file header

/// The stable channel.
channel stable {   // after the brace
  // leading
  a = 1 // trailing
  bb = 2

  // after a blank line


  c = 3
  // before the closing brace
}
let x = 1 // after an item
// end of file
"#,
        r#"// file header

/// The stable channel.
channel stable { // after the brace
  // leading
  a  = 1 // trailing
  bb = 2

  // after a blank line

  c = 3
  // before the closing brace
}

let x = 1 // after an item
// end of file
"#,
    );
}

#[test]
fn comments_in_empty_bodies_stay_inside() {
    assert_formats(
        "cluster \"a\" { // why empty\n}\nenum E {\n// none yet\n}\nlet l = [ // nothing\n]\n",
        "cluster \"a\" { // why empty\n}\n\nenum E {\n  // none yet\n}\n\nlet l = [ // nothing\n]\n",
    );
}

#[test]
fn comments_inside_a_list_break_it() {
    assert_formats(
        "let xs = [1, // one\n  2,\n  // three next\n  3]\n",
        "let xs = [\n  1, // one\n  2,\n  // three next\n  3,\n]\n",
    );
}

#[test]
fn comments_inside_expressions_move_to_a_line_end() {
    // The comment sat between `a` and `+`; it may move, never vanish.
    assert_formats("let x = a // why\n  + b\n", "let x = a + // why\nb\n");
    assert_formats(
        "let s = \"${a // inside\n}\"\n",
        "let s = \"${a // inside\n}\"\n",
    );
}

#[test]
fn comment_text_is_kept_byte_for_byte() {
    assert_formats(
        "let x = 1 //no space, trailing spaces   \n////four\n",
        "let x = 1 //no space, trailing spaces   \n////four\n",
    );
}

/// Regression: a `///` at the end of a declaration's line documents the next declaration;
/// the blank line put between the two declarations must not detach it.
#[test]
fn a_doc_comment_after_a_declaration_moves_above_the_next_one() {
    let input = "let a = 1 /// About b.\nlet b = 2\n";
    assert_formats(input, "let a = 1\n\n/// About b.\nlet b = 2\n");
    let doc_of_b = |text: &str| {
        let (module, _) = parse(FileId(0), text);
        match &module.items[1] {
            Item::Let(decl) => decl.doc.clone(),
            _ => None,
        }
    };
    assert_eq!(doc_of_b(input), Some("About b.".to_string()));
    assert_eq!(doc_of_b(&fmt(input)), Some("About b.".to_string()));
}

// ---- refusal and limits -----------------------------------------------------------

#[test]
fn syntax_errors_are_returned_not_formatted() {
    let diagnostics = format_source(FileId(0), "let x = (1\nlet y = 2\n").unwrap_err();
    assert!(
        diagnostics.iter().any(|d| d.code == "E0001"),
        "{diagnostics:#?}"
    );
}

#[test]
fn empty_input_is_one_newline() {
    assert_eq!(fmt(""), "\n");
    assert_eq!(fmt("\n\n  \n"), "\n");
}

/// 20,000 levels of each kind of nesting are refused by the scanner before the
/// recursive parser could overflow the (default, 2 MiB) test thread's stack.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    const DEPTH: usize = 20_000;
    let inputs = [
        format!("let x = {}1{}", "(".repeat(DEPTH), ")".repeat(DEPTH)),
        format!("let x = {}1{}", "[".repeat(DEPTH), "]".repeat(DEPTH)),
        format!("let x = {}{}", "{".repeat(DEPTH), "}".repeat(DEPTH)),
        format!("let x = {}1{}", "\"${".repeat(DEPTH), "}\"".repeat(DEPTH)),
    ];
    for input in &inputs {
        let (_, diagnostics) = parse(FileId(0), input);
        assert!(
            diagnostics.iter().any(|d| d.code == "E0005"),
            "{:?}…: {diagnostics:#?}",
            &input[..20]
        );
        let refused = format_source(FileId(0), input).unwrap_err();
        assert!(refused.iter().any(|d| d.code == "E0005"));
    }
}

/// Calls and maps, two nesting levels each. (Not lists: nested `[` takes the parser time
/// exponential in the depth, since every `[` is tried as a comprehension first.)
#[test]
fn the_deepest_allowed_nesting_formats() {
    let levels = MAX_NESTING / 2;
    let input = format!(
        "let x = {}1{}",
        "f({\"k\": ".repeat(levels),
        "})".repeat(levels)
    );
    let formatted = fmt(&input);
    assert_eq!(fmt(&formatted), formatted);
}

/// Operator and postfix chains are not brackets, so the scanner does not limit their
/// length; the printer walks them in loops instead of recursing once per operator.
#[test]
fn long_operator_chains_format() {
    let sum = format!(
        "let x = a{}\n",
        " + a".repeat(flotilla::syntax::MAX_EXPRESSION_DEPTH - 1)
    );
    assert_eq!(fmt(&sum), sum);
    let path = format!(
        "let y = a{}\n",
        ".b[0]".repeat(flotilla::syntax::MAX_EXPRESSION_DEPTH / 2 - 1)
    );
    assert_eq!(fmt(&path), path);
    let negations = format!(
        "let z = {}a\n",
        "!".repeat(flotilla::syntax::MAX_PREFIX_RUN)
    );
    assert_eq!(fmt(&negations), negations);
}

// ---- built trees --------------------------------------------------------------------

fn module_of(items: Vec<Item>) -> Module {
    Module {
        items,
        comments: Vec::new(),
    }
}

fn ident(name: &str) -> Ident {
    Ident {
        name: name.to_string(),
        span: Span::default(),
    }
}

fn expr(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn let_item(name: &str, value: Expr) -> Item {
    Item::Let(LetDecl {
        doc: None,
        name: ident(name),
        ty: None,
        value,
        span: Span::default(),
    })
}

// ---- generated programs -----------------------------------------------------------------

const KEYWORDS: [&str; 14] = [
    "import", "as", "type", "enum", "let", "check", "if", "then", "else", "for", "in", "true",
    "false", "null",
];

fn name() -> impl Strategy<Value = Ident> {
    prop_oneof![
        // Keyword prefixes and the contextual keywords are ordinary names.
        prop::sample::select(vec![
            "a",
            "x",
            "pool",
            "channel",
            "cluster",
            "iffy",
            "types",
            "in_",
            "nullable",
            "_tmp",
            "as2",
            "elsewhere",
            "Upper",
        ])
        .prop_map(ident),
        "[a-z_][a-z0-9_]{0,6}"
            .prop_filter("not a keyword", |s| !KEYWORDS.contains(&s.as_str()))
            .prop_map(|s| ident(&s)),
    ]
}

fn type_name() -> impl Strategy<Value = Ident> {
    "[A-Z][A-Za-z0-9_]{0,5}".prop_map(|s| ident(&s))
}

fn text() -> impl Strategy<Value = String> {
    let chars = vec![
        'a', 'z', ' ', '"', '\\', '$', '{', '}', '/', 'é', '中', '𝄞', '\t', '\n', '\r',
    ];
    prop::collection::vec(prop::sample::select(chars), 0..8).prop_map(String::from_iter)
}

fn plain_string() -> impl Strategy<Value = PlainString> {
    text().prop_map(|value| PlainString {
        value,
        span: Span::default(),
    })
}

fn named_type() -> impl Strategy<Value = TypeExpr> {
    (prop::option::of(name()), type_name()).prop_map(|(module, name)| TypeExpr {
        kind: TypeExprKind::Named { module, name },
        span: Span::default(),
    })
}

fn type_expr() -> impl Strategy<Value = TypeExpr> {
    let ty = |kind| TypeExpr {
        kind,
        span: Span::default(),
    };
    let required = named_type().prop_recursive(3, 8, 1, move |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(move |t| ty(TypeExprKind::List(Box::new(t)))),
            inner.prop_map(move |t| ty(TypeExprKind::Map(Box::new(t)))),
        ]
    });
    // The grammar allows one `?`, on the outside.
    (required, any::<bool>()).prop_map(move |(t, optional)| {
        if optional {
            ty(TypeExprKind::Optional(Box::new(t)))
        } else {
            t
        }
    })
}

fn literal() -> impl Strategy<Value = Expr> {
    let units: Vec<&str> = DURATION_UNITS
        .iter()
        .chain(&QUANTITY_UNITS)
        .copied()
        .collect();
    prop_oneof![
        (0..=i64::MAX).prop_map(ExprKind::Int),
        (prop::num::f64::POSITIVE | prop::num::f64::ZERO).prop_map(ExprKind::Float),
        "[0-9]{1,3}\\.[0-9]{1,3}".prop_map(|s| ExprKind::Float(s.parse().unwrap_or(0.5))),
        any::<bool>().prop_map(ExprKind::Bool),
        Just(ExprKind::Null),
        ("[0-9]{1,4}(\\.[0-9]{1,2})?", prop::sample::select(units)).prop_map(|(number, unit)| {
            ExprKind::UnitNumber {
                number,
                unit: unit.to_string(),
            }
        }),
        text().prop_map(|t| ExprKind::Str(vec![StrPart::Text(t)])),
        name().prop_map(ExprKind::Name),
    ]
    .prop_map(expr)
}

fn entry(value: BoxedStrategy<Expr>) -> impl Strategy<Value = Entry> {
    let simple = prop_oneof![
        3 => (name(), value.clone()).prop_map(|(name, value)| Entry::Field {
            name,
            value,
            span: Span::default(),
        }),
        1 => value.clone().prop_map(|expr| Entry::Spread {
            expr,
            span: Span::default(),
        }),
    ];
    prop_oneof![
        4 => simple.clone(),
        1 => (name(), prop::option::of(plain_string()), prop::collection::vec(simple, 0..4))
            .prop_map(|(name, label, entries)| Entry::Block {
                name,
                label,
                body: block_of(entries),
                span: Span::default(),
            }),
    ]
}

fn block_of(entries: Vec<Entry>) -> Block {
    Block {
        entries,
        span: Span::default(),
    }
}

fn block(value: BoxedStrategy<Expr>) -> impl Strategy<Value = Block> {
    prop::collection::vec(entry(value), 0..5).prop_map(block_of)
}

/// Every kind of expression, at most four levels deep: far below [`MAX_NESTING`].
fn any_expr() -> BoxedStrategy<Expr> {
    literal()
        .prop_recursive(4, 48, 4, |inner| {
            let boxed = inner.clone().prop_map(Box::new);
            let unary = prop::sample::select(vec![UnaryOp::Neg, UnaryOp::Not]);
            let binary = prop::sample::select(vec![
                BinaryOp::Coalesce,
                BinaryOp::Or,
                BinaryOp::And,
                BinaryOp::Eq,
                BinaryOp::Ne,
                BinaryOp::Lt,
                BinaryOp::Le,
                BinaryOp::Gt,
                BinaryOp::Ge,
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::Div,
                BinaryOp::Rem,
            ]);
            let part = prop_oneof![
                text().prop_map(StrPart::Text),
                inner.clone().prop_map(StrPart::Interpolation),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(ExprKind::List),
                prop::collection::vec((plain_string(), inner.clone()), 0..4)
                    .prop_map(ExprKind::Map),
                (prop::option::of(named_type()), block(inner.clone())).prop_map(|(ty, body)| {
                    ExprKind::Record {
                        ty: ty.map(Box::new),
                        body,
                    }
                }),
                (boxed.clone(), name()).prop_map(|(base, field)| ExprKind::Field(base, field)),
                (boxed.clone(), boxed.clone())
                    .prop_map(|(base, index)| ExprKind::Index(base, index)),
                (name(), prop::collection::vec(inner.clone(), 0..4))
                    .prop_map(|(name, args)| ExprKind::Call(name, args)),
                (unary, boxed.clone()).prop_map(|(op, operand)| ExprKind::Unary(op, operand)),
                (binary, boxed.clone(), boxed.clone())
                    .prop_map(|(op, lhs, rhs)| ExprKind::Binary(op, lhs, rhs)),
                (boxed.clone(), boxed.clone(), boxed.clone())
                    .prop_map(|(c, t, e)| ExprKind::If(c, t, e)),
                (
                    boxed.clone(),
                    name(),
                    boxed.clone(),
                    prop::option::of(boxed.clone())
                )
                    .prop_map(|(body, var, iter, filter)| {
                        ExprKind::Comprehension {
                            body,
                            var,
                            iter,
                            filter,
                        }
                    }),
                boxed.prop_map(ExprKind::Paren),
                prop::collection::vec(part, 0..4).prop_map(ExprKind::Str),
            ]
            .prop_map(expr)
        })
        .boxed()
}

fn string_expr() -> impl Strategy<Value = Expr> {
    let part = prop_oneof![
        text().prop_map(StrPart::Text),
        literal().prop_map(StrPart::Interpolation),
    ];
    prop::collection::vec(part, 0..3).prop_map(|parts| expr(ExprKind::Str(parts)))
}

fn member() -> impl Strategy<Value = Member> {
    let attribute =
        (name(), prop::option::of(plain_string())).prop_map(|(name, argument)| Attribute {
            name,
            argument,
            span: Span::default(),
        });
    prop_oneof![
        3 => (
            prop::collection::vec(attribute, 0..3),
            name(),
            type_expr(),
            prop::option::of(any_expr()),
        )
            .prop_map(|(attributes, name, ty, default)| Member::Field(FieldDecl {
                doc: None,
                attributes,
                name,
                ty,
                default,
                span: Span::default(),
            })),
        1 => (any_expr(), string_expr()).prop_map(|(condition, message)| {
            Member::Check(CheckDecl {
                condition,
                message,
                span: Span::default(),
            })
        }),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    let span = Span::default();
    prop_oneof![
        (plain_string(), prop::option::of(name()))
            .prop_map(move |(path, alias)| Item::Import(Import { path, alias, span })),
        (type_name(), prop::collection::vec(member(), 0..5)).prop_map(move |(name, members)| {
            Item::Type(TypeDecl {
                doc: None,
                name,
                members,
                span,
            })
        }),
        (type_name(), type_expr()).prop_map(move |(name, ty)| {
            Item::Alias(AliasDecl {
                doc: None,
                name,
                ty,
                span,
            })
        }),
        (type_name(), prop::collection::vec(name(), 0..5)).prop_map(move |(name, variants)| {
            Item::Enum(EnumDecl {
                doc: None,
                name,
                variants: variants
                    .into_iter()
                    .map(|name| Variant { doc: None, name })
                    .collect(),
                span,
            })
        }),
        (name(), prop::option::of(type_expr()), any_expr()).prop_map(move |(name, ty, value)| {
            Item::Let(LetDecl {
                doc: None,
                name,
                ty,
                value,
                span,
            })
        }),
        (name(), block(any_expr())).prop_map(move |(name, body)| {
            Item::Channel(ChannelDecl {
                doc: None,
                name,
                body,
                span,
            })
        }),
        (plain_string(), block(any_expr())).prop_map(move |(id, body)| {
            Item::Cluster(ClusterDecl {
                doc: None,
                id,
                body,
                span,
            })
        }),
    ]
}

fn program() -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(item(), 0..6)
}

/// Writes a generated tree as source in a random, valid layout: random spacing, line
/// breaks, blank lines, optional commas, and comments wherever a comment may go. The
/// choices come from `choices`, used in a cycle, so a failing case shrinks and replays.
struct MessyWriter<'a> {
    out: String,
    choices: &'a [u8],
    next: usize,
}

const COMMENT_TEXTS: [&str; 9] = [
    " note",
    "",
    "/ doc line",
    "// four slashes",
    " trailing spaces  ",
    " \"quoted\" ${x} \\ é 中文 𝄞",
    "}",
    "/",
    " {",
];

impl MessyWriter<'_> {
    fn choose(&mut self, options: usize) -> usize {
        let choice = self.choices.get(self.next % self.choices.len().max(1));
        self.next += 1;
        choice.map_or(0, |&c| c as usize % options)
    }

    fn comment(&mut self) -> &'static str {
        COMMENT_TEXTS[self.choose(COMMENT_TEXTS.len())]
    }

    /// Whitespace between two tokens of an expression; rarely a comment.
    fn gap(&mut self) {
        match self.choose(24) {
            0 => self.out.push('\n'),
            1 => self.out.push_str("\n\n"),
            2 => self.out.push('\t'),
            3 => {
                let text = self.comment();
                self.out.push_str(&format!(" //{text}\n"));
            }
            4 => {
                let text = self.comment();
                self.out.push_str(&format!("\n//{text}\n"));
            }
            5 => self.out.push_str("  "),
            _ => self.out.push(' '),
        }
    }

    /// Whitespace between statements: often line breaks, blank lines and comments.
    fn line_gap(&mut self) {
        let count = self.choose(3);
        for _ in 0..=count {
            match self.choose(9) {
                0 | 1 => self.out.push(' '),
                2 | 3 => self.out.push('\n'),
                4 => self.out.push_str("\n\n\n"),
                5 | 6 => {
                    let text = self.comment();
                    self.out.push_str(&format!("\n//{text}\n"));
                }
                7 => {
                    let text = self.comment();
                    self.out.push_str(&format!(" //{text}\n"));
                }
                _ => self.out.push_str("\r\n"),
            }
        }
    }

    fn word(&mut self, word: &str) {
        self.out.push_str(word);
    }

    fn maybe_comma(&mut self) {
        if self.choose(2) == 0 {
            self.gap();
            self.out.push(',');
        }
    }

    fn items(&mut self, items: &[Item]) {
        for item in items {
            self.line_gap();
            self.item(item);
        }
        self.line_gap();
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Import(import) => {
                self.word("import");
                self.gap();
                self.plain_string(&import.path);
                if let Some(alias) = &import.alias {
                    self.gap();
                    self.word("as");
                    self.gap();
                    self.word(&alias.name);
                }
            }
            Item::Type(decl) => {
                self.word("type");
                self.gap();
                self.word(&decl.name.name);
                self.gap();
                self.word("{");
                for member in &decl.members {
                    self.line_gap();
                    self.member(member);
                }
                self.line_gap();
                self.word("}");
            }
            Item::Alias(decl) => {
                self.word("type");
                self.gap();
                self.word(&decl.name.name);
                self.gap();
                self.word("=");
                self.gap();
                self.type_expr(&decl.ty);
            }
            Item::Enum(decl) => {
                self.word("enum");
                self.gap();
                self.word(&decl.name.name);
                self.gap();
                self.word("{");
                for variant in &decl.variants {
                    self.line_gap();
                    self.word(&variant.name.name);
                    self.maybe_comma();
                }
                self.line_gap();
                self.word("}");
            }
            Item::Let(decl) => {
                self.word("let");
                self.gap();
                self.word(&decl.name.name);
                if let Some(ty) = &decl.ty {
                    self.gap();
                    self.word(":");
                    self.gap();
                    self.type_expr(ty);
                }
                self.gap();
                self.word("=");
                self.gap();
                self.expr(&decl.value);
            }
            Item::Channel(decl) => {
                self.word("channel");
                self.gap();
                self.word(&decl.name.name);
                self.gap();
                self.block(&decl.body);
            }
            Item::Cluster(decl) => {
                self.word("cluster");
                self.gap();
                self.plain_string(&decl.id);
                self.gap();
                self.block(&decl.body);
            }
        }
    }

    fn member(&mut self, member: &Member) {
        match member {
            Member::Field(field) => {
                for attribute in &field.attributes {
                    self.word("@");
                    self.gap();
                    self.word(&attribute.name.name);
                    if let Some(argument) = &attribute.argument {
                        self.gap();
                        self.word("(");
                        self.gap();
                        self.plain_string(argument);
                        self.gap();
                        self.word(")");
                    }
                    self.gap();
                }
                self.word(&field.name.name);
                self.gap();
                self.word(":");
                self.gap();
                self.type_expr(&field.ty);
                if let Some(default) = &field.default {
                    self.gap();
                    self.word("=");
                    self.gap();
                    self.expr(default);
                }
            }
            Member::Check(check) => {
                self.word("check");
                self.gap();
                self.expr(&check.condition);
                self.gap();
                self.word(":");
                self.gap();
                self.expr(&check.message);
            }
        }
    }

    fn type_expr(&mut self, ty: &TypeExpr) {
        match &ty.kind {
            TypeExprKind::Named { module, name } => {
                if let Some(module) = module {
                    self.word(&module.name);
                    self.word(".");
                }
                self.word(&name.name);
            }
            TypeExprKind::List(element) => {
                self.word("[");
                self.gap();
                self.type_expr(element);
                self.gap();
                self.word("]");
            }
            TypeExprKind::Map(value) => {
                self.word("{");
                self.gap();
                self.word("String");
                self.gap();
                self.word(":");
                self.gap();
                self.type_expr(value);
                self.gap();
                self.word("}");
            }
            TypeExprKind::Optional(inner) => {
                self.type_expr(inner);
                self.gap();
                self.word("?");
            }
        }
    }

    fn block(&mut self, block: &Block) {
        self.word("{");
        for entry in &block.entries {
            self.line_gap();
            match entry {
                Entry::Field { name, value, .. } => {
                    self.word(&name.name);
                    self.gap();
                    self.word("=");
                    self.gap();
                    self.expr(value);
                }
                Entry::Block {
                    name, label, body, ..
                } => {
                    self.word(&name.name);
                    if let Some(label) = label {
                        self.gap();
                        self.plain_string(label);
                    }
                    self.gap();
                    self.block(body);
                }
                Entry::Spread { expr, .. } => {
                    self.word("...");
                    self.gap();
                    self.expr(expr);
                }
            }
            self.maybe_comma();
        }
        self.line_gap();
        self.word("}");
    }

    fn separated(&mut self, elements: &[Expr]) {
        for (index, element) in elements.iter().enumerate() {
            if index > 0 {
                self.gap();
                self.word(",");
            }
            self.gap();
            self.expr(element);
        }
        if !elements.is_empty() {
            self.maybe_comma();
        }
        self.gap();
    }

    fn expr(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::Int(value) => self.word(&value.to_string()),
            ExprKind::Float(value) => {
                // Digits in full: the grammar has no usable exponent form.
                let mut text = value.to_string();
                if !text.contains('.') {
                    text.push_str(".0");
                }
                self.word(&text);
            }
            ExprKind::Bool(value) => self.word(if *value { "true" } else { "false" }),
            ExprKind::Null => self.word("null"),
            ExprKind::Str(parts) => {
                self.word("\"");
                // Adjacent text parts are escaped together: `$` then `{` must not meet.
                let mut text = String::new();
                for part in parts {
                    match part {
                        StrPart::Text(part) => text.push_str(part),
                        StrPart::Interpolation(inner) => {
                            self.string_text(&std::mem::take(&mut text));
                            self.word("${");
                            self.gap();
                            self.expr(inner);
                            self.gap();
                            self.word("}");
                        }
                    }
                }
                self.string_text(&text);
                self.word("\"");
            }
            ExprKind::UnitNumber { number, unit } => self.word(&format!("{number}{unit}")),
            ExprKind::List(elements) => {
                self.word("[");
                self.separated(elements);
                self.word("]");
            }
            ExprKind::Map(entries) => {
                self.word("{");
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        self.gap();
                        self.word(",");
                    }
                    self.gap();
                    self.plain_string(key);
                    self.gap();
                    self.word(":");
                    self.gap();
                    self.expr(value);
                }
                self.gap();
                self.word("}");
            }
            ExprKind::Record { ty, body } => {
                if let Some(ty) = ty {
                    self.type_expr(ty);
                    self.gap();
                }
                self.block(body);
            }
            ExprKind::Name(name) => self.word(&name.name),
            ExprKind::Field(base, name) => {
                self.expr(base);
                if self.choose(2) == 0 {
                    self.gap();
                }
                self.word(".");
                self.word(&name.name);
            }
            ExprKind::Index(base, index) => {
                self.expr(base);
                self.gap();
                self.word("[");
                self.gap();
                self.expr(index);
                self.gap();
                self.word("]");
            }
            ExprKind::Call(name, arguments) => {
                self.word(&name.name);
                self.gap();
                self.word("(");
                self.separated(arguments);
                self.word(")");
            }
            ExprKind::Unary(op, operand) => {
                self.word(op.symbol());
                self.gap();
                self.expr(operand);
            }
            ExprKind::Binary(op, lhs, rhs) => {
                self.expr(lhs);
                self.gap();
                self.word(op.symbol());
                self.gap();
                self.expr(rhs);
            }
            ExprKind::If(condition, then, otherwise) => {
                self.word("if");
                self.gap();
                self.expr(condition);
                self.gap();
                self.word("then");
                self.gap();
                self.expr(then);
                self.gap();
                self.word("else");
                self.gap();
                self.expr(otherwise);
            }
            ExprKind::Comprehension {
                body,
                var,
                iter,
                filter,
            } => {
                self.word("[");
                self.gap();
                self.expr(body);
                self.gap();
                self.word("for");
                self.gap();
                self.word(&var.name);
                self.gap();
                self.word("in");
                self.gap();
                self.expr(iter);
                if let Some(filter) = filter {
                    self.gap();
                    self.word("if");
                    self.gap();
                    self.expr(filter);
                }
                self.gap();
                self.word("]");
            }
            ExprKind::Paren(inner) => {
                self.word("(");
                self.gap();
                self.expr(inner);
                self.gap();
                self.word(")");
            }
        }
    }

    fn plain_string(&mut self, string: &PlainString) {
        self.word("\"");
        self.string_text(&string.value);
        self.word("\"");
    }

    /// String text with the escapes it needs, and some it does not (`\$`, `\t`).
    fn string_text(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' if self.choose(2) == 0 => self.out.push_str("\\t"),
                '$' if chars.peek() == Some(&'{') || self.choose(2) == 0 => {
                    self.out.push_str("\\$")
                }
                _ => self.out.push(c),
            }
        }
    }
}

fn write_messy(items: &[Item], choices: &[u8]) -> String {
    let mut writer = MessyWriter {
        out: String::new(),
        choices,
        next: 0,
    };
    writer.items(items);
    writer.out
}

/// The tree as JSON with every `span` removed, so trees from differently laid out
/// sources compare equal when they mean the same.
fn without_spans(module: &Module) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(object) => {
                object.remove("span");
                object.values_mut().for_each(strip);
            }
            Value::Array(array) => array.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(module).unwrap_or(Value::Null);
    strip(&mut value);
    value
}

fn comment_texts(module: &Module) -> Vec<String> {
    let mut texts: Vec<String> = module.comments.iter().map(|c| c.text.clone()).collect();
    texts.sort();
    texts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn formatting_is_idempotent_and_keeps_the_tree_and_comments(
        items in program(),
        choices in prop::collection::vec(any::<u8>(), 1..256),
    ) {
        let source = write_messy(&items, &choices);
        let (parsed, diagnostics) = parse(FileId(0), &source);
        prop_assert!(diagnostics.is_empty(), "generated source does not parse:\n{}\n{:#?}", source, diagnostics);
        let formatted = fmt(&source);
        prop_assert!(formatted.ends_with('\n') && !formatted.ends_with("\n\n"));
        let (reparsed, diagnostics) = parse(FileId(0), &formatted);
        prop_assert!(diagnostics.is_empty(), "formatted source does not parse:\n{}\n{:#?}", formatted, diagnostics);
        prop_assert_eq!(fmt(&formatted), formatted.clone(), "not idempotent; source:\n{}", source);
        prop_assert_eq!(without_spans(&reparsed), without_spans(&parsed), "tree changed:\n{}\n---\n{}", source, formatted);
        prop_assert_eq!(comment_texts(&reparsed), comment_texts(&parsed));
    }

    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(FileId(0), &text);
        let _ = format_source(FileId(0), &text);
    }

    #[test]
    fn token_soup_does_not_panic(
        tokens in prop::collection::vec(
            prop::sample::select(vec![
                "{", "}", "(", ")", "[", "]", "\"", "${", "//", "///", "\n", " ", "...", "=",
                ":", ",", ".", "?", "@", "-", "+", "!", "/", "\\", "$", "x", "Pool", "aws",
                "let", "type", "enum", "import", "channel", "cluster", "check", "if", "then",
                "else", "for", "in", "as", "null", "true", "1", "2.5", "3d", "500Mi", "1e5",
            ]),
            0..96,
        ),
    ) {
        let text = tokens.concat();
        let _ = parse(FileId(0), &text);
        if let Ok(formatted) = format_source(FileId(0), &text) {
            prop_assert_eq!(fmt(&formatted), formatted.clone(), "not idempotent; source:\n{}", text);
        }
    }
}

// ---- `flotilla fmt` on files -----------------------------------------------------------

fn flotilla_fmt(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("fmt")
        .args(args)
        .output()
        .expect("the flotilla binary runs")
}

/// `a.flt` and `c.flt` are not UTF-8 (the invalid byte at 2:13 and 1:1); `b.flt` is
/// valid but not formatted. Sorted, `a.flt` comes first.
fn fleet_with_bad_files(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    std::fs::write(dir.join("a.flt"), b"let x = 1\nlet y = \"caf\xe9\"\n").unwrap();
    std::fs::write(dir.join("b.flt"), "let   z =  1\n").unwrap();
    std::fs::write(dir.join("c.flt"), b"\xff\n").unwrap();
    dir
}

#[test]
fn fmt_formats_every_file_and_reports_each_that_is_not_utf8() {
    let dir = fleet_with_bad_files("fmt-not-utf8");
    let output = flotilla_fmt(&[dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("b.flt")).unwrap(),
        "let z = 1\n"
    );
    for place in ["a.flt:2:13", "c.flt:1:1"] {
        assert!(
            stderr.contains(&format!("{}", dir.join(place).display())),
            "{place} not in:\n{stderr}"
        );
    }
    assert_eq!(stderr.matches("error[E0009]").count(), 2, "{stderr}");
    // The files that could not be read as text are left as they were.
    assert_eq!(
        std::fs::read(dir.join("a.flt")).unwrap(),
        b"let x = 1\nlet y = \"caf\xe9\"\n"
    );
}

#[test]
fn fmt_check_lists_unformatted_files_after_one_that_is_not_utf8() {
    let dir = fleet_with_bad_files("fmt-check-not-utf8");
    let output = flotilla_fmt(&["--check", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", dir.join("b.flt").display())
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("b.flt")).unwrap(),
        "let   z =  1\n",
        "--check writes nothing"
    );
}

#[test]
fn fmt_of_a_directory_without_flt_files_is_an_error() {
    let dir = TempDir::new("fmt-empty");
    std::fs::write(dir.join("notes.txt"), "not source").unwrap();
    for args in [vec![], vec!["--check"]] {
        let mut args = args;
        args.push(dir.to_str().unwrap());
        let output = flotilla_fmt(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("error[E0100]") && stderr.contains("no .flt files"),
            "{stderr}"
        );
    }
}
